//! The plugin's config: the common trainer keys (`husai_kernels::trainer::config`) plus the standard SAE's own
//! (`l1_coeff`, `l1_warmup_steps`, `penalty`, `decoder_init_norm`, `grad_clip`), their JSON Schema (what `describe` publishes) and
//! the checked Rust form.

use husai_kernels::adam::AdamConfig;
use husai_kernels::engine::{EngineConfig, InitConfig};
use husai_kernels::trainer::config::{
    CommonDefaults, grad_clip_key, grad_clip_property, int_key, split_family_keys,
};
use husai_kernels::trainer::{CommonConfig, TrainerError};
use serde_json::{Map, Value, json};

use crate::family::Relu;
use crate::penalty::Weighting;

/// The plugin's name, as errors and the schema title spell it.
pub const PLUGIN: &str = "sae-relu";

/// The standard SAE's own keys.
pub const FAMILY_KEYS: [&str; 5] = [
    "l1_coeff",
    "l1_warmup_steps",
    "penalty",
    "decoder_init_norm",
    "grad_clip",
];

/// λ by default: SAELens 6's `StandardTrainingSAEConfig.l1_coefficient` default (1.0). It has to be tuned to the
/// data's scale for a wanted L0.
pub const DEFAULT_L1_COEFF: f64 = 1.0;

/// Decoder row norm at initialisation by default: SAELens 6's `decoder_init_norm` (0.1). The `unit_norm` variant
/// ignores it (its rows are unit norm from the start).
pub const DEFAULT_DECODER_INIT_NORM: f64 = 0.1;

/// The common keys' defaults, as for TopK (`b_dec = 0` is what SAELens 6 does for every SAE).
pub const DEFAULTS: CommonDefaults =
    CommonDefaults::saelens6("zeros, as SAELens 6 initialises every SAE");

/// The `config` object of a run request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ReluConfig {
    /// The keys every trainer has.
    pub common: CommonConfig,
    /// λ, the sparsity penalty's weight after warm-up.
    pub l1_coeff: f64,
    /// Steps over which λ rises linearly from 0.
    pub l1_warmup_steps: u64,
    /// Decoder-norm-weighted L1 or plain L1 with unit-norm decoder rows.
    pub penalty: Weighting,
    /// Decoder row norm at initialisation (decoder-norm variant).
    pub decoder_init_norm: f64,
    /// Global gradient-norm clip; `None`: off.
    pub grad_clip: Option<f64>,
}

/// JSON Schema (draft 2020-12) of [`ReluConfig`].
pub fn config_schema() -> Value {
    let mut props = husai_kernels::trainer::config::common_properties(&DEFAULTS);
    props.insert(
        "l1_coeff".into(),
        json!({"type": "number", "minimum": 0, "default": DEFAULT_L1_COEFF,
               "description": "λ, the weight of the sparsity penalty λ·Σ_i z_i·‖W_dec,i‖ (plain λ·Σ_i z_i with \
                               penalty = unit_norm), per row, averaged over the batch; the loss's MSE is summed \
                               over d_in and averaged over rows, as SAELens's. Tune it for the wanted L0"}),
    );
    props.insert(
        "l1_warmup_steps".into(),
        json!({"type": "integer", "minimum": 0, "default": 0,
               "description": "λ rises linearly from 0 to l1_coeff over this many steps (SAELens's \
                               l1_warm_up_steps); 0: l1_coeff from the first step"}),
    );
    props.insert(
        "penalty".into(),
        json!({"enum": ["decoder_norm", "unit_norm"], "default": "decoder_norm",
               "description": "decoder_norm: each latent's L1 term weighted by its decoder row norm, decoder rows \
                               free (Anthropic's April 2024 update; SAELens standard); unit_norm: plain L1 with \
                               decoder rows renormalised to unit norm after every step (the older recipe)"}),
    );
    props.insert(
        "decoder_init_norm".into(),
        json!({"type": "number", "exclusiveMinimum": 0, "default": DEFAULT_DECODER_INIT_NORM,
               "description": "decoder row norm at initialisation with penalty = decoder_norm (SAELens's \
                               decoder_init_norm, 0.1); unit_norm starts at 1"}),
    );
    props.insert("grad_clip".into(), grad_clip_property());
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "sae-relu config",
        "type": "object",
        "required": ["d_sae", "seed"],
        "additionalProperties": false,
        "properties": props,
    })
}

/// A finite number `>= 0`, else an error naming `key`.
pub fn non_negative_key(key: &str, v: &Value) -> Result<f64, TrainerError> {
    match v.as_f64() {
        Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(TrainerError::config(
            key,
            format!("= {v} is invalid: must be a finite number >= 0"),
        )),
    }
}

impl ReluConfig {
    /// Parses and checks a request's config; errors name the key.
    pub fn from_json(value: &Value) -> Result<ReluConfig, TrainerError> {
        let (own, common) = split_family_keys(PLUGIN, value, &FAMILY_KEYS)?;
        let common = CommonConfig::parse(common, &DEFAULTS)?;
        let l1_coeff = match own.get("l1_coeff") {
            Some(v) => non_negative_key("l1_coeff", v)?,
            None => DEFAULT_L1_COEFF,
        };
        let l1_warmup_steps = match own.get("l1_warmup_steps") {
            Some(v) => int_key("l1_warmup_steps", v, 0)?,
            None => 0,
        };
        let penalty = match own.get("penalty") {
            None => Weighting::DecoderNorm,
            Some(v) => match v.as_str() {
                Some("decoder_norm") => Weighting::DecoderNorm,
                Some("unit_norm") => Weighting::UnitNorm,
                _ => {
                    return Err(TrainerError::config(
                        "penalty",
                        format!("= {v} is invalid: must be \"decoder_norm\" or \"unit_norm\""),
                    ));
                }
            },
        };
        let decoder_init_norm = match own.get("decoder_init_norm") {
            Some(v) => husai_kernels::trainer::config::positive_key("decoder_init_norm", v)?,
            None => DEFAULT_DECODER_INIT_NORM,
        };
        let grad_clip = grad_clip_key(&own)?;
        Ok(ReluConfig {
            common,
            l1_coeff,
            l1_warmup_steps,
            penalty,
            decoder_init_norm,
            grad_clip,
        })
    }

    /// The effective config (defaults filled in), as the host records it.
    pub fn effective(&self) -> Map<String, Value> {
        let mut m = self.common.to_json();
        m.insert("l1_coeff".into(), json!(self.l1_coeff));
        m.insert("l1_warmup_steps".into(), json!(self.l1_warmup_steps));
        m.insert("penalty".into(), json!(self.penalty.as_str()));
        m.insert("decoder_init_norm".into(), json!(self.decoder_init_norm));
        m.insert("grad_clip".into(), json!(self.grad_clip));
        m
    }

    /// The family this config trains.
    pub fn family(&self) -> Relu {
        Relu {
            lambda: self.l1_coeff,
            warmup_steps: self.l1_warmup_steps,
            weighting: self.penalty,
        }
    }

    /// The engine's config: SAELens's initialisation (`W_enc = W_decᵀ`, rows at [`ReluConfig::initial_row_norm`],
    /// biases zero), no AuxK, the gradient norm clipped at `grad_clip` (SAELens clips at 1); the thread
    /// count is set by the run.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            batch: self.common.batch,
            seed: self.common.seed,
            adam: AdamConfig {
                lr: self.common.lr as f32,
                ..AdamConfig::default()
            },
            dead_window: self.common.dead_window,
            b_dec_init: self.common.b_dec_init,
            init: InitConfig {
                dec_norm: self.initial_row_norm(),
                enc_scale: 1.0,
            },
            grad_clip: self.grad_clip.map(|c| c as f32),
            ..EngineConfig::new(self.common.d_sae)
        }
    }

    /// The decoder row norm the SAE starts with.
    pub fn initial_row_norm(&self) -> f32 {
        match self.penalty {
            Weighting::DecoderNorm => self.decoder_init_norm as f32,
            Weighting::UnitNorm => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({"d_sae": 64, "seed": 1, "steps": 10})
    }

    fn err(v: Value) -> String {
        ReluConfig::from_json(&v).unwrap_err().to_string()
    }

    #[test]
    fn defaults_fill_in_and_bad_keys_are_named() {
        let cfg = ReluConfig::from_json(&base()).unwrap();
        assert_eq!(
            (
                cfg.l1_coeff,
                cfg.l1_warmup_steps,
                cfg.penalty,
                cfg.decoder_init_norm
            ),
            (1.0, 0, Weighting::DecoderNorm, 0.1)
        );
        assert_eq!((cfg.common.batch, cfg.common.lr), (4096, 1e-3));
        let mut v = base();
        v["l1_coeff"] = json!(-0.5);
        assert_eq!(
            err(v),
            "config key `l1_coeff` = -0.5 is invalid: must be a finite number >= 0"
        );
        let mut v = base();
        v["l1_warmup_steps"] = json!(-1);
        assert_eq!(
            err(v),
            "config key `l1_warmup_steps` = -1 is invalid: must be an integer >= 0"
        );
        let mut v = base();
        v["penalty"] = json!("l2");
        assert_eq!(
            err(v),
            "config key `penalty` = \"l2\" is invalid: must be \"decoder_norm\" or \"unit_norm\""
        );
        let mut v = base();
        v["decoder_init_norm"] = json!(0);
        assert_eq!(
            err(v),
            "config key `decoder_init_norm` = 0 is invalid: must be a finite number > 0"
        );
        let mut v = base();
        v["k"] = json!(8);
        let e = err(v);
        assert!(
            e.starts_with(
                "config key `k` is not a sae-relu config key; the keys are: d_sae, seed,"
            ) && e.ends_with("l1_coeff, l1_warmup_steps, penalty, decoder_init_norm, grad_clip"),
            "{e}"
        );
        let mut v = base();
        v["penalty"] = json!("unit_norm");
        let unit = ReluConfig::from_json(&v).unwrap();
        assert_eq!(
            (unit.penalty, unit.initial_row_norm()),
            (Weighting::UnitNorm, 1.0)
        );
    }

    #[test]
    fn every_optional_key_has_a_default_and_a_description_the_parser_agrees_with() {
        let schema = config_schema();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let props = schema["properties"].as_object().unwrap();
        let mut keys: Vec<&str> = husai_kernels::trainer::config::COMMON_KEYS.to_vec();
        keys.extend(FAMILY_KEYS);
        assert_eq!(props.keys().map(String::as_str).collect::<Vec<_>>(), keys);
        let mut filled = base();
        for (key, p) in props {
            assert!(p["description"].is_string(), "{key} has no description");
            if required.contains(&key.as_str()) {
                continue;
            }
            let d = p
                .get("default")
                .unwrap_or_else(|| panic!("{key} has no default"));
            if key != "steps" {
                filled[key] = d.clone();
            }
        }
        let from_defaults = ReluConfig::from_json(&filled).unwrap();
        assert_eq!(from_defaults, ReluConfig::from_json(&base()).unwrap());
        assert_eq!(Value::Object(from_defaults.effective()), filled);
    }

    /// `HUSAI_UPDATE_GOLDEN=1` rewrites the golden file.
    #[test]
    fn the_schema_matches_its_golden_file() {
        husai_kernels::testing::assert_schema_golden(env!("CARGO_MANIFEST_DIR"), &config_schema());
    }
}
