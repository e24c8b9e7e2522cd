//! The plugin's config: the common trainer keys (`husai_kernels::trainer::config`), the keys every top-k family
//! has (`husai_kernels::trainer::topk_keys`; the shared SAE is a TopK SAE) and the router's own, `layers` and
//! `router_lr`; their JSON Schema (what `describe` publishes) and the checked Rust form.

use husai_kernels::engine::EngineConfig;
use husai_kernels::families::TopK;
use husai_kernels::trainer::config::{CommonDefaults, split_family_keys};
use husai_kernels::trainer::topk_keys::{TOPK_KEYS, TopKKeys, insert_topk_properties};
use husai_kernels::trainer::{CommonConfig, TrainerError};
use serde_json::{Map, Value, json};

/// The family's own keys: the top-k keys, then the router's.
pub const FAMILY_KEYS: [&str; 8] = [
    TOPK_KEYS[0],
    TOPK_KEYS[1],
    TOPK_KEYS[2],
    TOPK_KEYS[3],
    TOPK_KEYS[4],
    TOPK_KEYS[5],
    "layers",
    "router_lr",
];

/// The common keys' defaults (as sae-topk: SAELens 6 starts every SAE with `b_dec = 0`).
pub const DEFAULTS: CommonDefaults =
    CommonDefaults::saelens6("zeros, as SAELens 6 initialises every SAE including TopK");

/// The `config` object of a run request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedConfig {
    /// The keys every trainer has.
    pub common: CommonConfig,
    /// The shared TopK SAE's keys.
    pub keys: TopKKeys,
    /// The tensors routed over, in order; `None`: every tensor of the bank, in the order stored.
    pub layers: Option<Vec<String>>,
    /// The router's Adam learning rate (default: `lr`).
    pub router_lr: f64,
}

/// JSON Schema (draft 2020-12) of [`RoutedConfig`].
pub fn config_schema() -> Value {
    let mut props = husai_kernels::trainer::config::common_properties(&DEFAULTS);
    props.remove("tensor");
    insert_topk_properties(
        &mut props,
        "latents per row of the shared TopK SAE: each routed row keeps its k largest post-ReLU latents \
         (k <= d_sae)",
    );
    props.insert(
        "layers".into(),
        json!({"type": ["array", "null"], "items": {"type": "string"}, "minItems": 2, "uniqueItems": true,
               "default": null,
               "description": "the tensors of the multi-layer .safetensors bank to route over, in order (each \
                               [rows, d], row r the same token position in each); null: every tensor, in the \
                               order the file stores them"}),
    );
    props.insert(
        "router_lr".into(),
        json!({"type": ["number", "null"], "exclusiveMinimum": 0, "default": null,
               "description": "Adam learning rate of the router; null: lr"}),
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "sae-routed config",
        "type": "object",
        "required": ["d_sae", "k", "seed"],
        "additionalProperties": false,
        "properties": props,
    })
}

impl RoutedConfig {
    /// Parses and checks a request's config; errors name the key.
    pub fn from_json(value: &Value) -> Result<RoutedConfig, TrainerError> {
        if value.get("tensor").is_some_and(|v| !v.is_null()) {
            return Err(TrainerError::config(
                "tensor",
                "is not a sae-routed key: a router reads several tensors of a multi-layer bank; name them \
                 with layers (a list), or leave layers out to route over every tensor",
            ));
        }
        let (own, common) = split_family_keys("sae-routed", value, &FAMILY_KEYS)?;
        let common = CommonConfig::parse(common, &DEFAULTS)?;
        let keys = TopKKeys::parse(&own, &common, "latents per row of the shared TopK SAE")?;
        let layers = match own.get("layers").filter(|v| !v.is_null()) {
            None => None,
            Some(v) => Some(layers_key(v)?),
        };
        let router_lr = match own.get("router_lr").filter(|v| !v.is_null()) {
            None => common.lr,
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x > 0.0 => x,
                _ => {
                    return Err(TrainerError::config(
                        "router_lr",
                        format!("= {v} is invalid: must be a finite number > 0 (or null for lr)"),
                    ));
                }
            },
        };
        Ok(RoutedConfig {
            common,
            keys,
            layers,
            router_lr,
        })
    }

    /// The effective config (defaults filled in), as the host records it.
    pub fn effective(&self) -> Map<String, Value> {
        let mut m = self.common.to_json();
        m.remove("tensor");
        self.keys.insert_effective(&mut m);
        m.insert("layers".into(), json!(self.layers));
        m.insert("router_lr".into(), json!(self.router_lr));
        m
    }

    /// The shared SAE's family.
    pub fn family(&self) -> TopK {
        TopK::new(self.keys.k, self.common.d_sae)
    }

    /// The engine config for the SAE's `d_in`-wide rows (threads are set by the run).
    pub fn engine_config(&self, d_in: usize) -> EngineConfig {
        self.keys.engine_config(&self.common, d_in)
    }
}

fn layers_key(v: &Value) -> Result<Vec<String>, TrainerError> {
    let bad = |why: String| TrainerError::config("layers", format!("= {v} is invalid: {why}"));
    let items = v
        .as_array()
        .ok_or_else(|| bad("must be a list of tensor names (or null for every tensor)".into()))?;
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        let name = item
            .as_str()
            .ok_or_else(|| bad(format!("{item} is not a tensor name (a string)")))?;
        if names.iter().any(|n| n == name) {
            return Err(bad(format!("{name:?} is listed twice")));
        }
        names.push(name.to_string());
    }
    if names.len() < 2 {
        return Err(bad(format!(
            "routing needs at least 2 layers, {} given",
            names.len()
        )));
    }
    Ok(names)
}
