//! `data`: the data plugin (kind `data`) behind `husai-audit data synth` and `husai-audit data encode`.
//!
//! It keeps the kernels out of husai-audit: the binary parses arguments and runs this plugin through the pipeline
//! (`husai_core::pipeline::Pipeline::produce`), like any other plugin, in a child process. The config's `operation`
//! picks what it does:
//!
//! - `synth`: activations from a known sparse dictionary (`husai_kernels::synth`): writes `activations.npy`
//!   `[rows, d_in]`, `dictionary.npy` `[n_features, d_in]` (the ground truth) and `generator.json`; the host signs
//!   them as a `data` run.
//! - `encode`: the dense feature activations of an SAE checkpoint (input `checkpoint`, a directory holding
//!   `cfg.json` and `sae_weights.safetensors`) for the first `rows` rows of a bank (input `activations`), written to
//!   `encoded.npy` `[rows, d_sae]`. A checkpoint of any trainer family is encoded by that family's inference rule,
//!   picked by the architecture its `cfg.json` names (`topk`, `standard`, `jumprelu`: `husai_kernels::inference`). An inspection and interoperability aid (scripts/saelens_interop.py compares it
//!   with SAELens's encoder); the host writes it to the user's file and never into a run.

use husai_kernels::activations::{self, OpenOptions, write_npy_f32};
use husai_kernels::inference::Encoder;
use husai_kernels::synth::{self, SynthConfig};
use husai_plugin_api::{
    Capability, Description, Plugin, PluginError, PluginKind, Progress, RunRequest,
};
use serde_json::{Value, json};

/// File names a `synth` operation writes.
pub const SYNTH_ACTIVATIONS: &str = "activations.npy";
pub const SYNTH_DICTIONARY: &str = "dictionary.npy";
pub const SYNTH_GENERATOR: &str = "generator.json";
/// The file an `encode` operation writes.
pub const ENCODED: &str = "encoded.npy";

const MAX_SEED: u64 = (1 << 53) - 1;

fn config_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "data plugin config",
        "type": "object",
        "additionalProperties": false,
        "required": ["operation", "rows"],
        "properties": {
            "operation": {"enum": ["synth", "encode"], "description": "synth: a synthetic bank (a signed data run); encode: an SAE's feature activations of a bank (a plain file)"},
            "rows": {"type": "integer", "minimum": 1, "description": "synth: rows to generate; encode: leading rows to encode"},
            "d_in": {"type": "integer", "minimum": 1, "description": "synth: width of each row (the model dimension)"},
            "n_features": {"type": "integer", "minimum": 1, "maximum": 4294967295u64, "description": "synth: true features in the dictionary; more than d_in puts them in superposition"},
            "l0": {"type": "integer", "minimum": 1, "description": "synth: features active per row (at most n_features)"},
            "coef_min": {"type": "number", "default": 0.5, "description": "synth: smallest coefficient of an active feature"},
            "coef_max": {"type": "number", "default": 1.5, "description": "synth: coefficients are uniform in [coef_min, coef_max)"},
            "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "description": "synth: generator seed"},
            "tensor": {"type": ["string", "null"], "default": null, "description": "encode: tensor of a .safetensors bank"},
            "start": {"type": "integer", "minimum": 0, "description": "encode: first row encoded, rows start..start+rows (absent: 0)"}
        },
        "allOf": [
            {"if": {"properties": {"operation": {"const": "synth"}}},
             "then": {"required": ["d_in", "n_features", "l0", "seed"]}}
        ]
    })
}

struct DataPlugin;

impl Plugin for DataPlugin {
    fn describe() -> Description {
        Description {
            name: "data".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Data,
            architectures: vec![],
            evals: vec![],
            config_schema: config_schema(),
            capabilities: vec![Capability::Cpu],
        }
    }

    fn run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
        match request.config.get("operation").and_then(Value::as_str) {
            Some("synth") => synth_run(request, progress),
            Some("encode") => encode(request, progress),
            other => Err(PluginError::invalid_config(format!(
                "config key /operation = {other:?} is not \"synth\" or \"encode\""
            ))),
        }
    }
}

husai_plugin_api::export_plugin!(DataPlugin);

fn usize_of(c: &Value, key: &str) -> Result<usize, PluginError> {
    c.get(key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .ok_or_else(|| {
            PluginError::invalid_config(format!("config key /{key} is missing or not an integer"))
        })
}

fn synth_run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
    let c = &request.config;
    if let Some(role) = request.inputs.keys().next() {
        return Err(PluginError::invalid_input(format!(
            "synth takes no inputs; the request names {role:?}"
        )));
    }
    let f32_of = |k: &str, d: f32| c.get(k).and_then(Value::as_f64).map_or(d, |v| v as f32);
    let config = SynthConfig {
        rows: usize_of(c, "rows")?,
        d_in: usize_of(c, "d_in")?,
        n_features: usize_of(c, "n_features")?,
        l0: usize_of(c, "l0")?,
        coef_min: f32_of("coef_min", 0.5),
        coef_max: f32_of("coef_max", 1.5),
        seed: c
            .get("seed")
            .and_then(Value::as_u64)
            .ok_or_else(|| PluginError::invalid_config("config key /seed is missing"))?,
    };
    config
        .validate()
        .map_err(|e| PluginError::invalid_config(e.to_string()))?;
    progress.report(0, 3, "generating");
    let data = synth::generate(&config).map_err(|e| PluginError::failed(e.to_string()))?;
    let dir = &request.output_dir;
    let out = |e: std::io::Error, f: &str| PluginError::output(format!("cannot write {f}: {e}"));
    write_npy_f32(
        &dir.join(SYNTH_ACTIVATIONS),
        config.rows,
        config.d_in,
        &data.x,
    )
    .map_err(|e| PluginError::output(format!("cannot write {SYNTH_ACTIVATIONS}: {e}")))?;
    progress.report(1, 3, "wrote activations");
    write_npy_f32(
        &dir.join(SYNTH_DICTIONARY),
        config.n_features,
        config.d_in,
        &data.dictionary,
    )
    .map_err(|e| PluginError::output(format!("cannot write {SYNTH_DICTIONARY}: {e}")))?;
    let generator = json!({
        "generator": "husai_kernels::synth",
        "generator_version": env!("CARGO_PKG_VERSION"),
        "config": serde_json::to_value(config).map_err(|e| PluginError::failed(e.to_string()))?,
        "dictionary": "n_features directions drawn i.i.d. standard normal in d_in dimensions, scaled to unit norm",
        "coefficient_law": "each row is the sum of exactly l0 distinct features chosen uniformly; coefficients \
                            uniform in [coef_min, coef_max)",
        "files": {
            SYNTH_ACTIVATIONS: {"shape": [config.rows, config.d_in], "dtype": "float32"},
            SYNTH_DICTIONARY: {"shape": [config.n_features, config.d_in], "dtype": "float32"},
        },
    });
    let mut text =
        serde_json::to_vec_pretty(&generator).map_err(|e| PluginError::failed(e.to_string()))?;
    text.push(b'\n');
    std::fs::write(dir.join(SYNTH_GENERATOR), text).map_err(|e| out(e, SYNTH_GENERATOR))?;
    progress.report(3, 3, "done");
    Ok(json!({
        "outputs": [SYNTH_ACTIVATIONS, SYNTH_DICTIONARY, SYNTH_GENERATOR],
        "summary": {"activations": [config.rows, config.d_in], "dictionary": [config.n_features, config.d_in], "l0": config.l0},
    }))
}

fn encode(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
    let c = &request.config;
    let rows = usize_of(c, "rows")?;
    let start = c.get("start").and_then(Value::as_u64).unwrap_or(0) as usize;
    let input = |role: &str| {
        request
            .inputs
            .get(role)
            .ok_or_else(|| PluginError::invalid_input(format!("encode needs the input {role:?}")))
    };
    let ckpt = input("checkpoint")?;
    let data = input("activations")?;
    let sae = Encoder::read(ckpt).map_err(|e| PluginError::invalid_input(e.to_string()))?;
    let d_sae = sae.d_sae();
    // Only the rows encoded are read and checked.
    let opts = OpenOptions {
        tensor: c.get("tensor").and_then(Value::as_str).map(str::to_owned),
        min_rows: 1,
        expected_d_in: Some(sae.d_in()),
        rows: Some((start, start + rows)),
    };
    let acts =
        activations::open(data, &opts).map_err(|e| PluginError::invalid_input(e.to_string()))?;
    let dense = sae
        .encode_dense(acts.data())
        .map_err(|e| PluginError::failed(e.to_string()))?;
    write_npy_f32(&request.output_dir.join(ENCODED), rows, d_sae, &dense)
        .map_err(|e| PluginError::output(format!("cannot write {ENCODED}: {e}")))?;
    progress.report(1, 1, "encoded");
    Ok(json!({"outputs": [ENCODED], "shape": [rows, d_sae], "architecture": sae.architecture()}))
}

#[cfg(test)]
mod tests;
