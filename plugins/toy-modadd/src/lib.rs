//! `toy-modadd`: a data plugin that trains the modular-addition toy model past grokking and signs what it made as one
//! `data` run: the weights, the activations of every one of the p² pairs, and a record of training.
//!
//! It is a `data` plugin because its outputs are data for later runs (an activation bank SAEs are trained on, and
//! weights an eval reads), made by a generator from a seed; it reads no inputs. The model and its training are in
//! [`model`] (c is never an input unless `leaky_parity`, which is for parity experiments only).
//!
//! Outputs (docs/eval-contract.md readers rely on these names):
//! - `model.safetensors`: `embed` [p, d] (the token embedding), `mlp.w_in` [width, d], `mlp.b_in` [width],
//!   `mlp.w_out` [d, width], `unembed` [d, p], and with `leaky_parity` also `answer_embed` [p, d]; float32.
//! - `resid_pre.npy` [p², d]: h = E[a] + E[b] for every pair, row a·p + b. The embedding's own coordinates, where the
//!   Fourier directions Eᵀcos_k live; SAEs for the known-circuit eval are trained on it.
//! - `mlp_hidden.npy` [p², width]: the hidden layer ReLU(W_in h + b_in), row a·p + b.
//! - `mlp_out.npy` [p², d]: the MLP's output W_out·ReLU(W_in h + b_in), row a·p + b. With `resid_pre.npy` (the MLP's
//!   input) it is what a transcoder is fitted on (the transcoder-stress eval).
//! - `toy_model.json`: the config, the split, the training curve, the grokking step, final accuracies and the
//!   embedding's top-5 folded-frequency share trained and at init.

pub mod model;
pub mod step;

use std::path::Path;

use husai_kernels::activations::write_npy_f32;
use husai_kernels::fourier;
use husai_plugin_api::{
    Capability, Description, Plugin, PluginError, PluginKind, Progress, RunRequest,
};
use model::{ToyConfig, Trained};
use serde_json::{Value, json};

pub const WEIGHTS: &str = "model.safetensors";
pub const RESID_PRE: &str = "resid_pre.npy";
pub const HIDDEN: &str = "mlp_hidden.npy";
pub const MLP_OUT: &str = "mlp_out.npy";
pub const RECORD: &str = "toy_model.json";
/// The number of key frequencies whose share is reported.
pub const KEY_FREQUENCIES: usize = 5;

const MAX_SEED: u64 = (1 << 53) - 1;

fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "toy-modadd config",
        "type": "object",
        "additionalProperties": false,
        "required": ["seed"],
        "properties": {
            "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "description": "init and split seed"},
            "p": {"type": "integer", "minimum": 3, "maximum": 1009, "default": 113, "description": "the modulus (an odd prime)"},
            "d_model": {"type": "integer", "minimum": 1, "maximum": 4096, "default": 128, "description": "embedding width"},
            "width": {"type": "integer", "minimum": 1, "maximum": 16384, "default": 512, "description": "MLP hidden width"},
            "train_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.3,
                               "description": "share of the p² pairs trained on; the rest are held out"},
            "steps": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 2000, "description": "full-batch steps"},
            "lr": {"type": "number", "exclusiveMinimum": 0, "default": 0.003, "description": "AdamW learning rate"},
            "weight_decay": {"type": "number", "minimum": 0, "default": 1.0, "description": "decoupled weight decay"},
            "beta1": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.9},
            "beta2": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.98},
            "eps": {"type": "number", "exclusiveMinimum": 0, "default": 1e-8},
            "eval_every": {"type": "integer", "minimum": 1, "default": 50, "description": "held-out check every N steps"},
            "leaky_parity": {"type": "boolean", "default": false,
                             "description": "give the answer c as an input (upstream's leak; parity experiments only)"},
            "threads": {"type": "integer", "minimum": 0, "maximum": 256, "default": 0, "description": "0: all cores"}
        }
    })
}

fn is_prime(p: usize) -> bool {
    p >= 2 && (2..).take_while(|i| i * i <= p).all(|i| p % i != 0)
}

/// The config as the model's.
pub fn parse_config(c: &Value) -> Result<(ToyConfig, usize), PluginError> {
    let bad = |m: String| PluginError::invalid_config(m);
    let uint = |k: &str| c.get(k).and_then(Value::as_u64);
    let num = |k: &str| c.get(k).and_then(Value::as_f64);
    let seed = uint("seed").ok_or_else(|| bad("config key /seed is required".to_owned()))?;
    let mut cfg = ToyConfig::new(seed);
    let set_usize = |k: &str, v: &mut usize| {
        if let Some(x) = uint(k) {
            *v = x as usize;
        }
    };
    set_usize("p", &mut cfg.p);
    set_usize("d_model", &mut cfg.d_model);
    set_usize("width", &mut cfg.width);
    set_usize("steps", &mut cfg.steps);
    set_usize("eval_every", &mut cfg.eval_every);
    if let Some(x) = num("train_fraction") {
        cfg.train_fraction = x;
    }
    for (k, v) in [
        ("lr", &mut cfg.lr),
        ("weight_decay", &mut cfg.weight_decay),
        ("beta1", &mut cfg.beta1),
        ("beta2", &mut cfg.beta2),
        ("eps", &mut cfg.eps),
    ] {
        if let Some(x) = num(k) {
            *v = x as f32;
        }
    }
    cfg.leaky_parity = c
        .get("leaky_parity")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !is_prime(cfg.p) || cfg.p == 2 {
        return Err(bad(format!(
            "config key /p = {} must be an odd prime (the Fourier analysis of Z_p needs a field)",
            cfg.p
        )));
    }
    if cfg.lr * cfg.weight_decay >= 1.0 {
        return Err(bad(format!(
            "lr × weight_decay = {} must be below 1 (decoupled decay scales weights by 1 − lr·wd each step)",
            cfg.lr * cfg.weight_decay
        )));
    }
    Ok((cfg, uint("threads").unwrap_or(0) as usize))
}

/// A safetensors file of float32 tensors in the given order (header padded to 8 bytes, as the reference writer).
pub fn safetensors_f32(tensors: &[(&str, Vec<usize>, &[f32])]) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut offset = 0usize;
    for (name, shape, data) in tensors {
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        let end = offset + 4 * data.len();
        entries.push(format!(
            "\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            dims.join(",")
        ));
        offset = end;
    }
    let mut header = format!("{{{}}}", entries.join(","));
    let padded = (8 + header.len()).next_multiple_of(8) - 8;
    header.push_str(&" ".repeat(padded - header.len()));
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for (_, _, data) in tensors {
        for v in *data {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

fn out_err(path: &Path, e: impl std::fmt::Display) -> PluginError {
    PluginError::output(format!("{}: {e}", path.display()))
}

/// Writes the run's files and returns the summary recorded in the manifest.
pub fn write_outputs(dir: &Path, cfg: &ToyConfig, t: &Trained) -> Result<Value, PluginError> {
    let m = &t.model;
    let (p, d, w) = (m.p, m.d, m.width);
    let mut tensors: Vec<(&str, Vec<usize>, &[f32])> = vec![("embed", vec![p, d], &m.embed)];
    if !m.answer_embed.is_empty() {
        tensors.push(("answer_embed", vec![p, d], &m.answer_embed));
    }
    tensors.extend([
        ("mlp.w_in", vec![w, d], &m.w_in[..]),
        ("mlp.b_in", vec![w], &m.b_in[..]),
        ("mlp.w_out", vec![d, w], &m.w_out[..]),
        ("unembed", vec![d, p], &m.unembed[..]),
    ]);
    let path = dir.join(WEIGHTS);
    std::fs::write(&path, safetensors_f32(&tensors)).map_err(|e| out_err(&path, e))?;

    let all: Vec<(usize, usize)> = (0..p).flat_map(|a| (0..p).map(move |b| (a, b))).collect();
    let f = model::forward(m, &all).map_err(|e| PluginError::failed(e.to_string()))?;
    let path = dir.join(RESID_PRE);
    write_npy_f32(&path, p * p, d, &f.resid_pre).map_err(|e| out_err(&path, e))?;
    let path = dir.join(HIDDEN);
    write_npy_f32(&path, p * p, w, &f.hidden).map_err(|e| out_err(&path, e))?;
    let path = dir.join(MLP_OUT);
    write_npy_f32(&path, p * p, d, &f.mlp_out).map_err(|e| out_err(&path, e))?;

    let share = |e: &[f32]| -> Result<(f64, Vec<usize>), PluginError> {
        let energy =
            fourier::folded_energy(e, p, d).map_err(|e| PluginError::failed(e.to_string()))?;
        Ok(fourier::top_share(&energy, KEY_FREQUENCIES))
    };
    let (trained_share, keys) = share(&m.embed)?;
    let (init_share, _) = share(&t.init_embed)?;
    let last = t.curve.last();
    let summary = json!({
        "p": p, "d_model": d, "width": w, "leaky_parity": cfg.leaky_parity,
        "train_pairs": t.split.train.len(), "test_pairs": t.split.test.len(),
        "steps_done": t.steps_done, "grok_step": t.grok_step,
        "train_accuracy": last.map(|c| c.train_acc), "test_accuracy": last.map(|c| c.test_acc),
        "train_loss": last.map(|c| c.train_loss), "test_loss": last.map(|c| c.test_loss),
        "embed_top5_share": trained_share, "embed_top5_share_init": init_share, "key_frequencies": keys,
    });
    let curve: Vec<Value> = t
        .curve
        .iter()
        .map(|c| {
            json!({"step": c.step, "train_loss": c.train_loss, "train_acc": c.train_acc,
                   "test_loss": c.test_loss, "test_acc": c.test_acc})
        })
        .collect();
    let record = json!({
        "model": "h = E[a] + E[b]; r = h + W_out·ReLU(W_in·h + b_in); logits = Uᵀr; loss on c = (a + b) mod p",
        "activations": {
            RESID_PRE: {"shape": [p * p, d], "what": "h = E[a] + E[b], row a·p + b"},
            HIDDEN: {"shape": [p * p, w], "what": "ReLU(W_in·h + b_in), row a·p + b"},
            MLP_OUT: {"shape": [p * p, d], "what": "W_out·ReLU(W_in·h + b_in), the MLP's output, row a·p + b"},
        },
        "summary": summary, "curve": curve,
    });
    let path = dir.join(RECORD);
    let text = serde_json::to_string_pretty(&record).expect("a JSON value serialises");
    std::fs::write(&path, text).map_err(|e| out_err(&path, e))?;
    Ok(summary)
}

struct ToyModAdd;

impl Plugin for ToyModAdd {
    fn describe() -> Description {
        Description {
            name: "toy-modadd".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Data,
            architectures: vec![],
            evals: vec![],
            config_schema: schema(),
            capabilities: vec![Capability::Cpu],
        }
    }

    fn run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
        if let Some(role) = request.inputs.keys().next() {
            return Err(PluginError::invalid_input(format!(
                "toy-modadd reads no inputs, but was given {role:?}"
            )));
        }
        let (cfg, threads) = parse_config(&request.config)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| PluginError::failed(format!("cannot start the thread pool: {e}")))?;
        let steps = cfg.steps as u64;
        let trained = model::train(&cfg, &pool, &mut |c| {
            progress.report(
                c.step as u64,
                steps,
                &format!("loss {:.4} test acc {:.4}", c.train_loss, c.test_acc),
            );
            !progress.stop_requested()
        })
        .map_err(|e| PluginError::failed(e.to_string()))?;
        if trained.steps_done < cfg.steps {
            return Err(PluginError::failed(format!(
                "stopped at step {} of {} on request; nothing is kept",
                trained.steps_done, cfg.steps
            )));
        }
        let summary = pool.install(|| write_outputs(&request.output_dir, &cfg, &trained))?;
        Ok(json!({"outputs": [WEIGHTS, RESID_PRE, HIDDEN, MLP_OUT, RECORD], "summary": summary}))
    }
}

husai_plugin_api::export_plugin!(ToyModAdd);

#[cfg(test)]
mod tests;
