#!/usr/bin/env bash
# RouteSAE: husai's sae-routed plugin against bench/routesae_torch.py (a PyTorch eager peer of the same maths:
# SAELens has no routed SAE), side by side on the same machine and the same multi-layer bank.
#   husai : the real plugin through `husai-audit train` (a signed run in a temporary store); rows/s is the
#           driver's (metrics.json: every step after the first, which is the warm-up), so 301 steps time 300
#   torch : bench/routesae_torch.py --router weighted (one untimed warm-up step, then 300 timed)
#   paper : the same peer with --router paper (the paper's form: the SAE encodes p * x; quality only)
#
#   bench/routed_vs_torch.sh [ROUNDS]        (default 3; husai and torch alternate which goes first each round)
#
# Data: /work/shared/data/minilm_resid_layers_dev.safetensors (MiniLM embeddings and layers 1-6, 16384 rows);
# the last 3277 rows (ceil 20 %) held out on both sides. d_sae 1536, k 32, batch 1024, lr 1e-3, seed 7.
# Env: HUSAI_SAELENS_VENV (torch, numpy, safetensors; default /work/venv-peer), HUSAI_BENCH_THREADS (2),
# HUSAI_BENCH_SEED (7), HUSAI_BENCH_STEPS (300), HUSAI_BENCH_PAPER (1: also train the paper's form once).
# Quality on several seeds: for s in 7 8 9; do HUSAI_BENCH_SEED=$s bench/routed_vs_torch.sh 1; done
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
BANK=${HUSAI_LAYER_BANK:-/work/shared/data/minilm_resid_layers_dev.safetensors}
THREADS=${HUSAI_BENCH_THREADS:-2}
SEED=${HUSAI_BENCH_SEED:-7}
STEPS=${HUSAI_BENCH_STEPS:-300}
PAPER=${HUSAI_BENCH_PAPER:-1}
VENV=${HUSAI_SAELENS_VENV:-/work/venv-peer}
PY="$VENV/bin/python"
if [ ! -x "$PY" ] || ! "$PY" -c 'import torch, numpy, safetensors' 2>/dev/null; then
  echo "$PY: needs torch, numpy and safetensors (python3 -m venv $VENV && $VENV/bin/pip install torch numpy safetensors)" >&2
  exit 2
fi
cargo build -q --release -p husai-audit -p husai-sae-routed
BIN=target/release/husai-audit

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$BIN" keygen "$WORK/bench" >/dev/null
RESULTS="$WORK/results.jsonl"
n=0
husai() {
  n=$((n + 1))
  RAYON_NUM_THREADS=$THREADS "$BIN" train --plugin sae-routed --data "$BANK" --campaign bench --seed "$SEED" \
    --key "$WORK/bench.pem" --results "$WORK/store$n" --keys keys \
    --set d_sae=1536 --set k=32 --set batch=1024 --set steps=$((STEPS + 1)) --set eval.fraction=0.2 >/dev/null 2>&1
  "$PY" - "$(find "$WORK/store$n" -name metrics.json | head -n 1)" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
e = m["eval"]
out = {"impl": "husai", "rows_per_s": m["rows_per_s"], "fvu": e["fvu"], "l0": e["l0"],
       "router_entropy": e["router_entropy"], "ln_layers": e["router_entropy_max"]}
out.update({k: v for k, v in e.items() if k.startswith(("share_", "fvu_"))})
print(json.dumps(out))
PY
}
torch() {
  "$PY" bench/routesae_torch.py --bank "$BANK" --eval-rows 3277 --d-sae 1536 --k 32 --batch 1024 --steps "$STEPS" \
    --seed "$SEED" --threads "$THREADS" --router "$1" | tail -n 1
}
for ((r = 0; r < ROUNDS; r++)); do
  order=(husai torch); ((r % 2)) && order=(torch husai)
  for impl in "${order[@]}"; do
    case $impl in
      husai) line=$(husai) ;;
      torch) line=$(torch weighted) ;;
    esac
    echo "$impl $line" | tee -a "$RESULTS" >&2
  done
done
if [ "$PAPER" = 1 ]; then
  echo "paper $(torch paper)" | tee -a "$RESULTS" >&2
fi

"$PY" - "$RESULTS" <<'PY'
import json, statistics as st, sys
runs = {}
for line in open(sys.argv[1]):
    impl, js = line.split(" ", 1)
    runs.setdefault(impl, []).append(json.loads(js))
med = lambda v, k: st.median(x[k] for x in v)
ours = med(runs["husai"], "rows_per_s")
print("| impl | rows/s (median) | husai ÷ impl | FVU | router entropy (ln L) | runs |")
print("|---|---|---|---|---|---|")
for impl, v in runs.items():
    rate = med(v, "rows_per_s")
    ratio = "—" if impl == "husai" else f"**{ours / rate:.2f}x**"
    print(f"| {impl} | {rate:,.0f} | {ratio} | {med(v, 'fvu'):.5f} | {med(v, 'router_entropy'):.3f} "
          f"({v[0]['ln_layers']:.3f}) | {len(v)} |")
print()
for impl, v in runs.items():
    print(impl, "shares:", {k[6:]: round(med(v, k), 3) for k in v[0] if k.startswith("share_")})
    print(impl, "fvu per layer:", {k[4:]: round(med(v, k), 3) for k in v[0] if k.startswith("fvu_") and all(k in x for x in v)})
print("all rows/s:", {k: [x["rows_per_s"] for x in v] for k, v in runs.items()})
PY
