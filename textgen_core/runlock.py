"""One process per run folder: a lock held for the life of a training run.

Two `textgen train --out RUN` started together would otherwise both pass the "already holds a run" check (neither
has written anything yet) and interleave two histories in one folder; two `--resume` of one folder likewise. The
lock is an `flock` on ``RUN/lock``, a file that holds the holder's process id for the message the second one
gets. The kernel releases it when the holder ends, however it ends (a kill -9 included), so the file a killed run
leaves behind never blocks a resume: only a live holder does. The holder removes the file when it is done, and
a run that never started (a bad corpus) leaves no folder it made. Readers of a run (the REPL following it, `info`)
never take it.

Where `fcntl` is missing (Windows, not a target) there is no lock, and training works as before.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TextgenError
from .paths import write_advice

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "lock"
#: Set by `textgen train --nproc` for its workers, to the folder whose lock it holds for them.
HELD_ENV = "TEXTGEN_RUN_LOCK"


@dataclass
class _Lock:
    fd: int
    path: Path
    #: Folders made for the run (outermost first), removed again if the run leaves nothing in them.
    created: list[Path] = field(default_factory=list)

    def release(self) -> None:
        # Removed while still held: whoever opens the name next makes a new file, and `_acquire` checks that the
        # file it locked is still the one the name leads to.
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self.fd)
        _remove_empty(self.created)


#: The locks this process holds, by folder: a command that holds one may run code that asks for it again.
_held: dict[str, _Lock] = {}


def key(out: Path) -> str:
    """The folder's identity for the lock (a symbolic link to it and the folder itself are one run)."""
    return os.path.realpath(out)


@contextmanager
def hold_run(out: Path, *, flag: str = "--out") -> Iterator[None]:
    """Hold `out`'s lock for the block, making the folder (and its missing parents) first; refused in one line
    naming the process that holds it. Re-entrant within a process, and a no-op in a worker whose launcher holds it
    (`HELD_ENV`). `flag` names the folder in messages."""
    name = key(out)
    if fcntl is None or name in _held or os.environ.get(HELD_ENV) == name:
        yield
        return
    lock = _acquire(Path(out), flag)
    _held[name] = lock
    try:
        yield
    finally:
        del _held[name]
        lock.release()


def _acquire(out: Path, flag: str) -> _Lock:
    created = _make_folder(out, flag)
    path = out / LOCK_NAME
    try:
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as e:
                raise TextgenError(
                    f"{flag} {out}: cannot write in it ({e.strerror or e}); {write_advice(path, e.errno)}"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise TextgenError(
                    f"{flag} {out}: {holder} is training in this run folder now; wait for it to finish (or stop it), "
                    f"or choose another {flag}"
                ) from None
            except OSError:  # a file system without locks (some network mounts): train unlocked, as before
                pass
            if _same_file(fd, path):
                break
            os.close(fd)  # its last holder removed the file between our open and our lock: lock the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except BaseException:
        _remove_empty(created)
        raise
    return _Lock(fd, path, created)


def _holder(fd: int) -> str:
    """Who holds the lock, from the process id it wrote (which it may not have written yet)."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(fd, 32, 0).decode("ascii").strip())
        return f"another textgen train (process {pid})"
    return "another textgen train"


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _make_folder(out: Path, flag: str) -> list[Path]:
    """Make `out` and its missing parents; returns those this call made, outermost first."""
    missing: list[Path] = []
    p = Path(os.path.abspath(out))
    while not os.path.lexists(p) and p != p.parent:
        missing.append(p)
        p = p.parent
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:  # made meanwhile by another process: not ours to remove
                continue
            created.append(folder)
    except OSError as e:
        _remove_empty(created)
        advice = "choose another" if e.errno in (None, errno.ENOENT) else write_advice(out, e.errno)
        raise TextgenError(f"{flag} {out}: cannot create it ({e.strerror or e}); {advice}") from None
    return created


def _remove_empty(created: list[Path]) -> None:
    """Remove the folders a run made, innermost first, as long as nothing was written in them."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return
