//! husai trainer plugin `sae-routed`: RouteSAE (Shi et al. 2025, "Route Sparse Autoencoder to Interpret Large
//! Language Models") on CPU, following the trainer contract (`docs/trainer-contract.md`).
//!
//! A router over the L layers of a multi-layer bank routes each row hard to one layer, and one shared TopK SAE
//! (the engine's, AuxK on by default) encodes that layer's activation. [`router`] states the router's maths and
//! how it learns; [`session`] how a step trains both.
//!
//! Input: a `.safetensors` bank with one `[rows, d]` tensor per layer, row `r` the same token position in each
//! (`layers` chooses and orders them; by default every tensor, in the order stored).
//!
//! Outputs: `cfg.json` + `sae_weights.safetensors` (the shared SAE in SAELens's `topk` layout, loadable as is),
//! `router.safetensors` beside it ([`router_file`] documents its layout and how to route a row before
//! `sae.encode`), `trainer_state.safetensors` + `router_state.safetensors` (exact resume), `metrics.json` and
//! `metrics.jsonl`. The held-out figures beside the shared ones: `router_entropy` (mean over rows of the entropy
//! of `p`, nats), `router_entropy_max` (`ln L`), `layers_used`, and per layer `share_<layer>` (share of rows routed
//! there) and `fvu_<layer>` (FVU on those rows; null when fewer than 2). The stream's terms are `mse`, `aux` and
//! `router`.

mod config;
pub mod router;
pub mod router_file;
pub mod session;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use husai_kernels::engine::EngineConfig;
use husai_kernels::families::TopK;
use husai_kernels::trainer::family_run::{FamilyRun, run_shaped};
use husai_kernels::trainer::plugin::TrainerConfig;
use husai_kernels::trainer::{CommonConfig, Hooks, TrainerError};
use serde_json::{Map, Value};

pub use config::{FAMILY_KEYS, RoutedConfig, config_schema};
pub use husai_kernels::trainer::family_run::OUTPUTS;
pub use router_file::{ROUTER_FILE, ROUTER_STATE_FILE};
use session::RoutedShape;

impl TrainerConfig for RoutedConfig {
    const PLUGIN: &'static str = "sae-routed";
    const ARCHITECTURES: &'static [&'static str] = &["routesae"];
    type Family = TopK;

    fn schema() -> Value {
        config_schema()
    }
    fn from_json(config: &Value) -> Result<Self, TrainerError> {
        RoutedConfig::from_json(config)
    }
    fn effective(&self) -> Map<String, Value> {
        RoutedConfig::effective(self)
    }
    fn common(&self) -> &CommonConfig {
        &self.common
    }
    fn family(&self) -> TopK {
        RoutedConfig::family(self)
    }
    fn engine_config(&self, d_in: usize) -> EngineConfig {
        RoutedConfig::engine_config(self, d_in)
    }
    fn run_in(
        &self,
        run: FamilyRun<'_, TopK>,
        inputs: &BTreeMap<String, PathBuf>,
        output_dir: &Path,
        hooks: &mut dyn Hooks,
    ) -> Result<Value, TrainerError> {
        let shape = RoutedShape {
            layers: self.layers.clone(),
            router_lr: self.router_lr,
            seed: self.common.seed,
            opened: RefCell::new(None),
        };
        run_shaped(run, &shape, inputs, output_dir, hooks)
    }
}

husai_kernels::export_trainer!(RoutedConfig);

#[cfg(test)]
mod tests;
