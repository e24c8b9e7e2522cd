//! Rendering a [`Selection`]: upstream's five files for `--parity`, and `selection.json` (schema
//! `schemas/selection.v1.json`) plus a Markdown summary for strict mode. The Pareto plot is in [`super::svg`].
//!
//! JSON we write never holds NaN or ±inf: a non-finite value is written as null (in strict mode it was already
//! treated as absent, and the row's `non_finite_metrics` lists it).

use serde_json::{Map, Value, json};

use crate::stats::{self, BootstrapSpec};

use super::group::{Candidate, MetricStats};
use super::rows::{MetricKey, Metrics, Row};
use super::score::{Evidence, Normalization, Range, Score, Weights};
use super::{Mode, Selection};

fn num(v: Option<f64>) -> Value {
    v.and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn opt_i64(v: Option<i64>) -> Value {
    v.map_or(Value::Null, Value::from)
}

fn opt_str(v: Option<&str>) -> Value {
    v.map_or(Value::Null, Value::from)
}

fn metrics_json(m: &Metrics) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("saebench_delta".into(), num(m.saebench_delta));
    map.insert(
        "cebench_interp_delta_vs_baseline".into(),
        num(m.cebench_interp_delta_vs_baseline),
    );
    map.insert(
        "cebench_interpretability_max".into(),
        num(m.cebench_interpretability_max),
    );
    map.insert(
        "train_explained_variance".into(),
        num(m.train_explained_variance),
    );
    map
}

fn weights_json(w: &Weights) -> Value {
    json!({"saebench": w.saebench, "cebench_delta": w.cebench_delta, "train_ev": w.train_ev})
}

fn components_json(s: &Score) -> Value {
    let mut map = Map::new();
    if let Some(v) = s.saebench_norm {
        map.insert("saebench_norm".into(), num(Some(v)));
    }
    if let Some(v) = s.cebench_delta_norm {
        map.insert("cebench_delta_norm".into(), num(Some(v)));
    }
    if let Some(v) = s.train_ev_norm {
        map.insert("train_ev_norm".into(), num(Some(v)));
    }
    Value::Object(map)
}

/// A seed row in upstream's key order (reference §2.2), without `selection`.
fn parity_row(row: &Row, source_override: Option<&str>) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(
        "source".into(),
        Value::from(source_override.unwrap_or(row.source.as_str())),
    );
    map.insert(
        "source_results".into(),
        Value::from(row.source_results.as_str()),
    );
    map.insert("row_index".into(), Value::from(row.row_index));
    map.insert(
        "condition_id".into(),
        Value::from(row.condition_id.as_str()),
    );
    map.insert(
        "architecture".into(),
        Value::from(row.architecture.as_str()),
    );
    map.insert("seed".into(), opt_i64(row.seed));
    map.insert("hook_layer".into(), opt_i64(row.hook_layer));
    map.insert("hook_name".into(), opt_str(row.hook_name.as_deref()));
    map.insert("checkpoint".into(), Value::from(row.checkpoint.as_str()));
    map.insert(
        "saebench_summary_path".into(),
        opt_str(row.saebench_summary_path.as_deref()),
    );
    map.insert(
        "cebench_summary_path".into(),
        opt_str(row.cebench_summary_path.as_deref()),
    );
    map.insert("metrics".into(), Value::Object(metrics_json(&row.metrics)));
    map.insert(
        "returncodes".into(),
        json!({"saebench": opt_i64(row.saebench_returncode), "cebench": opt_i64(row.cebench_returncode)}),
    );
    if let Some(a) = &row.assignment {
        map.insert(
            "assignment".into(),
            json!({
                "lambda_consistency": num(Some(a.lambda_consistency)),
                "internal_lcb": num(a.internal_lcb),
                "ev_drop": num(a.ev_drop),
            }),
        );
    }
    map
}

/// Python's `str(seed)` ordering key for `seed_candidates` (lexicographic: 1011 < 123 < 42).
fn python_str_seed(seed: Option<i64>) -> String {
    seed.map_or_else(|| "None".to_string(), |s| s.to_string())
}

/// One candidate of the final population in upstream's shape.
fn parity_candidate(sel: &Selection, index: usize) -> Value {
    let c = &sel.candidates[index];
    let score = &sel.scores[index];
    let rep = &sel.rows[c.representative];
    let is_pareto = sel.is_pareto[index];
    let Some(stats) = c.stats.as_ref() else {
        let mut map = parity_row(rep, None);
        map.insert(
            "selection".into(),
            json!({
                "joint_score": num(Some(score.joint)),
                "normalized_components": components_json(score),
                "weights": weights_json(&sel.config.weights),
                "is_pareto": is_pareto,
            }),
        );
        return Value::Object(map);
    };
    let mut map = parity_row(rep, Some("grouped"));
    map.insert("condition_id".into(), Value::from(c.condition.as_str()));
    let mut metrics = metrics_json(&c.metrics);
    for (key, s) in MetricKey::AGGREGATION_ORDER.iter().zip(stats.iter()) {
        let k = key.as_str();
        metrics.insert(format!("{k}_mean"), num(s.mean));
        metrics.insert(format!("{k}_std"), num(s.std));
        metrics.insert(format!("{k}_ci95_low"), num(s.ci95_low));
        metrics.insert(format!("{k}_ci95_high"), num(s.ci95_high));
        metrics.insert(format!("{k}_n"), Value::from(s.n));
    }
    map.insert("metrics".into(), Value::Object(metrics));
    map.insert(
        "selection".into(),
        json!({
            "grouped_from_seed_candidates": c.members.len(),
            "uncertainty_mode": sel.config.uncertainty.as_str(),
            "representative_seed": opt_i64(rep.seed),
            "joint_score": num(Some(score.joint)),
            "normalized_components": components_json(score),
            "weights": weights_json(&sel.config.weights),
            "is_pareto": is_pareto,
        }),
    );
    map.insert(
        "sources".into(),
        Value::from(c.sources.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
    );
    map.insert("group_id".into(), Value::from(c.condition.as_str()));
    map.insert(
        "representative_condition_id".into(),
        Value::from(rep.condition_id.as_str()),
    );
    map.insert("seed_count".into(), Value::from(c.members.len()));
    let mut members = c.members.clone();
    members.sort_by_key(|&i| python_str_seed(sel.rows[i].seed));
    let seeds: Vec<Value> = members
        .iter()
        .map(|&i| {
            let row = &sel.rows[i];
            json!({
                "seed": opt_i64(row.seed),
                "condition_id": row.condition_id,
                "checkpoint": row.checkpoint,
                "joint_score": num(sel.seed_score(i).map(|s| s.joint)),
                "metrics": Value::Object(metrics_json(&row.metrics)),
            })
        })
        .collect();
    map.insert("seed_candidates".into(), Value::Array(seeds));
    Value::Object(map)
}

/// `run_metadata` of upstream's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct ParityRunMetadata {
    pub timestamp_utc: String,
    pub git_commit: Option<String>,
    pub command: String,
    pub run_id: String,
}

/// The input paths as upstream's `config` records them, per flag.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParityInputs {
    pub frontier_results: Vec<String>,
    pub scaling_results: Vec<String>,
    pub assignment_results: Vec<String>,
}

/// Upstream's five outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct ParityOutputs {
    pub selection_summary: Value,
    pub selected_candidate: Value,
    pub pareto_front: Value,
    pub candidate_table: Value,
    pub summary_md: String,
}

fn parity_diagnostics(sel: &Selection) -> Value {
    let Some(d) = &sel.diagnostics else {
        return Value::Null;
    };
    let kept: Vec<Value> = d
        .kept
        .iter()
        .map(|&k| {
            let c = &sel.candidates[k];
            let mut ids: Vec<&str> = c
                .members
                .iter()
                .map(|&i| sel.rows[i].condition_id.as_str())
                .collect();
            ids.sort();
            json!({"group_id": c.condition, "seed_count": c.members.len(), "condition_ids": ids})
        })
        .collect();
    let dropped: Vec<Value> = d
        .dropped
        .iter()
        .map(|g| {
            json!({
                "group_id": g.group_id,
                "seed_count": g.seed_count,
                "condition_ids": g.condition_ids,
                "sources": g.sources.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "total_groups": d.total_groups,
        "min_seeds_per_group": d.min_seeds_per_group,
        "kept_group_count": d.kept.len(),
        "dropped_group_count": d.dropped.len(),
        "kept_groups": kept,
        "dropped_groups": dropped,
    })
}

/// Renders upstream's `selection_summary.json`, `selected_candidate.json`, `pareto_front.json`,
/// `candidate_table.json` and `summary.md` (HEAD layout, with `grouping_diagnostics`).
pub fn parity_outputs(
    sel: &Selection,
    meta: &ParityRunMetadata,
    inputs: &ParityInputs,
    artifact_dir: &str,
) -> ParityOutputs {
    let cfg = &sel.config;
    let ranked: Vec<Value> = sel
        .ranked
        .iter()
        .map(|&i| parity_candidate(sel, i))
        .collect();
    let pareto: Vec<Value> = (0..sel.candidates.len())
        .filter(|&i| sel.is_pareto[i])
        .map(|i| parity_candidate(sel, i))
        .collect();
    let selected = ranked[0].clone();
    let summary = json!({
        "run_metadata": {
            "timestamp_utc": meta.timestamp_utc,
            "git_commit": meta.git_commit,
            "command": meta.command,
            "run_id": meta.run_id,
        },
        "config": {
            "frontier_results": inputs.frontier_results,
            "scaling_results": inputs.scaling_results,
            "assignment_results": inputs.assignment_results,
            "min_saebench_delta": cfg.min_saebench_delta,
            "min_cebench_delta": cfg.min_cebench_delta,
            "require_both_external": cfg.require_both_external,
            "group_by_condition": cfg.group_by_condition,
            "uncertainty_mode": cfg.uncertainty.as_str(),
            "min_seeds_per_group": cfg.min_seeds_per_group,
            "weight_saebench": cfg.weights.saebench,
            "weight_cebench": cfg.weights.cebench_delta,
            "weight_train_ev": cfg.weights.train_ev,
        },
        "counts": {
            "total_candidates": sel.rows.len(),
            "eligible_seed_candidates": sel.eligible.len(),
            "eligible_candidates": sel.candidates.len(),
            "pareto_count": sel.pareto_count(),
        },
        "grouping_diagnostics": parity_diagnostics(sel),
        "selected_candidate": selected,
        "pareto_front": pareto,
        "ranked_candidates": ranked,
    });
    let summary_md = parity_markdown(sel, meta, artifact_dir);
    ParityOutputs {
        selected_candidate: summary["selected_candidate"].clone(),
        pareto_front: summary["pareto_front"].clone(),
        candidate_table: summary["ranked_candidates"].clone(),
        selection_summary: summary,
        summary_md,
    }
}

/// Python `str()` of a JSON-ish scalar, as upstream's f-strings printed them.
fn py(v: &Value) -> String {
    match v {
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Number(n) => match n.as_i64() {
            Some(i) if !n.is_f64() => i.to_string(),
            _ => crate::legacy::pyrepr::float_repr(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Upstream's `summary.md`. No selector `summary.md` survives in the evidence, so the layout follows the line list
/// of reference §2.8 (and Python's `str()` of every value) rather than a byte-checked original.
fn parity_markdown(sel: &Selection, meta: &ParityRunMetadata, artifact_dir: &str) -> String {
    let selected = parity_candidate(sel, sel.ranked[0]);
    let m = &selected["metrics"];
    let grouped = sel.config.group_by_condition;
    let mut out = String::new();
    out.push_str("# Release Candidate Selection\n\n");
    out.push_str(&format!("- Run ID: `{}`\n", meta.run_id));
    out.push_str(&format!(
        "- Selection mode: `{}`\n",
        if grouped { "grouped" } else { "seed" }
    ));
    out.push_str(&format!(
        "- Uncertainty mode: `{}`\n",
        sel.config.uncertainty.as_str()
    ));
    out.push_str(&format!(
        "- Eligible seed candidates: `{}`\n",
        sel.eligible.len()
    ));
    out.push_str(&format!(
        "- Eligible candidates: `{}`\n",
        sel.candidates.len()
    ));
    out.push_str(&format!("- Pareto candidates: `{}`\n", sel.pareto_count()));
    if let Some(d) = &sel.diagnostics {
        out.push_str(&format!("- Grouped total groups: `{}`\n", d.total_groups));
        out.push_str(&format!("- Grouped kept groups: `{}`\n", d.kept.len()));
        out.push_str(&format!(
            "- Grouped dropped groups: `{}`\n",
            d.dropped.len()
        ));
        let ids: Vec<&str> = d.dropped.iter().map(|g| g.group_id.as_str()).collect();
        out.push_str(&format!("- Dropped group ids: `{}`\n", ids.join(", ")));
    }
    out.push_str("\n## Selected Candidate\n\n");
    let line = |label: &str, v: &Value| format!("- {label}: `{}`\n", py(v));
    out.push_str(&line("source", &selected["source"]));
    out.push_str(&line("condition_id", &selected["condition_id"]));
    out.push_str(&line(
        "group_id",
        selected.get("group_id").unwrap_or(&Value::Null),
    ));
    out.push_str(&line("architecture", &selected["architecture"]));
    out.push_str(&line("seed", &selected["seed"]));
    out.push_str(&line(
        "seed_count",
        selected.get("seed_count").unwrap_or(&Value::Null),
    ));
    out.push_str(&line("checkpoint", &selected["checkpoint"]));
    out.push_str(&line(
        "saebench_summary_path",
        &selected["saebench_summary_path"],
    ));
    out.push_str(&line(
        "cebench_summary_path",
        &selected["cebench_summary_path"],
    ));
    let get = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    out.push_str(&line("saebench_delta", &get("saebench_delta")));
    out.push_str(&line(
        "saebench_delta_ci95_low",
        &get("saebench_delta_ci95_low"),
    ));
    out.push_str(&line(
        "saebench_delta_ci95_high",
        &get("saebench_delta_ci95_high"),
    ));
    out.push_str(&line(
        "cebench_interp_delta_vs_baseline",
        &get("cebench_interp_delta_vs_baseline"),
    ));
    out.push_str(&line(
        "cebench_interp_delta_vs_baseline_ci95_low",
        &get("cebench_interp_delta_vs_baseline_ci95_low"),
    ));
    out.push_str(&line(
        "cebench_interp_delta_vs_baseline_ci95_high",
        &get("cebench_interp_delta_vs_baseline_ci95_high"),
    ));
    out.push_str(&line(
        "cebench_interpretability_max",
        &get("cebench_interpretability_max"),
    ));
    out.push_str(&line(
        "train_explained_variance",
        &get("train_explained_variance"),
    ));
    out.push_str(&line("joint_score", &selected["selection"]["joint_score"]));
    out.push_str("\n## Artifacts\n\n");
    for name in [
        "selection_summary.json",
        "selected_candidate.json",
        "pareto_front.json",
        "candidate_table.json",
    ] {
        out.push_str(&format!("- `{artifact_dir}/{name}`\n"));
    }
    out
}

/// An input cited by a strict selection: where it is, its digest, and the signed run it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct InputCitation {
    /// `frontier`, `scaling`, `routed`, `matryoshka` or `assignment` (an upstream results file), `husai_train` (a
    /// husai train run's `metrics.json`) or `husai_eval` (an ood-stress eval run's summary).
    pub role: String,
    pub path: String,
    pub sha256: String,
    pub campaign: Option<String>,
    pub run_id: Option<String>,
    /// The file's name inside its run (the statement subject).
    pub subject: Option<String>,
}

fn range_json(r: Option<Range>) -> Value {
    r.map_or(
        Value::Null,
        |r| json!({"lo": num(Some(r.lo)), "hi": num(Some(r.hi))}),
    )
}

fn normalization_json(n: &Normalization) -> Value {
    json!({
        "saebench_delta": range_json(n.saebench),
        "cebench_interp_delta_vs_baseline": range_json(n.cebench_delta),
        "train_explained_variance": range_json(n.train_ev),
    })
}

fn stats_json(s: &MetricStats) -> Value {
    json!({
        "mean": num(s.mean),
        "sd": num(s.std),
        "ci_low": num(s.ci95_low),
        "ci_high": num(s.ci95_high),
        "n": s.n,
    })
}

fn non_finite(m: &Metrics) -> Vec<&'static str> {
    MetricKey::AGGREGATION_ORDER
        .iter()
        .filter(|k| matches!(m.get(**k), Some(v) if !v.is_finite()))
        .map(|k| k.as_str())
        .collect()
}

fn run_json(run: &super::husai::RunIdentity) -> Value {
    json!({"campaign": run.campaign, "run_id": run.run_id, "manifest_sha256": run.manifest_sha256})
}

/// A husai row's train run (`run`) and the ood-stress eval run it used (`eval_run`); null for upstream rows.
fn husai_runs_json(row: &Row) -> (Value, Value) {
    let Some(h) = &row.husai else {
        return (Value::Null, Value::Null);
    };
    let eval = h.eval.as_ref().map_or(Value::Null, |e| {
        let mut v = run_json(&e.run);
        v["summary"] = Value::from(super::husai::OOD_SUMMARY);
        v["gate_k"] = Value::from(e.gate_k);
        v["id_tasks"] = Value::from(e.id_tasks);
        v
    });
    let mut run = run_json(&h.run);
    run["heldout_fvu"] = num(h.heldout_fvu);
    (run, eval)
}

fn not_applicable(c: &Candidate) -> Vec<&'static str> {
    c.evidence()
        .not_applicable()
        .iter()
        .map(|k| k.as_str())
        .collect()
}

fn representative_json(sel: &Selection, c: &Candidate) -> Value {
    let row = &sel.rows[c.representative];
    let (run, eval_run) = husai_runs_json(row);
    json!({
        "condition_id": row.condition_id,
        "seed": opt_i64(row.seed),
        "source": row.source.as_str(),
        "source_results": row.source_results,
        "row_index": row.row_index,
        "architecture": row.architecture,
        "checkpoint": row.checkpoint,
        "hook_layer": opt_i64(row.hook_layer),
        "hook_name": opt_str(row.hook_name.as_deref()),
        "saebench_summary_path": opt_str(row.saebench_summary_path.as_deref()),
        "cebench_summary_path": opt_str(row.cebench_summary_path.as_deref()),
        "summary_paths_derived": row.assignment.is_none() && row.husai.is_none(),
        "metrics": Value::Object(metrics_json(&row.metrics.finite_only())),
        "non_finite_metrics": non_finite(&row.metrics),
        "seed_joint_score": num(sel.seed_score(c.representative).map(|s| s.joint)),
        "run": run,
        "eval_run": eval_run,
    })
}

fn group_metrics_json(sel: &Selection, c: &Candidate) -> Value {
    let mut map = Map::new();
    match &c.stats {
        Some(stats) => {
            for (key, s) in MetricKey::AGGREGATION_ORDER.iter().zip(stats.iter()) {
                let mut entry = stats_json(s);
                entry["ranking_value"] = num(c.metrics.get(*key));
                map.insert(key.as_str().into(), entry);
            }
        }
        None => {
            for key in MetricKey::AGGREGATION_ORDER {
                let v = c.metrics.get(key);
                map.insert(
                    key.as_str().into(),
                    json!({"mean": num(v), "sd": Value::Null, "ci_low": Value::Null, "ci_high": Value::Null,
                           "n": usize::from(v.is_some()), "ranking_value": num(v)}),
                );
            }
        }
    }
    map.insert(
        "basis".into(),
        Value::from(if c.is_group() {
            sel.config.uncertainty.as_str()
        } else {
            "seed"
        }),
    );
    map.insert("not_applicable".into(), Value::from(not_applicable(c)));
    Value::Object(map)
}

fn seeds_of(sel: &Selection, c: &Candidate) -> Vec<i64> {
    let mut seeds: Vec<i64> = c.members.iter().filter_map(|&i| sel.rows[i].seed).collect();
    seeds.sort_unstable();
    seeds
}

fn candidate_row_json(sel: &Selection, index: usize, rank: usize) -> Value {
    let c = &sel.candidates[index];
    let s = &sel.scores[index];
    json!({
        "rank": rank,
        "candidate_id": c.id,
        "condition": c.condition,
        "config_sha256": c.config_sha256,
        "sources": c.sources.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "seed_count": c.members.len(),
        "seeds": seeds_of(sel, c),
        "complete": super::score::is_complete(&c.metrics, c.evidence()),
        "not_applicable": not_applicable(c),
        "is_pareto": sel.is_pareto[index],
        "joint_score": num(Some(s.joint)),
        "normalized_components": components_json(s),
        "values": Value::Object(metrics_json(&c.metrics)),
    })
}

/// Paired comparison of the selection with the runner-up on the seeds both have: the difference is bounded
/// directly (seed bootstrap of per-seed differences), not inferred from two separate bounds.
fn runner_up_comparison(sel: &Selection) -> Value {
    let Some(&second) = sel.ranked.get(1) else {
        return Value::Null;
    };
    let (a, b) = (sel.selected(), &sel.candidates[second]);
    if !a.is_group() || !b.is_group() {
        return Value::Null;
    }
    let mut out = Map::new();
    out.insert("runner_up".into(), Value::from(b.id.as_str()));
    let spec = BootstrapSpec::default();
    out.insert(
        "method".into(),
        Value::from(format!(
            "paired seed bootstrap of (selected - runner_up) on shared seeds; studentized (bootstrap-t) 95% interval, {} resamples, SplitMix64 seed {}",
            spec.resamples, spec.seed
        )),
    );
    for key in [MetricKey::SaebenchDelta, MetricKey::CebenchDelta] {
        if [a, b]
            .iter()
            .any(|c| c.evidence().not_applicable().contains(&key))
        {
            out.insert(
                key.as_str().into(),
                json!({"not_applicable": "husai runs have no CE-Bench measurement"}),
            );
            continue;
        }
        let mut pairs = Vec::new();
        let mut shared = Vec::new();
        for &i in &a.members {
            let ra = &sel.rows[i];
            let Some(j) = b
                .members
                .iter()
                .find(|&&j| sel.rows[j].seed.is_some() && sel.rows[j].seed == ra.seed)
            else {
                continue;
            };
            if let (Some(x), Some(y)) = (
                ra.metrics.get(key).filter(|v| v.is_finite()),
                sel.rows[*j].metrics.get(key).filter(|v| v.is_finite()),
            ) {
                pairs.push((x, y));
                shared.push(ra.seed.unwrap_or_default());
            }
        }
        shared.sort_unstable();
        let entry = match stats::paired_bootstrap_difference(&pairs, 0.95, spec) {
            Ok(interval) => json!({
                "shared_seeds": shared,
                "mean_difference": num(Some(interval.estimate)),
                "ci_low": num(Some(interval.low)),
                "ci_high": num(Some(interval.high)),
            }),
            Err(e) => json!({"shared_seeds": shared, "not_evaluated": e.to_string()}),
        };
        out.insert(key.as_str().into(), entry);
    }
    Value::Object(out)
}

/// The explicit ranking rule strict mode records.
pub const STRICT_TIE_BREAK: [&str; 6] = [
    "is_pareto (front members first)",
    "joint_score descending",
    "saebench_delta descending (missing last)",
    "cebench_interp_delta_vs_baseline descending (missing last)",
    "condition ascending",
    "config_sha256 ascending",
];

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.4}"))
}

/// The rationale, in words.
pub fn rationale(sel: &Selection) -> String {
    let c = sel.selected();
    let s = &sel.scores[sel.ranked[0]];
    let cfg = &sel.config;
    let mut parts = Vec::new();
    let kind = if c.is_group() {
        format!(
            "a group of {} distinct seed(s) ({})",
            c.members.len(),
            seeds_of(sel, c)
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        "a single seed row".to_string()
    };
    parts.push(format!(
        "Selected `{}`: {kind}, rank 1 of {} candidate(s).",
        c.id,
        sel.candidates.len()
    ));
    let any_husai = sel
        .candidates
        .iter()
        .any(|c| c.evidence() == Evidence::Husai);
    let husai = c.evidence() == Evidence::Husai;
    match (sel.is_pareto[sel.ranked[0]], any_husai) {
        (true, false) => parts.push(format!(
            "It is on the Pareto front of SAEBench delta vs CE-Bench delta ({} of {} candidates are; only candidates with both deltas can be).",
            sel.pareto_count(),
            sel.candidates.len()
        )),
        (false, false) => parts.push(
            "No candidate has both deltas, so the front is empty and the ranking fell back to the joint score."
                .to_string(),
        ),
        (true, true) => parts.push(format!(
            "It is on the Pareto front ({} of {} candidates are): no complete candidate dominates it on the delta axes both have. For husai runs the SAEBench delta is the ood-stress eval's mean in-distribution probe gap at gate_k (the offline analogue of SAEBench's sparse-probing best_minus_llm_auc, on synthetic tasks) and CE-Bench does not apply, so a husai candidate has that one axis; it is complete with it and its held-out train EV.",
            sel.pareto_count(),
            sel.candidates.len()
        )),
        (false, true) => parts.push(
            "No candidate is complete (both deltas; for a husai run its SAEBench analogue and held-out train EV), so the front is empty and the ranking fell back to the joint score."
                .to_string(),
        ),
    }
    let runner = sel
        .ranked
        .get(1)
        .map(|&i| (&sel.candidates[i], &sel.scores[i]));
    let among = if sel.is_pareto[sel.ranked[0]] {
        "among front members"
    } else {
        "overall"
    };
    parts.push(match runner {
        Some((r, rs)) => format!(
            "Its joint score {:.4} is the highest {among} (runner-up `{}`: {:.4}).",
            s.joint, r.id, rs.joint
        ),
        None => format!("It is the only candidate (joint score {:.4}).", s.joint),
    });
    if let Some(stats) = c.stats.as_ref() {
        let basis = match cfg.uncertainty {
            super::UncertaintyMode::Lcb => format!(
                "lower {:.0}% confidence bounds over seeds ({})",
                cfg.confidence * 100.0,
                cfg.lcb_method.describe()
            ),
            super::UncertaintyMode::Point => "means over seeds".to_string(),
        };
        if husai {
            parts.push(format!(
                "Ranking values are {basis}: SAEBench analogue (ood-stress ID gap) {} (mean {}, n={}), held-out train EV {} (mean {}, n={}); CE-Bench does not apply.",
                fmt(c.metrics.saebench_delta),
                fmt(stats[0].mean),
                stats[0].n,
                fmt(c.metrics.train_explained_variance),
                fmt(stats[2].mean),
                stats[2].n
            ));
        } else {
            parts.push(format!(
                "Ranking values are {basis}: SAEBench delta {} (mean {}, n={}), CE-Bench delta {} (mean {}, n={}).",
                fmt(c.metrics.saebench_delta),
                fmt(stats[0].mean),
                stats[0].n,
                fmt(c.metrics.cebench_interp_delta_vs_baseline),
                fmt(stats[1].mean),
                stats[1].n
            ));
        }
        let rep = &sel.rows[c.representative];
        let seed = rep
            .seed
            .map_or_else(|| "none".to_string(), |s| s.to_string());
        if husai {
            parts.push(format!(
                "The representative is seed {seed}, train run `{}` (the gate's --candidate results/{}), the group's best seed-level score; the group metrics are not that seed's own values.",
                rep.checkpoint, rep.checkpoint
            ));
        } else {
            parts.push(format!(
                "The representative checkpoint is seed {seed} (`{}`), the group's best seed-level score; the group metrics are not that seed's own values.",
                rep.condition_id
            ));
        }
    }
    if let Some(comparison) = runner_up_comparison(sel).as_object() {
        let describe = |key: MetricKey, label: &str| {
            let entry = &comparison[key.as_str()];
            if entry.get("not_applicable").is_some() {
                return format!("{label} not applicable");
            }
            match (
                entry["mean_difference"].as_f64(),
                entry["ci_low"].as_f64(),
                entry["ci_high"].as_f64(),
            ) {
                (Some(mean), Some(lo), Some(hi)) => format!(
                    "{label} {mean:+.4} [{lo:+.4}, {hi:+.4}] over {} shared seed(s)",
                    entry["shared_seeds"].as_array().map_or(0, Vec::len)
                ),
                _ => format!("{label} not evaluated (fewer than 2 shared seeds)"),
            }
        };
        parts.push(format!(
            "Paired seed-bootstrap difference to the runner-up (selected minus runner-up, 95%): {}; {}.",
            describe(MetricKey::SaebenchDelta, "SAEBench delta"),
            describe(MetricKey::CebenchDelta, "CE-Bench delta")
        ));
    }
    if let Some(d) = &sel.diagnostics
        && !d.dropped.is_empty()
    {
        parts.push(format!(
            "{} group(s) had fewer than {} distinct seeds and were not considered: {}.",
            d.dropped.len(),
            d.min_seeds_per_group,
            d.dropped
                .iter()
                .map(|g| format!("{} ({})", g.group_id, g.seed_count))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !sel.filtered.is_empty() {
        parts.push(format!(
            "{} of {} seed row(s) were filtered out before grouping (see filtered_rows).",
            sel.filtered.len(),
            sel.rows.len()
        ));
    }
    parts.push(
        "Scores are min-max normalised over this population, so adding or removing candidates can change them; the ranges are recorded."
            .to_string(),
    );
    parts.join(" ")
}

/// Strict mode's `selection.json` (schema `selection.v1`).
pub fn strict_selection_json(sel: &Selection, inputs: &[InputCitation]) -> Value {
    let cfg = &sel.config;
    debug_assert_eq!(cfg.mode, Mode::Strict);
    let selected_index = sel.ranked[0];
    let c = sel.selected();
    let ranked: Vec<Value> = sel
        .ranked
        .iter()
        .enumerate()
        .map(|(r, &i)| candidate_row_json(sel, i, r + 1))
        .collect();
    let front: Vec<Value> = sel
        .ranked
        .iter()
        .filter(|&&i| sel.is_pareto[i])
        .map(|&i| Value::from(sel.candidates[i].id.as_str()))
        .collect();
    let filtered: Vec<Value> = sel
        .filtered
        .iter()
        .map(|&(i, reason)| {
            let row = &sel.rows[i];
            json!({
                "condition_id": row.condition_id,
                "seed": opt_i64(row.seed),
                "source_results": row.source_results,
                "row_index": row.row_index,
                "reason": reason.as_str(),
            })
        })
        .collect();
    let diagnostics = sel.diagnostics.as_ref().map_or(Value::Null, |d| {
        json!({
            "total_groups": d.total_groups,
            "min_seeds_per_group": d.min_seeds_per_group,
            "seed_count_basis": "distinct seeds",
            "kept_group_count": d.kept.len(),
            "dropped_group_count": d.dropped.len(),
            "dropped_groups": d.dropped.iter().map(|g| json!({
                "group_id": g.group_id,
                "config_sha256": g.config_sha256,
                "seed_count": g.seed_count,
                "condition_ids": g.condition_ids,
                "sources": g.sources.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "duplicate_seed_rows": d.duplicates.iter().map(|dup| json!({
                "group_id": dup.group_id,
                "seed": dup.seed,
                "kept": format!("{} row {}", sel.rows[dup.kept_row].source_results, sel.rows[dup.kept_row].row_index),
                "duplicate": format!("{} row {}", sel.rows[dup.duplicate_row].source_results, sel.rows[dup.duplicate_row].row_index),
            })).collect::<Vec<_>>(),
        })
    });
    json!({
        "schema_version": "1.1",
        "mode": "strict",
        "config": {
            "group_by_condition": cfg.group_by_condition,
            "uncertainty_mode": cfg.uncertainty.as_str(),
            "lcb_method": cfg.lcb_method.describe(),
            "confidence": cfg.confidence,
            "min_seeds_per_group": cfg.min_seeds_per_group,
            "min_saebench_delta": cfg.min_saebench_delta,
            "min_cebench_delta": cfg.min_cebench_delta,
            "require_both_external": cfg.require_both_external,
            "weights": weights_json(&cfg.weights),
        },
        "inputs": inputs.iter().map(|i| json!({
            "role": i.role,
            "path": i.path,
            "sha256": i.sha256,
            "run": match (&i.campaign, &i.run_id) {
                (Some(campaign), Some(run_id)) => json!({"campaign": campaign, "run_id": run_id, "subject": i.subject}),
                _ => Value::Null,
            },
        })).collect::<Vec<_>>(),
        "counts": {
            "total_rows": sel.rows.len(),
            "eligible_rows": sel.eligible.len(),
            "candidates": sel.candidates.len(),
            "pareto_count": sel.pareto_count(),
        },
        "selected": {
            "candidate_id": c.id,
            "condition": c.condition,
            "config_sha256": c.config_sha256,
            "sources": c.sources.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "seed_count": c.members.len(),
            "seeds": seeds_of(sel, c),
            "joint_score": num(Some(sel.scores[selected_index].joint)),
            "is_pareto": sel.is_pareto[selected_index],
            "representative": representative_json(sel, c),
            "group_metrics": group_metrics_json(sel, c),
        },
        "runner_up_comparison": runner_up_comparison(sel),
        "pareto_front": front,
        "ranked": ranked,
        "normalization": normalization_json(&sel.normalization),
        "weights": weights_json(&cfg.weights),
        "tie_break": STRICT_TIE_BREAK,
        "grouping_diagnostics": diagnostics,
        "filtered_rows": filtered,
        "skipped_records": sel.skipped.iter().map(|s| json!({
            "source_results": s.source_results,
            "row_index": s.row_index,
            "reason": s.reason,
        })).collect::<Vec<_>>(),
        "rationale": rationale(sel),
    })
}

/// Strict mode's Markdown summary.
pub fn strict_markdown(sel: &Selection, run_id: &str) -> String {
    let c = sel.selected();
    let cfg = &sel.config;
    let mut out = String::new();
    out.push_str("# Release-candidate selection\n\n");
    out.push_str(&format!("- Run: `{run_id}`\n"));
    out.push_str(&format!(
        "- Mode: strict; candidates are {}; ranking basis `{}`",
        if cfg.group_by_condition {
            "groups keyed by condition and config hash, sized in distinct seeds"
        } else {
            "single seed rows"
        },
        if cfg.group_by_condition {
            cfg.uncertainty.as_str()
        } else {
            "seed"
        }
    ));
    if cfg.group_by_condition && cfg.uncertainty == super::UncertaintyMode::Lcb {
        out.push_str(&format!(
            " ({}, {:.0}% two-sided)",
            cfg.lcb_method.describe(),
            cfg.confidence * 100.0
        ));
    }
    out.push('\n');
    out.push_str(&format!(
        "- Rows: {} total, {} eligible; candidates: {}; Pareto front: {}\n",
        sel.rows.len(),
        sel.eligible.len(),
        sel.candidates.len(),
        sel.pareto_count()
    ));
    out.push_str(&format!(
        "- Weights: SAEBench {}, CE-Bench {}, train EV {}\n\n",
        cfg.weights.saebench, cfg.weights.cebench_delta, cfg.weights.train_ev
    ));
    out.push_str("## Selected\n\n");
    out.push_str(&rationale(sel));
    out.push_str("\n\n");
    let rep = &sel.rows[c.representative];
    out.push_str(&format!("- Candidate: `{}`\n", c.id));
    match &rep.husai {
        Some(h) => {
            out.push_str(&format!(
                "- Representative train run: `{}` (envelope sha256 `{}`); gate it with `husai-audit gate --candidate results/{}`\n",
                h.run.id(),
                h.run.manifest_sha256,
                h.run.id()
            ));
            out.push_str(&match &h.eval {
                Some(e) => format!(
                    "- Its ood-stress eval: `{}` (gate_k {}, {} ID tasks)\n",
                    e.run.id(),
                    e.gate_k,
                    e.id_tasks
                ),
                None => "- Its ood-stress eval: none given\n".to_string(),
            });
            let mut members: Vec<&Row> = c.members.iter().map(|&i| &sel.rows[i]).collect();
            members.sort_by_key(|r| r.seed);
            out.push_str(&format!(
                "- Seeds: {}\n\n",
                members
                    .iter()
                    .map(|r| format!(
                        "{} (`{}`)",
                        r.seed.map_or_else(|| "none".to_string(), |s| s.to_string()),
                        r.checkpoint
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        None => {
            out.push_str(&format!(
                "- Representative checkpoint: `{}`\n",
                rep.checkpoint
            ));
            out.push_str(&format!(
                "- Hook: `{}` (layer {})\n\n",
                rep.hook_name.as_deref().unwrap_or("unknown"),
                rep.hook_layer
                    .map_or_else(|| "unknown".to_string(), |l| l.to_string())
            ));
        }
    }
    out.push_str("## Ranked candidates\n\n");
    out.push_str(
        "| rank | candidate | seeds | front | joint score | SAEBench Δ | CE-Bench Δ | train EV |\n",
    );
    out.push_str("|---:|---|---:|:---:|---:|---:|---:|---:|\n");
    for (r, &i) in sel.ranked.iter().enumerate() {
        let c = &sel.candidates[i];
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {:.4} | {} | {} | {} |\n",
            r + 1,
            c.id,
            c.members.len(),
            if sel.is_pareto[i] { "yes" } else { "" },
            sel.scores[i].joint,
            fmt(c.metrics.saebench_delta),
            fmt(c.metrics.cebench_interp_delta_vs_baseline),
            fmt(c.metrics.train_explained_variance),
        ));
    }
    out.push_str("\nRanking: ");
    out.push_str(&STRICT_TIE_BREAK.join(", then "));
    out.push_str(".\n");
    if sel
        .candidates
        .iter()
        .any(|c| c.evidence() == Evidence::Husai)
    {
        out.push_str(
            "\nhusai runs: SAEBench Δ is the ood-stress eval's mean in-distribution gap (k-sparse SAE-probe AUC minus dense-probe AUC at gate_k, the offline analogue of SAEBench's sparse-probing best_minus_llm_auc); train EV is 1 − held-out FVU; CE-Bench does not apply (n/a).\n",
        );
    }
    if let Some(d) = &sel.diagnostics
        && !d.dropped.is_empty()
    {
        out.push_str("\n## Dropped groups\n\n");
        for g in &d.dropped {
            out.push_str(&format!(
                "- `{}` ({} seed(s), config `{}`)\n",
                g.group_id,
                g.seed_count,
                &g.config_sha256[..g.config_sha256.len().min(12)]
            ));
        }
    }
    out.push_str("\n![Pareto plot](pareto.svg)\n");
    out
}

/// Checks a strict `selection.json` against `schemas/selection.v1.json`; returns one line per violation.
pub fn validate_selection(doc: &Value) -> Result<(), Vec<String>> {
    crate::schema::validate("selection.v1", doc).map_err(|e| e.violations)
}

fn to_legacy(v: &Value) -> crate::legacy::json::LegacyValue {
    use crate::legacy::json::LegacyValue;
    match v {
        Value::Null => LegacyValue::Null,
        Value::Bool(b) => LegacyValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) if !n.is_f64() => LegacyValue::Int(i),
            _ => LegacyValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => LegacyValue::String(s.clone()),
        Value::Array(items) => LegacyValue::Array(items.iter().map(to_legacy).collect()),
        Value::Object(map) => {
            LegacyValue::Object(map.iter().map(|(k, v)| (k.clone(), to_legacy(v))).collect())
        }
    }
}

/// `json.dumps(value, indent=2)` as upstream wrote its files (Python float repr, ASCII escapes), plus the
/// trailing newline.
pub fn python_json_text(value: &Value) -> String {
    let mut text = crate::legacy::pyrepr::json_dumps(&to_legacy(value), 2);
    text.push('\n');
    text
}
