"""A path a user typed, made usable or refused in one line: the one set of checks every command and slash
command applies before it opens or writes a file, and the one place that says, by cause, why opening or writing
one failed (a missing folder, a permission, a read-only or full disk, a folder where a file was expected)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import TextgenError, shown


def user_path(text: str | os.PathLike) -> Path:
    """`text` as a path with `~` expanded. What pathlib would raise on (an unknown `~user`, a name too long for
    the filesystem) becomes a one-line error, and so does a NUL character, which no path can hold (Ctrl-@ types
    one; pathlib answers "does not exist" for it, and opening it raises ValueError)."""
    if "\0" in str(text):
        raise TextgenError(f"cannot use {shown(str(text))} as a path (it contains a NUL character)")
    try:
        path = Path(text).expanduser()
        path.exists()
    except (OSError, RuntimeError) as e:
        raise TextgenError(f"cannot use {shown(str(text))} as a path ({getattr(e, 'strerror', None) or e})") from None
    return path


def kind_of(mode: int) -> str:
    """What a file that is not a regular file is, in words, from its `st_mode` (for messages)."""
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def write_advice(path: Path, code: int | None, retry: str = "retry") -> str:
    """What to do about a write that failed with `code`: the cause decides, never a guess such as "free space"."""
    if code == errno.ENOENT:
        return f"the folder {path.parent} does not exist; create it first, or choose another place"
    advice = {
        errno.ENOSPC: f"free space and {retry}",
        errno.EDQUOT: f"your disk quota is used up; free space and {retry}",
        errno.EACCES: "you may not write there; choose another place, or change its permissions",
        errno.EPERM: "you may not write there; choose another place, or change its permissions",
        errno.EROFS: "the file system is read-only; choose another place",
        errno.EISDIR: "it is a folder; give a file name",
        errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
        errno.ENXIO: "nothing is reading from it: start the named pipe's reader first",
        errno.EPIPE: "its reader closed it before the end, so what it got is incomplete",
        errno.ENAMETOOLONG: "the name is too long; choose a shorter one",
        errno.ELOOP: "its symbolic links go round in a loop; check the path",
        errno.EFBIG: "the file system cannot hold a file that large; choose another place",
        errno.EIO: "the device reported an input/output error; check the disk",
    }
    return advice.get(code or 0, f"check the path and {retry}")


def write_error(path: str | os.PathLike, e: OSError, *, kept: str = "", retry: str = "retry") -> TextgenError:
    """The one line for a write to `path` that failed with `e`: ``PATH: could not write (WHY); KEPT; ADVICE``.

    `kept` says what is still safe (an atomic write leaves the previous file intact); `retry` is how to try again
    (a training run says ``--resume``)."""
    path = Path(path)
    parts = [f"{path}: could not write ({e.strerror or e})", kept, write_advice(path, e.errno, retry)]
    return TextgenError("; ".join(p for p in parts if p))


def read_error(path: str | os.PathLike, e: OSError) -> TextgenError:
    """The one line for a file that could not be opened or read: ``PATH: cannot read (WHY); ADVICE``."""
    advice = {
        errno.ENOENT: "no such file; check the path",
        errno.EACCES: "check its permissions",
        errno.EPERM: "check its permissions",
        errno.EISDIR: "it is a folder; give a file",
        errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
        errno.ELOOP: "its symbolic links go round in a loop; check the path",
        errno.ENAMETOOLONG: "the name is too long; check the path",
        errno.EIO: "the device reported an input/output error; check the disk",
    }.get(e.errno or 0, "check the path")
    return TextgenError(f"{path}: cannot read ({e.strerror or e}); {advice}")
