//! The Matryoshka family: BatchTopK's activation rule (kept whole, from `husai_kernels::families::BatchTopK`) with
//! the nested prefix objective of Bussmann et al. 2025 ("Learning Multi-Level Features with Matryoshka Sparse
//! Autoencoders", §3): with widths m_1 < … < m_n = d_sae,
//!
//! ```text
//! L = Σ_i ||x − (b_dec + Σ_{j < m_i} z_j W_dec[j])||²   (+ AuxK on the full residual)
//! ```
//!
//! every prefix a full reconstruction at weight 1, over the one batch-wide selection of the whole dictionary (as
//! the paper and SAELens's `matryoshka_batchtopk` do; upstream HUSAI weighted its prefix terms by 0.2). The engine
//! computes every prefix's loss and gradient in one pass per row ([`husai_kernels::family::Nesting`]).

use husai_kernels::families::BatchTopK;
use husai_kernels::family::{DecoderNorm, Family, Levels, Nesting, Rule, SlotCode, StepCtx};
use serde_json::{Map, Value};

/// Matryoshka BatchTopK: the rule of [`BatchTopK`], the prefix objective of its widths.
#[derive(Debug, Clone, PartialEq)]
pub struct Matryoshka {
    inner: BatchTopK,
    nest: Nesting,
}

impl Matryoshka {
    /// The family for `widths` (strictly increasing, the last = d_sae; the config checks them) over BatchTopK
    /// with batch-mean `k` and the threshold's moving-average rate.
    pub fn new(k: usize, threshold_lr: f64, widths: &[usize]) -> Self {
        Self {
            inner: BatchTopK::new(k, threshold_lr),
            nest: Nesting {
                levels: Levels::Prefixes(widths.iter().map(|&w| w as u32).collect()),
                weights: vec![1.0; widths.len()],
                figure_names: widths.iter().map(|w| format!("fvu_prefix_{w}")).collect(),
            },
        }
    }

    /// The BatchTopK rule underneath (its inference threshold).
    pub fn batchtopk(&self) -> &BatchTopK {
        &self.inner
    }
}

impl Family for Matryoshka {
    fn name(&self) -> &'static str {
        "matryoshka_batchtopk"
    }

    fn decoder_norm(&self) -> DecoderNorm {
        self.inner.decoder_norm()
    }

    fn nesting(&self) -> Option<&Nesting> {
        Some(&self.nest)
    }

    fn activate(&self, rule: Rule, ctx: &StepCtx<'_>, pre: &[f32], code: &mut SlotCode) {
        self.inner.activate(rule, ctx, pre, code)
    }

    fn observe(&mut self, code: &SlotCode, ctx: &StepCtx<'_>) {
        self.inner.observe(code, ctx)
    }

    fn state(&self) -> Vec<(&'static str, Vec<f64>)> {
        self.inner.state()
    }

    fn restore_state(&mut self, state: &[(String, Vec<f64>)]) -> Result<(), String> {
        self.inner.restore_state(state)
    }

    fn figures(&self, params: &[Vec<f32>]) -> Vec<(String, f64)> {
        self.inner.figures(params)
    }

    /// Saved as SAELens saves a trained Matryoshka BatchTopK SAE: a JumpReLU SAE whose threshold is θ for every
    /// latent.
    fn saelens_architecture(&self) -> &'static str {
        self.inner.saelens_architecture()
    }

    fn saelens_config(&self, cfg: &mut Map<String, Value>) {
        self.inner.saelens_config(cfg)
    }

    fn saelens_tensors(
        &self,
        params: &[Vec<f32>],
        d_sae: usize,
    ) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        self.inner.saelens_tensors(params, d_sae)
    }
}
