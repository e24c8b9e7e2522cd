#!/usr/bin/env bash
# SAELens interoperability check. Not run by .ci/run: sae-lens pulls torch with its CUDA wheels from PyPI (the venv
# measured 6.3 GB; the install took about 3 minutes on the development machine, with a fast registry mirror), and CI
# starts from a fresh clone, so every CI run would download all of it again. Point HUSAI_SAELENS_VENV at a venv that
# persists to run it cheaply.
#
# 1. creates .venv-saelens at the repository root (once) and installs sae-lens from PyPI into it;
# 2. builds husai-audit, the six family plugins and the data plugin (release);
# 3. in a scratch directory, for each family in FAMILIES, trains an SAE with `husai-audit train` as a signed run,
#    on DATA (default: the MiniLM activation bank in ../shared/data, else a synthetic bank made with
#    `husai-audit data synth`);
# 4. writes husai's encoder output for the first 100 rows with `husai-audit data encode` (the product's path: it
#    verifies the run, then applies the inference rule cfg.json's architecture names; a plain file, not a run);
# 5. loads the run directory with sae_lens.SAE.load_from_disk, checks the architecture SAELens loads it as
#    (topk -> topk, batchtopk -> jumprelu with the estimated threshold, relu -> standard, jumprelu -> jumprelu,
#    matryoshka -> jumprelu with the estimated threshold, hierarchical_topk -> topk with k = K) and
#    that SAELens's encoder output on
#    those rows matches husai's within 1e-5 (scripts/saelens_interop.py);
# 6. trains sae-routed on the multi-layer MiniLM bank, routes its held-out rows from router.safetensors alone
#    (scripts/routed_route.py: the per-layer shares must equal the run's) and compares SAELens's TopK encoding of
#    the routed rows with husai's (ROUTED=0 skips it).
#
# Usage: scripts/saelens_interop.sh [DATA.npy]
# Env:   HUSAI_SAELENS_VENV (default .venv-saelens), FAMILIES ("topk batchtopk relu jumprelu matryoshka
#        hierarchical_topk"), INTEROP_D_SAE
#        (1536), INTEROP_K (32), INTEROP_STEPS (200), INTEROP_RELU_L1 (l1_coeff, default 2: held-out L0 31.8 and
#        31.4 on MiniLM at d_sae 1536, batch 1024, 300 steps, seeds 7 and 8), INTEROP_JUMPRELU_L0 (l0_coeff of the
#        tanh penalty, default 0.42: held-out L0 32.3 there)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${HUSAI_SAELENS_VENV:-$root/.venv-saelens}

if ! "$venv/bin/python" -c "import sae_lens" 2>/dev/null; then
    echo "installing sae-lens into $venv (large: torch and its dependencies)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --progress-bar off sae-lens
fi

(cd "$root" && cargo build --release -p husai-audit -p husai-sae-topk -p husai-sae-batchtopk -p husai-sae-relu \
    -p husai-sae-jumprelu -p husai-sae-matryoshka -p husai-sae-hierarchical-topk -p husai-sae-routed -p husai-data)
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

# family -> the plugin, the architecture SAELens must load it as, and the family's own settings (L0 about 32)
declare -A PLUGIN=([topk]=sae-topk [batchtopk]=sae-batchtopk [relu]=sae-relu [jumprelu]=sae-jumprelu
    [matryoshka]=sae-matryoshka [hierarchical_topk]=sae-hierarchical-topk)
declare -A ARCH=([topk]=topk [batchtopk]=jumprelu [relu]=standard [jumprelu]=jumprelu [matryoshka]=jumprelu
    [hierarchical_topk]=topk)
declare -A SETS=([topk]="k=${INTEROP_K:-32}" [batchtopk]="k=${INTEROP_K:-32}" [matryoshka]="k=${INTEROP_K:-32}"
    [hierarchical_topk]="k=${INTEROP_K:-32}"
    [relu]="l1_coeff=${INTEROP_RELU_L1:-2}" [jumprelu]="sparsity=\"tanh\" l0_coeff=${INTEROP_JUMPRELU_L0:-0.42}")
status=0
for family in ${FAMILIES:-topk batchtopk relu jumprelu matryoshka hierarchical_topk}; do
    sets=()
    for s in ${SETS[$family]}; do sets+=(--set "$s"); done
    "$bin" train --plugin "${PLUGIN[$family]}" --data "$data" --set d_sae="${INTEROP_D_SAE:-1536}" "${sets[@]}" \
        --seed 0 --set steps="${INTEROP_STEPS:-200}" --set batch=1024 \
        --campaign "interop-$family" --key interop.pem --plugin-dir "$root/target/release" --json >"train-$family.json"
    run=$work/$("$venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["dir"])' "train-$family.json")
    echo "trained $family: $(tr -d '\n' <"train-$family.json" | tr -s ' ')" >&2
    "$bin" data encode --checkpoint "$run" --data "$data" --rows 100 --out "ours-$family.npy" \
        --plugin-dir "$root/target/release" >&2
    "$venv/bin/python" "$root/scripts/saelens_interop.py" --checkpoint "$run" --data "$data" \
        --ours "ours-$family.npy" --arch "${ARCH[$family]}" --rows 100 --tol 1e-5 || status=1
done

# RouteSAE: the shared SAE is a SAELens TopK checkpoint whose input is the routed row; route the held-out rows from
# router.safetensors alone (scripts/routed_route.py, which checks the per-layer shares equal the run's), then compare
# SAELens's and husai's encodings of those rows.
if [ -n "${ROUTED:-1}" ] && [ "${ROUTED:-1}" != 0 ]; then
    layers=${INTEROP_LAYER_BANK:-$root/../shared/data/minilm_resid_layers_dev.safetensors}
    "$bin" train --plugin sae-routed --data "$layers" --set d_sae="${INTEROP_D_SAE:-1536}" --set k="${INTEROP_K:-32}" \
        --seed 0 --set steps="${INTEROP_STEPS:-200}" --set batch=1024 --set eval.fraction=0.2 \
        --campaign interop-routed --key interop.pem --plugin-dir "$root/target/release" --json >train-routed.json
    run=$work/$("$venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["dir"])' train-routed.json)
    "$venv/bin/python" "$root/scripts/routed_route.py" --run "$run" --bank "$layers" --out routed.npy --rows 100 \
        || status=1
    "$bin" data encode --checkpoint "$run" --data routed.npy --rows 100 --out ours-routed.npy \
        --plugin-dir "$root/target/release" >&2
    "$venv/bin/python" "$root/scripts/saelens_interop.py" --checkpoint "$run" --data routed.npy \
        --ours ours-routed.npy --arch topk --rows 100 --tol 1e-5 || status=1
fi

exit $status
