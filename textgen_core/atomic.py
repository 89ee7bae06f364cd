"""The one writer of every file textgen writes (checkpoints, the resume state, metrics, transcripts, JSONL,
imported models, token files, indexes), so that a write never breaks what it touches.

What the path names decides how it is written (`target`):

- **a regular file, or nothing yet**: replaced atomically: a temporary file in the same folder, fsynced, renamed
  over it, so that a reader (or a crash at any instant) sees the old file or the new one, never a mix. A symbolic
  link to a regular file (or to nothing yet) is followed: its target is replaced and the link stays a link.
- **`-`, or one of this process's open descriptors** (``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``,
  ``/proc/self/fd/N``): written into that descriptor where it stands, as a shell writes there; never reopened
  (which would start a redirected file over from its beginning) and never renamed.
- **anything else that exists** (a device such as a null device, a named pipe, a terminal; directly or through a
  symbolic link): opened and written into as a stream, never renamed over. Renaming a temporary file over
  ``/dev/null`` as root replaces the machine's null device with a regular file; over a named pipe, it cuts its
  reader off. A named pipe's reader must have it open (textgen waits `PIPE_WAIT_S` for one); binary output (a
  checkpoint) is refused on a terminal.
- **a folder or a socket**: refused.

Every failure is one line by cause (`paths.write_error`): a missing folder, a permission, a read-only or full
disk, a pipe with no reader.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import TextgenError
from .paths import user_path, write_error

#: Temporary files are hidden siblings of their target: ``.NAME.tmp-PID``.
TEMP_PREFIX = "."
#: The name that means standard output wherever textgen writes a file.
STDOUT = "-"
#: How long a write to a named pipe waits for its reader to open it (a reader started just before textgen).
PIPE_WAIT_S = 2.0
#: A path that names an open descriptor of a process: ``/dev/fd/N``, ``/proc/self/fd/N``, ``/proc/PID/fd/N``.
_DESCRIPTOR = re.compile(r"/(?:dev|proc/(self|thread-self|\d+))/fd/(\d+)")
_OPEN_STREAM = os.O_WRONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)

Write = Callable[[BinaryIO], object]


@dataclass(frozen=True)
class Output:
    """Where a write goes, decided from what the path names (`target`). `path` is as the user named it (for
    messages); `kind` is ``file`` (replaced atomically at `replaces`), ``stream`` (an existing special file,
    written into) or ``descriptor`` (the open descriptor `fd`)."""

    path: Path
    kind: str
    replaces: Path | None = None
    fd: int | None = None
    #: The output is binary (a checkpoint): refused on a terminal.
    binary: bool = False

    @property
    def is_file(self) -> bool:
        """Whether the output is a regular file on disk afterwards (it can be read back)."""
        return self.kind == "file"

    @property
    def to_stdout(self) -> bool:
        """Whether the output is this process's standard output (`-`, ``/dev/stdout``): messages go to stderr."""
        return self.fd == 1

    def write(self, write: Write, *, kept: str | None = None, retry: str = "retry") -> Output:
        """Let `write` fill the output: a regular file atomically, anything else as a stream. What the path names
        is looked at again first (it may have changed while the data was computed: a pipe made, a file removed).
        `kept` and `retry` word the failure message (`paths.write_error`). Returns where it went."""
        now = target(self.path, binary=self.binary)
        if now.kind == "file":
            _replace(now, write, kept, retry)
        else:
            _stream(now, write, kept, retry, append=False)
        return now

    def append(self, data: bytes, *, kept: str | None = None, retry: str = "retry") -> None:
        """Add `data` at the end of a regular file (created if missing), or write it into a stream. Not atomic: a
        log's lines are added one at a time, and a reader skips a line being written."""
        if self.kind != "file":
            _stream(self, lambda f: f.write(data), kept, retry, append=True)
            return
        try:
            with open(self.replaces, "ab") as f:  # type: ignore[arg-type]
                f.write(data)
        except OSError as e:
            raise write_error(self.path, e, kept=kept or "", retry=retry) from None


def target(path: str | os.PathLike, *, binary: bool = False) -> Output:
    """What `path` names as an output, checked before any work is done: a folder, a socket, a missing folder or a
    part of the path that is a file is refused in one line here, so that a command refuses before it computes."""
    if str(path) == STDOUT:
        return _descriptor(Path(STDOUT), 1, binary)
    named = user_path(path)
    if str(path).endswith(("/", os.sep)) or not named.name:
        raise TextgenError(f"{named}: is a folder; give a file name")
    fd = _descriptor_number(named)
    if fd is not None:
        return _descriptor(named, fd, binary)
    try:
        st = os.stat(named)
    except FileNotFoundError:
        return _new_file(named, binary)
    except OSError as e:
        raise write_error(named, e) from None
    if stat.S_ISREG(st.st_mode):
        if not binary:
            _refuse_a_model(named, st.st_size)
        return Output(named, "file", Path(os.path.realpath(named)), binary=binary)
    if stat.S_ISDIR(st.st_mode):
        raise TextgenError(f"{named}: is a folder; give a file name")
    if stat.S_ISSOCK(st.st_mode):
        raise TextgenError(f"{named}: is a socket, which textgen cannot write into; give a file name")
    return Output(named, "stream", binary=binary)


def _refuse_a_model(path: Path, size: int) -> None:
    """A text output (a transcript, JSONL, a report) never replaces a model: `/save model.safetensors` typed for
    `/save model.txt` would lose a checkpoint someone trained. Told by the first bytes: a safetensors header (its
    length, then "{") or HDF5's signature (a Keras .h5)."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return  # the write itself will say why it cannot
    safetensors = len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < size
    if safetensors or head[:8] == b"\x89HDF\r\n\x1a\n":
        kind = "a safetensors checkpoint" if safetensors else "a Keras .h5 model"
        raise TextgenError(f"{path}: is {kind}; textgen writes text here and will not replace it: give another name")


def _new_file(path: Path, binary: bool) -> Output:
    """A path where nothing is yet (or a symbolic link to nothing yet: its target is created): its folder must be."""
    real = Path(os.path.realpath(path))
    folder = real.parent
    if not folder.exists():
        raise write_error(path, FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)))
    if not folder.is_dir():
        raise write_error(path, NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)))
    return Output(path, "file", real, binary=binary)


def _descriptor_number(path: Path) -> int | None:
    """The descriptor of this process that `path` names, following symbolic links one at a time (``/dev/stdout``
    → ``/proc/self/fd/1``), or None. Read link by link because resolving ``/proc/self/fd/1`` in one go gives the
    file the descriptor has open, which would then be reopened (a redirected file from its start) or renamed over."""
    p = os.path.abspath(path)
    for _ in range(40):
        m = _DESCRIPTOR.fullmatch(p)
        if m and m[1] in (None, "self", "thread-self", str(os.getpid())):
            return int(m[2])
        try:
            link = os.readlink(p)
        except OSError:  # not a link itself; one of its folders may be (/dev/fd → /proc/self/fd)
            head, tail = os.path.split(p)
            real = os.path.realpath(head)
            if real == head:
                return None
            p = os.path.join(real, tail)
            continue
        p = os.path.normpath(os.path.join(os.path.dirname(p), link))
    return None


def _descriptor(path: Path, fd: int, binary: bool) -> Output:
    try:
        st = os.fstat(fd)
    except OSError:
        raise TextgenError(f"{path}: descriptor {fd} is not open in this process; give a file name") from None
    if stat.S_ISDIR(st.st_mode):
        raise TextgenError(f"{path}: is a folder; give a file name")
    out = Output(path, "descriptor", fd=fd, binary=binary)
    _check_terminal(out, fd)  # known before any work, unlike a device's (only opening it would tell)
    return out


def _check_terminal(out: Output, fd: int) -> None:
    if out.binary and os.isatty(fd):
        raise TextgenError(
            f"{out.path}: is a terminal, and this output is binary; give a file name, or send it into a file or a pipe"
        )


def _stream(out: Output, write: Write, kept: str | None, retry: str, *, append: bool) -> None:
    """Write into a special file or a descriptor: opened where it stands, never truncated, renamed or fsynced."""
    try:
        if out.fd is not None:
            for stream in (sys.stdout, sys.stderr):  # what was printed before goes first
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    stream.flush()
            fd = os.dup(out.fd)
        else:
            fd = _open_stream(out.path)
    except OSError as e:
        raise write_error(out.path, e, kept=kept or "", retry=retry) from None
    try:
        _check_terminal(out, fd)
        with os.fdopen(fd, "wb") as f:
            fd = -1  # the file object closes it now
            write(f)
            f.flush()
    except BrokenPipeError:
        if out.fd == 1:
            raise  # standard output piped into `head`: the command line ends quietly, as other tools do
        raise write_error(out.path, BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE)), retry=retry) from None
    except OSError as e:
        raise write_error(out.path, e, kept=kept or "", retry=retry) from None
    finally:
        if fd >= 0:
            os.close(fd)


def _open_stream(path: Path) -> int:
    """Open a special file for writing without blocking: a named pipe nobody reads would otherwise hang the open
    for ever. Its reader gets `PIPE_WAIT_S` to open it (ENXIO until then); the descriptor then blocks as usual."""
    deadline = time.monotonic() + PIPE_WAIT_S
    while True:
        try:
            fd = os.open(path, _OPEN_STREAM)
            break
        except OSError as e:
            if e.errno != errno.ENXIO or time.monotonic() > deadline or not _is_fifo(path):
                raise
            time.sleep(0.02)
    os.set_blocking(fd, True)
    return fd


def _is_fifo(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def _replace(out: Output, write: Write, kept: str | None, retry: str) -> None:
    """Let `write` fill a temporary file in the same folder, fsync it, then rename it over the target.

    The rename is atomic on POSIX and Windows (same filesystem), and the folder is fsynced afterwards so that the
    rename itself survives a power cut. On any failure the temporary file is removed and the old file is untouched;
    an `OSError` (a full disk, a permission) becomes a one-line `TextgenError`, anything else propagates. `write`
    gets the open file, so a large file can be written piece by piece instead of being built in memory first."""
    path = out.replaces
    assert path is not None
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}.tmp-{os.getpid()}")
    _remove_stale_temps(path)
    try:
        old = os.stat(path)
    except OSError:
        old = None
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if old is not None:
            _keep_owner_and_mode(tmp, old)
        os.replace(tmp, path)
    except BaseException as e:  # whatever stopped the write, no partial file is left behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        if not isinstance(e, OSError):
            raise
        intact = "the previous file is intact" if old is not None else ""
        raise write_error(out.path, e, kept=kept or intact, retry=retry) from None
    _fsync_dir(path.parent)


def _keep_owner_and_mode(tmp: Path, old: os.stat_result) -> None:
    """The replacement keeps the replaced file's permissions (and owner, where this process may set it): a file
    a user made private stays private."""
    with contextlib.suppress(OSError, AttributeError):
        os.chown(tmp, old.st_uid, old.st_gid)
    with contextlib.suppress(OSError):
        os.chmod(tmp, stat.S_IMODE(old.st_mode))


def atomic_write(path: str | os.PathLike, write: Write, *, binary: bool = False) -> Output:
    """Write the output `path` names (`target`): a regular file atomically, a special file as a stream, `-` to
    standard output. `binary` output (a checkpoint) is refused on a terminal. Returns where it went."""
    return target(path, binary=binary).write(write)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Output:
    """`atomic_write` of bytes already in memory."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Output:
    return atomic_write_bytes(path, text.encode("utf-8"))


def append_text(path: str | os.PathLike, text: str, *, kept: str | None = None, retry: str = "retry") -> None:
    """Add `text` at the end of the output `path` names (a log), by the same rules as `atomic_write`."""
    target(path).append(text.encode("utf-8"), kept=kept, retry=retry)


def _remove_stale_temps(path: Path) -> None:
    """Delete the temporary files for `path` of writers that died mid-write (a SIGKILL, a power cut): each would
    otherwise stay, as large as the file it was replacing, in a run folder that may be killed and resumed many
    times. A writer that is still alive keeps its file, and other files are never touched. POSIX only: on
    Windows `os.kill` would end the process."""
    if os.name != "posix":
        return
    import glob  # only when a file is replaced: reading a checkpoint imports this module too

    try:
        candidates = list(path.parent.glob(f"{glob.escape(TEMP_PREFIX + path.name)}.tmp-*"))
    except OSError:
        return
    for tmp in candidates:
        pid = tmp.name.rpartition(".tmp-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)) and _is_regular(tmp):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _is_regular(path: Path) -> bool:
    """Only a regular file can be a writer's leftover: a special file of that name is someone else's."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, OverflowError):  # not ours to signal (alive), or not a pid we can check
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported (e.g. Windows); the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
