//! Strict mode on signed inputs: the intended differences from parity, each one tested.

use crate::gate_support;

use gate_support::{PHASE4A, Signer};
use husai_core::gate::report::Status;
use husai_core::gate::source::{SourceError, read_verified};
use husai_core::gate::strict::{GateError, StrictInputs, evaluate};
use husai_core::gate::{Basis, ExternalMode, GateName, Policy};

const CANDIDATE: &str = "cycle4_followups_run_20260215T190004Z/selector/selected_candidate.json";
const OOD: &str = "cycle4_followups_run_20260215T190004Z/ood/ood_stress_summary.json";
const SWEEP: &str = "cycle4_followups_run_20260215T190004Z/transcoder_sweep/results.json";

fn full_inputs(s: &Signer) -> StrictInputs {
    StrictInputs {
        transcoder: Some(read_verified(&s.sign_fixture(SWEEP), &s.trust).unwrap()),
        ood: Some(read_verified(&s.sign_fixture(OOD), &s.trust).unwrap()),
        external: vec![read_verified(&s.sign_fixture(CANDIDATE), &s.trust).unwrap()],
        ..gate_support::passing_random_model(s)
    }
}

#[test]
fn fixture1_inputs_under_cycle4_give_upstreams_verdicts_with_provenance() {
    let s = Signer::new();
    let report = evaluate(&Policy::cycle4(), &full_inputs(&s)).unwrap();
    let passed: Vec<bool> = report.gates.iter().map(|g| g.passed).collect();
    assert_eq!(passed, vec![true, true, true, false]);
    assert!(!report.pass_all);
    let external = report.gate(GateName::External).unwrap();
    assert_eq!(external.checks.len(), 2);
    assert_eq!(external.checks[0].value, Some(-0.04478959689939781));
    assert_eq!(
        external.checks[0].source_field.as_deref(),
        Some("metrics.saebench_delta_ci95_low")
    );
    assert_eq!(external.checks[1].value, Some(-40.467037470119465));
    assert_eq!(external.inputs[0].kind, "selected_candidate");
    assert_eq!(external.inputs[0].sha256.len(), 64);
    let transcoder = report.gate(GateName::Transcoder).unwrap();
    assert_eq!(
        transcoder.checks[0].source_field.as_deref(),
        Some("best_condition.delta")
    );
    assert_eq!(transcoder.checks[0].value, Some(0.004916101694107056));
    assert_eq!(
        report.candidate.as_ref().unwrap().condition_id.as_deref(),
        Some("topk")
    );
    // random_model reads husai's seed-level summary: seeds, the bound of the difference, the practical effect, and
    // the candidate's configuration. (Intended change: strict used to read upstream's difference of two bounds and
    // a Mann-Whitney p-value; both are parity-only now.)
    let report = evaluate(&Policy::strict(), &full_inputs(&s)).unwrap();
    let random = report.gate(GateName::RandomModel).unwrap();
    let metrics: Vec<&str> = random.checks.iter().map(|c| c.metric.as_str()).collect();
    assert_eq!(
        metrics,
        [
            "trained_seeds",
            "trained_random_difference_lcb",
            "chance_normalised_effect",
            "evidence_is_candidate_configuration"
        ]
    );
    assert_eq!(
        random.checks[1].comparator,
        husai_core::gate::report::Comparator::Above
    );
    assert_eq!(random.checks[2].threshold, 0.05);
    assert!(random.passed);
    let evidence = random.evidence.as_ref().unwrap();
    assert_eq!(evidence.sae_runs.len(), 8);
    assert_eq!(evidence.candidate.as_ref().unwrap().run_id, "sae-0");
    let md = report.to_markdown();
    assert!(
        md.contains(
            "| external | fail | false | saebench_delta | -0.04478959689939781 | >= | 0 | lcb |"
        ),
        "{md}"
    );
}

#[test]
fn missing_input_is_not_evaluated_and_fails_unless_allowed() {
    let s = Signer::new();
    let mut inputs = full_inputs(&s);
    inputs.transcoder = None;
    let policy = Policy::cycle4();
    let report = evaluate(&policy, &inputs).unwrap();
    let t = report.gate(GateName::Transcoder).unwrap();
    assert_eq!((t.status, t.passed), (Status::NotEvaluated, false));
    // Parity passes a missing transcoder unless --require-transcoder; strict needs --allow-missing.
    let policy = Policy {
        allow_missing: vec![GateName::Transcoder],
        ..Policy::cycle4()
    };
    let t = evaluate(&policy, &inputs)
        .unwrap()
        .gate(GateName::Transcoder)
        .cloned()
        .unwrap();
    assert_eq!(
        (t.status, t.passed, t.allowed_missing),
        (Status::NotEvaluated, true, true)
    );
}

#[test]
fn point_basis_reads_the_group_mean_not_the_lcb_stored_under_the_plain_key() {
    let s = Signer::new();
    let policy = Policy {
        external_basis: Basis::Point,
        ..Policy::cycle4()
    };
    let report = evaluate(&policy, &full_inputs(&s)).unwrap();
    let external = report.gate(GateName::External).unwrap();
    assert_eq!(external.checks[0].value, Some(-0.04059280026569467));
    assert_eq!(
        external.checks[0].source_field.as_deref(),
        Some("metrics.saebench_delta_mean")
    );
}

#[test]
fn saebench_mode_with_a_summary_and_cebench_not_evaluated() {
    let s = Signer::new();
    let mut inputs = full_inputs(&s);
    inputs.external = vec![
        read_verified(
            &s.sign_fixture("phase4b_architecture_frontier_external/run_20260213T173707Z_topk_saebench_summary.json"),
            &s.trust,
        )
        .unwrap(),
    ];
    let point = Policy {
        external_basis: Basis::Point,
        ..Policy::cycle4()
    };
    let ext = evaluate(&point, &inputs)
        .unwrap()
        .gate(GateName::External)
        .cloned()
        .unwrap();
    assert_eq!(
        ext.status,
        Status::NotEvaluated,
        "CE-Bench missing in joint mode"
    );
    assert!(!ext.passed);
    let sae_only = Policy {
        external_mode: ExternalMode::Saebench,
        ..point
    };
    let ext = evaluate(&sae_only, &inputs)
        .unwrap()
        .gate(GateName::External)
        .cloned()
        .unwrap();
    assert_eq!(
        (ext.status, ext.checks[0].value),
        (Status::Fail, Some(-0.1328355796129408))
    );
    // An LCB policy cannot read a summary that has no bound.
    let err = evaluate(&Policy::cycle4(), &inputs).unwrap_err();
    assert!(matches!(err, GateError::NoLcb { .. }), "{err}");
    assert!(err.to_string().contains("basis `lcb` needs"), "{err}");
}

#[test]
fn a_file_of_the_wrong_kind_is_an_error() {
    let s = Signer::new();
    let mut inputs = full_inputs(&s);
    inputs.ood = Some(read_verified(&s.sign_fixture(CANDIDATE), &s.trust).unwrap());
    let msg = evaluate(&Policy::cycle4(), &inputs)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(
            "the ood gate reads an OOD stress summary, but this file is a selected_candidate"
        ),
        "{msg}"
    );
}

#[test]
fn missing_field_and_boolean_metric_are_errors() {
    let s = Signer::new();
    let mut inputs = full_inputs(&s);
    let no_drop = r#"{"id_result": {}, "ood_result": {}, "relative_drop": 0.5}"#;
    inputs.ood = Some(read_verified(&s.sign_json("ood.json", no_drop), &s.trust).unwrap());
    let msg = evaluate(&Policy::cycle4(), &inputs)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("required field `ood_drop` is missing"),
        "{msg}"
    );
    let bool_drop = r#"{"id_result": {}, "ood_result": {}, "ood_drop": false}"#;
    inputs.ood = Some(read_verified(&s.sign_json("ood.json", bool_drop), &s.trust).unwrap());
    let msg = evaluate(&Policy::cycle4(), &inputs)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`ood_drop` must be a finite number, found bool False"),
        "{msg}"
    );
}

#[test]
fn upstream_phase4a_is_parity_only_in_strict_mode() {
    let s = Signer::new();
    let mut inputs = full_inputs(&s);
    inputs.phase4a = Some(read_verified(&s.sign_json("phase4a.json", PHASE4A), &s.trust).unwrap());
    for policy in [Policy::strict(), Policy::cycle4()] {
        let msg = evaluate(&policy, &inputs).unwrap_err().to_string();
        assert!(
            msg.contains("strict mode's random_model gate reads husai's trained-vs-random summary")
                && msg.contains("which only --parity accepts"),
            "{msg}"
        );
    }
}

/// Upstream's canonical Run 30: trained 0.300059 against random 0.298829 over 5 seeds.
fn run30(s: &Signer, seeds: usize, ci_low: Option<f64>) -> StrictInputs {
    let effect = husai_core::stats::chance_normalised(0.300059, 0.298829).unwrap();
    let text = gate_support::trained_vs_random(seeds, 0.300059, 0.298829, ci_low, effect);
    StrictInputs {
        phase4a: Some(
            read_verified(&s.sign_json("trained_vs_random.json", &text), &s.trust).unwrap(),
        ),
        random_model_runs: (0..seeds)
            .map(|i| gate_support::sae_run(i, "sae-topk", 32))
            .collect(),
        candidate_run: Some(gate_support::sae_run(0, "sae-topk", 32)),
        ..full_inputs(s)
    }
}

#[test]
fn upstream_run_30_fails_the_strict_random_model_gate() {
    let s = Signer::new();
    // Even with upstream's own optimistic bound (6.18e-5 > 0) and 8 seeds, a 0.18 % chance-normalised effect is
    // below the practical threshold of 5 %.
    let report = evaluate(
        &Policy::strict(),
        &run30(&s, 8, Some(6.183199584486321e-05)),
    )
    .unwrap();
    let random = report.gate(GateName::RandomModel).unwrap();
    assert!(!random.passed);
    assert_eq!(random.status, Status::Fail);
    let effect = &random.checks[2];
    assert_eq!(effect.metric, "chance_normalised_effect");
    assert_eq!(effect.status, Status::Fail);
    assert!((effect.value.unwrap() - 0.0017542).abs() < 1e-6);
    assert_eq!(random.checks[1].status, Status::Pass);
    // As upstream ran it (5 seeds) it also fails the seed count, and has no seed-level bound at all.
    let report = evaluate(&Policy::strict(), &run30(&s, 5, None)).unwrap();
    let random = report.gate(GateName::RandomModel).unwrap();
    assert!(!random.passed);
    assert_eq!(random.checks[0].status, Status::Fail);
    assert_eq!(random.checks[1].status, Status::NotEvaluated);
    // A lower bound exactly at zero is not above it.
    let report = evaluate(
        &Policy {
            min_chance_normalised_effect: 0.0,
            ..Policy::strict()
        },
        &run30(&s, 8, Some(0.0)),
    )
    .unwrap();
    let random = report.gate(GateName::RandomModel).unwrap();
    assert_eq!(random.checks[1].status, Status::Fail);
    assert!(!random.passed);
}

#[test]
fn random_model_evidence_must_be_the_candidates_family_and_configuration() {
    let s = Signer::new();
    let mut inputs = full_inputs(&s);
    inputs.candidate_run = Some(gate_support::sae_run(0, "sae-topk", 64));
    let msg = evaluate(&Policy::strict(), &inputs)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("covers run saes/sae-0 (sae-topk, configuration {\"d_sae\":1024,\"k\":32})")
            && msg.contains("but the candidate is run saes/sae-0 (sae-topk, configuration {\"d_sae\":1024,\"k\":64})"),
        "{msg}"
    );
    inputs.candidate_run = Some(gate_support::sae_run(0, "sae-relu", 32));
    let msg = evaluate(&Policy::strict(), &inputs)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("(sae-topk,") && msg.contains("(sae-relu,"),
        "{msg}"
    );
    // No candidate: the scope check is not evaluated and the gate fails.
    inputs.candidate_run = None;
    let report = evaluate(&Policy::strict(), &inputs).unwrap();
    let random = report.gate(GateName::RandomModel).unwrap();
    assert_eq!(
        (random.status, random.passed),
        (Status::NotEvaluated, false)
    );
    // The runs read must be the runs the summary lists.
    inputs.random_model_runs.pop();
    let msg = evaluate(&Policy::strict(), &inputs)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("the summary covers SAE runs"), "{msg}");
}

#[test]
fn unsigned_unverified_and_tampered_inputs_are_refused() {
    let s = Signer::new();
    let plain = s.dir.path().join("plain.json");
    std::fs::write(&plain, PHASE4A).unwrap();
    let err = read_verified(&plain, &s.trust).unwrap_err();
    assert!(matches!(err, SourceError::Unsigned { .. }));
    assert!(err.to_string().contains("not inside a signed run"), "{err}");

    let signed = s.sign_json("phase4a.json", PHASE4A);
    std::fs::write(&signed, PHASE4A.replace("0.0001649", "0.0001650")).unwrap();
    let err = read_verified(&signed, &s.trust).unwrap_err();
    assert!(matches!(err, SourceError::Unverified { .. }), "{err}");

    let other = Signer::new();
    let signed = s.sign_json("phase4a.json", PHASE4A);
    let err = read_verified(&signed, &other.trust).unwrap_err();
    assert!(matches!(err, SourceError::Unverified { .. }), "{err}");

    let err = read_verified(&s.dir.path().join("absent.json"), &s.trust).unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");
}

#[test]
fn reports_match_the_gate_report_schema() {
    let s = Signer::new();
    let mut inputs = full_inputs(&s);
    inputs.ood = None;
    let report = evaluate(&Policy::strict(), &inputs).unwrap();
    report.validate().unwrap();
    let doc: serde_json::Value = serde_json::from_str(&report.to_json_text()).unwrap();
    // The schema is not vacuous: a report with an unknown status is rejected.
    let mut bad = doc.clone();
    bad["gates"][0]["status"] = "skipped".into();
    let err = husai_core::schema::validate("gate-report.v1", &bad).unwrap_err();
    assert!(
        err.violations
            .iter()
            .any(|v| v.starts_with("/gates/0/status")),
        "{err}"
    );
    // Round trip through serde (claims read gate reports back).
    let back: husai_core::gate::report::GateReport = serde_json::from_value(doc).unwrap();
    assert_eq!(back, report);
}

const HUSAI_SELECTION: &str = r#"{"schema_version": "1.0", "mode": "strict",
  "selected": {"candidate_id": "topk@3f2a", "condition": "topk",
    "representative": {"condition_id": "topk_seed123", "checkpoint": "ckpt/topk_seed123.pt", "architecture": "topk"},
    "group_metrics": {"saebench_delta": {"mean": 0.02, "ci_low": 0.004},
                      "cebench_interp_delta_vs_baseline": {"mean": 1.5, "ci_low": null},
                      "basis": "lcb"}}}"#;

#[test]
fn husai_selection_reads_group_statistics_by_name() {
    let s = Signer::new();
    let mut inputs = full_inputs(&s);
    inputs.external =
        vec![read_verified(&s.sign_json("selection.json", HUSAI_SELECTION), &s.trust).unwrap()];
    assert_eq!(inputs.external[0].citation.kind, "husai_selection");
    let report = evaluate(&Policy::cycle4(), &inputs).unwrap();
    let ext = report.gate(GateName::External).unwrap();
    assert_eq!(ext.checks[0].value, Some(0.004));
    assert_eq!(
        ext.checks[0].source_field.as_deref(),
        Some("selected.group_metrics.saebench_delta.ci_low")
    );
    assert_eq!(ext.checks[0].status, Status::Pass);
    // No CE-Bench bound: the check cannot be judged on the LCB basis.
    assert_eq!(
        (ext.checks[1].status, ext.status, ext.passed),
        (Status::NotEvaluated, Status::NotEvaluated, false)
    );
    let c = report.candidate.unwrap();
    assert_eq!(c.condition_id.as_deref(), Some("topk_seed123"));
    assert_eq!(c.group_id.as_deref(), Some("topk@3f2a"));
    let point = Policy {
        external_basis: Basis::Point,
        ..Policy::cycle4()
    };
    let ext = evaluate(&point, &inputs)
        .unwrap()
        .gate(GateName::External)
        .cloned()
        .unwrap();
    assert_eq!((ext.checks[1].value, ext.passed), (Some(1.5), true));
}

#[test]
fn failed_or_missing_sweep_winner_and_unparseable_inputs_are_errors() {
    let s = Signer::new();
    let mut inputs = full_inputs(&s);
    let failed = r#"{"records": [], "gates": {"gate_delta_lcb": false},
        "best_condition": {"condition_id": "dsae128_k16_ep12_lr0.001", "returncode": 1, "delta": 0.5}}"#;
    inputs.transcoder =
        Some(read_verified(&s.sign_json("results.json", failed), &s.trust).unwrap());
    let msg = evaluate(&Policy::cycle4(), &inputs)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("best condition dsae128_k16_ep12_lr0.001 has return code Some(1)"),
        "{msg}"
    );
    let none = r#"{"records": [], "gates": {"gate_delta_lcb": false}, "best_condition": null}"#;
    inputs.transcoder = Some(read_verified(&s.sign_json("results.json", none), &s.trust).unwrap());
    let msg = evaluate(&Policy::cycle4(), &inputs)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("the sweep has no `best_condition`"), "{msg}");

    let empty = s
        .sign(
            "evidence",
            husai_core::manifest::RunKind::Import,
            &[("ood.json", b"")],
        )
        .join("ood.json");
    let err = read_verified(&empty, &s.trust).unwrap_err();
    assert!(
        err.to_string().contains("ood.json is empty (0 bytes)"),
        "{err}"
    );
    let broken = s.sign_json("ood.json", "{\"ood_drop\": 0.1,\n \"x\": nan}");
    let err = read_verified(&broken, &s.trust).unwrap_err();
    assert!(
        err.to_string()
            .contains("line 2, column 7: expecting a value"),
        "{err}"
    );
}

/// A husai ood-stress summary (schema ood-stress.v1) about SAE run `saes/<run>`, with the given drop interval.
fn ood_stress(run: &str, interval: Option<(f64, f64)>) -> String {
    let iv = interval.map_or("null".to_string(), |(l, h)| {
        format!(r#"{{"low": {l:?}, "high": {h:?}}}"#)
    });
    let reason = if interval.is_some() {
        "null"
    } else {
        r#""studentized two-sample bootstrap needs 5 tasks""#
    };
    format!(
        r#"{{"schema": "ood-stress.v1", "eval": "ood-stress",
  "sae_run": {{"campaign": "saes", "run_id": "{run}", "architecture": "topk", "d_sae": 24,
    "weights_sha256": "{z}", "cfg_sha256": "{z}"}},
  "ood_drop": 0.02, "ood_drop_interval": {iv}, "ood_drop_interval_reason": {reason}, "permutation_p": 0.1}}"#,
        z = "0".repeat(64)
    )
}

#[test]
fn husai_ood_evidence_gates_on_the_upper_bound_and_must_concern_the_candidate() {
    let s = Signer::new();
    let policy = Policy::strict();
    let with = |text: String, candidate: Option<usize>| {
        let mut inputs = gate_support::passing_random_model(&s);
        inputs.ood =
            Some(read_verified(&s.sign_json("ood_stress_summary.json", &text), &s.trust).unwrap());
        inputs.candidate_run = candidate.map(|i| gate_support::sae_run(i, "sae-topk", 32));
        let report = evaluate(&policy, &inputs).unwrap();
        report.validate().unwrap();
        (
            report.gate(GateName::Ood).unwrap().clone(),
            report.to_markdown(),
        )
    };
    // The candidate's own evidence: the interval's upper bound against max_ood_drop, not the point drop.
    let (g, _) = with(ood_stress("sae-0", Some((0.01, 0.05))), Some(0));
    assert_eq!((g.status, g.passed), (Status::Pass, true));
    assert_eq!(g.checks[0].metric, "ood_drop_ci_high");
    assert_eq!(g.checks[0].value, Some(0.05));
    assert_eq!(g.checks[0].basis, "ci_high");
    assert_eq!(
        g.checks[0].source_field.as_deref(),
        Some("ood_drop_interval.high")
    );
    let (g, _) = with(
        ood_stress("sae-0", Some((0.01, policy.max_ood_drop + 0.01))),
        Some(0),
    );
    assert_eq!(
        (g.status, g.passed),
        (Status::Fail, false),
        "a point drop of 0.02 passes; its bound does not"
    );
    // Evidence about another SAE run: refused, naming both, and failing even though it was given.
    let (g, md) = with(ood_stress("sae-3", Some((0.01, 0.05))), Some(0));
    assert_eq!((g.status, g.passed), (Status::NotEvaluated, false));
    let why = g.reason.clone().unwrap();
    assert_eq!(
        why,
        "the OOD evidence concerns SAE run saes/sae-3, but the candidate is run saes/sae-0; evaluate ood-stress on \
         the candidate itself"
    );
    assert!(md.contains(&format!("- ood: {why}")), "{md}");
    // No candidate named: refused too.
    let (g, _) = with(ood_stress("sae-0", Some((0.01, 0.05))), None);
    assert_eq!((g.status, g.passed), (Status::NotEvaluated, false));
    assert!(
        g.reason
            .unwrap()
            .contains("name the release candidate (--candidate RUN)")
    );
    // No interval (too few tasks): not evaluated, with the summary's reason.
    let (g, _) = with(ood_stress("sae-0", None), Some(0));
    assert_eq!(g.status, Status::NotEvaluated);
    assert_eq!(
        g.reason.as_deref(),
        Some(
            "the summary has no interval of the drop: studentized two-sample bootstrap needs 5 tasks"
        )
    );
}

/// A husai transcoder-stress summary (schema transcoder-stress.v1) measured on data run `toy/<run>`, with the
/// confirmed condition's lower bound (None: confirmed on too few seeds to gate).
fn transcoder_stress(run: &str, lcb: Option<f64>) -> String {
    let (lcb, reason) = match lcb {
        Some(v) => (format!("{v:?}"), "null".to_string()),
        None => (
            "null".to_string(),
            r#""confirmed on 5 seeds; a gate needs at least 8 (below that the paired interval undercovers)""#
                .to_string(),
        ),
    };
    format!(
        r#"{{"schema": "transcoder-stress.v1", "eval": "transcoder-stress",
  "data_run": {{"campaign": "toy", "run_id": "{run}", "source": "toy-mlp", "files": {{}}}},
  "selection": {{"condition": "dsae128_k16_ep12"}},
  "confirmation": {{"id": "dsae128_k16_ep12", "delta": 0.004916, "gate_reason": {reason}}},
  "transcoder_delta": 0.004916, "transcoder_delta_lcb": {lcb}}}"#
    )
}

#[test]
fn husai_transcoder_evidence_gates_on_the_confirmed_lower_bound_of_the_candidates_data() {
    let s = Signer::new();
    let policy = Policy::strict();
    let with = |text: String, candidate: Option<usize>| {
        let mut inputs = gate_support::passing_random_model(&s);
        inputs.transcoder = Some(
            read_verified(
                &s.sign_json("transcoder_stress_summary.json", &text),
                &s.trust,
            )
            .unwrap(),
        );
        inputs.candidate_run = candidate.map(|i| gate_support::sae_run(i, "sae-topk", 32));
        let report = evaluate(&policy, &inputs).unwrap();
        report.validate().unwrap();
        report.gate(GateName::Transcoder).unwrap().clone()
    };
    // The candidate's data (sae_run's data_run is toy/data-run): the confirmed lower bound, not the point delta.
    let g = with(transcoder_stress("data-run", Some(0.0011)), Some(0));
    assert_eq!((g.status, g.passed), (Status::Pass, true));
    assert_eq!(g.checks[0].metric, "transcoder_delta_lcb");
    assert_eq!(g.checks[0].value, Some(0.0011));
    assert_eq!(g.checks[0].basis, "lcb");
    assert_eq!(
        g.checks[0].source_field.as_deref(),
        Some("transcoder_delta_lcb")
    );
    assert_eq!(g.evidence.unwrap().candidate.unwrap().run_id, "sae-0");
    // Upstream's situation: a positive point delta (0.0049) whose bound is below 0 fails.
    let g = with(transcoder_stress("data-run", Some(-0.002)), Some(0));
    assert_eq!((g.status, g.passed), (Status::Fail, false));
    // Measured on another data run than the candidate's: refused, naming both.
    let g = with(transcoder_stress("other-toy", Some(0.0011)), Some(0));
    assert_eq!((g.status, g.passed), (Status::NotEvaluated, false));
    assert_eq!(
        g.reason.as_deref(),
        Some(
            "the transcoder evidence was measured on data run toy/other-toy, but the candidate saes/sae-0 was \
             trained on toy/data-run; run transcoder-stress on the candidate's own data run"
        )
    );
    let g = with(transcoder_stress("data-run", Some(0.0011)), None);
    assert_eq!((g.status, g.passed), (Status::NotEvaluated, false));
    assert!(
        g.reason
            .unwrap()
            .contains("name the release candidate (--candidate RUN)")
    );
    // Confirmed on too few seeds: not evaluated, with the summary's reason.
    let g = with(transcoder_stress("data-run", None), Some(0));
    assert_eq!((g.status, g.passed), (Status::NotEvaluated, false));
    assert_eq!(
        g.reason.as_deref(),
        Some(
            "the summary has no gateable bound: confirmed on 5 seeds; a gate needs at least 8 (below that the \
             paired interval undercovers)"
        )
    );
}
