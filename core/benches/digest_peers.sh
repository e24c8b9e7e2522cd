#!/usr/bin/env bash
# Digest throughput of husai against sha256sum and openssl, side by side on one warm tree.
#
#   cargo build --release -p husai-core --example digest_bench
#   core/benches/digest_peers.sh [TREE]
#
# TREE defaults to /tmp/husai-bench-tree and is created if missing: one 2 GiB file plus 200 files
# of 1 MiB, random bytes (the shape of a checkpoint directory; the same shape as the model-signing
# figure in ../shared/bench/README.md). Each peer is one process on one core; husai uses every
# core rayon sees. Reported: wall GB/s (10^9 bytes/s) and CPU-seconds per GB (user+sys), the
# second being the fairer figure on a machine that is busy with other work.
set -euo pipefail
T=${1:-/tmp/husai-bench-tree}
B=${B:-target/release/examples/digest_bench}
[[ -x $B ]] || { echo "build first: cargo build --release -p husai-core --example digest_bench" >&2; exit 2; }
command -v openssl > /dev/null || { echo "openssl is required for the comparison; install it" >&2; exit 2; }
if [[ ! -d $T ]]; then
  mkdir -p "$T/small"
  head -c $((2 << 30)) /dev/urandom > "$T/big.bin"
  for i in $(seq -w 0 199); do head -c $((1 << 20)) /dev/urandom > "$T/small/f$i.bin"; done
fi
BYTES=$(find "$T" -type f -printf '%s\n' | paste -sd+ | bc)
find "$T" -type f -print0 | xargs -0 cat > /dev/null # warm the page cache

peer() {
  local name=$1 out wall user sys
  shift
  out=$({ /usr/bin/time -f "%e %U %S" "$@" > /dev/null; } 2>&1 | tail -1)
  read -r wall user sys <<< "$out"
  awk -v b="$BYTES" -v w="$wall" -v u="$user" -v s="$sys" -v n="$name" \
    'BEGIN { printf "%s: %.3f GB/s wall, %.3f CPU-s/GB\n", n, b / w / 1e9, (u + s) / (b / 1e9) }'
}
echo "tree $T: $BYTES bytes in $(find "$T" -type f | wc -l) files, $(nproc) cores"
for _ in 1 2 3; do
  peer "sha256sum (1 core)" sh -c "find '$T' -type f -print0 | xargs -0 sha256sum"
  peer "openssl dgst -sha256 (1 core)" sh -c "find '$T' -type f -print0 | xargs -0 openssl dgst -sha256"
done
echo "husai digest_files, sha256-sharded (64 MiB shards):"
"$B" "$T" --runs 5 | tail -2
echo "husai digest_files, plain sha256 per file:"
"$B" "$T" --runs 5 --plain | tail -2
echo "husai digest_files, sha256-sharded, memory-mapped:"
"$B" "$T" --runs 5 --mmap | tail -2
