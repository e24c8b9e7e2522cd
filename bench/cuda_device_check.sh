#!/usr/bin/env bash
# Issue #13's device checks, as they stand: the one script a session with a GPU runs. It builds nothing on the
# device (there is no Rust toolchain there): pack first, here, then carry the packed folder (< 64 MiB).
#
#   here:    flock /tmp/husai-bench.lock bench/cuda_device_pack.sh       # -> target/cuda-carry
#   device:  the device tool's run, command "bash bench/cuda_device_check.sh \"$OUT\"",
#            carry ["target/cuda-carry"], timeout_s 480 (the steps below are each bounded; about 2-4 min in all)
#
# NVRTC and cuBLAS on the device: libcuda.so comes with the driver; libnvrtc.so.12 and libcublas.so.12 are looked up
# in the Python packages nvidia.cuda_nvrtc and nvidia.cublas (PyTorch's CUDA wheels bring them) and put on
# LD_LIBRARY_PATH, unless the loader already finds them. cudarc opens them by name at run time.
#
# What it prints (each section also written under OUT_DIR, default /tmp/husai-cuda-check):
#   == environment     -> env.txt: nvidia-smi's first lines (card, driver, CUDA version), the commit the carry was
#                         built from, and which libnvrtc / libcublas directories were put on LD_LIBRARY_PATH;
#   == cuda_check      -> cuda_check.jsonl: one JSON line a check, each with "ok": true/false:
#                         probe (device, compute capability, driver), compile_and_load (each kernel source compiled
#                         by the device's NVRTC for the card's own sm_XY, loaded, every kernel found: 6 lines),
#                         topk_rows_vs_cpu, topk_rows_vs_cpu_k_above_positives, topk_rows_auxk_vs_cpu (AuxK's
#                         signed rule with a dead mask, NaN and -0, against engine.rs aux_row's), sparse_decode_vs_cpu,
#                         adam_step_vs_cpu (same latents and bits as the CPU code on seeded data; topk_rows twice
#                         byte-identical);
#   == kernel tests    -> kernel_tests.txt: the kernels crate's unit tests built with the cuda feature (its probe
#                         test names the card here) and tests/nvrtc_compile.rs (every source for sm_80 and sm_90, a
#                         warning is an error), each ending in cargo's "test result:" line;
#   == device flag     -> device_flag.txt: husai-audit train (sae-topk built with the cuda feature) on a small
#                         data synth run, with --set device=cuda (must fail, exit 2: "<card> (compute capability
#                         X.Y) was found, but sae-topk has no CUDA training engine yet") and with the default auto
#                         (must train on the CPU, printing "training: device = auto: training on the CPU (...)");
#                         then the lines "device=cuda exit N" and "device=auto exit N";
#   == PyTorch eager   -> torch_peer.txt: torch_sae_reference.py --device cuda at issue #13's configuration (d_in
#                         768, d_sae 32768, k 64, batch 4096, 200 steps, data resident), its rows/s on this card:
#                         the figure the CUDA engine must beat 2x once it exists. Only when torch sees a GPU.
#   == summary         -> summary.txt: one line per section, "ok" or "FAILED (why)".
# No CUDA training engine exists yet, so there is no parity, determinism or husai rows/s figure to print.
# Exit status: 0 when every section that ran passed, 1 when one failed, 2 when there is no usable device.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/husai-cuda-check}}
mkdir -p "$out"
carry=$(pwd)/target/cuda-carry
[ -x "$carry/cuda_check" ] || { echo "missing $carry/cuda_check: run bench/cuda_device_pack.sh here and carry target/cuda-carry" >&2; exit 2; }
summary=()
failed=0
note() { summary+=("$1"); case "$1" in *FAILED*) failed=1 ;; esac; }

echo "== environment"
{
  (nvidia-smi 2>&1 || echo "nvidia-smi: not found") | head -15
  echo "carry built from: $(head -1 "$carry/built_from_commit.txt" 2>/dev/null)"
  pylibs=$(python3 - <<'EOF' 2>/dev/null
import importlib, os
dirs = []
for name in ("nvidia.cuda_nvrtc", "nvidia.cublas"):
    try:
        mod = importlib.import_module(name)
    except Exception:
        continue
    for p in getattr(mod, "__path__", []):
        d = os.path.join(p, "lib")
        if os.path.isdir(d):
            dirs.append(d)
print(":".join(dirs))
EOF
)
  echo "library dirs from Python packages: ${pylibs:-none}"
  echo "$pylibs" >"$out/.pylibs"
} 2>&1 | tee "$out/env.txt"
pylibs=$(cat "$out/.pylibs"); rm -f "$out/.pylibs"
export LD_LIBRARY_PATH="${pylibs:+$pylibs:}${LD_LIBRARY_PATH:-}"

echo "== cuda_check"
timeout 180 "$carry/cuda_check" | tee "$out/cuda_check.jsonl"
status=${PIPESTATUS[0]}
case $status in
  0) note "cuda_check ok" ;;
  2) note "cuda_check FAILED (no usable device: see the probe line)" ;;
  *) note "cuda_check FAILED (exit $status: see the lines with \"ok\":false)" ;;
esac

echo "== kernel tests"
{
  for t in "$carry"/test-husai_kernels "$carry"/test-nvrtc_compile; do
    echo "-- $(basename "$t")"
    CI=1 timeout 120 "$t" --test-threads 2 --nocapture 2>&1 | grep -E "^test |test result:|probe:|NVRTC|panicked" 
    echo "exit ${PIPESTATUS[0]}"
  done
} 2>&1 | tee "$out/kernel_tests.txt"
if grep -q "^exit [^0]" "$out/kernel_tests.txt"; then note "kernel tests FAILED"; else note "kernel tests ok"; fi

echo "== device flag"
work=$(mktemp -d)
(
  cd "$work" || exit 1
  audit="$carry/husai-audit"
  "$audit" keygen dev >/dev/null && "$audit" trust add dev.pub.pem --role developer >/dev/null
  export HUSAI_SIGNING_KEY=dev.pem
  "$audit" data synth --rows 4096 --d-in 64 --n-features 256 --l0 4 --seed 0 --campaign data >/dev/null
  data=$(ls results/data/*/activations.npy)
  for dev in cuda auto; do
    echo "-- device=$dev"
    timeout 120 "$audit" train --plugin sae-topk --data "$data" --set d_sae=256 --set k=8 --set steps=20 \
      --set batch=256 --set device=$dev --seed 0 --campaign dev >train.out 2>&1
    code=$?
    head -5 train.out
    echo "device=$dev exit $code"
  done
) 2>&1 | tee "$out/device_flag.txt"
rm -rf "$work"
if grep -q "^device=cuda exit 2$" "$out/device_flag.txt" && grep -q "^device=auto exit 0$" "$out/device_flag.txt" &&
  grep -q "has no CUDA training engine yet" "$out/device_flag.txt" &&
  grep -q "training: device = auto: training on the CPU" "$out/device_flag.txt"; then
  note "device flag ok"
else
  note "device flag FAILED (see device_flag.txt)"
fi

peer="$carry/torch_sae_reference.py"
[ -f "$peer" ] || peer=../shared/bench/torch_sae_reference.py
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null && [ -f "$peer" ]; then
  echo "== PyTorch eager peer on this card"
  timeout 300 python3 "$peer" --device cuda --arch topk --d-in 768 --d-sae 32768 --k 64 --batch 4096 \
    --steps 200 2>&1 | tail -20 | tee "$out/torch_peer.txt"
  if [ "${PIPESTATUS[0]}" -eq 0 ]; then note "torch peer ok"; else note "torch peer FAILED (see torch_peer.txt)"; fi
else
  note "torch peer not run (no torch with a GPU, or no torch_sae_reference.py)"
fi

echo "== summary"
printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"
[ "$status" -eq 2 ] && exit 2
exit "$failed"
