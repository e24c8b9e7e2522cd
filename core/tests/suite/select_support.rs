//! Builders for small synthetic selector inputs in upstream's layouts, and a helper to run the selector on them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use husai_core::select::{InputRole, SelectConfig, SelectError, Selection, load_input, select};
use serde_json::{Value, json};

/// One synthetic row: condition (architecture for frontier files), seed, SAEBench delta, CE-Bench delta, train EV.
#[derive(Clone, Copy)]
pub struct R<'a>(
    pub &'a str,
    pub i64,
    pub Option<f64>,
    pub Option<f64>,
    pub Option<f64>,
);

fn record(arch: &str, condition_id: Option<&str>, r: &R, run: &str) -> Value {
    let cond = condition_id.map_or_else(|| format!("{arch}_seed{}", r.1), str::to_string);
    let mut rec = json!({
        "architecture": arch,
        "seed": r.1,
        "checkpoint": format!("results/experiments/{run}/checkpoints/{cond}/sae_final.pt"),
        "train_metrics": {"explained_variance": r.4},
        "saebench": {"summary": {"best_minus_llm_auc": r.2}},
        "cebench": {"delta_vs_matched_baseline": {"interpretability_score_mean_max": r.3},
                    "custom_metrics": {"interpretability_score_mean_max": 5.0},
                    "config": {"hook_layer": 0, "hook_name": "blocks.0.hook_resid_pre"}},
        "saebench_returncode": 0,
        "cebench_returncode": 0,
    });
    if let Some(c) = condition_id {
        rec["condition_id"] = json!(c);
    }
    rec
}

/// A frontier results file (`run_architecture_frontier_external.py`).
pub fn frontier(rows: &[R], config: Value) -> Value {
    json!({
        "timestamp_utc": "2026-02-14T21:24:18+00:00",
        "command": "python scripts/experiments/run_architecture_frontier_external.py --seeds 42",
        "config": config,
        "records": rows.iter().map(|r| record(r.0, None, r, "frontier/run_1")).collect::<Vec<_>>(),
        "aggregate": {},
    })
}

/// A scaling results file (`run_external_metric_scaling_study.py`); `R.0` is the condition id.
pub fn scaling(rows: &[R]) -> Value {
    json!({
        "timestamp_utc": "2026-02-15T16:57:25+00:00",
        "command": "python scripts/experiments/run_external_metric_scaling_study.py",
        "config": {"token_budgets": [10000], "seeds": [42]},
        "records": rows.iter().map(|r| record("topk", Some(r.0), r, "scaling/run_1")).collect::<Vec<_>>(),
        "aggregates": {},
    })
}

/// An assignment-v3 results file; `R.0` is the λ as text (e.g. "0.3").
pub fn assignment(rows: &[R]) -> Value {
    let records: Vec<Value> = rows
        .iter()
        .map(|r| {
            let lambda: f64 = r.0.parse().unwrap();
            json!({
                "lambda_consistency": lambda,
                "d_sae": 128,
                "k": 32,
                "explained_variance": {"mean": r.4},
                "selected_checkpoint": format!("results/assign/run_1/checkpoints/lambda_{}/sae_seed{}.pt", r.0, r.1),
                "external_eval": {"saebench_returncode": 0, "cebench_returncode": 0,
                                   "saebench_summary_path": "s.json", "cebench_summary_path": "c.json"},
                "selection_metrics": {"internal_lcb": 0.1, "ev_drop": 0.01, "saebench_delta": r.2,
                                       "cebench_delta": r.3, "cebench_interpretability_max": 9.0},
            })
        })
        .collect();
    json!({
        "run_metadata": {"command": "python scripts/experiments/run_assignment_consistency_v3.py"},
        "config": {"hook_layer": 0, "hook_name": "blocks.0.hook_resid_pre", "d_sae": 128},
        "records": records,
        "pareto_front": [], "ranked": [], "selected": {}, "acceptance": {},
    })
}

pub fn write(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
    path
}

/// Loads `(role, path)` inputs in upstream's processing order and selects.
pub fn run(inputs: &[(InputRole, &Path)], config: &SelectConfig) -> Result<Selection, SelectError> {
    let mut ordered: Vec<&(InputRole, &Path)> = inputs.iter().collect();
    ordered.sort_by_key(|(role, _)| role.parity_order());
    let mut loaded = Vec::new();
    for (role, path) in ordered {
        loaded.push(load_input(
            path,
            &path.display().to_string(),
            *role,
            config.mode,
        )?);
    }
    select(&loaded, config)
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/husai-evidence")
}
