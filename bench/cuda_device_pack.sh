#!/usr/bin/env bash
# Builds, here on the CPU machine (never on the device), everything bench/cuda_device_check.sh runs on a GPU
# machine, into one folder small enough for the device tool's carry (64 MiB in all): target/cuda-carry.
#
#   bench/cuda_device_pack.sh            # here (on a shared 2-core machine, under the build lock:
#                                        #   flock /tmp/husai-bench.lock bench/cuda_device_pack.sh)
#   then on the device, with carry ["target/cuda-carry"]:   bash bench/cuda_device_check.sh "$OUT"
#
# target/release (GBs with debug line tables) cannot travel; this builds in its own target directory
# (target/cuda-build, so that the feature builds never replace the CPU-only artefacts in target/release) and copies
# stripped binaries:
#   husai-audit, libhusai_data.so          the CLI and the data plugin (data synth);
#   libhusai_sae_topk.so                   the TopK trainer built with its `cuda` feature, so that device=cuda on
#                                          the card reaches the real probe;
#   cuda_check                             plugins/kernels/examples/cuda_check.rs (probe, NVRTC compile and load of
#                                          every kernel, kernels against the CPU code);
#   test-husai_kernels, test-nvrtc_compile the kernels crate's unit tests and tests/nvrtc_compile.rs, with the
#                                          feature (on a GPU the probe test takes its "device found" branch);
#   torch_sae_reference.py                 a copy of ../shared/bench/torch_sae_reference.py (the PyTorch eager peer),
#                                          when ../shared is there (the device gets the work tree, not ../shared).
# Prints the folder's files and total size; fails if it is over 60 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda-build}
rel=$CARGO_TARGET_DIR/release
out=target/cuda-carry

cargo build --release -p husai-audit -p husai-data -p husai-sae-topk --features husai-sae-topk/cuda
cargo build --release -p husai-kernels --features cuda --example cuda_check
# The test executables' paths, from cargo's own report of them.
tests=$(cargo test --release -p husai-kernels --features cuda --lib --test nvrtc_compile --no-run \
  --message-format=json 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["target"]["name"] + " " + m["executable"])')

rm -rf "$out"
mkdir -p "$out"
cp "$rel/husai-audit" "$rel/libhusai_data.so" "$rel/libhusai_sae_topk.so" "$rel/examples/cuda_check" "$out/"
while read -r name exe; do
  [ -n "$name" ] && cp "$exe" "$out/test-$name"
done <<<"$tests"
[ -x "$out/test-husai_kernels" ] && [ -x "$out/test-nvrtc_compile" ] ||
  { echo "cuda_device_pack.sh: cargo reported no test executables" >&2; exit 1; }
strip "$out"/husai-audit "$out"/*.so "$out"/cuda_check "$out"/test-*
if [ -f ../shared/bench/torch_sae_reference.py ]; then
  cp ../shared/bench/torch_sae_reference.py "$out/"
fi
git rev-parse HEAD >"$out/built_from_commit.txt"
git status --porcelain --untracked-files=no | head -20 >>"$out/built_from_commit.txt"
ls -l "$out"
size=$(du -sm "$out" | cut -f1)
echo "target/cuda-carry: ${size} MiB"
[ "$size" -le 60 ] || { echo "cuda_device_pack.sh: ${size} MiB is too much to carry (64 MiB in all)" >&2; exit 1; }
