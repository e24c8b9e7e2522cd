//! The standard SAE as a [`Family`] on the kernels' shared engine: the ReLU rule, the L1 term and the decoder-norm
//! policy ([`crate::penalty`] states the maths). Everything else (encoder GEMM, sparse decode, sparse backward,
//! Adam, dead latents, evaluation) is `husai_kernels::engine`.

use husai_kernels::family::{DecoderNorm, Family, LossCtx, Rule, SlotCode, StepCtx};
use husai_kernels::inference::relu_row;

use crate::penalty::{Weighting, lambda_at};

/// The family name recorded in `trainer_state.safetensors`.
pub const FAMILY: &str = "relu";

/// ReLU + L1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Relu {
    /// λ after warm-up.
    pub lambda: f64,
    /// Warm-up steps of λ.
    pub warmup_steps: u64,
    /// Norm-weighted or plain L1.
    pub weighting: Weighting,
}

impl Relu {
    /// λ of the step with `steps_done` steps before it.
    pub fn lambda_at(&self, steps_done: u64) -> f64 {
        lambda_at(self.lambda, self.warmup_steps, steps_done)
    }
}

impl Family for Relu {
    fn name(&self) -> &'static str {
        FAMILY
    }

    fn decoder_norm(&self) -> DecoderNorm {
        match self.weighting {
            Weighting::DecoderNorm => DecoderNorm::Free,
            Weighting::UnitNorm => DecoderNorm::UnitEachStep,
        }
    }

    /// Training and inference apply the same rule, the kernels' [`relu_row`] (what `data encode` applies to a
    /// `standard` checkpoint): every positive pre-activation is a slot, in index order (the ReLU needs no gradient
    /// slots: its derivative is 0 wherever z is).
    fn activate(&self, _rule: Rule, ctx: &StepCtx<'_>, pre: &[f32], code: &mut SlotCode) {
        code.fill_rows(pre, ctx.d_sae, |_, p, out| relu_row(p, out));
    }

    /// `l1 = λ_t/B · Σ_rows Σ_i z_i w_i`, `w_i = ‖W_dec,i‖` (or 1): adds `λ_t/B · w_i` to each slot's `∂L/∂z` and,
    /// norm-weighted, `c_i = λ_t/B · Σ_rows z_i / ‖W_dec,i‖` to the decoder coefficient (the engine adds
    /// `c_i · W_dec,i`, which is `∂/∂W_dec,i` of `λ_t/B Σ z_i ‖W_dec,i‖`).
    fn loss_terms(&self, code: &SlotCode, ctx: &mut LossCtx<'_>) -> Vec<(&'static str, f64)> {
        let scale = self.lambda_at(ctx.step.step) / ctx.step.rows as f64;
        let weighted = self.weighting == Weighting::DecoderNorm;
        let mut z_sum = vec![0f64; ctx.step.d_sae];
        let mut total = 0f64;
        for ((d, &j), &z) in ctx.dz.iter_mut().zip(&code.idx).zip(&code.val) {
            let w = if weighted {
                ctx.dec_norms[j as usize]
            } else {
                1.0
            };
            total += f64::from(z) * f64::from(w);
            *d += (scale * f64::from(w)) as f32;
            z_sum[j as usize] += f64::from(z);
        }
        if weighted {
            for ((c, &s), &n) in ctx.dw_dec_scale.iter_mut().zip(&z_sum).zip(ctx.dec_norms) {
                if s != 0.0 && n > 0.0 {
                    *c += (scale * s / f64::from(n)) as f32;
                }
            }
        }
        vec![("l1", scale * total)]
    }

    fn saelens_architecture(&self) -> &'static str {
        "standard"
    }
}
