//! `trained-vs-random` (upstream HUSAI's phase 4a, the input of the strict release gate's `random_model` gate): are
//! the dictionaries of SAEs trained from different seeds more alike than random dictionaries of the same shape and
//! init law? Writes `trained_vs_random.json` (schemas/trained-vs-random.v1.json) through the eval contract
//! (docs/eval-contract.md).
//!
//! Inputs: `--input sae=RUN`, one per seed, at least [`MIN_SEEDS`] (the gate asks for 8): SAE train runs of one
//! family and one configuration (their recorded configs equal but for `seed`), so one shape.
//!
//! * **Trained**: PWMCC ([`husai_kernels::stats::pwmcc`], the one definition) between the decoders of every two
//!   SAE seeds.
//! * **Random**: [`Settings::random_draws`] (default 200) decoders drawn with the trainers' own initialisation,
//!   compared in disjoint pairs ([`null`]: why that law and why that pairing).
//! * **Difference** of the means, bounded by a studentized seed-level bootstrap ([`stats::pairwise_vs_values_bootstrap_t`]): trained seeds and
//!   random pairs, each the independent unit of its side, are resampled. With fewer than
//!   [`husai_kernels::stats::MIN_PAIRWISE_T_SEEDS`] trained seeds the bound is `null` with a reason, and the gate
//!   cannot pass.
//! * **Chance-normalised effect** `(trained − random) / (1 − random)`, the gate's practical threshold.
//! * **Mann–Whitney U** of trained pairs against random pairs, exact p where defined: reported, not gated on
//!   (trained pairs share seeds, so it is anti-conservative).
//!
//! The summary lists the SAE runs it covers (`sae_runs`: campaign, run id, seed, family, configuration); the gate
//! reads those runs' manifests itself and checks them against the release candidate.

pub mod inputs;
pub mod null;

use std::collections::BTreeMap;
use std::path::PathBuf;

use husai_kernels::stats::{self, BootstrapSpec, Dictionary, MAX_SEED, StatsError};
use husai_plugin_api::{
    Description, Plugin, PluginError, Progress, RunRequest, config_object, write_eval_summary,
};
use serde_json::{Value, json};

pub use inputs::{SaeRun, read_sae_run};

/// The fewest SAE seeds the evaluation accepts (the gate asks for 8).
pub const MIN_SEEDS: usize = 5;
/// The fewest random decoders (issue #11: a distribution from at least 200 draws).
pub const MIN_RANDOM_DRAWS: usize = 200;
/// The schema of the summary.
pub const SCHEMA: &str = "trained-vs-random.v1";
/// The plugin's name and its one eval.
pub const EVAL: &str = "trained-vs-random";
/// The summary's file name (what `husai-audit gate --phase4a` is given).
pub const SUMMARY: &str = "trained_vs_random.json";
/// The only input role.
pub const ROLE: &str = "sae";

const KEYS: [&str; 5] = [
    "random_draws",
    "random_seed",
    "bootstrap",
    "bootstrap_seed",
    "confidence",
];

fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "trained-vs-random config",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "random_draws": {"type": "integer", "minimum": MIN_RANDOM_DRAWS, "maximum": 100000, "multipleOf": 2,
                             "default": 200,
                             "description": "random decoders of the SAEs' shape and init law, compared in disjoint pairs (even, at least 200)"},
            "random_seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "default": 1000,
                            "description": "seed of the random decoders (draw i is the trainers' init for sub-stream i)"},
            "bootstrap": {"type": "integer", "minimum": 100, "maximum": 1000000, "default": 10000,
                          "description": "bootstrap resamples of the seed-level interval"},
            "bootstrap_seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED,
                               "default": BootstrapSpec::default().seed,
                               "description": "seed of the bootstrap"},
            "confidence": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.95,
                           "description": "two-sided confidence of the interval of the difference"}
        }
    })
}

/// The evaluation's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Random decoders drawn, compared in `random_draws / 2` disjoint pairs: even, at least [`MIN_RANDOM_DRAWS`].
    pub random_draws: usize,
    /// Seed of the random decoders ([`null::draw_seed`]).
    pub random_seed: u64,
    pub bootstrap: BootstrapSpec,
    pub confidence: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            random_draws: 200,
            random_seed: 1000,
            bootstrap: BootstrapSpec::default(),
            confidence: 0.95,
        }
    }
}

impl Settings {
    /// The settings of a config object: defaults for absent keys; an unknown key or a bad value is an error that
    /// names the key. (The host validates the config against [`schema`] first; this holds the plugin to the same
    /// rules when it is called as a library.)
    pub fn from_config(c: &Value) -> Result<Settings, EvalError> {
        let bad = |m: String| EvalError::Config(m);
        let obj = config_object(c, EVAL, &KEYS).map_err(bad)?;
        let int = |k: &str, min: u64, max: u64| -> Result<Option<u64>, EvalError> {
            match obj.get(k) {
                None => Ok(None),
                Some(v) => match v.as_u64() {
                    Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
                    _ => Err(bad(format!(
                        "config key {k:?} must be an integer from {min} to {max}, got {v}"
                    ))),
                },
            }
        };
        let d = Settings::default();
        let random_draws = int("random_draws", 0, 100_000)?.map_or(d.random_draws, |v| v as usize);
        if random_draws < MIN_RANDOM_DRAWS {
            return Err(bad(format!(
                "config key \"random_draws\" is {random_draws}: the random null needs at least \
                 {MIN_RANDOM_DRAWS} draws"
            )));
        }
        if random_draws % 2 != 0 {
            return Err(bad(format!(
                "config key \"random_draws\" is {random_draws}: it must be even (draws are compared in disjoint \
                 pairs)"
            )));
        }
        let confidence = match obj.get("confidence") {
            None => d.confidence,
            Some(v) => v.as_f64().filter(|x| *x > 0.0 && *x < 1.0).ok_or_else(|| {
                bad(format!(
                    "config key \"confidence\" must be a number strictly between 0 and 1, got {v}"
                ))
            })?,
        };
        Ok(Settings {
            random_draws,
            random_seed: int("random_seed", 0, MAX_SEED)?.unwrap_or(d.random_seed),
            bootstrap: BootstrapSpec {
                resamples: int("bootstrap", 100, 1_000_000)?
                    .map_or(d.bootstrap.resamples, |v| v as u32),
                seed: int("bootstrap_seed", 0, MAX_SEED)?.unwrap_or(d.bootstrap.seed),
            },
            confidence,
        })
    }
}

/// Why the evaluation could not run.
#[derive(Debug)]
pub enum EvalError {
    /// A config value is not acceptable.
    Config(String),
    /// The inputs do not allow the comparison (too few seeds, mixed families, configurations or shapes, ...).
    Inputs(String),
    Stats(StatsError),
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::Config(m) | EvalError::Inputs(m) => f.write_str(m),
            EvalError::Stats(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for EvalError {}

impl From<StatsError> for EvalError {
    fn from(e: StatsError) -> Self {
        EvalError::Stats(e)
    }
}

impl From<EvalError> for PluginError {
    fn from(e: EvalError) -> Self {
        match e {
            EvalError::Config(m) => PluginError::invalid_config(m),
            EvalError::Inputs(m) => PluginError::invalid_input(m),
            EvalError::Stats(e) => PluginError::failed(e.to_string()),
        }
    }
}

fn group_summary(values: &[f64]) -> Result<Value, StatsError> {
    let s = stats::summarize(values)?;
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    Ok(json!({"mean": s.mean, "sd": s.sd, "min": min, "max": max, "n_pairs": values.len()}))
}

/// The keys whose values differ between two configurations, for messages.
fn differing_keys(a: &Value, b: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return vec!["(not objects)".into()];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map_or("absent".to_string(), Value::to_string);
            format!("{k}: {} vs {}", show(a.get(k)), show(b.get(k)))
        })
        .collect()
}

/// The runs must be at least [`MIN_SEEDS`] distinct seeds of one family, configuration and shape.
fn check_runs(runs: &[SaeRun]) -> Result<(), EvalError> {
    if runs.len() < MIN_SEEDS {
        return Err(EvalError::Inputs(format!(
            "trained-vs-random needs at least {MIN_SEEDS} SAE runs (seeds), got {}; give one --input sae=RUN per \
             seed",
            runs.len()
        )));
    }
    let first = &runs[0];
    let name = |r: &SaeRun| format!("{}/{}", r.campaign, r.run_id);
    for r in &runs[1..] {
        if r.family != first.family {
            return Err(EvalError::Inputs(format!(
                "SAE run {} is family {} but run {} is family {}; compare seeds of one family and configuration",
                name(r),
                r.family,
                name(first),
                first.family
            )));
        }
        if r.configuration != first.configuration {
            return Err(EvalError::Inputs(format!(
                "SAE run {} and run {} are configurations that differ in more than the seed ({}); compare seeds \
                 of one family and configuration",
                name(r),
                name(first),
                differing_keys(&r.configuration, &first.configuration).join(", ")
            )));
        }
        if (r.d_sae, r.d_in) != (first.d_sae, first.d_in) {
            return Err(EvalError::Inputs(format!(
                "SAE run {} is {}x{} but run {} is {}x{}; compare SAEs of one shape",
                name(r),
                r.d_sae,
                r.d_in,
                name(first),
                first.d_sae,
                first.d_in
            )));
        }
        if r.w_dec.len() != r.d_sae * r.d_in {
            return Err(EvalError::Inputs(format!(
                "SAE run {}: W_dec has {} values, not {}x{}",
                name(r),
                r.w_dec.len(),
                r.d_sae,
                r.d_in
            )));
        }
    }
    let mut seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    if let Some(w) = seeds.windows(2).find(|w| w[0] == w[1]) {
        return Err(EvalError::Inputs(format!(
            "seed {} appears twice; each SAE run must be a distinct seed",
            w[0]
        )));
    }
    Ok(())
}

/// Runs the evaluation on `runs` (one per SAE seed) and returns the summary. `progress(done, total)` is called as
/// PWMCCs are computed.
pub fn evaluate(
    runs: &[SaeRun],
    s: &Settings,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Value, EvalError> {
    check_runs(runs)?;
    let (d_sae, d_in) = (runs[0].d_sae, runs[0].d_in);
    let n = runs.len();
    let random_n = s.random_draws / 2;
    let total = (n * (n - 1) / 2 + random_n + 1) as u64;
    let mut done = 0u64;
    progress(done, total);

    let trained: Vec<Dictionary<'_>> = runs
        .iter()
        .map(|r| Dictionary::new(&r.w_dec, r.d_sae, r.d_in))
        .collect::<Result<_, _>>()?;
    let mut trained_pairs = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            trained_pairs.push((i, j, stats::pwmcc(&trained[i], &trained[j])?));
            done += 1;
            progress(done, total);
        }
    }
    let random = null::random_pairs(d_sae, d_in, s.random_draws, s.random_seed, &mut |_| {
        done += 1;
        progress(done, total);
    })?;
    let t_matrix = stats::PairwiseMatrix::from_pairs(n, &trained_pairs)?;
    let t_values: Vec<f64> = trained_pairs.iter().map(|p| p.2).collect();
    let (t_mean, r_mean) = (t_matrix.mean(), stats::mean(&random)?);
    let bound =
        stats::pairwise_vs_values_bootstrap_t(&t_matrix, &random, s.confidence, s.bootstrap);
    done += 1;
    progress(done, total);

    let mut difference = match &bound {
        Ok(i) => json!({"estimate": t_mean - r_mean, "ci_low": i.low, "ci_high": i.high}),
        Err(e) => json!({"estimate": t_mean - r_mean, "ci_low": null, "ci_high": null,
                         "reason": e.to_string()}),
    };
    difference["confidence"] = json!(s.confidence);
    difference["method"] = json!(
        "studentized seed-level bootstrap: trained SAE seeds drawn with replacement (pairs of distinct drawn \
         seeds averaged, jackknife standard error over seeds), random disjoint-pair values drawn with replacement \
         (standard error sd/sqrt(m)), independently"
    );
    difference["resamples"] = json!(s.bootstrap.resamples);
    difference["bootstrap_seed"] = json!(s.bootstrap.seed);
    let effect = stats::chance_normalised(t_mean, r_mean)?;
    let mw = stats::mann_whitney_greater(&t_values, &random)?;
    let conclusion = match &bound {
        Ok(i) if i.low > 0.0 => "above_random",
        Ok(_) => "not_above_random",
        Err(_) => "not_evaluated",
    };
    let mut trained_summary = group_summary(&t_values)?;
    trained_summary["n_seeds"] = json!(n);
    trained_summary["seeds"] = json!(runs.iter().map(|r| r.seed).collect::<Vec<_>>());
    trained_summary["pairs"] = trained_pairs
        .iter()
        .map(|&(i, j, v)| json!({"run_a": runs[i].run_id, "run_b": runs[j].run_id, "pwmcc": v}))
        .collect();
    let mut random_summary = group_summary(&random)?;
    random_summary["n_draws"] = json!(s.random_draws);
    random_summary["init"] = json!(null::INIT_LAW);
    random_summary["pairing"] = json!(null::PAIRING);
    random_summary["seed"] = json!(s.random_seed);
    let sae_runs: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({"campaign": r.campaign, "run_id": r.run_id, "seed": r.seed, "family": r.family,
                   "configuration": r.configuration})
        })
        .collect();
    Ok(json!({
        "schema": SCHEMA,
        "eval": EVAL,
        "schema_version": "1.0",
        "family": runs[0].family,
        "configuration": runs[0].configuration,
        "shape": {"d_sae": d_sae, "d_in": d_in},
        "sae_runs": sae_runs,
        "trained": trained_summary,
        "random": random_summary,
        "difference": difference,
        "chance_normalised_effect": effect,
        "ratio": t_mean / r_mean,
        "mann_whitney": {
            "test": "Mann-Whitney U, one-sided (trained pairs > random pairs)",
            "u": mw.u,
            "p_value": mw.p_value(),
            "method": mw.method(),
            "p_exact": mw.p_exact,
            "p_asymptotic": mw.p_asymptotic,
            "note": "trained pairs share seeds, so this p is anti-conservative; reported, not gated on",
        },
        "conclusion": conclusion,
    }))
}

/// The SAE run directories in `--input` order: role `sae` only, `sae/i` sorted by `i`.
pub fn sae_inputs(inputs: &BTreeMap<String, PathBuf>) -> Result<Vec<PathBuf>, EvalError> {
    let mut out = Vec::new();
    for (key, dir) in inputs {
        let (role, i) = key.split_once('/').unwrap_or((key, "0"));
        if role != ROLE {
            return Err(EvalError::Inputs(format!(
                "input role {role:?} ({key}) is not one this eval reads; give each SAE run as --input {ROLE}=RUN"
            )));
        }
        out.push((i.parse::<usize>().unwrap_or(usize::MAX), dir.clone()));
    }
    out.sort();
    Ok(out.into_iter().map(|(_, d)| d).collect())
}

struct TrainedVsRandom;

impl Plugin for TrainedVsRandom {
    fn describe() -> Description {
        Description::eval(EVAL, env!("CARGO_PKG_VERSION"), schema())
    }

    fn run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
        let s = Settings::from_config(&request.config)?;
        let runs = sae_inputs(&request.inputs)?
            .iter()
            .map(|d| read_sae_run(d))
            .collect::<Result<Vec<_>, _>>()?;
        // About 20 reports a run: one per PWMCC would flood the terminal for no information.
        let summary = evaluate(&runs, &s, &mut |done, total| {
            if done == total || done % total.div_ceil(20) == 0 {
                progress.report(done, total, "trained-vs-random: PWMCC")
            }
        })?;
        write_eval_summary(&request.output_dir, SUMMARY, &summary)
    }
}

husai_plugin_api::export_plugin!(TrainedVsRandom);

#[cfg(test)]
mod tests;
