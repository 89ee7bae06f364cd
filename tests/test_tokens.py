"""Words and word pieces as well as characters (`--tokens word|bpe`), as a user meets them: trained, resumed
exactly, sampled, scored losslessly in parallel and exactly, described, refused with one line on bad input, and
driven in the REPL through a pseudo-terminal. Character models keep their checkpoints and results."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    TINY_TRAIN,
    Terminal,
    assert_one_line_error,
    assert_resumes_exactly,
    make_text,
    run_cli,
    spawn_repl,
    with_metadata,
)

from textgen_core import checkpoint
from textgen_core.errors import TextgenError
from textgen_core.tokens import WORD, WordVocabulary, from_meta, learn
from textgen_core.vocab import Vocabulary

KINDS = ("word", "bpe")
#: A text with words and characters the training text never had: unseen words are spelled, unknown
#: characters (é, ☃, a literal ▁) skipped and reported.
NOVEL = "Zyxwv quorbl the ☃ will, é and ▁ unheard-of words\n\tagain the will."


def size(kind: str) -> str:
    return "80" if kind == "word" else "120"


@pytest.fixture(scope="module", params=KINDS)
def token_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A small word or word-piece model trained through the CLI: (kind, run folder)."""
    kind = request.param
    where = tmp_path_factory.mktemp(f"tokens-{kind}")
    corpus = where / "corpus.txt"
    corpus.write_text(make_text(30_000), encoding="utf-8")
    run = where / "run"
    flags = ("--tokens", kind, "--vocab-size", size(kind), "--steps", "12", "--precision", "fp32")
    proc = run_cli("train", str(corpus), "--out", str(run), *flags, *TINY_TRAIN)
    assert proc.returncode == 0, proc.stderr
    return kind, run


# ---- the vocabularies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_text_of_known_characters_is_encoded_exactly(kind: str) -> None:
    text = make_text(20_000)
    vocab = learn(kind, text, 80)
    assert len(vocab) == 80 and all(vocab.knows(ch) for ch in set(text))
    assert any(len(t) > 1 for t in vocab.tokens)
    for sample in (text[:3_000], NOVEL, "", " ", "the the  the\n\n", "xq" * 50):
        enc = vocab.encode(sample)
        kept = "".join(ch for ch in sample if vocab.knows(ch))
        assert vocab.decode(enc.ids) == kept
        assert sum(enc.unknown.values()) == len(sample) - len(kept)
    assert len(vocab.encode(text).ids) < 0.75 * len(text)  # longer tokens are used: fewer tokens than characters


def test_the_word_rule_frequent_words_seen_twice_and_every_character() -> None:
    text = " the cat the dog the cat a bird\n"
    vocab = WordVocabulary.learn(text, len(set(text)) + 2)
    assert vocab.tokens[: len(set(text))] == sorted(set(text))
    assert vocab.tokens[len(set(text)) :] == [" the", " cat"]  # " dog" and " bird" were seen once
    assert [vocab.tokens[i] for i in vocab.encode(" the bird").ids] == [" the", " ", "b", "i", "r", "d"]
    assert WORD.findall("it's a re-run, 42x") == ["it", "s", " a", " re", "run", "x"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_vocabulary_round_trips_through_its_record(kind: str) -> None:
    vocab = learn(kind, make_text(8_000), 70)
    again = from_meta(list(vocab.tokens), json.loads(json.dumps(vocab.meta())))
    assert again == vocab and type(again) is type(vocab)
    assert np.array_equal(again.encode(NOVEL).ids, vocab.encode(NOVEL).ids)


def test_sizes_a_corpus_cannot_hold_are_refused_in_one_line() -> None:
    text = make_text(5_000)
    chars = len(set(text))
    for kind in KINDS:
        with pytest.raises(TextgenError, match="leaves no room"):
            learn(kind, text, chars)
        with pytest.raises(TextgenError, match="more than"):
            learn(kind, text, 100_000)
    with pytest.raises(TextgenError, match="words seen twice"):
        learn("word", text, 5_000)
    with pytest.raises(TextgenError, match="word pieces"):
        learn("bpe", text, 5_000)


# ---- the checkpoint ------------------------------------------------------------------------------------------------


def test_a_character_checkpoint_keeps_its_format_and_opens_as_characters(tmp_path: Path) -> None:
    bundled = checkpoint.load(checkpoint.bundled_path())
    assert type(bundled.vocab) is Vocabulary and bundled.vocab.is_chars
    meta = json.loads(bundled.meta.to_json())
    assert "tokens" not in meta and meta["version"] == 1  # written as before: older textgens still read it


def test_a_token_checkpoint_records_its_kind_and_a_damaged_one_is_one_line(token_run, tmp_path: Path) -> None:
    kind, run = token_run
    ckpt = checkpoint.load(run)
    assert ckpt.vocab.kind == kind and len(ckpt.vocab) == int(size(kind))
    meta = json.loads(ckpt.meta.to_json())
    assert meta["version"] == 4 and meta["tokens"]["kind"] == kind

    def damaged(change) -> str:
        path = tmp_path / "damaged.safetensors"
        path.write_bytes(with_metadata(run / checkpoint.WEIGHTS_NAME, lambda d: (change(d), d)[1]))
        return str(path)

    cases = [
        lambda d: d["tokens"].update(kind="syllable"),
        lambda d: d["vocab"].__setitem__(-1, d["vocab"][0]),
        lambda d: d["vocab"].__setitem__(0, ""),
        lambda d: d["vocab"].pop(),
    ]
    if kind == "bpe":
        cases.append(lambda d: d["tokens"].update(model=base64.b64encode(b"not a model").decode()))
        cases.append(lambda d: d["tokens"].update(model="***"))
        cases.append(lambda d: d["vocab"].__setitem__(-1, d["vocab"][-1] + "x"))
    for change in cases:
        assert_one_line_error(run_cli("info", "-c", damaged(change)), "damaged.safetensors")
        assert_one_line_error(run_cli("sample", "-c", damaged(change), "--len", "5"), "damaged.safetensors")


# ---- training, sampling, scoring -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_word_and_a_word_piece_run_resume_exactly(corpus_file: Path, tmp_path: Path, kind: str) -> None:
    full, resumed = assert_resumes_exactly(corpus_file, tmp_path, steps=14, tokens=kind, vocab_size=int(size(kind)))
    assert resumed.vocab == full.vocab and resumed.vocab.kind == kind


def test_sample_info_and_eval_of_a_token_model(token_run, tmp_path: Path) -> None:
    kind, run = token_run
    info = json.loads(run_cli("info", "-c", str(run), "--json").stdout)
    assert info["tokens"] == kind and info["vocab_size"] == int(size(kind))
    assert ("words and characters" if kind == "word" else "word pieces") in run_cli("info", "-c", str(run)).stdout
    args = ("sample", "-c", str(run), "--prompt", "The will", "--len", "60", "--seed", "3", "--temp", "0.5", "1")
    sample = run_cli(*args)
    assert sample.returncode == 0, sample.stderr
    assert run_cli(*args).stdout == sample.stdout  # seeded: the same text again
    records = [json.loads(line) for line in run_cli(*args, "--jsonl").stdout.splitlines()]
    for i in (0, 1):
        text = "".join(r["token"] for r in records if r["sample"] == i)
        # Each sample ends on the first token boundary at or past --len characters.
        last = [r for r in records if r["sample"] == i][-1]["token"]
        assert 60 <= len(text) < 60 + len(last)
    assert any(len(r["token"]) > 1 for r in records)


def test_eval_jsonl_is_lossless_and_parallel_scoring_is_within_tolerance(token_run, tmp_path: Path) -> None:
    _, run = token_run
    novel = tmp_path / "novel.txt"
    novel.write_text(NOVEL * 3 + make_text(20_000, seed=9), encoding="utf-8")
    jsonl = tmp_path / "records.jsonl"
    report = json.loads(run_cli("eval", "-c", str(run), str(novel), "--json", "--jsonl", str(jsonl)).stdout)
    records = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    text = novel.read_text(encoding="utf-8")
    vocab = checkpoint.load(run).vocab
    assert "".join(r["token"] for r in records) == "".join(ch for ch in text if vocab.knows(ch))
    unknown = Counter(ch for ch in text if not vocab.knows(ch))
    assert {"☃", "é", "▁"} <= set(unknown) and report["unknown"] == unknown
    assert report["chars"] == len(text) - unknown.total()
    assert sum(r["bits"] for r in records) == pytest.approx(report["total_bits"], rel=1e-9)
    assert report["token_count"] == len(records) < report["chars"]
    assert report["bpc"] == pytest.approx(report["total_bits"] / report["chars"])
    assert report["perplexity"] == pytest.approx(2 ** (report["total_bits"] / len(records)))
    exact = json.loads(run_cli("eval", "-c", str(run), str(novel), "--json", "--exact").stdout)
    assert abs(report["bpc"] - exact["bpc"]) < 0.002 and report["bpc"] != exact["bpc"]
    plain = run_cli("eval", "-c", str(run), str(novel)).stdout
    assert "bits per token" in plain and "perplexity" in plain


# ---- bad input -----------------------------------------------------------------------------------------------------


def test_bad_token_flags_are_one_line_and_write_nothing(corpus_file: Path, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("a\nb\n" * 400, encoding="utf-8")  # no pair of characters to merge
    cases = [
        (("--tokens", "syllable"), "invalid choice"),
        (("--tokens", "word", "--vocab-size", "0"), "--vocab-size"),
        (("--tokens", "word", "--vocab-size", "100000"), "more than"),
        (("--tokens", "word", "--vocab-size", "9000"), "words seen twice"),
        (("--vocab-size", "500"), "--tokens word or bpe"),
    ]
    for flags, needle in cases:
        out = tmp_path / f"run{len(flags)}-{needle[:4]}"
        proc = run_cli("train", str(corpus_file), "--out", str(out), "--steps", "3", *flags, *TINY_TRAIN)
        assert_one_line_error(proc, needle)
        assert not out.exists() or not any(out.iterdir())
    out = tmp_path / "init"
    proc = run_cli(
        "train", str(corpus_file), "--out", str(out), "--init", "bundled", "--tokens", "word", "--steps", "3"
    )
    assert_one_line_error(proc, "--init keeps the checkpoint's tokens")
    assert not out.exists() or not any(out.iterdir())
    out = tmp_path / "small"
    proc = run_cli("train", str(tiny), "--out", str(out), "--tokens", "bpe", "--steps", "3", *TINY_TRAIN)
    assert_one_line_error(proc, "word pieces")
    assert not out.exists() or not any(out.iterdir())


# ---- the REPL ------------------------------------------------------------------------------------------------------


def test_the_repl_drives_a_token_model_in_a_terminal(token_run, tmp_path: Path) -> None:
    kind, run = token_run
    child = spawn_repl(run, tmp_path, length=40)
    term = Terminal(child)
    try:
        term.wait_for("words and characters" if kind == "word" else "word pieces")  # the banner names the kind
        term.wait_for("type /help")
        term.command("the will", "bits/char")
        longer = [t for t in checkpoint.load(run).vocab.tokens if len(t) > 2 and t.strip().isalpha()]
        term.child.send("/pick\r")
        term.wait_for("Esc or q leave")
        term.pause(0.3)
        screen = term.seen[term.pos - 2000 :]
        assert any(t.replace(" ", "␠") in screen for t in longer), "step mode offers whole tokens"
        term.child.send("1")
        term.pause(0.2)
        term.child.send("q")
        term.wait_for("picked 1 token(s)")
        term.command("/beam 3", "beam3")
        term.command("/fork 2", "instead of")
        term.command("/score the will of the world", "bits per token")
        term.command("/tree", "branches")
    finally:
        child.close(force=True)
