#!/usr/bin/env bash
# The release chain end to end on husai's own evidence (issues #11 and #14) into a results directory, timing each
# step:
#   toy model (toy-modadd, a signed data run) and a planted `data synth` run -> SEEDS TopK and SEEDS BatchTopK SAEs
#   on the planted bank -> known-circuit (the toy embedding, the planted dictionary recovered by 5 TopK SAEs) ->
#   trained-vs-random per family -> transcoder-stress on the toy model's MLP and on the planted run's ground truth ->
#   ood-stress for every SAE -> select over the husai runs -> the strict gate on all four kinds of evidence for the
#   selected candidate -> husai-audit verify.
# Usage: scripts/e2e_toy.sh RESULTS_DIR [KEY]   (KEY defaults to $HUSAI_SIGNING_KEY; RESULTS_DIR's keys are the
#   trust policy in $KEYS, default keys/, which must trust KEY)
# Sizes: SMALL=1 gives the reduced sizes of audit/tests/suite/release_e2e.rs; the default is the full toy model
#   (p = 113). SEEDS (default 8: the random_model and transcoder gates ask for 8) sets the seeds per family.
# Needs a release build beside husai-audit (or PLUGIN_DIR): cargo build --release -p husai-audit -p husai-sae-topk
#   -p husai-sae-batchtopk -p husai-data -p husai-toy-modadd -p husai-eval-known-circuit
#   -p husai-eval-trained-vs-random -p husai-eval-ood-stress -p husai-eval-transcoder-stress
# Exit: 0 when every step ran and verify passed, whatever the gate decided (its verdicts are printed).
set -euo pipefail
results=${1:?usage: scripts/e2e_toy.sh RESULTS_DIR [KEY]}
key=${2:-${HUSAI_SIGNING_KEY:?give KEY or set HUSAI_SIGNING_KEY}}
bin=${HUSAI_AUDIT:-target/release/husai-audit}
campaign=${CAMPAIGN:-toy-e2e}
decisions=${DECISIONS:-decisions}
keys=${KEYS:-keys}
seeds=${SEEDS:-8}
signing=(--key "$key" --results "$results" --keys "$keys" --json)
common=("${signing[@]}")
[[ -n "${PLUGIN_DIR:-}" ]] && common+=(--plugin-dir "$PLUGIN_DIR")
tc_common=(--set "select_seeds=[0,1,2,3,4]" --set "confirm_seeds=[10,11,12,13,14,15,16,17]")
if [[ "${SMALL:-0}" == 1 ]]; then
  toy_sets=(--set p=23 --set d_model=16 --set width=64 --set steps=60 --set eval_every=20 --set train_fraction=0.5)
  synth=(--rows 2048 --d-in 16 --n-features 12 --l0 2)
  sae_sets=(--set d_sae=24 --set k=2 --set steps=150 --set batch=64)
  kc_sets=(--set random_inits=100 --set random_decoders=100 --set bootstrap=1000)
  tvr_sets=(--set bootstrap=2000)
  tc_common+=(--set bootstrap=999 --set random_pairs=8 --set batch=64 --set lr=0.005)
  tc_toy=(--set "d_sae=[16,32]" --set "k=[4]" --set "epochs=[20]")
  tc_synth=(--set "d_sae=[24]" --set "k=[2]" --set "epochs=[10,30]")
  ood_sets=(--set tasks=12 --set bootstrap=999 --set permutations=999)
else
  toy_sets=()
  synth=(--rows 20000 --d-in 64 --n-features 16 --l0 3)
  sae_sets=(--set d_sae=32 --set k=3 --set steps=800 --set batch=256)
  kc_sets=()
  tvr_sets=()
  tc_toy=()
  tc_synth=(--set "d_sae=[32]" --set "k=[3]" --set "epochs=[10,30]" --set lr=0.003 --set batch=256)
  ood_sets=()
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
# train PLUGIN COUNT BANK SETS...: trains seeds 0..COUNT-1; sets `ids`.
train() {
  local plugin=$1 count=$2 data=$3; shift 3
  local out=() s
  for ((s = 0; s < count; s++)); do
    step "$plugin-seed$s" "$bin" train --plugin "$plugin" --data "$data" "$@" --seed "$s" --campaign "$campaign" "${common[@]}"
    out+=("$id")
  done
  ids=("${out[@]}")
}
mkdir -p "$results"
step toy-model "$bin" data generate --plugin toy-modadd --set seed=0 ${toy_sets[@]+"${toy_sets[@]}"} --campaign "$campaign" "${common[@]}"
toy=$id
step planted-data "$bin" data synth "${synth[@]}" --seed 3 --campaign "$campaign" "${common[@]}"
synth_id=$id
bank=$(run_dir "$synth_id")/activations.npy
train sae-topk "$seeds" "$bank" "${sae_sets[@]}"
topk=("${ids[@]}")
train sae-batchtopk "$seeds" "$bank" "${sae_sets[@]}"
batchtopk=("${ids[@]}")
inputs=(--input "model=$toy" --input "planted=$synth_id")
for i in "${topk[@]:0:5}"; do inputs+=(--input "planted_sae=$i"); done
step known-circuit "$bin" eval --plugin known-circuit "${inputs[@]}" ${kc_sets[@]+"${kc_sets[@]}"} --campaign "$campaign" "${common[@]}"
kc=$id
# tvr NAME RUN_IDS...: the trained-vs-random eval of those SAE runs; sets `id`.
tvr() {
  local name=$1; shift
  local in=() i
  for i in "$@"; do in+=(--input "sae=$i"); done
  step "$name" "$bin" eval --plugin trained-vs-random "${in[@]}" ${tvr_sets[@]+"${tvr_sets[@]}"} --campaign "$campaign" "${common[@]}"
}
tvr trained-vs-random-topk "${topk[@]}"
tvr_topk=$id
tvr trained-vs-random-batchtopk "${batchtopk[@]}"
tvr_batch=$id
step transcoder-toy "$bin" eval --plugin transcoder-stress --input "data=$toy" "${tc_common[@]}" \
  ${tc_toy[@]+"${tc_toy[@]}"} --campaign "$campaign" "${common[@]}"
tc_toy_id=$id
step transcoder-planted "$bin" eval --plugin transcoder-stress --input "data=$synth_id" "${tc_common[@]}" \
  "${tc_synth[@]}" --campaign "$campaign" "${common[@]}"
tc_synth_id=$id
select_args=()
declare -A ood_of
for r in "${topk[@]}" "${batchtopk[@]}"; do
  step "ood-stress-$r" "$bin" eval --plugin ood-stress --input "sae=$r" --input "data=$synth_id" \
    ${ood_sets[@]+"${ood_sets[@]}"} --campaign "$campaign" "${common[@]}"
  ood_of[$r]=$id
  select_args+=(--run "$(run_dir "$r")" --eval-run "$(run_dir "$id")")
done
t0=$(now)
"$bin" select "${select_args[@]}" --campaign "$decisions" "${signing[@]}" >"$results/.select.json"
times+=("select $(elapsed "$t0")")
read -r rep family < <(python3 -c 'import json,sys
s = json.load(open(sys.argv[1]))["selected"]
print(s["representative"]["checkpoint"].split("/")[-1], s["representative"]["architecture"])' "$results/.select.json")
selection=$(ls -td "$results/$decisions"/*/ | head -1)selection.json
if [[ $family == sae-topk ]]; then tvr_sel=$tvr_topk; else tvr_sel=$tvr_batch; fi
t0=$(now)
rc=0
"$bin" gate --phase4a "$(run_dir "$tvr_sel")/trained_vs_random.json" \
  --transcoder "$(run_dir "$tc_synth_id")/transcoder_stress_summary.json" \
  --ood "$(run_dir "${ood_of[$rep]}")/ood_stress_summary.json" \
  --external "$selection" --external-mode saebench --candidate "$(run_dir "$rep")" \
  --campaign "$decisions" "${signing[@]}" >"$results/.gate.json" || rc=$?
times+=("gate $(elapsed "$t0")")
# Exit 1 is a gate that failed (its report is still signed); anything else is an error.
[[ $rc == 0 || $rc == 1 ]] || { echo "e2e_toy.sh: gate exited $rc" >&2; exit 2; }
python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))
print("selected %s (%s); gate pass_all %s" % (sys.argv[2], sys.argv[3], r["pass_all"]))
for g in r["gates"]:
    checks = ", ".join("%s=%s (%s)" % (c["metric"], c["value"], c["status"]) for c in g["checks"])
    print("  %s %s: %s" % (g["gate"], g["status"], checks))' "$results/.gate.json" "$rep" "$family"
rm -f "$results/.last.json" "$results/.gate.json" "$results/.select.json"
t0=$(now)
"$bin" verify "$results" --keys "$keys" >/dev/null
times+=("verify $(elapsed "$t0")")
echo "known-circuit run: $kc; trained-vs-random runs: $tvr_topk (sae-topk), $tvr_batch (sae-batchtopk);" \
  "transcoder-stress runs: $tc_toy_id (toy MLP), $tc_synth_id (planted)"
printf '%s\n' "${times[@]}" | awk '{printf "%-40s %8.2f s\n", $1, $2}'
