//! Reading one SAE train run: who it is (from its signed manifest) and its decoder (from its checkpoint).
//!
//! The host has verified the run and its chain before the plugin runs (docs/eval-contract.md §1), so the manifest
//! inside `husai.dsse.json` is read here without checking the signature again. The family and configuration are
//! taken as the strict gate takes them (`husai_core::gate::source::read_train_run`): the trainer plugin's name, and
//! the recorded config without `seed` and `resume_from`; the gate compares the covered runs it reads from the
//! results tree with the candidate run the same way.

use std::path::Path;

use base64::Engine as _;
use husai_kernels::activations::{self, OpenOptions};
use serde_json::Value;

use crate::EvalError;

/// The signed envelope of a run directory (its manifest is the statement's predicate).
pub const ENVELOPE: &str = "husai.dsse.json";
/// The checkpoint files every husai trainer writes (SAELens layout).
pub const SAE_WEIGHTS: &str = "sae_weights.safetensors";
pub const SAE_CONFIG: &str = "cfg.json";

/// One trained SAE: which signed run it is, its family and configuration, and its decoder (`[d_sae, d_in]`
/// row-major, SAELens `W_dec`).
#[derive(Debug, Clone)]
pub struct SaeRun {
    pub campaign: String,
    pub run_id: String,
    pub seed: u64,
    /// The trainer plugin's name (`sae-topk`, `sae-batchtopk`, ...).
    pub family: String,
    /// The run's config without `seed` and `resume_from`: what the seeds of one configuration share.
    pub configuration: Value,
    pub d_sae: usize,
    pub d_in: usize,
    pub w_dec: Vec<f32>,
}

fn bad(dir: &Path, what: impl std::fmt::Display) -> EvalError {
    EvalError::Inputs(format!("SAE run {}: {what}", dir.display()))
}

/// The manifest signed in `dir/husai.dsse.json`.
pub fn manifest(dir: &Path) -> Result<Value, EvalError> {
    let path = dir.join(ENVELOPE);
    let text = std::fs::read(&path).map_err(|e| {
        bad(
            dir,
            format!("cannot read {ENVELOPE} ({e}); is it a signed run?"),
        )
    })?;
    let envelope: Value = serde_json::from_slice(&text)
        .map_err(|e| bad(dir, format!("{ENVELOPE} is not JSON: {e}")))?;
    let payload = envelope
        .get("payload")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(dir, format!("{ENVELOPE} has no payload")))?;
    let statement = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|e| bad(dir, format!("{ENVELOPE}'s payload is not base64: {e}")))?;
    let mut statement: Value = serde_json::from_slice(&statement)
        .map_err(|e| bad(dir, format!("{ENVELOPE}'s statement is not JSON: {e}")))?;
    match statement.get_mut("predicate").map(Value::take) {
        Some(m @ Value::Object(_)) => Ok(m),
        _ => Err(bad(dir, format!("{ENVELOPE}'s statement has no manifest"))),
    }
}

/// Reads the SAE train run in `dir`: its identity from the manifest and `W_dec` from `sae_weights.safetensors`
/// (through the kernels' tensor reader, which reads a named tensor of any family's checkpoint; the kernels'
/// checkpoint readers are per family), checked against the `d_sae`, `d_in` of its `cfg.json`.
pub fn read_sae_run(dir: &Path) -> Result<SaeRun, EvalError> {
    let m = manifest(dir)?;
    let text = |key: &str| m.get(key).and_then(Value::as_str).map(str::to_owned);
    let run_id = text("run_id").ok_or_else(|| bad(dir, "its manifest has no run_id"))?;
    let campaign = text("campaign").ok_or_else(|| bad(dir, "its manifest has no campaign"))?;
    let kind = text("kind").unwrap_or_default();
    if kind != "train" {
        return Err(bad(
            dir,
            format!(
                "run {campaign}/{run_id} is a {kind:?} run; trained-vs-random reads SAE train runs \
                 (husai-audit train)"
            ),
        ));
    }
    let family = m
        .get("plugin")
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| bad(dir, "its manifest records no trainer plugin"))?
        .to_owned();
    let mut config = m
        .get("config")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| bad(dir, "its manifest records no config object"))?;
    let seed = config
        .remove("seed")
        .and_then(|s| s.as_u64())
        .or_else(|| {
            m.get("seeds")
                .and_then(|s| s.get(0))
                .and_then(Value::as_u64)
        })
        .ok_or_else(|| bad(dir, "its manifest records no seed"))?;
    config.remove("resume_from");

    let cfg_path = dir.join(SAE_CONFIG);
    let cfg: Value = std::fs::read(&cfg_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad(dir, format!("{SAE_CONFIG} is missing or not JSON")))?;
    let dim = |k: &str| cfg.get(k).and_then(Value::as_u64).map(|v| v as usize);
    let a = activations::open(
        &dir.join(SAE_WEIGHTS),
        &OpenOptions {
            tensor: Some("W_dec".into()),
            min_rows: 1,
            expected_d_in: None,
            rows: None,
        },
    )
    .map_err(|e| bad(dir, e))?;
    let [rows, cols] = a.info().shape();
    let (d_sae, d_in) = (rows as usize, cols as usize);
    if (dim("d_sae"), dim("d_in")) != (Some(d_sae), Some(d_in)) {
        return Err(bad(
            dir,
            format!(
                "W_dec is [{d_sae}, {d_in}] but {SAE_CONFIG} says d_sae {:?}, d_in {:?}",
                dim("d_sae"),
                dim("d_in")
            ),
        ));
    }
    Ok(SaeRun {
        campaign,
        run_id,
        seed,
        family,
        configuration: Value::Object(config),
        d_sae,
        d_in,
        w_dec: a.data().to_vec(),
    })
}
