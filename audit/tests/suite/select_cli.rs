//! `husai-audit select` end to end: signed outputs, strict mode's verified inputs, parity's drop-in flags, and
//! bad inputs that must leave nothing behind.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/husai-evidence")
        .join(rel)
}

const FRONTIER: &str = "cycle3_queue_final/frontier_multiseed_results_run_20260214T202538Z.json";
const SCALING: &str = "cycle3_queue_run_20260215T165724Z/scaling_results.json";
const MATRYOSHKA: &str = "cycle4_followups_run_20260215T190004Z/matryoshka/results.json";

/// Attests the outcome-3 inputs as one signed run and returns (run dir, frontier path, scaling path).
fn signed_inputs(p: &Project) -> (PathBuf, PathBuf, PathBuf) {
    let frontier = std::fs::read(fixture(FRONTIER)).unwrap();
    let scaling = std::fs::read(fixture(SCALING)).unwrap();
    let run = p.attest(
        "inputs",
        "import",
        &[("frontier.json", &frontier), ("scaling.json", &scaling)],
    );
    let (f, s) = (run.join("frontier.json"), run.join("scaling.json"));
    (run, f, s)
}

fn decision_runs(p: &Project) -> Vec<PathBuf> {
    match std::fs::read_dir(p.path("results/decisions")) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn only_run(p: &Project) -> PathBuf {
    let runs = decision_runs(p);
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn strict_selection_is_signed_and_cites_verified_inputs() {
    let p = Project::new();
    let (input_run, f, s) = signed_inputs(&p);
    let o = p.run(&[
        "select",
        "--key",
        "dev.pem",
        "--input",
        f.to_str().unwrap(),
        "--input",
        s.to_str().unwrap(),
    ]);
    assert_success(&o);
    assert!(stdout(&o).contains("selected topk@"), "{}", stdout(&o));
    let run = only_run(&p);
    assert_eq!(
        names(&run),
        [
            "husai.dsse.json",
            "pareto.svg",
            "selection.json",
            "summary.md"
        ]
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("selection.json")).unwrap()).unwrap();
    assert_eq!(doc["selected"]["condition"], "topk");
    assert_eq!(
        doc["selected"]["representative"]["condition_id"],
        "topk_seed123"
    );
    let input_run_id = file_name(&input_run);
    let inputs = doc["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[0]["run"]["run_id"], input_run_id.as_str());
    assert_eq!(inputs[0]["run"]["subject"], "frontier.json");
    let sha = husai_core::digest::sha256_hex(&std::fs::read(&f).unwrap());
    assert_eq!(inputs[0]["sha256"], sha.as_str());
    // The whole tree, including the provenance chain from the decision to its inputs, verifies.
    assert_success(&p.run(&["verify"]));
}

#[test]
fn strict_mode_refuses_unsigned_and_tampered_inputs() {
    let p = Project::new();
    let o = p.run(&[
        "select",
        "--key",
        "dev.pem",
        "--input",
        fixture(FRONTIER).to_str().unwrap(),
    ]);
    assert_fails_with(&o, 1, &["is not inside a signed run", "--parity"]);
    assert!(decision_runs(&p).is_empty());

    let (_, f, _) = signed_inputs(&p);
    let mut bytes = std::fs::read(&f).unwrap();
    bytes.extend_from_slice(b" ");
    std::fs::write(&f, bytes).unwrap();
    let o = p.run(&["select", "--key", "dev.pem", "--input", f.to_str().unwrap()]);
    assert_fails_with(&o, 1, &["fails verification"]);
    assert!(decision_runs(&p).is_empty());
}

#[test]
fn parity_is_a_drop_in_with_upstream_outputs() {
    let p = Project::new();
    // Upstream's flags, interleaved as upstream's cycle4 queue passed them (matryoshka last).
    let o = p.run(&[
        "select",
        "--parity",
        "--key",
        "dev.pem",
        "--frontier-results",
        fixture(FRONTIER).to_str().unwrap(),
        "--scaling-results",
        fixture(SCALING).to_str().unwrap(),
        "--require-both-external",
        "--group-by-condition",
        "--uncertainty-mode",
        "lcb",
        "--min-seeds-per-group",
        "3",
        "--weight-saebench",
        "0.5",
        "--output-dir",
        "results",
        "--frontier-results",
        fixture(MATRYOSHKA).to_str().unwrap(),
        "--json",
    ]);
    assert_success(&o);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        summary["counts"],
        serde_json::json!({"total_candidates": 47, "eligible_seed_candidates": 32, "eligible_candidates": 8, "pareto_count": 3})
    );
    let selected = &summary["selected_candidate"];
    assert_eq!(selected["group_id"], "topk");
    assert_eq!(selected["representative_condition_id"], "topk_seed123");
    assert_eq!(selected["metrics"]["saebench_delta"], -0.04478959689939781);
    assert_eq!(
        selected["metrics"]["cebench_interp_delta_vs_baseline"],
        -40.467037470119465
    );
    let run = only_run(&p);
    assert_eq!(
        names(&run),
        [
            "candidate_table.json",
            "husai.dsse.json",
            "pareto_front.json",
            "selected_candidate.json",
            "selection_summary.json",
            "summary.md"
        ]
    );
    // --json printed exactly the signed file.
    assert_eq!(
        std::fs::read(run.join("selection_summary.json")).unwrap(),
        o.stdout
    );
    assert_eq!(summary["run_metadata"]["run_id"], file_name(&run).as_str());
    assert_success(&p.run(&["verify"]));
}

#[test]
fn key_comes_from_the_environment() {
    let p = Project::new();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_husai-audit"))
        .args([
            "select",
            "--parity",
            "--require-both-external",
            "--frontier-results",
        ])
        .arg(fixture(FRONTIER))
        .current_dir(p.dir.path())
        .env("HUSAI_SIGNING_KEY", p.path("dev.pem"))
        .output()
        .unwrap();
    assert_success(&o);
    assert_eq!(decision_runs(&p).len(), 1);
    let o = p.run(&[
        "select",
        "--parity",
        "--frontier-results",
        fixture(FRONTIER).to_str().unwrap(),
    ]);
    assert_fails_with(&o, 2, &["no signing key", "HUSAI_SIGNING_KEY"]);
}

#[test]
fn bad_inputs_write_nothing() {
    let p = Project::new();
    let empty = fixture(
        "cycle10_live_snapshot_20260218T0332Z/assignment/run_20260218T024225Z_results.json",
    );
    let o = p.run(&[
        "select",
        "--parity",
        "--key",
        "dev.pem",
        "--assignment-results",
        empty.to_str().unwrap(),
    ]);
    assert_fails_with(&o, 2, &["is empty (0 bytes)"]);
    let v2 = fixture("phase4d_assignment_consistency_v2/run_20260213T203957Z_results.json");
    let o = p.run(&[
        "select",
        "--parity",
        "--key",
        "dev.pem",
        "--assignment-results",
        v2.to_str().unwrap(),
    ]);
    assert_fails_with(
        &o,
        2,
        &[
            "expected a assignment_v3_results artifact",
            "assignment_v2_results",
        ],
    );
    let o = p.run(&[
        "select",
        "--parity",
        "--key",
        "dev.pem",
        "--frontier-results",
        "missing.json",
    ]);
    assert_fails_with(&o, 2, &["cannot read selector input missing.json"]);
    let o = p.run(&["select", "--key", "dev.pem"]);
    assert_fails_with(&o, 2, &["no selector inputs"]);
    // Every matryoshka row failed its external evaluation: nothing is eligible.
    let o = p.run(&[
        "select",
        "--parity",
        "--key",
        "dev.pem",
        "--frontier-results",
        fixture(MATRYOSHKA).to_str().unwrap(),
    ]);
    assert_fails_with(
        &o,
        2,
        &[
            "no candidate rows left after filtering",
            "3 external_eval_failed",
        ],
    );
    assert!(decision_runs(&p).is_empty());
    assert!(
        !p.path("results/decisions").exists() || names(&p.path("results/decisions")).is_empty()
    );
}

#[test]
fn conflicting_duplicate_seeds_in_signed_inputs_are_refused() {
    let p = Project::new();
    let frontier = std::fs::read_to_string(fixture(FRONTIER)).unwrap();
    // The same run twice, once with one seed's SAEBench delta changed: same config, same seeds, different numbers.
    let changed = frontier.replacen("-0.041807613913057096", "-0.0418", 1);
    assert_ne!(changed, frontier);
    let run = p.attest(
        "dup",
        "import",
        &[
            ("a.json", frontier.as_bytes()),
            ("b.json", changed.as_bytes()),
        ],
    );
    let o = p.run(&[
        "select",
        "--key",
        "dev.pem",
        "--input",
        run.join("a.json").to_str().unwrap(),
        "--input",
        run.join("b.json").to_str().unwrap(),
    ]);
    assert_fails_with(
        &o,
        2,
        &["group `topk` has seed 42 twice with different `saebench_delta`"],
    );
    assert!(decision_runs(&p).is_empty());
}

#[test]
fn manifest_records_the_decision_and_its_inputs() {
    let p = Project::new();
    let (input_run, f, s) = signed_inputs(&p);
    let o = p.run(&[
        "select",
        "--key",
        "dev.pem",
        "--campaign",
        "release-2026",
        "--lcb-method",
        "bootstrap",
        "--min-seeds-per-group",
        "5",
        "--bootstrap-resamples",
        "2000",
        "--bootstrap-seed",
        "99",
        "--input",
        f.to_str().unwrap(),
        "--input",
        s.to_str().unwrap(),
    ]);
    assert_success(&o);
    let runs: Vec<PathBuf> = std::fs::read_dir(p.path("results/release-2026"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(runs.len(), 1);
    let envelope: husai_core::dsse::Envelope =
        serde_json::from_slice(&std::fs::read(runs[0].join("husai.dsse.json")).unwrap()).unwrap();
    let statement: serde_json::Value =
        serde_json::from_slice(&envelope.decode_payload().unwrap()).unwrap();
    let manifest = &statement["predicate"];
    assert_eq!(manifest["kind"], "select");
    assert_eq!(manifest["campaign"], "release-2026");
    assert_eq!(manifest["seeds"], serde_json::json!([99]));
    assert_eq!(manifest["config"]["mode"], "strict");
    assert!(
        manifest["config"]["lcb_method"]
            .as_str()
            .unwrap()
            .contains("2000 resamples, SplitMix64 seed 99")
    );
    assert!(
        manifest["config_sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64)
    );
    let inputs = manifest["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    for (input, subject) in inputs.iter().zip(["frontier.json", "scaling.json"]) {
        assert_eq!(input["run"]["run_id"], file_name(&input_run).as_str());
        assert_eq!(input["run"]["subject"], subject);
    }
    assert_eq!(
        manifest["extra"]["select"]["selected_candidate"]
            .as_str()
            .map(|s| s.starts_with("topk@")),
        Some(true)
    );
    let names: Vec<&str> = statement["subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pareto.svg", "selection.json", "summary.md"]);
}

#[test]
fn runs_that_did_not_end_ok_are_never_candidates() {
    use husai_core::manifest::{RunKind, RunStatus};
    let p = Project::new();
    let frontier = std::fs::read(fixture(FRONTIER)).unwrap();
    for (status, word, advice) in [
        (RunStatus::Diverged, "diverged", "train it again"),
        (RunStatus::Interrupted, "interrupted", "--resume"),
    ] {
        let run = sign_with_status(
            &p,
            "train",
            RunKind::Train,
            &[("frontier.json", &frontier)],
            status,
            "loss.mse is not finite at step 17",
        );
        // The run itself verifies: a failed run is signed evidence, not a broken one.
        assert_success(&p.run(&["verify", run.to_str().unwrap()]));
        let input = run.join("frontier.json");
        let o = p.run(&[
            "select",
            "--key",
            "dev.pem",
            "--input",
            input.to_str().unwrap(),
        ]);
        let run_id = file_name(&run);
        assert_fails_with(
            &o,
            1,
            &[
                &format!("selector input {}", input.display()),
                &format!("run train/{run_id}"),
                &format!("ended with status `{word}` (loss.mse is not finite at step 17)"),
                "select and gate take only runs with status `ok`",
                advice,
            ],
        );
        assert!(decision_runs(&p).is_empty());
    }
    // The same file in a run that ended ok is a candidate.
    let ok = sign_with_status(
        &p,
        "train",
        RunKind::Train,
        &[("frontier.json", &frontier)],
        RunStatus::Ok,
        "",
    );
    let input = ok.join("frontier.json");
    assert_success(&p.run(&[
        "select",
        "--key",
        "dev.pem",
        "--input",
        input.to_str().unwrap(),
    ]));
}

#[test]
fn bootstrap_with_its_default_seed_signs_and_records_that_seed() {
    // The old default seed (0x4855534149425354) was above 2^53 - 1, so signing the manifest failed.
    let p = Project::new();
    let (_, f, s) = signed_inputs(&p);
    let o = p.run(&[
        "select",
        "--key",
        "dev.pem",
        "--lcb-method",
        "bootstrap",
        "--min-seeds-per-group",
        "5",
        "--bootstrap-resamples",
        "500",
        "--input",
        f.to_str().unwrap(),
        "--input",
        s.to_str().unwrap(),
    ]);
    assert_success(&o);
    let run = only_run(&p);
    let envelope: husai_core::dsse::Envelope =
        serde_json::from_slice(&std::fs::read(run.join("husai.dsse.json")).unwrap()).unwrap();
    let statement: serde_json::Value =
        serde_json::from_slice(&envelope.decode_payload().unwrap()).unwrap();
    let seed = husai_core::stats::BootstrapSpec::default().seed;
    assert!(seed <= husai_core::manifest::MAX_SEED);
    assert_eq!(statement["predicate"]["seeds"], serde_json::json!([seed]));
    // Below five seeds per group the bootstrap is refused before anything is written.
    let p = Project::new();
    let (_, f, s) = signed_inputs(&p);
    let o = p.run(&[
        "select",
        "--key",
        "dev.pem",
        "--lcb-method",
        "bootstrap",
        "--input",
        f.to_str().unwrap(),
        "--input",
        s.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--lcb-method bootstrap needs at least 5 seeds per group"),
        "{err}"
    );
    assert!(decision_runs(&p).is_empty());
}
