//! The plugin's config: the common trainer keys (`husai_kernels::trainer::config`) and the keys every top-k
//! family has (`husai_kernels::trainer::topk_keys`; here `k` is K, the largest budget trained); their JSON Schema
//! (what `describe` publishes) and the checked Rust form.

use husai_kernels::engine::EngineConfig;
use husai_kernels::trainer::config::{CommonDefaults, split_family_keys};
use husai_kernels::trainer::topk_keys::{TOPK_KEYS, TopKKeys, insert_topk_properties};
use husai_kernels::trainer::{CommonConfig, TrainerError};
use serde_json::{Map, Value, json};

use crate::family::HierarchicalTopK;

/// The family's own keys.
pub const FAMILY_KEYS: [&str; 6] = TOPK_KEYS;

/// The common keys' defaults (as sae-topk: SAELens 6 starts every SAE with `b_dec = 0`).
pub const DEFAULTS: CommonDefaults =
    CommonDefaults::saelens6("zeros, as SAELens 6 initialises every SAE including TopK");

/// The `config` object of a run request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct HierarchicalConfig {
    /// The keys every trainer has.
    pub common: CommonConfig,
    /// The keys every top-k family has (`k`: K).
    pub keys: TopKKeys,
}

/// JSON Schema (draft 2020-12) of [`HierarchicalConfig`].
pub fn config_schema() -> Value {
    let mut props = husai_kernels::trainer::config::common_properties(&DEFAULTS);
    insert_topk_properties(
        &mut props,
        "K, the largest budget: each row keeps its K largest post-ReLU latents, and the loss averages the \
         reconstruction error of the k' largest over every k' = 1..K (k <= d_sae)",
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "sae-hierarchical-topk config",
        "type": "object",
        "required": ["d_sae", "k", "seed"],
        "additionalProperties": false,
        "properties": props,
    })
}

impl HierarchicalConfig {
    /// Parses and checks a request's config; errors name the key.
    pub fn from_json(value: &Value) -> Result<HierarchicalConfig, TrainerError> {
        let (own, common) = split_family_keys("sae-hierarchical-topk", value, &FAMILY_KEYS)?;
        let common = CommonConfig::parse(common, &DEFAULTS)?;
        let keys = TopKKeys::parse(&own, &common, "K, the largest number of latents per row")?;
        Ok(HierarchicalConfig { common, keys })
    }

    /// The effective config (defaults filled in), as the host records it.
    pub fn effective(&self) -> Map<String, Value> {
        let mut m = self.common.to_json();
        self.keys.insert_effective(&mut m);
        m
    }

    /// The family.
    pub fn family(&self) -> HierarchicalTopK {
        HierarchicalTopK::new(self.keys.k, self.common.d_sae)
    }

    /// The engine config for `d_in`-wide rows (threads are set by the run).
    pub fn engine_config(&self, d_in: usize) -> EngineConfig {
        self.keys.engine_config(&self.common, d_in)
    }
}
