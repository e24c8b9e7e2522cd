//! Parity mode against upstream's documented outcomes (FIXTURES.md 1 and 2) and ports of upstream's gate unit tests
//! (reference §2.9 items 4 and 5), plus the quirks parity must keep.

use std::path::{Path, PathBuf};

use husai_core::gate::parity::{
    UpstreamInputs, UpstreamMode, UpstreamRunInfo, UpstreamThresholds, evaluate,
    load_upstream_input, repo_rel, report_json, report_markdown,
};
use husai_core::legacy::json::{LegacyValue, parse_str, read_file};
use husai_core::legacy::pyrepr::{float_repr, json_dumps};
use husai_core::legacy::transcoder;

fn evidence(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/husai-evidence")
        .join(rel)
}

/// The phase-4a file is not in the evidence tree; its two values are recorded in every policy's `metrics`. This
/// reconstructs a file that yields exactly those values (random.ci95_high = 0.0 makes the subtraction exact).
fn phase4a_from_recorded_metrics() -> LegacyValue {
    parse_str(&format!(
        r#"{{"comparison": {{"difference": {}}}, "trained": {{"mean": 0.3, "ci95_low": {}, "ci95_high": 0.4}},
            "random": {{"mean": 0.2, "ci95_low": 0.0, "ci95_high": 0.0}}}}"#,
        float_repr(0.0012296229600906594),
        float_repr(6.183199584486321e-05)
    ))
    .unwrap()
}

/// A transcoder summary carrying the sweep's best condition delta (what the orchestrator fed the gate).
fn transcoder_from_sweep(rel: &str) -> LegacyValue {
    let path = evidence(rel);
    let sweep = transcoder::read_sweep(&path, &read_file(&path).unwrap()).unwrap();
    let delta = sweep.best_condition.unwrap().delta.unwrap();
    parse_str(&format!(
        r#"{{"delta": {}, "transcoder_delta": {}}}"#,
        float_repr(delta),
        float_repr(delta)
    ))
    .unwrap()
}

fn cycle4_thresholds() -> UpstreamThresholds {
    UpstreamThresholds {
        external_mode: UpstreamMode::Joint,
        use_external_lcb: true,
        min_saebench_delta_lcb: Some(0.0),
        min_cebench_delta_lcb: Some(0.0),
        require_transcoder: true,
        require_ood: true,
        require_external: true,
        ..UpstreamThresholds::default()
    }
}

fn info_from(recorded: &LegacyValue) -> UpstreamRunInfo {
    let s = |keys: &[&str]| {
        recorded
            .get_path(keys)
            .and_then(LegacyValue::as_str)
            .map(str::to_string)
    };
    UpstreamRunInfo {
        timestamp_utc: s(&["run_metadata", "timestamp_utc"]).unwrap(),
        git_commit: s(&["run_metadata", "git_commit"]).unwrap(),
        command: s(&["run_metadata", "command"]).unwrap(),
        run_id: s(&["run_metadata", "run_id"]).unwrap(),
        phase4a_results: s(&["inputs", "phase4a_results"]),
        transcoder_results: s(&["inputs", "transcoder_results"]),
        ood_results: s(&["inputs", "ood_results"]),
        external_summary: s(&["inputs", "external_summary"]),
        external_candidate_json: s(&["inputs", "external_candidate_json"]),
    }
}

/// FIXTURES.md 1 (and the later cycle-4 rerun with the same policy): same outcome, byte-identical md and JSON.
#[test]
fn fixture1_canonical_release_gate_is_byte_identical() {
    for (dir, gate_dir) in [
        ("cycle4_followups_run_20260215T190004Z", "release_gate"),
        ("cycle4_followups_run_20260215T220728Z", "release"),
    ] {
        let inputs = UpstreamInputs {
            phase4a: Some(phase4a_from_recorded_metrics()),
            transcoder: Some(transcoder_from_sweep(
                "cycle4_followups_run_20260215T190004Z/transcoder_sweep/results.json",
            )),
            ood: Some(read_file(&evidence(&format!("{dir}/ood/ood_stress_summary.json"))).unwrap()),
            external: Some(
                read_file(&evidence(&format!(
                    "{dir}/selector/selected_candidate.json"
                )))
                .unwrap(),
            ),
        };
        let t = cycle4_thresholds();
        let outcome = evaluate(&t, &inputs);
        let g = &outcome.gates;
        assert_eq!(
            (
                g.random_model,
                g.transcoder,
                g.ood,
                g.external,
                g.external_saebench,
                g.external_cebench,
                g.pass_all
            ),
            (true, true, true, false, false, false, false),
            "{dir}"
        );
        assert_eq!(outcome.exit_code(false), 0);
        assert_eq!(outcome.exit_code(true), 2);

        let recorded_md =
            std::fs::read_to_string(evidence(&format!("{dir}/{gate_dir}/release_policy.md")))
                .unwrap();
        let recorded =
            read_file(&evidence(&format!("{dir}/{gate_dir}/release_policy.json"))).unwrap();
        let info = info_from(&recorded);
        assert_eq!(
            report_markdown(&info.run_id, &outcome),
            recorded_md,
            "{dir}"
        );
        let recorded_json =
            std::fs::read_to_string(evidence(&format!("{dir}/{gate_dir}/release_policy.json")))
                .unwrap();
        assert_eq!(
            json_dumps(&report_json(&info, &t, &outcome), 2) + "\n",
            recorded_json,
            "{dir}"
        );
    }
}

/// The cycle-5 release reused the cycle-4 OOD value; with its own candidate the outcome is the same.
#[test]
fn cycle5_release_gate_markdown_is_byte_identical() {
    let dir = "cycle5_external_push_run_20260215T232351Z";
    let recorded = read_file(&evidence(&format!("{dir}/release/release_policy.json"))).unwrap();
    let inputs = UpstreamInputs {
        phase4a: Some(phase4a_from_recorded_metrics()),
        transcoder: Some(transcoder_from_sweep(
            "cycle4_followups_run_20260215T190004Z/transcoder_sweep/results.json",
        )),
        ood: Some(read_file(&evidence(&format!("{dir}/ood/ood_stress_summary.json"))).unwrap()),
        external: Some(
            read_file(&evidence(&format!(
                "{dir}/selector/selected_candidate.json"
            )))
            .unwrap(),
        ),
    };
    let outcome = evaluate(&cycle4_thresholds(), &inputs);
    let recorded_md =
        std::fs::read_to_string(evidence(&format!("{dir}/release/release_policy.md"))).unwrap();
    assert_eq!(
        report_markdown(&info_from(&recorded).run_id, &outcome),
        recorded_md
    );
}

/// FIXTURES.md 2: the legacy-schema run, re-evaluated with today's logic and the legacy run's flags.
#[test]
fn fixture2_legacy_gate_outcome() {
    let t = UpstreamThresholds {
        require_transcoder: true,
        require_ood: true,
        require_external: true,
        min_external_delta: 0.0,
        ..UpstreamThresholds::default()
    };
    let inputs = UpstreamInputs {
        phase4a: Some(phase4a_from_recorded_metrics()),
        transcoder: None,
        ood: None,
        external: Some(
            read_file(&evidence(
                "phase4b_architecture_frontier_external/run_20260213T173707Z_topk_saebench_summary.json",
            ))
            .unwrap(),
        ),
    };
    let outcome = evaluate(&t, &inputs);
    let g = &outcome.gates;
    assert_eq!(
        (g.random_model, g.transcoder, g.ood, g.external, g.pass_all),
        (true, false, false, false, false)
    );
    assert_eq!(g.external_mode_used, "auto_legacy");
    assert_eq!(outcome.metrics.external_delta, Some(-0.1328355796129408));
    // Matches the recorded legacy policy's metrics.
    let recorded = read_file(&evidence(
        "phase4e_stress_gated_release/run_20260213T204120Z_release_policy.json",
    ))
    .unwrap();
    assert_eq!(
        recorded
            .pointer("/metrics/external_delta")
            .unwrap()
            .as_f64(),
        outcome.metrics.external_delta
    );
    assert_eq!(
        outcome.exit_code(true),
        2,
        "fail-on-gate-fail gives upstream's failure code"
    );
}

fn unit_test_inputs(candidate: &str) -> UpstreamInputs {
    UpstreamInputs {
        phase4a: Some(
            parse_str(r#"{"comparison": {"difference": 0.01}, "trained": {"ci95_low": 0.2}, "random": {"ci95_high": 0.1}}"#)
                .unwrap(),
        ),
        transcoder: Some(parse_str(r#"{"delta": 0.02}"#).unwrap()),
        ood: Some(parse_str(r#"{"ood_drop": 0.01}"#).unwrap()),
        external: Some(parse_str(candidate).unwrap()),
    }
}

/// Upstream `test_gate_joint_mode_with_candidate_json` (§2.9 item 4).
#[test]
fn upstream_unit_gate_joint_mode_with_candidate_json() {
    let inputs = unit_test_inputs(
        r#"{"metrics": {"saebench_delta": 0.005, "cebench_interp_delta_vs_baseline": -0.5}}"#,
    );
    let t = UpstreamThresholds {
        external_mode: UpstreamMode::Joint,
        require_transcoder: true,
        require_ood: true,
        require_external: true,
        min_cebench_delta: 0.0,
        ..UpstreamThresholds::default()
    };
    assert_eq!(evaluate(&t, &inputs).exit_code(true), 2);
    let t = UpstreamThresholds {
        min_cebench_delta: -1.0,
        ..t
    };
    let outcome = evaluate(&t, &inputs);
    assert_eq!(outcome.exit_code(true), 0);
    assert!(outcome.gates.pass_all);
    assert_eq!(outcome.gates.external_mode_used, "joint");
}

/// Upstream `test_gate_lcb_mode_uses_ci_fields` (§2.9 item 5).
#[test]
fn upstream_unit_gate_lcb_mode_uses_ci_fields() {
    let inputs = unit_test_inputs(
        r#"{"metrics": {"saebench_delta": 0.10, "cebench_interp_delta_vs_baseline": 0.12,
            "saebench_delta_ci95_low": -0.02, "cebench_interp_delta_vs_baseline_ci95_low": -0.03}}"#,
    );
    let t = UpstreamThresholds {
        external_mode: UpstreamMode::Joint,
        use_external_lcb: true,
        min_saebench_delta_lcb: Some(0.0),
        min_cebench_delta_lcb: Some(0.0),
        require_transcoder: true,
        require_ood: true,
        require_external: true,
        ..UpstreamThresholds::default()
    };
    let outcome = evaluate(&t, &inputs);
    assert_eq!(outcome.exit_code(true), 2);
    assert_eq!(outcome.metrics.external_gate_saebench_value, Some(-0.02));
    let t = UpstreamThresholds {
        min_saebench_delta_lcb: Some(-0.05),
        min_cebench_delta_lcb: Some(-0.05),
        ..t
    };
    assert_eq!(evaluate(&t, &inputs).exit_code(true), 0);
}

#[test]
fn missing_optional_inputs_pass_but_random_model_always_needs_phase4a() {
    let outcome = evaluate(&UpstreamThresholds::default(), &UpstreamInputs::default());
    let g = &outcome.gates;
    assert_eq!(
        (g.random_model, g.transcoder, g.ood, g.external),
        (false, true, true, true)
    );
    assert_eq!(g.external_mode_used, "auto_legacy");
    let inputs = UpstreamInputs {
        phase4a: unit_test_inputs("{}").phase4a,
        ..UpstreamInputs::default()
    };
    assert!(
        evaluate(&UpstreamThresholds::default(), &inputs)
            .gates
            .pass_all,
        "upstream W1: a bare run passes"
    );
}

#[test]
fn booleans_count_as_numbers_and_chains_take_the_first_numeric() {
    let inputs = UpstreamInputs {
        phase4a: unit_test_inputs("{}").phase4a,
        transcoder: Some(parse_str(r#"{"delta": "n/a", "transcoder_delta": true}"#).unwrap()),
        // ood_drop missing: relative_drop (a ratio) is compared with the absolute threshold (W4).
        ood: Some(parse_str(r#"{"relative_drop": 0.59, "drop": 0.02}"#).unwrap()),
        external: None,
    };
    let outcome = evaluate(&UpstreamThresholds::default(), &inputs);
    assert_eq!(outcome.metrics.transcoder_delta, Some(1.0));
    assert_eq!(outcome.metrics.ood_drop, Some(0.59));
    assert!(!outcome.gates.ood);
}

#[test]
fn auto_mode_fallbacks() {
    let base = UpstreamThresholds {
        require_external: false,
        ..UpstreamThresholds::default()
    };
    // auto + lcb with one LCB present and failing: passes anyway when not required (W5).
    let t = UpstreamThresholds {
        use_external_lcb: true,
        ..base.clone()
    };
    let inputs = UpstreamInputs {
        external: Some(parse_str(r#"{"metrics": {"saebench_delta_ci95_low": -1.0}}"#).unwrap()),
        ..UpstreamInputs::default()
    };
    let g = evaluate(&t, &inputs).gates;
    assert_eq!(
        (g.external, g.external_mode_used, g.external_saebench),
        (true, "auto_lcb_missing", false)
    );
    // auto + point with both present: joint.
    let inputs = UpstreamInputs {
        external: Some(
            parse_str(r#"{"metrics": {"saebench_delta": 0.1, "cebench_delta": -2}}"#).unwrap(),
        ),
        ..UpstreamInputs::default()
    };
    let g = evaluate(&base, &inputs).gates;
    assert_eq!((g.external, g.external_mode_used), (false, "auto_joint"));
    // A selection summary is unwrapped to its selected candidate; the legacy delta falls back to CE-Bench
    // contrastive scores when nothing else is there.
    let inputs = UpstreamInputs {
        external: Some(
            parse_str(r#"{"selected_candidate": {"delta_vs_matched_baseline": {"contrastive_score_mean_max": 3}}}"#)
                .unwrap(),
        ),
        ..UpstreamInputs::default()
    };
    let outcome = evaluate(&base, &inputs);
    assert_eq!(outcome.metrics.external_delta, Some(3.0));
    assert_eq!(
        (outcome.gates.external, outcome.gates.external_mode_used),
        (true, "auto_legacy")
    );
}

#[test]
fn upstream_input_loading() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(load_upstream_input("ood-results", None).unwrap(), None);
    assert_eq!(
        load_upstream_input("ood-results", Some(&dir.path().join("absent.json"))).unwrap(),
        None
    );
    let msg = load_upstream_input("ood-results", Some(Path::new("")))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("--ood-results was given an empty path"),
        "{msg}"
    );
    let msg = load_upstream_input("ood-results", Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("is a directory"), "{msg}");
    let empty = evidence(
        "cycle10_live_snapshot_20260218T0332Z/assignment/run_20260218T024225Z_results.json",
    );
    let msg = load_upstream_input("transcoder-results", Some(&empty))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("--transcoder-results") && msg.contains("empty (0 bytes)"),
        "{msg}"
    );
}

#[test]
fn repo_rel_is_relative_inside_the_root_and_absolute_outside() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("results/x")).unwrap();
    assert_eq!(
        repo_rel(Path::new("results/x/../x/f.json"), root.path(), root.path()),
        "results/x/f.json"
    );
    let outside = tempfile::tempdir().unwrap();
    let rel = repo_rel(Path::new("f.json"), outside.path(), root.path());
    assert!(Path::new(&rel).is_absolute(), "{rel}");
}

/// FIXTURES.md 2 with the legacy schema: byte-identical `release_policy.md` and `.json`.
#[test]
fn fixture2_legacy_schema_is_byte_identical() {
    use husai_core::gate::parity::{evaluate_legacy, report_json_legacy, report_markdown_legacy};
    let dir = "phase4e_stress_gated_release";
    let t = UpstreamThresholds {
        require_transcoder: true,
        require_ood: true,
        require_external: true,
        ..UpstreamThresholds::default()
    };
    let inputs = UpstreamInputs {
        phase4a: Some(phase4a_from_recorded_metrics()),
        transcoder: None,
        ood: None,
        external: Some(
            read_file(&evidence(
                "phase4b_architecture_frontier_external/run_20260213T173707Z_topk_saebench_summary.json",
            ))
            .unwrap(),
        ),
    };
    let o = evaluate_legacy(&t, &inputs);
    assert_eq!(
        (o.random_model, o.transcoder, o.ood, o.external, o.pass_all),
        (true, false, false, false, false)
    );
    assert_eq!(o.exit_code(true), 2);
    let recorded_path = evidence(&format!("{dir}/run_20260213T204120Z_release_policy.json"));
    let recorded = read_file(&recorded_path).unwrap();
    let mut info = info_from(&recorded);
    info.external_candidate_json = None;
    let md = std::fs::read_to_string(evidence(&format!(
        "{dir}/run_20260213T204120Z_release_policy.md"
    )))
    .unwrap();
    assert_eq!(report_markdown_legacy(&info.run_id, &o), md);
    let json_text = std::fs::read_to_string(&recorded_path).unwrap();
    assert_eq!(
        json_dumps(&report_json_legacy(&info, &t, &o), 2) + "\n",
        json_text
    );
}

/// The cycle-3 final policy (legacy schema, 511c56c) from its own transcoder and OOD files; its external summary is
/// not in the evidence tree, so a summary carrying the recorded value stands in for it.
#[test]
fn cycle3_final_legacy_policy_json_is_byte_identical() {
    use husai_core::gate::parity::{evaluate_legacy, report_json_legacy};
    let t = UpstreamThresholds {
        require_transcoder: true,
        require_ood: true,
        require_external: true,
        ..UpstreamThresholds::default()
    };
    let inputs = UpstreamInputs {
        phase4a: Some(phase4a_from_recorded_metrics()),
        transcoder: Some(
            read_file(&evidence(
                "cycle3_queue_final/transcoder_stress_summary_run_20260214T224242Z.json",
            ))
            .unwrap(),
        ),
        ood: Some(
            read_file(&evidence(
                "cycle3_queue_final/ood_stress_summary_run_20260214T224309Z.json",
            ))
            .unwrap(),
        ),
        external: Some(
            parse_str(&format!(
                r#"{{"summary": {{"best_minus_llm_auc": {}}}}}"#,
                float_repr(-0.017257680751151527)
            ))
            .unwrap(),
        ),
    };
    let o = evaluate_legacy(&t, &inputs);
    assert_eq!(
        (o.random_model, o.transcoder, o.ood, o.external, o.pass_all),
        (true, false, true, false, false)
    );
    let path = evidence("cycle3_queue_final/release_policy_run_20260214T225029Z.json");
    let recorded = read_file(&path).unwrap();
    let info = info_from(&recorded);
    assert_eq!(
        json_dumps(&report_json_legacy(&info, &t, &o), 2) + "\n",
        std::fs::read_to_string(&path).unwrap()
    );
}
