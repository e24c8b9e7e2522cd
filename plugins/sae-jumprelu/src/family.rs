//! JumpReLU as a [`Family`] on the kernels' shared engine: the jump rule with its gradient slots, the sparsity
//! penalty, the threshold's straight-through gradient and the target-L0 controller ([`crate::jump`] and
//! [`crate::target`] state the maths). Everything else is `husai_kernels::engine`.

use husai_kernels::family::{
    DecoderNorm, Family, FamilyParam, LossCtx, PreGradCtx, Rule, SlotCode, StepCtx,
};
use husai_kernels::inference::jump_row;
use rayon::prelude::*;

use crate::jump::{Sparsity, entry_dtheta, in_band};
use crate::target::L0Controller;

/// Slots per parallel task in the slot-wise hooks (fixed, so results never depend on the thread count).
const SLOT_CHUNK: usize = 8192;

/// The family name recorded in `trainer_state.safetensors`.
pub const FAMILY: &str = "jumprelu";

/// The family parameter `t = log θ` (SAELens's `log_threshold` before 6.x), with [`ThresholdParam::Log`].
pub const LOG_THRESHOLD: &str = "log_threshold";

/// The family parameter θ itself, with [`ThresholdParam::Direct`].
pub const THRESHOLD: &str = "threshold";

/// How the per-latent threshold is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdParam {
    /// θ = exp(t), Adam on t (Rajamanoharan et al. 2024): θ stays positive, and moves multiplicatively, by about a
    /// factor e^lr per step.
    Log,
    /// Adam on θ, projected onto θ >= 0 after every update (SAELens 6's parameterisation, its issue #494): θ moves by
    /// about lr per step, so a small initial θ can reach the data's scale within a short run.
    Direct,
}

impl ThresholdParam {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ThresholdParam::Log => "log",
            ThresholdParam::Direct => "direct",
        }
    }

    /// The family parameter's name.
    pub fn param_name(self) -> &'static str {
        match self {
            ThresholdParam::Log => LOG_THRESHOLD,
            ThresholdParam::Direct => THRESHOLD,
        }
    }

    /// θ from the trained parameter, in f32 exactly as saved and as inference compares it.
    pub fn thresholds(self, param: &[f32]) -> Vec<f32> {
        match self {
            ThresholdParam::Log => param.iter().map(|t| t.exp()).collect(),
            ThresholdParam::Direct => param.to_vec(),
        }
    }

    /// The trained parameter at initial threshold θ_0.
    pub fn init(self, theta0: f32) -> f32 {
        match self {
            ThresholdParam::Log => theta0.ln(),
            ThresholdParam::Direct => theta0,
        }
    }

    /// ∂L/∂param from ∂L/∂θ at θ: θ·∂L/∂θ through exp, ∂L/∂θ itself when direct.
    pub fn chain(self, theta: f32, g_theta: f64) -> f64 {
        match self {
            ThresholdParam::Log => f64::from(theta) * g_theta,
            ThresholdParam::Direct => g_theta,
        }
    }
}

/// The controller's state entry in the trainer state.
const LAMBDA_STATE: &str = "lambda";

/// JumpReLU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JumpRelu {
    /// The penalty.
    pub sparsity: Sparsity,
    /// ε.
    pub bandwidth: f32,
    /// θ at initialisation.
    pub init_threshold: f32,
    /// How θ is trained.
    pub param: ThresholdParam,
    /// λ after warm-up (fixed-λ mode).
    pub lambda: f64,
    /// λ's warm-up steps (fixed-λ mode).
    pub warmup_steps: u64,
    /// Target-L0 mode.
    pub controller: Option<L0Controller>,
}

impl JumpRelu {
    /// θ from the trained parameter ([`ThresholdParam::thresholds`]).
    pub fn thresholds(&self, param: &[f32]) -> Vec<f32> {
        self.param.thresholds(param)
    }

    /// λ of the step with `steps_done` steps before it.
    pub fn lambda_at(&self, steps_done: u64) -> f64 {
        match &self.controller {
            Some(c) => c.lambda,
            None if self.warmup_steps == 0 || steps_done >= self.warmup_steps => self.lambda,
            None => self.lambda * steps_done as f64 / self.warmup_steps as f64,
        }
    }
}

/// `q`-quantile (0..=1) of sorted values, by linear interpolation between order statistics (numpy's default).
pub fn quantile(sorted: &[f32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let w = pos - lo as f64;
    f64::from(sorted[lo]) * (1.0 - w) + f64::from(sorted[hi]) * w
}

impl Family for JumpRelu {
    fn name(&self) -> &'static str {
        FAMILY
    }

    fn params(&self, _d_in: usize, d_sae: usize) -> Vec<FamilyParam> {
        vec![FamilyParam {
            name: self.param.param_name(),
            init: vec![self.param.init(self.init_threshold); d_sae],
        }]
    }

    /// Rows are free, as SAELens's JumpReLU leaves them (the tanh penalty weights by their norms; the step does
    /// not need to).
    fn decoder_norm(&self) -> DecoderNorm {
        DecoderNorm::Free
    }

    /// A directly trained θ is kept at θ >= 0 (below zero the gate would pass negative pre-activations).
    fn project(&self, params: &mut [Vec<f32>]) {
        if self.param == ThresholdParam::Direct {
            params[0].iter_mut().for_each(|t| *t = t.max(0.0));
        }
    }

    /// Active latents (`h > θ`, value `h`) in index order; training adds the gradient slots `|h - θ| < ε/2` with
    /// value 0. Inference is the kernels' [`jump_row`] (what `data encode` applies to a `jumprelu` checkpoint; its
    /// `h > 0` holds wherever `h > θ`, as θ >= 0).
    fn activate(&self, rule: Rule, ctx: &StepCtx<'_>, pre: &[f32], code: &mut SlotCode) {
        let theta = self.thresholds(&ctx.params[0]);
        if rule == Rule::Infer {
            code.fill_rows(pre, ctx.d_sae, |_, p, out| jump_row(p, &theta, out));
            return;
        }
        let eps = self.bandwidth;
        code.fill_rows(pre, ctx.d_sae, |_, p, out| {
            for (j, (&h, &t)) in p.iter().zip(&theta).enumerate() {
                // Most latents are far below θ: one f32 comparison (`t - h >= eps` is outside the half-width
                // ε/2 band with room to spare) skips them before the exact band test.
                if h > t {
                    out.push(j as u32, h, h);
                } else if t - h < eps && in_band(h, t, eps) {
                    out.push(j as u32, 0.0, h);
                }
            }
        });
    }

    /// `l0` (step: `λ_t/B · #active`; tanh: `λ_t/B · Σ tanh(c z ‖W_dec,i‖)`), with tanh's `∂/∂z` into the slots and
    /// its `∂/∂‖W_dec,i‖ / ‖W_dec,i‖` into the decoder coefficient. The step's θ-gradient is in `pre_grad`.
    fn loss_terms(&self, code: &SlotCode, ctx: &mut LossCtx<'_>) -> Vec<(&'static str, f64)> {
        let scale = self.lambda_at(ctx.step.step) / ctx.step.rows as f64;
        let (d_sae, norms, sparsity) = (ctx.step.d_sae, ctx.dec_norms, self.sparsity);
        let tanh = matches!(sparsity, Sparsity::Tanh { .. });
        // Fixed slot chunks in parallel, each with its own per-latent partial sums, added in chunk order.
        let parts: Vec<(f64, Vec<f32>)> = ctx
            .dz
            .par_chunks_mut(SLOT_CHUNK)
            .zip(code.idx.par_chunks(SLOT_CHUNK))
            .zip(code.val.par_chunks(SLOT_CHUNK))
            .map(|((dz, idx), val)| {
                let mut total = 0f64;
                let mut dw = if tanh { vec![0f32; d_sae] } else { Vec::new() };
                for ((d, &j), &z) in dz.iter_mut().zip(idx).zip(val) {
                    let n = norms[j as usize];
                    let (p, p_z, p_norm) = sparsity.terms(z, n);
                    total += p;
                    if tanh {
                        *d += (scale * p_z) as f32;
                        if z != 0.0 && n > 0.0 {
                            dw[j as usize] += (scale * p_norm / f64::from(n)) as f32;
                        }
                    }
                }
                (total, dw)
            })
            .collect();
        let mut total = 0f64;
        for (t, dw) in &parts {
            total += t;
            for (o, &v) in ctx.dw_dec_scale.iter_mut().zip(dw) {
                *o += v;
            }
        }
        vec![("l0", scale * total)]
    }

    /// `∂L/∂h = ∂L/∂z` on active slots (no straight-through into h); `∂L/∂θ_j = Σ_slots [∂L/∂z · ∂z/∂θ + λ_t/B ·
    /// ∂P/∂θ]` (fixed slot chunks in parallel, their per-latent sums added in chunk order: deterministic), times
    /// θ_j for `t = log θ`.
    fn pre_grad(&self, code: &SlotCode, ctx: &mut PreGradCtx<'_>) {
        let theta = self.thresholds(&ctx.step.params[0]);
        let lambda = self.lambda_at(ctx.step.step);
        let scale = 1.0 / ctx.step.rows as f64;
        let d_sae = ctx.step.d_sae;
        let (sparsity, eps, theta_ref) = (self.sparsity, self.bandwidth, &theta);
        let parts: Vec<Vec<f64>> = ctx
            .dpre
            .par_chunks_mut(SLOT_CHUNK)
            .zip(code.idx.par_chunks(SLOT_CHUNK))
            .zip(code.val.par_chunks(SLOT_CHUNK))
            .zip(code.pre.par_chunks(SLOT_CHUNK))
            .zip(ctx.dz.par_chunks(SLOT_CHUNK))
            .map(|((((dpre, idx), val), pre), dz)| {
                let mut g_theta = vec![0f64; d_sae];
                for ((((o, &j), &z), &h), &g) in dpre.iter_mut().zip(idx).zip(val).zip(pre).zip(dz)
                {
                    *o = if z != 0.0 { g } else { 0.0 };
                    let j = j as usize;
                    g_theta[j] +=
                        entry_dtheta(sparsity, h, theta_ref[j], eps, f64::from(g), lambda, scale);
                }
                g_theta
            })
            .collect();
        let mut g_theta = vec![0f64; d_sae];
        for part in &parts {
            for (o, &v) in g_theta.iter_mut().zip(part) {
                *o += v;
            }
        }
        for ((o, &g), &t) in ctx.param_grads[0].iter_mut().zip(&g_theta).zip(&theta) {
            *o = self.param.chain(t, g) as f32;
        }
    }

    /// Target-L0 mode: λ follows the step's training L0 (the controller of [`crate::target`]).
    fn observe(&mut self, code: &SlotCode, ctx: &StepCtx<'_>) {
        if let Some(c) = &mut self.controller {
            c.update(code.nnz() as f64 / ctx.rows.max(1) as f64);
        }
    }

    fn state(&self) -> Vec<(&'static str, Vec<f64>)> {
        match &self.controller {
            Some(c) => vec![(LAMBDA_STATE, vec![c.lambda])],
            None => Vec::new(),
        }
    }

    fn restore_state(&mut self, state: &[(String, Vec<f64>)]) -> Result<(), String> {
        match (&mut self.controller, state) {
            (None, []) => Ok(()),
            (Some(c), [(name, v)]) if name == LAMBDA_STATE && v.len() == 1 => {
                c.lambda = v[0];
                Ok(())
            }
            (Some(_), _) => Err(format!(
                "target-L0 mode needs exactly the entry {LAMBDA_STATE:?} (one value), got {:?}",
                state.iter().map(|(n, _)| n).collect::<Vec<_>>()
            )),
            (None, _) => Err(format!(
                "fixed-λ mode has no family state, got {:?}",
                state.iter().map(|(n, _)| n).collect::<Vec<_>>()
            )),
        }
    }

    /// θ's quantiles (min, 10 %, median, 90 %, max) and mean, and λ as it is now.
    fn figures(&self, params: &[Vec<f32>]) -> Vec<(String, f64)> {
        let mut theta = self.thresholds(&params[0]);
        theta.sort_by(f32::total_cmp);
        let mean = theta.iter().map(|&t| f64::from(t)).sum::<f64>() / theta.len().max(1) as f64;
        let mut out: Vec<(String, f64)> = [
            ("min", 0.0),
            ("p10", 0.1),
            ("p50", 0.5),
            ("p90", 0.9),
            ("max", 1.0),
        ]
        .iter()
        .map(|&(n, q)| (format!("threshold_{n}"), quantile(&theta, q)))
        .collect();
        out.push(("threshold_mean".into(), mean));
        out.push(("l0_coeff".into(), self.lambda_at(u64::MAX)));
        out
    }

    fn saelens_architecture(&self) -> &'static str {
        "jumprelu"
    }

    /// SAELens's inference `JumpReLUSAE` has a `threshold` tensor (θ, whichever way it was trained).
    fn saelens_tensors(
        &self,
        params: &[Vec<f32>],
        d_sae: usize,
    ) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        vec![("threshold".into(), vec![d_sae], self.thresholds(&params[0]))]
    }
}
