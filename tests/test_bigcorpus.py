"""Corpora larger than memory: reading in pieces follows the whole-file rules exactly, the token file equals the
in-memory encoding, and training from it equals training from memory."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from tests.conftest import make_text
from tests.test_train import tiny_config
from textgen_core import tokenfile
from textgen_core.corpus import SourceReader, load_corpus
from textgen_core.errors import TextgenError
from textgen_core.training.loop import Trainer


def read_in_pieces(path, chunk_bytes: int, **kw) -> str:
    return "".join(SourceReader(path, chunk_bytes=chunk_bytes, **kw))


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (b"a\r\nb\rc\r\n\r\nd\r", "a\nb\nc\n\nd\n"),  # every CRLF, whichever boundary cuts it, is one newline
        ("\ufeffcaf\u00e9 \u4e16\U0001f600\r\n".encode(), "caf\u00e9 \u4e16\U0001f600\n"),  # BOM, 2-4 byte chars
    ],
)
def test_pieces_of_any_size_decode_like_the_whole_file(tmp_path, content, text):
    p = tmp_path / "t.txt"
    p.write_bytes(content)
    for chunk in range(1, len(content) + 1):
        assert read_in_pieces(p, chunk) == text, chunk


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("caf\u00e9".encode() + b"\xc3(rest", "not valid utf-8 at byte offset 5"),  # a bad pair cut by a boundary
        ("\u00e9\u00e9\u00e9".encode() + b"\xe4\xb8", "not valid utf-8 at byte offset 6"),  # truncated at the end
        (b"line\r\nline\r\nli\x00ne", "NUL byte at byte offset 14"),
        (b"a\r\nb\r\nc\x1b[0m", "control character U+001B at character 5"),  # counted after CRLF -> LF
    ],
)
def test_errors_give_file_positions_whatever_the_boundaries(tmp_path, content, expected):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    for chunk in range(1, len(content) + 1):
        with pytest.raises(TextgenError, match=re.escape(expected)):
            read_in_pieces(p, chunk)


@pytest.mark.parametrize("lowercase", [False, True])
@pytest.mark.parametrize("wide", [False, True], ids=["u8", "u16"])
def test_token_file_equals_the_in_memory_encoding(tmp_path, lowercase, wide):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(make_text(3_000).replace("\n", "\r\n").encode())
    extra = "".join(chr(0x4E00 + i) for i in range(300)) if wide else "caf\u00e9 \U0001f600"
    b.write_bytes(("\ufeff" + make_text(2_000, seed=1) + extra).encode())
    kw = dict(encoding="utf-8", lowercase=lowercase, max_vocab=1000)
    mapped = tokenfile.load_token_corpus([a, b], tmp_path / "run", chunk_bytes=97, **kw)
    memory = load_corpus([a, b], **kw)
    assert isinstance(mapped, tokenfile.MappedCorpus)
    assert mapped.tokens.dtype == memory.tokens.dtype == (np.uint16 if wide else np.uint8)
    assert np.array_equal(mapped.tokens, memory.tokens)
    assert mapped.vocab == memory.vocab and mapped.sources == memory.sources
    name = "tokens.u16" if wide else "tokens.u8"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted([name, "tokens.json"])  # no partials


def test_token_file_is_reused_when_the_corpus_is_unchanged_and_rebuilt_when_not(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text(make_text(5_000))
    seen: list[str] = []

    def load():
        seen.clear()
        return tokenfile.load_token_corpus(
            [p],
            tmp_path / "run",
            encoding="utf-8",
            lowercase=False,
            max_vocab=1000,
            progress=lambda w, d, t: seen.append(w),
        )

    load()
    assert any(w.startswith("encoding") for w in seen)
    load()
    assert seen and all(w.startswith("checking") for w in seen)  # hashed, not encoded again
    p.write_text(make_text(5_000, seed=3))
    assert np.array_equal(load().tokens, load_corpus([p]).tokens)
    with pytest.raises(TextgenError, match="--max-vocab"):
        tokenfile.load_token_corpus([p], tmp_path / "run", encoding="utf-8", lowercase=False, max_vocab=10)


def test_training_from_the_token_file_equals_training_from_memory(corpus_file, tmp_path, monkeypatch):
    memory = Trainer(tiny_config(corpus_file, tmp_path / "memory", steps=8, dropout=0.2))
    memory.run()
    monkeypatch.setattr(tokenfile, "MIN_BYTES", 0)
    mapped = Trainer(tiny_config(corpus_file, tmp_path / "mapped", steps=8, dropout=0.2))
    assert isinstance(mapped.corpus, tokenfile.MappedCorpus)
    mapped.run()
    for k, v in memory.model.state_dict().items():
        assert torch.equal(v, mapped.model.state_dict()[k]), k
    assert (tmp_path / "mapped" / "tokens.u8").is_file()


def test_a_bad_large_corpus_leaves_no_run_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tokenfile, "MIN_BYTES", 0)
    p = tmp_path / "bad.txt"
    p.write_bytes(make_text(5_000).encode() + b"\xff")
    with pytest.raises(TextgenError, match="byte offset 5000"):
        Trainer(tiny_config(p, tmp_path / "run", steps=1))
    assert not (tmp_path / "run").exists()
