//! The plugin half of every trainer plugin: what turns a family's config type into a `husai-plugin-api` trainer.
//! A trainer crate implements [`TrainerConfig`] for its config (its name, SAELens architectures, config parsing,
//! family and engine config) and calls [`export_trainer!`](crate::export_trainer); the description, the mapping
//! of [`TrainerError`]s onto plugin errors, progress and stop requests, and the run itself are here, once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use husai_plugin_api::{Capability, Description, PluginError, PluginKind, Progress, RunRequest};
use serde_json::{Map, Value};

use super::config::CommonConfig;
use super::family_run::{FamilyRun, run_family};
use super::{Hooks, TrainerError};
use crate::engine::EngineConfig;
use crate::family::Family;

/// The plugin API, for [`export_trainer!`](crate::export_trainer)'s expansion.
#[doc(hidden)]
pub use husai_plugin_api as api;
#[doc(hidden)]
pub use serde_json;

/// What a trainer plugin supplies: everything that is its own. Implemented by the plugin's config type.
pub trait TrainerConfig: Sized {
    /// The plugin's name (`sae-topk`); config errors start with it.
    const PLUGIN: &'static str;
    /// The SAELens architectures its checkpoints load as, for [`Description::architectures`].
    const ARCHITECTURES: &'static [&'static str];
    /// Report the training rule's L0 beside the inference rule's (families whose rules differ: BatchTopK).
    const TRAIN_RULE_L0: bool = false;
    /// The family trained.
    type Family: Family;

    /// The published JSON schema of the config.
    fn schema() -> Value;
    /// Parses and checks a request's config.
    fn from_json(config: &Value) -> Result<Self, TrainerError>;
    /// The effective config (defaults filled in), for the resume fingerprint.
    fn effective(&self) -> Map<String, Value>;
    /// The common keys.
    fn common(&self) -> &CommonConfig;
    /// The family, freshly built from the config.
    fn family(&self) -> Self::Family;
    /// The engine config for rows of width `d_in`.
    fn engine_config(&self, d_in: usize) -> EngineConfig;
    /// The whole run: [`run_family`] unless the plugin trains more around the SAE (it then calls
    /// [`run_shaped`](super::family_run::run_shaped) with its [`RunShape`](super::family_run::RunShape)).
    fn run_in(
        &self,
        run: FamilyRun<'_, Self::Family>,
        inputs: &BTreeMap<String, PathBuf>,
        output_dir: &Path,
        hooks: &mut dyn Hooks,
    ) -> Result<Value, TrainerError> {
        run_family(run, inputs, output_dir, hooks)
    }
}

/// What a trainer built from this crate can run on: the CPU, and CUDA only in a build with the `cuda` feature (the
/// backend's device probe and kernels; `device = cuda` still fails for a family with no CUDA engine, naming that).
pub fn capabilities() -> Vec<Capability> {
    let mut c = vec![Capability::Cpu];
    if cfg!(feature = "cuda") {
        c.push(Capability::Cuda);
    }
    c
}

/// The plugin's description: kind trainer, [`capabilities`], no evals.
pub fn describe<C: TrainerConfig>(version: &str) -> Description {
    Description {
        name: C::PLUGIN.into(),
        version: version.into(),
        kind: PluginKind::Trainer,
        architectures: C::ARCHITECTURES.iter().map(|a| a.to_string()).collect(),
        evals: vec![],
        config_schema: C::schema(),
        capabilities: capabilities(),
    }
}

/// The plugin error of a trainer error: one kind each; a config error is prefixed with the plugin's name (so the
/// user sees which plugin's key it is).
pub fn plugin_error(plugin: &str, e: TrainerError) -> PluginError {
    match e {
        TrainerError::Config { .. } => PluginError::invalid_config(format!("{plugin} {e}")),
        TrainerError::Input(m) => PluginError::invalid_input(m),
        TrainerError::Output(m) => PluginError::output(m),
        TrainerError::Failed(m) => PluginError::failed(m),
    }
}

/// The driver's [`Hooks`] on the plugin API's [`Progress`]: reports go to the host, stop requests come from it.
pub struct ProgressHooks<'a>(pub &'a mut Progress);

impl Hooks for ProgressHooks<'_> {
    fn report(&mut self, done: u64, total: u64, message: &str) {
        self.0.report(done, total, message);
    }
    fn stop_requested(&self) -> bool {
        self.0.stop_requested()
    }
}

/// A whole trainer run of `C`'s family on `request` ([`run_family`]), errors as plugin errors.
pub fn run<C: TrainerConfig>(
    request: &RunRequest,
    progress: &mut Progress,
) -> Result<Value, PluginError> {
    let error = |e| plugin_error(C::PLUGIN, e);
    let cfg = C::from_json(&request.config).map_err(error)?;
    let effective = cfg.effective();
    let run = FamilyRun {
        plugin: C::PLUGIN,
        family: cfg.family(),
        engine: &|d_in| cfg.engine_config(d_in),
        common: cfg.common(),
        effective: &effective,
        train_rule_l0: C::TRAIN_RULE_L0,
    };
    cfg.run_in(
        run,
        &request.inputs,
        &request.output_dir,
        &mut ProgressHooks(progress),
    )
    .map_err(error)
}

/// Exports the trainer plugin of a config type implementing [`TrainerConfig`](crate::trainer::plugin::TrainerConfig)
/// (the root module the host loads), and defines `pub fn run(&RunRequest, &mut Progress)`, the same run callable
/// in-process (tests call it with `Progress::discard_with_stop_flag`).
///
/// ```ignore
/// husai_kernels::export_trainer!(TopKConfig);
/// ```
#[macro_export]
macro_rules! export_trainer {
    ($config:ty) => {
        /// The plugin the host loads.
        struct TrainerPlugin;

        impl $crate::trainer::plugin::api::Plugin for TrainerPlugin {
            fn describe() -> $crate::trainer::plugin::api::Description {
                $crate::trainer::plugin::describe::<$config>(env!("CARGO_PKG_VERSION"))
            }

            fn run(
                request: &$crate::trainer::plugin::api::RunRequest,
                progress: &mut $crate::trainer::plugin::api::Progress,
            ) -> ::core::result::Result<
                $crate::trainer::plugin::serde_json::Value,
                $crate::trainer::plugin::api::PluginError,
            > {
                run(request, progress)
            }
        }

        $crate::trainer::plugin::api::export_plugin!(TrainerPlugin);

        /// The plugin's `run`, callable in-process.
        pub fn run(
            request: &$crate::trainer::plugin::api::RunRequest,
            progress: &mut $crate::trainer::plugin::api::Progress,
        ) -> ::core::result::Result<
            $crate::trainer::plugin::serde_json::Value,
            $crate::trainer::plugin::api::PluginError,
        > {
            $crate::trainer::plugin::run::<$config>(request, progress)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_is_a_capability_exactly_when_built_with_the_backend() {
        let want: &[Capability] = if cfg!(feature = "cuda") {
            &[Capability::Cpu, Capability::Cuda]
        } else {
            &[Capability::Cpu]
        };
        assert_eq!(capabilities(), want);
    }
}
