//! The JSON-level contract: what `describe` returns, what `run` receives, and how a plugin reports failure.
//!
//! These values cross the library boundary as JSON text, not as `#[repr(C)]` structs, so adding an optional field
//! does not change the root module's layout; only a breaking change to them bumps [`crate::API_VERSION`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a plugin does: trains SAEs, evaluates them, or makes and converts data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Trainer,
    Eval,
    /// Generates or converts data (activation banks, encodings); its outputs become a `data` run or plain files.
    Data,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Trainer => "trainer",
            PluginKind::Eval => "eval",
            PluginKind::Data => "data",
        })
    }
}

/// A compute backend the plugin can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    Cpu,
    Cuda,
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Capability::Cpu => "cpu",
            Capability::Cuda => "cuda",
        })
    }
}

/// A plugin's self-description, returned by `describe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// Short unique name, used on the command line (`--plugin sae-topk`).
    pub name: String,
    /// The plugin's own version (its crate version).
    pub version: String,
    pub kind: PluginKind,
    /// SAE architectures a trainer produces (empty for evals).
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Evaluations an eval plugin runs (empty for trainers).
    #[serde(default)]
    pub evals: Vec<String>,
    /// JSON Schema (draft 2020-12) of the `config` object that `run` accepts.
    pub config_schema: Value,
    pub capabilities: Vec<Capability>,
}

impl Description {
    /// The description of an eval plugin that runs one eval of its own name on CPU.
    pub fn eval(name: &str, version: &str, config_schema: Value) -> Description {
        Description {
            name: name.into(),
            version: version.into(),
            kind: PluginKind::Eval,
            architectures: vec![],
            evals: vec![name.into()],
            config_schema,
            capabilities: vec![Capability::Cpu],
        }
    }
}

/// A plugin's `config` as an object whose every key is one of `keys`; else the message (naming `plugin` and the
/// keys it reads) for an `invalid_config` error. (The host validates configs against the schema first; this holds a
/// plugin called as a library to the same rule.)
pub fn config_object<'a>(
    config: &'a Value,
    plugin: &str,
    keys: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, String> {
    let obj = config
        .as_object()
        .ok_or_else(|| format!("the config must be an object, got {config}"))?;
    match obj.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown config key {k:?}; {plugin} reads {}",
            keys.join(", ")
        )),
        None => Ok(obj),
    }
}

/// The finite number > 0 under `key` of a config object, `default` when absent; the error names the key and value.
pub fn config_positive(
    obj: &serde_json::Map<String, Value>,
    key: &str,
    default: f64,
) -> Result<f64, String> {
    match obj.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| format!("config key {key:?} must be a finite number > 0, got {v}")),
    }
}

/// Writes an eval plugin's summary `summary` as `output_dir/file` (pretty JSON) and returns the result `run`
/// returns for it (eval contract §3: the summary is its one output).
pub fn write_eval_summary(
    output_dir: &std::path::Path,
    file: &str,
    summary: &Value,
) -> Result<Value, PluginError> {
    let path = output_dir.join(file);
    let text = serde_json::to_string_pretty(summary).expect("a JSON value serialises");
    std::fs::write(&path, text)
        .map_err(|e| PluginError::output(format!("{}: {e}", path.display())))?;
    Ok(serde_json::json!({"outputs": [file], "summary": file}))
}

/// Why an eval plugin's evaluation could not run, by the [`PluginError`] kind it becomes: a bad config, inputs that
/// do not allow the evaluation, or a computation that failed. Evals that need nothing more share this one.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalError {
    Config(String),
    Inputs(String),
    Failed(String),
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::Config(m) | EvalError::Inputs(m) | EvalError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for EvalError {}

impl From<EvalError> for PluginError {
    fn from(e: EvalError) -> Self {
        match e {
            EvalError::Config(m) => PluginError::invalid_config(m),
            EvalError::Inputs(m) => PluginError::invalid_input(m),
            EvalError::Failed(m) => PluginError::failed(m),
        }
    }
}

/// A signed run directory's identity `(campaign, run_id)`: the last two components of `results/<campaign>/<run_id>/`,
/// which is how the host hands input runs to an eval plugin. Evals record it so that a reader (a gate) can check
/// which run their evidence concerns.
pub fn run_identity(dir: &std::path::Path) -> (String, String) {
    let name = |p: Option<&std::path::Path>| {
        p.and_then(std::path::Path::file_name)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    (name(dir.parent()), name(Some(dir)))
}

/// What `run` receives. Inputs are files, never in-memory tensors, so the host can hash everything a run read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Plugin-specific configuration, valid against the plugin's `config_schema`.
    pub config: Value,
    /// Input files by role (for a trainer: `"activations"`, optionally `"resume"`).
    #[serde(default)]
    pub inputs: BTreeMap<String, PathBuf>,
    /// Directory the plugin writes its outputs into. It exists and is empty when `run` starts; the host hashes and
    /// signs whatever is in it after a successful run and discards it after a failed one.
    pub output_dir: PathBuf,
}

/// Why a plugin run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request's `config` is not acceptable.
    InvalidConfig,
    /// An input file is missing, malformed or inconsistent with the config.
    InvalidInput,
    /// Writing an output failed.
    Output,
    /// The computation itself failed.
    Failed,
    /// The plugin panicked; the message is the panic payload.
    Panic,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidConfig => "invalid config",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Output => "output error",
            ErrorKind::Failed => "failed",
            ErrorKind::Panic => "panic",
        })
    }
}

/// A plugin's error, carried back to the host as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: String,
}

impl PluginError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfig, message)
    }
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    pub fn output(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Output, message)
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed, message)
    }
}

/// One progress report: `done` of `total` units (steps for a trainer), with a short human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressEvent {
    pub done: u64,
    pub total: u64,
    pub message: String,
}
