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

use husai_kernels::families::TopK;
use husai_kernels::trainer::{FamilyRun, Hooks, TrainerError, run_family};
use husai_plugin_api::{
    Capability, Description, Plugin, PluginError, PluginKind, Progress, RunRequest,
};
use serde_json::Value;

pub use config::{DEFAULT_AUX_COEFF, FAMILY_KEYS, TopKConfig, config_schema};
pub use husai_kernels::trainer::ACTIVATIONS_INPUT;

/// The family name recorded in `trainer_state.safetensors`.
pub const FAMILY: &str = "topk";

/// Every output, in the order the result lists them.
pub use husai_kernels::trainer::family_run::OUTPUTS;

struct SaeTopK;

impl Plugin for SaeTopK {
    fn describe() -> Description {
        Description {
            name: "sae-topk".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Trainer,
            architectures: vec!["topk".into()],
            evals: vec![],
            config_schema: config_schema(),
            capabilities: vec![Capability::Cpu],
        }
    }

    fn run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
        run(request, progress)
    }
}

husai_plugin_api::export_plugin!(SaeTopK);

fn plugin_error(e: TrainerError) -> PluginError {
    match e {
        TrainerError::Config { .. } => PluginError::invalid_config(format!("sae-topk {e}")),
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
    train(request, progress).map_err(plugin_error)
}

fn train(request: &RunRequest, progress: &mut Progress) -> Result<Value, TrainerError> {
    let cfg = TopKConfig::from_json(&request.config)?;
    let effective = cfg.effective();
    run_family(
        FamilyRun {
            plugin: "sae-topk",
            family: TopK::new(cfg.k, cfg.common.d_sae),
            engine: &|d_in| cfg.engine_config(d_in),
            common: &cfg.common,
            effective: &effective,
            train_rule_l0: false,
        },
        &request.inputs,
        &request.output_dir,
        &mut ProgressHooks(progress),
    )
}

#[cfg(test)]
mod tests;
