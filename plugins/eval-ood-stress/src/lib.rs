//! `ood-stress`: does an SAE's sparse-probing gap to a dense probe grow under covariate shift? The offline analogue
//! of upstream HUSAI's OOD stress eval (reference `upstream-stress-evals.md` §2 and §5.2), with its defects fixed.
//! Writes `ood_stress_summary.json` (schemas/ood-stress.v1.json) through the eval contract (docs/eval-contract.md).
//!
//! Inputs: `--input sae=RUN`, the SAE under test (a train run), and `--input data=RUN`, the `data synth` run it was
//! trained on, whose ground-truth features define the tasks. The summary records both runs and the sha256 of the
//! SAE's weights and config, so a gate can check that the evidence concerns its candidate (upstream's OOD summary
//! named a checkpoint path, and a cycle-4 gate accepted one computed for another model).
//!
//! - Tasks ([`tasks`]): "is feature f active?" on rows of the data run's law; half of them, chosen at random, are
//!   tested under covariate shift (denser, louder rows), the rest in distribution.
//! - Probes ([`probe`]): a dense L2 logistic probe on the raw rows against a k-sparse one on the SAE's latents
//!   (ranked as sae-probes ranks them), AUC by the rank formula, each k of `ks`; the verdict's k, `gate_k`, is
//!   fixed in the config.
//! - Statistic ([`drop`]): `ood_drop = mean ID gap − mean OOD gap` (gap = SAE AUC − dense AUC), a stratified
//!   studentized bootstrap interval over tasks and a random-split permutation p.
//! - [`legacy_split`] reproduces upstream's own ID/OOD partition of its 113 probing datasets, for `--parity`.

pub mod drop;
pub mod eval;
pub mod legacy_split;
pub mod probe;
pub mod tasks;

use std::collections::BTreeMap;
use std::path::PathBuf;

use husai_kernels::stats::MAX_SEED;
use husai_plugin_api::{
    Description, Plugin, PluginError, Progress, RunRequest, config_object, config_positive,
    write_eval_summary,
};
use serde_json::{Value, json};

pub use eval::{Settings, evaluate};
pub use husai_plugin_api::EvalError;

/// The schema of the summary.
pub const SCHEMA: &str = "ood-stress.v1";
/// The plugin's name and its one eval.
pub const EVAL: &str = "ood-stress";
/// The summary's file name.
pub const SUMMARY: &str = "ood_stress_summary.json";
/// What the summary's numbers mean.
pub const DEFINITIONS: &str = "gap = AUC of the k-sparse probe on SAE latents - AUC of the dense probe on raw rows, \
    on a task's test rows (AUC by the rank formula, ties at mid-rank); ood_drop = mean gap over ID tasks - mean gap \
    over OOD tasks (higher: the SAE probe loses more under covariate shift); interval: studentized bootstrap of that \
    difference resampling ID and OOD tasks within their strata; permutation_p: one-sided, the share of random \
    ID/OOD relabellings of the same tasks with a drop at least the observed, (1 + count) / (1 + permutations)";

const KEYS: [&str; 13] = [
    "tasks",
    "train_rows",
    "test_rows",
    "ks",
    "gate_k",
    "shift_extra",
    "shift_scale",
    "lambda",
    "task_seed",
    "bootstrap",
    "bootstrap_seed",
    "permutations",
    "permutation_seed",
];

fn schema() -> Value {
    let d = Settings::default();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ood-stress config",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "tasks": {"type": "integer", "minimum": 10, "maximum": 10000, "default": d.tasks,
                      "description": "binary tasks (distinct ground-truth features); half, at random, are tested under shift (at least 10, so each stratum has the 5 tasks the interval needs)"},
            "train_rows": {"type": "integer", "minimum": 20, "maximum": 1000000, "default": d.train_rows,
                           "description": "rows each task's probes are fitted on"},
            "test_rows": {"type": "integer", "minimum": 20, "maximum": 1000000, "default": d.test_rows,
                          "description": "rows each task's AUC is computed on"},
            "ks": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "uniqueItems": true,
                   "default": d.ks, "description": "latent budgets of the sparse probe (all are reported)"},
            "gate_k": {"type": "integer", "minimum": 1, "default": d.gate_k,
                       "description": "the budget of the verdict, one of ks, fixed before any probe runs"},
            "shift_extra": {"type": "integer", "minimum": 0, "maximum": 1000, "default": d.shift.extra,
                            "description": "OOD test rows: background features added to each row"},
            "shift_scale": {"type": "number", "exclusiveMinimum": 0, "default": d.shift.scale,
                            "description": "OOD test rows: factor on every coefficient"},
            "lambda": {"type": "number", "exclusiveMinimum": 0, "default": d.lambda,
                       "description": "L2 penalty of both probes on standardised features"},
            "task_seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "default": d.task_seed,
                          "description": "seed of the task features, the strata and every task row"},
            "bootstrap": {"type": "integer", "minimum": 100, "maximum": 1000000, "default": d.bootstrap.resamples,
                          "description": "bootstrap resamples of the drop's interval"},
            "bootstrap_seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "default": d.bootstrap.seed},
            "permutations": {"type": "integer", "minimum": 99, "maximum": 1000000, "default": d.permutations,
                             "description": "random ID/OOD relabellings of the null"},
            "permutation_seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "default": d.permutation_seed}
        }
    })
}

impl Settings {
    /// The settings of a config object; an unknown key or a bad value is an error naming the key.
    pub fn from_config(c: &Value) -> Result<Settings, EvalError> {
        let bad = |m: String| EvalError::Config(m);
        let obj = config_object(c, EVAL, &KEYS).map_err(bad)?;
        let d = Settings::default();
        let int = |k: &str, min: u64, max: u64, default: u64| -> Result<u64, EvalError> {
            match obj.get(k) {
                None => Ok(default),
                Some(v) => v
                    .as_u64()
                    .filter(|x| (min..=max).contains(x))
                    .ok_or_else(|| {
                        bad(format!(
                            "config key {k:?} must be an integer from {min} to {max}, got {v}"
                        ))
                    }),
            }
        };
        let positive = |k: &str, default: f64| config_positive(obj, k, default).map_err(bad);
        let ks = match obj.get("ks") {
            None => d.ks.clone(),
            Some(v) => {
                let list = v.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
                    bad(format!(
                        "config key \"ks\" must be a non-empty list of budgets, got {v}"
                    ))
                })?;
                let mut ks = Vec::with_capacity(list.len());
                for item in list {
                    let k = item.as_u64().filter(|&k| k >= 1).ok_or_else(|| {
                        bad(format!(
                            "config key \"ks\" holds {item}, not an integer >= 1"
                        ))
                    })? as usize;
                    if ks.contains(&k) {
                        return Err(bad(format!("config key \"ks\" lists {k} twice")));
                    }
                    ks.push(k);
                }
                ks
            }
        };
        let gate_k = int("gate_k", 1, u32::MAX as u64, d.gate_k as u64)? as usize;
        if !ks.contains(&gate_k) {
            return Err(bad(format!(
                "config key \"gate_k\" is {gate_k}, which is not one of ks {ks:?}"
            )));
        }
        Ok(Settings {
            tasks: int("tasks", 10, 10_000, d.tasks as u64)? as usize,
            train_rows: int("train_rows", 20, 1_000_000, d.train_rows as u64)? as usize,
            test_rows: int("test_rows", 20, 1_000_000, d.test_rows as u64)? as usize,
            ks,
            gate_k,
            shift: tasks::Shift {
                extra: int("shift_extra", 0, 1000, d.shift.extra as u64)? as usize,
                scale: positive("shift_scale", d.shift.scale)?,
            },
            lambda: positive("lambda", d.lambda)?,
            task_seed: int("task_seed", 0, MAX_SEED, d.task_seed)?,
            bootstrap: husai_kernels::stats::BootstrapSpec {
                resamples: int("bootstrap", 100, 1_000_000, d.bootstrap.resamples as u64)? as u32,
                seed: int("bootstrap_seed", 0, MAX_SEED, d.bootstrap.seed)?,
            },
            permutations: int("permutations", 99, 1_000_000, d.permutations as u64)? as u32,
            permutation_seed: int("permutation_seed", 0, MAX_SEED, d.permutation_seed)?,
            confidence: d.confidence,
        })
    }
}

/// The one run of each role, `sae` and `data`.
fn inputs(map: &BTreeMap<String, PathBuf>) -> Result<(PathBuf, PathBuf), EvalError> {
    let of = |role: &str| -> Vec<&PathBuf> {
        map.iter()
            .filter(|(k, _)| k.split('/').next() == Some(role))
            .map(|(_, v)| v)
            .collect()
    };
    if let Some(k) = map
        .keys()
        .find(|k| !matches!(k.split('/').next(), Some("sae" | "data")))
    {
        return Err(EvalError::Inputs(format!(
            "ood-stress takes one --input sae=RUN and one --input data=RUN; the request also names {k:?}"
        )));
    }
    let (sae, data) = (of("sae"), of("data"));
    if sae.len() != 1 || data.len() != 1 {
        return Err(EvalError::Inputs(format!(
            "ood-stress takes exactly one --input sae=RUN (the SAE under test) and one --input data=RUN (the data \
             synth run it was trained on); got {} and {}",
            sae.len(),
            data.len()
        )));
    }
    Ok((sae[0].clone(), data[0].clone()))
}

/// The plugin.
pub struct OodStress;

impl Plugin for OodStress {
    fn describe() -> Description {
        Description::eval(EVAL, env!("CARGO_PKG_VERSION"), schema())
    }

    fn run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
        let s = Settings::from_config(&request.config)?;
        let (sae, data) = inputs(&request.inputs)?;
        let summary = evaluate(&sae, &data, &s, &mut |done, total| {
            progress.report(done, total, "ood-stress: probes")
        })?;
        write_eval_summary(&request.output_dir, SUMMARY, &summary)
    }
}

husai_plugin_api::export_plugin!(OodStress);

#[cfg(test)]
mod tests;
