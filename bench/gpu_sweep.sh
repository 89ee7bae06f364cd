#!/usr/bin/env bash
# A hyper-parameter sweep on one CUDA GPU: every candidate of a list trains at once, each in its own process.
#
# A candidate list (bench/sweeps/*.txt; bench/sweeps/README.md lists the rounds) has one line per run,
# `NAME CORPUS FLAGS…` (CORPUS is a file name in CORPORA_DIR; `#` starts a comment). Candidates for the CPU
# default get `--steps` equal to the steps the same configuration completes in 10 minutes on the 2-core CPU, so
# their learning curves show what 10 CPU-minutes buy without spending 10 CPU-minutes on each; bundled-model
# candidates get `--minutes` or `--steps`.
#
# usage: bench/gpu_sweep.sh LIST CORPORA_DIR OUT_DIR [SECONDS]   (SECONDS: a hard limit per run, default 360)
set -uo pipefail
list=$1; corpora=$2; out=$3; limit=${4:-360}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
while read -r name corpus flags; do
  [[ -z $name || $name == \#* ]] && continue
  # shellcheck disable=SC2086  # the flags are words
  timeout "$limit" python3 -m repl.cli train "$corpora/$corpus" --device cuda $flags --out "$out/$name" \
    --sample-len 0 >"$out/$name.log" 2>&1 &
done <"$list"
wait
for f in "$out"/*/metrics.jsonl; do
  python3 - "$f" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
best = min(rows, key=lambda r: r["val_bpc"])
print(f"{sys.argv[1].split('/')[-2]:>4}: best val {best['val_bpc']:.4f} bpc at step {best['step']} "
      f"(last step {rows[-1]['step']}, {len(rows)} evals, {rows[-1]['elapsed']:.0f} s)")
PY
done
