//! Upstream's consistency-audit checks in parity (FIXTURES.md 5 and the release policies).

use crate::gate_support;

use gate_support::evidence;
use husai_core::claims::consistency::{self, CheckStatus};
use husai_core::legacy::json::{LegacyValue, parse_str, read_file};

#[test]
fn fixture5_assignment_v2_checks() {
    let v = read_file(&evidence(
        "phase4d_assignment_consistency_v2/run_20260213T203957Z_results.json",
    ))
    .unwrap();
    let internal = consistency::assignment_v2_internal_gain_positive(&v);
    assert_eq!(internal.status, CheckStatus::Pass);
    assert_eq!(
        internal.evidence[1],
        ("best_delta_lcb", LegacyValue::Float(0.05441876482218502))
    );
    assert_eq!(
        internal.evidence[2],
        ("ev_drop", LegacyValue::Float(0.000877749919891313))
    );
    let external = consistency::assignment_v2_external_gate_pass(&v);
    assert_eq!(external.status, CheckStatus::Fail);
    assert_eq!(
        external.evidence[0],
        ("gate_external", LegacyValue::Bool(false))
    );
    assert_eq!(
        external.evidence[1],
        ("external_delta", LegacyValue::Float(-0.1328355796129408))
    );
    assert!(!consistency::overall_pass(&[internal, external]));
}

#[test]
fn every_recorded_release_policy_fails_check_8() {
    for rel in [
        "cycle4_followups_run_20260215T190004Z/release_gate/release_policy.json",
        "cycle4_followups_run_20260215T220728Z/release/release_policy.json",
        "cycle5_external_push_run_20260215T232351Z/release/release_policy.json",
        "cycle3_queue_run_20260215T165724Z/release_policy.json",
        "cycle3_queue_final/release_policy_run_20260214T225029Z.json",
        "phase4e_stress_gated_release/run_20260213T204120Z_release_policy.json",
    ] {
        let check =
            consistency::stress_release_policy_pass_all(&read_file(&evidence(rel)).unwrap());
        assert_eq!(check.status, CheckStatus::Fail, "{rel}");
        assert_eq!(check.evidence[0], ("pass_all", LegacyValue::Bool(false)));
    }
}

#[test]
fn identity_checks_reject_truthy_non_booleans() {
    // Upstream tests `is True`: a 1 is not True.
    let v = parse_str(r#"{"acceptance": {"gate_external": 1}, "gates": {"pass_all": 1}}"#).unwrap();
    assert_eq!(
        consistency::assignment_v2_external_gate_pass(&v).status,
        CheckStatus::Fail
    );
    assert_eq!(
        consistency::stress_release_policy_pass_all(&v).status,
        CheckStatus::Fail
    );
}

#[test]
fn phase4a_and_core_sweep_checks() {
    let p = parse_str(
        r#"{"comparison": {"difference": 0.002886}, "statistical_test": {"p_value": 0.0001649}}"#,
    )
    .unwrap();
    assert_eq!(
        consistency::phase4a_training_signal(&p).status,
        CheckStatus::Pass
    );
    let p = parse_str(
        r#"{"comparison": {"difference": 0.002886}, "statistical_test": {"p_value": 0.05}}"#,
    )
    .unwrap();
    assert_eq!(
        consistency::phase4a_training_signal(&p).status,
        CheckStatus::Fail
    );
    let core = parse_str(
        r#"{"k_sweep": [{"k": 4, "delta_pwmcc": 0.009773}, {"k": 8, "delta_pwmcc": 0.009773}, {"k": 16}],
            "d_sae_sweep": [{"d_sae": 64, "delta_pwmcc": -0.1}]}"#,
    )
    .unwrap();
    let k = consistency::core_sweep_has_positive_delta(&core, "k_sweep");
    assert_eq!(k.status, CheckStatus::Pass);
    assert_eq!(
        k.evidence[0],
        ("best_k", LegacyValue::Int(4)),
        "first maximum wins"
    );
    let d = consistency::core_sweep_has_positive_delta(&core, "d_sae_sweep");
    assert_eq!(d.status, CheckStatus::Fail);
}

#[test]
fn missing_fields_are_errors_not_crashes() {
    let v = parse_str(r#"{"comparison": {}}"#).unwrap();
    let c = consistency::phase4a_training_signal(&v);
    assert!(
        matches!(&c.status, CheckStatus::Error(m) if m.contains("comparison.difference")),
        "{c:?}"
    );
    let c = consistency::core_sweep_has_positive_delta(
        &parse_str(r#"{"k_sweep": []}"#).unwrap(),
        "k_sweep",
    );
    assert!(
        matches!(&c.status, CheckStatus::Error(m) if m.contains("empty")),
        "{c:?}"
    );
    let c = consistency::assignment_v2_internal_gain_positive(&parse_str("{}").unwrap());
    assert!(
        matches!(&c.status, CheckStatus::Error(m) if m.contains("acceptance")),
        "{c:?}"
    );
}
