"""Vocabulary encoding (unknown characters are reported, never a crash) and corpus reading."""

from __future__ import annotations

import pytest

from textgen_core.corpus import load_corpus
from textgen_core.errors import TextgenError
from textgen_core.vocab import Vocabulary, describe_unknown


def test_vocabulary_is_sorted_distinct_and_round_trips():
    v = Vocabulary.from_text("hello, world\n")
    assert v.tokens == sorted(set("hello, world\n"))
    enc = v.encode("hello world")
    assert v.decode(enc.ids) == "hello world"
    assert enc.unknown == {}


def test_unknown_characters_are_reported_and_skipped():
    v = Vocabulary.from_text("abc ")
    enc = v.encode("abXc😀 aX")
    assert v.decode(enc.ids) == "abc a"
    assert enc.unknown == {"X": 2, "😀": 1}
    assert enc.unknown_count == 3
    assert "'X' ×2" in describe_unknown(enc.unknown)


def test_corpus_concatenates_normalises_newlines_and_splits(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"One\r\nTwo\r\n")
    b.write_bytes(b"three\rfour\n")
    c = load_corpus([a, b])
    text = "One\nTwo\nthree\nfour\n"
    assert c.vocab.decode(c.tokens) == text
    assert [s.name for s in c.sources] == ["a.txt", "b.txt"]
    train, val = c.split(0.25)
    assert len(val) == int(len(text) * 0.25) and len(train) + len(val) == len(text)
    assert c.vocab.decode(val) == text[-len(val) :]


def test_lowercase_option(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("Hello World\n")
    c = load_corpus([p], lowercase=True)
    assert c.vocab.decode(c.tokens) == "hello world\n" and "H" not in c.vocab


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"abc\x00def", "NUL byte at byte offset 3"),
        (b"abc\xff\xfe", "byte offset 3"),
        (b"abc\x1b[31mred", "control character U+001B"),
    ],
)
def test_bad_corpus_content_is_a_one_line_error(tmp_path, content, expected):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(TextgenError) as e:
        load_corpus([p])
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_too_many_distinct_characters_looks_binary(tmp_path):
    p = tmp_path / "many.txt"
    p.write_text("".join(chr(0x4E00 + i) for i in range(50)))
    with pytest.raises(TextgenError, match="--max-vocab"):
        load_corpus([p], max_vocab=40)
    assert len(load_corpus([p], max_vocab=50).vocab) == 50


def test_missing_and_folder(tmp_path):
    with pytest.raises(TextgenError, match="no such file"):
        load_corpus([tmp_path / "nope.txt"])
    with pytest.raises(TextgenError, match="is a folder"):
        load_corpus([tmp_path])
