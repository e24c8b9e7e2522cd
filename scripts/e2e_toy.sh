#!/usr/bin/env bash
# The toy end-to-end chain (issue #11) into a results directory, timing each step:
#   toy model (toy-modadd, a signed data run) -> TOPK_SEEDS TopK and BATCHTOPK_SEEDS BatchTopK SAEs on its resid_pre
#   bank -> a planted data synth run and 5 SAEs on it -> the known-circuit eval -> one trained-vs-random eval per
#   family -> the ood-stress eval of the first planted SAE on its data run -> a strict gate per family on its
#   random_model evidence (--candidate: one of that family's runs) and a strict gate on the OOD evidence
#   (--candidate: that planted SAE) -> husai-audit verify.
# Usage: scripts/e2e_toy.sh RESULTS_DIR [KEY]   (KEY defaults to $HUSAI_SIGNING_KEY; RESULTS_DIR's keys are the
#   trust policy in $KEYS, default keys/, which must trust KEY)
# Sizes: SMALL=1 gives the reduced sizes of audit/tests/suite/eval_e2e.rs; the default is the full toy model
#   (p = 113). TOPK_SEEDS (default 8: the random_model gate asks for 8) and BATCHTOPK_SEEDS (default 5: fewer than
#   the gate asks for, so its gate fails on the seed count) set the seeds; SAE_STEPS overrides the SAEs' steps.
# Needs a release build beside husai-audit (or PLUGIN_DIR): cargo build --release -p husai-audit -p husai-sae-topk
#   -p husai-sae-batchtopk -p husai-data -p husai-toy-modadd -p husai-eval-known-circuit
#   -p husai-eval-trained-vs-random -p husai-eval-ood-stress
# Exit: 0 when every step ran and verify passed, whatever the gates decided (each gate's pass_all is printed).
set -euo pipefail
results=${1:?usage: scripts/e2e_toy.sh RESULTS_DIR [KEY]}
key=${2:-${HUSAI_SIGNING_KEY:?give KEY or set HUSAI_SIGNING_KEY}}
bin=${HUSAI_AUDIT:-target/release/husai-audit}
campaign=${CAMPAIGN:-toy-e2e}
keys=${KEYS:-keys}
topk_seeds=${TOPK_SEEDS:-8}
batchtopk_seeds=${BATCHTOPK_SEEDS:-5}
common=(--key "$key" --results "$results" --keys "$keys" --json)
[[ -n "${PLUGIN_DIR:-}" ]] && common+=(--plugin-dir "$PLUGIN_DIR")
if [[ "${SMALL:-0}" == 1 ]]; then
  toy_sets=(--set p=23 --set d_model=16 --set width=64 --set steps=60 --set eval_every=20 --set train_fraction=0.5)
  sae_steps=${SAE_STEPS:-400}
  sae_sets=(--set d_sae=32 --set k=4 --set "steps=$sae_steps" --set batch=64)
  synth=(--rows 2048 --d-in 16 --n-features 12 --l0 2)
  ood_sets=(--set tasks=12 --set bootstrap=999 --set permutations=999)
  planted_sets=(--set d_sae=24 --set k=2 --set steps=150 --set batch=64)
  eval_sets=(--set random_inits=100 --set random_decoders=100 --set bootstrap=1000)
  tvr_sets=(--set bootstrap=2000)
else
  toy_sets=()
  sae_steps=${SAE_STEPS:-1000}
  sae_sets=(--set d_sae=512 --set k=8 --set "steps=$sae_steps" --set batch=256)
  synth=(--rows 20000 --d-in 64 --n-features 16 --l0 3)
  ood_sets=()
  planted_sets=(--set d_sae=32 --set k=3 --set steps=800 --set batch=256)
  eval_sets=()
  tvr_sets=()
fi
times=()
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }
# step NAME COMMAND...: runs it, records its wall time, and sets `id` to the run id it signed. Called directly, not
# in a command substitution, whose subshell would lose `times`.
step() {
  local name=$1; shift
  local t0; t0=$(now)
  "$@" >"$results/.last.json"
  times+=("$name $(elapsed "$t0")")
  id=$(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v["dir"].rstrip("/").split("/")[-1])' "$results/.last.json")
}
run_dir() { find "$results" -mindepth 2 -maxdepth 2 -name "$1" -type d; }
# train NAME_PREFIX PLUGIN COUNT BANK SETS...: trains seeds 0..COUNT-1; sets `ids`.
train() {
  local prefix=$1 plugin=$2 count=$3 data=$4; shift 4
  local out=() s
  for ((s = 0; s < count; s++)); do
    step "$prefix-seed$s" "$bin" train --plugin "$plugin" --data "$data" "$@" --seed "$s" --campaign "$campaign" "${common[@]}"
    out+=("$id")
  done
  ids=("${out[@]}")
}
mkdir -p "$results"
step toy-model "$bin" data generate --plugin toy-modadd --set seed=0 "${toy_sets[@]}" --campaign "$campaign" "${common[@]}"
toy=$id
bank=$(run_dir "$toy")/resid_pre.npy
train sae-topk sae-topk "$topk_seeds" "$bank" "${sae_sets[@]}"
topk=("${ids[@]}")
train sae-batchtopk sae-batchtopk "$batchtopk_seeds" "$bank" "${sae_sets[@]}"
batchtopk=("${ids[@]}")
step planted-data "$bin" data synth "${synth[@]}" --seed 3 --campaign "$campaign" "${common[@]}"
synth_id=$id
train planted-sae sae-topk 5 "$(run_dir "$synth_id")/activations.npy" "${planted_sets[@]}"
planted=("${ids[@]}")
inputs=(--input "model=$toy")
for i in "${topk[@]:0:5}"; do inputs+=(--input "sae=$i"); done
inputs+=(--input "planted=$synth_id")
for i in "${planted[@]}"; do inputs+=(--input "planted_sae=$i"); done
step known-circuit "$bin" eval --plugin known-circuit "${inputs[@]}" "${eval_sets[@]}" --campaign "$campaign" "${common[@]}"
kc=$id
step ood-stress "$bin" eval --plugin ood-stress --input "sae=${planted[0]}" --input "data=$synth_id" \
  ${ood_sets[@]+"${ood_sets[@]}"} --campaign "$campaign" "${common[@]}"
ood=$id
# tvr NAME RUN_IDS...: the trained-vs-random eval of those SAE runs; sets `id`.
tvr() {
  local name=$1; shift
  local in=() i
  for i in "$@"; do in+=(--input "sae=$i"); done
  step "$name" "$bin" eval --plugin trained-vs-random "${in[@]}" "${tvr_sets[@]}" --campaign "$campaign" "${common[@]}"
}
tvr trained-vs-random-topk "${topk[@]}"
tvr_topk=$id
tvr trained-vs-random-batchtopk "${batchtopk[@]}"
tvr_batch=$id
# gate NAME GATE FLAG FILE CANDIDATE_RUN: the strict gate on one gate's evidence alone (FLAG FILE, e.g.
# --phase4a .../trained_vs_random.json; the other gates allowed missing), printing that gate's checks.
gate() {
  local name=$1 which=$2 flag=$3 file=$4 cand=$5 t0 rc=0 g
  local missing=()
  for g in random_model transcoder ood external; do [[ $g == "$which" ]] || missing+=(--allow-missing "$g"); done
  t0=$(now)
  "$bin" gate "$flag" "$file" --candidate "$(run_dir "$cand")" "${missing[@]}" \
    --key "$key" --results "$results" --keys "$keys" --json >"$results/.gate.json" || rc=$?
  times+=("$name $(elapsed "$t0")")
  # Exit 1 is a gate that failed (its report is still signed); anything else is an error.
  [[ $rc == 0 || $rc == 1 ]] || { echo "e2e_toy.sh: $name exited $rc" >&2; exit 2; }
  python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))
g = [g for g in r["gates"] if g["gate"] == sys.argv[3]][0]
checks = ", ".join("%s=%s (%s)" % (c["metric"], c["value"], c["status"]) for c in g["checks"])
print("%s: pass_all %s, %s %s: %s" % (sys.argv[2], r["pass_all"], sys.argv[3], g["status"], checks))' \
    "$results/.gate.json" "$name" "$which"
}
gate gate-topk random_model --phase4a "$(run_dir "$tvr_topk")/trained_vs_random.json" "${topk[0]}"
gate gate-batchtopk random_model --phase4a "$(run_dir "$tvr_batch")/trained_vs_random.json" "${batchtopk[0]}"
# The ood gate for the SAE its evidence concerns.
gate gate-ood ood --ood "$(run_dir "$ood")/ood_stress_summary.json" "${planted[0]}"
rm -f "$results/.last.json" "$results/.gate.json"
t0=$(now)
"$bin" verify "$results" --keys "$keys" >/dev/null
times+=("verify $(elapsed "$t0")")
echo "known-circuit run: $kc; trained-vs-random runs: $tvr_topk (sae-topk), $tvr_batch (sae-batchtopk); ood-stress run: $ood"
printf '%s\n' "${times[@]}" | awk '{printf "%-32s %8.2f s\n", $1, $2}'
