#!/usr/bin/env bash
# Many small runs: how many runs per second `husai-audit verify` checks, for N tiny runs (one 3-byte
# file each), optionally side by side with a previous build (BEFORE), alternating, ROUNDS times.
#
#   N=2000 bench/verify_small_runs.sh
#   N=10000 ROUNDS=5 BEFORE=/work/wt/husai-audit-before-s8 bench/verify_small_runs.sh
#   taskset -c 0,1 ...   # pin to 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}
ROUNDS=${ROUNDS:-5}
WORK=${WORK:-/tmp/husai-bench-small-$N}
BIN=${BIN:-target/release/husai-audit}
BEFORE=${BEFORE:-}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p husai-audit" >&2; exit 2; }
if [ ! -f "$WORK/tree.done" ]; then
  rm -rf "$WORK"; mkdir -p "$WORK/out" "$WORK/keys"
  "$BIN" keygen "$WORK/bench" > /dev/null
  keyid=$(openssl pkey -pubin -in "$WORK/bench.pub.pem" -outform DER | sha256sum | cut -d' ' -f1)
  cp "$WORK/bench.pub.pem" "$WORK/keys/"
  cat > "$WORK/keys/trust-policy.json" <<JSON
{"schema_version": "1.0", "keys": [{"keyid": "$keyid", "public_key": "bench.pub.pem", "roles": ["bench"],
  "not_before": "2020-01-01T00:00:00Z", "not_after": null, "revoked": null}]}
JSON
  export BIN WORK
  seq 1 "$N" | xargs -P "$(nproc)" -I{} sh -c '
    mkdir -p "$WORK/out/{}" && printf "%s" {} | head -c 3 > "$WORK/out/{}/m.json" &&
    "$BIN" attest "$WORK/out/{}" --campaign "c$(( {} % 10 ))" --key "$WORK/bench.pem" --results "$WORK/results" > /dev/null'
  rm -rf "$WORK/out"
  touch "$WORK/tree.done"
fi
find "$WORK/results" -type f -exec cat {} + > /dev/null  # warm the page cache
t() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -a A B
for r in $(seq 1 "$ROUNDS"); do
  A+=("$(t "$BIN" verify "$WORK/results" --keys "$WORK/keys")")
  if [ -n "$BEFORE" ]; then B+=("$(t "$BEFORE" verify "$WORK/results" --keys "$WORK/keys")"); fi
  echo "round $r: this build ${A[-1]} s${BEFORE:+, before ${B[-1]} s}" >&2
done
a=$(median "${A[@]}")
echo "$N runs, $(nproc) cores visible, $ROUNDS rounds, medians"
echo "this build:  $a s  $(echo "scale=0; $N / $a" | bc -l) runs/s  $(echo "scale=3; 1000 * $a / $N" | bc -l) ms/run"
if [ -n "$BEFORE" ]; then
  b=$(median "${B[@]}")
  echo "before:      $b s  $(echo "scale=0; $N / $b" | bc -l) runs/s  $(echo "scale=3; 1000 * $b / $N" | bc -l) ms/run  speed-up $(echo "scale=2; $b / $a" | bc -l)x"
fi
