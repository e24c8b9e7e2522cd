//! Selector inputs: the typed readers on real upstream files (NaN tokens, empty files, failed runs), and every
//! bad-input path with the text of its error.

use crate::select_support;

use husai_core::legacy::assignment::{
    read_assignment_v2, read_assignment_v3, seed_from_checkpoint,
};
use husai_core::legacy::frontier::read_frontier;
use husai_core::legacy::matryoshka::{external_eval_failed, read_matryoshka};
use husai_core::legacy::routed::{read_routed, routed_config};
use husai_core::legacy::scaling::read_scaling;
use husai_core::legacy::selection::{read_selected_candidate, read_selection_summary};
use husai_core::select::{InputRole, Mode, SelectConfig, SelectError, load_input};
use select_support::{R, fixtures, frontier, run, write};
use serde_json::json;

#[test]
fn frontier_and_scaling_records() {
    let f = read_frontier(
        &fixtures().join("cycle3_queue_final/frontier_multiseed_results_run_20260214T202538Z.json"),
    )
    .unwrap();
    assert_eq!(f.records.len(), 20);
    let r = &f.records[1];
    assert_eq!(
        (r.architecture.as_deref(), r.seed, r.hook_layer),
        (Some("topk"), Some(123), Some(0))
    );
    assert_eq!(r.saebench_delta(), Some(-0.03260442057084412));
    assert_eq!(r.cebench_delta, Some(-39.910494198799135));
    assert_eq!(
        r.cebench_baseline_sae_id.as_deref(),
        Some("blocks.0.hook_resid_pre")
    );
    let s =
        read_scaling(&fixtures().join("cycle3_queue_run_20260215T165724Z/scaling_results.json"))
            .unwrap();
    assert_eq!(s.records.len(), 24);
    assert_eq!(
        s.records[0].condition_id.as_deref(),
        Some("tok10000_layer0_dsae1024_seed42")
    );
    // Layer-1 records have no matched CE-Bench baseline.
    let layer1 = s.records.iter().find(|r| r.hook_layer == Some(1)).unwrap();
    assert_eq!(layer1.cebench_delta, None);
}

#[test]
fn routed_and_failed_matryoshka_records() {
    let r = read_routed(&fixtures().join(
        "cycle5_external_push_run_20260215T232351Z/routed/run_20260216T000156Z_results.json",
    ))
    .unwrap();
    assert_eq!(r.records.len(), 3);
    let cfg = routed_config(&r);
    assert_eq!(cfg.route_topk_mode.as_deref(), Some("global_mask"));
    let m = read_matryoshka(
        &fixtures().join("cycle4_followups_run_20260215T190004Z/matryoshka/results.json"),
    )
    .unwrap();
    assert_eq!(m.records.len(), 3);
    assert!(
        m.records
            .iter()
            .all(|r| external_eval_failed(r) && r.saebench_delta().is_none())
    );
}

#[test]
fn assignment_v2_and_v3_with_nan_tokens() {
    let v2 = read_assignment_v2(
        &fixtures().join("phase4d_assignment_consistency_v2/run_20260213T203957Z_results.json"),
    )
    .unwrap();
    assert_eq!(v2.acceptance.best_delta_lcb, Some(0.05441876482218502));
    assert_eq!(v2.acceptance.ev_drop, Some(0.000877749919891313));
    assert_eq!(v2.acceptance.external_delta, Some(-0.1328355796129408));
    assert!(
        !v2.acceptance.gate_external && !v2.acceptance.pass_all && v2.acceptance.gate_delta_lcb
    );
    assert_eq!(v2.lambdas.len(), 5);
    let v3 = read_assignment_v3(
        &fixtures().join("cycle4_followups_run_20260215T190004Z/assignment_v3/results.json"),
    )
    .unwrap();
    assert_eq!(v3.records.len(), 5);
    assert_eq!(v3.hook_name.as_deref(), Some("blocks.0.hook_resid_pre"));
    let last = v3.records.last().unwrap();
    assert_eq!((last.lambda_consistency, last.seed), (0.3, Some(456)));
    assert_eq!(
        seed_from_checkpoint("a/lambda_0.3/sae_seed456.pt"),
        Some(456)
    );
    assert_eq!(seed_from_checkpoint("a/sae_seedX/sae_seed7.pt"), Some(7));
    assert_eq!(seed_from_checkpoint("a/sae.pt"), None);
}

#[test]
fn upstream_selection_outputs() {
    let s = read_selection_summary(
        &fixtures().join("cycle4_followups_run_20260215T190004Z/selector/selection_summary.json"),
    )
    .unwrap();
    assert_eq!(s.schema_version, "v2-grouped");
    assert_eq!(s.counts.total_candidates, 47);
    assert_eq!(
        s.selected.group_metric("saebench_delta", "ci95_low"),
        Some(-0.04478959689939781)
    );
    let c = read_selected_candidate(
        &fixtures().join("cycle4_followups_run_20260215T190004Z/selector/selected_candidate.json"),
    )
    .unwrap();
    assert_eq!((c.group_id.as_deref(), c.seed), (Some("topk"), Some(123)));
    assert_eq!(
        c.metric("cebench_interp_delta_vs_baseline"),
        Some(-40.467037470119465)
    );
}

fn load_err(path: &std::path::Path, role: InputRole) -> String {
    load_input(path, "x", role, Mode::Strict)
        .unwrap_err()
        .to_string()
}

#[test]
fn empty_and_missing_files() {
    let empty = fixtures()
        .join("cycle10_live_snapshot_20260218T0332Z/assignment/run_20260218T024225Z_results.json");
    let text = load_err(&empty, InputRole::Assignment);
    assert!(text.contains("is empty (0 bytes)"), "{text}");
    let text = load_err(
        &fixtures().join("no/such/results.json"),
        InputRole::Frontier,
    );
    assert!(
        text.contains("cannot read") && text.contains("no/such/results.json"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"records\": [1, }").unwrap();
    let text = load_err(&broken, InputRole::Frontier);
    assert!(
        text.contains("broken.json is not valid JSON at line 1"),
        "{text}"
    );
}

#[test]
fn files_of_the_wrong_kind() {
    let v2 = fixtures().join("phase4d_assignment_consistency_v2/run_20260213T203957Z_results.json");
    let text = load_err(&v2, InputRole::Assignment);
    assert!(text.contains("expected a assignment_v3_results artifact, but the file looks like assignment_v2_results"), "{text}");
    let summary =
        fixtures().join("cycle4_followups_run_20260215T190004Z/selector/selection_summary.json");
    let text = load_err(&summary, InputRole::Frontier);
    assert!(text.contains("looks like selection_summary"), "{text}");
    let text = load_err(&summary, InputRole::Auto);
    assert!(
        text.contains(
            "selector input (frontier, scaling, routed, matryoshka or assignment-v3 results)"
        ),
        "{text}"
    );
    // Strict mode: a frontier file passed as --scaling-results is refused; parity reads it as upstream did.
    let f =
        fixtures().join("cycle3_queue_final/frontier_multiseed_results_run_20260214T202538Z.json");
    assert!(load_err(&f, InputRole::Scaling).contains("expected a scaling_results artifact"));
    assert!(load_input(&f, "x", InputRole::Scaling, Mode::Parity).is_ok());
}

#[test]
fn missing_and_mistyped_fields_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = select_support::assignment(&[R("0.3", 456, Some(-0.05), Some(-38.0), Some(0.7))]);
    a["records"][0]
        .as_object_mut()
        .unwrap()
        .remove("lambda_consistency");
    let path = write(dir.path(), "a.json", &a);
    let text = load_err(&path, InputRole::Assignment);
    assert!(
        text.contains("required field `records[0].lambda_consistency` is missing"),
        "{text}"
    );

    let mut f = frontier(
        &[R("topk", 42, Some(-0.03), Some(-1.0), Some(0.9))],
        json!({}),
    );
    f["records"][0]["saebench"]["summary"]["best_minus_llm_auc"] = json!(true);
    let path = write(dir.path(), "f.json", &f);
    let text = load_err(&path, InputRole::Frontier);
    assert!(
        text.contains(
            "field `records[0].saebench.summary.best_minus_llm_auc` must be a number, found bool"
        ),
        "{text}"
    );

    let mut f = frontier(&[], json!({}));
    f["records"] = json!({"not": "a list"});
    let path = write(dir.path(), "g.json", &f);
    let text = load_err(&path, InputRole::Frontier);
    assert!(
        text.contains("field `records` must be a list, found dict"),
        "{text}"
    );
}

#[test]
fn nan_metrics_follow_each_mode() {
    let dir = tempfile::tempdir().unwrap();
    let f = frontier(
        &[
            R("topk", 42, Some(-0.03), Some(-1.0), Some(0.9)),
            R("relu", 42, Some(-0.01), Some(-0.5), Some(0.8)),
        ],
        json!({}),
    );
    // Upstream wrote bare NaN tokens; put one where relu's CE-Bench delta is.
    let text = serde_json::to_string(&f)
        .unwrap()
        .replacen("-0.5", "NaN", 1);
    let path = dir.path().join("nan.json");
    std::fs::write(&path, text).unwrap();
    let seed_level = |base: SelectConfig| SelectConfig {
        group_by_condition: false,
        ..base
    };
    let parity = run(
        &[(InputRole::Frontier, path.as_path())],
        &seed_level(SelectConfig::parity_defaults()),
    )
    .unwrap();
    assert!(
        parity.rows[1]
            .metrics
            .cebench_interp_delta_vs_baseline
            .unwrap()
            .is_nan()
    );
    assert_eq!(
        parity.pareto_count(),
        2,
        "upstream: NaN can be neither dominated nor dominating"
    );
    let strict = run(
        &[(InputRole::Frontier, path.as_path())],
        &seed_level(SelectConfig::strict_defaults()),
    )
    .unwrap();
    assert_eq!(strict.eligible.len(), 1, "strict: NaN is not a measurement");
}

#[test]
fn selection_failures_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = frontier(
        &[R("topk", 42, Some(-0.03), Some(-1.0), Some(0.9))],
        json!({}),
    );
    f["records"][0]["cebench_returncode"] = json!(1);
    let path = write(dir.path(), "f.json", &f);
    let err = run(
        &[(InputRole::Frontier, path.as_path())],
        &SelectConfig::strict_defaults(),
    )
    .unwrap_err();
    assert!(matches!(err, SelectError::NoEligibleRows { total: 1, .. }));
    assert!(
        err.to_string().contains("(1 rows: 1 external_eval_failed)"),
        "{err}"
    );

    let path = write(
        dir.path(),
        "g.json",
        &frontier(
            &[R("topk", 42, Some(-0.03), Some(-1.0), Some(0.9))],
            json!({}),
        ),
    );
    let err = run(
        &[(InputRole::Frontier, path.as_path())],
        &SelectConfig::strict_defaults(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no condition group has at least 3 seed(s) (1 group(s) before the cut); add seeds or lower --min-seeds-per-group"
    );

    let mut f = frontier(
        &[R("topk", 42, Some(-0.03), Some(-1.0), Some(0.9))],
        json!({}),
    );
    f["records"][0]["checkpoint"] = json!("c/sae.pt");
    let path = write(dir.path(), "h.json", &f);
    let err = run(
        &[(InputRole::Frontier, path.as_path())],
        &SelectConfig::strict_defaults(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("checkpoint path `c/sae.pt` has fewer than three parent directories"),
        "{err}"
    );

    let err = run(&[], &SelectConfig::strict_defaults()).unwrap_err();
    assert!(matches!(err, SelectError::NoInputs));
}
