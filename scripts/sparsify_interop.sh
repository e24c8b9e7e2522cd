#!/usr/bin/env bash
# EleutherAI sparsify interoperability check (issue #9 item 4). Not run by .ci/run: sparsify needs torch (the CPU
# wheel alone is about 700 MB), which a fresh CI clone would download every time. Point HUSAI_SPARSIFY_VENV at a
# venv with torch that persists (the project's peer venv works: HUSAI_SPARSIFY_VENV=/work/venv-peer).
#
# 1. installs eai-sparsify into the venv without its dependencies (`--no-deps`: no triton or other GPU kernels),
#    plus the few packages its modules import (einops, natsort, simple-parsing, huggingface-hub, safetensors, schedulefree);
# 2. builds husai-audit and the plugins (release);
# 3. in a scratch directory, trains a TopK SAE with `husai-audit train` as a signed run, on DATA (default: the
#    MiniLM activation bank in ../shared/data, else a synthetic bank made with `husai-audit data synth`);
# 4. converts it with `husai-audit export sparsify RUN OUT/`;
# 5. loads OUT/ with sparsify.SparseCoder.load_from_disk and checks (scripts/sparsify_interop.py) that its FVU on
#    the run's held-out rows equals the FVU the run signed (relative difference <= 1e-4), and that its top-k
#    latents on those rows match husai's `data encode` output.
#
# Usage: scripts/sparsify_interop.sh [DATA.npy]
# Env:   HUSAI_SPARSIFY_VENV (default .venv-sparsify), INTEROP_D_SAE (1536), INTEROP_K (32), INTEROP_STEPS (200)
set -euo pipefail
# sparsify decodes with Triton when it is importable (a CUDA torch brings it); on a CPU use its eager decoder.
export SPARSIFY_DISABLE_TRITON=1

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${HUSAI_SPARSIFY_VENV:-$root/.venv-sparsify}

if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "installing CPU torch into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --progress-bar off torch numpy --index-url https://download.pytorch.org/whl/cpu \
        --extra-index-url https://pypi.org/simple
fi
if ! "$venv/bin/python" -c "import sparsify" 2>/dev/null; then
    "$venv/bin/pip" install --progress-bar off --no-deps eai-sparsify
    "$venv/bin/pip" install --progress-bar off einops natsort simple-parsing huggingface-hub safetensors numpy schedulefree
fi

(cd "$root" && cargo build --release -p husai-audit -p husai-sae-topk -p husai-data)
bin=$root/target/release/husai-audit

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# shellcheck source=scripts/interop_keys.sh
. "$root/scripts/interop_keys.sh"

data=${1:-$root/../shared/data/minilm_l3_resid_dev.npy}
if [ ! -f "$data" ]; then
    echo "no $data: using a synthetic activation bank" >&2
    "$bin" data synth --rows 8192 --d-in 128 --n-features 512 --l0 8 --seed 0 --campaign interop-data \
        --key interop.pem --json >synth.json
    data=$work/$("$venv/bin/python" -c 'import json; print(json.load(open("synth.json"))["dir"])')/activations.npy
fi

"$bin" train --plugin sae-topk --data "$data" --set d_sae="${INTEROP_D_SAE:-1536}" --set k="${INTEROP_K:-32}" --seed 0 \
    --set steps="${INTEROP_STEPS:-200}" --set batch=1024 --campaign interop --key interop.pem \
    --plugin-dir "$root/target/release" --json >train.json
run=$work/$("$venv/bin/python" -c 'import json; print(json.load(open("train.json"))["dir"])')
"$bin" export sparsify "$run" sparsify-out >&2
rows=$("$venv/bin/python" -c 'import json,sys; m=json.load(open(sys.argv[1]))["metrics"]["eval"]["rows"]; print("%d:%d" % (m["start"], m["end"]))' train.json)
"$bin" data encode --checkpoint "$run" --data "$data" --rows "$rows" --out ours.npy >&2
"$venv/bin/python" "$root/scripts/sparsify_interop.py" --export sparsify-out --run "$run" --data "$data" \
    --train-json train.json --ours ours.npy
