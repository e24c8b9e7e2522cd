#!/usr/bin/env bash
# Wall time of the ood-stress eval through `husai-audit eval` (a signed run in a temporary store), at its default
# config (16 tasks, 512 training and 512 test rows each, ks 1,2,5, 10000 bootstrap resamples, 9999 permutations),
# on a planted bank and a TopK SAE trained on it:
#   data synth: 16384 rows, d_in 64, 256 features, l0 4, seed 0
#   sae-topk:   d_sae 512, k 8, batch 1024, 1000 steps, seed 1
#
#   bench/ood_stress_wall.sh [ROUNDS]     (default 3; the eval alone is timed, each round a fresh eval run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
cargo build -q --release -p husai-audit -p husai-sae-topk -p husai-data -p husai-eval-ood-stress
BIN=$PWD/target/release/husai-audit
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
"$BIN" keygen bench >/dev/null
"$BIN" trust add bench.pub.pem --role developer --keys keys >/dev/null
common=(--key bench.pem --results results --keys keys --json)
synth=$("$BIN" data synth --rows 16384 --d-in 64 --n-features 256 --l0 4 --seed 0 --campaign bench "${common[@]}")
data_id=$(basename "$(echo "$synth" | python3 -c 'import json,sys; print(json.load(sys.stdin)["dir"])')")
train=$("$BIN" train --plugin sae-topk --data "results/bench/$data_id/activations.npy" --set d_sae=512 --set k=8 \
  --set batch=1024 --set steps=1000 --seed 1 --campaign bench "${common[@]}" 2>/dev/null)
sae_id=$(basename "$(echo "$train" | python3 -c 'import json,sys; print(json.load(sys.stdin)["dir"])')")
for ((r = 0; r < ROUNDS; r++)); do
  t0=$(date +%s.%N)
  out=$("$BIN" eval --plugin ood-stress --input "sae=$sae_id" --input "data=$data_id" --campaign bench "${common[@]}" 2>/dev/null)
  t1=$(date +%s.%N)
  echo "$out" | python3 -c "
import json, sys
s = json.load(sys.stdin)['summary']
print(json.dumps({'wall_s': round($t1 - $t0, 3), 'ood_drop': s['ood_drop'], 'interval': s['ood_drop_interval'],
                  'permutation_p': s['permutation_p'], 'conclusion': s['conclusion'],
                  'by_k': [(b['k'], round(b['id_mean_gap'], 4), round(b['ood_mean_gap'], 4)) for b in s['by_k']]}))"
done
