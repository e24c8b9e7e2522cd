//! check_registry: evidence from verified runs, release claims against signed gate reports, claim tags in Markdown.

use crate::gate_support;

use std::path::{Path, PathBuf};

use gate_support::Signer;
use husai_core::claims::check::Outcome;
use husai_core::claims::check_registry;
use husai_core::gate::Policy;
use husai_core::gate::source::read_verified;
use husai_core::gate::strict::{StrictInputs, evaluate};
use husai_core::manifest::RunKind;

const V2: &str = "phase4d_assignment_consistency_v2/run_20260213T203957Z_results.json";
const V2_NAME: &str = "run_20260213T203957Z_results.json";

/// `campaign/run_id` of the run holding `file`.
fn run_of(file: &Path) -> String {
    let dir = file.parent().unwrap();
    format!(
        "{}/{}",
        dir.parent().unwrap().file_name().unwrap().to_str().unwrap(),
        dir.file_name().unwrap().to_str().unwrap()
    )
}

fn write_registry(s: &Signer, body: &str) -> PathBuf {
    let path = s.dir.path().join("claims.json");
    std::fs::write(&path, body).unwrap();
    path
}

fn v2_registry(s: &Signer, docs: &str) -> (PathBuf, String) {
    let run = run_of(&s.sign_fixture(V2));
    let body = format!(
        r#"{{"schema_version": "1.0", "documents": {docs}, "claims": [
  {{"id": "v2-internal", "statement": "Assignment v2 improves consistency", "level": "internal", "evidence": [
    {{"run": "{run}", "subject": "{V2_NAME}", "pointer": "/acceptance/best_delta_lcb", "comparator": ">", "value": 0}},
    {{"run": "{run}", "subject": "{V2_NAME}", "pointer": "/acceptance/ev_drop", "comparator": "<=", "value": 0.05}}]}},
  {{"id": "v2-best-delta", "statement": "Best trained-vs-random PWMCC delta of the v2 run", "level": "exploratory", "evidence": [
    {{"run": "{run}", "subject": "{V2_NAME}", "pointer": "/acceptance/best_delta_pwmcc", "comparator": "==",
      "value": 0.0708, "tolerance": 0.0001}},
    {{"run": "{run}", "subject": "{V2_NAME}", "pointer": "/selection/strategy", "comparator": "==",
      "value": "max conservative delta LCB"}}]}}
]}}"#
    );
    (write_registry(s, &body), run)
}

#[test]
fn fixture5_claims_pass_against_the_signed_import() {
    let s = Signer::new();
    let (registry, _) = v2_registry(&s, "[]");
    let report = check_registry(&registry, &s.results(), &s.trust);
    assert!(report.passed(), "{report:#?}");
    assert_eq!(report.claims.len(), 2);
    assert_eq!(
        report.claims[0].evidence[0].actual,
        Some(serde_json::json!(0.05441876482218502))
    );
    assert_eq!(
        report.claims[0].evidence[0].sha256.as_ref().unwrap().len(),
        64
    );
}

#[test]
fn a_failing_comparison_fails_the_claim() {
    let s = Signer::new();
    let run = run_of(&s.sign_fixture(V2));
    let registry = write_registry(
        &s,
        &format!(
            r#"{{"schema_version": "1.0", "claims": [{{"id": "v2-gate", "statement": "The external gate passed",
            "level": "internal", "evidence": [{{"run": "{run}", "subject": "{V2_NAME}",
            "pointer": "/acceptance/gate_external", "comparator": "==", "value": true}}]}}]}}"#
        ),
    );
    let report = check_registry(&registry, &s.results(), &s.trust);
    assert!(!report.passed());
    let ev = &report.claims[0].evidence[0];
    assert_eq!(ev.outcome, Outcome::Fail);
    assert!(
        ev.message
            .as_ref()
            .unwrap()
            .contains("/acceptance/gate_external is False, which is not == true"),
        "{ev:?}"
    );
}

#[test]
fn unreadable_evidence_is_an_error_with_a_reason() {
    let s = Signer::new();
    let (registry, run) = v2_registry(&s, "[]");
    let text = std::fs::read_to_string(&registry)
        .unwrap()
        .replace("/acceptance/ev_drop", "/acceptance/no_such_field");
    std::fs::write(&registry, text).unwrap();
    let report = check_registry(&registry, &s.results(), &s.trust);
    let ev = &report.claims[0].evidence[1];
    assert_eq!(
        (ev.outcome, report.claims[0].outcome),
        (Outcome::Error, Outcome::Error)
    );
    assert!(
        ev.message
            .as_ref()
            .unwrap()
            .contains("has nothing at /acceptance/no_such_field")
    );

    // NaN values never satisfy a comparison.
    let closure = run_of(
        &s.sign_fixture("cycle4_followups_run_20260215T190004Z/known_circuit/closure_summary.json"),
    );
    let registry = write_registry(
        &s,
        &format!(
            r#"{{"schema_version": "1.0", "claims": [{{"id": "nan", "statement": "s", "level": "exploratory",
            "evidence": [{{"run": "{closure}", "subject": "closure_summary.json", "pointer": "/sae/trained_stats/mean",
            "comparator": ">=", "value": 0}}]}}]}}"#
        ),
    );
    let report = check_registry(&registry, &s.results(), &s.trust);
    assert!(
        report.claims[0].evidence[0]
            .message
            .as_ref()
            .unwrap()
            .contains("NaN")
    );

    // A tampered run does not verify.
    let signed = s.results().join(&run).join(V2_NAME);
    let mut bytes = std::fs::read(&signed).unwrap();
    bytes.push(b'\n');
    std::fs::write(&signed, bytes).unwrap();
    let text = format!(
        r#"{{"schema_version": "1.0", "claims": [{{"id": "t", "statement": "s", "level": "internal", "evidence": [
        {{"run": "{run}", "subject": "{V2_NAME}", "pointer": "/acceptance/ev_drop", "comparator": "<=", "value": 0.05}}]}}]}}"#
    );
    std::fs::write(&registry, text).unwrap();
    let report = check_registry(&registry, &s.results(), &s.trust);
    assert_eq!(report.claims[0].outcome, Outcome::Error);
    assert!(
        report.claims[0].evidence[0]
            .message
            .as_ref()
            .unwrap()
            .contains("failed verification"),
        "{report:#?}"
    );
}

#[test]
fn registry_errors_are_reported() {
    let s = Signer::new();
    let registry = write_registry(
        &s,
        r#"{"schema_version": "1.0", "claims": [{"id": "r", "statement": "s", "level": "release", "evidence": [
        {"run": "a/b", "subject": "x.json", "pointer": "/a", "comparator": "==", "value": 1}]}]}"#,
    );
    let report = check_registry(&registry, &s.results(), &s.trust);
    assert!(!report.passed());
    assert!(
        report
            .registry_error
            .as_ref()
            .unwrap()
            .contains("/claims/0: \"gate\" is a required property"),
        "{report:?}"
    );

    let registry = write_registry(
        &s,
        r#"{"schema_version": "1.0", "claims": [
        {"id": "d", "statement": "s", "level": "internal", "evidence": [{"run": "a/b", "subject": "x", "pointer": "/a", "comparator": "==", "value": 1}]},
        {"id": "d", "statement": "s", "level": "internal", "evidence": [{"run": "a/b", "subject": "x", "pointer": "/a", "comparator": "==", "value": 1}]}]}"#,
    );
    let msg = check_registry(&registry, &s.results(), &s.trust)
        .registry_error
        .unwrap();
    assert!(msg.contains("defines claim id \"d\" twice"), "{msg}");

    let registry = write_registry(
        &s,
        r#"{"schema_version": "1.0", "claims": [{"id": "o", "statement": "s", "level": "internal", "evidence": [
        {"run": "a/b", "subject": "x", "pointer": "/a", "comparator": ">", "value": "high"}]}]}"#,
    );
    assert!(
        check_registry(&registry, &s.results(), &s.trust)
            .registry_error
            .is_some(),
        "ordering needs a number"
    );
    let missing = s.dir.path().join("nope.json");
    let msg = check_registry(&missing, &s.results(), &s.trust)
        .registry_error
        .unwrap();
    assert!(msg.contains("cannot read the claims registry"), "{msg}");
}

#[test]
fn markdown_tags_must_quote_the_evidence() {
    let s = Signer::new();
    std::fs::create_dir_all(s.dir.path().join("docs")).unwrap();
    std::fs::write(
        s.dir.path().join("docs/good.md"),
        "# Notes\nBest LCB <!-- claim:v2-internal -->0.0544 (EV drop 8.8e-04)<!-- /claim -->, seed 42.\n\
         Strategy: <!-- claim:v2-best-delta -->`max conservative delta LCB`, delta 0.071<!-- /claim -->\n",
    )
    .unwrap();
    let (registry, _) = v2_registry(&s, r#"["docs"]"#);
    let report = check_registry(&registry, &s.results(), &s.trust);
    assert!(report.passed(), "{:#?}", report.document_findings);
    assert_eq!((report.documents_checked, report.spans_checked), (1, 2));

    std::fs::write(
        s.dir.path().join("docs/drift.md"),
        "Mode used:\n<!-- claim:v2-best-delta -->`None`, delta 0.054<!-- /claim -->\n<!-- claim:ghost -->1<!-- /claim -->\n",
    )
    .unwrap();
    let report = check_registry(&registry, &s.results(), &s.trust);
    let msgs: Vec<String> = report
        .document_findings
        .iter()
        .map(|f| format!("{}:{} {}", f.path.display(), f.line, f.message))
        .collect();
    assert_eq!(msgs.len(), 3, "{msgs:#?}");
    assert!(
        msgs[0].contains("drift.md:2 quotes `None` under claim `v2-best-delta`"),
        "{msgs:#?}"
    );
    assert!(msgs[1].contains("quotes 0.054 under claim"), "{msgs:#?}");
    assert!(
        msgs[2].contains("drift.md:3")
            && msgs[2].contains("`ghost`, which the registry does not define")
    );
}

fn passing_gate_run(s: &Signer) -> (String, String, String) {
    let candidate = r#"{"source": "grouped", "condition_id": "topk", "group_id": "topk", "checkpoint": "c.pt",
      "selection": {"grouped_from_seed_candidates": 5},
      "metrics": {"saebench_delta_ci95_low": 0.01, "cebench_interp_delta_vs_baseline_ci95_low": 0.5,
                  "saebench_delta_mean": 0.02, "cebench_interp_delta_vs_baseline_mean": 0.9}}"#;
    let candidate_path = s.sign_json("selected_candidate.json", candidate);
    let inputs = StrictInputs {
        transcoder: Some(
            read_verified(
                &s.sign_json(
                    "t.json",
                    r#"{"transcoder": {"summary": {}}, "sae": {"summary": {}}, "delta": 0.01}"#,
                ),
                &s.trust,
            )
            .unwrap(),
        ),
        ood: Some(
            read_verified(
                &s.sign_json(
                    "o.json",
                    r#"{"id_result": {}, "ood_result": {}, "ood_drop": 0.01}"#,
                ),
                &s.trust,
            )
            .unwrap(),
        ),
        external: vec![read_verified(&candidate_path, &s.trust).unwrap()],
        ..gate_support::passing_random_model(s)
    };
    let report = evaluate(&Policy::strict(), &inputs).unwrap();
    assert!(report.pass_all);
    let gate_dir = s.sign_as_gate(
        "decisions",
        &[
            ("gate-report.json", report.to_json_text().as_bytes()),
            ("gate-report.md", report.to_markdown().as_bytes()),
        ],
    );
    let gate_run = format!(
        "decisions/{}",
        gate_dir.file_name().unwrap().to_str().unwrap()
    );
    (
        gate_run,
        run_of(&candidate_path),
        candidate_path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string(),
    )
}

fn release_registry(s: &Signer, gate: &str, run: &str, subject: &str) -> PathBuf {
    write_registry(
        s,
        &format!(
            r#"{{"schema_version": "1.0", "claims": [{{"id": "rel", "statement": "topk is releasable", "level": "release",
            "gate": "{gate}", "evidence": [{{"run": "{run}", "subject": "{subject}",
            "pointer": "/metrics/saebench_delta_ci95_low", "comparator": ">=", "value": 0}}]}}]}}"#
        ),
    )
}

#[test]
fn release_claims_need_a_passing_gate_that_judged_the_cited_candidate() {
    let s = Signer::new();
    let (gate_run, cand_run, cand_subject) = passing_gate_run(&s);
    let report = check_registry(
        &release_registry(&s, &gate_run, &cand_run, &cand_subject),
        &s.results(),
        &s.trust,
    );
    assert!(report.passed(), "{report:#?}");

    // The same passing report, signed by a trusted key as kind gate but not by the gate itself.
    let gate_dir = std::path::Path::new(&s.results()).join(&gate_run);
    let report_bytes = std::fs::read(gate_dir.join("gate-report.json")).unwrap();
    let forged = s.sign(
        "decisions",
        RunKind::Gate,
        &[("gate-report.json", report_bytes.as_slice())],
    );
    let forged_run = format!(
        "decisions/{}",
        forged.file_name().unwrap().to_str().unwrap()
    );
    let report = check_registry(
        &release_registry(&s, &forged_run, &cand_run, &cand_subject),
        &s.results(),
        &s.trust,
    );
    assert_eq!(report.claims[0].outcome, Outcome::Error, "{report:#?}");
    assert!(
        report.claims[0].messages[0].contains("was not produced by the release gate"),
        "{report:#?}"
    );

    // Same numbers, but a different (re-signed) candidate file than the one the gate judged.
    let other = s.sign_json(
        "selected_candidate.json",
        r#"{"metrics": {"saebench_delta_ci95_low": 0.01}}"#,
    );
    let report = check_registry(
        &release_registry(&s, &gate_run, &run_of(&other), "selected_candidate.json"),
        &s.results(),
        &s.trust,
    );
    assert_eq!(report.claims[0].outcome, Outcome::Fail);
    assert!(
        report.claims[0].messages[0].contains("none of which the claim's evidence cites"),
        "{report:#?}"
    );

    // A gate run that is not a gate run.
    let report = check_registry(
        &release_registry(&s, &cand_run, &cand_run, &cand_subject),
        &s.results(),
        &s.trust,
    );
    assert_eq!(report.claims[0].outcome, Outcome::Error);
    assert!(
        report.claims[0].messages[0].contains("not a gate run"),
        "{report:#?}"
    );
}

#[test]
fn release_claim_with_a_failing_gate_fails() {
    let s = Signer::new();
    let inputs = StrictInputs {
        transcoder: None,
        ood: None,
        external: vec![
            read_verified(
                &s.sign_fixture(
                    "cycle4_followups_run_20260215T190004Z/selector/selected_candidate.json",
                ),
                &s.trust,
            )
            .unwrap(),
        ],
        ..gate_support::passing_random_model(&s)
    };
    let report = evaluate(&Policy::cycle4(), &inputs).unwrap();
    let cand = &report
        .gate(husai_core::gate::GateName::External)
        .unwrap()
        .inputs[0];
    let gate_dir = s.sign_as_gate(
        "decisions",
        &[("gate-report.json", report.to_json_text().as_bytes())],
    );
    let gate_run = format!(
        "decisions/{}",
        gate_dir.file_name().unwrap().to_str().unwrap()
    );
    let registry = write_registry(
        &s,
        &format!(
            r#"{{"schema_version": "1.0", "claims": [{{"id": "rel", "statement": "s", "level": "release", "gate": "{gate_run}",
            "evidence": [{{"run": "{}/{}", "subject": "{}", "pointer": "/condition_id", "comparator": "==", "value": "topk"}}]}}]}}"#,
            cand.campaign, cand.run_id, cand.subject
        ),
    );
    let result = check_registry(&registry, &s.results(), &s.trust);
    assert_eq!(result.claims[0].outcome, Outcome::Fail);
    assert!(
        result.claims[0].messages[0].contains("pass_all=false"),
        "{result:#?}"
    );
}
