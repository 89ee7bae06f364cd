"""Store a run's best checkpoint as the bundled model: float16 weights, the run's metadata unchanged.

    .venv/bin/python bench/pack_bundled.py RUN [OUT]    # OUT defaults to textgen_core/models/nietzsche.safetensors

float16 halves the package (the 2×768 is 14.7 MB instead of 29.4) and costs nothing measurable in bits/char (README,
"The bundled model"); `textgen eval` on the written file is the check.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textgen_core import checkpoint  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: python bench/pack_bundled.py RUN [OUT]", file=sys.stderr)
        return 2
    out = Path(argv[1]) if len(argv) == 2 else checkpoint.bundled_path()
    ck = checkpoint.load(argv[0])
    checkpoint.save(out, {k: v.astype(np.float16) for k, v in ck.tensors.items()}, ck.meta)
    print(f"{out}: step {ck.meta.step}, val {ck.meta.val_bpc:.5f} bpc (float32), {out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
