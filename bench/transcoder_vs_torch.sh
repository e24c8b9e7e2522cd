#!/usr/bin/env bash
# Issue #14: the transcoder-stress fits (plugins/eval-transcoder-stress/src/fit.rs, a TopK encoder-decoder fitted as
# a transcoder x -> y and as an SAE x -> x) against bench/transcoder_torch.py, a PyTorch eager peer of the same
# maths, side by side on the same machine and the same rows.
#   husai : target/release/examples/fit_bench (fit::fit; rows/s = rows_seen / wall_s of its Fitted)
#   torch : bench/transcoder_torch.py (same rows, split, scaling, init laws, loss, Adam, renorm, batches)
#
#   bench/transcoder_vs_torch.sh [REPS]      (default 3; husai and torch alternate which goes first each rep)
#
# Builds nothing: run `cargo build --release -p husai-eval-transcoder-stress --examples` first.
# Data: TOY_RUN=DIR (a toy-modadd run with resid_pre.npy and mlp_out.npy) if given; else x, y [12769, 128]
# synthesised with numpy into a temporary directory: codes with 8 active of 512 features per row (magnitudes
# 0.5 + Exp(1)) through two random unit-norm dictionaries U (x = s U) and V (y = s V), seed 20261203.
# The last 20 % of rows held out on both sides. d_sae 256, k 32, epochs 20, lr 1e-3, batch 512, seed 0.
# Why 20 epochs (400 steps): at 5 (100 steps) the transcoder has not yet learned anything (held-out FVU > 1 on both
# sides), and a husai fit took 0.15 s, short enough that one scheduler hiccup moved the ratio by 30 %.
# Env: HUSAI_SAELENS_VENV (torch and numpy; default /work/venv-peer), HUSAI_BENCH_THREADS (2), HUSAI_BENCH_SEED (0),
# HUSAI_BENCH_EPOCHS (20).
# Each process runs under `flock /tmp/husai-bench.lock`, so two benches never overlap.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}
THREADS=${HUSAI_BENCH_THREADS:-2}
SEED=${HUSAI_BENCH_SEED:-0}
EPOCHS=${HUSAI_BENCH_EPOCHS:-20}
VENV=${HUSAI_SAELENS_VENV:-/work/venv-peer}
PY="$VENV/bin/python"
BIN=target/release/examples/fit_bench
LOCK=/tmp/husai-bench.lock
if [ ! -x "$PY" ] || ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
  echo "$PY: needs torch and numpy (python3 -m venv $VENV && $VENV/bin/pip install torch numpy)" >&2
  exit 2
fi
if [ ! -x "$BIN" ]; then
  echo "$BIN missing: cargo build --release -p husai-eval-transcoder-stress --examples" >&2
  exit 2
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ -n "${TOY_RUN:-}" ]; then
  X="$TOY_RUN/resid_pre.npy" Y="$TOY_RUN/mlp_out.npy"
  for f in "$X" "$Y"; do [ -f "$f" ] || { echo "TOY_RUN: $f missing" >&2; exit 2; }; done
  echo "data: toy run $TOY_RUN" >&2
else
  X="$WORK/x.npy" Y="$WORK/y.npy"
  "$PY" - "$X" "$Y" <<'PY'
import sys
import numpy as np
rows, d, feats, l0 = 12769, 128, 512, 8
g = np.random.default_rng(20261203)
U = g.standard_normal((feats, d)); U /= np.linalg.norm(U, axis=1, keepdims=True)
V = g.standard_normal((feats, d)); V /= np.linalg.norm(V, axis=1, keepdims=True)
s = np.zeros((rows, feats))
active = np.argsort(g.random((rows, feats)), axis=1)[:, :l0]
np.put_along_axis(s, active, 0.5 + g.exponential(1.0, (rows, l0)), axis=1)
np.save(sys.argv[1], (s @ U).astype(np.float32))
np.save(sys.argv[2], (s @ V).astype(np.float32))
PY
  echo "data: synthetic [12769, 128], 512 features, l0 8" >&2
fi
ARGS=(--x "$X" --y "$Y" --d-sae 256 --k 32 --epochs "$EPOCHS" --lr 1e-3 --batch 512 --seed "$SEED")
RESULTS="$WORK/results.jsonl"
husai() { RAYON_NUM_THREADS=$THREADS flock "$LOCK" "$BIN" "${ARGS[@]}"; }
torch() { flock "$LOCK" "$PY" bench/transcoder_torch.py "${ARGS[@]}" --threads "$THREADS"; }
for ((r = 0; r < REPS; r++)); do
  order=(husai torch); ((r % 2)) && order=(torch husai)
  for impl in "${order[@]}"; do
    "$impl" | while read -r line; do echo "$impl $line"; done | tee -a "$RESULTS" >&2
  done
done

"$PY" - "$RESULTS" <<'PY'
import json, statistics as st, sys
runs = {}
for line in open(sys.argv[1]):
    impl, js = line.split(" ", 1)
    j = json.loads(js)
    runs.setdefault((j["method"], impl), []).append(j)
med = lambda v, k: st.median(x[k] for x in v)
print("| method | husai rows/s | torch rows/s | husai ÷ torch | husai FVU | torch FVU | steps | reps |")
print("|---|---|---|---|---|---|---|---|")
notes = []
for method in ("transcoder", "sae"):
    h, t = runs[(method, "husai")], runs[(method, "torch")]
    rh, rt = med(h, "rows_per_s"), med(t, "rows_per_s")
    fh, ft = med(h, "fvu"), med(t, "fvu")
    print(f"| {method} | {rh:,.0f} | {rt:,.0f} | **{rh / rt:.2f}x** | {fh:.5f} | {ft:.5f} | {h[0]['steps']} | {len(h)} |")
    if abs(fh - ft) > 0.1 * max(fh, ft) + 0.005:
        notes.append(f"{method}: held-out FVU not comparable (husai {fh:.5f}, torch {ft:.5f})")
print()
for (method, impl), v in runs.items():
    print(f"{method} {impl}: rows/s {[round(x['rows_per_s']) for x in v]}, FVU {[round(x['fvu'], 5) for x in v]}")
print("\n".join(notes) if notes else "held-out FVU comparable on both methods (within 10 %)")
PY
