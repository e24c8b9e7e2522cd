//! The HierarchicalTopK family (Balagansky et al. 2025, "Train One Sparse Autoencoder Across Multiple Sparsity
//! Budgets to Preserve Interpretability and Accuracy", §3): TopK's rule with K latents per row (kept whole, from
//! `husai_kernels::families::TopK`, which writes a row's slots in decreasing order of value), trained on
//!
//! ```text
//! L = (1/K) Σ_{k'=1..K} ||x − (b_dec + Σ_{i < k'} z_(i) W_dec[j_(i)])||²   (+ AuxK on the full residual)
//! ```
//!
//! where z_(0) ≥ z_(1) ≥ … are the row's kept values: the reconstruction from every prefix of the sorted code is
//! trained, so the one SAE serves any budget k' ≤ K. The engine computes all K partial losses and their gradients
//! in one pass per row, O(K · d_in) on top of the decode ([`husai_kernels::family::Nesting`], `Levels::Ranks`),
//! never K separate decodes.

use husai_kernels::families::TopK;
use husai_kernels::family::{DecoderNorm, Family, Levels, Nesting, Rule, SlotCode, StepCtx};
use serde_json::{Map, Value};

/// HierarchicalTopK: the rule of [`TopK`] with `k = K`, the objective averaged over every k' ≤ K.
#[derive(Debug, Clone, PartialEq)]
pub struct HierarchicalTopK {
    inner: TopK,
    nest: Nesting,
}

impl HierarchicalTopK {
    /// The family for `k` (K) latents per row among `d_sae`.
    pub fn new(k: usize, d_sae: usize) -> Self {
        Self {
            inner: TopK::new(k, d_sae),
            nest: Nesting {
                levels: Levels::Ranks(k),
                weights: vec![1.0 / k as f32; k],
                figure_names: (1..=k).map(|i| format!("fvu_k_{i}")).collect(),
            },
        }
    }
}

impl Family for HierarchicalTopK {
    fn name(&self) -> &'static str {
        "hierarchical_topk"
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

    /// Saved as a SAELens TopK SAE with `k = K`; loading it with a smaller `k` is the model at that budget.
    fn saelens_architecture(&self) -> &'static str {
        self.inner.saelens_architecture()
    }

    fn saelens_config(&self, cfg: &mut Map<String, Value>) {
        self.inner.saelens_config(cfg)
    }
}
