"""Long seeds and long texts: priming and scoring in bounded memory, interruptible, and exact where promised."""

from __future__ import annotations

import math
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pexpect
import pytest
from conftest import ROOT, Terminal, make_text, run_cli, spawn_repl, terminal_env, write_random_checkpoint

from textgen_core import checkpoint, generate, scoring
from textgen_core.generate import Generator, encode_seed


@pytest.fixture
def gen(gen_checkpoint: Path) -> Generator:
    return Generator.from_checkpoint(checkpoint.load(gen_checkpoint))


def test_priming_in_chunks_gives_the_state_of_priming_in_one_piece(gen: Generator) -> None:
    text = make_text(3 * generate.SCORE_CHUNK + 17)
    ids = encode_seed(gen.model, gen.vocab, text).ids
    whole = gen.model.initial_state(1)
    logits, _ = gen.model.forward(ids, whole)  # one piece: a (T, 4H) gather, fine at this length
    gen.prime(text)
    np.testing.assert_array_equal(gen.get_state().lstm.h, whole.h)
    np.testing.assert_array_equal(gen.get_state().lstm.c, whole.c)
    # The head runs as one product per chunk: the same logits up to float rounding in the product's blocking.
    np.testing.assert_allclose(gen.get_state().logits, logits[-1:], rtol=1e-5, atol=1e-5)


def test_a_seed_longer_than_the_tail_is_fed_from_its_tail(gen: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generate, "PRIME_TAIL", 1_000)
    monkeypatch.setattr(generate, "ENCODE_PIECE", 300)  # several pieces, one straddling the tail's start
    text = "€" + make_text(5_000) + "é"
    result = gen.prime(text)
    tail = encode_seed(gen.model, gen.vocab, text[-1_001:])  # the last 1,000 known characters and the é
    assert result.text == tail.text and len(result.ids) == 1_000
    assert result.skipped == 5_000 - 1_000
    assert result.unknown == {"€": 1, "é": 1}  # counted over the whole seed, not only the tail
    state = gen.get_state()
    gen.prime(text[-1_001:])
    np.testing.assert_array_equal(gen.get_state().lstm.c, state.lstm.c)


@pytest.mark.parametrize("carry", [False, True])
def test_an_interrupted_prime_leaves_the_generator_as_it_was(gen: Generator, carry: bool) -> None:
    gen.prime("the will to power")
    before = gen.get_state()
    calls = []

    def interrupt(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gen.prime(make_text(4 * generate.SCORE_CHUNK), carry=carry, progress=interrupt)
    after = gen.get_state()
    np.testing.assert_array_equal(after.lstm.h, before.lstm.h)
    np.testing.assert_array_equal(after.lstm.c, before.lstm.c)
    np.testing.assert_array_equal(after.logits, before.logits)


def test_a_seed_of_several_megabytes_primes_within_a_small_address_space(tmp_path: Path) -> None:
    """The whole path in a subprocess under a 1 GiB address-space limit: an (T, 4H) gather of a 6 MB seed alone
    would need 6e6 × 4H × 4 bytes (over 3 GB at H = 32 ... and 60 GB at the bundled size)."""
    ckpt = write_random_checkpoint(tmp_path / "m.safetensors", hidden=32, layers=2)
    seed = tmp_path / "seed.txt"
    seed.write_text(make_text(6_000_000), encoding="utf-8")
    code = (
        "import sys; from pathlib import Path; from textgen_core import checkpoint; "
        "from textgen_core.generate import Generator, PRIME_TAIL; "
        "g = Generator.from_checkpoint(checkpoint.load(sys.argv[1])); text = Path(sys.argv[2]).read_text(); "
        "r = g.prime(text); s = g.get_state().lstm.c.copy(); g.prime(text[-PRIME_TAIL:]); "
        "assert (g.get_state().lstm.c == s).all(); print(len(r.ids), r.skipped)"
    )
    limit = 1 << 30
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ckpt), str(seed)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1"},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)),
    )
    assert proc.returncode == 0, proc.stderr
    fed, skipped = map(int, proc.stdout.split())
    assert fed == generate.PRIME_TAIL and fed + skipped == 6_000_000


# ---- scoring in parallel streams ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(trained_checkpoint: Path) -> checkpoint.Checkpoint:
    return checkpoint.load(trained_checkpoint)


def _net(ckpt: checkpoint.Checkpoint):
    from textgen_core.inference import NumpyLSTM

    return NumpyLSTM.from_checkpoint(ckpt)


#: The tolerance the docs state for parallel against exact scoring, in bits per character.
TOLERANCE = 0.002


def test_parallel_scoring_equals_exact_within_the_stated_tolerance(trained: checkpoint.Checkpoint) -> None:
    text = make_text(40_000, seed=11)  # unseen text in the training text's style
    net = _net(trained)
    exact = scoring.score(net, trained.vocab, text, exact=True)
    fast = scoring.score(net, trained.vocab, text)
    assert fast.chars == exact.chars == 40_000
    assert fast.text == exact.text
    assert abs(fast.bpc - exact.bpc) <= TOLERANCE
    # Most characters are exact to float rounding: only each part's first characters after its burn-in can differ.
    assert np.mean(np.isclose(fast.probs, exact.probs, rtol=1e-4, atol=1e-6)) > 0.99
    # The model learned something (well under a uniform guess): the comparison is between real predictions.
    assert exact.bpc < math.log2(len(trained.vocab)) - 1


@pytest.fixture(scope="module")
def bundled() -> checkpoint.Checkpoint:
    """The bundled model: its memory reaches much further back than the small trained model's, so a part boundary
    costs it a few bits, which is what the rule for short texts has to contain."""
    return checkpoint.load(None)


@pytest.mark.parametrize("chars", [4_000, 9_000])
def test_shorter_texts_run_fewer_streams_and_stay_within_the_tolerance(
    bundled: checkpoint.Checkpoint, chars: int
) -> None:
    """A short text cut into many parts would carry one approximate start per part over few characters; the
    number of streams shrinks with the length (`score_streams`) so that the tolerance holds for it too."""
    net = _net(bundled)
    text = make_text(chars, seed=14)
    streams = scoring.score_streams(chars)
    assert 2 <= streams < scoring.SCORE_STREAMS
    exact = scoring.score(net, bundled.vocab, text, bundled.meta.lowercase, exact=True)
    fast = scoring.score(net, bundled.vocab, text, bundled.meta.lowercase)
    assert abs(fast.bpc - exact.bpc) <= TOLERANCE
    assert not np.allclose(fast.probs, exact.probs, rtol=1e-4, atol=1e-6)  # it did run in parallel parts


def test_the_number_of_streams_grows_with_the_text_and_parts_stay_longer_than_the_burn_in() -> None:
    counts = [scoring.score_streams(n) for n in range(0, 300_000, 97)]
    assert counts == sorted(counts)
    assert counts[0] == 1 and counts[-1] == scoring.SCORE_STREAMS
    assert scoring.score_streams(2_000) == 1  # a text this short is scored exactly
    for n, s in zip(range(0, 300_000, 97), counts, strict=True):
        if s > 1:
            assert n // s >= 4 * scoring.SCORE_BURN_IN


def test_parallel_streams_are_exact_where_every_burn_in_reaches_the_start(trained: checkpoint.Checkpoint) -> None:
    """With a burn-in as long as the text every stream starts at the text's start, so each part is scored as the
    sequential pass scores it (to float rounding between batched and single-stream products); without one, the
    parts' first characters are scored from a zero state and differ."""
    net = _net(trained)
    enc, inputs = scoring._score_inputs(net, trained.vocab, make_text(6_000, seed=12), False)
    exact = scoring._score_sequential(net, inputs, enc.ids, None)
    whole = scoring._score_parallel(net, inputs, enc.ids, 3, len(inputs), None)
    np.testing.assert_allclose(whole, exact, rtol=1e-4, atol=1e-6)
    cold = scoring._score_parallel(net, inputs, enc.ids, 3, 0, None)
    assert not np.allclose(cold, exact, rtol=1e-4, atol=1e-6)


def test_scoring_reports_progress_up_to_the_whole_text(trained: checkpoint.Checkpoint) -> None:
    text = make_text(20_000, seed=13)
    for exact in (False, True):
        seen: list[tuple[int, int]] = []
        scoring.score(
            _net(trained), trained.vocab, text, exact=exact, progress=lambda d, t, seen=seen: seen.append((d, t))
        )
        assert seen[-1] == (20_000, 20_000)
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)


# ---- the REPL and `textgen sample` with a long seed ----------------------------------------------------------------


def test_ctrl_c_while_a_pasted_seed_is_fed_returns_to_a_working_prompt(tmp_path: Path) -> None:
    """A 200,000-character paste into the real REPL: the toolbar says how far priming is, Ctrl-C stops it with one
    line, and the session goes on from its previous state (empty Enter has nothing to continue; a seed generates).
    The model is big enough that feeding the seed's tail takes seconds, so the Ctrl-C lands during priming."""
    ckpt = write_random_checkpoint(tmp_path / "slow.safetensors", hidden=512, layers=2)
    term = Terminal(spawn_repl(ckpt, tmp_path, length=30))
    try:
        term.wait_for("model slow")  # the toolbar: the prompt is up
        seed = make_text(200_000, seed=5)
        term.child.send("\x1b[200~" + seed + "\x1b[201~")
        term.child.send("\r")
        # (Generous timeouts: a 200,000-character paste is slow to echo on a loaded machine, not an error.)
        term.wait_for(f"priming 2,048/{generate.PRIME_TAIL:,} characters · Ctrl-C stops", timeout=120)
        term.child.sendcontrol("c")
        term.wait_for("stopped priming (Ctrl-C); the model's state is as before this seed", timeout=30)
        term.wait_for("model slow", timeout=30)  # the prompt and its toolbar are back
        assert "Traceback" not in term.seen
        term.command("", "type some text for the model to continue")  # nothing was primed: nothing to continue
        term.command("the will", "bits/char")  # a normal seed generates
        term.command("/save " + str(tmp_path / "s.txt"), "saved 1 run(s)")  # the interrupted seed left no turn
        term.child.send("/quit\r")
        term.child.expect(pexpect.EOF, timeout=10)
    finally:
        term.child.close(force=True)
    assert term.child.exitstatus == 0


def test_sample_shows_priming_progress_on_a_terminal_and_ctrl_c_exits_130(tmp_path: Path) -> None:
    ckpt = write_random_checkpoint(tmp_path / "slow.safetensors", hidden=512, layers=2)
    seed = tmp_path / "chapter.txt"
    seed.write_text(make_text(300_000, seed=6), encoding="utf-8")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "repl.cli", "sample", "-c", str(ckpt), "--prompt-file", str(seed)],
        env=terminal_env(tmp_path),
        cwd=str(ROOT),
        encoding="utf-8",
        dimensions=(24, 120),
    )
    term = Terminal(child)
    try:
        term.wait_for("priming the seed", timeout=60)
        term.wait_for(f"/{generate.PRIME_TAIL:,} characters · Ctrl-C stops", timeout=10)
        child.sendcontrol("c")
        term.wait_for("textgen: interrupted while priming the seed; nothing was generated", timeout=10)
        child.expect(pexpect.EOF, timeout=10)
    finally:
        child.close(force=True)
    assert child.exitstatus == 130
    assert "Traceback" not in term.seen


def test_sample_with_a_long_prompt_file_into_a_pipe_shows_no_bar(tmp_path: Path) -> None:
    ckpt = write_random_checkpoint(tmp_path / "m.safetensors")
    seed = tmp_path / "chapter.txt"
    seed.write_text(make_text(100_000, seed=7), encoding="utf-8")
    proc = run_cli("sample", "-c", str(ckpt), "--prompt-file", str(seed), "--len", "20", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no bar, no escape codes: stderr is not a terminal
    assert proc.stdout.startswith(seed.read_text(encoding="utf-8")) and len(proc.stdout) == 100_000 + 20 + 1


def test_score_refuses_a_text_over_its_limit_with_one_line(repl_session) -> None:
    from repl.features.scoring import MAX_SCORE_CHARS

    session, out = repl_session()
    over = ("the will to power " * (MAX_SCORE_CHARS // 10))[: MAX_SCORE_CHARS + 1]
    assert not over[-2:].isspace()  # the command line's argument is stripped: keep the lengths exact
    session.submit("/score " + over)
    assert out.getvalue().strip().splitlines() == [
        f"/score: at most {MAX_SCORE_CHARS:,} characters (this text has {MAX_SCORE_CHARS + 1:,}); for a longer text,"
        " save it to a file and run: textgen eval FILE"
    ]
    session.submit("/score " + over[:-1])  # at the limit: scored
    assert f"bits/char over {MAX_SCORE_CHARS:,} characters" in out.getvalue()
