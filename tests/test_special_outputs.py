"""Writes that never break what they touch (`textgen_core.atomic`): a regular file is replaced atomically, while a
device, a named pipe or an open descriptor is written into as a stream and never renamed over; a symbolic link to
a file keeps being a link; every failure is one line that names its cause.

Every special file here is the test's own, in its temporary folder: a null device made with mknod (the tests run
as root where they can; without root those cases are skipped), a named pipe read by another process, and
``/dev/stdout`` only inside a subprocess whose standard output the test holds (a pipe or a file of its own).
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, assert_one_line_error, make_text, run_cli, write_random_checkpoint

from textgen_core import atomic
from textgen_core.atomic import STDOUT, atomic_write_text, target
from textgen_core.errors import TextgenError

#: Keras's torch backend converts tensors with numpy 1's `__array__` signature; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200"}
TEXTGEN = [sys.executable, "-m", "repl.cli"]


def null_device(folder: Path) -> Path:
    """A null device of the test's own (major 1, minor 3, as /dev/null), which reads empty and swallows writes."""
    path = folder / "null"
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    return path


def still_the_device(path: Path) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


class PipeReader:
    """A named pipe in `folder` and another process reading it whole (`cat`), started before anything writes."""

    def __init__(self, folder: Path, name: str = "pipe"):
        self.path = folder / name
        os.mkfifo(self.path)
        self.proc = subprocess.Popen(["cat", str(self.path)], stdout=subprocess.PIPE)

    def text(self) -> str:
        out, _ = self.proc.communicate(timeout=60)
        assert stat.S_ISFIFO(os.lstat(self.path).st_mode)  # still a pipe, never renamed over
        return out.decode("utf-8")


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text(make_text(400), encoding="utf-8")
    return path


# ---- the writer ---------------------------------------------------------------------------------------------------


def test_a_device_is_written_into_and_stays_a_device(tmp_path: Path) -> None:
    null = null_device(tmp_path)
    out = atomic_write_text(null, "into the device")
    assert out.kind == "stream" and still_the_device(null)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]  # no temporary file beside it


def test_a_named_pipe_is_written_into_for_its_reader(tmp_path: Path) -> None:
    reader = PipeReader(tmp_path)
    assert atomic_write_text(reader.path, "to the reader\n").kind == "stream"
    assert reader.text() == "to the reader\n"


def test_a_named_pipe_nobody_reads_is_refused_in_one_line_not_waited_on_for_ever(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(atomic, "PIPE_WAIT_S", 0.1)
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(TextgenError, match=r"pipe: could not write \(No such device or address\); nothing is reading"):
        atomic_write_text(tmp_path / "pipe", "lost")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)


def test_a_symbolic_link_to_a_file_stays_a_link_and_its_target_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("old")
    (tmp_path / "real.txt").chmod(0o600)
    (tmp_path / "link").symlink_to("real.txt")
    out = atomic_write_text(tmp_path / "link", "new")
    assert out.kind == "file" and out.replaces == tmp_path / "real.txt"
    assert (tmp_path / "link").is_symlink() and (tmp_path / "real.txt").read_text() == "new"
    assert stat.S_IMODE((tmp_path / "real.txt").stat().st_mode) == 0o600  # a private file stays private
    (tmp_path / "dangling").symlink_to("made.txt")
    atomic_write_text(tmp_path / "dangling", "made")  # a link to nothing yet: its target is made
    assert (tmp_path / "dangling").is_symlink() and (tmp_path / "made.txt").read_text() == "made"


def test_a_symbolic_link_to_a_device_or_a_pipe_is_written_as_a_stream(tmp_path: Path) -> None:
    null = null_device(tmp_path)
    (tmp_path / "to-null").symlink_to(null)
    assert atomic_write_text(tmp_path / "to-null", "x").kind == "stream"
    assert (tmp_path / "to-null").is_symlink() and still_the_device(null)
    reader = PipeReader(tmp_path)
    (tmp_path / "to-pipe").symlink_to(reader.path)
    atomic_write_text(tmp_path / "to-pipe", "through the link")
    assert reader.text() == "through the link" and (tmp_path / "to-pipe").is_symlink()


WRITE_TO = """
import sys
from textgen_core.atomic import atomic_write_text
print("before", flush=True)
atomic_write_text(sys.argv[1], "written\\n")
print("after")
"""


@pytest.mark.parametrize("name", ["-", "/dev/stdout", "/proc/self/fd/1", "/dev/fd/1"])
def test_standard_output_by_any_name_is_written_where_it_stands(tmp_path: Path, name: str) -> None:
    """Into a pipe the test reads, and into a file standard output was sent to: in order, after what was printed
    before, and the file is the same file (neither reopened from its start nor renamed over)."""
    piped = subprocess.run([sys.executable, "-c", WRITE_TO, name], capture_output=True, text=True, env=ENV, check=True)
    assert piped.stdout == "before\nwritten\nafter\n"
    log = tmp_path / "out.txt"
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-c", WRITE_TO, name], stdout=f, env=ENV, check=True)
        inode = os.fstat(f.fileno()).st_ino
    assert log.read_text() == "before\nwritten\nafter\n" and log.stat().st_ino == inode


def test_binary_output_is_refused_on_a_terminal(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        with pytest.raises(TextgenError, match="is a terminal, and this output is binary"):
            target(f"/dev/fd/{slave}", binary=True)
        assert target(f"/dev/fd/{slave}").kind == "descriptor"  # text may go to a terminal
    finally:
        os.close(master)
        os.close(slave)


def _failing_open(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (errno.ENOSPC, "free space and retry"),
        (errno.EACCES, "you may not write there; choose another place, or change its permissions"),
        (errno.EROFS, "the file system is read-only; choose another place"),
        (errno.EDQUOT, "your disk quota is used up"),
        (errno.EIO, "the device reported an input/output error"),
    ],
)
def test_a_failed_write_says_its_cause_and_keeps_the_previous_file(tmp_path: Path, monkeypatch, code, advice) -> None:
    """Injected (the tests may run as root, whom no permission stops): the message names the cause and only the
    advice that fits it."""
    path = tmp_path / "kept.txt"
    path.write_text("previous")
    monkeypatch.setattr(atomic, "open", _failing_open(code), raising=False)
    with pytest.raises(TextgenError) as e:
        atomic_write_text(path, "new")
    message = str(e.value)
    assert message.startswith(f"{path}: could not write ({os.strerror(code)}); the previous file is intact; ")
    assert advice in message and "\n" not in message
    assert ("free space" in message) == (code in (errno.ENOSPC, errno.EDQUOT))
    assert path.read_text() == "previous" and sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]


def test_a_path_that_cannot_be_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    cases = {
        tmp_path / "no" / "such" / "out.txt": f"the folder {tmp_path / 'no' / 'such'} does not exist; create it",
        tmp_path / "plain" / "out.txt": "a part of the path is a file, not a folder",
        tmp_path: "is a folder; give a file name",
        f"{tmp_path}/new/": "is a folder; give a file name",
        "/proc/self/fd/987": "descriptor 987 is not open in this process",
    }
    for path, needle in cases.items():
        with pytest.raises(TextgenError, match=needle.replace("(", r"\(")):
            target(path)


def test_a_socket_is_refused(tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tmp_path / "sock"))
        with pytest.raises(TextgenError, match="is a socket"):
            atomic_write_text(tmp_path / "sock", "x")


def test_an_append_to_a_device_is_a_stream_too(tmp_path: Path) -> None:
    null = null_device(tmp_path)
    atomic.append_text(null, "a line\n")
    atomic.append_text(tmp_path / "log.jsonl", "one\n")
    atomic.append_text(tmp_path / "log.jsonl", "two\n")
    assert still_the_device(null) and (tmp_path / "log.jsonl").read_text() == "one\ntwo\n"


# ---- the commands, aimed at a device, a named pipe and standard output --------------------------------------------


def test_eval_jsonl_into_a_device_a_pipe_and_stdout(repl_checkpoint: Path, text_file: Path, tmp_path: Path) -> None:
    eval_args = [*TEXTGEN, "eval", "-c", str(repl_checkpoint), str(text_file), "--exact", "--jsonl"]
    null = null_device(tmp_path)
    proc = subprocess.run([*eval_args, str(null)], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert "bits/char" in proc.stdout and still_the_device(null)
    reader = PipeReader(tmp_path)
    proc = subprocess.run([*eval_args, str(reader.path)], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert len(reader.text().splitlines()) == 400  # one record per character
    for name in (STDOUT, "/dev/stdout"):
        proc = subprocess.run([*eval_args, name], capture_output=True, text=True, env=ENV)
        assert proc.returncode == 0, proc.stderr
        assert len(proc.stdout.splitlines()) == 400 and "bits/char" in proc.stderr  # the summary moves to stderr
    refused = run_cli("eval", "-c", str(repl_checkpoint), str(text_file), "--json", "--jsonl", "/dev/stdout")
    assert_one_line_error(refused, "would both write to stdout")


def test_sample_into_a_device_a_pipe_and_stdout(repl_checkpoint: Path, tmp_path: Path) -> None:
    """`textgen sample` writes to its standard output; sent into a device or a pipe, that is what gets it."""
    args = [*TEXTGEN, "sample", "-c", str(repl_checkpoint), "--prompt", "the ", "--len", "50", "--seed", "3"]
    piped = subprocess.run(args, capture_output=True, text=True, env=ENV, check=True)
    assert piped.stdout.startswith("the ") and len(piped.stdout) == len("the ") + 50 + 1
    null = null_device(tmp_path)
    with open(null, "w") as f:
        subprocess.run(args, stdout=f, env=ENV, check=True)
    assert still_the_device(null)
    reader = PipeReader(tmp_path)
    with open(reader.path, "w") as f:
        subprocess.run(args, stdout=f, env=ENV, check=True)
    assert reader.text() == piped.stdout


SAVE_LINES = "the will\n/save {}\n/quit\n"


def test_repl_save_into_a_device_a_pipe_and_stdout(repl_checkpoint: Path, tmp_path: Path) -> None:
    """The real REPL, its stdin piped; `/save` aimed at each. Standard output (the test's pipe) gets the
    transcript among the session's own output."""
    args = [*TEXTGEN, "repl", "-c", str(repl_checkpoint), "--len", "30", "--seed", "1"]
    env = {**ENV, "XDG_STATE_HOME": str(tmp_path / "state")}
    null = null_device(tmp_path)
    proc = subprocess.run(args, input=SAVE_LINES.format(null), capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "written into it as a stream" in proc.stdout, proc.stdout + proc.stderr
    assert still_the_device(null)
    reader = PipeReader(tmp_path)
    proc = subprocess.run(args, input=SAVE_LINES.format(reader.path), capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    saved = reader.text()
    assert saved.startswith("the will") and len(saved) == len("the will") + 30 + 1
    for name in ("/dev/stdout", "-"):
        proc = subprocess.run(args, input=SAVE_LINES.format(name), capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count(saved.rstrip("\n")) == 2  # once as the run printed it, once as /save wrote it


@pytest.mark.parametrize("kind", ["device", "pipe", "stdout"])
def test_train_out_aimed_at_a_special_file_is_refused_and_left_alone(corpus_file: Path, tmp_path: Path, kind):
    """`--out` is a run folder: a device, a pipe or standard output is none, refused in one line, untouched."""
    if kind == "device":
        path = null_device(tmp_path)
    elif kind == "pipe":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    else:
        path = Path("/dev/stdout")  # inside the subprocess: the test's pipe
    proc = run_cli("train", str(corpus_file), "--out", str(path), "--steps", "1")
    what = {"device": "a character device", "pipe": "a named pipe", "stdout": "a named pipe"}[kind]
    assert_one_line_error(proc, f"--out {path}: is {what}, not a folder; give a folder for the run")
    if kind == "device":
        assert still_the_device(path)
    elif kind == "pipe":
        assert stat.S_ISFIFO(os.lstat(path).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["corpus.txt", *([path.name] if kind != "stdout" else [])]
    )


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny Keras model saved by Keras (.keras) and the corpus its vocabulary comes from."""
    pytest.importorskip("h5py")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    d = tmp_path_factory.mktemp("keras")
    corpus = d / "corpus.txt"
    corpus.write_text("the cat sat on the mat\n" * 3, encoding="utf-8")
    v = len(set(corpus.read_text()))
    model = keras.Sequential([keras.Input((5, v)), keras.layers.LSTM(4), keras.layers.Dense(v, activation="softmax")])
    model.save(d / "tiny.keras")
    return d / "tiny.keras", corpus


def test_import_out_into_a_device_a_pipe_and_stdout(keras_model: tuple[Path, Path], tmp_path: Path) -> None:
    from safetensors.numpy import load

    model, corpus = keras_model
    args = [*TEXTGEN, "import", str(model), "--vocab-from", str(corpus), "--out"]
    null = null_device(tmp_path)
    proc = subprocess.run([*args, str(null)], capture_output=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert b"wrote" in proc.stdout and still_the_device(null)
    reader = PipeReader(tmp_path)
    proc = subprocess.run([*args, str(reader.path)], capture_output=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    out, _ = reader.proc.communicate(timeout=60)
    assert "lstm.weight_ih_l0" in load(out)  # the reader got a whole checkpoint
    for name in (STDOUT, "/dev/stdout"):
        proc = subprocess.run([*args, name], capture_output=True, env=ENV)
        assert proc.returncode == 0, proc.stderr
        assert "head.bias" in load(proc.stdout) and b"wrote" in proc.stderr  # the report moves to stderr


def test_import_refuses_a_terminal_for_its_binary_output(keras_model: tuple[Path, Path]) -> None:
    from conftest import run_on_pty_stdout

    model, corpus = keras_model
    args = [*TEXTGEN, "import", str(model), "--vocab-from", str(corpus), "--out", "-"]
    raw = run_on_pty_stdout(args, ENV, "", status=2)
    assert b"is a terminal, and this output is binary" in raw and raw.count(b"\n") == 1


# ---- opening: a file that is no checkpoint at all, and a special file ----------------------------------------------


def test_a_file_that_is_no_checkpoint_is_named_as_what_it_is(tmp_path: Path) -> None:
    good = write_random_checkpoint(tmp_path / "good.safetensors")
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    proc = run_cli("info", "-c", str(passwd))
    assert_one_line_error(proc, "not a textgen checkpoint: it is a text file; give a checkpoint textgen wrote")
    assert "re-download" not in proc.stderr and "header claims" not in proc.stderr
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:300])
    assert_one_line_error(run_cli("info", "-c", str(cut)), "damaged checkpoint", "re-download it, or retrain")


def test_a_device_or_a_pipe_given_as_a_checkpoint_is_refused_without_reading_it(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")  # nobody writes to it: reading it would wait for ever
    proc = run_cli("info", "-c", str(tmp_path / "pipe"), timeout=30)
    assert_one_line_error(proc, "is a named pipe, not a file")
    null = null_device(tmp_path)
    assert_one_line_error(run_cli("sample", "-c", str(null)), "is a character device, not a file")


def test_a_text_output_never_replaces_a_model(repl_checkpoint: Path, tmp_path: Path) -> None:
    """`/save` and `eval --jsonl` aimed at a checkpoint or a Keras .h5 (a slip of the name): one
    line, and the model is as it was. The fuzz's `/save` over its own checkpoint had replaced it with a transcript,
    and every session after failed to open it."""
    model = write_random_checkpoint(tmp_path / "model.safetensors")
    h5 = tmp_path / "keras.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    before = {p: p.read_bytes() for p in (model, h5)}
    args = [*TEXTGEN, "repl", "-c", str(repl_checkpoint), "--len", "10", "--seed", "1"]
    env = {**ENV, "XDG_STATE_HOME": str(tmp_path / "state")}
    for path, kind in ((model, "a safetensors checkpoint"), (h5, "a Keras .h5 model")):
        proc = subprocess.run(args, input=SAVE_LINES.format(path), capture_output=True, text=True, env=env)
        assert proc.returncode == 0 and f"/save: {path}: is {kind}; textgen writes text here" in proc.stdout
        text = tmp_path / "text.txt"
        text.write_text(make_text(300), encoding="utf-8")
        assert_one_line_error(run_cli("eval", "-c", str(repl_checkpoint), str(text), "--jsonl", str(path)), kind)
    assert {p: p.read_bytes() for p in (model, h5)} == before
