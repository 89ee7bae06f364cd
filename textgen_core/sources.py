"""Where a model's training text came from: one record per file, kept in its checkpoint.

Its own module because opening a checkpoint reads these records and nothing else of the corpus reader
(`textgen_core.corpus`), which sampling then need not import.
"""

from __future__ import annotations

from typing import NamedTuple


class Source(NamedTuple):
    """One file of a corpus, identified by name and content hash (stored in checkpoints for --resume checks).

    `path` is where the file was read from, absolute, when known: the copy meter (`textgen_core.copies`) finds a
    model's training text there again, checked by the hash. It is optional (None) so that records written before
    it, and sources whose place means nothing elsewhere, still read; comparisons between corpora use the name and
    the hash, never the path, since the same file may be read from another folder."""

    name: str
    sha256: str
    chars: int
    path: str | None = None

    def to_dict(self) -> dict:
        d: dict = {"name": self.name, "sha256": self.sha256, "chars": self.chars}
        return d if self.path is None else {**d, "path": self.path}

    @classmethod
    def from_dict(cls, d: dict) -> Source:
        path = d.get("path")
        return cls(str(d["name"]), str(d["sha256"]), int(d["chars"]), path if isinstance(path, str) else None)
