//! `sae-topk`: the TopK SAE trainer plugin.
//!
//! It reads a [`RunRequest`] whose `inputs.activations` names an activation bank (`.npy` or `.safetensors`), checks
//! and memory-maps it (`husai_kernels::activations`), trains with `husai_kernels::train`, and writes into the
//! request's output directory:
//!
//! - `cfg.json` + `sae_weights.safetensors`: the SAE in SAELens's layout (`sae_lens.SAE.load_from_disk` loads it as
//!   architecture `topk`); same seed and data give byte-identical weights;
//! - `metrics.json`: MSE, FVU, L0 and dead fraction (definitions in `husai_kernels::metrics`) of the final model,
//!   the loss curve, the training loop's wall time and rows per second.
//!
//! The result JSON lists the outputs and describes the data set as the plugin read it; the host hashes the data set
//! and the outputs itself.

mod config;

use std::path::Path;

use husai_kernels::activations::{self, OpenOptions};
use husai_kernels::{checkpoint, train_from};
use husai_plugin_api::{
    Capability, Description, Plugin, PluginError, PluginKind, Progress, RunRequest,
};
use serde_json::{Value, json};

pub use config::{RowSelection, TopKConfig, config_schema};

/// Name of the metrics file in the output directory.
pub const METRICS_FILE: &str = "metrics.json";
/// The input role of the activation bank.
pub const ACTIVATIONS_INPUT: &str = "activations";
/// Input role of an optional checkpoint directory to resume from.
pub const RESUME_INPUT: &str = "resume";

struct SaeTopK;

impl Plugin for SaeTopK {
    fn describe() -> Description {
        Description {
            name: "sae-topk".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Trainer,
            architectures: vec!["topk".into()],
            evals: vec![],
            config_schema: config_schema(),
            capabilities: vec![Capability::Cpu],
        }
    }

    fn run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
        run(request, progress)
    }
}

husai_plugin_api::export_plugin!(SaeTopK);

/// A JSON number, or `null` for a non-finite value (husai never writes NaN or Infinity).
fn num(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

fn run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
    let cfg = TopKConfig::from_json(&request.config)?;
    if let Some(role) = request
        .inputs
        .keys()
        .find(|r| r.as_str() != ACTIVATIONS_INPUT && r.as_str() != RESUME_INPUT)
    {
        return Err(PluginError::invalid_input(format!(
            "sae-topk takes the inputs {ACTIVATIONS_INPUT:?} and, optionally, {RESUME_INPUT:?}; \
             the request also names {role:?}"
        )));
    }
    // A checkpoint directory (cfg.json + sae_weights.safetensors) to continue training from.
    let start = match request.inputs.get(RESUME_INPUT) {
        Some(dir) => {
            let parts =
                checkpoint::read(dir).map_err(|e| PluginError::invalid_input(e.to_string()))?;
            Some(
                husai_kernels::TopKSae::from_parts(parts)
                    .map_err(|e| PluginError::invalid_input(e.to_string()))?,
            )
        }
        None => None,
    };
    let data_path = request.inputs.get(ACTIVATIONS_INPUT).ok_or_else(|| {
        PluginError::invalid_input(format!(
            "the request names no {ACTIVATIONS_INPUT:?} input file"
        ))
    })?;
    let opts = OpenOptions {
        tensor: cfg.tensor.clone(),
        min_rows: cfg.batch,
        expected_d_in: start.as_ref().map(|m| m.d_in()),
        rows: cfg.rows.map(|r| (r.start, r.end)),
    };
    let acts = activations::open(data_path, &opts)
        .map_err(|e| PluginError::invalid_input(e.to_string()))?;
    let info = acts.info().clone();

    let train_cfg = cfg.to_train_config();
    let mut last_report = std::time::Instant::now();
    let mut on_step = |step: usize, steps: usize, loss: f64| {
        // Report at most ~20 times a second (plus the last step): each report is a line through a pipe.
        if step == steps || last_report.elapsed().as_millis() >= 50 {
            last_report = std::time::Instant::now();
            progress.report(step as u64, steps as u64, &format!("loss {loss:.4}"));
        }
    };
    let outcome = train_from(&train_cfg, start, acts.data(), info.d_in, &mut on_step)
        .map_err(|e| PluginError::failed(format!("training failed: {e}")))?;

    let out = &request.output_dir;
    let parts = outcome.model.to_parts();
    checkpoint::write(out, &parts).map_err(|e| PluginError::output(e.to_string()))?;

    let m = &outcome.metrics;
    let curve: Vec<Value> = outcome
        .loss_curve
        .iter()
        .enumerate()
        .map(|(i, l)| json!({"step": i + 1, "mse_loss": num(l.mse_loss), "aux_loss": num(l.aux_loss), "l0": num(l.l0)}))
        .collect();
    let metrics = json!({
        "definitions": "husai_kernels::metrics: MSE = mean squared error per element; FVU = sum((x - x_hat)^2) / \
                        sum((x - mean)^2) with per-column means of the evaluated rows; L0 = mean nonzero latents per \
                        row; dead fraction = share of latents that fired on none of the evaluated rows",
        "eval_rows": m.rows,
        "mse": num(m.reconstruction.mse),
        "fvu": num(m.reconstruction.fvu),
        "loss_per_row": num(m.reconstruction.loss_per_row),
        "l0": num(m.l0),
        "dead_fraction": num(m.dead_fraction),
        "train_dead_fraction": num(outcome.train_dead_fraction),
        "steps": train_cfg.steps,
        "batch": train_cfg.batch,
        "threads": train_cfg.threads,
        "wall_s": num(outcome.wall_s),
        "rows_per_s": num(outcome.rows_per_s),
        "loss_curve": curve,
    });
    write_json(&out.join(METRICS_FILE), &metrics)?;

    Ok(json!({
        "outputs": [checkpoint::CONFIG_FILE, checkpoint::WEIGHTS_FILE, METRICS_FILE],
        "dataset": {
            "format": info.format.as_str(),
            "dtype": info.dtype.as_str(),
            "shape": info.shape(),
            "tensor": info.tensor,
            "rows": {"start": acts.row_range().0, "end": acts.row_range().1},
        },
        "metrics": {
            "mse": num(m.reconstruction.mse),
            "fvu": num(m.reconstruction.fvu),
            "l0": num(m.l0),
            "dead_fraction": num(m.dead_fraction),
            "wall_s": num(outcome.wall_s),
            "rows_per_s": num(outcome.rows_per_s),
        },
    }))
}

fn write_json(path: &Path, value: &Value) -> Result<(), PluginError> {
    let mut text = serde_json::to_vec_pretty(value)
        .map_err(|e| PluginError::output(format!("cannot serialise {}: {e}", path.display())))?;
    text.push(b'\n');
    std::fs::write(path, text)
        .map_err(|e| PluginError::output(format!("cannot write {}: {e}", path.display())))
}
