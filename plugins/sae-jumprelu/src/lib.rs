//! husai trainer plugin `sae-jumprelu`: JumpReLU sparse autoencoders (Rajamanoharan et al. 2024, "Jumping Ahead")
//! on CPU, following the trainer contract (`docs/trainer-contract.md`): learned per-latent thresholds θ = exp(t)
//! trained through straight-through pseudo-derivatives, an L0 (or SAELens's tanh) penalty, and a target-L0 mode.
//! This crate is only the family: its config keys ([`config`]) and maths ([`jump`], [`target`], [`family`]); the run
//! itself is `husai_kernels::trainer::family_run` on the shared engine.
//!
//! Outputs: `cfg.json` + `sae_weights.safetensors` (SAELens's layout; `sae_lens.SAE.load_from_disk` loads it as
//! architecture `jumprelu`, with its `threshold` tensor), `trainer_state.safetensors` (with the trained
//! `log_threshold` and, in target-L0 mode, λ), `metrics.json` and `metrics.jsonl` (with θ's quantiles).

pub mod config;
pub mod family;
pub mod jump;
pub mod target;

use husai_kernels::trainer::{FamilyRun, Hooks, TrainerError, run_family};
use husai_plugin_api::{
    Capability, Description, Plugin, PluginError, PluginKind, Progress, RunRequest,
};
use serde_json::Value;

pub use config::{JumpConfig, config_schema};
pub use family::{FAMILY, JumpRelu};
pub use husai_kernels::trainer::family_run::OUTPUTS;

struct SaeJumpRelu;

impl Plugin for SaeJumpRelu {
    fn describe() -> Description {
        Description {
            name: config::PLUGIN.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Trainer,
            architectures: vec!["jumprelu".into()],
            evals: vec![],
            config_schema: config_schema(),
            capabilities: vec![Capability::Cpu],
        }
    }

    fn run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
        run(request, progress)
    }
}

husai_plugin_api::export_plugin!(SaeJumpRelu);

fn plugin_error(e: TrainerError) -> PluginError {
    match e {
        TrainerError::Config { .. } => {
            PluginError::invalid_config(format!("{} {e}", config::PLUGIN))
        }
        TrainerError::Input(m) => PluginError::invalid_input(m),
        TrainerError::Output(m) => PluginError::output(m),
        TrainerError::Failed(m) => PluginError::failed(m),
    }
}

struct ProgressHooks<'a>(&'a mut Progress);

impl Hooks for ProgressHooks<'_> {
    fn report(&mut self, done: u64, total: u64, message: &str) {
        self.0.report(done, total, message);
    }
    fn stop_requested(&self) -> bool {
        self.0.stop_requested()
    }
}

/// The plugin's `run`, callable in-process (tests call it with `Progress::discard_with_stop_flag`).
pub fn run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
    let cfg = JumpConfig::from_json(&request.config).map_err(plugin_error)?;
    let effective = cfg.effective();
    let run = FamilyRun {
        plugin: config::PLUGIN,
        family: cfg.family(),
        engine: &|_d_in| cfg.engine_config(),
        common: &cfg.common,
        effective: &effective,
        train_rule_l0: false,
    };
    run_family(
        run,
        &request.inputs,
        &request.output_dir,
        &mut ProgressHooks(progress),
    )
    .map_err(plugin_error)
}

#[cfg(test)]
mod plugin_tests;
#[cfg(test)]
mod tests;
