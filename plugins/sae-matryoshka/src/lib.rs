//! husai trainer plugin `sae-matryoshka`: Matryoshka BatchTopK sparse autoencoders (Bussmann et al. 2025,
//! "Learning Multi-Level Features with Matryoshka Sparse Autoencoders"; SAELens's `matryoshka_batchtopk`) on CPU,
//! following the trainer contract (`docs/trainer-contract.md`).
//!
//! One BatchTopK selection over the whole dictionary; the loss sums, at weight 1 each, the reconstruction error
//! of every nested prefix m_1 < … < m_n = d_sae from its first m_i latents alone ([`family`] states it), so the
//! first latents must explain what they can without the later ones. AuxK is on by default, on the full residual.
//! Inference is BatchTopK's: one global threshold θ estimated during training.
//!
//! Outputs: `cfg.json` + `sae_weights.safetensors` in SAELens's layout for architecture `jumprelu` (SAELens saves
//! a trained Matryoshka BatchTopK SAE as a JumpReLU SAE whose `threshold` is θ for every latent),
//! `trainer_state.safetensors` (θ as `family_state.threshold`), `metrics.json` (the shared metrics, the
//! inference-rule `l0`, the training-rule `l0_train_rule`, `threshold`, and one held-out FVU per prefix,
//! `fvu_prefix_<m>`, the last equal to `fvu`) and `metrics.jsonl` (whose optimised term is `nested_mse`, the sum
//! over prefixes, beside `aux`).

mod config;
mod family;

use husai_kernels::engine::EngineConfig;
use husai_kernels::trainer::plugin::TrainerConfig;
use husai_kernels::trainer::{CommonConfig, TrainerError};
use serde_json::{Map, Value};

pub use config::{FAMILY_KEYS, MatryoshkaConfig, config_schema, default_widths};
pub use family::Matryoshka;
pub use husai_kernels::trainer::family_run::OUTPUTS;

impl TrainerConfig for MatryoshkaConfig {
    const PLUGIN: &'static str = "sae-matryoshka";
    const ARCHITECTURES: &'static [&'static str] = &["matryoshka_batchtopk"];
    const TRAIN_RULE_L0: bool = true;
    type Family = Matryoshka;

    fn schema() -> Value {
        config_schema()
    }
    fn from_json(config: &Value) -> Result<Self, TrainerError> {
        MatryoshkaConfig::from_json(config)
    }
    fn effective(&self) -> Map<String, Value> {
        MatryoshkaConfig::effective(self)
    }
    fn common(&self) -> &CommonConfig {
        &self.common
    }
    fn family(&self) -> Matryoshka {
        MatryoshkaConfig::family(self)
    }
    fn engine_config(&self, d_in: usize) -> EngineConfig {
        MatryoshkaConfig::engine_config(self, d_in)
    }
}

husai_kernels::export_trainer!(MatryoshkaConfig);

#[cfg(test)]
mod tests;
