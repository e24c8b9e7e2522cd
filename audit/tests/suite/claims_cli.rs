//! `husai-audit claims check`, `claims consistency` and `claims stats` end to end, and `verify` on the committed tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn evidence(rel: &str) -> PathBuf {
    repo().join("../shared/fixtures/husai-evidence").join(rel)
}

fn audit(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_husai-audit"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn the_repository_registry_holds() {
    let out = audit(&repo(), &["claims", "check", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["spans_checked"].as_u64().unwrap() >= 4);
}

#[test]
fn a_drifting_document_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let root = repo();
    let registry = std::fs::read_to_string(root.join("claims.json"))
        .unwrap()
        .replace("docs/upstream-claims.md", "drift.md");
    std::fs::write(dir.path().join("claims.json"), registry).unwrap();
    std::fs::write(
        dir.path().join("drift.md"),
        "Gate mode <!-- claim:upstream-cycle4-release-gate-failed -->`None`<!-- /claim -->\n",
    )
    .unwrap();
    let results = root.join("results");
    let keys = root.join("keys");
    let out = audit(
        dir.path(),
        &[
            "claims",
            "check",
            "--results",
            results.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "drift.md:1: quotes `None` under claim `upstream-cycle4-release-gate-failed`"
        ),
        "{text}"
    );
}

#[test]
fn consistency_audit_fixture5_is_signed_and_fails_overall() {
    let dir = tempfile::tempdir().unwrap();
    let key = husai_core::keys::generate();
    std::fs::write(dir.path().join("dev.pem"), key.to_pkcs8_pem()).unwrap();
    {
        // Signing refuses a key that group or others can read.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            dir.path().join("dev.pem"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let v2 = evidence("phase4d_assignment_consistency_v2/run_20260213T203957Z_results.json");
    let gates = evidence("cycle4_followups_run_20260215T190004Z/release_gate/release_policy.json");
    let out = audit(
        dir.path(),
        &[
            "claims",
            "consistency",
            "--assignment-v2-root",
            v2.to_str().unwrap(),
            "--stress-gates-root",
            gates.to_str().unwrap(),
            "--key",
            "dev.pem",
            "--json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let ids: Vec<(&str, bool)> = checks
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["pass"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        ids,
        [
            ("assignment_v2_internal_gain_positive", true),
            ("assignment_v2_external_gate_pass", false),
            ("stress_release_policy_pass_all", false),
        ]
    );
    assert_eq!(checks[0]["evidence"]["best_delta_lcb"], 0.05441876482218502);
    assert_eq!(checks[1]["evidence"]["external_delta"], -0.1328355796129408);
    assert_eq!(report["overall_pass"], false);
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("results/decisions"))
        .unwrap()
        .collect();
    assert_eq!(runs.len(), 1);

    let out = audit(dir.path(), &["claims", "consistency", "--key", "dev.pem"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no inputs"));
}

#[test]
fn verify_on_the_committed_tree_passes() {
    // The main CI job: every committed run and every claim in claims.json, against keys/.
    let out = audit(&repo(), &["verify", "--keys", "keys"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn claims_stats_lambda_difference_writes_a_signed_run_over_a_signed_import() {
    let p = common::Project::new();
    let o = p.run(&[
        "import",
        "husai-evidence",
        evidence("").to_str().unwrap(),
        "--campaign",
        "husai-evidence",
        "--only",
        "phase4d_assignment_consistency_v2",
        "--key",
        "dev.pem",
    ]);
    common::assert_success(&o);
    let import_dir = std::fs::read_dir(p.path("results/husai-evidence"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let input = import_dir.join("run_20260213T203957Z_results.json");
    let o = p.run(&[
        "claims",
        "stats",
        "lambda-difference",
        "--input",
        input.to_str().unwrap(),
        "--treatment",
        "0.2",
        "--key",
        "dev.pem",
    ]);
    common::assert_success(&o);
    let text = common::stdout(&o);
    assert!(
        text.contains(
            "lambda 0.2 minus lambda 0: mean pairwise PWMCC difference +0.0221, 95% interval [0.0035, 0.0472] over 5 seeds"
        ),
        "{text}"
    );
    assert!(
        text.contains("pairs with reference seed 42: 4 pairs, mean difference +0.0485; without: 6 pairs, mean difference +0.0046"),
        "{text}"
    );
    let o = p.run(&["verify", "--keys", "keys", "results"]);
    common::assert_success(&o);

    // A lambda the file does not hold is a usage error that lists the ones it does.
    let o = p.run(&[
        "claims",
        "stats",
        "lambda-difference",
        "--input",
        input.to_str().unwrap(),
        "--treatment",
        "0.3",
        "--key",
        "dev.pem",
    ]);
    common::assert_fails_with(
        &o,
        2,
        &[
            "no results[] record has lambda_consistency 0.3; the file holds lambda values [0, 0.01, 0.05, 0.1, 0.2]",
        ],
    );
}
