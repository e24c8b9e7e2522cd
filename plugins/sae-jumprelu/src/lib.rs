//! husai trainer plugin `sae-jumprelu`: JumpReLU sparse autoencoders (Rajamanoharan et al. 2024, "Jumping Ahead")
//! on CPU, following the trainer contract (`docs/trainer-contract.md`): learned per-latent thresholds θ (trained
//! directly and kept >= 0, as SAELens 6, or as θ = exp(t), as the paper) through straight-through
//! pseudo-derivatives, an L0 (or SAELens's tanh) penalty, and a target-L0 mode.
//! This crate is only the family: its config keys ([`config`]) and maths ([`jump`], [`target`], [`family`]); the run
//! itself is `husai_kernels::trainer::family_run` on the shared engine.
//!
//! Outputs: `cfg.json` + `sae_weights.safetensors` (SAELens's layout; `sae_lens.SAE.load_from_disk` loads it as
//! architecture `jumprelu`, with its `threshold` tensor), `trainer_state.safetensors` (with the trained
//! `threshold` or `log_threshold` and, in target-L0 mode, λ), `metrics.json` and `metrics.jsonl` (with θ's quantiles).

pub mod config;
pub mod family;
pub mod jump;
pub mod target;

use husai_kernels::engine::EngineConfig;
use husai_kernels::trainer::plugin::TrainerConfig;
use husai_kernels::trainer::{CommonConfig, TrainerError};
use serde_json::{Map, Value};

pub use config::{JumpConfig, config_schema};
pub use family::{FAMILY, JumpRelu};
pub use husai_kernels::trainer::family_run::OUTPUTS;

impl TrainerConfig for JumpConfig {
    const PLUGIN: &'static str = config::PLUGIN;
    const ARCHITECTURES: &'static [&'static str] = &["jumprelu"];
    type Family = JumpRelu;

    fn schema() -> Value {
        config_schema()
    }
    fn from_json(config: &Value) -> Result<Self, TrainerError> {
        JumpConfig::from_json(config)
    }
    fn effective(&self) -> Map<String, Value> {
        JumpConfig::effective(self)
    }
    fn common(&self) -> &CommonConfig {
        &self.common
    }
    fn family(&self) -> JumpRelu {
        JumpConfig::family(self)
    }
    /// The engine config does not depend on the row width.
    fn engine_config(&self, _d_in: usize) -> EngineConfig {
        JumpConfig::engine_config(self)
    }
}

husai_kernels::export_trainer!(JumpConfig);

#[cfg(test)]
mod plugin_tests;
#[cfg(test)]
mod tests;
