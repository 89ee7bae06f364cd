"""The loop flag: does a text repeat itself, and how (a span, how long, how many times).

The longest repeated stretch of a text comes from its suffix array and LCP array (libdivsufsort's construction and
Kasai's algorithm, `pydivsufsort`): the largest LCP between neighbouring suffixes, at positions p < q. When the two
copies overlap (q - p shorter than the stretch), the text runs in a loop of period q - p from p: the span
text[p:q] back to back, as many times as fit. Otherwise the stretch itself is the span, counted where it occurs
without overlap. Sampled text at a low temperature and greedy or beam decoding fall into such loops; the REPL says
so after a run (`/beam W norepeat N` is the remedy it offers, see `beam.BeamSearch`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A repeat is flagged from this many repeated characters on: shorter ones are the common phrases any text repeats.
#: With it, 2,000 characters of the bundled model loop in every run at temperature 0.2 and in a beam of 4, and in
#: none or one of five at 0.5 to 1.2 (docs/record/copies.md).
LOOP_MIN = 40


@dataclass(frozen=True)
class Loop:
    """A repeated span: it starts at `start`, is `length` characters long, and occurs `times` times; `back_to_back`
    when the copies follow each other (a loop), `covered` characters from `start` on in all."""

    start: int
    length: int
    times: int
    back_to_back: bool
    covered: int


def find_loop(text: str, min_length: int = LOOP_MIN) -> Loop | None:
    """The text's longest repeat if it is at least `min_length` characters, described as a `Loop`; else None."""
    if len(text) <= max(min_length, 1):  # a repeat of min_length needs at least one more character
        return None
    from pydivsufsort import divsufsort, kasai

    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32).copy()
    sa = divsufsort(points)
    lcp = kasai(points, sa)
    k = int(np.argmax(lcp))
    longest = int(lcp[k])
    if longest < min_length:
        return None
    p, q = sorted((int(sa[k]), int(sa[k + 1])))
    if q - p < longest:  # overlapping copies: a loop of period q - p
        period = q - p
        return Loop(p, period, (longest + period) // period, True, longest + period)
    span = text[p : p + longest]
    times = text.count(span)
    return Loop(p, longest, times, False, longest * times)
