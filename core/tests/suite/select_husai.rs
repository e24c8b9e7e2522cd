//! Strict selection over husai's own runs (`select::husai`), on hand-built inputs: rows, grouping by family and
//! configuration with distinct seeds, CE-Bench not applicable (complete without it, no joint-score term), the front
//! on the axes candidates share, skipped runs, and the `selection.json` layout the gate reads.

use crate::select_support;

use husai_core::select::husai::{HusaiEval, HusaiRun, RunIdentity};
use husai_core::select::output::{InputCitation, strict_selection_json, validate_selection};
use husai_core::select::{
    Evidence, FilterReason, InputContent, InputRole, LoadedInput, SelectConfig, SelectError,
    SourceKind, UncertaintyMode, load_input, select,
};
use serde_json::json;

/// What the CLI cites for a husai train run (selection.json needs at least one input).
fn citation() -> InputCitation {
    InputCitation {
        role: "husai_train".into(),
        path: "toy/t0/metrics.json".into(),
        sha256: hex("metrics"),
        campaign: Some("toy".into()),
        run_id: Some("t0".into()),
        subject: Some("metrics.json".into()),
    }
}

fn strict() -> SelectConfig {
    SelectConfig::strict_defaults()
}

fn hex(tag: &str) -> String {
    husai_core::digest::sha256_hex(tag.as_bytes())
}

/// A husai train run of `family` with config `config` (its fingerprint stands in for the hash of the real
/// config), `seed`, the eval's mean ID gap and the held-out FVU; `run` names it.
fn run(
    family: &str,
    config: &str,
    seed: u64,
    gap: Option<f64>,
    fvu: Option<f64>,
    name: &str,
) -> LoadedInput {
    LoadedInput {
        display: format!("toy/{name}"),
        source: SourceKind::Husai,
        content: InputContent::Husai(HusaiRun {
            run: RunIdentity {
                campaign: "toy".into(),
                run_id: name.into(),
                manifest_sha256: hex(name),
            },
            family: family.into(),
            seed: Some(seed),
            heldout_fvu: fvu,
            eval: gap.map(|g| HusaiEval {
                run: RunIdentity {
                    campaign: "toy".into(),
                    run_id: format!("eval-of-{name}"),
                    manifest_sha256: hex(&format!("eval-of-{name}")),
                },
                gate_k: 5,
                id_tasks: 6,
                id_mean_gap: Some(g),
            }),
            skipped: None,
        }),
        config_sha256: hex(config),
    }
}

fn skipped(name: &str, reason: &str) -> LoadedInput {
    let mut input = run("sae-topk", "a", 9, None, None, name);
    if let InputContent::Husai(h) = &mut input.content {
        h.skipped = Some(reason.to_string());
    }
    input
}

/// Student-t 95% bound over 3 values, computed here from its definition.
fn t_bounds(v: [f64; 3]) -> (f64, f64, f64) {
    let mean = v.iter().sum::<f64>() / 3.0;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    let half = 4.302652729911275 * sd / 3f64.sqrt();
    (mean, mean - half, mean + half)
}

fn close(a: Option<f64>, b: f64) {
    let a = a.expect("a value");
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
}

fn families() -> Vec<LoadedInput> {
    vec![
        run("sae-topk", "topk", 0, Some(-0.10), Some(0.40), "t0"),
        run("sae-topk", "topk", 1, Some(-0.12), Some(0.42), "t1"),
        run("sae-topk", "topk", 2, Some(-0.11), Some(0.41), "t2"),
        run("sae-batchtopk", "btopk", 0, Some(-0.20), Some(0.30), "b0"),
        run("sae-batchtopk", "btopk", 1, Some(-0.19), Some(0.31), "b1"),
        run("sae-batchtopk", "btopk", 2, Some(-0.21), Some(0.35), "b2"),
    ]
}

#[test]
fn a_husai_row_is_its_family_seed_run_and_eval() {
    let sel = select(&families(), &strict()).unwrap();
    let row = &sel.rows[0];
    assert_eq!(row.source, SourceKind::Husai);
    assert_eq!(
        (row.condition_id.as_str(), row.architecture.as_str()),
        ("sae-topk", "sae-topk")
    );
    assert_eq!(row.seed, Some(0));
    assert_eq!(row.checkpoint, "toy/t0");
    assert_eq!(row.source_results, "toy/t0");
    assert_eq!(
        row.saebench_summary_path.as_deref(),
        Some("toy/eval-of-t0/ood_stress_summary.json")
    );
    assert_eq!(row.cebench_summary_path, None);
    assert_eq!(row.metrics.saebench_delta, Some(-0.10));
    assert_eq!(row.metrics.cebench_interp_delta_vs_baseline, None);
    close(row.metrics.train_explained_variance, 0.60);
    assert_eq!(row.config_sha256, hex("topk"));
}

#[test]
fn two_families_of_three_seeds_are_two_groups_with_t_bounds() {
    let sel = select(&families(), &strict()).unwrap();
    assert_eq!(sel.candidates.len(), 2);
    assert!(sel.filtered.is_empty(), "{:?}", sel.filtered);
    for c in &sel.candidates {
        assert_eq!(c.members.len(), 3, "{}", c.id);
        assert_eq!(c.sources, vec![SourceKind::Husai]);
        assert_eq!(c.evidence(), Evidence::Husai);
    }
    let topk = sel
        .candidates
        .iter()
        .find(|c| c.condition == "sae-topk")
        .unwrap();
    let stats = topk.stats.as_ref().unwrap();
    let (mean, low, high) = t_bounds([-0.10, -0.12, -0.11]);
    close(stats[0].mean, mean);
    close(stats[0].ci95_low, low);
    close(stats[0].ci95_high, high);
    close(topk.metrics.saebench_delta, low);
    // CE-Bench: no measurement at all, and none expected.
    assert_eq!((stats[1].n, stats[1].mean), (0, None));
    let (ev_mean, ev_low, _) = t_bounds([0.60, 0.58, 0.59]);
    close(stats[2].mean, ev_mean);
    close(topk.metrics.train_explained_variance, ev_low);

    // One shared axis: the group with the higher SAEBench-analogue bound alone is on the front, and selected.
    assert_eq!(sel.pareto_count(), 1);
    assert_eq!(sel.selected().condition, "sae-topk");
    assert!(sel.is_pareto[sel.ranked[0]]);
    // Its joint score has no CE-Bench term: SAEBench 0.5·1 + train EV 0.1·norm.
    let s = &sel.scores[sel.ranked[0]];
    assert_eq!(s.cebench_delta_norm, None);
    assert_eq!(sel.normalization.cebench_delta, None);
    close(
        Some(s.joint),
        0.5 * s.saebench_norm.unwrap() + 0.1 * s.train_ev_norm.unwrap(),
    );
    // The representative is the seed with the best seed-level score.
    let rep = &sel.rows[sel.selected().representative];
    assert_eq!(rep.checkpoint, "toy/t0");
}

#[test]
fn two_configurations_of_one_family_do_not_pool() {
    let mut inputs = families();
    inputs.truncate(3);
    inputs.extend([
        run("sae-topk", "topk-k3", 0, Some(-0.05), Some(0.50), "k0"),
        run("sae-topk", "topk-k3", 1, Some(-0.06), Some(0.50), "k1"),
        run("sae-topk", "topk-k3", 2, Some(-0.07), Some(0.52), "k2"),
    ]);
    let sel = select(&inputs, &strict()).unwrap();
    assert_eq!(sel.candidates.len(), 2);
    assert!(sel.candidates.iter().all(|c| c.condition == "sae-topk"));
    assert_ne!(
        sel.candidates[0].config_sha256,
        sel.candidates[1].config_sha256
    );
    assert_eq!(sel.selected().config_sha256, hex("topk-k3"));
}

#[test]
fn one_seed_measured_twice_differently_is_a_conflict_and_identically_counts_once() {
    let mut inputs = families();
    inputs.push(run(
        "sae-topk",
        "topk",
        1,
        Some(-0.12),
        Some(0.43),
        "t1-again",
    ));
    let err = select(&inputs, &strict()).unwrap_err();
    assert!(
        matches!(&err, SelectError::ConflictingDuplicateSeed { seed: 1, field, .. } if field == "train_explained_variance"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("(toy/t1 row 0 vs toy/t1-again row 0)"),
        "{err}"
    );
    let mut inputs = families();
    inputs.push(run(
        "sae-topk",
        "topk",
        1,
        Some(-0.12),
        Some(0.42),
        "t1-again",
    ));
    let sel = select(&inputs, &strict()).unwrap();
    let topk = sel
        .candidates
        .iter()
        .find(|c| c.condition == "sae-topk")
        .unwrap();
    assert_eq!(topk.members.len(), 3);
    assert_eq!(sel.diagnostics.as_ref().unwrap().duplicates.len(), 1);
}

#[test]
fn without_its_eval_or_its_heldout_fvu_a_run_is_incomplete() {
    let mut inputs = families();
    inputs[3] = run("sae-batchtopk", "btopk", 0, None, Some(0.30), "b0");
    inputs[4] = run("sae-batchtopk", "btopk", 1, Some(-0.19), None, "b1");
    let sel = select(&inputs, &strict()).unwrap();
    assert_eq!(
        sel.filtered,
        vec![
            (3, FilterReason::MissingMetric),
            (4, FilterReason::MissingMetric)
        ]
    );
    assert!(
        sel.candidates
            .iter()
            .all(|c| c.condition != "sae-batchtopk"),
        "1 seed left, below the minimum of 3"
    );

    // A family none of whose runs has an eval: allowed incomplete, it is ranked and never on the front.
    for (i, name) in [(3, "b0"), (4, "b1"), (5, "b2")] {
        inputs[i] = run(
            "sae-batchtopk",
            "btopk",
            i as u64 - 3,
            None,
            Some(0.30),
            name,
        );
    }
    let allow = SelectConfig {
        require_both_external: false,
        ..strict()
    };
    let sel = select(&inputs, &allow).unwrap();
    let i = sel
        .candidates
        .iter()
        .position(|c| c.condition == "sae-batchtopk")
        .unwrap();
    assert!(!sel.is_pareto[i]);
    assert_eq!(sel.selected().condition, "sae-topk");
    let doc = strict_selection_json(&sel, &[citation()]);
    validate_selection(&doc).unwrap();
    let row = doc["ranked"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["condition"] == "sae-batchtopk")
        .unwrap();
    assert_eq!(row["complete"], false);
    assert_eq!(row["is_pareto"], false);
}

#[test]
fn skipped_runs_yield_no_row_and_are_listed() {
    let mut inputs = families();
    inputs.push(skipped(
        "d0",
        "train run ended with status `diverged`; only runs with status `ok` are candidates",
    ));
    let sel = select(&inputs, &strict()).unwrap();
    assert_eq!(sel.rows.len(), 6);
    assert_eq!(sel.skipped.len(), 1);
    assert_eq!(sel.skipped[0].source_results, "toy/d0");
    let doc = strict_selection_json(&sel, &[citation()]);
    assert_eq!(doc["skipped_records"][0]["source_results"], "toy/d0");

    // Nothing but skipped runs: nothing to select, and the error says why.
    let err = select(&[skipped("d0", "status `diverged`")], &strict()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SelectError::NoEligibleRows { total: 0, .. }));
    assert!(
        text.contains("1 input record(s) skipped, e.g. toy/d0: status `diverged`"),
        "{text}"
    );
}

#[test]
fn parity_has_no_husai_input() {
    let err = select(&families(), &SelectConfig::parity_defaults()).unwrap_err();
    assert!(
        err.to_string()
            .contains("husai train runs (--run) are strict-mode inputs"),
        "{err}"
    );
}

#[test]
fn next_to_upstream_candidates_a_husai_one_is_compared_on_the_saebench_axis() {
    // Upstream's topk group (5 seeds, both deltas) and husai groups: the front compares a husai candidate and an
    // upstream one on SAEBench alone. Upstream's SAEBench deltas here are near -0.04, above both husai groups'.
    let f = select_support::fixtures()
        .join("cycle3_queue_final/frontier_multiseed_results_run_20260214T202538Z.json");
    let mut inputs =
        vec![load_input(&f, "frontier.json", InputRole::Frontier, strict().mode).unwrap()];
    inputs.extend(families());
    let sel = select(&inputs, &strict()).unwrap();
    let husai: Vec<usize> = (0..sel.candidates.len())
        .filter(|&i| sel.candidates[i].evidence() == Evidence::Husai)
        .collect();
    assert_eq!(husai.len(), 2);
    let best_upstream_sae = (0..sel.candidates.len())
        .filter(|i| !husai.contains(i) && sel.is_pareto[*i])
        .filter_map(|i| sel.candidates[i].metrics.saebench_delta)
        .fold(f64::NEG_INFINITY, f64::max);
    for &i in &husai {
        let sae = sel.candidates[i].metrics.saebench_delta.unwrap();
        assert!(sae < best_upstream_sae);
        assert!(!sel.is_pareto[i], "dominated on the shared axis");
    }
    // The husai candidates are complete all the same: CE-Bench is not applicable to them, not missing.
    let doc = strict_selection_json(&sel, &[citation()]);
    validate_selection(&doc).unwrap();
    for c in doc["ranked"].as_array().unwrap() {
        let is_husai = c["sources"] == json!(["husai"]);
        if is_husai {
            assert_eq!(c["complete"], true);
            assert_eq!(
                c["not_applicable"],
                json!([
                    "cebench_interp_delta_vs_baseline",
                    "cebench_interpretability_max"
                ])
            );
        } else {
            assert_eq!(c["not_applicable"], json!([]));
        }
    }
}

#[test]
fn selection_json_names_the_representative_run_and_its_eval() {
    let sel = select(
        &families(),
        &SelectConfig {
            uncertainty: UncertaintyMode::Lcb,
            ..strict()
        },
    )
    .unwrap();
    let doc = strict_selection_json(&sel, &[citation()]);
    validate_selection(&doc).unwrap();
    assert_eq!(doc["schema_version"], "1.1");
    let rep = &doc["selected"]["representative"];
    assert_eq!(rep["source"], "husai");
    assert_eq!(rep["summary_paths_derived"], false);
    assert_eq!(
        rep["run"],
        json!({"campaign": "toy", "run_id": "t0", "manifest_sha256": hex("t0"), "heldout_fvu": 0.4})
    );
    assert_eq!(rep["eval_run"]["run_id"], "eval-of-t0");
    assert_eq!(rep["eval_run"]["gate_k"], 5);
    assert_eq!(
        doc["selected"]["group_metrics"]["not_applicable"],
        json!([
            "cebench_interp_delta_vs_baseline",
            "cebench_interpretability_max"
        ])
    );
    assert!(
        doc["rationale"]
            .as_str()
            .unwrap()
            .contains("the gate's --candidate results/toy/t0"),
        "{}",
        doc["rationale"]
    );
    // What the gate and claims read.
    let record = husai_core::select::record::selected_from_json(&doc, "selection.json").unwrap();
    assert_eq!(record.representative.run.as_ref().unwrap().run_id, "t0");
    assert_eq!(record.representative.eval_run.unwrap().run_id, "eval-of-t0");
    let ci_low = record.group_metrics.saebench_delta.ci_low.unwrap();
    assert!(ci_low < record.group_metrics.saebench_delta.mean.unwrap());

    // The schema refuses a mutated husai representative.
    let mut broken = doc.clone();
    broken["selected"]["representative"]["run"]["manifest_sha256"] = json!("not a digest");
    broken["selected"]["representative"]["eval_run"]["summary"] = json!("other.json");
    let violations = validate_selection(&broken).unwrap_err();
    assert_eq!(violations.len(), 2, "{violations:?}");

    // The Markdown names the train run to gate.
    let md = husai_core::select::output::strict_markdown(&sel, "20261128T000000Z-0000000000000000");
    assert!(
        md.contains("gate it with `husai-audit gate --candidate results/toy/t0`"),
        "{md}"
    );
    assert!(md.contains("CE-Bench does not apply (n/a)"), "{md}");
}
