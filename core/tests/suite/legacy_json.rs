//! The lenient reader against the real upstream files named in FIXTURES.md §6.

use std::path::{Path, PathBuf};

use husai_core::legacy::json::{LegacyJsonError, LegacyValue, read_file};

fn evidence(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/husai-evidence")
        .join(rel)
}

#[test]
fn assignment_v3_with_nan_tokens_parses() {
    let v = read_file(&evidence(
        "cycle4_followups_run_20260215T190004Z/assignment_v3/results.json",
    ))
    .unwrap();
    let nan = v.non_finite_pointers();
    assert!(
        !nan.is_empty(),
        "the fixture is documented to hold NaN tokens"
    );
    for p in &nan {
        assert!(v.pointer(p).unwrap().as_f64().unwrap().is_nan(), "{p}");
    }
}

#[test]
fn closure_summaries_with_nan_tokens_parse() {
    for rel in [
        "cycle4_followups_run_20260215T190004Z/known_circuit/closure_summary.json",
        "known_circuit_recovery_closure/run_20260215T165907Z_closure_summary.json",
    ] {
        let v = read_file(&evidence(rel)).unwrap();
        assert!(!v.non_finite_pointers().is_empty(), "{rel}");
    }
    let v = read_file(&evidence(
        "cycle4_followups_run_20260215T190004Z/known_circuit/closure_summary.json",
    ))
    .unwrap();
    assert!(
        v.pointer("/sae/trained_stats/mean")
            .unwrap()
            .as_f64()
            .unwrap()
            .is_nan()
    );
    assert_eq!(
        v.pointer("/sae/trained_stats/n"),
        Some(&LegacyValue::Int(0))
    );
    assert_eq!(
        v.pointer("/sae/delta_vs_random_lcb"),
        Some(&LegacyValue::Null)
    );
    assert_eq!(
        v.pointer("/gates/pass_all"),
        Some(&LegacyValue::Bool(false))
    );
}

#[test]
fn zero_byte_file_is_reported_as_empty_with_its_path() {
    let path = evidence(
        "cycle10_live_snapshot_20260218T0332Z/assignment/run_20260218T024225Z_results.json",
    );
    let err = read_file(&path).unwrap_err();
    assert!(matches!(err, LegacyJsonError::Empty { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("run_20260218T024225Z_results.json") && msg.contains("empty (0 bytes)"),
        "{msg}"
    );
}

#[test]
fn null_nested_object_is_kept_as_null() {
    let v = read_file(&evidence(
        "phase4b_architecture_frontier_external/run_20260213T173707Z_topk_cebench_summary.json",
    ))
    .unwrap();
    assert_eq!(v.get("delta_vs_matched_baseline"), Some(&LegacyValue::Null));
    assert_eq!(
        v.get_path(&[
            "delta_vs_matched_baseline",
            "interpretability_score_mean_max"
        ]),
        None
    );
    assert_eq!(
        v.pointer("/custom_metrics/interpretability_score_mean_max")
            .and_then(LegacyValue::as_f64),
        Some(7.585395152568817)
    );
}

#[test]
fn every_json_fixture_but_the_empty_one_parses() {
    let root = evidence("");
    let mut parsed = 0;
    for entry in walkdir::WalkDir::new(&root) {
        let entry = entry.unwrap();
        if entry.path().extension().is_some_and(|e| e == "json") {
            match read_file(entry.path()) {
                Ok(_) => parsed += 1,
                Err(LegacyJsonError::Empty { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
    // 101 JSON files in the tree, one of them the documented 0-byte file.
    assert_eq!(parsed, 100);
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(&path, "{\n  \"a\": [1,\n  2,,\n}").unwrap();
    let msg = read_file(&path).unwrap_err().to_string();
    assert!(
        msg.contains("broken.json") && msg.contains("line 3, column 5"),
        "{msg}"
    );
    let missing = dir.path().join("missing.json");
    let msg = read_file(&missing).unwrap_err().to_string();
    assert!(
        msg.contains("missing.json") && msg.starts_with("cannot read"),
        "{msg}"
    );
}
