#!/usr/bin/env bash
# Installs NVRTC (the PyPI wheel nvidia-cuda-nvrtc-cu12: libnvrtc.so.12 and its builtins, no GPU needed) into a
# venv of the project's own, target/nvrtc-venv, once, and prints the directory that holds libnvrtc.so.12 on stdout.
# Used by .ci/run for plugins/kernels/tests/nvrtc_compile.rs:
#   LD_LIBRARY_PATH=$(scripts/nvrtc_venv.sh) cargo test --release -p husai-kernels --features cuda --test nvrtc_compile
# Env: NVRTC_WHEEL (default nvidia-cuda-nvrtc-cu12==12.9.86, the version the kernels were last compiled with).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/nvrtc-venv
wheel=${NVRTC_WHEEL:-nvidia-cuda-nvrtc-cu12==12.9.86}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c 'import nvidia.cuda_nvrtc' 2>/dev/null; then
  "$venv/bin/pip" install --quiet "$wheel" >&2
fi
dir=$("$venv/bin/python" -c 'import os, nvidia.cuda_nvrtc as m; print(os.path.join(list(m.__path__)[0], "lib"))')
[ -e "$dir/libnvrtc.so.12" ] || { echo "nvrtc_venv.sh: no libnvrtc.so.12 in $dir" >&2; exit 1; }
cd "$dir" && pwd -P
