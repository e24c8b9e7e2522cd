//! Trained versus random (upstream HUSAI's phase 4a, the input of the release gate's `random_model` gate): are the
//! dictionaries of SAEs trained from different seeds more alike than random dictionaries of the same shape?
//!
//! * **Trained**: PWMCC ([`husai_kernels::stats::pwmcc`], the one definition) between the decoders of every two
//!   SAE seeds, at least [`MIN_SEEDS`].
//! * **Random**: PWMCC between every two of [`Config::random_draws`] (default 21, so 210 pairs) Gaussian
//!   dictionaries of the same shape, rows drawn i.i.d. N(0, 1) (upstream's null; the direction of an isotropic
//!   Gaussian row is uniform, so any row scale gives the same PWMCC).
//! * **Difference** of the mean pairwise PWMCC, bounded directly by the studentized seed-level bootstrap
//!   ([`husai_kernels::stats::pairwise_difference_bootstrap_t`]): seeds, not pairs, are resampled on each side.
//!   It needs [`husai_kernels::stats::MIN_PAIRWISE_T_SEEDS`] trained seeds; with fewer the bound is `null` with a
//!   reason, and the gate cannot pass.
//! * **Chance-normalised effect** `(trained − random) / (1 − random)`, the gate's practical threshold.
//! * **Mann–Whitney U** of trained pairs against random pairs, exact p where defined: reported, not gated on
//!   (pairs share seeds, so it is anti-conservative).
//!
//! The summary ([`evaluate`]) follows `schemas/trained-vs-random.v1.json`.

use husai_kernels::rng::SplitMix64;
use husai_kernels::stats::{
    self, BootstrapSpec, Dictionary, PairwiseMatrix, SeedDesign, StatsError,
};
use serde_json::{Value, json};

/// The fewest SAE seeds the evaluation accepts (the gate asks for 8).
pub const MIN_SEEDS: usize = 5;
/// The schema of the summary.
pub const SCHEMA: &str = "trained-vs-random.v1";

/// One trained SAE: which signed run it is and its decoder (`[d_sae, d_in]` row-major, SAELens `W_dec`).
#[derive(Debug, Clone)]
pub struct SaeRun {
    pub campaign: String,
    pub run_id: String,
    pub seed: u64,
    pub d_sae: usize,
    pub d_in: usize,
    pub w_dec: Vec<f32>,
}

/// Evaluation settings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Random dictionaries drawn (every two are compared): at least 21, i.e. 210 pairs.
    pub random_draws: usize,
    /// Seed of the random dictionaries (draw i uses stream i of it).
    pub random_seed: u64,
    pub bootstrap: BootstrapSpec,
    pub confidence: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            random_draws: 21,
            random_seed: 1000,
            bootstrap: BootstrapSpec::default(),
            confidence: 0.95,
        }
    }
}

/// Why the evaluation could not run.
#[derive(Debug)]
pub enum EvalError {
    /// The inputs do not allow the comparison (too few seeds, mixed shapes, duplicate seeds).
    Inputs(String),
    Stats(StatsError),
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::Inputs(m) => f.write_str(m),
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

/// A random dictionary of `rows × dim` i.i.d. standard normal values from stream `id` of `seed`.
pub fn gaussian_dictionary(seed: u64, id: u64, rows: usize, dim: usize) -> Vec<f32> {
    let mut rng = SplitMix64::stream(seed, id);
    (0..rows * dim).map(|_| rng.normal() as f32).collect()
}

/// PWMCC between every two dictionaries, as `(i, j, value)` for i < j.
fn all_pairs(dicts: &[Dictionary<'_>]) -> Result<Vec<(usize, usize, f64)>, StatsError> {
    let mut out = Vec::new();
    for i in 0..dicts.len() {
        for j in i + 1..dicts.len() {
            out.push((i, j, stats::pwmcc(&dicts[i], &dicts[j])?));
        }
    }
    Ok(out)
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

/// Runs the evaluation on `runs` (one per SAE seed, one shape) and returns the summary.
pub fn evaluate(runs: &[SaeRun], family: &str, cfg: &Config) -> Result<Value, EvalError> {
    if runs.len() < MIN_SEEDS {
        return Err(EvalError::Inputs(format!(
            "trained-vs-random needs at least {MIN_SEEDS} SAE seeds, got {}",
            runs.len()
        )));
    }
    if cfg.random_draws < 21 {
        return Err(EvalError::Inputs(format!(
            "random_draws must be at least 21 (210 random pairs), got {}",
            cfg.random_draws
        )));
    }
    let (d_sae, d_in) = (runs[0].d_sae, runs[0].d_in);
    for r in runs {
        if (r.d_sae, r.d_in) != (d_sae, d_in) {
            return Err(EvalError::Inputs(format!(
                "run {}/{} is {}x{} but run {}/{} is {d_sae}x{d_in}; compare SAEs of one shape",
                r.campaign, r.run_id, r.d_sae, r.d_in, runs[0].campaign, runs[0].run_id
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
    let trained: Vec<Dictionary<'_>> = runs
        .iter()
        .map(|r| Dictionary::new(&r.w_dec, r.d_sae, r.d_in))
        .collect::<Result<_, _>>()?;
    let trained_pairs = all_pairs(&trained)?;
    let random_values: Vec<Vec<f32>> = (0..cfg.random_draws)
        .map(|i| gaussian_dictionary(cfg.random_seed, i as u64, d_sae, d_in))
        .collect();
    let random: Vec<Dictionary<'_>> = random_values
        .iter()
        .map(|v| Dictionary::new(v, d_sae, d_in))
        .collect::<Result<_, _>>()?;
    let random_pairs = all_pairs(&random)?;
    let t_matrix = PairwiseMatrix::from_pairs(runs.len(), &trained_pairs)?;
    let r_matrix = PairwiseMatrix::from_pairs(cfg.random_draws, &random_pairs)?;
    let (t_mean, r_mean) = (t_matrix.mean(), r_matrix.mean());
    let t_values: Vec<f64> = trained_pairs.iter().map(|p| p.2).collect();
    let r_values: Vec<f64> = random_pairs.iter().map(|p| p.2).collect();
    let interval = stats::pairwise_difference_bootstrap_t(
        &t_matrix,
        &r_matrix,
        SeedDesign::Independent,
        cfg.confidence,
        cfg.bootstrap,
    );
    let difference = match &interval {
        Ok(i) => json!({"estimate": t_mean - r_mean, "ci_low": i.low, "ci_high": i.high}),
        Err(e) => {
            json!({"estimate": t_mean - r_mean, "ci_low": null, "ci_high": null, "reason": e.to_string()})
        }
    };
    let mut difference = difference;
    difference["confidence"] = json!(cfg.confidence);
    difference["method"] = json!(
        "studentized seed-level bootstrap (husai_stats::pairwise_difference_bootstrap_t): seeds drawn with replacement on each side independently, pairs of distinct drawn seeds averaged, jackknife standard errors"
    );
    difference["resamples"] = json!(cfg.bootstrap.resamples);
    difference["bootstrap_seed"] = json!(cfg.bootstrap.seed);
    let effect = stats::chance_normalised(t_mean, r_mean)?;
    let mw = stats::mann_whitney_greater(&t_values, &r_values)?;
    let pairs: Vec<Value> = trained_pairs
        .iter()
        .map(|&(i, j, v)| json!({"run_a": runs[i].run_id, "run_b": runs[j].run_id, "pwmcc": v}))
        .collect();
    let conclusion = match &interval {
        Ok(i) if i.low > 0.0 => "above_random",
        Ok(_) => "not_above_random",
        Err(_) => "not_evaluated",
    };
    let mut trained_summary = group_summary(&t_values)?;
    trained_summary["n_seeds"] = json!(runs.len());
    trained_summary["seeds"] = json!(runs.iter().map(|r| r.seed).collect::<Vec<_>>());
    trained_summary["pairs"] = Value::Array(pairs);
    let mut random_summary = group_summary(&r_values)?;
    random_summary["n_draws"] = json!(cfg.random_draws);
    random_summary["init"] = json!("gaussian");
    random_summary["seed"] = json!(cfg.random_seed);
    Ok(json!({
        "schema": SCHEMA,
        "eval": "trained-vs-random",
        "schema_version": "1.0",
        "family": family,
        "shape": {"d_sae": d_sae, "d_in": d_in},
        "sae_runs": runs.iter().map(|r| json!({"campaign": r.campaign, "run_id": r.run_id, "seed": r.seed})).collect::<Vec<_>>(),
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
            "note": "pairs share seeds, so this p is anti-conservative; reported, not gated on",
        },
        "conclusion": conclusion,
    }))
}

/// Reads the decoder of the SAE checkpoint in `dir` (`cfg.json` + `sae_weights.safetensors`, the SAELens layout
/// every husai trainer writes) through the kernels' checkpoint reader.
pub fn read_sae_run(
    dir: &std::path::Path,
    campaign: &str,
    run_id: &str,
    seed: u64,
) -> Result<SaeRun, husai_kernels::checkpoint::CheckpointError> {
    let parts = husai_kernels::checkpoint::read(dir)?;
    Ok(SaeRun {
        campaign: campaign.to_string(),
        run_id: run_id.to_string(),
        seed,
        d_sae: parts.d_sae,
        d_in: parts.d_in,
        w_dec: parts.w_dec,
    })
}
