//! The training loop: batches, AuxK, dead-latent tracking, Adam, decoder renormalisation,
//! timing, final metrics.
//!
//! Batches are sequential slices of the data exactly as in the PyTorch reference trainer:
//! step `s` (0-based) uses rows `i .. i + batch` with `i = (s * batch) % (rows - batch + 1)`.
//! There is no shuffling; shuffle the rows beforehand if the order is not random.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::adam::{Adam, AdamConfig};
use crate::error::{KernelError, check_finite, check_len};
use crate::sae::{AuxArgs, BatchLoss, EvalMetrics, Grads, SaeAdamState, TopKSae, Workspace};

/// AuxK dead-latent loss settings (Gao et al. 2024, §A.2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuxKConfig {
    /// Dead latents used per row to reconstruct the residual (the paper uses a power of two
    /// near d_in / 2, e.g. 256 for d_in 512).
    pub k_aux: usize,
    /// Weight of the auxiliary loss (the paper uses 1/32).
    pub coeff: f32,
}

/// Everything that determines a training run (with the data and its row range).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Number of latents.
    pub d_sae: usize,
    /// Latents kept per row.
    pub k: usize,
    /// Rows per optimiser step.
    pub batch: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Seed of the initialisation.
    pub seed: u64,
    /// Worker threads (results are bit-identical for any value; it only changes speed).
    pub threads: usize,
    /// Adam hyper-parameters (PyTorch defaults, lr 1e-3).
    #[serde(default)]
    pub adam: AdamConfig,
    /// AuxK loss; `None` trains without it.
    #[serde(default)]
    pub aux_k: Option<AuxKConfig>,
    /// A latent is dead once it has not fired for this many training rows (the paper uses 10M
    /// tokens). Used for AuxK and for the reported training dead fraction.
    #[serde(default = "default_dead_after_rows")]
    pub dead_after_rows: u64,
    /// Final metrics are computed on the first `min(rows, eval_rows)` rows (the reference
    /// trainer uses 16384).
    #[serde(default = "default_eval_rows")]
    pub eval_rows: usize,
}

fn default_dead_after_rows() -> u64 {
    10_000_000
}

fn default_eval_rows() -> usize {
    16_384
}

impl TrainConfig {
    /// A configuration with the reference trainer's defaults: lr 1e-3, batch 4096, 1000 steps,
    /// seed 0, no AuxK, dead after 10M rows, evaluation on 16384 rows, all available threads.
    pub fn new(d_sae: usize, k: usize) -> Self {
        Self {
            d_sae,
            k,
            batch: 4096,
            steps: 1000,
            seed: 0,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            adam: AdamConfig::default(),
            aux_k: None,
            dead_after_rows: default_dead_after_rows(),
            eval_rows: default_eval_rows(),
        }
    }

    /// Checks every field; errors name the field and the allowed range.
    pub fn validate(&self) -> Result<(), KernelError> {
        let bad = |field: &'static str, value: String, reason: &str| {
            Err(KernelError::Config {
                field,
                value,
                reason: reason.into(),
            })
        };
        if self.d_sae == 0 {
            return bad("d_sae", "0".into(), "must be >= 1");
        }
        if self.k == 0 || self.k > self.d_sae {
            return bad(
                "k",
                self.k.to_string(),
                &format!("must be in 1..={} (d_sae)", self.d_sae),
            );
        }
        if self.batch == 0 {
            return bad("batch", "0".into(), "must be >= 1");
        }
        if self.steps == 0 {
            return bad("steps", "0".into(), "must be >= 1");
        }
        if self.threads == 0 {
            return bad("threads", "0".into(), "must be >= 1");
        }
        if self.dead_after_rows == 0 {
            return bad("dead_after_rows", "0".into(), "must be >= 1");
        }
        if self.eval_rows == 0 {
            return bad("eval_rows", "0".into(), "must be >= 1");
        }
        if let Some(a) = &self.aux_k {
            if a.k_aux == 0 || a.k_aux > self.d_sae {
                return bad(
                    "aux_k.k_aux",
                    a.k_aux.to_string(),
                    &format!("must be in 1..={} (d_sae)", self.d_sae),
                );
            }
            if !(a.coeff.is_finite() && a.coeff >= 0.0) {
                return bad(
                    "aux_k.coeff",
                    a.coeff.to_string(),
                    "must be a finite number >= 0",
                );
            }
        }
        self.adam.validate()
    }
}

/// Per-latent count of training rows since the latent last fired.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadTracker {
    rows_since_fired: Vec<u64>,
    dead_after_rows: u64,
}

impl DeadTracker {
    /// All latents start as just-fired (nothing is dead before `dead_after_rows` rows).
    pub fn new(d_sae: usize, dead_after_rows: u64) -> Self {
        Self {
            rows_since_fired: vec![0; d_sae],
            dead_after_rows,
        }
    }

    /// Records a batch of `rows` rows in which `fired[j]` says whether latent `j` fired.
    pub fn record(&mut self, fired: &[bool], rows: u64) {
        for (c, &f) in self.rows_since_fired.iter_mut().zip(fired) {
            *c = if f { 0 } else { c.saturating_add(rows) };
        }
    }

    /// `dead[j]`: latent `j` has not fired for at least `dead_after_rows` rows.
    pub fn dead_mask(&self, out: &mut Vec<bool>) {
        out.clear();
        out.extend(
            self.rows_since_fired
                .iter()
                .map(|&c| c >= self.dead_after_rows),
        );
    }

    /// Share of latents currently dead.
    pub fn dead_fraction(&self) -> f64 {
        self.rows_since_fired
            .iter()
            .filter(|&&c| c >= self.dead_after_rows)
            .count() as f64
            / self.rows_since_fired.len() as f64
    }

    /// Rows since each latent last fired.
    pub fn rows_since_fired(&self) -> &[u64] {
        &self.rows_since_fired
    }
}

/// The result of [`train`].
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The trained model.
    pub model: TopKSae,
    /// Loss parts of every step, in order.
    pub loss_curve: Vec<BatchLoss>,
    /// Metrics of the final model on the first `min(rows, eval_rows)` rows.
    pub metrics: EvalMetrics,
    /// Share of latents dead by the training tracker at the end (`dead_after_rows` rule).
    pub train_dead_fraction: f64,
    /// Wall time of all steps (not the final evaluation), seconds.
    pub wall_s: f64,
    /// Rows per second over steps 2..=steps (step 1 is a warm-up, as in the reference trainer);
    /// over all steps when there is only one.
    pub rows_per_s: f64,
    /// Adam state and step count at the end (for resuming).
    pub adam_state: SaeAdamState,
    /// Adam steps taken.
    pub adam_steps: u64,
    /// Dead-latent tracker at the end.
    pub dead_tracker: DeadTracker,
}

/// A training run in progress; [`train`] drives one to the end. Use it directly to checkpoint or
/// inspect between steps.
#[derive(Debug)]
pub struct Trainer {
    config: TrainConfig,
    pool: rayon::ThreadPool,
    model: TopKSae,
    adam: Adam,
    state: SaeAdamState,
    grads: Grads,
    ws: Workspace,
    dead: DeadTracker,
    dead_mask: Vec<bool>,
    fired: Vec<bool>,
}

impl Trainer {
    /// A run on rows of width `d_in`, model initialised from `config.seed`.
    pub fn new(config: TrainConfig, d_in: usize) -> Result<Self, KernelError> {
        config.validate()?;
        let model = TopKSae::init(d_in, config.d_sae, config.k, config.seed)?;
        Self::with_model(config, model)
    }

    /// A run that continues from `model` (a resumed checkpoint). Its shape must match the config.
    /// Adam's moments start from zero: SAELens checkpoints carry no optimiser state, so a resumed
    /// run is a warm start, not a bit-exact continuation.
    pub fn resume(config: TrainConfig, model: TopKSae) -> Result<Self, KernelError> {
        config.validate()?;
        if model.d_sae() != config.d_sae || model.k() != config.k {
            return Err(KernelError::Config {
                field: "d_sae/k",
                value: format!("{}/{}", config.d_sae, config.k),
                reason: format!(
                    "the resumed checkpoint has d_sae {} and k {}; train it with those",
                    model.d_sae(),
                    model.k()
                ),
            });
        }
        Self::with_model(config, model)
    }

    fn with_model(config: TrainConfig, model: TopKSae) -> Result<Self, KernelError> {
        let d_in = model.d_in();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads)
            .build()
            .map_err(|e| KernelError::ThreadPool {
                threads: config.threads,
                reason: e.to_string(),
            })?;
        let adam = Adam::new(config.adam)?;
        let d_sae = config.d_sae;
        Ok(Self {
            state: SaeAdamState::zeros(d_in, d_sae),
            grads: Grads::zeros(d_in, d_sae),
            ws: Workspace::default(),
            dead: DeadTracker::new(d_sae, config.dead_after_rows),
            dead_mask: Vec::new(),
            fired: vec![false; d_sae],
            config,
            pool,
            model,
            adam,
        })
    }

    /// The model as it is now.
    pub fn model(&self) -> &TopKSae {
        &self.model
    }

    /// One optimiser step on `batch` (`[rows, d_in]` row-major).
    pub fn step(&mut self, batch: &[f32]) -> Result<BatchLoss, KernelError> {
        let Self {
            config,
            pool,
            model,
            adam,
            state,
            grads,
            ws,
            dead,
            dead_mask,
            fired,
        } = self;
        pool.install(|| {
            let aux = match config.aux_k {
                Some(a) => {
                    dead.dead_mask(dead_mask);
                    // No dead latent: the AuxK term is identically zero, skip its work.
                    dead_mask.iter().any(|&d| d).then_some(AuxArgs {
                        dead: dead_mask,
                        k_aux: a.k_aux,
                        coeff: a.coeff,
                    })
                }
                None => None,
            };
            let loss = model.loss_and_grads(batch, aux, ws, grads)?;
            adam.begin_step();
            model.apply_adam(adam, grads, state)?;
            fired.fill(false);
            let code = ws.code();
            for r in 0..code.rows() {
                for &j in code.row(r).0 {
                    fired[j as usize] = true;
                }
            }
            dead.record(fired, code.rows() as u64);
            Ok(loss)
        })
    }

    /// Metrics of the current model on `x`, on this run's thread pool.
    pub fn evaluate(&self, x: &[f32]) -> Result<EvalMetrics, KernelError> {
        self.pool.install(|| self.model.evaluate(x))
    }
}

/// Trains a TopK SAE on `data` (`[rows, d_in]` row-major, e.g. a memory-mapped file) for
/// `config.steps` steps and evaluates it. `progress(step, steps, loss)` is called after each step
/// (1-based) with the total loss of that step.
///
/// Before the first step the whole of `data` is scanned once for NaN/infinity (one sequential
/// read; a bad value is reported with its row and column rather than silently poisoning Adam).
pub fn train(
    config: &TrainConfig,
    data: &[f32],
    d_in: usize,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<TrainOutcome, KernelError> {
    train_from(config, None, data, d_in, progress)
}

/// [`train`], continuing from `start` when it is given (see [`Trainer::resume`]) instead of a
/// fresh initialisation. A checkpoint whose `d_in` differs from the data's is refused by name.
pub fn train_from(
    config: &TrainConfig,
    start: Option<TopKSae>,
    data: &[f32],
    d_in: usize,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<TrainOutcome, KernelError> {
    config.validate()?;
    if let Some(model) = &start
        && model.d_in() != d_in
    {
        return Err(KernelError::Config {
            field: "d_in",
            value: d_in.to_string(),
            reason: format!(
                "the data rows have width {d_in} but the resumed checkpoint has d_in {}",
                model.d_in()
            ),
        });
    }
    if d_in == 0 {
        return Err(KernelError::Config {
            field: "d_in",
            value: "0".into(),
            reason: "must be >= 1".into(),
        });
    }
    let rows = data.len() / d_in;
    check_len("data", data.len(), rows, d_in)?;
    if rows < config.batch {
        return Err(KernelError::TooFewRows {
            rows,
            batch: config.batch,
        });
    }
    check_finite("data", data, d_in)?;
    let mut trainer = match start {
        Some(model) => Trainer::resume(config.clone(), model)?,
        None => Trainer::new(config.clone(), d_in)?,
    };
    let span = rows - config.batch + 1;
    let mut loss_curve = Vec::with_capacity(config.steps);
    let t0 = Instant::now();
    let mut t1 = t0;
    for s in 0..config.steps {
        if s == 1 {
            t1 = Instant::now();
        }
        let i = (s * config.batch) % span;
        let loss = trainer.step(&data[i * d_in..(i + config.batch) * d_in])?;
        loss_curve.push(loss);
        progress(s + 1, config.steps, loss.total());
    }
    let end = Instant::now();
    let wall_s = (end - t0).as_secs_f64();
    let (timed_steps, timed_s) = if config.steps > 1 {
        (config.steps - 1, (end - t1).as_secs_f64())
    } else {
        (1, wall_s)
    };
    let eval_rows = rows.min(config.eval_rows);
    let metrics = trainer.evaluate(&data[..eval_rows * d_in])?;
    let train_dead_fraction = trainer.dead.dead_fraction();
    let adam_steps = trainer.adam.step_count();
    let Trainer {
        model, state, dead, ..
    } = trainer;
    Ok(TrainOutcome {
        model,
        loss_curve,
        metrics,
        train_dead_fraction,
        wall_s,
        rows_per_s: (timed_steps * config.batch) as f64 / timed_s,
        adam_state: state,
        adam_steps,
        dead_tracker: dead,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_tracker_counts_rows_since_last_fire() {
        let mut t = DeadTracker::new(3, 100);
        t.record(&[true, false, false], 60);
        assert_eq!(t.rows_since_fired(), &[0, 60, 60]);
        assert_eq!(t.dead_fraction(), 0.0);
        t.record(&[false, true, false], 40);
        assert_eq!(t.rows_since_fired(), &[40, 0, 100]);
        let mut mask = Vec::new();
        t.dead_mask(&mut mask);
        assert_eq!(mask, vec![false, false, true]);
        assert!((t.dead_fraction() - 1.0 / 3.0).abs() < 1e-12);
        t.record(&[false, false, true], 60);
        t.dead_mask(&mut mask);
        assert_eq!(
            mask,
            vec![true, false, false],
            "firing revives a dead latent; 100 rows idle kills one"
        );
    }

    #[test]
    fn trainer_uses_the_reference_batch_schedule() {
        // 10 rows, batch 4: starts are (s * 4) % 7 = 0, 4, 1, 5, 2, ... as in the peer.
        let starts: Vec<usize> = (0..5).map(|s| (s * 4) % (10 - 4 + 1)).collect();
        assert_eq!(starts, vec![0, 4, 1, 5, 2]);
        // A model trained on rows where only the selected slice differs must differ from one
        // trained on constant data: checks that `train` slices data per step at all.
        let d = 2;
        let mut x = vec![1.0f32; 10 * d];
        let cfg = TrainConfig {
            batch: 4,
            steps: 3,
            threads: 1,
            ..TrainConfig::new(4, 1)
        };
        let base = train(&cfg, &x, d, &mut |_, _, _| {}).unwrap();
        x[9 * d] = 5.0; // row 9 is never in any batch of 3 steps (starts 0, 4, 1)
        let same = train(&cfg, &x, d, &mut |_, _, _| {}).unwrap();
        assert_eq!(base.model, same.model);
        x[4 * d] = 5.0; // row 4 is in step 2's batch
        let moved = train(&cfg, &x, d, &mut |_, _, _| {}).unwrap();
        assert_ne!(base.model, moved.model);
    }
}
