"""Neutralising text before it reaches a terminal.

Characters from a model's vocabulary or a user's seed are printed as themselves except terminal controls:
C0 controls other than newline and tab become their Unicode "control picture" (ESC → ␛, BEL → ␇, CR → ␍),
DEL becomes ␡, and C1 controls become a visible ``\\x9b``-style escape. So no checkpoint can move the cursor,
retitle the window or ring the bell.
"""

from __future__ import annotations

from textgen_core.errors import shown

__all__ = ["flat", "json_visible", "shown", "shown_char", "visible"]

_TABLE: dict[int, str] = {}
for _code in range(0x20):
    if chr(_code) not in "\n\t":
        _TABLE[_code] = chr(0x2400 + _code)
_TABLE[0x7F] = "\u2421"
for _code in range(0x80, 0xA0):
    _TABLE[_code] = f"\\x{_code:02x}"


def visible(text: str) -> str:
    """Return `text` with every terminal control character replaced by a visible stand-in."""
    return text.translate(_TABLE)


#: Whitespace that would break a one-line display (a table cell, an error message, a log line), made visible.
_FLAT_TABLE = {**_TABLE, ord("\n"): "⏎", ord("\t"): "⇥"}


def flat(text: str) -> str:
    """`visible(text)` on one line: newline shown as ⏎ and tab as ⇥, for places where either would break the
    layout (a table cell, an error message, the status line)."""
    return text.translate(_FLAT_TABLE)


def shown_char(ch: str) -> str:
    """One character or token as a table cell or list item: like `flat`, and spaces shown as ␠ (alone, or
    leading a word, they are invisible)."""
    return flat(ch).replace(" ", "␠")


_JSON_TABLE = {code: f"\\u{code:04x}" for code in range(0x7F, 0xA0)}


def json_visible(text: str) -> str:
    """JSON from ``json.dumps(..., ensure_ascii=False)`` with DEL and the C1 controls escaped too.

    json.dumps escapes C0 controls in strings but passes DEL and C1 (U+0080–U+009F, where U+009B is a CSI)
    through. Outside strings JSON is ASCII, so escaping them everywhere keeps it valid and equal in value."""
    return text.translate(_JSON_TABLE)
