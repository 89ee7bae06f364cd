"""The copy meter's numbers (docs/record/copies.md): the index's build time and size by corpus size, the cost per
streamed character, the chance baseline behind the 32-character threshold, and how much the bundled model copies.

    python bench/bench_copies.py index 1 100 1000     # build/open an index of a 1 MB, 100 MB and 1 GB corpus
    python bench/bench_copies.py stream               # µs per character of the meter, against a model step
    python bench/bench_copies.py baseline             # chance matches: text the model never saw
    python bench/bench_copies.py table                # the bundled model at 0.2 0.5 1.0 1.2 and beam 4
    python bench/bench_copies.py repl                 # the REPL streaming with the meter on against off
    python bench/bench_copies.py session              # the same in one process, without the terminal

The big corpora are made in a temporary folder outside the repository (`--tmp`, default /tmp) from the shared
corpora, Nietzsche then tiny-shakespeare, each copy with its paragraphs in a new random order (so the text is not
one period repeated, which no real corpus is), and deleted afterwards. Each size is built in a fresh process, so
its peak memory (`ru_maxrss`) is its own.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CORPORA = ROOT.parent / "shared" / "corpora"
NIETZSCHE = CORPORA / "nietzsche.txt"
SHAKESPEARE = CORPORA / "tinyshakespeare.txt"
TEMPERATURES = (0.2, 0.5, 1.0, 1.2)


def make_corpus(path: Path, megabytes: float, seed: int = 0) -> None:
    """`megabytes` of text from the shared corpora, paragraphs reordered in each copy (see the module doc)."""
    paragraphs = [p + "\n\n" for f in (NIETZSCHE, SHAKESPEARE) for p in f.read_text(encoding="utf-8").split("\n\n")]
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            rng.shuffle(paragraphs)
            for p in paragraphs:
                f.write(p)
                written += len(p.encode("utf-8"))
                if written >= target:
                    break


def build_one(corpus: Path, folder: Path) -> dict:
    """Build, then open (every check, the checksum included) the index of `corpus`; time and size each step."""
    from textgen_core.copies import file_sha256
    from textgen_core.copyindex import index_for

    began = time.perf_counter()
    sha = file_sha256(corpus)
    hashed = time.perf_counter() - began
    built = index_for([corpus], [sha], False, folder=folder)
    began = time.perf_counter()
    opened = index_for([corpus], [sha], False, folder=folder)
    reopened = time.perf_counter() - began
    assert opened.built is None and opened.index.path is not None
    return {
        "corpus_bytes": corpus.stat().st_size,
        "chars": opened.index.chars,
        "hash_s": hashed,
        "build_s": built.built,
        "index_bytes": opened.index.path.stat().st_size,
        "open_s": reopened,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def index_sizes(sizes: list[float], tmp: Path) -> None:
    for mb in sizes:
        folder = Path(tempfile.mkdtemp(prefix="textgen-copies-", dir=tmp))
        try:
            corpus = folder / f"corpus-{mb:g}MB.txt"
            make_corpus(corpus, mb)
            proc = subprocess.run(
                [sys.executable, __file__, "build-one", str(corpus), str(folder / "index")],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                print(f"{mb:g} MB: failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(proc.stdout)
            print(
                f"{mb:>6g} MB corpus ({r['chars']:,} chars): build {r['build_s']:.1f} s, index "
                f"{r['index_bytes'] / 1e6:,.0f} MB ({r['index_bytes'] / r['chars']:.1f} bytes/char), open "
                f"{r['open_s']:.2f} s (checksum included), sha256 of the corpus {r['hash_s']:.2f} s, "
                f"peak memory {r['peak_rss_mb']:,.0f} MB"
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def stream(tmp: Path, sizes: list[float], rounds: int = 3) -> None:
    """µs per character of `CopyTracker.feed` on text the bundled model writes, against the time of the model's own
    step (as the REPL streams it: with its top 5), on the Nietzsche corpus and on bigger corpora (the search is
    O(log n)). A model step is the best of `rounds` (the machine is shared: the best run is the least disturbed); the
    meter's time is given for the first pass over a text, when the index remembers no interval yet, and the best
    of the passes after (its remembered intervals warm, as in a REPL session)."""
    from textgen_core.checkpoint import bundled_path, load
    from textgen_core.copies import CopyTracker, file_sha256
    from textgen_core.copyindex import index_for
    from textgen_core.generate import Generator
    from textgen_core.sampling import SamplingSettings

    gen = Generator.from_checkpoint(load(bundled_path()))
    texts: dict[str, str] = {}
    for temperature in (0.5, 1.0):
        best = float("inf")
        for seed in range(rounds):
            gen.settings = SamplingSettings(temperature)
            gen.set_seed(seed)
            gen.prime("The ")
            began = time.perf_counter()
            text = "".join(t.char for t in gen.stream(2_000, alternatives=5))
            best = min(best, (time.perf_counter() - began) / 2_000)
            texts.setdefault(f"T={temperature:g}", text)
        print(f"model step (bundled, top 5 kept, T={temperature:g}): {best * 1e6:,.0f} µs/char (best of {rounds})")
    texts["copied"] = NIETZSCHE.read_text(encoding="utf-8")[100_000:102_000]
    folder = Path(tempfile.mkdtemp(prefix="textgen-copies-", dir=tmp))
    try:
        corpora = [("nietzsche.txt", NIETZSCHE)]
        for mb in sizes:
            path = folder / f"corpus-{mb:g}MB.txt"
            make_corpus(path, mb)
            corpora.append((f"{mb:g} MB corpus", path))
        for name, path in corpora:
            index = index_for([path], [file_sha256(path)], False, folder=folder / "index").index
            for label, text in texts.items():
                times, longest = [], 0
                for _ in range(rounds):
                    tracker = CopyTracker(index)
                    began = time.perf_counter()
                    longest = max(tracker.feed(ch) for ch in text)
                    times.append((time.perf_counter() - began) / len(text))
                print(
                    f"{name:>16}: {label:>6} text, {times[0] * 1e6:5.1f} µs/char the first time (the index's "
                    f"remembered intervals empty), {min(times) * 1e6:5.1f} after (longest match {longest})"
                )
            del index
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def baseline(tmp: Path) -> None:
    """How long chance matches get: text nobody trained on, against the first 90% of nietzsche.txt (the bundled
    model's training split): its own last 10% (same author, same book) and tiny-shakespeare."""
    from textgen_core.copies import file_sha256, report
    from textgen_core.copyindex import index_for
    from textgen_core.corpus import val_start

    text = NIETZSCHE.read_text(encoding="utf-8")
    cut = val_start(len(text), 0.1)
    folder = Path(tempfile.mkdtemp(prefix="textgen-copies-", dir=tmp))
    try:
        train = folder / "train.txt"
        train.write_text(text[:cut], encoding="utf-8")
        index = index_for([train], [file_sha256(train)], False, folder=folder).index
        for name, other in (("nietzsche val", text[cut:]), ("tinyshakespeare", SHAKESPEARE.read_text("utf-8"))):
            for n in (24, 32, 40):
                r = report(index, other, n)
                print(
                    f"{name:>16} vs nietzsche train: {len(other):,} chars, longest {r.longest}, {r.share:.3%} in "
                    f"spans of {n}+ ({len(r.spans)} spans)"
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def table(seeds: int, length: int, no_repeat: int) -> None:
    """The bundled model continuing an empty prompt with seeds 1…`seeds`, `length` characters each, at each
    temperature (one batched pass a seed) and with beam 4 (with and without norepeat): the share copied (spans of
    32+), the longest copy, the loop flag, and bits/char."""
    import numpy as np

    from textgen_core.beam import BeamSearch
    from textgen_core.checkpoint import bundled_path, load
    from textgen_core.copies import file_sha256, report
    from textgen_core.copyindex import index_for
    from textgen_core.generate import Generator, sample_many
    from textgen_core.repeats import find_loop
    from textgen_core.sampling import SamplingSettings

    ckpt = load(bundled_path())
    index = index_for([NIETZSCHE], [file_sha256(NIETZSCHE)], False).index
    gen = Generator.from_checkpoint(ckpt)
    rows: dict[str, list[tuple[str, float]]] = {}
    prompts = ["", "The ", "What is ", "PREFACE\n\n\n", "In "][:seeds]
    for seed, prompt in enumerate(prompts, 1):
        settings = [SamplingSettings(t) for t in TEMPERATURES]
        blocks = [[] for _ in settings]
        for step in sample_many(gen.model, ckpt.vocab, prompt, settings, length, np.random.default_rng(seed)):
            for block, token in zip(blocks, step, strict=True):
                block.append(token)
        for t, block in zip(TEMPERATURES, blocks, strict=True):
            rows.setdefault(f"T={t:g}", []).append(("".join(x.char for x in block), _bpc(block)))
        for label, nr in (("beam 4", None), (f"beam 4 norepeat {no_repeat}", no_repeat)):
            gen.prime(prompt)
            result = BeamSearch.from_generator(gen, 4, length, no_repeat=nr).run()
            rows.setdefault(label, []).append((result.text, result.bpc))
        print(f"prompt {seed} of {len(prompts)} done", file=sys.stderr)
    print(
        f"| decoding | copied (spans of 32+) | longest copy | loops flagged | bits/char |  ({len(prompts)} prompts × "
        f"{length} chars)"
    )
    for label, runs in rows.items():
        found = [report(index, text, 32) for text, _ in runs]
        copied = sum(r.copied for r in found) / sum(r.chars for r in found)
        longest = max(r.longest for r in found)
        loops = sum(find_loop(text) is not None for text, _ in runs)
        bpc = sum(b for _, b in runs) / len(runs)
        print(f"| {label} | {copied:.1%} | {longest} | {loops} of {len(runs)} | {bpc:.3f} |")


def _bpc(tokens: list) -> float:
    import math

    return -sum(math.log2(t.prob) for t in tokens) / len(tokens)


def repl_streaming(runs: int, length: int) -> None:
    """Enter to the stats line of a `length`-character run of the bundled model in the real REPL (a pseudo-terminal),
    the meter on (against nietzsche.txt) and off, alternating; medians and the ratio."""
    import os
    import statistics

    import pexpect

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import Terminal

    state = Path(tempfile.mkdtemp(prefix="textgen-copies-"))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color", XDG_STATE_HOME=str(state))
    times: dict[bool, list[float]] = {True: [], False: []}
    try:
        for i in range(2 * runs):
            on = (i % 4) in (1, 2)  # ABBA: neither goes first every time
            copies = ["--corpus", str(NIETZSCHE)] if on else []
            args = ["-m", "repl.cli", "repl", "--len", str(length), "--seed", "1", "--temp", "1", *copies]
            child = pexpect.spawn(sys.executable, args, env=env, cwd=str(ROOT), encoding="utf-8", dimensions=(50, 160))
            term = Terminal(child)
            term.wait_for("›", timeout=60)
            began = time.perf_counter()
            child.send("The \r")
            term.wait_for("chars/s", timeout=300)
            times[on].append(time.perf_counter() - began)
            child.close(force=True)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(
        f"bundled model, {length} characters at T=1 in the REPL (median of {runs}): meter off {off:.2f} s "
        f"({length / off:,.0f} chars/s), on {on:.2f} s ({length / on:,.0f} chars/s): {on / off - 1:+.1%}"
    )


def session_streaming(runs: int, length: int) -> None:
    """The same in one process: a REPL session (`repl.session.Session`, its output into memory) writing `length`
    characters with the meter on and off, alternating, after one run each to warm up; medians and the ratio. Without
    the pseudo-terminal and the process start, this isolates what the meter adds to a run."""
    import io
    import os
    import statistics

    os.environ["TERM"] = "xterm-256color"
    from repl.commands import REGISTRY
    from repl.features.copies import Meter, turn_on
    from repl.render import make_console
    from repl.session import Session
    from textgen_core.checkpoint import bundled_path, load
    from textgen_core.sampling import SamplingSettings

    ckpt = load(bundled_path())
    sessions = {}
    for on in (False, True):
        session = Session(ckpt, make_console(io.StringIO(), color=True), settings=SamplingSettings(1.0),
                          length=length, seed=1, dispatch=REGISTRY.dispatch)  # fmt: skip
        session.meter = Meter(session)
        if on:
            turn_on(session, [str(NIETZSCHE)])
        session.submit("The ")
        sessions[on] = session
    # One model for both: two copies of the same weights, placed differently in memory, ran up to 30% apart here
    # with no meter at all, more than the meter costs.
    sessions[True].loaded = sessions[False].loaded
    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(runs):
        for on in (False, True) if i % 2 == 0 else (True, False):  # ABBA: neither goes first every time
            began = time.perf_counter()
            sessions[on].submit("The ")
            times[on].append(time.perf_counter() - began)
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(
        f"bundled model, {length} characters at T=1 in a session (median of {runs}): meter off {off:.2f} s, on "
        f"{on:.2f} s: {on / off - 1:+.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("index", "stream", "baseline", "table", "repl", "session", "build-one"))
    parser.add_argument("args", nargs="*")
    parser.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()), help="where big corpora are made")
    parser.add_argument("--seeds", type=int, default=5, help="table: prompts (at most 5)")
    parser.add_argument("--len", type=int, default=2_000, help="table: characters a run")
    parser.add_argument("--no-repeat", type=int, default=16, help="table: the beam's norepeat length")
    parser.add_argument("--runs", type=int, default=5, help="repl: runs each way")
    args = parser.parse_args()
    if args.what == "build-one":
        print(json.dumps(build_one(Path(args.args[0]), Path(args.args[1]))))
    elif args.what == "index":
        index_sizes([float(a) for a in args.args or ["1", "100", "1000"]], args.tmp)
    elif args.what == "stream":
        stream(args.tmp, [float(a) for a in args.args or ["100"]])
    elif args.what == "baseline":
        baseline(args.tmp)
    elif args.what == "repl":
        repl_streaming(args.runs, args.len)
    elif args.what == "session":
        session_streaming(args.runs, args.len)
    else:
        table(args.seeds, args.len, args.no_repeat)


if __name__ == "__main__":
    main()
