#!/usr/bin/env bash
# Every SAE family, husai against SAELens 6 itself (or, for a family SAELens lacks, a PyTorch eager peer of the
# same maths), side by side on the same machine and the SAME data:
#   husai  : examples/train_bench.rs (the family built by its plugin's own config parser, the plugins' engine and
#            driver: metric stream, divergence checks, AuxK, gradient clipping at the plugin's defaults)
#   saelens: /work/shared/bench/saelens_peer.py (SAELens's training SAEs, losses, threshold handling, SAETrainer)
#
#   bench/families_vs_saelens.sh [ROUNDS]        (default 3; the order of the two trainers alternates every round)
#
# Cases (husai family -> SAELens architecture), each set to land at held-out L0 32 +- 10 % (measured, 300 steps,
# seeds 7 and 8):
#   minilm-topk      : topk k 32                         -> topk k 32
#   minilm-batchtopk : batchtopk k 32                    -> batchtopk k 32 (inference: the global threshold)
#   minilm-relu      : relu l1_coeff 2                   -> standard --l1 2
#   minilm-jumprelu  : jumprelu tanh, l0_coeff 0.5       -> jumprelu --jumprelu-mode tanh --l0-coeff 0.5
#   minilm-matryoshka: matryoshka k 32, widths 192,384,768,1536 -> matryoshka_batchtopk, the same widths
#   minilm-htopk     : hierarchical_topk K 32                 -> bench/htopk_torch.py (SAELens has no such trainer:
#                      a PyTorch eager peer of the same maths, checked against ours with its --check)
#   minilm-htopk-gram: the same against that peer's --gram form (no [B, K, d_in] tensors; its faster form)
#   synth-batchtopk  : batchtopk k 32 on synthetic d_in 512 / d_sae 4096, batch 4096 (both trainers alike)
# MiniLM: /work/shared/data/minilm_l3_resid_dev.npy [32768, 384] split as the plugins split it by default (rows
# 0..29491 train, 29491..32768 held out, written once to two .npy files); d_sae 1536, batch 1024, 300 timed steps,
# lr 1e-3, seed 7; FVU, L0 and dead fraction on the held-out rows. Synthetic: the torch peer's synthetic() (65536
# rows, 2048 features, L0 8, seed 0), 30 timed steps, metrics on the first 16384 rows (in-sample) for both.
# Env overrides: HUSAI_SAELENS_VENV (torch, numpy, sae-lens; default /work/venv-peer), HUSAI_SAELENS_PEER,
# HUSAI_TORCH_PEER (for its synthetic()), HUSAI_REAL_NPY, HUSAI_BENCH_THREADS (default 2), HUSAI_BENCH_STEPS_MINILM,
# HUSAI_BENCH_STEPS_SYNTH, HUSAI_BENCH_CASES (space-separated subset of the case names above), HUSAI_BENCH_SEED
# (default 7; both trainers use it), HUSAI_BENCH_EXTRA_HUSAI / HUSAI_BENCH_EXTRA_SAELENS (extra flags for one side).
# Quality on several seeds, e.g.: for s in 7 8 9 10 11; do HUSAI_BENCH_SEED=$s HUSAI_BENCH_CASES=minilm-jumprelu
# bench/families_vs_saelens.sh 1; done
# A smoke run: HUSAI_BENCH_STEPS_MINILM=10 HUSAI_BENCH_STEPS_SYNTH=2 bench/families_vs_saelens.sh 1
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SHARED=${HUSAI_SHARED:-/work/shared}
SAELENS_PEER=${HUSAI_SAELENS_PEER:-$SHARED/bench/saelens_peer.py}
TORCH_PEER=${HUSAI_TORCH_PEER:-$SHARED/bench/torch_sae_reference.py}
REAL=${HUSAI_REAL_NPY:-$SHARED/data/minilm_l3_resid_dev.npy}
THREADS=${HUSAI_BENCH_THREADS:-2}
STEPS_MINILM=${HUSAI_BENCH_STEPS_MINILM:-300}
STEPS_SYNTH=${HUSAI_BENCH_STEPS_SYNTH:-30}
SEED=${HUSAI_BENCH_SEED:-7}
VENV=${HUSAI_SAELENS_VENV:-/work/venv-peer}
PY="$VENV/bin/python"
CASES=${HUSAI_BENCH_CASES:-minilm-topk minilm-batchtopk minilm-relu minilm-jumprelu minilm-matryoshka minilm-htopk synth-batchtopk}

if [ ! -x "$PY" ] || ! "$PY" -c 'import torch, numpy, sae_lens' 2>/dev/null; then
  echo "$PY: needs torch, numpy and sae-lens (python3 -m venv $VENV && $VENV/bin/pip install torch numpy sae-lens safetensors)" >&2
  exit 2
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
cut = x.shape[0] - -(-x.shape[0] // 10)  # the plugins' default: the last ceil(10 %) of the rows held out
np.save(sys.argv[2] + "/minilm_train.npy", np.ascontiguousarray(x[:cut], dtype=np.float32))
np.save(sys.argv[2] + "/minilm_eval.npy", np.ascontiguousarray(x[cut:], dtype=np.float32))
PY

MINI="--d-sae 1536 --batch 1024 --steps $STEPS_MINILM --lr 1e-3 --seed $SEED --threads $THREADS"
SYN="--d-sae 4096 --batch 4096 --steps $STEPS_SYNTH --lr 1e-3 --seed $SEED --threads $THREADS"
declare -A DATA=([minilm]="--npy $WORK/minilm_train.npy --eval-npy $WORK/minilm_eval.npy" [synth]="--npy $WORK/synth.npy")
declare -A HUSAI=(
  [minilm-topk]="--family topk --k 32 $MINI"
  [minilm-batchtopk]="--family batchtopk --k 32 $MINI"
  [minilm-relu]="--family relu --set l1_coeff=2 $MINI"
  [minilm-jumprelu]="--family jumprelu --set sparsity=\"tanh\" --set l0_coeff=0.5 $MINI"
  [minilm-matryoshka]="--family matryoshka --k 32 --set matryoshka_widths=[192,384,768,1536] $MINI"
  [minilm-htopk]="--family hierarchical_topk --k 32 $MINI"
  [minilm-htopk-gram]="--family hierarchical_topk --k 32 $MINI"
  [synth-batchtopk]="--family batchtopk --k 32 $SYN"
)
declare -A PEER=(
  [minilm-topk]="--arch topk --k 32 $MINI --eval-rows 0"
  [minilm-batchtopk]="--arch batchtopk --k 32 $MINI --eval-rows 0"
  [minilm-relu]="--arch standard --l1 2 $MINI --eval-rows 0"
  [minilm-jumprelu]="--arch jumprelu --jumprelu-mode tanh --l0-coeff 0.5 $MINI --eval-rows 0"
  [minilm-matryoshka]="--arch matryoshka_batchtopk --k 32 --matryoshka-widths 192,384,768,1536 $MINI --eval-rows 0"
  [minilm-htopk]="--k 32 $MINI"
  [minilm-htopk-gram]="--gram --k 32 $MINI"
  [synth-batchtopk]="--arch batchtopk --k 32 $SYN"
)
# The peer of each case: SAELens unless named here.
declare -A PEER_SCRIPT=([minilm-htopk]=bench/htopk_torch.py [minilm-htopk-gram]=bench/htopk_torch.py)
RESULTS="$WORK/results.jsonl"
for case in $CASES; do
  [ -n "${HUSAI[$case]:-}" ] || { echo "unknown case $case" >&2; exit 2; }
  data=${DATA[${case%%-*}]}
  for ((r = 0; r < ROUNDS; r++)); do
    # Alternate which trainer goes first so drift in machine load hits both alike.
    order=(husai saelens); ((r % 2)) && order=(saelens husai)
    for impl in "${order[@]}"; do
      case $impl in
        husai) line=$("$OURS" $data ${HUSAI[$case]} ${HUSAI_BENCH_EXTRA_HUSAI:-}) ;;
        saelens) line=$("$PY" "${PEER_SCRIPT[$case]:-$SAELENS_PEER}" $data ${PEER[$case]} ${HUSAI_BENCH_EXTRA_SAELENS:-} 2>/dev/null | tail -n 1) ;;
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
print("| case | impl | rows/s (median) | husai ÷ peer | FVU | L0 | dead | eval rows | runs |")
print("|---|---|---|---|---|---|---|---|---|")
for case, by in runs.items():
    ours = med(by["husai"], "rows_per_s")
    for impl in ("husai", "saelens"):
        v = by.get(impl, [])
        if not v:
            continue
        rate = med(v, "rows_per_s")
        ratio = f"**{ours / rate:.2f}x**" if impl == "saelens" else "—"
        impl = "torch eager" if impl == "saelens" and "torch" in v[0].get("impl", "") else impl
        rows = v[0].get("eval_source") if impl == "husai" else f"{v[0].get('eval_rows')} rows"
        print(f"| {case} | {impl} | {rate:,.0f} | {ratio} | {med(v, 'fvu'):.5f} | {med(v, 'l0'):.2f} "
              f"| {med(v, 'dead_fraction'):.4f} | {rows} | {len(v)} |")
print()
for case, by in runs.items():
    # Nested families: the held-out FVU of each level both sides report (median over rounds).
    keys = [k for k in by["husai"][0] if k.startswith(("fvu_k_", "fvu_prefix_"))]
    for impl, v in by.items():
        common = [k for k in keys if all(k in x for x in v)]
        if common:
            print(f"{case} {impl} level FVU:", {k: round(med(v, k), 5) for k in common})
print("all rows/s:", {c: {k: [x["rows_per_s"] for x in v] for k, v in by.items()} for c, by in runs.items()})
PY
