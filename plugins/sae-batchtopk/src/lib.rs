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

use husai_kernels::trainer::{FamilyRun, Hooks, TrainerError, run_family};
use husai_plugin_api::{
    Capability, Description, Plugin, PluginError, PluginKind, Progress, RunRequest,
};
use serde_json::Value;

pub use config::{BatchTopKConfig, DEFAULT_AUX_COEFF, FAMILY_KEYS, config_schema};
pub use husai_kernels::trainer::family_run::OUTPUTS;

struct SaeBatchTopK;

impl Plugin for SaeBatchTopK {
    fn describe() -> Description {
        Description {
            name: "sae-batchtopk".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Trainer,
            architectures: vec!["batchtopk".into()],
            evals: vec![],
            config_schema: config_schema(),
            capabilities: vec![Capability::Cpu],
        }
    }

    fn run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
        run(request, progress)
    }
}

husai_plugin_api::export_plugin!(SaeBatchTopK);

fn plugin_error(e: TrainerError) -> PluginError {
    match e {
        TrainerError::Config { .. } => PluginError::invalid_config(format!("sae-batchtopk {e}")),
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

/// The plugin's `run`, callable in-process.
pub fn run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
    train(request, progress).map_err(plugin_error)
}

fn train(request: &RunRequest, progress: &mut Progress) -> Result<Value, TrainerError> {
    let cfg = BatchTopKConfig::from_json(&request.config)?;
    let effective = cfg.effective();
    run_family(
        FamilyRun {
            plugin: "sae-batchtopk",
            family: cfg.family(),
            engine: &|d_in| cfg.engine_config(d_in),
            common: &cfg.common,
            effective: &effective,
            train_rule_l0: true,
        },
        &request.inputs,
        &request.output_dir,
        &mut ProgressHooks(progress),
    )
}

#[cfg(test)]
mod tests;
