"""Atomic file writes: a reader (or a crash at any instant) sees the old file or the new one, never a mix."""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import TextgenError

#: Temporary files are hidden siblings of their target: ``.NAME.tmp-PID``.
TEMP_PREFIX = "."


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Let `write` fill a temporary file in the same folder, fsync it, then rename it over `path`.

    The rename is atomic on POSIX and Windows (same filesystem), and the folder is fsynced afterwards so that
    the rename itself survives a power cut. On any failure the temporary file is removed and the old file is
    untouched; an `OSError` (a full disk, a permission) becomes a one-line `TextgenError`, anything else
    propagates. `write` gets the open file, so a large file can be written piece by piece instead of being
    built in memory first.
    """
    path = Path(path)
    if not path.name or path.is_dir():
        raise TextgenError(f"{path}: is a folder; give a file name")
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}.tmp-{os.getpid()}")
    _remove_stale_temps(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # whatever stopped the write, no partial file is left behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        if not isinstance(e, OSError):
            raise
        raise TextgenError(
            f"{path}: could not write ({e.strerror or e}); the previous file is intact; free space and retry"
        ) from None
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """`atomic_write` of bytes already in memory."""
    atomic_write(path, lambda f: f.write(data))


def _remove_stale_temps(path: Path) -> None:
    """Delete the temporary files for `path` of writers that died mid-write (a SIGKILL, a power cut): each would
    otherwise stay, as large as the file it was replacing, in a run folder that may be killed and resumed many
    times. A writer that is still alive keeps its file, and other files are never touched. POSIX only: on
    Windows `os.kill` would end the process."""
    if os.name != "posix":
        return
    try:
        candidates = list(path.parent.glob(f"{glob.escape(TEMP_PREFIX + path.name)}.tmp-*"))
    except OSError:
        return
    for tmp in candidates:
        pid = tmp.name.rpartition(".tmp-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, OverflowError):  # not ours to signal (alive), or not a pid we can check
        return True
    return True


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


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
