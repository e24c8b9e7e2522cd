//! Ports of upstream's selector unit tests (`tests/unit/test_release_policy_selector.py`, reference §2.9 items
//! 1, 2, 3, 6 and 7), run in parity mode and, where the expectation is mode-independent, in strict mode too.

use crate::select_support;

use husai_core::select::score::finite_or_default;
use husai_core::select::{InputRole, SelectConfig};
use select_support::{R, assignment, frontier, run, scaling, write};
use serde_json::json;

fn both_modes() -> [SelectConfig; 2] {
    [
        SelectConfig::parity_defaults(),
        SelectConfig::strict_defaults(),
    ]
}

#[test]
fn selector_prefers_joint_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "f.json",
        &frontier(
            &[R("topk", 42, Some(-0.04), Some(-10.0), Some(0.9))],
            json!({}),
        ),
    );
    let s = write(
        dir.path(),
        "s.json",
        &scaling(&[R(
            "tok10000_layer0_dsae1024_seed42",
            42,
            Some(-0.01),
            Some(-2.0),
            Some(0.8),
        )]),
    );
    for base in both_modes() {
        let config = SelectConfig {
            group_by_condition: false,
            require_both_external: true,
            ..base
        };
        let sel = run(
            &[(InputRole::Frontier, &f), (InputRole::Scaling, &s)],
            &config,
        )
        .unwrap();
        let winner = sel.selected();
        assert_eq!(
            sel.rows[winner.representative].condition_id,
            "tok10000_layer0_dsae1024_seed42"
        );
        assert_eq!(sel.scores[sel.ranked[0]].joint, 1.0);
        assert!((sel.scores[sel.ranked[1]].joint - 0.1).abs() < 1e-15);
    }
}

#[test]
fn grouped_lcb_prefers_stable_group() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "f.json",
        &frontier(
            &[
                R("topk", 42, Some(-0.005), Some(0.30), Some(0.9)),
                R("topk", 123, Some(-0.095), Some(-0.10), Some(0.9)),
                R("relu", 42, Some(-0.040), Some(0.08), Some(0.9)),
                R("relu", 123, Some(-0.042), Some(0.09), Some(0.9)),
            ],
            json!({}),
        ),
    );
    for base in both_modes() {
        let config = SelectConfig {
            min_seeds_per_group: 2,
            ..base
        };
        let sel = run(&[(InputRole::Frontier, &f)], &config).unwrap();
        let c = sel.selected();
        assert_eq!(c.condition, "relu", "{:?}", config.mode);
        let stats = c.stats.as_ref().unwrap();
        assert!(stats[0].ci95_low.is_some() && stats[1].ci95_low.is_some());
        assert_eq!(c.metrics.saebench_delta, stats[0].ci95_low);
    }
}

#[test]
fn grouped_reports_dropped_groups() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<R> = [42, 123, 456]
        .iter()
        .map(|&s| R("topk", s, Some(-0.01), Some(-1.0), Some(0.9)))
        .chain(
            [42, 123]
                .iter()
                .map(|&s| R("relu", s, Some(-0.02), Some(-2.0), Some(0.8))),
        )
        .collect();
    let f = write(dir.path(), "f.json", &frontier(&rows, json!({})));
    for base in both_modes() {
        let config = SelectConfig {
            min_seeds_per_group: 3,
            ..base
        };
        let sel = run(&[(InputRole::Frontier, &f)], &config).unwrap();
        let d = sel.diagnostics.as_ref().unwrap();
        assert_eq!((d.total_groups, d.kept.len(), d.dropped.len()), (2, 1, 1));
        assert_eq!(d.dropped[0].group_id, "relu");
        assert_eq!(d.dropped[0].seed_count, 2);
    }
}

#[test]
fn selector_accepts_assignment_results() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.json",
        &assignment(&[
            R("0.0", 123, Some(-0.06), Some(-39.0), Some(0.80)),
            R("0.3", 456, Some(-0.05), Some(-38.0), Some(0.70)),
        ]),
    );
    for base in both_modes() {
        let config = SelectConfig {
            group_by_condition: false,
            ..base
        };
        let sel = run(&[(InputRole::Assignment, &a)], &config).unwrap();
        let row = &sel.rows[sel.selected().representative];
        assert_eq!(row.source.as_str(), "assignment");
        assert_eq!(row.condition_id, "assignv3_lambda0.3_seed456");
        assert_eq!(row.assignment.unwrap().lambda_consistency, 0.3);
    }
}

#[test]
fn finite_or_default_keeps_zero_and_replaces_nan() {
    assert_eq!(finite_or_default(Some(0.0), f64::NEG_INFINITY), 0.0);
    assert_eq!(finite_or_default(Some(f64::NAN), -5.0), -5.0);
}
