#!/usr/bin/env bash
# SAE training throughput and quality: husai-kernels (Rust, CPU) vs the PyTorch eager peer
# /work/shared/bench/torch_sae_reference.py, side by side on the same machine and the SAME data.
#
#   bench/sae_train_vs_torch.sh [REPEATS]        (default 3; runs alternate peer/ours order)
#
# Cases (the peer's own documented commands):
#   synth : d_in 512, d_sae 4096, k 32, batch 4096, 30 timed steps. The matrix comes from the
#           peer's own synthetic() (65536 rows, 2048 features, L0 8, seed 0), saved once to an
#           .npy that BOTH trainers read, so the data is identical bit for bit.
#   minilm: /work/shared/data/minilm_l3_resid_dev.npy [32768, 384], d_sae 1536, k 32,
#           batch 1024, 300 timed steps.
# Both use 2 threads here (the peer uses torch's default, which is the core count).
# Env overrides: HUSAI_TORCH_PEER, HUSAI_REAL_NPY, HUSAI_BENCH_THREADS.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${1:-3}
PEER=${HUSAI_TORCH_PEER:-/work/shared/bench/torch_sae_reference.py}
REAL=${HUSAI_REAL_NPY:-/work/shared/data/minilm_l3_resid_dev.npy}
THREADS=${HUSAI_BENCH_THREADS:-$(nproc)}

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import torch, numpy' 2>/dev/null; then
  echo "creating .venv with torch + numpy (large download, several minutes)" >&2
  python3 -m venv .venv && .venv/bin/pip install -q torch numpy
fi
cargo build -q --release -p husai-kernels --examples
OURS=target/release/examples/train_bench

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
.venv/bin/python - "$PEER" "$WORK/synth.npy" <<'PY'
import importlib.util, sys, numpy as np
spec = importlib.util.spec_from_file_location("peer", sys.argv[1]); peer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer)
np.save(sys.argv[2], peer.synthetic(65536, 512, 4 * 512, 8, 0).numpy())  # the peer's defaults
PY

declare -A NPY=([synth]="$WORK/synth.npy" [minilm]="$REAL")
declare -A ARGS=([synth]="--d-sae 4096 --k 32 --batch 4096 --steps 30" [minilm]="--d-sae 1536 --k 32 --batch 1024 --steps 300")
RESULTS="$WORK/results.jsonl"
for case in synth minilm; do
  for ((r = 0; r < REPEATS; r++)); do
    # Alternate which trainer goes first so drift in machine load hits both alike.
    if ((r % 2 == 0)); then order="torch ours"; else order="ours torch"; fi
    for impl in $order; do
      if [ "$impl" = torch ]; then
        line=$(OMP_NUM_THREADS=$THREADS .venv/bin/python "$PEER" --npy "${NPY[$case]}" ${ARGS[$case]})
      else
        line=$("$OURS" --npy "${NPY[$case]}" ${ARGS[$case]} --threads "$THREADS")
      fi
      echo "$case $line" | tee -a "$RESULTS" >&2
    done
  done
done

.venv/bin/python - "$RESULTS" <<'PY'
import json, statistics as st, sys
runs = {}
for line in open(sys.argv[1]):
    case, js = line.split(" ", 1)
    d = json.loads(js)
    runs.setdefault(case, {}).setdefault("torch" if d["impl"].startswith("torch") else "ours", []).append(d)
print("| case | torch rows/s (median) | husai rows/s (median) | speed-up | torch FVU | husai FVU | FVU rel. diff | torch L0 | husai L0 | runs |")
print("|---|---|---|---|---|---|---|---|---|---|")
for case, by in runs.items():
    t, o = by["torch"], by["ours"]
    tr, orr = st.median(x["rows_per_s"] for x in t), st.median(x["rows_per_s"] for x in o)
    tf, of = st.median(x["fvu"] for x in t), st.median(x["fvu"] for x in o)
    print(f"| {case} | {tr:,.0f} | {orr:,.0f} | {orr / tr:.2f}x | {tf:.5f} | {of:.5f} | {(of - tf) / tf * 100:+.2f}% "
          f"| {st.median(x['l0'] for x in t):.2f} | {st.median(x['l0'] for x in o):.2f} | {len(t)}+{len(o)} |")
print()
print("impls:", sorted({x["impl"] for by in runs.values() for v in by.values() for x in v}))
print("all rows/s:", {c: {k: [x["rows_per_s"] for x in v] for k, v in by.items()} for c, by in runs.items()})
PY
