//! The repository's own claims registry holds against the committed signed runs, and every committed run was made by
//! a release build from a clean commit.

use std::path::{Path, PathBuf};

use husai_core::claims::check_registry;
use husai_core::manifest::Manifest;
use husai_core::trust::TrustPolicy;
use husai_core::verify;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn repository_claims_verify() {
    let root = root();
    let trust = TrustPolicy::load(root.join("keys")).unwrap();
    let report = check_registry(&root.join("claims.json"), &root.join("results"), &trust);
    assert!(report.passed(), "{report:#?}");
    assert!(report.claims.len() >= 4);
    assert!(report.spans_checked >= 4, "{report:#?}");
}

/// Every `results/<campaign>/<run_id>` directory, sorted.
fn committed_runs(results: &Path) -> Vec<PathBuf> {
    let mut runs = Vec::new();
    for campaign in std::fs::read_dir(results).unwrap().flatten() {
        if !campaign.path().is_dir() {
            continue;
        }
        for run in std::fs::read_dir(campaign.path()).unwrap().flatten() {
            if run.path().join("husai.dsse.json").is_file() {
                runs.push(run.path());
            }
        }
    }
    runs.sort();
    runs
}

/// Why a committed run's manifest says it was not made by a release build from a clean commit, if it does.
fn provenance_problems(manifest: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    match manifest.tool.git_dirty {
        Some(false) => {}
        Some(true) => problems.push(format!(
            "tool.git_dirty is true: husai-audit was built from a tree with uncommitted changes (commit {})",
            manifest.tool.git_commit.as_deref().unwrap_or("unknown")
        )),
        None => problems.push("tool.git_dirty is null: the build recorded no git state".into()),
    }
    if manifest.tool.git_commit.is_none() {
        problems.push("tool.git_commit is null".into());
    }
    if let Some(exe) = manifest.argv.first()
        && Path::new(exe)
            .components()
            .any(|c| c.as_os_str() == "debug")
    {
        problems.push(format!(
            "argv[0] is {exe:?}, a debug build; committed runs are made with target/release/husai-audit"
        ));
    }
    problems
}

#[test]
fn committed_runs_come_from_a_release_build_of_a_clean_commit() {
    let root = root();
    let trust = TrustPolicy::load(root.join("keys")).unwrap();
    let runs = committed_runs(&root.join("results"));
    assert!(!runs.is_empty(), "no committed runs under results/");
    let mut failures = Vec::new();
    for dir in &runs {
        let run = verify::load_verified_run(dir, &trust).unwrap();
        let problems = provenance_problems(&run.manifest);
        if !problems.is_empty() {
            failures.push(format!(
                "{}:\n    {}",
                dir.strip_prefix(&root).unwrap_or(dir).display(),
                problems.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "committed runs must be made by a release build from a clean commit; commit your work and regenerate \
         them with scripts/regenerate_results.sh (a release build, then target/release/husai-audit):\n  {}",
        failures.join("\n  ")
    );
}

#[test]
fn the_provenance_check_catches_dirty_and_debug_runs() {
    let root = root();
    let trust = TrustPolicy::load(root.join("keys")).unwrap();
    let dir = &committed_runs(&root.join("results"))[0];
    let mut manifest = verify::load_verified_run(dir, &trust).unwrap().manifest;
    manifest.tool.git_dirty = Some(false);
    manifest.tool.git_commit = Some("0".repeat(40));
    manifest.argv[0] = "target/release/husai-audit".into();
    assert!(provenance_problems(&manifest).is_empty());
    manifest.tool.git_dirty = Some(true);
    manifest.argv[0] = "./target/debug/husai-audit".into();
    let problems = provenance_problems(&manifest);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("tool.git_dirty is true"));
    assert!(problems[1].contains("a debug build"));
    manifest.tool.git_dirty = None;
    manifest.argv[0] = "/opt/debugger/husai-audit".into();
    assert_eq!(
        provenance_problems(&manifest),
        ["tool.git_dirty is null: the build recorded no git state"]
    );
}

#[test]
fn the_old_saebench_claim_fails_against_the_committed_runs() {
    // The registry entry this repository had before issue 15, against today's committed imports.
    let root = root();
    let trust = TrustPolicy::load(root.join("keys")).unwrap();
    let registry: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("claims.json")).unwrap()).unwrap();
    let v2 = registry["claims"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["evidence"].as_array().unwrap())
        .find(|e| e["subject"] == "run_20260213T203957Z_results.json")
        .map(|e| e["run"].as_str().unwrap().to_string())
        .unwrap();
    let old = format!(
        r#"{{"schema_version": "1.0", "claims": [{{
      "id": "upstream-assignment-v2-external-gate-failed",
      "statement": "The same run failed its external gate: the SAEBench delta of its candidate is negative.",
      "level": "internal",
      "evidence": [
        {{"run": "{v2}", "subject": "run_20260213T203957Z_results.json", "pointer": "/acceptance/gate_external", "comparator": "==", "value": false}},
        {{"run": "{v2}", "subject": "run_20260213T203957Z_results.json", "pointer": "/acceptance/external_delta", "comparator": "<", "value": 0}}
      ]}}]}}"#
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claims.json");
    std::fs::write(&path, old).unwrap();
    let report = check_registry(&path, &root.join("results"), &trust);
    assert!(!report.passed());
    let messages = &report.claims[0].messages;
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(
        messages[1].contains("/acceptance/external_delta measures another model: the model of docs/evidence/phase4b_architecture_frontier_external/run_20260213T173707Z_topk_saebench_summary.json")
            && messages[1].contains("model_name \"pythia-70m-deduped\", architecture \"topk\", d_model 512, d_sae 1024, k 32")
            && messages[1].contains("d_sae 1024 there, 128 claimed"),
        "{messages:#?}"
    );
}
