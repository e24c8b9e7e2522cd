//! `test-trainer`: a trainer plugin that exists only in the tests. It implements the trainer contract
//! (docs/trainer-contract.md) cheaply, with a deterministic fake "training" instead of an SAE, so that every host path
//! can be tested end to end without the real trainers: the schema-driven config, read digests, `diverged` and
//! `interrupted` status, exact resume from its own `trainer_state.safetensors`, held-out rows and `--eval-data`.
//!
//! It has options no real plugin has (`wobble`, `shards`, `diverge_at_step`, `tamper`, `step_ms`), which proves
//! that the host holds no family's options.
//!
//! The "model" is a vector of `d_sae` numbers. Step `s` visits the batch of training rows starting at row
//! `(s * batch) mod train_rows` and moves each number towards the batch mean of its column (`j mod d_in`) by
//! `lr * wobble`, in `shards` equal sub-steps.
//! All arithmetic is f64 in a fixed order, so the same state and step give the same bytes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use husai_plugin_api::{
    Capability, Description, Plugin, PluginError, PluginKind, Progress, RunRequest,
};
use husai_test_plugins::{
    Matrix, Tensor, parse_npy_f32, safetensors_bytes, safetensors_tensor, sha256_hex,
};
use serde_json::{Value, json};

struct TestTrainer;

const MAX_SEED: u64 = (1 << 53) - 1;
const STATE_FILE: &str = "trainer_state.safetensors";
const OUTPUTS: [&str; 5] = [
    "cfg.json",
    "sae_weights.safetensors",
    STATE_FILE,
    "metrics.json",
    "metrics.jsonl",
];

fn schema() -> Value {
    let rows = json!({"type": "object", "additionalProperties": false, "required": ["start", "end"],
        "properties": {"start": {"type": "integer", "minimum": 0}, "end": {"type": "integer", "minimum": 1}}});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "test-trainer config",
        "type": "object",
        "additionalProperties": false,
        "required": ["d_sae", "seed"],
        "properties": {
            "d_sae": {"type": "integer", "minimum": 1, "description": "number of latents"},
            "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "description": "initialisation seed"},
            "steps": {"type": ["integer", "null"], "minimum": 1, "default": null,
                      "description": "total optimiser steps of the run's lineage"},
            "epochs": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": null,
                       "description": "total passes over the training rows"},
            "batch": {"type": "integer", "minimum": 1, "default": 4, "description": "rows per step"},
            "lr": {"type": "number", "exclusiveMinimum": 0, "default": 0.01, "description": "step size"},
            "tensor": {"type": ["string", "null"], "default": null, "description": "unused (.npy only)"},
            "rows": {"anyOf": [rows, {"type": "null"}], "default": null, "description": "rows of the bank used"},
            "eval": {"type": "object", "default": {"fraction": 0.1},
                     "description": "held-out rows: {fraction}, {rows: {start, end}} or {data: true}"},
            "eval_every": {"type": "integer", "minimum": 0, "default": 0, "description": "held-out check every N steps"},
            "log_every": {"type": "integer", "minimum": 1, "default": 1, "description": "metrics.jsonl every N steps"},
            "fvu_ceiling": {"type": "number", "exclusiveMinimum": 0, "default": 1.0, "description": "unused"},
            "dead_window": {"type": "integer", "minimum": 1, "default": 10, "description": "unused"},
            "resume_from": {"type": ["object", "null"], "default": null, "description": "set by the host"},
            "wobble": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5,
                       "description": "how far one step moves the state (test-trainer only)"},
            "shards": {"type": "integer", "minimum": 1, "maximum": 8, "default": 1,
                       "description": "state shards; at most d_sae (test-trainer only)"},
            "diverge_at_step": {"type": ["integer", "null"], "minimum": 1, "default": null,
                                "description": "make the loss NaN at this step (test-trainer only)"},
            "tamper": {"type": "boolean", "default": false,
                       "description": "rewrite the activations file before reading it, mtime restored (test-trainer only)"},
            "step_ms": {"type": "integer", "minimum": 0, "maximum": 10000, "default": 0,
                        "description": "sleep this long per step (test-trainer only)"}
        }
    })
}

fn invalid(msg: impl Into<String>) -> PluginError {
    PluginError::invalid_config(msg)
}

fn input_err(msg: impl Into<String>) -> PluginError {
    PluginError::invalid_input(msg)
}

/// Reads a file once, into memory; the digest is of exactly these bytes.
fn read(path: &Path) -> Result<(Vec<u8>, String), PluginError> {
    let bytes = std::fs::read(path)
        .map_err(|e| input_err(format!("{}: cannot read it: {e}", path.display())))?;
    let sha = sha256_hex(&bytes);
    Ok((bytes, sha))
}

/// Rewrites one float of the file and puts the modification time back, as an attacker hiding the change would.
fn tamper(path: &Path) -> Result<(), PluginError> {
    let mut bytes = std::fs::read(path).map_err(|e| input_err(e.to_string()))?;
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| input_err(e.to_string()))?;
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&1234.5f32.to_le_bytes());
    std::fs::write(path, &bytes).map_err(|e| input_err(e.to_string()))?;
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .map_err(|e| input_err(e.to_string()))?;
    f.set_modified(mtime)
        .map_err(|e| input_err(e.to_string()))?;
    Ok(())
}

fn splitmix(x: &mut u64) -> f64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

fn range_of(v: &Value) -> Option<(usize, usize)> {
    Some((
        v.get("start")?.as_u64()? as usize,
        v.get("end")?.as_u64()? as usize,
    ))
}

/// Mean squared difference between each row of `x[rows]` and the state (column `j mod d_in` against `state[j]`).
fn mse(x: &Matrix, rows: (usize, usize), state: &[f64]) -> f64 {
    let mut sum = 0.0;
    let mut n = 0.0;
    for r in rows.0..rows.1 {
        for (j, s) in state.iter().enumerate() {
            let v = f64::from(x.data[r * x.cols + j % x.cols]);
            sum += (v - s) * (v - s);
            n += 1.0;
        }
    }
    if n == 0.0 { 0.0 } else { sum / n }
}

fn finite(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

impl Plugin for TestTrainer {
    fn describe() -> Description {
        Description {
            name: "test-trainer".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Trainer,
            architectures: vec!["fake".into()],
            evals: vec![],
            config_schema: schema(),
            capabilities: vec![Capability::Cpu],
        }
    }

    fn run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
        let c = &request.config;
        let uint = |k: &str| c.get(k).and_then(Value::as_u64);
        let num = |k: &str| c.get(k).and_then(Value::as_f64);
        let d_sae = uint("d_sae").ok_or_else(|| invalid("d_sae is missing"))? as usize;
        let seed = uint("seed").ok_or_else(|| invalid("seed is missing"))?;
        let batch = uint("batch").unwrap_or(4) as usize;
        let lr = num("lr").unwrap_or(0.01);
        let wobble = num("wobble").unwrap_or(0.5);
        let shards = uint("shards").unwrap_or(1) as usize;
        let log_every = uint("log_every").unwrap_or(1).max(1);
        let step_ms = uint("step_ms").unwrap_or(0);
        let diverge_at = uint("diverge_at_step");
        if shards > d_sae {
            return Err(invalid(format!(
                "config key /shards = {shards} must be at most d_sae = {d_sae}"
            )));
        }
        for role in request.inputs.keys() {
            if !["activations", "eval_activations", "resume"].contains(&role.as_str()) {
                return Err(input_err(format!("test-trainer takes no input {role:?}")));
            }
        }
        let data_path = request
            .inputs
            .get("activations")
            .ok_or_else(|| input_err("no \"activations\" input"))?;
        if c.get("tamper").and_then(Value::as_bool) == Some(true) {
            tamper(data_path)?;
        }
        let mut reads = serde_json::Map::new();
        let (bytes, sha) = read(data_path)?;
        reads.insert("activations".into(), json!(sha));
        let x = parse_npy_f32(&bytes)
            .map_err(|e| input_err(format!("{}: {e}", data_path.display())))?;
        let (start, end) = c.get("rows").and_then(range_of).unwrap_or((0, x.rows));
        if start >= end || end > x.rows {
            return Err(invalid(format!(
                "config key /rows {start}..{end} is outside the bank's {} rows",
                x.rows
            )));
        }

        // Held-out rows (contract §1 `eval`).
        let eval = c.get("eval").cloned().unwrap_or(json!({"fraction": 0.1}));
        let eval_file = match request.inputs.get("eval_activations") {
            Some(p) => {
                let (b, sha) = read(p)?;
                reads.insert("eval_activations".into(), json!(sha));
                Some(parse_npy_f32(&b).map_err(|e| input_err(format!("{}: {e}", p.display())))?)
            }
            None => None,
        };
        let (train_rows, eval_rows, eval_source) = if eval.get("data") == Some(&json!(true)) {
            let e = eval_file.as_ref().ok_or_else(|| {
                invalid("config key /eval says data but there is no eval_activations input")
            })?;
            ((start, end), (0, e.rows), "eval_activations")
        } else if let Some(r) = eval.get("rows").and_then(range_of) {
            ((start, end), r, "activations")
        } else {
            let f = eval.get("fraction").and_then(Value::as_f64).unwrap_or(0.1);
            if !(0.0..1.0).contains(&f) {
                return Err(invalid(format!(
                    "config key /eval/fraction = {f} must be in [0, 1)"
                )));
            }
            let held = ((end - start) as f64 * f).floor() as usize;
            ((start, end - held), (end - held, end), "activations")
        };
        let n_train = train_rows.1 - train_rows.0;
        if n_train < batch {
            return Err(input_err(format!(
                "{} training rows, fewer than one batch of {batch}",
                n_train
            )));
        }
        let steps = match (uint("steps"), num("epochs")) {
            (Some(s), None) => s,
            (None, Some(e)) => (e * n_train as f64 / batch as f64).ceil() as u64,
            _ => {
                return Err(invalid(
                    "set exactly one of the config keys /steps and /epochs",
                ));
            }
        };

        // Resume from our own state.
        let mut state: Vec<f64>;
        let mut step: u64 = 0;
        if let Some(dir) = request.inputs.get("resume") {
            // The host records every checkpoint file it hands over (metrics.jsonl too) and wants a digest of each.
            for name in ["cfg.json", "sae_weights.safetensors", "metrics.jsonl"] {
                let (_, sha) = read(&dir.join(name))?;
                reads.insert(format!("resume/{name}"), json!(sha));
            }
            let (b, sha) = read(&dir.join(STATE_FILE))?;
            reads.insert(format!("resume/{STATE_FILE}"), json!(sha));
            let (s, _) = safetensors_tensor(&b, "state")
                .map_err(|e| input_err(format!("{STATE_FILE}: {e}")))?;
            state = s
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            let (st, _) = safetensors_tensor(&b, "step")
                .map_err(|e| input_err(format!("{STATE_FILE}: {e}")))?;
            step =
                i64::from_le_bytes(st.try_into().map_err(|_| input_err("bad step tensor"))?) as u64;
            if state.len() != d_sae {
                return Err(input_err(format!(
                    "the resumed state has {} latents, d_sae is {d_sae}",
                    state.len()
                )));
            }
            if step >= steps {
                return Err(invalid(format!(
                    "config key /steps = {steps} is not beyond the {step} steps the resumed run already did"
                )));
            }
        } else {
            let mut rng = seed;
            state = (0..d_sae).map(|_| splitmix(&mut rng) - 0.5).collect();
        }

        let started = Instant::now();
        let mut lines = String::new();
        let mut status = "ok";
        let mut detail = Value::Null;
        let mut last_mse = f64::NAN;
        while step < steps {
            let first = train_rows.0 + (step as usize * batch) % n_train;
            let mut means = vec![0.0f64; x.cols];
            for i in 0..batch {
                let r = train_rows.0 + (first - train_rows.0 + i) % n_train;
                for (m, v) in means.iter_mut().zip(&x.data[r * x.cols..(r + 1) * x.cols]) {
                    *m += f64::from(*v) / batch as f64;
                }
            }
            // The move is applied in `shards` equal sub-steps.
            let h = lr * wobble / shards as f64;
            for _ in 0..shards {
                for (j, s) in state.iter_mut().enumerate() {
                    *s += h * (means[j % x.cols] - *s);
                }
            }
            step += 1;
            last_mse = mse(&x, (first, (first + batch).min(train_rows.1)), &state);
            if diverge_at == Some(step) {
                last_mse = f64::NAN;
            }
            if step % log_every == 0 || step == steps || !last_mse.is_finite() {
                let el = started.elapsed().as_secs_f64();
                let line = json!({"step": step, "elapsed_s": el, "rows_per_s": finite(step as f64 * batch as f64 / el.max(1e-9)),
                    "lr": lr, "loss": {"mse": finite(last_mse)}, "mse": finite(last_mse), "l0": d_sae as f64, "dead_fraction": 0.0});
                lines.push_str(&line.to_string());
                lines.push('\n');
            }
            progress.report(
                step,
                steps,
                &format!("mse {last_mse:.4} l0 {d_sae}.0 dead 0.0%"),
            );
            if !last_mse.is_finite() {
                status = "diverged";
                detail = json!({"step": step, "quantity": "loss.mse", "value": null,
                    "message": format!("loss.mse became non-finite at step {step}")});
                break;
            }
            if step_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(step_ms));
            }
            if progress.stop_requested() && step < steps {
                status = "interrupted";
                detail = json!({"step": step, "quantity": null, "value": null,
                    "message": format!("stopped by a signal after step {step} of {steps}")});
                break;
            }
        }

        let out = &request.output_dir;
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(out.join(name), bytes)
                .map_err(|e| PluginError::output(format!("cannot write {name}: {e}")))
        };
        write(
            "cfg.json",
            json!({"architecture": "fake", "d_in": x.cols, "d_sae": d_sae})
                .to_string()
                .as_bytes(),
        )?;
        let weights: Vec<f32> = state.iter().map(|v| *v as f32).collect();
        write(
            "sae_weights.safetensors",
            &safetensors_bytes(&BTreeMap::from([("W", Tensor::f32s(&weights))])),
        )?;
        write(
            STATE_FILE,
            &safetensors_bytes(&BTreeMap::from([
                ("state", Tensor::f64s(&state)),
                ("step", Tensor::i64s(&[step as i64])),
            ])),
        )?;
        let eval_x = eval_file.as_ref().unwrap_or(&x);
        let eval_mse = mse(eval_x, eval_rows, &state);
        let train =
            json!({"rows": {"start": train_rows.0, "end": train_rows.1}, "mse": finite(last_mse)});
        let held = json!({"rows": {"start": eval_rows.0, "end": eval_rows.1}, "source": eval_source, "mse": finite(eval_mse)});
        let wall = started.elapsed().as_secs_f64();
        let metrics = json!({"status": status, "steps_done": step, "train": train, "eval": held, "wall_s": wall});
        write("metrics.json", metrics.to_string().as_bytes())?;
        write("metrics.jsonl", lines.as_bytes())?;
        Ok(json!({
            "status": status,
            "status_detail": detail,
            "steps_done": step,
            "outputs": OUTPUTS,
            "read_sha256": reads,
            "dataset": {"format": "npy", "dtype": "float32", "shape": [x.rows, x.cols], "tensor": null,
                        "rows": {"start": start, "end": end}},
            "metrics": {"train": {"mse": finite(last_mse)}, "eval": {"mse": finite(eval_mse), "source": eval_source}, "steps_done": step},
        }))
    }
}

husai_plugin_api::export_plugin!(TestTrainer);
