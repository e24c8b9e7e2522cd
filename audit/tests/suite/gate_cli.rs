//! `husai-audit gate` end to end: parity reproduces upstream's files and exit codes, strict signs a gate report,
//! and bad inputs write nothing.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use husai_core::keys;
use husai_core::manifest::{ManifestDraft, RunKind, ToolInfo};
use husai_core::store::RunStore;

fn evidence(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/husai-evidence")
        .join(rel)
}

struct Env {
    dir: tempfile::TempDir,
    key: keys::SigningKey,
}

impl Env {
    /// A scratch project with a throwaway trusted key (tests/common).
    fn new() -> Env {
        let p = common::Project::new();
        Env {
            dir: p.dir,
            key: p.key,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn gate(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_husai-audit"))
            .arg("gate")
            .args(args)
            .args(["--results", "results", "--keys", "keys"])
            .env("HUSAI_SIGNING_KEY", self.path("dev.pem"))
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn runs(&self) -> Vec<PathBuf> {
        let campaign = self.path("results/decisions");
        let Ok(entries) = std::fs::read_dir(campaign) else {
            return Vec::new();
        };
        entries.map(|e| e.unwrap().path()).collect()
    }

    fn sign(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let store = RunStore::open(self.path("results")).unwrap();
        let staged = store.stage("evidence", RunKind::Import).unwrap();
        std::fs::write(staged.dir().join(name), bytes).unwrap();
        let draft = ManifestDraft::new(ToolInfo {
            name: "t".into(),
            version: "0".into(),
            git_commit: None,
            git_dirty: None,
        });
        staged
            .commit(draft, &self.key, &|_| {})
            .unwrap()
            .dir
            .join(name)
    }
}

const PHASE4A: &str = r#"{"comparison": {"difference": 0.0012296229600906594},
  "trained": {"mean": 0.3, "ci95_low": 6.183199584486321e-05, "ci95_high": 0.4},
  "random": {"mean": 0.2, "ci95_low": 0.0, "ci95_high": 0.0}, "statistical_test": {"p_value": 0.0001649}}"#;
const TRANSCODER: &str = r#"{"delta": 0.004916101694107056}"#;
const CANDIDATE: &str = "cycle4_followups_run_20260215T190004Z/selector/selected_candidate.json";
const OOD: &str = "cycle4_followups_run_20260215T190004Z/ood/ood_stress_summary.json";

fn fixture1_args(env: &Env) -> Vec<String> {
    std::fs::write(env.path("phase4a.json"), PHASE4A).unwrap();
    std::fs::write(env.path("transcoder.json"), TRANSCODER).unwrap();
    [
        "--parity",
        "--phase4a-results",
        "phase4a.json",
        "--transcoder-results",
        "transcoder.json",
        "--ood-results",
        evidence(OOD).to_str().unwrap(),
        "--external-candidate-json",
        evidence(CANDIDATE).to_str().unwrap(),
        "--external-mode",
        "joint",
        "--use-external-lcb",
        "--min-saebench-delta-lcb",
        "0.0",
        "--min-cebench-delta-lcb",
        "0.0",
        "--require-transcoder",
        "--require-ood",
        "--require-external",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn parity_fixture1_reproduces_upstreams_markdown_and_exit_codes() {
    let env = Env::new();
    let args = fixture1_args(&env);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut with_json = refs.clone();
    with_json.push("--json");
    let out = env.gate(&with_json);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(
        printed.contains("\"external_mode_used\": \"joint\"")
            && printed.contains("\"pass_all\": false")
    );

    let runs = env.runs();
    assert_eq!(runs.len(), 1);
    let md = std::fs::read_to_string(runs[0].join("release_policy.md")).unwrap();
    let expected = std::fs::read_to_string(evidence(
        "cycle4_followups_run_20260215T190004Z/release_gate/release_policy.md",
    ))
    .unwrap();
    // Only the run id (a timestamp) differs.
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("- Run ID:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&md), strip(&expected));
    assert_eq!(
        std::fs::read_to_string(runs[0].join("release_policy.json")).unwrap(),
        printed
    );
    // The signed manifest records the digest of every input read.
    let trust = husai_core::trust::TrustPolicy::load(env.path("keys")).unwrap();
    let run = husai_core::verify::load_verified_run(&runs[0], &trust).unwrap();
    assert_eq!(run.manifest.inputs.len(), 4);
    let ood_digest = husai_core::digest::sha256_hex(&std::fs::read(evidence(OOD)).unwrap());
    assert!(
        run.manifest
            .inputs
            .iter()
            .any(|i| i.digest["sha256"] == ood_digest)
    );
    assert_eq!(run.manifest.extra["upstream_exit_code"], 0);

    let mut failing = refs.clone();
    failing.push("--fail-on-gate-fail");
    // Upstream exits 2 here; husai's one contract says 1 for a failed gate, and the run records upstream's code.
    assert_eq!(
        env.gate(&failing).status.code(),
        Some(1),
        "a failed gate is exit 1"
    );

    let verify = Command::new(env!("CARGO_BIN_EXE_husai-audit"))
        .args(["verify", "results", "--keys", "keys"])
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn parity_fixture2_legacy_gate_fails_with_code_1() {
    let env = Env::new();
    std::fs::write(env.path("phase4a.json"), PHASE4A).unwrap();
    let summary = evidence(
        "phase4b_architecture_frontier_external/run_20260213T173707Z_topk_saebench_summary.json",
    );
    let out = env.gate(&[
        "--parity",
        "--phase4a-results",
        "phase4a.json",
        "--external-summary",
        summary.to_str().unwrap(),
        "--require-transcoder",
        "--require-ood",
        "--require-external",
        "--min-external-delta",
        "0.0",
        "--fail-on-gate-fail",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let printed = String::from_utf8(out.stdout).unwrap();
    for line in [
        "\"random_model\": true",
        "\"transcoder\": false",
        "\"ood\": false",
        "\"external\": false",
        "\"external_delta\": -0.1328355796129408",
    ] {
        assert!(printed.contains(line), "{line}\n{printed}");
    }
}

#[test]
fn parity_legacy_schema_reproduces_fixture2_markdown() {
    let env = Env::new();
    std::fs::write(env.path("phase4a.json"), PHASE4A).unwrap();
    let summary = evidence(
        "phase4b_architecture_frontier_external/run_20260213T173707Z_topk_saebench_summary.json",
    );
    let out = env.gate(&[
        "--parity",
        "--legacy-schema",
        "--phase4a-results",
        "phase4a.json",
        "--external-summary",
        summary.to_str().unwrap(),
        "--require-transcoder",
        "--require-ood",
        "--require-external",
        "--min-external-delta",
        "0.0",
        "--fail-on-gate-fail",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = env.runs();
    let run = husai_core::verify::load_verified_run(
        &runs[0],
        &husai_core::trust::TrustPolicy::load(env.path("keys")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        run.manifest.extra["upstream_exit_code"], 2,
        "upstream's own code is kept in the run"
    );
    let md = std::fs::read_to_string(runs[0].join("release_policy.md")).unwrap();
    let expected = std::fs::read_to_string(evidence(
        "phase4e_stress_gated_release/run_20260213T204120Z_release_policy.md",
    ))
    .unwrap();
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("- Run ID:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&md), strip(&expected));
    let out = env.gate(&["--parity", "--legacy-schema", "--external-mode", "joint"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the legacy policy had no external modes"
    );
}

#[test]
fn bad_parity_inputs_write_nothing() {
    let env = Env::new();
    let empty = evidence(
        "cycle10_live_snapshot_20260218T0332Z/assignment/run_20260218T024225Z_results.json",
    );
    let out = env.gate(&["--parity", "--ood-results", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--ood-results") && err.contains("empty (0 bytes)"),
        "{err}"
    );
    let out = env.gate(&["--parity", "--ood-results", ""]);
    assert_eq!(out.status.code(), Some(2));
    // Upstream crashed on `""` (it became '.'); the command line refuses it outright.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a value is required for '--ood-results")
    );
    let out = env.gate(&["--parity", "--external-mode", "both"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid choice"));
    assert!(env.runs().is_empty());
}

#[test]
fn strict_gate_signs_a_report_and_fails_with_code_1() {
    let env = Env::new();
    let phase4a = env.sign("phase4a.json", PHASE4A.as_bytes());
    let transcoder = env.sign(
        "transcoder_stress_summary.json",
        &std::fs::read(evidence(
            "cycle3_queue_final/transcoder_stress_summary_run_20260214T224242Z.json",
        ))
        .unwrap(),
    );
    let ood = env.sign(
        "ood_stress_summary.json",
        &std::fs::read(evidence(OOD)).unwrap(),
    );
    let candidate = env.sign(
        "selected_candidate.json",
        &std::fs::read(evidence(CANDIDATE)).unwrap(),
    );
    // Strict mode refuses upstream's phase-4a file (a difference of two bounds): an error, nothing written.
    let out = env.gate(&["--phase4a", phase4a.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("which only --parity accepts"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.runs().is_empty());
    let out = env.gate(&[
        "--transcoder",
        transcoder.to_str().unwrap(),
        "--ood",
        ood.to_str().unwrap(),
        "--external",
        candidate.to_str().unwrap(),
        "--allow-missing",
        "random_model",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["policy"]["profile"], "strict");
    assert_eq!(report["pass_all"], false);
    assert_eq!(
        report["gates"][1]["status"], "fail",
        "this transcoder delta is negative"
    );
    assert_eq!(
        report["gates"][3]["inputs"][0]["subject"],
        "selected_candidate.json"
    );
    let runs = env.runs();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].join("gate-report.md").is_file());

    // A missing input fails as not_evaluated, unless allowed.
    let out = env.gate(&[
        "--ood",
        ood.to_str().unwrap(),
        "--json",
        "--allow-missing",
        "ood",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["gates"][1]["status"], "not_evaluated");
    assert_eq!(report["gates"][1]["passed"], false);
    assert_eq!(report["gates"][2]["passed"], true);
}

#[test]
fn strict_refuses_unsigned_inputs_and_writes_nothing() {
    let env = Env::new();
    std::fs::write(env.path("phase4a.json"), PHASE4A).unwrap();
    // An unsigned input is a verification failure (1), as in `select`; a missing file is an I/O error (2).
    let out = env.gate(&["--phase4a", "phase4a.json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not inside a signed run"), "{err}");
    assert!(err.contains("gate: FAILED"), "{err}");
    let out = env.gate(&["--phase4a", "no-such.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
    let out = env.gate(&["--external-mode", "auto"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`auto` exists only with --parity"));
    let out = env.gate(&["--parity", "--phase4a", "phase4a.json"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "strict-only flags are refused with --parity"
    );
    let candidate = env.sign(
        "selected_candidate.json",
        &std::fs::read(evidence(CANDIDATE)).unwrap(),
    );
    let out = env.gate(&["--ood", candidate.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the ood gate reads an OOD stress summary")
    );
    let no_field = env.sign(
        "ood_stress_summary.json",
        br#"{"id_result": {}, "ood_result": {}}"#,
    );
    let out = env.gate(&["--ood", no_field.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("required field `ood_drop` is missing"));
    let out = env.gate(&["--profile", "lenient"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown --profile"));
    assert!(env.runs().is_empty());
}

#[test]
fn strict_refuses_evidence_from_runs_that_did_not_end_ok() {
    use husai_core::manifest::RunStatus;
    let p = common::Project::new();
    let ood = std::fs::read(evidence(OOD)).unwrap();
    let run = common::sign_with_status(
        &p,
        "evidence",
        RunKind::Eval,
        &[("ood_stress_summary.json", &ood)],
        RunStatus::Interrupted,
        "stopped by SIGINT after step 3",
    );
    let env = Env {
        dir: p.dir,
        key: p.key,
    };
    let input = run.join("ood_stress_summary.json");
    let out = env.gate(&["--ood", input.to_str().unwrap(), "--json"]);
    // Evidence from a run that did not end ok is refused as a verification failure (exit 1), as select does.
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let run_id = run.file_name().unwrap().to_string_lossy();
    assert!(
        err.contains(&format!("{}: run evidence/{run_id}", input.display()))
            && err.contains("ended with status `interrupted` (stopped by SIGINT after step 3)")
            && err.contains(
                "select and gate take only runs with status `ok` as candidates or evidence"
            ),
        "{err}"
    );
    assert!(env.runs().is_empty());
    assert!(out.stdout.is_empty());
}
