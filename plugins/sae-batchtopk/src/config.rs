//! The plugin's config: the common trainer keys (`husai_kernels::trainer::config`) plus BatchTopK's own (`k`,
//! `k_aux`, `aux_coeff`, `threshold_lr`, and the initialisation and clipping keys `dec_init_norm`,
//! `enc_init_scale`, `grad_clip`), their JSON Schema (what `describe` publishes) and the checked Rust form.

use husai_kernels::adam::AdamConfig;
use husai_kernels::engine::{EngineConfig, InitConfig};
use husai_kernels::families::{BatchTopK, DEFAULT_THRESHOLD_LR};
use husai_kernels::train::AuxKConfig;
use husai_kernels::trainer::config::{
    CommonDefaults, grad_clip_key, insert_init_properties, int_key, split_family_keys,
};
use husai_kernels::trainer::{CommonConfig, TrainerError};
use serde_json::{Map, Value, json};

/// BatchTopK's own keys.
pub const FAMILY_KEYS: [&str; 7] = [
    "k",
    "k_aux",
    "aux_coeff",
    "threshold_lr",
    "dec_init_norm",
    "enc_init_scale",
    "grad_clip",
];

/// AuxK's weight by default: 1/32, Gao et al. 2024 (§A.2), as sae-topk.
pub const DEFAULT_AUX_COEFF: f64 = 1.0 / 32.0;

/// Initial decoder row norm by default: SAELens 6's `decoder_init_norm` (0.1), as sae-topk (whose config module
/// says why: with `grad_clip` 1 it closed TopK's FVU gap to SAELens). On the MiniLM bank (d_sae 1536, k 32, batch
/// 1024, 300 steps, held-out rows 29491..32768) BatchTopK's held-out FVU went from 0.1820 (seed 7, the older
/// `dec_init_norm` 1 and no clipping) to 0.1536 (seed 7) and 0.1548 (seed 8), inference L0 31.7 and 31.8.
pub const DEFAULT_DEC_INIT_NORM: f64 = 0.1;

/// The common keys' defaults (as sae-topk: SAELens 6 starts every SAE with `b_dec = 0`).
pub const DEFAULTS: CommonDefaults =
    CommonDefaults::saelens6("zeros, as SAELens 6 initialises every SAE including BatchTopK");

/// The `config` object of a run request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchTopKConfig {
    /// The keys every trainer has.
    pub common: CommonConfig,
    /// Mean latents per row over a training batch.
    pub k: usize,
    /// Dead latents per row in the AuxK term; `None`: `d_in / 2`.
    pub k_aux: Option<usize>,
    /// AuxK weight; 0 turns AuxK off.
    pub aux_coeff: f64,
    /// Rate of the inference threshold's moving average.
    pub threshold_lr: f64,
    /// Initial decoder row norm.
    pub dec_init_norm: f64,
    /// `W_enc = enc_init_scale · W_decᵀ` at the start.
    pub enc_init_scale: f64,
    /// Global gradient-norm clip; `None`: off.
    pub grad_clip: Option<f64>,
}

/// JSON Schema (draft 2020-12) of [`BatchTopKConfig`].
pub fn config_schema() -> Value {
    let mut props = husai_kernels::trainer::config::common_properties(&DEFAULTS);
    props.insert(
        "k".into(),
        json!({"type": "integer", "minimum": 1, "description": "mean latents per row over a training batch: each \
               step keeps the batch * k largest post-ReLU pre-activations of the whole batch (k <= d_sae)"}),
    );
    props.insert(
        "k_aux".into(),
        json!({"type": ["integer", "null"], "minimum": 1, "default": null,
               "description": "dead latents per row that the AuxK loss uses (k_aux <= d_sae); null: d_in / 2, \
                               capped at d_sae"}),
    );
    props.insert(
        "aux_coeff".into(),
        json!({"type": "number", "minimum": 0, "default": DEFAULT_AUX_COEFF,
               "description": "weight of the AuxK loss (Gao et al. 2024: 1/32); 0 turns AuxK off"}),
    );
    props.insert(
        "threshold_lr".into(),
        json!({"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": DEFAULT_THRESHOLD_LR,
               "description": "rate of the moving average that estimates the inference threshold from each \
                               step's smallest kept activation (SAELens's topk_threshold_lr)"}),
    );
    insert_init_properties(&mut props, DEFAULT_DEC_INIT_NORM);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "sae-batchtopk config",
        "type": "object",
        "required": ["d_sae", "k", "seed"],
        "additionalProperties": false,
        "properties": props,
    })
}

fn number(
    own: &Map<String, Value>,
    key: &str,
    default: f64,
    ok: impl Fn(f64) -> bool,
    rule: &str,
) -> Result<f64, TrainerError> {
    match own.get(key) {
        None => Ok(default),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && ok(x) => Ok(x),
            _ => Err(TrainerError::config(
                key,
                format!("= {v} is invalid: must be {rule}"),
            )),
        },
    }
}

impl BatchTopKConfig {
    /// Parses and checks a request's config; errors name the key.
    pub fn from_json(value: &Value) -> Result<BatchTopKConfig, TrainerError> {
        let (own, common) = split_family_keys("sae-batchtopk", value, &FAMILY_KEYS)?;
        let common = CommonConfig::parse(common, &DEFAULTS)?;
        let k = own
            .get("k")
            .ok_or_else(|| TrainerError::config("k", "is required (mean latents per row)"))?;
        let k = int_key("k", k, 1)? as usize;
        if k > common.d_sae {
            return Err(TrainerError::config(
                "k",
                format!("= {k} is invalid: must be <= d_sae ({})", common.d_sae),
            ));
        }
        let k_aux = match own.get("k_aux").filter(|v| !v.is_null()) {
            Some(v) => {
                let n = int_key("k_aux", v, 1)? as usize;
                if n > common.d_sae {
                    return Err(TrainerError::config(
                        "k_aux",
                        format!("= {n} is invalid: must be <= d_sae ({})", common.d_sae),
                    ));
                }
                Some(n)
            }
            None => None,
        };
        let aux_coeff = number(
            &own,
            "aux_coeff",
            DEFAULT_AUX_COEFF,
            |x| x >= 0.0,
            "a finite number >= 0 (0 turns AuxK off)",
        )?;
        let threshold_lr = number(
            &own,
            "threshold_lr",
            DEFAULT_THRESHOLD_LR,
            |x| x > 0.0 && x <= 1.0,
            "a number in (0, 1]",
        )?;
        let dec_init_norm = number(
            &own,
            "dec_init_norm",
            DEFAULT_DEC_INIT_NORM,
            |x| x > 0.0,
            "a finite number > 0",
        )?;
        let enc_init_scale = number(
            &own,
            "enc_init_scale",
            1.0,
            |x| x > 0.0,
            "a finite number > 0",
        )?;
        let grad_clip = grad_clip_key(&own)?;
        Ok(BatchTopKConfig {
            common,
            k,
            k_aux,
            aux_coeff,
            threshold_lr,
            dec_init_norm,
            enc_init_scale,
            grad_clip,
        })
    }

    /// The effective config (defaults filled in), as the host records it.
    pub fn effective(&self) -> Map<String, Value> {
        let mut m = self.common.to_json();
        m.insert("k".into(), json!(self.k));
        m.insert("k_aux".into(), json!(self.k_aux));
        m.insert("aux_coeff".into(), json!(self.aux_coeff));
        m.insert("threshold_lr".into(), json!(self.threshold_lr));
        m.insert("dec_init_norm".into(), json!(self.dec_init_norm));
        m.insert("enc_init_scale".into(), json!(self.enc_init_scale));
        m.insert("grad_clip".into(), json!(self.grad_clip));
        m
    }

    /// `k_aux` for rows of width `d_in`: the configured value, else `d_in / 2` (at least 1, at most `d_sae`).
    pub fn k_aux_for(&self, d_in: usize) -> usize {
        self.k_aux.unwrap_or(d_in / 2).clamp(1, self.common.d_sae)
    }

    /// The family rule.
    pub fn family(&self) -> BatchTopK {
        BatchTopK::new(self.k, self.threshold_lr)
    }

    /// The engine config for `d_in`-wide rows (threads are set by the run).
    pub fn engine_config(&self, d_in: usize) -> EngineConfig {
        let mut e = EngineConfig::new(self.common.d_sae);
        e.batch = self.common.batch;
        e.seed = self.common.seed;
        e.adam = AdamConfig {
            lr: self.common.lr as f32,
            ..AdamConfig::default()
        };
        e.aux_k = (self.aux_coeff > 0.0).then(|| AuxKConfig {
            k_aux: self.k_aux_for(d_in),
            coeff: self.aux_coeff as f32,
        });
        e.dead_window = self.common.dead_window;
        e.b_dec_init = self.common.b_dec_init;
        e.init = InitConfig {
            dec_norm: self.dec_init_norm as f32,
            enc_scale: self.enc_init_scale as f32,
        };
        e.grad_clip = self.grad_clip.map(|c| c as f32);
        e
    }
}
