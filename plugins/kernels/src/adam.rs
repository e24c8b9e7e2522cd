//! Adam (Kingma & Ba, 2015) in the update order and with the bias correction of PyTorch's
//! `torch.optim.Adam` (non-fused, no weight decay, no amsgrad). All tensor arithmetic is f32:
//!
//! ```text
//! m <- m + (1 - beta1) * (g - m)                 (torch: exp_avg.lerp_(grad, 1 - beta1))
//! v <- beta2 * v + (1 - beta2) * g * g           (torch: mul_(beta2).addcmul_(grad, grad, 1 - beta2))
//! step_size = lr / (1 - beta1^t)                 bias corrections in f64, then rounded to f32
//! denom     = sqrt(v) / sqrt(1 - beta2^t) + eps
//! p <- p - step_size * (m / denom)
//! ```
//!
//! It is close to torch's, not bit-identical: the weights `1 - beta1` and `1 - beta2` are computed
//! here in f32 from the f32 betas (`1 - 0.9f32 = 0.10000002`, `1 - 0.999f32 = 0.00099998713`),
//! while torch computes them in f64 from Python floats and rounds the result to f32
//! (`0.10000000149`, `0.0010000000475`). The moments, and through them the weights, therefore
//! differ from torch's in the last bits from the first step on. The bias corrections are computed
//! in f64, as torch does.
//!
//! State is dense: parameters whose gradient is zero this step still move (their moments decay),
//! as in PyTorch. Elementwise work is split into fixed chunks, so the result does not depend on
//! the thread count.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::KernelError;

/// Adam hyper-parameters. Defaults are PyTorch's (`betas=(0.9, 0.999)`, `eps=1e-8`), with
/// `lr = 1e-3`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl AdamConfig {
    /// Rejects values for which Adam is undefined or diverges by construction.
    pub fn validate(&self) -> Result<(), KernelError> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(KernelError::Config {
                field: "lr",
                value: self.lr.to_string(),
                reason: "must be a finite number > 0".into(),
            });
        }
        for (field, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(KernelError::Config {
                    field,
                    value: b.to_string(),
                    reason: "must be in [0, 1)".into(),
                });
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(KernelError::Config {
                field: "eps",
                value: self.eps.to_string(),
                reason: "must be a finite number > 0".into(),
            });
        }
        Ok(())
    }
}

/// First and second moments of one parameter tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    /// First moment (`exp_avg`).
    pub m: Vec<f32>,
    /// Second moment (`exp_avg_sq`).
    pub v: Vec<f32>,
}

impl Moments {
    /// Zero moments for a tensor of `len` values.
    pub fn zeros(len: usize) -> Self {
        Self {
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }
}

/// Elements per parallel task: large enough to amortise scheduling, fixed so results never depend
/// on the thread count (the update is elementwise anyway).
const CHUNK: usize = 16 * 1024;

/// The optimiser: configuration plus the step counter shared by all tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    config: AdamConfig,
    step: u64,
}

impl Adam {
    /// A fresh optimiser (step 0). Fails on invalid hyper-parameters.
    pub fn new(config: AdamConfig) -> Result<Self, KernelError> {
        config.validate()?;
        Ok(Self { config, step: 0 })
    }

    /// Resumes at a given step count (e.g. from a checkpoint).
    pub fn with_step(config: AdamConfig, step: u64) -> Result<Self, KernelError> {
        config.validate()?;
        Ok(Self { config, step })
    }

    /// Number of completed steps.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The hyper-parameters.
    pub fn config(&self) -> AdamConfig {
        self.config
    }

    /// Starts a new step: call once per optimiser step, before the [`Adam::update`] calls.
    pub fn begin_step(&mut self) {
        self.step += 1;
    }

    /// Applies the update of the current step to one tensor.
    pub fn update(
        &self,
        param: &mut [f32],
        grad: &[f32],
        state: &mut Moments,
    ) -> Result<(), KernelError> {
        let n = param.len();
        for (what, len) in [
            ("grad", grad.len()),
            ("adam m", state.m.len()),
            ("adam v", state.v.len()),
        ] {
            if len != n {
                return Err(KernelError::Mismatch {
                    what: "adam update".into(),
                    detail: format!("parameter has {n} values but {what} has {len}"),
                });
            }
        }
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
        } = self.config;
        let t = self.step.max(1) as i32;
        // Bias corrections in f64 as in PyTorch (Python floats), then used as f32 scalars.
        let bc1 = 1.0 - (beta1 as f64).powi(t);
        let bc2 = 1.0 - (beta2 as f64).powi(t);
        let step_size = (lr as f64 / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let (w1, w2) = (1.0 - beta1, 1.0 - beta2);
        param
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(state.m.par_chunks_mut(CHUNK))
            .zip(state.v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| {
                for i in 0..p.len() {
                    let gi = g[i];
                    m[i] += w1 * (gi - m[i]);
                    v[i] = beta2 * v[i] + w2 * gi * gi;
                    let denom = v[i].sqrt() / bc2_sqrt + eps;
                    p[i] -= step_size * (m[i] / denom);
                }
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_weight_by_lr_against_the_gradient_sign() {
        // With bias correction, step 1 gives m_hat = g, v_hat = g^2, so the move is lr*g/(|g|+eps).
        let mut adam = Adam::new(AdamConfig {
            lr: 0.1,
            ..Default::default()
        })
        .unwrap();
        let mut p = vec![1.0f32, 1.0, 1.0];
        let g = [2.0f32, -0.5, 0.0];
        let mut st = Moments::zeros(3);
        adam.begin_step();
        adam.update(&mut p, &g, &mut st).unwrap();
        assert!(
            (p[0] - 0.9).abs() < 1e-6 && (p[1] - 1.1).abs() < 1e-6 && p[2] == 1.0,
            "{p:?}"
        );
    }

    /// A scalar transcription of the update above (with this module's f32 `1 - beta` weights, not
    /// torch's f64-then-f32 ones): the vectorised, chunked update matches it bit for bit.
    #[test]
    fn matches_a_scalar_transcription_of_the_update_over_many_steps() {
        let cfg = AdamConfig::default();
        let mut adam = Adam::new(cfg).unwrap();
        let mut p = vec![0.3f32; 40_000];
        let mut st = Moments::zeros(p.len());
        let (mut q, mut m, mut v) = (0.3f32, 0.0f32, 0.0f32);
        for t in 1..=25 {
            let g: Vec<f32> = (0..p.len())
                .map(|i| ((i + t) % 7) as f32 * 0.1 - 0.3)
                .collect();
            adam.begin_step();
            adam.update(&mut p, &g, &mut st).unwrap();
            let g0 = g[0];
            m += (1.0 - cfg.beta1) * (g0 - m);
            v = cfg.beta2 * v + (1.0 - cfg.beta2) * g0 * g0;
            let bc1 = 1.0 - (cfg.beta1 as f64).powi(t as i32);
            let bc2 = 1.0 - (cfg.beta2 as f64).powi(t as i32);
            q -= (cfg.lr as f64 / bc1) as f32 * (m / (v.sqrt() / bc2.sqrt() as f32 + cfg.eps));
        }
        assert_eq!(p[0].to_bits(), q.to_bits());
        assert_eq!(adam.step_count(), 25);
    }

    #[test]
    fn bad_config_and_shapes_are_rejected_with_the_field_named() {
        let e = Adam::new(AdamConfig {
            beta2: 1.0,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "config field `beta2` = 1 is invalid: must be in [0, 1)"
        );
        let e = Adam::new(AdamConfig {
            lr: f32::NAN,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "config field `lr` = NaN is invalid: must be a finite number > 0"
        );
        let adam = Adam::new(AdamConfig::default()).unwrap();
        let e = adam
            .update(&mut [0.0; 2], &[0.0; 3], &mut Moments::zeros(2))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "adam update: dimension mismatch (parameter has 2 values but grad has 3)"
        );
    }
}
