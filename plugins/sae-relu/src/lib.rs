//! husai trainer plugin `sae-relu`: SAELens's "standard" sparse autoencoder (ReLU, decoder-norm-weighted L1, or
//! plain L1 with unit-norm decoder rows) on CPU, following the trainer contract (`docs/trainer-contract.md`). This
//! crate is only the family: its config keys ([`config`]), its maths ([`penalty`], [`family`]); the run itself
//! (inputs, held-out rows, resume, driver, checkpoint, state, metrics) is `husai_kernels::trainer::family_run` on
//! the shared engine.
//!
//! Outputs: `cfg.json` + `sae_weights.safetensors` (SAELens's layout; `sae_lens.SAE.load_from_disk` loads it as
//! architecture `standard`), `trainer_state.safetensors`, `metrics.json`, `metrics.jsonl`.

pub mod config;
pub mod family;
pub mod penalty;

use husai_kernels::engine::EngineConfig;
use husai_kernels::trainer::plugin::TrainerConfig;
use husai_kernels::trainer::{CommonConfig, TrainerError};
use serde_json::{Map, Value};

pub use config::{ReluConfig, config_schema};
pub use family::{FAMILY, Relu};
pub use husai_kernels::trainer::family_run::OUTPUTS;

impl TrainerConfig for ReluConfig {
    const PLUGIN: &'static str = config::PLUGIN;
    const ARCHITECTURES: &'static [&'static str] = &["standard"];
    type Family = Relu;

    fn schema() -> Value {
        config_schema()
    }
    fn from_json(config: &Value) -> Result<Self, TrainerError> {
        ReluConfig::from_json(config)
    }
    fn effective(&self) -> Map<String, Value> {
        ReluConfig::effective(self)
    }
    fn common(&self) -> &CommonConfig {
        &self.common
    }
    fn family(&self) -> Relu {
        ReluConfig::family(self)
    }
    /// The engine config does not depend on the row width.
    fn engine_config(&self, _d_in: usize) -> EngineConfig {
        ReluConfig::engine_config(self)
    }
}

husai_kernels::export_trainer!(ReluConfig);

#[cfg(test)]
mod plugin_tests;
#[cfg(test)]
mod tests;
