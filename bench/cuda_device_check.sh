#!/usr/bin/env bash
# Issue #13's device checks, as they stand: the one script a session with a GPU runs. It builds nothing on the
# device (no Rust toolchain there): build here first, then carry target/release.
#
#   here:    cargo build --release --workspace
#            cargo build --release -p husai-kernels --features cuda --example cuda_check
#   device:  bash bench/cuda_device_check.sh OUT_DIR        (the device tool's run, carry ["target/release"])
#
# What it prints (and writes under OUT_DIR):
#   nvidia-smi.txt       the card, driver and CUDA version (nvidia-smi -q, head);
#   cuda_check.jsonl     target/release/examples/cuda_check: the probe (device, compute capability, driver), every
#                        kernel source compiled by the device's NVRTC for its own sm_XY and loaded into the driver,
#                        then topk_rows, sparse_decode and adam_step against the CPU code on seeded data (same
#                        latents and bits; topk_rows twice, byte-identical). One JSON line a check, "ok": true/false;
#   device_flag.txt      husai-audit train with --set device=cuda and with the default (auto) on a small data synth
#                        run: no family has a CUDA engine yet, so cuda must fail naming the device it found and
#                        auto must train on the CPU saying so.
#   torch_peer.txt       ../shared/bench/torch_sae_reference.py --device cuda at issue #13's configuration (d_in 768,
#                        d_sae 32768, k 64, batch 4096, 200 steps), PyTorch eager's rows/s on this card: the figure
#                        the CUDA engine must beat 2x once it exists (run only when torch is importable).
# Exit status: that of cuda_check (0 all checks passed, 1 a check failed, 2 no usable device).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/husai-cuda-check}}
mkdir -p "$out"
bin=target/release
[ -x "$bin/examples/cuda_check" ] || { echo "missing $bin/examples/cuda_check: build it with --features cuda" >&2; exit 2; }

(nvidia-smi -q 2>&1 | head -40) > "$out/nvidia-smi.txt"
head -12 "$out/nvidia-smi.txt"

echo "== cuda_check"
"$bin/examples/cuda_check" | tee "$out/cuda_check.jsonl"
status=${PIPESTATUS[0]}

echo "== device flag on a real device"
work=$(mktemp -d)
(
  cd "$work" || exit 1
  audit="$OLDPWD/$bin/husai-audit"
  "$audit" keygen dev >/dev/null && "$audit" trust add dev.pub.pem --role developer >/dev/null
  export HUSAI_SIGNING_KEY=dev.pem
  "$audit" data synth --rows 4096 --d-in 64 --n-features 256 --l0 4 --seed 0 --campaign data >/dev/null
  data=$(ls results/data/*/activations.npy)
  for dev in cuda auto; do
    echo "-- device=$dev"
    "$audit" train --plugin sae-topk --data "$data" --set d_sae=256 --set k=8 --set steps=20 --set batch=256 \
      --set device=$dev --seed 0 --campaign dev 2>&1 | head -3
  done
) 2>&1 | tee "$out/device_flag.txt"
rm -rf "$work"

if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null && [ -f ../shared/bench/torch_sae_reference.py ]; then
  echo "== PyTorch eager peer on this card"
  timeout 240 python3 ../shared/bench/torch_sae_reference.py --device cuda --arch topk --d-in 768 --d-sae 32768 \
    --k 64 --batch 4096 --steps 200 2>&1 | tail -20 | tee "$out/torch_peer.txt"
fi
exit "$status"
