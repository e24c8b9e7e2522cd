//! husai trainer plugin `sae-topk`: TopK sparse autoencoders on CPU, following the trainer contract
//! (`docs/trainer-contract.md`). This file is only TopK's glue: its config keys ([`config`]), building the kernels'
//! TopK trainer, and its checkpoint and state files. Everything every trainer shares (common keys, inputs and
//! held-out rows, metric stream, divergence, interruption, summary and result JSON) is
//! `husai_kernels::trainer`.
//!
//! Inputs by role: `activations` (required), `eval_activations` (optional, with `eval = {"data": true}`), `resume`
//! (optional: the output directory of an earlier run of the same config, continued bit-exactly).
//!
//! Outputs in the request's output directory:
//!
//! - `cfg.json` + `sae_weights.safetensors`: the SAE in SAELens's layout (`sae_lens.SAE.load_from_disk` loads it as
//!   architecture `topk`); same seed and data give byte-identical weights;
//! - `trainer_state.safetensors`: Adam's moments and step, the data cursor, the generator state and the dead-latent
//!   counters (`husai_kernels::state`);
//! - `metrics.json`: the summary on training and held-out rows; `metrics.jsonl`: the metric stream.

mod config;

use husai_kernels::engine::EngineConfig;
use husai_kernels::families::TopK;
use husai_kernels::trainer::plugin::TrainerConfig;
use husai_kernels::trainer::{CommonConfig, TrainerError};
use serde_json::{Map, Value};

pub use config::{FAMILY_KEYS, TopKConfig, config_schema};
pub use husai_kernels::trainer::ACTIVATIONS_INPUT;
pub use husai_kernels::trainer::topk_keys::DEFAULT_AUX_COEFF;

/// The family name recorded in `trainer_state.safetensors`.
pub const FAMILY: &str = "topk";

/// Every output, in the order the result lists them.
pub use husai_kernels::trainer::family_run::OUTPUTS;

impl TrainerConfig for TopKConfig {
    const PLUGIN: &'static str = "sae-topk";
    const ARCHITECTURES: &'static [&'static str] = &["topk"];
    type Family = TopK;

    fn schema() -> Value {
        config_schema()
    }
    fn from_json(config: &Value) -> Result<Self, TrainerError> {
        TopKConfig::from_json(config)
    }
    fn effective(&self) -> Map<String, Value> {
        TopKConfig::effective(self)
    }
    fn common(&self) -> &CommonConfig {
        &self.common
    }
    fn family(&self) -> TopK {
        TopK::new(self.keys.k, self.common.d_sae)
    }
    fn engine_config(&self, d_in: usize) -> EngineConfig {
        TopKConfig::engine_config(self, d_in)
    }
}

husai_kernels::export_trainer!(TopKConfig);

#[cfg(test)]
mod tests;
