#!/usr/bin/env bash
# The toy end-to-end chain (issue #11) into a results directory, timing each step:
#   toy model (toy-modadd, a signed data run) -> 5 TopK SAEs on its resid_pre bank -> a planted data synth run and
#   5 SAEs on it -> the known-circuit eval on all of them -> husai-audit verify.
# Usage: scripts/e2e_toy.sh RESULTS_DIR [KEY]   (KEY defaults to $HUSAI_SIGNING_KEY)
# Sizes: SMALL=1 gives the reduced sizes of audit/tests/eval_e2e.rs; the default is the full toy model (p = 113).
# Needs a release build beside husai-audit: cargo build --release -p husai-audit -p husai-sae-topk -p husai-data
#   -p husai-toy-modadd -p husai-eval-known-circuit
set -euo pipefail
results=${1:?usage: scripts/e2e_toy.sh RESULTS_DIR [KEY]}
key=${2:-${HUSAI_SIGNING_KEY:?give KEY or set HUSAI_SIGNING_KEY}}
bin=${HUSAI_AUDIT:-target/release/husai-audit}
campaign=${CAMPAIGN:-toy-e2e}
common=(--key "$key" --results "$results" --json)
if [[ "${SMALL:-0}" == 1 ]]; then
  toy_sets=(--set p=23 --set d_model=16 --set width=64 --set steps=60 --set eval_every=20 --set train_fraction=0.5)
  sae_sets=(--set d_sae=32 --set k=4 --set steps=40 --set batch=64)
  synth=(--rows 2048 --d-in 16 --n-features 12 --l0 2)
  planted_sets=(--set d_sae=24 --set k=2 --set steps=150 --set batch=64)
else
  toy_sets=()
  sae_sets=(--set d_sae=512 --set k=8 --set steps=1000 --set batch=256)
  synth=(--rows 20000 --d-in 64 --n-features 16 --l0 3)
  planted_sets=(--set d_sae=32 --set k=3 --set steps=800 --set batch=256)
fi
times=()
step() { # name, command...
  local name=$1; shift
  local t0; t0=$(date +%s.%N)
  "$@" >"$results/.last.json"
  local t1; t1=$(date +%s.%N)
  times+=("$name $(echo "$t1 - $t0" | bc)")
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v["dir"].rstrip("/").split("/")[-1])' "$results/.last.json"
}
mkdir -p "$results"
toy=$(step toy-model "$bin" data generate --plugin toy-modadd --set seed=0 "${toy_sets[@]}" --campaign "$campaign" "${common[@]}")
toy_dir=$(find "$results" -maxdepth 2 -name "$toy" -type d)
inputs=(--input "model=$toy")
for s in 0 1 2 3 4; do
  id=$(step "sae-seed$s" "$bin" train --plugin sae-topk --data "$toy_dir/resid_pre.npy" "${sae_sets[@]}" --seed "$s" --campaign "$campaign" "${common[@]}")
  inputs+=(--input "sae=$id")
done
synth_id=$(step planted-data "$bin" data synth "${synth[@]}" --seed 3 --campaign "$campaign" "${common[@]}")
synth_dir=$(find "$results" -maxdepth 2 -name "$synth_id" -type d)
inputs+=(--input "planted=$synth_id")
for s in 0 1 2 3 4; do
  id=$(step "planted-sae-seed$s" "$bin" train --plugin sae-topk --data "$synth_dir/activations.npy" "${planted_sets[@]}" --seed "$s" --campaign "$campaign" "${common[@]}")
  inputs+=(--input "planted_sae=$id")
done
ev=$(step known-circuit "$bin" eval --plugin known-circuit "${inputs[@]}" --campaign "$campaign" "${common[@]}")
rm -f "$results/.last.json"
t0=$(date +%s.%N)
"$bin" verify "$results" >/dev/null
times+=("verify $(echo "$(date +%s.%N) - $t0" | bc)")
echo "eval run: $ev"
printf '%s\n' "${times[@]}" | awk '{printf "%-20s %8.2f s\n", $1, $2}'
