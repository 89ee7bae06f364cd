"""Store a run's best checkpoint as the bundled model: float16 weights, the run's metadata unchanged.

    .venv/bin/python tools/pack_bundled.py RUN [OUT]    # OUT defaults to textgen_core/models/nietzsche.safetensors

float16 halves the package (the 2×768 is 14.7 MB instead of 29.4) and costs nothing measurable in bits/char
(docs/record/bundled-model.md); `textgen eval` on the written file is the check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textgen_core import checkpoint  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a training run folder or a checkpoint file (its best weights are packed)")
    p.add_argument("out", nargs="?", type=Path, help="where to write (default: the bundled model's file)")
    args = p.parse_args(argv)
    out = args.out if args.out is not None else checkpoint.bundled_path()
    ck = checkpoint.load(args.run)
    checkpoint.save(out, {k: v.astype(np.float16) for k, v in ck.tensors.items()}, ck.meta)
    print(f"{out}: step {ck.meta.step}, val {ck.meta.val_bpc:.5f} bpc (float32), {out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
