//! A claim's `about`: the check refuses a claim whose evidence measures another model (the SAEBench case of upstream's
//! assignment-v2 run, whose external delta is a static summary of a phase-4b Pythia-70m TopK SAE).

use crate::gate_support;

use std::path::PathBuf;

use gate_support::{Signer, evidence};
use husai_core::claims::check::{ClaimsReport, Outcome};
use husai_core::claims::check_registry;
use husai_core::legacy::import::import_tree;
use husai_core::manifest::ToolInfo;
use husai_core::store::RunStore;

const V2_GROUP: &str = "phase4d_assignment_consistency_v2";
const FRONTIER_GROUP: &str = "phase4b_architecture_frontier_external";
const V2: &str = "run_20260213T203957Z_results.json";
const SAEBENCH: &str = "run_20260213T173707Z_topk_saebench_summary.json";

/// Imports the given upstream groups as signed runs; returns `campaign/run_id` per group, in the order given.
fn import(s: &Signer, groups: &[&str]) -> Vec<String> {
    let store = RunStore::open(s.results()).unwrap();
    let tool = ToolInfo {
        name: "husai-tests".into(),
        version: "0".into(),
        git_commit: None,
        git_dirty: None,
    };
    let only: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let runs = import_tree(
        &store,
        "husai-evidence",
        &evidence(""),
        &only,
        &s.key,
        &tool,
        &[],
    )
    .unwrap();
    groups
        .iter()
        .map(|g| {
            let (_, run) = runs.iter().find(|(grp, _)| grp.name == *g).unwrap();
            format!("husai-evidence/{}", run.run_id)
        })
        .collect()
}

fn check(s: &Signer, body: &str) -> ClaimsReport {
    let path: PathBuf = s.dir.path().join("claims.json");
    std::fs::write(&path, body).unwrap();
    check_registry(&path, &s.results(), &s.trust)
}

/// The registry entry and wording the repository had before issue 15, verbatim apart from the run id.
fn old_saebench_claim(v2: &str, about: &str) -> String {
    format!(
        r#"{{"schema_version": "1.1", "claims": [{{
  "id": "upstream-assignment-v2-external-gate-failed",
  "statement": "The same run failed its external gate: the SAEBench delta of its candidate is negative.",
  "level": "internal",{about}
  "evidence": [
    {{"run": "{v2}", "subject": "{V2}", "pointer": "/acceptance/gate_external", "comparator": "==", "value": false}},
    {{"run": "{v2}", "subject": "{V2}", "pointer": "/acceptance/external_delta", "comparator": "<", "value": 0}}]}}]}}"#
    )
}

const ABOUT_V2: &str = r#"
  "about": {"model": "the assignment-v2 run's candidate SAEs", "identity": {"d_sae": 128, "k": 32}},"#;

#[test]
fn the_old_saebench_claim_about_the_v2_candidate_is_refused_naming_both_models() {
    let s = Signer::new();
    let runs = import(&s, &[V2_GROUP, FRONTIER_GROUP]);
    let report = check(&s, &old_saebench_claim(&runs[0], ABOUT_V2));
    let claim = &report.claims[0];
    assert_eq!(claim.outcome, Outcome::Fail, "{report:#?}");
    // The numbers themselves hold; what fails is whose numbers they are.
    assert!(claim.evidence.iter().all(|e| e.outcome == Outcome::Pass));
    assert_eq!(claim.messages.len(), 2, "{:#?}", claim.messages);
    let m = &claim.messages[1];
    for part in [
        "claim `upstream-assignment-v2-external-gate-failed` is about the assignment-v2 run's candidate SAEs (d_sae 128, k 32)",
        &format!(
            "but {}:{V2}/acceptance/external_delta measures another model",
            runs[0]
        ),
        &format!(
            "the model of docs/evidence/{FRONTIER_GROUP}/{SAEBENCH} (named at /config/external_summary of {V2}"
        ),
        &format!("signed in {}", runs[1]),
        "model_name \"pythia-70m-deduped\", architecture \"topk\", d_model 512, d_sae 1024, k 32",
        "d_sae 1024 there, 128 claimed",
        "cite evidence about the assignment-v2 run's candidate SAEs or correct `about`",
    ] {
        assert!(m.contains(part), "missing {part:?} in:\n{m}");
    }
    assert!(
        !m.contains("k 32 there"),
        "k agrees and is not a contradiction: {m}"
    );
}

#[test]
fn the_old_saebench_entry_without_about_is_refused_too() {
    let s = Signer::new();
    let runs = import(&s, &[V2_GROUP, FRONTIER_GROUP]);
    let body = old_saebench_claim(&runs[0], "").replace("\"1.1\"", "\"1.0\"");
    let report = check(&s, &body);
    let claim = &report.claims[0];
    assert_eq!(claim.outcome, Outcome::Fail, "{report:#?}");
    let m = &claim.messages[1];
    assert!(
        m.contains(&format!(
            "is about the model {}:{V2} describes (d_sae 128, k 32, layer 1, modulus 113), having no `about`",
            runs[0]
        )),
        "{m}"
    );
    assert!(m.contains("d_sae 1024 there, 128 claimed"), "{m}");
    assert!(
        m.contains("say which model the claim is about with `about`"),
        "{m}"
    );
}

#[test]
fn without_the_summary_signed_the_copied_value_is_of_an_unknown_model() {
    let s = Signer::new();
    let runs = import(&s, &[V2_GROUP]);
    let report = check(&s, &old_saebench_claim(&runs[0], ABOUT_V2));
    let m = &report.claims[0].messages[1];
    assert_eq!(report.claims[0].outcome, Outcome::Fail);
    assert!(
        m.contains("no signed import run under")
            && m.contains("so its model is unknown (import its directory)"),
        "{m}"
    );
}

#[test]
fn the_corrected_claim_about_the_phase4b_sae_passes() {
    let s = Signer::new();
    let runs = import(&s, &[V2_GROUP, FRONTIER_GROUP]);
    let (v2, frontier) = (&runs[0], &runs[1]);
    let body = format!(
        r#"{{"schema_version": "1.1", "claims": [{{
  "id": "saebench", "statement": "s", "level": "internal",
  "about": {{"model": "phase-4b TopK SAE seed 42", "identity": {{"model_name": "pythia-70m-deduped", "architecture": "topk",
             "d_model": 512, "d_sae": 1024, "k": 32, "sae_release": "husai_topk_seed42"}}}},
  "evidence": [
    {{"run": "{v2}", "subject": "{V2}", "pointer": "/acceptance/external_delta", "comparator": "==", "value": -0.1328355796129408}},
    {{"run": "{v2}", "subject": "{V2}", "pointer": "/acceptance/gate_external", "comparator": "==", "value": false}},
    {{"run": "{v2}", "subject": "{V2}", "pointer": "/config/external_summary", "comparator": "==",
      "value": "docs/evidence/{FRONTIER_GROUP}/{SAEBENCH}"}},
    {{"run": "{frontier}", "subject": "{SAEBENCH}", "pointer": "/summary/best_minus_llm_auc", "comparator": "==", "value": -0.1328355796129408}}]}},
  {{"id": "v2-internal", "statement": "s", "level": "internal",
    "about": {{"model": "the v2 run's SAEs", "identity": {{"d_sae": 128, "k": 32, "layer": 1, "modulus": 113}}}},
    "evidence": [{{"run": "{v2}", "subject": "{V2}", "pointer": "/acceptance/best_delta_lcb", "comparator": ">", "value": 0}}]}}]}}"#
    );
    let report = check(&s, &body);
    assert!(report.passed(), "{report:#?}");

    // The same evidence claimed for the v2 SAEs is refused on every value, including the direct one.
    let wrong = body.replacen(
        r#""model_name": "pythia-70m-deduped", "architecture": "topk",
             "d_model": 512, "d_sae": 1024"#,
        r#""d_sae": 128"#,
        1,
    );
    let report = check(&s, &wrong);
    assert_eq!(report.claims[0].outcome, Outcome::Fail);
    assert_eq!(report.claims[0].messages.len(), 4, "{report:#?}");
    assert!(
        report.claims[0].messages[3].contains(&format!(
            "{frontier}:{SAEBENCH}/summary/best_minus_llm_auc measures another model: the model {frontier}:{SAEBENCH} describes"
        )),
        "{:#?}",
        report.claims[0].messages
    );
    assert_eq!(report.claims[1].outcome, Outcome::Pass);
}

#[test]
fn about_needs_schema_1_1_and_known_identity_fields() {
    let s = Signer::new();
    let runs = import(&s, &[V2_GROUP]);
    let body = old_saebench_claim(&runs[0], ABOUT_V2).replace("\"1.1\"", "\"1.0\"");
    let msg = check(&s, &body).registry_error.unwrap();
    assert!(
        msg.contains(
            "has `about`, which schema_version 1.0 does not define; set \"schema_version\": \"1.1\""
        ),
        "{msg}"
    );
    let body = old_saebench_claim(
        &runs[0],
        r#""about": {"model": "m", "identity": {"seed_of_the_day": 1}},"#,
    );
    let msg = check(&s, &body).registry_error.unwrap();
    assert!(msg.contains("seed_of_the_day"), "{msg}");
    let body = old_saebench_claim(&runs[0], r#""about": {"model": "m", "identity": {}},"#);
    assert!(
        check(&s, &body).registry_error.is_some(),
        "an empty identity says nothing"
    );
}
