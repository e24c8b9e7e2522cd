//! husai trainer plugin `sae-hierarchical-topk`: HierarchicalTopK sparse autoencoders (Balagansky et al. 2025,
//! "Train One Sparse Autoencoder Across Multiple Sparsity Budgets to Preserve Interpretability and Accuracy") on
//! CPU, following the trainer contract (`docs/trainer-contract.md`).
//!
//! One TopK SAE with K latents per row, trained so that the reconstruction from its k' largest latents is good
//! for every k' ≤ K: the loss averages the K partial reconstruction errors ([`family`] states it), all computed
//! in one pass per row. AuxK is on by default, on the full residual.
//!
//! Outputs: `cfg.json` + `sae_weights.safetensors` in SAELens's `topk` layout with `k = K` (load it with a smaller
//! `k` for a smaller budget), `trainer_state.safetensors`, `metrics.json` (the shared metrics and the held-out
//! FVU-versus-k' curve of the one model, `fvu_k_1` … `fvu_k_<K>`, the last equal to `fvu`) and `metrics.jsonl`
//! (whose optimised term is `nested_mse`, the mean over k', beside `aux`).

mod config;
mod family;

use husai_kernels::engine::EngineConfig;
use husai_kernels::trainer::plugin::TrainerConfig;
use husai_kernels::trainer::{CommonConfig, TrainerError};
use serde_json::{Map, Value};

pub use config::{FAMILY_KEYS, HierarchicalConfig, config_schema};
pub use family::HierarchicalTopK;
pub use husai_kernels::trainer::family_run::OUTPUTS;

impl TrainerConfig for HierarchicalConfig {
    const PLUGIN: &'static str = "sae-hierarchical-topk";
    const ARCHITECTURES: &'static [&'static str] = &["hierarchical_topk"];
    type Family = HierarchicalTopK;

    fn schema() -> Value {
        config_schema()
    }
    fn from_json(config: &Value) -> Result<Self, TrainerError> {
        HierarchicalConfig::from_json(config)
    }
    fn effective(&self) -> Map<String, Value> {
        HierarchicalConfig::effective(self)
    }
    fn common(&self) -> &CommonConfig {
        &self.common
    }
    fn family(&self) -> HierarchicalTopK {
        HierarchicalConfig::family(self)
    }
    fn engine_config(&self, d_in: usize) -> EngineConfig {
        HierarchicalConfig::engine_config(self, d_in)
    }
}

husai_kernels::export_trainer!(HierarchicalConfig);

#[cfg(test)]
mod tests;
