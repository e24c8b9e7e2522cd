//! JumpReLU as a [`Family`] on the kernels' shared engine: the jump rule with its gradient slots, the sparsity
//! penalty, the threshold's straight-through gradient and the target-L0 controller ([`crate::jump`] and
//! [`crate::target`] state the maths). Everything else is `husai_kernels::engine`.

use husai_kernels::family::{
    DecoderNorm, Family, FamilyParam, LossCtx, PreGradCtx, Rule, SlotCode, StepCtx,
};
use husai_kernels::inference::jump_row;

use crate::jump::{Sparsity, entry_dtheta, in_band};
use crate::target::L0Controller;

/// The family name recorded in `trainer_state.safetensors`.
pub const FAMILY: &str = "jumprelu";

/// The family parameter `t = log θ` (SAELens's `log_threshold`).
pub const LOG_THRESHOLD: &str = "log_threshold";

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
    /// λ after warm-up (fixed-λ mode).
    pub lambda: f64,
    /// λ's warm-up steps (fixed-λ mode).
    pub warmup_steps: u64,
    /// Target-L0 mode.
    pub controller: Option<L0Controller>,
}

/// θ = exp(t), in f32 exactly as saved and as inference compares it.
pub fn thresholds(log_threshold: &[f32]) -> Vec<f32> {
    log_threshold.iter().map(|t| t.exp()).collect()
}

impl JumpRelu {
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
            name: LOG_THRESHOLD,
            init: vec![self.init_threshold.ln(); d_sae],
        }]
    }

    /// Rows are free, as SAELens's JumpReLU leaves them (the tanh penalty weights by their norms; the step does
    /// not need to).
    fn decoder_norm(&self) -> DecoderNorm {
        DecoderNorm::Free
    }

    /// Active latents (`h > θ`, value `h`) in index order; training adds the gradient slots `|h - θ| < ε/2` with
    /// value 0. Inference is the kernels' [`jump_row`] (what `data encode` applies to a `jumprelu` checkpoint; its
    /// `h > 0` holds wherever `h > θ`, as θ = exp(t) > 0).
    fn activate(&self, rule: Rule, ctx: &StepCtx<'_>, pre: &[f32], code: &mut SlotCode) {
        let theta = thresholds(&ctx.params[0]);
        if rule == Rule::Infer {
            code.fill_rows(pre, ctx.d_sae, |_, p, out| jump_row(p, &theta, out));
            return;
        }
        let eps = self.bandwidth;
        code.fill_rows(pre, ctx.d_sae, |_, p, out| {
            for (j, (&h, &t)) in p.iter().zip(&theta).enumerate() {
                if h > t {
                    out.push(j as u32, h, h);
                } else if in_band(h, t, eps) {
                    out.push(j as u32, 0.0, h);
                }
            }
        });
    }

    /// `l0` (step: `λ_t/B · #active`; tanh: `λ_t/B · Σ tanh(c z ‖W_dec,i‖)`), with tanh's `∂/∂z` into the slots and
    /// its `∂/∂‖W_dec,i‖ / ‖W_dec,i‖` into the decoder coefficient. The step's θ-gradient is in `pre_grad`.
    fn loss_terms(&self, code: &SlotCode, ctx: &mut LossCtx<'_>) -> Vec<(&'static str, f64)> {
        let scale = self.lambda_at(ctx.step.step) / ctx.step.rows as f64;
        let mut total = 0f64;
        for ((d, &j), &z) in ctx.dz.iter_mut().zip(&code.idx).zip(&code.val) {
            let n = ctx.dec_norms[j as usize];
            total += self.sparsity.entry(z, n);
            if let Sparsity::Tanh { .. } = self.sparsity {
                *d += (scale * self.sparsity.dz(z, n)) as f32;
                if z != 0.0 && n > 0.0 {
                    ctx.dw_dec_scale[j as usize] +=
                        (scale * self.sparsity.dnorm(z, n) / f64::from(n)) as f32;
                }
            }
        }
        vec![("l0", scale * total)]
    }

    /// `∂L/∂h = ∂L/∂z` on active slots (no straight-through into h); `∂L/∂t_j = θ_j Σ_slots [∂L/∂z · ∂z/∂θ + λ_t/B ·
    /// ∂P/∂θ]`, summed serially in slot order (deterministic).
    fn pre_grad(&self, code: &SlotCode, ctx: &mut PreGradCtx<'_>) {
        let theta = thresholds(&ctx.step.params[0]);
        let lambda = self.lambda_at(ctx.step.step);
        let scale = 1.0 / ctx.step.rows as f64;
        let mut g_theta = vec![0f64; ctx.step.d_sae];
        for s in 0..code.slots() {
            let (j, z, h, g) = (code.idx[s] as usize, code.val[s], code.pre[s], ctx.dz[s]);
            ctx.dpre[s] = if z != 0.0 { g } else { 0.0 };
            g_theta[j] += entry_dtheta(
                self.sparsity,
                h,
                theta[j],
                self.bandwidth,
                f64::from(g),
                lambda,
                scale,
            );
        }
        for ((o, &g), &t) in ctx.param_grads[0].iter_mut().zip(&g_theta).zip(&theta) {
            *o = (f64::from(t) * g) as f32;
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
        let mut theta = thresholds(&params[0]);
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

    /// SAELens's inference `JumpReLUSAE` has a `threshold` tensor (it saves `exp(log_threshold)` under that name).
    fn saelens_tensors(
        &self,
        params: &[Vec<f32>],
        d_sae: usize,
    ) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        vec![("threshold".into(), vec![d_sae], thresholds(&params[0]))]
    }
}
