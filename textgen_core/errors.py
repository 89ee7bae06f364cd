"""The one exception type that reaches users.

Every problem a user can cause (a bad flag value, a missing or corrupt file, an unusable corpus) is raised as
`TextgenError` with a single-line message that says what to do. Front ends print the message and exit with
status 2; anything else escaping is a bug.
"""

from __future__ import annotations


def shown(text: str) -> str:
    """A user's value as quoted in an error message: shortened, since someone may paste a megabyte, and
    `repr` keeps any control character in it from reaching the terminal."""
    return repr(text if len(text) <= 24 else text[:24] + "…")


class TextgenError(Exception):
    """A user-facing error: one line, no traceback, exit status 2."""

    exit_code = 2
