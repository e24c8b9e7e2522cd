#!/bin/sh
# Re-creates the committed signed runs under results/ exactly as they were first made, but with a release build of a
# clean commit (core/tests/suite/claims_repo.rs fails CI on a committed run that records a dirty tree or a debug build).
#
#   1. commit your work, so that `git status --untracked-files=no` is clean;
#   2. scripts/regenerate_results.sh            (from the repository root; needs ../shared and the CI key)
#   3. put the printed run ids into claims.json, run `target/release/husai-audit verify --keys keys`, commit results/
#      and claims.json together.
#
# The CI key's private half never enters the repository; HUSAI_CI_KEY points at it (default: the stand-in at
# ../shared/keys/ci-signing.pem, by its absolute path as the import runs recorded it).
set -eu
cd "$(dirname "$0")/.."
shared=$(cd ../shared && pwd -P)
key=${HUSAI_CI_KEY:-$shared/keys/ci-signing.pem}
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "error: the tree has uncommitted changes; commit first (the manifests record the build's dirty flag)" >&2
    exit 2
fi
cargo build --release --workspace
bin=target/release/husai-audit
rm -rf results/examples results/husai-evidence results/claims-stats

# An external run: the activation bank's recipe and digest (originally: ee47df6).
rm -rf /tmp/ex && mkdir /tmp/ex
$bin attest /tmp/ex --campaign examples --kind external --key ../shared/keys/ci-signing.pem \
    --input ../shared/data/minilm_l3_resid_dev.npy --input ../shared/data/minilm_l3_resid_dev.json \
    -- sh -c "cp ../shared/data/minilm_l3_resid_dev.json /tmp/ex/activation_bank_recipe.json && sha256sum ../shared/data/minilm_l3_resid_dev.npy > /tmp/ex/activation_bank.sha256"

# Upstream evidence the claims cite (originally: 58a65df), and the phase-4b summary the v2 run's external delta is
# copied from (issue 15).
$bin import husai-evidence "$shared/fixtures/husai-evidence" --campaign husai-evidence \
    --only phase4d_assignment_consistency_v2 --only cycle4_followups_run_20260215T190004Z --key "$key" --json >/dev/null
$bin import husai-evidence "$shared/fixtures/husai-evidence" --campaign husai-evidence \
    --only phase4b_architecture_frontier_external --key "$key" --json >/dev/null

# husai's own statistic over the signed v2 import: lambda 0.2 minus lambda 0, paired seed-level bootstrap.
v2=$(ls results/husai-evidence/*/run_20260213T203957Z_results.json)
$bin claims stats lambda-difference --input "$v2" --treatment 0.2 --control 0 --key "$key"

run_of() { basename "$(dirname "$1")"; }
echo "RUN_V2    $(run_of "$v2")"
echo "RUN_C4    $(run_of "$(ls results/husai-evidence/*/release_gate/release_policy.json | sed 's|/release_gate/.*||')/x")"
echo "RUN_P4B   $(run_of "$(ls results/husai-evidence/*/run_20260213T173707Z_topk_saebench_summary.json)")"
echo "RUN_STATS $(run_of "$(ls results/claims-stats/*/lambda_difference.json)")"
