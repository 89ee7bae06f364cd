"""The copy meter: match lengths against a brute force, inserted training passages found exactly (by `textgen
copies` and through the REPL in a pseudo-terminal), the training text found from the checkpoint's record or given
and checked, the index kept and rebuilt when damaged, `sample --copies`, and the loop flag."""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import Terminal, assert_one_line_error, make_text, run_cli, spawn_repl, write_random_checkpoint

from textgen_core.checkpoint import CheckpointMeta, load, save
from textgen_core.copies import match_lengths, maximal_spans, report, training_text
from textgen_core.copyindex import SUFFIX, index_for
from textgen_core.corpus import SourceReader
from textgen_core.errors import TextgenError
from textgen_core.repeats import find_loop
from textgen_core.sources import Source

#: The letters the novel passages are drawn from: all in the corpus, so every character can match by chance.
LETTERS = "abcdefghiklmnopqrstuw "
#: Where the training passages go into the test text (start in the corpus, length), and the novel text between.
INSERTED = ((1_000, 150), (9_000, 90), (17_000, 200))
GAP = 300


def corpus_text() -> str:
    """A training text without newlines, so that its passages can be typed at the REPL's prompt."""
    return make_text(20_000, seed=7).replace("\n", " ")


def mixed_text(corpus: str, seed: int = 11) -> tuple[str, list[tuple[int, int]]]:
    """Novel random letters with the `INSERTED` corpus passages between them; returns the text and where each
    passage went (start, length)."""
    rng = random.Random(seed)
    parts: list[str] = []
    where = []
    at = 0
    for start, length in INSERTED:
        novel = "".join(rng.choice(LETTERS) for _ in range(GAP))
        parts.append(novel)
        at += len(novel)
        parts.append(corpus[start : start + length])
        where.append((at, length))
        at += length
    parts.append("".join(rng.choice(LETTERS) for _ in range(GAP)))
    return "".join(parts), where


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's cache folder, in the test's own folder (for this process and the CLI it starts)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


def recording_checkpoint(path: Path, corpus: Path, text: str, *, seed: int = 0) -> Path:
    """A random checkpoint over `text`'s characters that records `corpus` as its training text (name, sha256,
    path), as a training run now does."""
    write_random_checkpoint(path, text=text, seed=seed)
    ckpt = load(path)
    reader = SourceReader(corpus)
    "".join(reader)
    meta: CheckpointMeta = ckpt.meta
    meta.corpus = [reader.source()]
    save(path, ckpt.tensors, meta)
    return path


def test_a_source_records_where_it_was_read_and_old_records_still_read(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc", encoding="utf-8")
    reader = SourceReader(corpus)
    "".join(reader)
    assert reader.source().path == str(corpus.absolute())
    assert Source.from_dict({"name": "c.txt", "sha256": "0" * 64, "chars": 3}).path is None


def _longest_matches_by_brute_force(source: str, text: str) -> list[int]:
    """For each position of `text`, the longest stretch ending there that occurs in `source`: what the index's
    `match_lengths` must give, found by searching `source` for each candidate."""
    lengths = []
    for i in range(len(text)):
        k = 0
        while k <= i and text[i - k : i + 1] in source:
            k += 1
        lengths.append(k)
    return lengths


def test_match_lengths_equal_a_brute_force_and_spans_are_the_maximal_ones(tmp_path: Path, cache: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text()[:6_000] + "éü", encoding="utf-8")
    found = training_text([], False, [corpus])
    index = index_for(found.paths, found.hashes, False).index
    source = corpus.read_text(encoding="utf-8")
    rng = random.Random(3)
    tail = source[-40:]  # the corpus's last characters: suffixes that end there must compare as shorter ones
    text = source[100:160] + "".join(rng.choice(LETTERS + "xé") for _ in range(150)) + source[3000:3040] + "Zq" + tail
    assert list(match_lengths(index, text)) == _longest_matches_by_brute_force(source, text)
    for ch in index.alphabet:  # the last characters and one more: no suffix runs on past the text's end
        end = source[-5:] + ch
        assert index.find(index.encode(end) or b"")[1] - index.find(index.encode(end) or b"")[0] == source.count(end)
    assert maximal_spans(np.array([1, 2, 3, 1, 2, 3, 4, 5]), 3) == [(0, 3), (3, 5)]
    result = report(index, text, 30)
    assert (result.spans[0].start, result.spans[0].length) == (0, 60)
    assert result.longest >= 60 and result.spans[0].corpus_start == 100


def test_a_corpus_of_more_than_256_characters_is_indexed_two_bytes_a_character(tmp_path: Path, cache: Path) -> None:
    rng = random.Random(5)
    alphabet = [chr(0x4E00 + i) for i in range(300)] + list("ab ")
    source = "".join(rng.choice(alphabet) for _ in range(3_000))
    corpus = tmp_path / "wide.txt"
    corpus.write_text(source, encoding="utf-8")
    found = training_text([], False, [corpus])
    index = index_for(found.paths, found.hashes, False).index
    assert index.width == 2
    text = "".join(rng.choice(alphabet) for _ in range(50)) + source[1234:1300] + "zz"
    assert list(match_lengths(index, text)) == _longest_matches_by_brute_force(source, text)
    assert report(index, text, 40).spans[0].corpus_start <= 1234


def test_copies_reports_exactly_the_inserted_passages(tmp_path: Path, cache: Path) -> None:
    """Each inserted passage is reported with its boundaries within 3 characters: a span may start early or end
    late when the novel letters beside it happen to continue the corpus there (1 chance in ~20 a character), and
    nothing else is 32 characters long."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text(), encoding="utf-8")
    text, where = mixed_text(corpus_text())
    target = tmp_path / "mixed.txt"
    target.write_text(text, encoding="utf-8")
    proc = run_cli("copies", str(target), "--corpus", str(corpus), "--json", env={"XDG_CACHE_HOME": str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert "indexing corpus.txt" in proc.stderr  # built the first time …
    got = json.loads(proc.stdout)
    spans = got["spans"]
    assert len(spans) == len(where)
    for span, (start, length), (corpus_start, _) in zip(spans, where, INSERTED, strict=True):
        assert start - 3 <= span["start"] <= start and start + length <= span["end"] <= start + length + 3
        assert span["corpus_start"] - (start - span["start"]) == corpus_start or span["occurrences"] > 1
        assert span["source"] == "corpus.txt" and span["line"] == 1
    assert got["copied_chars"] == sum(s["end"] - s["start"] for s in spans)
    again = run_cli("copies", str(target), "--corpus", str(corpus), env={"XDG_CACHE_HOME": str(cache)})
    assert again.returncode == 0 and "indexing" not in again.stderr  # … and kept
    assert again.stdout.count(" corpus.txt line 1 ") == len(where)


def test_the_repl_lists_the_inserted_passages_in_a_terminal(tmp_path: Path, cache: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text(), encoding="utf-8")
    model = write_random_checkpoint(tmp_path / "m.safetensors", text=corpus_text())
    text, where = mixed_text(corpus_text())
    child = spawn_repl(model, tmp_path, cols=200)
    term = Terminal(child)
    try:
        term.wait_for("type /help")
        term.command(f"/copies {corpus}", "underlined")
        out = term.command(f"/score {text}", "copied: characters")
        term.wait_for(f"({where[-1][1]})")
        for start, length in where:
            assert f"copied: characters {start + 1:,}–{start + length:,} ({length})" in term.seen
        assert "\x1b[4" in out or ";4m" in out  # underlined
        assert term.seen.count("copied: characters") == len(where)
    finally:
        child.close(force=True)


def test_the_training_text_is_found_from_the_record_and_checked(tmp_path: Path, cache: Path) -> None:
    corpus = tmp_path / "book.txt"
    corpus.write_text(corpus_text(), encoding="utf-8")
    model = recording_checkpoint(tmp_path / "m.safetensors", corpus, corpus_text())
    recorded = load(model).meta.corpus
    assert training_text(recorded, False).checked  # from the record alone
    other = tmp_path / "other.txt"
    other.write_text(corpus_text()[::-1], encoding="utf-8")
    with pytest.raises(TextgenError, match="sha256 differs"):
        training_text(recorded, False, [other])
    assert training_text(recorded, False, [other], anyway=True).note
    text = tmp_path / "t.txt"
    text.write_text(corpus_text()[500:700], encoding="utf-8")
    env = {"XDG_CACHE_HOME": str(cache)}
    found = run_cli("copies", str(text), "-c", str(model), "--json", env=env)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["checked"] and json.loads(found.stdout)["spans"][0]["length"] == 200
    wrong = run_cli("copies", str(text), "-c", str(model), "--corpus", str(other), env=env)
    assert_one_line_error(wrong, "sha256 differs", "--corpus-anyway")
    anyway = run_cli("copies", str(text), "-c", str(model), "--corpus", str(other), "--corpus-anyway", env=env)
    assert anyway.returncode == 0 and "used anyway" in anyway.stderr
    assert_one_line_error(run_cli("copies", str(text), "--corpus", str(tmp_path / "gone.txt")), "no such file")
    corpus.rename(tmp_path / "moved.txt")
    assert_one_line_error(run_cli("copies", str(text), "-c", str(model), env=env), "no longer at", "--corpus FILE")
    bare = write_random_checkpoint(tmp_path / "bare.safetensors")
    assert_one_line_error(run_cli("copies", str(text), "-c", str(bare), env=env), "records no training text")


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_a_damaged_index_is_rebuilt_not_trusted(tmp_path: Path, cache: Path, damage: str) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text()[:5_000], encoding="utf-8")
    found = training_text([], False, [corpus])
    first = index_for(found.paths, found.hashes, False)
    assert first.built is not None and first.kept
    path = next((cache / "textgen" / "copies").glob(f"*{SUFFIX}"))
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 7]
    elif damage == "flip":
        data[-5] ^= 0x40  # inside the suffix array: only the checksum sees it
    else:
        data = bytearray(b"not an index at all")
    path.write_bytes(bytes(data))
    again = index_for(found.paths, found.hashes, False)
    assert again.built is not None and again.damage
    assert report(again.index, corpus_text()[100:200], 32).spans[0].length == 100
    assert index_for(found.paths, found.hashes, False).built is None  # the rebuilt one is good


def test_the_repl_says_in_one_line_how_to_give_the_text_and_goes_on(repl_session, tmp_path: Path, cache) -> None:
    session, out = repl_session()
    session.submit("/copies on")
    assert "records no training text; give it: /copies FILE" in out.getvalue()
    session.submit(f"/copies {tmp_path / 'missing.txt'}")
    assert "no such file" in out.getvalue()
    session.submit("/copies min 0")
    assert "the shortest copied span must be" in out.getvalue()
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)  # nobody writes it: reading it would wait for ever; read twice, a pipe differs (found by the fuzz)
    session.submit(f"/copies {pipe}")
    assert "is a named pipe; the copy meter reads the training text more than once" in out.getvalue()
    lines = [line for line in out.getvalue().splitlines() if line.startswith("/copies")]
    assert len(lines) == 4 and "Traceback" not in out.getvalue()
    session.submit("the will")  # the session goes on
    assert "bits/char" in out.getvalue().splitlines()[-1]


def test_sample_copies_adds_a_copy_field_and_a_summary(tmp_path: Path, cache: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text(), encoding="utf-8")
    model = write_random_checkpoint(tmp_path / "m.safetensors", text=corpus_text())
    env = {"XDG_CACHE_HOME": str(cache)}
    args = ("sample", "-c", str(model), "--len", "40", "--seed", "1", "--corpus", str(corpus))
    proc = run_cli(*args, "--jsonl", "--temp", "1", "0.5", env=env)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    for sample in (0, 1):
        mine = [r for r in records if r["sample"] == sample]
        text = "".join(r["char"] for r in mine)
        assert [r["copy"] for r in mine] == [int(n) for n in match_lengths_of(corpus, text)]
    assert proc.stderr.count("textgen: copies (sample") == 2
    plain = run_cli(*args, env=env)
    assert plain.returncode == 0 and "copies (sample 1 · T=1)" in plain.stderr and "copy" not in plain.stdout


def match_lengths_of(corpus: Path, text: str) -> np.ndarray:
    found = training_text([], False, [corpus])
    return match_lengths(index_for(found.paths, found.hashes, False).index, text)


def test_the_loop_flag_says_how_long_and_how_often() -> None:
    loop = find_loop("a start. " + "the sense of the world, " * 6 + "end")
    assert loop is not None and loop.back_to_back and loop.length == 24 and loop.times == 6
    sentence = "one long sentence that repeats itself exactly."
    apart = find_loop("x" * 3 + sentence + "-" * 30 + sentence)
    assert apart is not None and not apart.back_to_back and apart.times == 2 and apart.length >= 46
    assert find_loop(make_text(400, seed=2)[:60]) is None


def test_a_greedy_run_that_loops_is_flagged_and_a_beam_can_refuse_repeats(repl_session) -> None:
    from repl.features.copies import Meter
    from textgen_core.beam import BeamSearch

    session, out = repl_session(length=300, temperature=0)
    session.meter = Meter(session)  # as the app installs it: off, but the loop flag speaks
    session.submit("the will ")
    flag = out.getvalue().splitlines()[-1]
    assert flag.startswith("loop: a ") and "times back to back" in flag and "/beam W norepeat N" in flag
    session.submit("/beam 3 norepeat 12")
    assert "beam3 norepeat 12" in out.getvalue() and not out.getvalue().splitlines()[-1].startswith("loop:")
    gen = session.generator
    gen.prime("the will ")
    result = BeamSearch.from_generator(gen, 3, 300, no_repeat=12).run()
    grams = [result.text[i : i + 12] for i in range(len(result.text) - 11)]
    assert len(grams) == len(set(grams))  # no 12-character stretch twice
    assert result.total_bits == pytest.approx(-sum(np.log2(t.prob) for t in result.tokens), rel=1e-6)


def test_repl_corpus_flag_turns_the_meter_on_or_says_why_not(tmp_path: Path, cache: Path) -> None:
    corpus = tmp_path / "book.txt"
    corpus.write_text(corpus_text(), encoding="utf-8")
    model = recording_checkpoint(tmp_path / "m.safetensors", corpus, corpus_text())
    env = {"XDG_CACHE_HOME": str(cache)}
    good = run_cli("repl", "-c", str(model), "--copies", "--len", "20", input="the will\n/copies\n/quit\n", env=env)
    assert good.returncode == 0, good.stderr
    assert "copies  on · training text book.txt (checked by sha256)" in good.stdout
    assert "copies: longest" in good.stdout  # the summary after the run
    missing = run_cli("repl", "-c", str(model), "--corpus", str(tmp_path / "nope.txt"), input="/quit\n", env=env)
    assert missing.returncode == 0 and missing.stdout.count("copy meter: ") == 1 and "no such file" in missing.stdout


def test_the_meter_turns_itself_off_for_a_model_trained_on_another_text(tmp_path: Path, cache: Path) -> None:
    from repl.commands import REGISTRY
    from repl.features.copies import Meter, turn_on
    from repl.render import make_console
    from repl.session import Session
    from textgen_core.sampling import SamplingSettings

    corpus = tmp_path / "book.txt"
    corpus.write_text(corpus_text(), encoding="utf-8")
    model = recording_checkpoint(tmp_path / "m.safetensors", corpus, corpus_text())
    other = write_random_checkpoint(tmp_path / "other.safetensors", text=corpus_text())
    out = io.StringIO()
    console = make_console(out, color=False)
    session = Session(load(model), console, settings=SamplingSettings(), length=20, dispatch=REGISTRY.dispatch)
    session.meter = Meter(session)
    turn_on(session, None)
    session.submit("the will")
    assert "copies: longest" in out.getvalue()
    session.submit(f"/load {other}")  # records no training text: not the one the meter measures against
    session.submit("the will")
    assert "copy meter off: this model records another training text" in out.getvalue()
    assert out.getvalue().count("copies: longest") == 1


def test_a_text_that_changes_between_the_index_s_two_readings_is_one_line(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index reads its text twice (the alphabet, then the ids); a text that grew in between overflowed the ids
    with numpy's broadcast error. Now it is the one-line 'changed while it was being indexed'."""
    import textgen_core.copyindex as copyindex

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text()[:2_000], encoding="utf-8")
    readers: list[int] = []

    class Growing(SourceReader):
        def __iter__(self):
            readers.append(1)
            yield from super().__iter__()
            if len(readers) > 1:
                yield "and then some more text than before"

    monkeypatch.setattr(copyindex, "SourceReader", Growing)
    found = training_text([], False, [corpus])
    with pytest.raises(TextgenError, match="changed while it was being indexed"):
        index_for(found.paths, found.hashes, False)
