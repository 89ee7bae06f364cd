"""A seeded, bounded fuzz of the installed `textgen` command: what it survives, counted.

Four kinds of input, each case drawn from its own seeded generator (`fuzz_inputs`), so a case is the same whatever
runs beside it:

- **checkpoints**: a small checkpoint (LSTM, GRU, float16) damaged one way each (header JSON, header length, a
  tensor's dtype, shape or offsets, the metadata, the weights' values, a cut, blind bytes), opened by one of
  `info`, `info --json`, `sample`, `sample --beam`, `eval`, `versus`, `cells`, `repl` (and `train --init`);
- **Keras files**: `.keras` and `.h5` models made by Keras, damaged blindly or through zip and h5py (a config's
  JSON, an attribute, a dataset's shape, dtype or values, a member or dataset removed), given to `import`, `info`,
  `sample` and `eval` with their vocabulary;
- **REPL lines**: sessions of `--lines-per-session` lines typed into the real REPL in a pseudo-terminal: commands
  with random arguments (huge, negative, NaN, unicode, long), seeds, control and escape sequences, and commands
  aimed at special paths (a null device, named pipes with and without a reader or writer, symbolic links, a socket,
  a folder, the session's own /dev/stdout);
- **corpora**: random bytes and troubled text, each trained on (`train`), scored (`eval`) and fed as a seed
  (`sample --prompt-file`).

Counted: tracebacks, crash signals, hangs (no answer within the time limit, even after Ctrl-C), exit statuses
other than 0 and 2, errors (status 2) that are not one line, and files changed outside the work folder. Those are
watched two ways: every textgen process runs with an audit hook (a ``sitecustomize`` on its PYTHONPATH) that logs
each open for writing, rename, removal, mkdir, link and chmod it makes, and each logged path must lie in the work
folder; and /dev and /etc are listed (names, types, sizes, times) before and after. A session that needed Ctrl-C to
get its prompt back (a long run at a large /len, a read from a pipe nobody writes, an unended paste) is counted
too, as "needed Ctrl-C", not as a hang.

Every process gets HOME, XDG_* and TMPDIR inside the work folder and runs there. Failing inputs are kept in
WORK/failures with the command that failed. The record is printed and written to WORK/record.json.

    .venv/bin/python bench/fuzz.py --seed 1 --checkpoints 1000 --keras 500 --repl-lines 10000 --corpora 200
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import fuzz_inputs as inputs  # noqa: E402

TEXTGEN = str(Path(sys.executable).with_name("textgen"))
TINY = [
    "--hidden-size",
    "16",
    "--embed-dim",
    "8",
    "--num-layers",
    "1",
    "--batch-size",
    "4",
    "--seq-len",
    "16",
    "--eval-every",
    "1",
    "--sample-len",
    "5",
    "--device",
    "cpu",
]
#: Seconds a command may run before it counts as a hang (a training run included).
TIMEOUT = 120
#: Seconds a REPL line may take before Ctrl-C is sent, and before the session counts as hung after it.
LINE_TIMEOUT, RECOVER_TIMEOUT = 60, 30
ANSI = re.compile(r"\x1b\[[0-9;?<=>]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")

#: Every textgen process logs what it writes (the audit hook is Python's; see the module's doc).
AUDIT = r"""
import os, sys
_dir = os.environ.get("TEXTGEN_FUZZ_AUDIT")
if _dir:
    _fd = os.open(os.path.join(_dir, f"{os.getpid()}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    _W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    _EVENTS = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.chmod", "os.chown",
               "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile"}
    def _hook(event, args):
        if event == "open":
            path, flags = args[0], args[2]
            if isinstance(path, int) or path is None or not (flags or 0) & _W:
                return
            paths = [path]
        elif event in _EVENTS:
            paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
        else:
            return
        for p in paths:
            try:
                p = os.path.abspath(os.fsdecode(p))
            except Exception:
                p = repr(p)
            where = ""
            if not p.startswith(_dir.rsplit(os.sep, 1)[0] + os.sep):  # outside: say who did it
                import traceback
                frames = [f for f in traceback.extract_stack()[:-1] if "importlib" not in f.filename]
                where = " <- ".join(f"{os.path.basename(f.filename)}:{f.lineno}" for f in reversed(frames[-4:]))
            os.write(_fd, f"{event}\t{p}\t{where}\n".encode("utf-8", "backslashreplace"))
    sys.addaudithook(_hook)
"""


@dataclass
class Tally:
    """What one kind of input did: cases tried, runs, exit statuses, and every failure by its kind."""

    tried: int = 0
    runs: int = 0
    exits: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)
    recovered: int = 0
    #: Cases by what was done to them (a checkpoint's damage, a Keras file's format, a corpus's kind, a line's).
    kinds: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, what: str, detail: dict) -> None:
        """Count a failure; its detail is kept (the first 200 of them), whatever was kept of recovered lines."""
        self.failures[what] += 1
        if sum("failure" in e for e in self.examples) < 200:
            self.examples.append({"failure": what, **detail})

    def to_dict(self) -> dict:
        keys = ("tracebacks", "crash signals", "hangs", "other exit statuses", "errors not one line")
        return {
            "tried": self.tried,
            "runs": self.runs,
            "exit_statuses": dict(sorted(self.exits.items())),
            **{k: self.failures[k] for k in keys},
            "needed Ctrl-C": self.recovered,
            "cases by kind": dict(sorted(self.kinds.items())),
            "examples": self.examples,
        }


class Work:
    """The work folder: inputs, special files, the environment every process gets, and the audit logs."""

    def __init__(self, folder: Path, seed: int):
        if folder.exists():
            shutil.rmtree(folder)
        self.root = folder.resolve()
        self.seed = seed
        for sub in (
            "home",
            "cwd",
            "cwd/sub",
            "tmp",
            "cases",
            "runs",
            "out",
            "audit",
            "inject",
            "special",
            "failures",
            "state",
            "cache",
            "config",
        ):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "inject" / "sitecustomize.py").write_text(AUDIT)
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.root / "home"),
            "XDG_STATE_HOME": str(self.root / "state"),
            "XDG_CACHE_HOME": str(self.root / "cache"),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "TMPDIR": str(self.root / "tmp"),
            "TORCH_HOME": str(self.root / "cache" / "torch"),
            "PYTHONPATH": str(self.root / "inject"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "TEXTGEN_FUZZ_AUDIT": str(self.root / "audit"),
            "COLUMNS": "120",
            "LANG": "C.UTF-8",
        }
        self.cwd = self.root / "cwd"
        self.text = self.root / "text.txt"
        self.text.write_text(_corpus_text(3000), encoding="utf-8")
        self.bases = [_base_checkpoint(self.root / f"base-{c}.safetensors", c) for c in ("lstm", "gru", "f16")]
        self.threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def special_paths(self) -> list[str]:
        """Paths for the REPL's path commands: special files of the work folder's own, links, the session's own
        standard output and input, and plain names (relative to the work folder the session runs in)."""
        s = self.root / "special"
        if not (s / "null").exists():
            try:
                os.mknod(s / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
            except PermissionError:
                (s / "null").write_text("")  # not root: a plain file stands in
            for name in ("pipe-read", "pipe-write", "pipe-none"):
                os.mkfifo(s / name)
            (s / "file.txt").write_text("a file")
            (s / "dir").mkdir()
            (s / "link-null").symlink_to(s / "null")
            (s / "link-file").symlink_to(s / "file.txt")
            (s / "link-pipe").symlink_to(s / "pipe-read")
            (s / "dangling").symlink_to(s / "made-by-link.txt")
            (s / "loop-a").symlink_to(s / "loop-b")
            (s / "loop-b").symlink_to(s / "loop-a")
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.bind(str(s / "sock"))
            self._pipe_thread(s / "pipe-read", read=True)
            self._pipe_thread(s / "pipe-write", read=False)
        specials = [str(p) for p in sorted(s.iterdir())]
        plain = [
            "saved.txt",
            "saved.jsonl",
            "sub/saved.txt",
            "missing/saved.txt",
            ".",
            "..",
            "../up.txt",
            "sub",
            "-",
            "/dev/stdout",
            "/dev/stdin",
            "/dev/fd/1",
            "/dev/fd/9",
            "~/home.txt",
            "~nosuchuser/x",
            "x" * 300,
            "a\x00b",
            str(self.bases[0]),
            str(self.text),
            str(self.root / "keras"),
        ]
        return specials + plain

    def _pipe_thread(self, path: Path, *, read: bool) -> None:
        """A reader that drains `path` for ever, or a writer that feeds it text for ever (each open in turn)."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    with open(path, "rb" if read else "wb") as f:
                        if read:
                            while f.read(65536):
                                pass
                        else:
                            f.write(_corpus_text(500).encode())
                except OSError:
                    time.sleep(0.1)

        t = threading.Thread(target=loop, daemon=True)
        t.start()
        self.threads.append(t)

    def run(self, argv: list[str], stdin: bytes | None = None, timeout: float = TIMEOUT) -> dict:
        """One textgen command; its status, output and whether it ran out of time."""
        proc = subprocess.Popen(
            [TEXTGEN, *argv],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
            return {"status": proc.returncode, "out": out, "err": err, "hung": False}
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            return {"status": None, "out": out, "err": err, "hung": True}


def _corpus_text(n: int) -> str:
    rng = random.Random(n)
    words = ["the", "will", "to", "power", "is", "a", "long", "question", "of", "truth", "and", "noble", "spirit"]
    return "".join(rng.choice(words) + rng.choice("  ,\n.") for _ in range(n // 4))[:n]


def _base_checkpoint(path: Path, cell: str) -> Path:
    import numpy as np

    from textgen_core.checkpoint import CheckpointMeta, save
    from textgen_core.config import ModelConfig
    from textgen_core.vocab import Vocabulary

    vocab = Vocabulary.from_text(_corpus_text(3000) + "ABCXYZ")
    config = ModelConfig(
        vocab_size=len(vocab),
        embed_dim=8,
        hidden_size=16,
        num_layers=2,
        dropout=0.0,
        cell="gru" if cell == "gru" else "lstm",
    )
    rng = np.random.default_rng(0)
    tensors = {k: (rng.standard_normal(s) * 0.5).astype(np.float32) for k, s in config.tensor_shapes().items()}
    save(path, tensors, CheckpointMeta(config=config, vocab=vocab, step=10, val_bpc=3.0))
    if cell == "f16":  # stored float16, as the bundled model is
        from textgen_core.checkpoint import write_safetensors

        metadata = {"textgen": CheckpointMeta(config=config, vocab=vocab, step=10).to_json()}
        write_safetensors(path, {k: v.astype(np.float16) for k, v in tensors.items()}, metadata)
    return path


def judge(tally: Tally, result: dict, detail: dict, *, keep: list[Path] = ()) -> None:
    """Count one run's outcome, and keep the inputs of a failure."""
    out = result["out"] + result["err"]
    status = result["status"]
    found = []
    if result["hung"]:
        found.append("hangs")
    elif status < 0:
        found.append("crash signals")
    elif status not in (0, 2):
        found.append("other exit statuses")
    if b"Traceback" in out:
        found.append("tracebacks")
    if status == 2 and len(result["err"].strip().splitlines()) != 1:
        found.append("errors not one line")
    with tally.lock:
        tally.runs += 1
        tally.exits[str(status)] += 1
        for what in found:
            tally.fail(what, {**detail, "status": status, "stderr": result["err"][-600:].decode("utf-8", "replace")})
    if found:
        folder = Path(detail.get("work", ".")) / "failures"
        for p in keep:
            if p.exists() and p.is_file():
                shutil.copy(p, folder / p.name)


# ---- the four kinds ------------------------------------------------------------------------------------------------


def checkpoint_case(work: Work, tally: Tally, i: int) -> None:
    rng = random.Random(f"{work.seed}:checkpoint:{i}")
    base = rng.choice(work.bases)
    kind, data = inputs.mutate_checkpoint(base.read_bytes(), rng)
    path = work.root / "cases" / f"ckpt-{i}.safetensors"
    path.write_bytes(data)
    text = str(work.text)
    commands = [
        ["info", "-c", str(path)],
        ["info", "-c", str(path), "--json"],
        ["sample", "-c", str(path), "--len", "8", "--seed", "1", "--temp", "0.5", "1.5"],
        ["sample", "-c", str(path), "--beam", "3", "--len", "5"],
        ["eval", "-c", str(path), text],
        ["versus", "-c", str(work.bases[0]), "--against", str(path), text],
        ["cells", "-c", str(path), text, "--feature", "quote"],
        ["repl", "-c", str(path), "--len", "5"],
    ]
    argv = commands[i % len(commands)]
    if i % 40 == 39:
        argv = [
            "train",
            text,
            "--out",
            str(work.root / "runs" / f"init-{i}"),
            "--init",
            str(path),
            "--steps",
            "2",
            *TINY[8:],
        ]
    result = work.run(argv, stdin=b"the \n/quit\n" if argv[0] == "repl" else None)
    judge(tally, result, {"input": f"checkpoint {i} ({kind})", "argv": argv, "work": str(work.root)}, keep=[path])
    path.unlink(missing_ok=True)
    with tally.lock:
        tally.tried += 1
        tally.kinds[kind] += 1


def make_keras_bases(work: Work) -> tuple[list[Path], Path]:
    """Keras models made by Keras (torch backend), saved as .keras and .h5: the book's one-hot LSTM, an Embedding
    into two LSTMs, a GRU and a SimpleRNN."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    import numpy as np

    folder = work.root / "keras"
    folder.mkdir(exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text(_corpus_text(2000).lower(), encoding="utf-8")
    v = len(set(corpus.read_text(encoding="utf-8")))
    L = keras.layers
    models = {
        "onehot": [keras.Input((10, v)), L.LSTM(8), L.Dense(v, activation="softmax")],
        "embedded": [
            keras.Input((10,)),
            L.Embedding(v, 4),
            L.LSTM(8, return_sequences=True),
            L.LSTM(8),
            L.Dense(v),
            L.Activation("softmax"),
        ],
        "gru": [keras.Input((10, v)), L.GRU(8), L.Dense(v, activation="softmax")],
        "rnn": [keras.Input((10, v)), L.SimpleRNN(8), L.Dense(v, activation="softmax")],
    }
    bases = []
    rng = np.random.default_rng(0)
    for name, layers in models.items():
        model = keras.Sequential(layers)
        model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
        for suffix in (".keras", ".h5"):
            model.save(folder / f"{name}{suffix}")
            bases.append(folder / f"{name}{suffix}")
    return bases, corpus


def keras_case(work: Work, tally: Tally, i: int, bases: list[Path], corpus: Path) -> None:
    rng = random.Random(f"{work.seed}:keras:{i}")
    base = rng.choice(bases)
    path = work.root / "cases" / f"keras-{i}{base.suffix}"
    what = inputs.mutate_keras(base, path, rng)
    vocab = ["--vocab-from", str(corpus), "--lowercase"]
    commands = [
        ["import", str(path), *vocab, "--out", str(work.root / "out" / f"k{i}.safetensors"), "--force"],
        ["info", "-c", str(path), *vocab],
        ["sample", "-c", str(path), *vocab, "--len", "5", "--seed", "1"],
        ["eval", "-c", str(path), *vocab, str(corpus)],
    ]
    argv = commands[i % len(commands)]
    result = work.run(argv)
    judge(
        tally, result, {"input": f"keras {i} ({base.name}: {what})", "argv": argv, "work": str(work.root)}, keep=[path]
    )
    path.unlink(missing_ok=True)
    (work.root / "out" / f"k{i}.safetensors").unlink(missing_ok=True)
    with tally.lock:
        tally.tried += 1
        tally.kinds[base.suffix] += 1


def corpus_case(work: Work, tally: Tally, i: int) -> None:
    rng = random.Random(f"{work.seed}:corpus:{i}")
    kind, data = inputs.corpus_bytes(rng)
    path = work.root / "cases" / f"corpus-{i}.txt"
    path.write_bytes(data)
    encoding = rng.choice(["utf-8"] * 6 + ["latin-1", "utf-16", "ascii", "no-such-codec", "rot13", "base64"])
    runs = [
        [
            "train",
            str(path),
            "--out",
            str(work.root / "runs" / f"c{i}"),
            "--steps",
            "2",
            "--encoding",
            encoding,
            *TINY,
        ],
        ["eval", "-c", str(work.bases[i % 3]), str(path), "--encoding", encoding],
        ["sample", "-c", str(work.bases[i % 3]), "--prompt-file", str(path), "--len", "5"],
    ]
    for argv in runs:
        result = work.run(argv)
        judge(tally, result, {"input": f"corpus {i} ({kind})", "argv": argv, "work": str(work.root)}, keep=[path])
    shutil.rmtree(work.root / "runs" / f"c{i}", ignore_errors=True)
    path.unlink(missing_ok=True)
    with tally.lock:
        tally.tried += 1
        tally.kinds[kind] += 1


# ---- what changed outside the work folder --------------------------------------------------------------------------


def snapshot() -> dict[str, tuple]:
    """The entries of /dev (name, type, device, inode) and /etc (also size and time), without following links."""
    found: dict[str, tuple] = {}
    for root, timed in (("/dev", False), ("/etc", True)):
        try:
            entries = list(os.scandir(root))
        except OSError:
            continue
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            key = (stat.S_IFMT(st.st_mode), st.st_rdev, st.st_ino)
            found[e.path] = (*key, st.st_size, st.st_mtime_ns) if timed else key
    return found


#: A write-open outside the work folder that changes nothing: `subprocess` opening the null device for a child's
#: standard streams (h5py's import runs `uname -p` through `platform`).
HARMLESS = re.compile(r"open\t/dev/null\tsubprocess\.py:\d+ ")


def writes_outside(work: Work) -> tuple[list[str], Counter]:
    """Every logged write of a textgen process whose path is not in the work folder, and (apart) the harmless
    ones by who made them."""
    root = str(work.root)
    outside: list[str] = []
    harmless: Counter = Counter()
    for log in (work.root / "audit").glob("*.log"):
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            event, path, where = [*line.split("\t"), "", ""][:3]
            norm = os.path.normpath(path)
            if norm == root or norm.startswith(root + os.sep):
                continue
            if HARMLESS.match(line):
                harmless[f"{event} {path} by {where}"] += 1
            else:
                outside.append(f"{event} {path} by {where} (process {log.stem})")
    return outside, harmless


# ---- the run -------------------------------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--checkpoints", type=int, default=1000, help="mutated checkpoints (one command each)")
    p.add_argument("--keras", type=int, default=500, help="mutated Keras files (one command each)")
    p.add_argument("--repl-lines", type=int, default=10_000, help="lines typed into the REPL")
    p.add_argument("--lines-per-session", type=int, default=100)
    p.add_argument("--corpora", type=int, default=200, help="corpora (train, eval and a seed file each)")
    p.add_argument("--jobs", type=int, default=2, help="commands run at once")
    p.add_argument("--work", type=Path, help="the work folder (default: a new folder in the temporary folder)")
    args = p.parse_args()

    import tempfile

    from fuzz_repl import commands, session_case

    work = Work(args.work or Path(tempfile.mkdtemp(prefix="textgen-fuzz-")), args.seed)
    paths = work.special_paths()
    before = snapshot()
    started = time.monotonic()
    tallies = {kind: Tally() for kind in ("checkpoints", "keras", "repl lines", "corpora")}
    keras_bases: tuple[list[Path], Path] | None = make_keras_bases(work) if args.keras else None
    names = commands()
    sessions = -(-args.repl_lines // args.lines_per_session) if args.repl_lines else 0
    with ThreadPoolExecutor(args.jobs) as pool:
        jobs = [pool.submit(checkpoint_case, work, tallies["checkpoints"], i) for i in range(args.checkpoints)]
        if keras_bases is not None:
            jobs += [pool.submit(keras_case, work, tallies["keras"], i, *keras_bases) for i in range(args.keras)]
        for j in range(sessions):
            n = min(args.lines_per_session, args.repl_lines - j * args.lines_per_session)
            jobs.append(pool.submit(session_case, work, tallies["repl lines"], j, n, names, paths))
        jobs += [pool.submit(corpus_case, work, tallies["corpora"], i) for i in range(args.corpora)]
        for done, job in enumerate(jobs, 1):
            job.result()  # a failure of the fuzzer itself stops it, loudly
            if done % max(1, min(100, len(jobs) // 20)) == 0:  # every 5% (a long REPL run can be followed)
                so_far = "; ".join(
                    f"{kind} {t.tried:,} tried, {sum(t.failures.values())} failed"
                    for kind, t in tallies.items()
                    if t.tried
                )
                print(
                    f"{done}/{len(jobs)} cases, {time.monotonic() - started:.0f} s: {so_far}",
                    file=sys.stderr,
                    flush=True,
                )
    work._stop.set()
    after = snapshot()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    outside, harmless = writes_outside(work)
    record = {
        "command": " ".join(["python", "bench/fuzz.py", *sys.argv[1:]]),
        "seed": args.seed,
        "seconds": round(time.monotonic() - started),
        "kinds": {kind: t.to_dict() for kind, t in tallies.items()},
        "writes outside the work folder": outside[:50],
        "writes outside the work folder (count)": len(outside),
        "harmless opens outside the work folder": dict(harmless),
        "/dev and /etc entries changed": changed,
        "work": str(work.root),
    }
    (work.root / "record.json").write_text(json.dumps(record, indent=1, ensure_ascii=False, default=str))
    print(
        f"{'kind':<12} {'tried':>6} {'runs':>6} {'tracebacks':>10} {'signals':>8} {'hangs':>6} {'other':>6} "
        f"{'not 1 line':>10} {'Ctrl-C':>6}  exit statuses"
    )
    for kind, t in tallies.items():
        f = t.failures
        print(
            f"{kind:<12} {t.tried:>6} {t.runs:>6} {f['tracebacks']:>10} {f['crash signals']:>8} {f['hangs']:>6} "
            f"{f['other exit statuses']:>6} {f['errors not one line']:>10} {t.recovered:>6}  {dict(t.exits)}"
        )
    print(f"writes outside the work folder: {len(outside)}; /dev and /etc entries changed: {len(changed)}")
    print(f"{record['seconds']} s; record: {work.root / 'record.json'}")
    bad = sum(sum(t.failures.values()) for t in tallies.values()) + len(outside) + len(changed)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
