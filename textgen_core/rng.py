"""The random numbers sampling draws: numpy's ``default_rng(seed)`` stream, computed in pure Python.

Why not numpy.random itself: importing it (its five bit generators, the legacy ``RandomState``, `secrets` and
`hashlib`) costs a one-character ``textgen sample`` a noticeable part of its start-up, and sampling needs one
uniform number per drawn token, which plain Python integers produce as fast. Why this stream and not the
standard library's Mersenne Twister: a seed gives exactly the text it gave when sampling drew from numpy (the
generator is the same PCG64 seeded through the same `SeedSequence`), states saved by earlier code (a branch's
``rng_state``) load as they are, and the tests check the numbers against numpy's own generator.

What is here is what sampling uses: `Rng.random` (numbers in [0, 1)), `Rng.spawn` (independent children, as
``Generator.spawn``), `Rng.state` (numpy's ``bit_generator.state`` dictionary, readable and settable) and
`fresh_seed`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

_M32 = 0xFFFF_FFFF
_M64 = (1 << 64) - 1
_M128 = (1 << 128) - 1
# SeedSequence's hash constants (numpy/random/bit_generator.pyx) and the PCG64 multiplier (pcg64.h).
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_POOL = 4
_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645
_DOUBLE = 1.0 / (1 << 53)


def _words(value: int | Sequence[int]) -> list[int]:
    """An entropy value as SeedSequence reads it: each integer as 32-bit words, least significant first."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a seed must be a non-negative integer, got {value}")
        words = [value & _M32]
        value >>= 32
        while value:
            words.append(value & _M32)
            value >>= 32
        return words
    return [w for v in value for w in _words(v)]


def _pool(entropy: int | Sequence[int], spawn_key: tuple[int, ...]) -> list[int]:
    """SeedSequence's mixed entropy pool (four 32-bit words)."""
    run, spawn = _words(entropy), _words(spawn_key)
    if spawn and len(run) < _POOL:
        run += [0] * (_POOL - len(run))
    data = run + spawn
    h = _INIT_A

    def hashmix(value: int) -> int:
        nonlocal h
        value ^= h
        h = (h * _MULT_A) & _M32
        value = (value * h) & _M32
        return value ^ (value >> 16)

    def mix(x: int, y: int) -> int:
        r = (_MIX_L * x - _MIX_R * y) & _M32
        return r ^ (r >> 16)

    pool = [hashmix(data[i] if i < len(data) else 0) for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(_POOL, len(data)):
        for dst in range(_POOL):
            pool[dst] = mix(pool[dst], hashmix(data[src]))
    return pool


def _generate(pool: list[int], n64: int) -> list[int]:
    """SeedSequence.generate_state(n64, uint64): 32-bit words read in pairs, low word first."""
    h = _INIT_B
    out32 = []
    for i in range(2 * n64):
        v = pool[i % _POOL] ^ h
        h = (h * _MULT_B) & _M32
        v = (v * h) & _M32
        out32.append(v ^ (v >> 16))
    return [out32[2 * i] | (out32[2 * i + 1] << 32) for i in range(n64)]


class Rng:
    """A PCG64 generator seeded as ``numpy.random.default_rng(seed)`` seeds it: the same seed draws the same
    numbers. `seed` is a non-negative int, a sequence of them, or None for fresh entropy from the OS."""

    def __init__(self, seed: int | Sequence[int] | None = None, *, _spawn_key: tuple[int, ...] = ()):
        if seed is None:
            seed = int.from_bytes(os.urandom(16), "little")
        #: The seed children are spawned from; None for a generator restored from a state (`from_state`).
        self._entropy: int | Sequence[int] | None = seed
        self._spawn_key = _spawn_key
        self._children = 0
        s0, s1, i0, i1 = _generate(_pool(seed, _spawn_key), 4)
        self._inc = ((((i0 << 64) | i1) << 1) | 1) & _M128
        self._state = 0
        self._next()
        self._state = (self._state + ((s0 << 64) | s1)) & _M128
        self._next()

    def _next(self) -> int:
        """Advance and return the next 64-bit output (XSL-RR)."""
        s = self._state = (self._state * _PCG_MULT + self._inc) & _M128
        x, rot = ((s >> 64) ^ s) & _M64, s >> 122
        return ((x >> rot) | (x << (64 - rot))) & _M64

    def random(self, size: int | tuple[int, ...] | None = None) -> Any:
        """Uniform numbers in [0, 1): one float, or an array of `size` filled in order (as numpy fills it)."""
        if size is None:
            return (self._next() >> 11) * _DOUBLE
        shape = (size,) if isinstance(size, int) else tuple(size)
        return np.array([(self._next() >> 11) * _DOUBLE for _ in range(math.prod(shape))]).reshape(shape)

    def spawn(self, n: int) -> list[Rng]:
        """`n` independent children, the ones ``Generator.spawn`` makes from the same seed."""
        if self._entropy is None:
            raise ValueError("a generator restored from a state has no seed to spawn from")
        start, self._children = self._children, self._children + n
        return [Rng(self._entropy, _spawn_key=(*self._spawn_key, i)) for i in range(start, start + n)]

    @property
    def state(self) -> dict[str, Any]:
        """The state, as numpy's ``bit_generator.state`` writes it (a new dict: a snapshot)."""
        return {
            "bit_generator": "PCG64",
            "state": {"state": self._state, "inc": self._inc},
            "has_uint32": 0,
            "uinteger": 0,
        }

    @state.setter
    def state(self, value: dict[str, Any]) -> None:
        if not isinstance(value, dict) or value.get("bit_generator") != "PCG64":
            raise ValueError("not a PCG64 state")
        self._state = int(value["state"]["state"]) & _M128
        self._inc = int(value["state"]["inc"]) & _M128

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Rng:
        """A generator that goes on from `state` (from `state` of another), without seeding one first."""
        rng = cls.__new__(cls)
        rng._entropy, rng._spawn_key, rng._children = None, (), 0
        rng.state = state
        return rng


def fresh_seed(top: int) -> int:
    """A new seed in [0, top] from the OS's entropy: for a run whose two halves must draw the same numbers
    (two models side by side) when the user chose no seed."""
    return int.from_bytes(os.urandom(16), "little") % (top + 1)
