//! The standard SAE's activation rule and sparsity penalty, as plain functions over one row's sparse code.
//!
//! ```text
//! pre = (x - b_dec) · W_enc + b_enc
//! z   = ReLU(pre)                                   sparse: only the positive entries are kept
//! P   = λ_t · Σ_i z_i · w_i                         per row, averaged over the batch
//! ```
//!
//! `w_i` is the decoder row norm `‖W_dec,i‖` in the default variant: Anthropic's April 2024 update ("Circuits
//! Updates — April 2024", "Training Sparse Autoencoders") weights each latent's L1 term by its decoder norm, so the
//! penalty cannot be dodged by shrinking `z` and growing `W_dec`, and the decoder needs no renormalisation. SAELens's
//! `standard` training SAE computes the same (`(feature_acts * W_dec.norm(dim=1)).norm(p=1, dim=-1)`, mean over the
//! batch). In the `unit_norm` variant `w_i = 1` (plain L1) and the decoder rows are renormalised to unit norm after
//! every step, the older recipe (Bricken et al. 2023, "Towards Monosemanticity").
//!
//! Gradients (for `z_i > 0`; the ReLU passes nothing where `z_i = 0`):
//!
//! ```text
//! ∂P/∂z_i      = λ_t · w_i
//! ∂P/∂W_dec,i  = λ_t · z_i · W_dec,i / ‖W_dec,i‖      (norm-weighted variant only; summed over rows, / B)
//! ```

/// Which weight each latent's L1 term carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighting {
    /// `w_i = ‖W_dec,i‖`, decoder rows free (SAELens `standard`, Anthropic April 2024).
    DecoderNorm,
    /// `w_i = 1`, decoder rows renormalised to unit norm after every step.
    UnitNorm,
}

impl Weighting {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Weighting::DecoderNorm => "decoder_norm",
            Weighting::UnitNorm => "unit_norm",
        }
    }
}

/// λ for the step that has `steps_done` steps before it: a linear warm-up from 0 over `warmup_steps` steps, then
/// `lambda`. This is SAELens's coefficient schedule (`CoefficientScheduler`: starts at 0.0 when warm-up is on, rises
/// by `final / warm_up_steps` per step); `warmup_steps = 0` is `lambda` from the first step.
pub fn lambda_at(lambda: f64, warmup_steps: u64, steps_done: u64) -> f64 {
    if warmup_steps == 0 || steps_done >= warmup_steps {
        lambda
    } else {
        lambda * steps_done as f64 / warmup_steps as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_is_linear_from_zero_as_saelens_schedules_it() {
        assert_eq!(lambda_at(2.0, 0, 0), 2.0);
        assert_eq!(lambda_at(2.0, 4, 0), 0.0);
        assert_eq!(lambda_at(2.0, 4, 1), 0.5);
        assert_eq!(lambda_at(2.0, 4, 3), 1.5);
        assert_eq!(lambda_at(2.0, 4, 4), 2.0);
        assert_eq!(lambda_at(2.0, 4, 100), 2.0);
    }
}
