//! The keys every top-k family's config shares (sae-topk, sae-batchtopk, sae-matryoshka, sae-hierarchical-topk):
//! `k`, `k_aux`, `aux_coeff` and the initialisation and clipping keys `dec_init_norm`, `enc_init_scale`,
//! `grad_clip`. Their schema fragment, their checks (errors name the key) and their part of the engine config
//! live here once; a family adds what is its own (`threshold_lr`, `matryoshka_widths`) and its descriptions of `k`.

use serde_json::{Map, Value, json};

use super::config::{grad_clip_key, insert_init_properties, int_key};
use super::{CommonConfig, TrainerError};
use crate::AuxKConfig;
use crate::adam::AdamConfig;
use crate::engine::{EngineConfig, InitConfig};

/// The shared keys, in schema order.
pub const TOPK_KEYS: [&str; 6] = [
    "k",
    "k_aux",
    "aux_coeff",
    "dec_init_norm",
    "enc_init_scale",
    "grad_clip",
];

/// AuxK's weight by default: 1/32, Gao et al. 2024 ("Scaling and evaluating sparse autoencoders", §A.2, α = 1/32).
pub const DEFAULT_AUX_COEFF: f64 = 1.0 / 32.0;

/// Initial decoder row norm by default: SAELens 6's `decoder_init_norm` (sae-topk's config module says why).
pub const DEFAULT_DEC_INIT_NORM: f64 = 0.1;

/// The shared keys, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TopKKeys {
    /// Latents per row (per-row exactly, or the batch mean, as the family says).
    pub k: usize,
    /// Dead latents per row in the AuxK term; `None`: `d_in / 2` (see [`TopKKeys::k_aux_for`]).
    pub k_aux: Option<usize>,
    /// AuxK weight; 0 turns AuxK off.
    pub aux_coeff: f64,
    /// Initial decoder row norm.
    pub dec_init_norm: f64,
    /// `W_enc = enc_init_scale · W_decᵀ` at the start.
    pub enc_init_scale: f64,
    /// Global gradient-norm clip; `None`: off.
    pub grad_clip: Option<f64>,
}

/// Adds the shared keys' schema to `props`; `k_description` says what `k` means for the family.
pub fn insert_topk_properties(props: &mut Map<String, Value>, k_description: &str) {
    props.insert(
        "k".into(),
        json!({"type": "integer", "minimum": 1, "description": k_description}),
    );
    props.insert(
        "k_aux".into(),
        json!({"type": ["integer", "null"], "minimum": 1, "default": null,
               "description": "dead latents per row that the AuxK loss uses to reconstruct the residual \
                               (k_aux <= d_sae); null: d_in / 2, as SAELens and sparsify compute it (Gao et al. \
                               2024 use a power of two near d_in / 2), capped at d_sae"}),
    );
    props.insert(
        "aux_coeff".into(),
        json!({"type": "number", "minimum": 0, "default": DEFAULT_AUX_COEFF,
               "description": "weight of the AuxK loss (Gao et al. 2024: 1/32); 0 turns AuxK off. It acts on \
                               latents dead for dead_window steps"}),
    );
    insert_init_properties(props, DEFAULT_DEC_INIT_NORM);
}

fn positive(own: &Map<String, Value>, key: &str, default: f64) -> Result<f64, TrainerError> {
    match own.get(key) {
        None => Ok(default),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 => Ok(x),
            _ => Err(TrainerError::config(
                key,
                format!("= {v} is invalid: must be a finite number > 0"),
            )),
        },
    }
}

fn at_most_d_sae(key: &str, n: usize, d_sae: usize) -> Result<usize, TrainerError> {
    if n > d_sae {
        return Err(TrainerError::config(
            key,
            format!("= {n} is invalid: must be <= d_sae ({d_sae})"),
        ));
    }
    Ok(n)
}

impl TopKKeys {
    /// Parses the shared keys of a family's own keys `own`; `k_meaning` completes "is required (...)".
    pub fn parse(
        own: &Map<String, Value>,
        common: &CommonConfig,
        k_meaning: &str,
    ) -> Result<TopKKeys, TrainerError> {
        let k = own
            .get("k")
            .ok_or_else(|| TrainerError::config("k", format!("is required ({k_meaning})")))?;
        let k = at_most_d_sae("k", int_key("k", k, 1)? as usize, common.d_sae)?;
        let k_aux = match own.get("k_aux").filter(|v| !v.is_null()) {
            Some(v) => Some(at_most_d_sae(
                "k_aux",
                int_key("k_aux", v, 1)? as usize,
                common.d_sae,
            )?),
            None => None,
        };
        let aux_coeff = match own.get("aux_coeff") {
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x >= 0.0 => x,
                _ => {
                    return Err(TrainerError::config(
                        "aux_coeff",
                        format!(
                            "= {v} is invalid: must be a finite number >= 0 (0 turns AuxK off)"
                        ),
                    ));
                }
            },
            None => DEFAULT_AUX_COEFF,
        };
        Ok(TopKKeys {
            k,
            k_aux,
            aux_coeff,
            dec_init_norm: positive(own, "dec_init_norm", DEFAULT_DEC_INIT_NORM)?,
            enc_init_scale: positive(own, "enc_init_scale", 1.0)?,
            grad_clip: grad_clip_key(own)?,
        })
    }

    /// Adds the keys with their effective values to `m` (the host records the effective config).
    pub fn insert_effective(&self, m: &mut Map<String, Value>) {
        m.insert("k".into(), json!(self.k));
        m.insert("k_aux".into(), json!(self.k_aux));
        m.insert("aux_coeff".into(), json!(self.aux_coeff));
        m.insert("dec_init_norm".into(), json!(self.dec_init_norm));
        m.insert("enc_init_scale".into(), json!(self.enc_init_scale));
        m.insert("grad_clip".into(), json!(self.grad_clip));
    }

    /// `k_aux` for rows of width `d_in`: the configured value, else `d_in / 2` (at least 1, at most `d_sae`).
    pub fn k_aux_for(&self, d_in: usize, d_sae: usize) -> usize {
        self.k_aux.unwrap_or(d_in / 2).clamp(1, d_sae)
    }

    /// The shared engine's config for `d_in`-wide rows (the thread count is set by the run). AuxK is always
    /// configured, with weight 0 when off, so the stream reports `loss.aux` (0) either way; the engine skips the
    /// term's work at weight 0.
    pub fn engine_config(&self, common: &CommonConfig, d_in: usize) -> EngineConfig {
        EngineConfig {
            batch: common.batch,
            seed: common.seed,
            adam: AdamConfig {
                lr: common.lr as f32,
                ..AdamConfig::default()
            },
            aux_k: Some(AuxKConfig {
                k_aux: self.k_aux_for(d_in, common.d_sae),
                coeff: self.aux_coeff as f32,
            }),
            dead_window: common.dead_window,
            b_dec_init: common.b_dec_init,
            init: InitConfig {
                dec_norm: self.dec_init_norm as f32,
                enc_scale: self.enc_init_scale as f32,
            },
            grad_clip: self.grad_clip.map(|c| c as f32),
            ..EngineConfig::new(common.d_sae)
        }
    }
}
