//! Typed readers and kind detection against the upstream evidence tree.

use std::path::{Path, PathBuf};

use husai_core::legacy::json::{parse_str, read_file};
use husai_core::legacy::{
    ArtifactKind, ReadError, closure, detect_kind, external, ood, phase4a, pyrepr, release_policy,
    transcoder,
};

fn evidence(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/husai-evidence")
        .join(rel)
}

fn kind_of(rel: &str) -> (ArtifactKind, &'static str) {
    let path = evidence(rel);
    let value = read_file(&path).ok();
    let d = detect_kind(&path, value.as_ref());
    (d.kind, d.schema_version)
}

#[test]
fn detects_every_gate_and_selector_kind() {
    use ArtifactKind::*;
    let cases = [
        (
            "cycle4_followups_run_20260215T190004Z/release_gate/release_policy.json",
            ReleasePolicy,
            "v3-lcb",
        ),
        (
            "phase4e_stress_gated_release/run_20260213T204120Z_release_policy.json",
            ReleasePolicy,
            "v1-legacy",
        ),
        (
            "cycle3_queue_final/release_policy_run_20260214T225029Z.json",
            ReleasePolicy,
            "v1-legacy",
        ),
        (
            "cycle4_followups_run_20260215T190004Z/selector/selected_candidate.json",
            SelectedCandidate,
            "upstream",
        ),
        (
            "cycle4_followups_run_20260215T190004Z/selector/selection_summary.json",
            SelectionSummary,
            "v2-grouped",
        ),
        (
            "cycle3_queue_run_20260215T165724Z/release_selection_summary.json",
            SelectionSummary,
            "v1",
        ),
        (
            "cycle4_followups_run_20260215T190004Z/transcoder_sweep/results.json",
            TranscoderStressSweep,
            "upstream",
        ),
        (
            "cycle3_queue_final/transcoder_stress_summary_run_20260214T224242Z.json",
            TranscoderStressSummary,
            "upstream",
        ),
        (
            "cycle4_followups_run_20260215T190004Z/ood/ood_stress_summary.json",
            OodStressSummary,
            "upstream",
        ),
        (
            "cycle4_followups_run_20260215T190004Z/known_circuit/closure_summary.json",
            KnownCircuitClosure,
            "upstream",
        ),
        (
            "phase4b_architecture_frontier_external/run_20260213T173707Z_topk_saebench_summary.json",
            SaebenchSummary,
            "upstream",
        ),
        (
            "phase4b_architecture_frontier_external/run_20260213T173707Z_topk_cebench_summary.json",
            CebenchSummary,
            "upstream",
        ),
        (
            "phase4b_architecture_frontier_external/run_20260213T173707Z_results.json",
            FrontierResults,
            "upstream",
        ),
        (
            "cycle3_queue_run_20260215T165724Z/scaling_results.json",
            ScalingResults,
            "upstream",
        ),
        (
            "cycle4_followups_run_20260215T212614Z/routed/results.json",
            RoutedResults,
            "upstream",
        ),
        (
            "cycle4_followups_run_20260215T190004Z/matryoshka/results.json",
            MatryoshkaResults,
            "upstream",
        ),
        (
            "phase4d_assignment_consistency_v2/run_20260213T203957Z_results.json",
            AssignmentV2Results,
            "upstream",
        ),
        (
            "cycle4_followups_run_20260215T190004Z/assignment_v3/results.json",
            AssignmentV3Results,
            "upstream",
        ),
        (
            "cycle3_queue_final/queue_manifest_run_20260214T210734Z.json",
            QueueManifest,
            "upstream",
        ),
        (
            "cycle5_external_push_run_20260215T232351Z/queue/manifest.json",
            QueueManifest,
            "upstream",
        ),
        (
            "phase4e_cebench_official/run_20260213T103218Z_cebench_metrics_summary.json",
            CebenchMetrics,
            "upstream",
        ),
        (
            "phase4d_assignment_consistency_v2/run_20260213T203957Z_summary.md",
            Markdown,
            "none",
        ),
        (
            "phase4d_assignment_consistency_v2/run_20260213T203957Z_summary.csv",
            Csv,
            "none",
        ),
        // The 0-byte file does not parse, so only its extension is known.
        (
            "cycle10_live_snapshot_20260218T0332Z/assignment/run_20260218T024225Z_results.json",
            Other,
            "none",
        ),
    ];
    for (rel, kind, version) in cases {
        assert_eq!(kind_of(rel), (kind, version), "{rel}");
    }
}

#[test]
fn gate_input_readers_on_fixtures() {
    let p = evidence("cycle4_followups_run_20260215T190004Z/ood/ood_stress_summary.json");
    let o = ood::read(&p, &read_file(&p).unwrap()).unwrap();
    assert_eq!(o.ood_drop, 0.020994556554025268);
    assert_eq!(o.relative_drop, Some(0.5931760974210678));

    let p = evidence("cycle3_queue_final/transcoder_stress_summary_run_20260214T224242Z.json");
    let t = transcoder::read_summary(&p, &read_file(&p).unwrap()).unwrap();
    assert_eq!(t.delta, -0.002227966984113039);
    assert_eq!(t.delta_lcb, Some(0.26641567051410675 - 0.2738051265478134));

    let p = evidence("cycle4_followups_run_20260215T190004Z/transcoder_sweep/results.json");
    let s = transcoder::read_sweep(&p, &read_file(&p).unwrap()).unwrap();
    assert_eq!(s.conditions.len(), 16);
    let best = s.best_condition.unwrap();
    assert_eq!(best.condition_id, "dsae128_k32_ep20_lr0.001");
    assert_eq!(best.delta, Some(0.004916101694107056));
    assert_eq!(s.pass_all, Some(true));

    let p = evidence("cycle4_followups_run_20260215T190004Z/known_circuit/closure_summary.json");
    let c = closure::read(&p, &read_file(&p).unwrap()).unwrap();
    assert_eq!(c.sae_checkpoints_evaluated, 0);
    assert_eq!(c.sae_delta_vs_random_lcb, None);
    assert!(!c.pass_all);

    let p = evidence(
        "phase4b_architecture_frontier_external/run_20260213T173707Z_topk_saebench_summary.json",
    );
    let sb = external::read_saebench(&p, &read_file(&p).unwrap()).unwrap();
    assert_eq!(sb.best_minus_llm_auc, -0.1328355796129408);
    assert_eq!(sb.dataset_names.len(), 8);

    let p = evidence(
        "phase4b_architecture_frontier_external/run_20260213T173707Z_topk_cebench_summary.json",
    );
    let cb = external::read_cebench(&p, &read_file(&p).unwrap()).unwrap();
    assert_eq!(
        cb.interp_delta_vs_baseline, None,
        "delta_vs_matched_baseline is null in this fixture"
    );
    assert_eq!(cb.interpretability_max, 7.585395152568817);
}

#[test]
fn release_policy_reader_both_schemas() {
    let p = evidence("cycle4_followups_run_20260215T190004Z/release_gate/release_policy.json");
    let r = release_policy::read(&p, &read_file(&p).unwrap()).unwrap();
    assert_eq!(r.schema_version, "v3-lcb");
    assert_eq!(
        (r.random_model, r.transcoder, r.ood, r.external, r.pass_all),
        (true, true, true, false, false)
    );
    assert_eq!(r.external_mode_used.as_deref(), Some("joint"));
    assert_eq!(r.metrics.len(), 12);
    let p = evidence("phase4e_stress_gated_release/run_20260213T204120Z_release_policy.json");
    let r = release_policy::read(&p, &read_file(&p).unwrap()).unwrap();
    assert_eq!(r.schema_version, "v1-legacy");
    assert_eq!(r.external_saebench, None);
    assert_eq!(r.metrics[2], ("transcoder_delta".to_string(), None));
}

#[test]
fn wrong_kind_is_named() {
    let p = evidence("cycle4_followups_run_20260215T190004Z/ood/ood_stress_summary.json");
    let err = transcoder::read_summary(&p, &read_file(&p).unwrap()).unwrap_err();
    assert!(matches!(err, ReadError::WrongKind { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("expected a transcoder_stress_summary artifact")
            && msg.contains("looks like ood_stress_summary"),
        "{msg}"
    );
}

#[test]
fn missing_field_and_bool_as_number_are_rejected() {
    let p = Path::new("phase4a.json");
    let v = parse_str(
        r#"{"comparison": {"difference": 0.1}, "trained": {"mean": 0.3, "ci95_low": 0.2, "ci95_high": 0.4},
            "random": {"mean": 0.2, "ci95_low": 0.1}, "statistical_test": {"p_value": 0.01}}"#,
    )
    .unwrap();
    let msg = phase4a::read(p, &v).unwrap_err().to_string();
    assert!(
        msg.contains("phase4a.json") && msg.contains("`random.ci95_high` is missing"),
        "{msg}"
    );

    let v = parse_str(
        r#"{"comparison": {"difference": true}, "trained": {"mean": 0.3, "ci95_low": 0.2, "ci95_high": 0.4},
            "random": {"mean": 0.2, "ci95_low": 0.1, "ci95_high": 0.15}}"#,
    )
    .unwrap();
    let msg = phase4a::read(p, &v).unwrap_err().to_string();
    assert!(
        msg.contains("`comparison.difference` must be a finite number, found bool True"),
        "{msg}"
    );

    let v = parse_str(
        r#"{"comparison": {"difference": 0.1}, "trained": {"mean": 0.3, "ci95_low": 0.2, "ci95_high": 0.4,
            "pwmcc_values": [0.3, "x"]}, "random": {"mean": 0.2, "ci95_low": 0.1, "ci95_high": 0.15}}"#,
    )
    .unwrap();
    let msg = phase4a::read(p, &v).unwrap_err().to_string();
    assert!(
        msg.contains("`trained.pwmcc_values[1]` must be a number, found str 'x'"),
        "{msg}"
    );

    let v = parse_str(
        r#"{"comparison": {"difference": 0.1}, "trained": {"mean": 0.3, "ci95_low": 0.2, "ci95_high": 0.4},
            "random": {"mean": 0.2, "ci95_low": 0.1, "ci95_high": 0.15}}"#,
    )
    .unwrap();
    let r = phase4a::read(p, &v).unwrap();
    assert!((r.difference_of_bounds() - 0.05).abs() < 1e-15);
    assert_eq!(r.p_value, None);
}

#[test]
fn nan_ood_drop_is_rejected_by_the_typed_reader() {
    let p = Path::new("ood.json");
    let v = parse_str(r#"{"id_result": {}, "ood_result": {}, "ood_drop": NaN}"#).unwrap();
    let msg = ood::read(p, &v).unwrap_err().to_string();
    assert!(
        msg.contains("`ood_drop` must be a finite number, found float nan"),
        "{msg}"
    );
}

#[test]
fn python_json_dump_reproduces_upstream_release_policies_byte_for_byte() {
    for rel in [
        "cycle4_followups_run_20260215T190004Z/release_gate/release_policy.json",
        "cycle4_followups_run_20260215T220728Z/release/release_policy.json",
        "cycle5_external_push_run_20260215T232351Z/release/release_policy.json",
        "phase4e_stress_gated_release/run_20260213T204120Z_release_policy.json",
        "cycle4_followups_run_20260215T190004Z/selector/selected_candidate.json",
    ] {
        let path = evidence(rel);
        let bytes = std::fs::read_to_string(&path).unwrap();
        let value = read_file(&path).unwrap();
        let dumped = pyrepr::json_dumps(&value, 2);
        assert_eq!(dumped.trim_end(), bytes.trim_end(), "{rel}");
    }
}

#[test]
fn upstreams_three_seed_transcoder_bootstrap_is_min_to_max_and_its_delta_lcb_is_min_minus_max() {
    // cycle3_queue_final/transcoder_stress_summary_run_20260214T224242Z.json: pairwise PWMCC values and the CIs
    // upstream recorded for them.
    let tc = [0.26641567051410675, 0.2702806890010834, 0.2682995945215225];
    let sae = [0.26780956983566284, 0.27006515860557556, 0.2738051265478134];
    let (ci_tc, ci_sae, lcb) = husai_core::legacy::transcoder::parity_delta_lcb(&tc, &sae).unwrap();
    assert_eq!(
        (ci_tc.low, ci_tc.high),
        (0.26641567051410675, 0.2702806890010834)
    );
    assert_eq!(
        (ci_sae.low, ci_sae.high),
        (0.26780956983566284, 0.2738051265478134)
    );
    assert_eq!(lcb, 0.26641567051410675 - 0.2738051265478134);
    assert_eq!(
        lcb,
        tc.iter().cloned().fold(f64::INFINITY, f64::min) - sae.iter().cloned().fold(0.0, f64::max)
    );
}
