#!/usr/bin/env bash
# Verify throughput: husai-audit verify vs sha256sum, OpenSSF model_signing and one core of OpenSSL,
# side by side on the same warm tree (one 2 GiB file + 200 files of 1 MiB), alternating, ROUNDS times.
# Prints each round and the medians, GB/s (10^9 bytes) and ratios.
#
#   bench/verify_vs_peers.sh                 # needs target/release/husai-audit (cargo build --release)
#   ROUNDS=7 WORK=/tmp/husai-bench bench/verify_vs_peers.sh
#
# Peers: sha256sum (coreutils), `openssl dgst -sha256` (one core, the big file only, scaled to the tree),
# model_signing (pip install model-signing pyopenssl; installed into $VENV if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
WORK=${WORK:-/tmp/husai-bench-verify}
VENV=${VENV:-/work/venv-ms}
BIN=${BIN:-target/release/husai-audit}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p husai-audit" >&2; exit 2; }
if [ ! -x "$VENV/bin/model_signing" ]; then
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q model-signing pyopenssl
fi

mkdir -p "$WORK"
if [ ! -f "$WORK/tree.done" ]; then
  rm -rf "$WORK"/{out,results,keys}; mkdir -p "$WORK/out"
  head -c $((2 << 30)) /dev/urandom > "$WORK/out/checkpoint.bin"
  for i in $(seq -w 1 200); do head -c $((1 << 20)) /dev/urandom > "$WORK/out/shard_$i.bin"; done
  # A throwaway key, trusted by a throwaway policy.
  rm -f "$WORK/bench.pem" "$WORK/bench.pub.pem"
  "$BIN" keygen "$WORK/bench" > /dev/null
  keyid=$(openssl pkey -pubin -in "$WORK/bench.pub.pem" -outform DER | sha256sum | cut -d' ' -f1)
  mkdir -p "$WORK/keys"; cp "$WORK/bench.pub.pem" "$WORK/keys/"
  cat > "$WORK/keys/trust-policy.json" <<EOF
{"schema_version": "1.0", "keys": [{"keyid": "$keyid", "public_key": "bench.pub.pem", "roles": ["bench"],
  "not_before": "2020-01-01T00:00:00Z", "not_after": null, "revoked": null}]}
EOF
  "$BIN" attest "$WORK/out" --campaign bench --key "$WORK/bench.pem" --results "$WORK/results" > /dev/null
  rm -rf "$WORK/out"
  RUN=$(ls -d "$WORK"/results/bench/*/)
  openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/ec.pem"
  openssl ec -in "$WORK/ec.pem" -pubout -out "$WORK/ec.pub" 2>/dev/null
  "$VENV/bin/model_signing" --log-level ERROR sign key "$RUN" --private_key "$WORK/ec.pem" --signature "$WORK/ms.sig" > /dev/null
  touch "$WORK/tree.done"
fi
RUN=$(ls -d "$WORK"/results/bench/*/)
BYTES=$(find "$RUN" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f\n", s}')
BIG="$RUN/checkpoint.bin"
BIGBYTES=$(stat -c %s "$BIG")
cat "$RUN"/* > /dev/null  # warm the page cache

t() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
declare -a H S M O
for r in $(seq 1 "$ROUNDS"); do
  H+=("$(t "$BIN" verify "$WORK/results" --keys "$WORK/keys")")
  S+=("$(t sh -c "cd '$RUN' && sha256sum -- * > /dev/null")")
  M+=("$(t "$VENV/bin/model_signing" --log-level ERROR verify key "$RUN" --signature "$WORK/ms.sig" --public_key "$WORK/ec.pub")")
  O+=("$(t openssl dgst -sha256 "$BIG")")
  echo "round $r: husai ${H[-1]} s, sha256sum ${S[-1]} s, model_signing ${M[-1]} s, openssl(1 core, big file) ${O[-1]} s" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
h=$(median "${H[@]}"); s=$(median "${S[@]}"); m=$(median "${M[@]}"); o=$(median "${O[@]}")
gbs() { echo "scale=3; $1 / $2 / 1000000000" | bc -l; }
hr=$(gbs "$BYTES" "$h"); sr=$(gbs "$BYTES" "$s"); mr=$(gbs "$BYTES" "$m"); or=$(gbs "$BIGBYTES" "$o")
echo "tree: $BYTES bytes ($(nproc) cores), $ROUNDS rounds, medians"
echo "husai-audit verify:   $h s  $hr GB/s"
echo "sha256sum:            $s s  $sr GB/s   husai/sha256sum     = $(echo "scale=2; $hr / $sr" | bc -l)x"
echo "model_signing verify: $m s  $mr GB/s   husai/model_signing = $(echo "scale=2; $hr / $mr" | bc -l)x"
echo "openssl, one core:    $o s  $or GB/s   two-core limit $(echo "scale=3; 2 * $or" | bc -l) GB/s; husai = $(echo "scale=1; 100 * $hr / (2 * $or)" | bc -l) % of it"
