//! The plugin's config: its JSON Schema (what `describe` publishes) and the checked Rust form.

use husai_kernels::TrainConfig;
use husai_kernels::adam::AdamConfig;
use husai_plugin_api::PluginError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The `config` object of a run request. Everything that changes the trained weights is here (so it is in the
/// config hash); the thread count is not, because it does not change them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopKConfig {
    pub d_sae: usize,
    pub k: usize,
    pub seed: u64,
    pub steps: usize,
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default = "default_lr")]
    pub lr: f32,
    /// The tensor to read from a `.safetensors` activation file.
    #[serde(default)]
    pub tensor: Option<String>,
    /// Train on rows `[start, end)` of the activation file only.
    #[serde(default)]
    pub rows: Option<RowSelection>,
    /// Identity of the checkpoint a resumed run starts from (the run and its weights' digest).
    /// The plugin reads the weights from its `resume` input; this field only puts them into the
    /// config hash, so a resumed run never groups with a fresh one of the same settings.
    #[serde(default)]
    pub resume_from: Option<Value>,
}

/// A half-open row range of the activation file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowSelection {
    pub start: usize,
    pub end: usize,
}

fn default_batch() -> usize {
    4096
}

fn default_lr() -> f32 {
    1e-3
}

/// JSON Schema (draft 2020-12) of [`TopKConfig`].
pub fn config_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "sae-topk config",
        "type": "object",
        "required": ["d_sae", "k", "seed", "steps"],
        "additionalProperties": false,
        "properties": {
            "d_sae": {"type": "integer", "minimum": 1, "description": "number of latents"},
            "k": {"type": "integer", "minimum": 1, "description": "latents kept per row (k <= d_sae)"},
            "seed": {"type": "integer", "minimum": 0, "description": "initialisation seed"},
            "steps": {"type": "integer", "minimum": 1, "description": "optimiser steps"},
            "batch": {"type": "integer", "minimum": 1, "default": 4096, "description": "rows per step"},
            "lr": {"type": "number", "exclusiveMinimum": 0, "default": 0.001, "description": "Adam learning rate"},
            "tensor": {"type": ["string", "null"], "description": "tensor name in a .safetensors activation file"},
            "resume_from": {
                "type": ["object", "null"],
                "description": "identity of the checkpoint a resumed run starts from (run id and weights digest)"
            },
            "rows": {
                "type": ["object", "null"],
                "description": "train on rows [start, end) of the activation file only",
                "required": ["start", "end"],
                "additionalProperties": false,
                "properties": {
                    "start": {"type": "integer", "minimum": 0},
                    "end": {"type": "integer", "minimum": 1}
                }
            }
        }
    })
}

impl TopKConfig {
    /// Parses and checks a request's config; errors name the field.
    pub fn from_json(value: &Value) -> Result<TopKConfig, PluginError> {
        let cfg: TopKConfig = serde_json::from_value(value.clone())
            .map_err(|e| PluginError::invalid_config(format!("sae-topk config: {e}")))?;
        if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
            return Err(PluginError::invalid_config(format!(
                "sae-topk config: lr = {} must be a positive number",
                cfg.lr
            )));
        }
        // The kernels check the rest (k <= d_sae, nonzero sizes) with messages that name the field.
        cfg.to_train_config()
            .validate()
            .map_err(|e| PluginError::invalid_config(format!("sae-topk {e}")))?;
        Ok(cfg)
    }

    /// The kernels' training config, with the thread count of this machine.
    pub fn to_train_config(&self) -> TrainConfig {
        let mut t = TrainConfig::new(self.d_sae, self.k);
        t.seed = self.seed;
        t.steps = self.steps;
        t.batch = self.batch;
        t.adam = AdamConfig {
            lr: self.lr,
            ..AdamConfig::default()
        };
        t.threads = rayon::current_num_threads();
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_and_bad_fields_are_named() {
        let cfg =
            TopKConfig::from_json(&json!({"d_sae": 64, "k": 8, "seed": 1, "steps": 10})).unwrap();
        assert_eq!((cfg.batch, cfg.lr, cfg.tensor), (4096, 1e-3, None));
        let e = TopKConfig::from_json(&json!({"d_sae": 64, "k": 80, "seed": 1, "steps": 10}))
            .unwrap_err();
        assert!(
            e.message.contains("`k` = 80") && e.message.contains("d_sae"),
            "{e}"
        );
        let e = TopKConfig::from_json(
            &json!({"d_sae": 64, "k": 8, "seed": 1, "steps": 10, "epochs": 2}),
        )
        .unwrap_err();
        assert!(e.message.contains("unknown field `epochs`"), "{e}");
        let e = TopKConfig::from_json(
            &json!({"d_sae": 64, "k": 8, "seed": 1, "steps": 10, "lr": -1.0}),
        )
        .unwrap_err();
        assert!(
            e.message.contains("lr = -1 must be a positive number"),
            "{e}"
        );
        let e = TopKConfig::from_json(&json!({"d_sae": 64, "k": 8, "steps": 10})).unwrap_err();
        assert!(e.message.contains("missing field `seed`"), "{e}");
    }

    #[test]
    fn the_schema_requires_what_the_parser_requires() {
        let schema = config_schema();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(required, ["d_sae", "k", "seed", "steps"]);
        for key in schema["properties"].as_object().unwrap().keys() {
            let mut v = json!({"d_sae": 64, "k": 8, "seed": 1, "steps": 10});
            if !v.as_object().unwrap().contains_key(key) {
                v[key] = schema["properties"][key]
                    .get("default")
                    .cloned()
                    .unwrap_or(Value::Null);
            }
            TopKConfig::from_json(&v)
                .unwrap_or_else(|e| panic!("schema property {key} not accepted: {e}"));
        }
    }
}
