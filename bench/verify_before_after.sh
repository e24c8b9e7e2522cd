#!/usr/bin/env bash
# Verify throughput of this build against a previous one (BEFORE) on the benchmark tree of
# bench/verify_vs_peers.sh (one 2 GiB file + 200 files of 1 MiB, one run), alternating, ROUNDS
# times, medians. No peers, so no venv: a quick side-by-side check that a change kept throughput.
#
#   BEFORE=/work/wt/husai-audit-before-s8 ROUNDS=7 bench/verify_before_after.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
WORK=${WORK:-/tmp/husai-bench-verify}
BIN=${BIN:-target/release/husai-audit}
BEFORE=${BEFORE:?set BEFORE to the previous husai-audit binary}
mkdir -p "$WORK"
if [ ! -f "$WORK/tree.husai.done" ]; then
  rm -rf "$WORK"/{out,results,keys}; mkdir -p "$WORK/out" "$WORK/keys"
  head -c $((2 << 30)) /dev/urandom > "$WORK/out/checkpoint.bin"
  for i in $(seq -w 1 200); do head -c $((1 << 20)) /dev/urandom > "$WORK/out/shard_$i.bin"; done
  rm -f "$WORK/bench.pem" "$WORK/bench.pub.pem"
  "$BIN" keygen "$WORK/bench" > /dev/null
  keyid=$(openssl pkey -pubin -in "$WORK/bench.pub.pem" -outform DER | sha256sum | cut -d' ' -f1)
  cp "$WORK/bench.pub.pem" "$WORK/keys/"
  cat > "$WORK/keys/trust-policy.json" <<JSON
{"schema_version": "1.0", "keys": [{"keyid": "$keyid", "public_key": "bench.pub.pem", "roles": ["bench"],
  "not_before": "2020-01-01T00:00:00Z", "not_after": null, "revoked": null}]}
JSON
  "$BIN" attest "$WORK/out" --campaign bench --key "$WORK/bench.pem" --results "$WORK/results" > /dev/null
  rm -rf "$WORK/out"
  touch "$WORK/tree.husai.done"
fi
RUN=$(ls -d "$WORK"/results/bench/*/)
BYTES=$(find "$RUN" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f\n", s}')
cat "$RUN"/* > /dev/null  # warm the page cache
t() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -a A B
for r in $(seq 1 "$ROUNDS"); do
  A+=("$(t "$BIN" verify "$WORK/results" --keys "$WORK/keys")")
  B+=("$(t "$BEFORE" verify "$WORK/results" --keys "$WORK/keys")")
  echo "round $r: this build ${A[-1]} s, before ${B[-1]} s" >&2
done
a=$(median "${A[@]}"); b=$(median "${B[@]}")
gbs() { echo "scale=3; $1 / $2 / 1000000000" | bc -l; }
echo "tree: $BYTES bytes ($(nproc) cores), $ROUNDS rounds, medians"
echo "this build: $a s  $(gbs "$BYTES" "$a") GB/s"
echo "before:     $b s  $(gbs "$BYTES" "$b") GB/s   this/before throughput = $(echo "scale=3; $b / $a" | bc -l)"
