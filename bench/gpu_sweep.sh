#!/usr/bin/env bash
# Hyper-parameter sweep and bundled-model training on one CUDA GPU, all runs in parallel.
#
# The "default" candidates get the number of steps each one completes in 10 minutes on the 2-core CPU
# (step times measured there with bf16 autocast: 2×512 B32 215 ms, 3×512 322 ms, 2×640 298 ms, 2×512 B64×T64
# 190 ms; ~60 s of evaluation subtracted), so their learning curves show which config is best at a 10-minute
# CPU budget without spending 10 CPU-minutes on each. The "bundle" candidates are the bundled-model tries.
#
# usage: bench/gpu_sweep.sh CORPORA_DIR OUT_DIR [SECONDS]
set -uo pipefail
corpora=$1; out=$2; limit=${3:-360}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
train() { local name=$1; shift; timeout "$limit" python3 -m repl.cli train "$@" --out "$out/$name" --device cuda \
  --sample-len 0 --precision "${PRECISION:-auto}" >"$out/$name.log" 2>&1 & }
N=$corpora/nietzsche.txt; S=$corpora/tinyshakespeare.txt
# default candidates (CPU-equivalent step budgets)
train A  "$N" --steps 2500 --hidden-size 512 --num-layers 2 --dropout 0.25
train B  "$N" --steps 2500 --hidden-size 512 --num-layers 2 --dropout 0.4
train C  "$N" --steps 1680 --hidden-size 512 --num-layers 3 --dropout 0.3
train D  "$N" --steps 1810 --hidden-size 640 --num-layers 2 --dropout 0.35
train E  "$N" --steps 2840 --hidden-size 512 --num-layers 2 --dropout 0.3 --batch-size 64 --seq-len 64
train SA "$S" --steps 2500 --hidden-size 512 --num-layers 2 --dropout 0.25
train SB "$S" --steps 2500 --hidden-size 512 --num-layers 2 --dropout 0.1
# bundled-model candidates (≤ 8M parameters so float16 weights fit 16 MB)
train b1 "$N" --minutes 5.5 --hidden-size 512 --num-layers 3 --dropout 0.4 --batch-size 64 --lr 2e-3 --eval-every 250
train b2 "$N" --minutes 5.5 --hidden-size 768 --num-layers 2 --dropout 0.5 --batch-size 64 --lr 2e-3 --eval-every 250
train b3 "$N" --minutes 5.5 --hidden-size 512 --num-layers 3 --dropout 0.4 --batch-size 64 --lr 2e-3 \
  --weight-decay 0.1 --eval-every 250
wait
for f in "$out"/*/metrics.jsonl; do
  python3 - "$f" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
best = min(rows, key=lambda r: r["val_bpc"])
print(f"{sys.argv[1].split('/')[-2]:>3}: best val {best['val_bpc']:.4f} bpc at step {best['step']} "
      f"(last step {rows[-1]['step']}, {len(rows)} evals)")
PY
done
