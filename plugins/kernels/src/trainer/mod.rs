//! The family-agnostic half of a trainer plugin (the trainer contract, `docs/trainer-contract.md`): the common
//! config keys ([`config`]), reading and hashing inputs and the held-out split ([`data`]), the metric stream
//! ([`stream`]), the training driver with its divergence and interruption rules ([`run`]), and the summary and
//! result JSON. A family supplies a [`run::Session`] (one optimiser step, evaluation, its parameters' finiteness)
//! and its own config keys; everything a user sees about training is the same for every family.
//!
//! Below [`plugin`], nothing here knows the plugin API: errors are [`TrainerError`]s and progress and stop requests
//! go through [`Hooks`]. [`plugin`] maps them onto the plugin API (one error kind each, [`Progress`] as hooks) and
//! exports a trainer plugin from a config type ([`plugin::TrainerConfig`], [`crate::export_trainer!`]).
//!
//! [`Progress`]: husai_plugin_api::Progress

pub mod config;
pub mod data;
pub mod family_run;
pub mod plugin;
pub mod run;
pub mod stream;
pub mod topk_keys;

pub use config::{CommonConfig, CommonDefaults, EvalSpec, Length, RowRange};
pub use data::{Dataset, Digests, Opener, RowSource, file_sha256, read_input};
pub use family_run::{FamilyRun, run_family};
pub use run::{Detail, DriveOutcome, Hooks, Plan, Session, Silent, Status, StepStats, drive};
pub use stream::MetricStream;

/// File name of the final summary.
pub const METRICS_FILE: &str = "metrics.json";
/// File name of the metric stream.
pub const STREAM_FILE: &str = "metrics.jsonl";
/// Input role of the activation bank.
pub const ACTIVATIONS_INPUT: &str = "activations";
/// Input role of a separate held-out bank.
pub const EVAL_INPUT: &str = "eval_activations";
/// Input role of the run directory to continue.
pub const RESUME_INPUT: &str = "resume";

/// Why a trainer cannot run; each maps onto one plugin error kind.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainerError {
    /// A config value is invalid (`key` is its name, dotted for nested keys; empty when no single key is at fault).
    #[error("{}", config_text(key, message))]
    Config {
        /// The key.
        key: String,
        /// What is wrong with it and what is allowed.
        message: String,
    },
    /// An input file is missing, unreadable or unfit.
    #[error("{0}")]
    Input(String),
    /// An output could not be written.
    #[error("{0}")]
    Output(String),
    /// Training itself failed.
    #[error("{0}")]
    Failed(String),
}

fn config_text(key: &str, message: &str) -> String {
    if key.is_empty() {
        format!("config: {message}")
    } else {
        format!("config key `{key}` {message}")
    }
}

impl TrainerError {
    /// A [`TrainerError::Config`].
    pub fn config(key: &str, message: impl Into<String>) -> Self {
        TrainerError::Config {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// A JSON number, or `null` for a non-finite value (husai never writes NaN or Infinity).
pub fn num(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::json!(v)
    } else {
        serde_json::Value::Null
    }
}

/// Writes `value` as pretty JSON with a final newline.
pub fn write_json(path: &std::path::Path, value: &serde_json::Value) -> Result<(), TrainerError> {
    let mut text = serde_json::to_vec_pretty(value)
        .map_err(|e| TrainerError::Output(format!("cannot serialise {}: {e}", path.display())))?;
    text.push(b'\n');
    std::fs::write(path, text)
        .map_err(|e| TrainerError::Output(format!("cannot write {}: {e}", path.display())))
}
