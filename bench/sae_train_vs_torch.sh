#!/usr/bin/env bash
# SAE training throughput and quality, side by side on the same machine and the SAME data:
#   husai  : husai-kernels through the sae-topk plugin's training path (examples/train_bench.rs: the trainer driver
#            with metric stream, divergence checks, AuxK at the plugin's defaults)
#   torch  : the PyTorch eager peer /work/shared/bench/torch_sae_reference.py
#   saelens: SAELens 6 itself, /work/shared/bench/saelens_peer.py --arch topk (minilm case only)
#
#   bench/sae_train_vs_torch.sh [ROUNDS]        (default 3; the order of the trainers rotates every round)
#
# Cases (the peers' own documented commands):
#   synth : d_in 512, d_sae 4096, k 32, batch 4096, 30 timed steps. The matrix comes from the torch peer's own
#           synthetic() (65536 rows, 2048 features, L0 8, seed 0), saved once to an .npy that every trainer reads.
#           FVU on the first 16384 rows (in-sample, the torch peer's protocol).
#   minilm: /work/shared/data/minilm_l3_resid_dev.npy [32768, 384] split as sae-topk splits it by default: rows
#           0..29491 train, the last 10 % (29491..32768) held out, written once to two .npy files. d_sae 1536, k 32,
#           batch 1024, 300 timed steps, lr 1e-3. husai and SAELens report held-out FVU (--eval-npy); torch reports
#           in-sample FVU (it has no held-out option) and is there for rows/s.
# The metric stream's cost: every husai line carries stream_s / wall_s (time spent building and writing
# metrics.jsonl lines and progress text, measured inside the run), at the plugin's default log_every 10; the
# "husai-log1" runs (minilm) repeat husai with a line every step, the worst case.
# Env overrides: HUSAI_PEER_VENV (a venv with torch, numpy, sae-lens; default /work/venv-peer, else .venv),
# HUSAI_TORCH_PEER, HUSAI_SAELENS_PEER, HUSAI_REAL_NPY, HUSAI_BENCH_THREADS, HUSAI_BENCH_STEPS_SYNTH,
# HUSAI_BENCH_STEPS_MINILM (a smoke run: HUSAI_BENCH_STEPS_SYNTH=3 HUSAI_BENCH_STEPS_MINILM=10 ... 1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SHARED=${HUSAI_SHARED:-/work/shared}
TORCH_PEER=${HUSAI_TORCH_PEER:-$SHARED/bench/torch_sae_reference.py}
SAELENS_PEER=${HUSAI_SAELENS_PEER:-$SHARED/bench/saelens_peer.py}
REAL=${HUSAI_REAL_NPY:-$SHARED/data/minilm_l3_resid_dev.npy}
THREADS=${HUSAI_BENCH_THREADS:-$(nproc)}
STEPS_SYNTH=${HUSAI_BENCH_STEPS_SYNTH:-30}
STEPS_MINILM=${HUSAI_BENCH_STEPS_MINILM:-300}
VENV=${HUSAI_PEER_VENV:-/work/venv-peer}
[ -x "$VENV/bin/python" ] || VENV=.venv
PY="$VENV/bin/python"

if [ ! -x "$PY" ] || ! "$PY" -c 'import torch, numpy, sae_lens' 2>/dev/null; then
  echo "creating $VENV with torch + numpy + sae-lens (large download, several minutes)" >&2
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q torch numpy sae-lens safetensors
fi
cargo build -q --release -p husai-kernels --example train_bench
OURS=target/release/examples/train_bench

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PY" - "$TORCH_PEER" "$WORK" "$REAL" <<'PY'
import importlib.util, sys, numpy as np
spec = importlib.util.spec_from_file_location("peer", sys.argv[1]); peer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer)
np.save(sys.argv[2] + "/synth.npy", peer.synthetic(65536, 512, 4 * 512, 8, 0).numpy())  # the peer's defaults
x = np.load(sys.argv[3])
cut = x.shape[0] - -(-x.shape[0] // 10)  # sae-topk's default: the last ceil(10 %) of the rows held out
np.save(sys.argv[2] + "/minilm_train.npy", np.ascontiguousarray(x[:cut], dtype=np.float32))
np.save(sys.argv[2] + "/minilm_eval.npy", np.ascontiguousarray(x[cut:], dtype=np.float32))
PY

declare -A NPY=([synth]="$WORK/synth.npy" [minilm]="$WORK/minilm_train.npy")
declare -A ARGS=([synth]="--d-sae 4096 --k 32 --batch 4096 --steps $STEPS_SYNTH"
                 [minilm]="--d-sae 1536 --k 32 --batch 1024 --steps $STEPS_MINILM")
declare -A IMPLS=([synth]="torch husai" [minilm]="torch husai saelens husai-log1")
RESULTS="$WORK/results.jsonl"
for case in synth minilm; do
  read -r -a impls <<< "${IMPLS[$case]}"
  n=${#impls[@]}
  for ((r = 0; r < ROUNDS; r++)); do
    # Rotate which trainer goes first so drift in machine load hits all alike.
    for ((i = 0; i < n; i++)); do
      impl=${impls[$(((i + r) % n))]}
      eval_args=()
      [ "$case" = minilm ] && eval_args=(--eval-npy "$WORK/minilm_eval.npy")
      case $impl in
        torch) line=$(OMP_NUM_THREADS=$THREADS "$PY" "$TORCH_PEER" --npy "${NPY[$case]}" ${ARGS[$case]}) ;;
        husai) line=$("$OURS" --npy "${NPY[$case]}" ${ARGS[$case]} --threads "$THREADS" "${eval_args[@]}") ;;
        husai-log1) line=$("$OURS" --npy "${NPY[$case]}" ${ARGS[$case]} --threads "$THREADS" "${eval_args[@]}" \
                            --log-every 1) ;;
        saelens) line=$("$PY" "$SAELENS_PEER" --npy "${NPY[$case]}" --arch topk ${ARGS[$case]} --lr 1e-3 --seed 7 \
                         --threads "$THREADS" "${eval_args[@]}" --eval-rows 0 2>/dev/null | tail -n 1) ;;
      esac
      echo "$case $impl $line" | tee -a "$RESULTS" >&2
    done
  done
done

"$PY" - "$RESULTS" <<'PY'
import json, statistics as st, sys
runs = {}
for line in open(sys.argv[1]):
    case, impl, js = line.split(" ", 2)
    runs.setdefault(case, {}).setdefault(impl, []).append(json.loads(js))
med = lambda v, k: st.median(x[k] for x in v)
print("| case | impl | rows/s (median) | husai ÷ impl | FVU (median) | FVU rows | L0 | dead | stream share of step time | runs |")
print("|---|---|---|---|---|---|---|---|---|---|")
for case, by in runs.items():
    ours = med(by["husai"], "rows_per_s")
    for impl, v in by.items():
        rate = med(v, "rows_per_s")
        ratio = "—" if impl.startswith("husai") else f"**{ours / rate:.2f}x**"
        src = v[0].get("eval_source")
        fvu_rows = ("in-sample, first 16384" if src is None else
                    src if impl.startswith("husai") else f"{v[0].get('eval_rows')} rows of {src.split('/')[-1]}")
        dead = f"{med(v, 'dead_fraction'):.4f}" if "dead_fraction" in v[0] else "—"
        stream = (f"{100 * med(v, 'stream_frac'):.3f} % (max {100 * max(x['stream_frac'] for x in v):.3f} %)"
                  if "stream_frac" in v[0] else "—")
        print(f"| {case} | {impl} | {rate:,.0f} | {ratio} | {med(v, 'fvu'):.5f} | {fvu_rows} | {med(v, 'l0'):.2f} "
              f"| {dead} | {stream} | {len(v)} |")
print()
print("all rows/s:", {c: {k: [x["rows_per_s"] for x in v] for k, v in by.items()} for c, by in runs.items()})
print("impls:", sorted({x["impl"] for by in runs.values() for v in by.values() for x in v}))
PY
