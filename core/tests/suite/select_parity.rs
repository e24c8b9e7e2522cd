//! `--parity` reproduces upstream's recorded selections exactly (FIXTURES.md outcomes 3 and 4, and the cycle5
//! selector runs with routed and assignment inputs at min-seeds 3 and 2).
//!
//! Each test runs our selector on the fixture inputs and compares, candidate by candidate in rank order, every
//! number upstream recorded (scores, normalised components, group statistics, seed-level scores) for bit equality.

use std::path::PathBuf;

use husai_core::legacy::json::LegacyValue;
use husai_core::legacy::selection::{LegacyCandidate, read_selection_summary};
use husai_core::select::output::{ParityInputs, ParityRunMetadata, parity_outputs};
use husai_core::select::{InputRole, Mode, SelectConfig, Selection, load_input, select};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/husai-evidence")
}

fn run(inputs: &[(InputRole, &str)], config: &SelectConfig) -> Selection {
    let mut ordered: Vec<&(InputRole, &str)> = inputs.iter().collect();
    ordered.sort_by_key(|(role, _)| role.parity_order());
    let loaded: Vec<_> = ordered
        .iter()
        .map(|(role, rel)| load_input(&fixtures().join(rel), rel, *role, Mode::Parity).unwrap())
        .collect();
    select(&loaded, config).unwrap()
}

fn parity_config(min_seeds: i64) -> SelectConfig {
    SelectConfig {
        require_both_external: true,
        min_seeds_per_group: min_seeds,
        ..SelectConfig::parity_defaults()
    }
}

/// Every numeric field of `ours` equals upstream's, bit for bit; paths differ only in `source_results`.
fn assert_same_candidate(
    ours: &serde_json::Value,
    theirs: &LegacyCandidate,
    raw: &LegacyValue,
    at: &str,
) {
    assert_eq!(ours["condition_id"], theirs.condition_id.as_str(), "{at}");
    assert_eq!(ours["source"], theirs.source.as_str(), "{at}");
    assert_eq!(ours["seed"].as_i64(), theirs.seed, "{at}");
    assert_eq!(
        ours["checkpoint"].as_str(),
        theirs.checkpoint.as_deref(),
        "{at}"
    );
    assert_eq!(
        ours["saebench_summary_path"].as_str(),
        theirs.saebench_summary_path.as_deref(),
        "{at}"
    );
    assert_eq!(
        ours["cebench_summary_path"].as_str(),
        theirs.cebench_summary_path.as_deref(),
        "{at}"
    );
    assert_eq!(ours["hook_layer"].as_i64(), theirs.hook_layer, "{at}");
    assert_eq!(
        ours["hook_name"].as_str(),
        theirs.hook_name.as_deref(),
        "{at}"
    );
    assert_eq!(ours["seed_count"].as_i64(), theirs.seed_count, "{at}");
    assert_eq!(
        ours["representative_condition_id"].as_str(),
        theirs.representative_condition_id.as_deref(),
        "{at}"
    );
    assert_eq!(
        ours["selection"]["joint_score"].as_f64(),
        theirs.joint_score,
        "{at} joint_score"
    );
    assert_eq!(
        ours["selection"]["is_pareto"].as_bool(),
        theirs.is_pareto,
        "{at}"
    );
    // Every metric key upstream wrote, including _mean/_std/_ci95_low/_ci95_high/_n.
    let their_metrics = theirs.metrics.as_object().unwrap();
    let our_metrics = ours["metrics"].as_object().unwrap();
    assert_eq!(our_metrics.len(), their_metrics.len(), "{at} metric keys");
    for (key, value) in their_metrics {
        assert_eq!(
            our_metrics[key].as_f64(),
            value.as_f64(),
            "{at} metrics.{key}"
        );
    }
    let their_components = raw
        .get_path(&["selection", "normalized_components"])
        .unwrap();
    for (key, value) in their_components.as_object().unwrap() {
        assert_eq!(
            ours["selection"]["normalized_components"][key].as_f64(),
            value.as_f64(),
            "{at} {key}"
        );
    }
    let their_seeds = raw
        .get("seed_candidates")
        .and_then(LegacyValue::as_array)
        .unwrap_or(&[]);
    let our_seeds = ours["seed_candidates"]
        .as_array()
        .map_or(&[][..], |v| &v[..]);
    assert_eq!(our_seeds.len(), their_seeds.len(), "{at} seed_candidates");
    for (o, t) in our_seeds.iter().zip(their_seeds) {
        assert_eq!(
            o["seed"].as_i64(),
            t.get("seed")
                .and_then(LegacyValue::as_f64)
                .map(|s| s as i64)
        );
        assert_eq!(
            o["joint_score"].as_f64(),
            t.get("joint_score").and_then(LegacyValue::as_f64),
            "{at}"
        );
    }
}

fn compare_with_upstream(sel: &Selection, summary_rel: &str) {
    let path = fixtures().join(summary_rel);
    let theirs = read_selection_summary(&path).unwrap();
    let raw = husai_core::legacy::json::read_file(&path).unwrap();
    let meta = ParityRunMetadata {
        timestamp_utc: "2026-11-28T00:00:00+00:00".into(),
        git_commit: None,
        command: "test".into(),
        run_id: "run_test".into(),
    };
    let out = parity_outputs(
        sel,
        &meta,
        &ParityInputs::default(),
        "results/decisions/run_test",
    );
    let counts = &out.selection_summary["counts"];
    assert_eq!(
        counts["total_candidates"].as_i64(),
        Some(theirs.counts.total_candidates)
    );
    assert_eq!(
        counts["eligible_seed_candidates"].as_i64(),
        Some(theirs.counts.eligible_seed_candidates)
    );
    assert_eq!(
        counts["eligible_candidates"].as_i64(),
        Some(theirs.counts.eligible_candidates)
    );
    assert_eq!(
        counts["pareto_count"].as_i64(),
        Some(theirs.counts.pareto_count)
    );
    let ranked = out.candidate_table.as_array().unwrap();
    let raw_ranked = raw
        .get("ranked_candidates")
        .and_then(LegacyValue::as_array)
        .unwrap();
    assert_eq!(ranked.len(), theirs.ranked.len());
    for (i, ((ours, t), r)) in ranked
        .iter()
        .zip(&theirs.ranked)
        .zip(raw_ranked)
        .enumerate()
    {
        assert_same_candidate(ours, t, r, &format!("{summary_rel} rank {i}"));
    }
    assert_same_candidate(
        &out.selected_candidate,
        &theirs.selected,
        raw.get("selected_candidate").unwrap(),
        "selected",
    );
    assert_eq!(
        out.pareto_front.as_array().unwrap().len(),
        theirs.pareto_front.len()
    );
}

const FRONTIER: &str = "cycle3_queue_final/frontier_multiseed_results_run_20260214T202538Z.json";
const SCALING: &str = "cycle3_queue_run_20260215T165724Z/scaling_results.json";
const MATRYOSHKA: &str = "cycle4_followups_run_20260215T190004Z/matryoshka/results.json";

#[test]
fn outcome_3_grouped_lcb() {
    let sel = run(
        &[
            (InputRole::Frontier, FRONTIER),
            (InputRole::Scaling, SCALING),
        ],
        &parity_config(3),
    );
    assert_eq!(
        (
            sel.rows.len(),
            sel.eligible.len(),
            sel.candidates.len(),
            sel.pareto_count()
        ),
        (44, 32, 8, 3)
    );
    let selected = sel.selected();
    assert_eq!(selected.condition, "topk");
    assert_eq!(
        sel.rows[selected.representative].condition_id,
        "topk_seed123"
    );
    assert_eq!(selected.metrics.saebench_delta, Some(-0.04478959689939781));
    assert_eq!(
        selected.metrics.cebench_interp_delta_vs_baseline,
        Some(-40.467037470119465)
    );
    // The d137ac4 output of the day replaced the grouped `selection` block, so compare what it kept.
    let theirs = read_selection_summary(
        &fixtures().join("cycle3_queue_run_20260215T165724Z/release_selection_summary.json"),
    )
    .unwrap();
    assert_eq!(theirs.counts.total_candidates, 44);
    assert_eq!(theirs.selected.condition_id, "topk");
    for key in [
        "saebench_delta",
        "cebench_interp_delta_vs_baseline",
        "train_explained_variance",
        "saebench_delta_ci95_high",
    ] {
        let ours = parity_outputs(
            &sel,
            &ParityRunMetadata {
                timestamp_utc: String::new(),
                git_commit: None,
                command: String::new(),
                run_id: String::new(),
            },
            &ParityInputs::default(),
            "",
        );
        assert_eq!(
            ours.selected_candidate["metrics"][key].as_f64(),
            theirs.selected.metric(key),
            "{key}"
        );
    }
}

#[test]
fn outcome_4_failed_matryoshka_family_added() {
    // The matryoshka file is given last on the command line but, as upstream, processed with the frontier files.
    let sel = run(
        &[
            (InputRole::Frontier, FRONTIER),
            (InputRole::Scaling, SCALING),
            (InputRole::Frontier, MATRYOSHKA),
        ],
        &parity_config(3),
    );
    assert_eq!(
        (
            sel.rows.len(),
            sel.eligible.len(),
            sel.candidates.len(),
            sel.pareto_count()
        ),
        (47, 32, 8, 3)
    );
    assert_eq!(sel.selected().condition, "topk");
    compare_with_upstream(
        &sel,
        "cycle4_followups_run_20260215T190004Z/selector/selection_summary.json",
    );
}

fn cycle5_inputs() -> Vec<(InputRole, String)> {
    let base = "cycle5_external_push_run_20260215T232351Z";
    let mut inputs = vec![(InputRole::Frontier, FRONTIER.to_string())];
    for run in [
        "20260215T232359Z",
        "20260215T233353Z",
        "20260215T234257Z",
        "20260215T235219Z",
        "20260216T000156Z",
    ] {
        inputs.push((
            InputRole::Frontier,
            format!("{base}/routed/run_{run}_results.json"),
        ));
    }
    inputs.push((InputRole::Scaling, SCALING.to_string()));
    for run in ["20260216T001059Z", "20260216T005618Z"] {
        inputs.push((
            InputRole::Assignment,
            format!("{base}/assignment/run_{run}_results.json"),
        ));
    }
    inputs
}

#[test]
fn cycle5_routed_and_assignment_min3_and_min2() {
    let inputs = cycle5_inputs();
    let refs: Vec<(InputRole, &str)> = inputs.iter().map(|(r, p)| (*r, p.as_str())).collect();
    let sel = run(&refs, &parity_config(3));
    assert_eq!(
        (
            sel.rows.len(),
            sel.eligible.len(),
            sel.candidates.len(),
            sel.pareto_count()
        ),
        (71, 59, 9, 4)
    );
    let routed = sel
        .candidates
        .iter()
        .find(|c| c.condition == "routed_topk")
        .unwrap();
    assert_eq!(
        routed.members.len(),
        15,
        "upstream pools 5 routed configs into one 15-row group"
    );
    compare_with_upstream(
        &sel,
        "cycle5_external_push_run_20260215T232351Z/selector/selection_summary.json",
    );
    let sel = run(&refs, &parity_config(2));
    assert_eq!(sel.candidates.len(), 15);
    compare_with_upstream(
        &sel,
        "cycle5_external_push_run_20260215T232351Z/selector_min2/selection_summary.json",
    );
}

/// Runs parity on fixture files recorded under the paths upstream's run used (taken from its `config`, in order),
/// and checks the written `selection_summary.json` (and `selected_candidate.json`, when given) byte for byte.
/// Only `run_metadata` is copied from upstream; keys that upstream's version of the day did not write yet are
/// removed from ours first.
fn assert_bytes_match(
    summary_rel: &str,
    selected_rel: Option<&str>,
    files: &[(InputRole, &str)],
    min_seeds: i64,
    absent_keys: &[&str],
) {
    let upstream_text = std::fs::read_to_string(fixtures().join(summary_rel)).unwrap();
    let upstream: serde_json::Value = serde_json::from_str(&upstream_text).unwrap();
    let paths = |key: &str| -> Vec<String> {
        upstream["config"][key]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let recorded = ParityInputs {
        frontier_results: paths("frontier_results"),
        scaling_results: paths("scaling_results"),
        assignment_results: paths("assignment_results"),
    };
    let mut displays = [
        recorded.frontier_results.iter(),
        recorded.scaling_results.iter(),
        recorded.assignment_results.iter(),
    ];
    let loaded: Vec<_> = files
        .iter()
        .map(|(role, rel)| {
            let display = displays[role.parity_order() as usize].next().unwrap();
            load_input(&fixtures().join(rel), display, *role, Mode::Parity).unwrap()
        })
        .collect();
    let sel = select(&loaded, &parity_config(min_seeds)).unwrap();
    let meta = ParityRunMetadata {
        timestamp_utc: upstream["run_metadata"]["timestamp_utc"]
            .as_str()
            .unwrap()
            .into(),
        git_commit: upstream["run_metadata"]["git_commit"]
            .as_str()
            .map(str::to_string),
        command: upstream["run_metadata"]["command"].as_str().unwrap().into(),
        run_id: upstream["run_metadata"]["run_id"].as_str().unwrap().into(),
    };
    let outputs = parity_outputs(&sel, &meta, &recorded, "unused");
    if let Some(rel) = selected_rel {
        let text = husai_core::select::output::python_json_text(&outputs.selected_candidate);
        let theirs = std::fs::read_to_string(fixtures().join(rel)).unwrap();
        assert!(text == theirs, "{rel} differs from upstream's bytes");
    }
    let mut out = outputs.selection_summary;
    for key in absent_keys {
        match key.split_once('.') {
            Some((outer, inner)) => out[outer].as_object_mut().unwrap().shift_remove(inner),
            None => out.as_object_mut().unwrap().shift_remove(*key),
        };
    }
    let ours = husai_core::select::output::python_json_text(&out);
    if ours != upstream_text {
        let first = ours
            .lines()
            .zip(upstream_text.lines())
            .position(|(a, b)| a != b);
        panic!(
            "{summary_rel}: first differing line {first:?}: {:?}",
            first.map(|i| (ours.lines().nth(i), upstream_text.lines().nth(i)))
        );
    }
}

#[test]
fn parity_json_is_byte_identical_to_upstream() {
    // cycle4 (476ac93): before `grouping_diagnostics` (af05c96) and `--assignment-results` (10c2789).
    assert_bytes_match(
        "cycle4_followups_run_20260215T190004Z/selector/selection_summary.json",
        Some("cycle4_followups_run_20260215T190004Z/selector/selected_candidate.json"),
        &[
            (InputRole::Frontier, FRONTIER),
            (InputRole::Frontier, MATRYOSHKA),
            (InputRole::Scaling, SCALING),
        ],
        3,
        &["grouping_diagnostics", "config.assignment_results"],
    );
    // cycle5 (10c2789): routed sweep and assignment inputs, min-seeds 3 and 2.
    let inputs = cycle5_inputs();
    let refs: Vec<(InputRole, &str)> = inputs.iter().map(|(r, p)| (*r, p.as_str())).collect();
    for (dir, min_seeds) in [("selector", 3), ("selector_min2", 2)] {
        let base = format!("cycle5_external_push_run_20260215T232351Z/{dir}");
        assert_bytes_match(
            &format!("{base}/selection_summary.json"),
            Some(&format!("{base}/selected_candidate.json")),
            &refs,
            min_seeds,
            &["grouping_diagnostics"],
        );
    }
}
