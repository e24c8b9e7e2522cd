//! husai trainer plugin `sae-batchtopk`: BatchTopK sparse autoencoders (Bussmann, Leask and Nanda 2024,
//! "BatchTopK Sparse Autoencoders") on CPU, following the trainer contract (`docs/trainer-contract.md`).
//!
//! Training keeps the `batch · k` largest post-ReLU pre-activations of the whole batch (so row L0 varies while the
//! batch mean is exactly k; ties at the cutoff go to the earlier row, then the lower latent), with AuxK on by
//! default. Inference uses one global threshold θ, estimated during training as SAELens estimates it (a moving
//! average of each step's smallest kept activation, rate `threshold_lr`); `husai_kernels::families::BatchTopK`
//! states the rule. This file is only glue: the config ([`config`]) and `husai_kernels::trainer::run_family`.
//!
//! Outputs: `cfg.json` + `sae_weights.safetensors` in SAELens's layout for architecture `jumprelu` (SAELens saves
//! a trained BatchTopK SAE as a JumpReLU SAE whose `threshold` tensor is θ for every latent; `SAE.load_from_disk`
//! loads ours the same way), `trainer_state.safetensors` (with θ as `family_state.threshold`), `metrics.json`
//! (held-out and training FVU, MSE, dead fraction, inference-rule `l0`, training-rule `l0_train_rule`, and
//! `threshold`) and `metrics.jsonl`.

mod config;

use husai_kernels::engine::EngineConfig;
use husai_kernels::families::BatchTopK;
use husai_kernels::trainer::plugin::TrainerConfig;
use husai_kernels::trainer::{CommonConfig, TrainerError};
use serde_json::{Map, Value};

pub use config::{BatchTopKConfig, DEFAULT_AUX_COEFF, FAMILY_KEYS, config_schema};
pub use husai_kernels::trainer::family_run::OUTPUTS;

impl TrainerConfig for BatchTopKConfig {
    const PLUGIN: &'static str = "sae-batchtopk";
    const ARCHITECTURES: &'static [&'static str] = &["batchtopk"];
    const TRAIN_RULE_L0: bool = true;
    type Family = BatchTopK;

    fn schema() -> Value {
        config_schema()
    }
    fn from_json(config: &Value) -> Result<Self, TrainerError> {
        BatchTopKConfig::from_json(config)
    }
    fn effective(&self) -> Map<String, Value> {
        BatchTopKConfig::effective(self)
    }
    fn common(&self) -> &CommonConfig {
        &self.common
    }
    fn family(&self) -> BatchTopK {
        BatchTopKConfig::family(self)
    }
    fn engine_config(&self, d_in: usize) -> EngineConfig {
        BatchTopKConfig::engine_config(self, d_in)
    }
}

husai_kernels::export_trainer!(BatchTopKConfig);

#[cfg(test)]
mod tests;
