//! The run manifest: what ran, on what, with which code, and where its inputs came from.
//!
//! The manifest is the predicate of the in-toto Statement that a run's DSSE envelope signs
//! (see [`crate::statement`]). Its JSON shape is fixed by `schemas/run-manifest.v1.json`; these
//! types are the Rust view of it. Fields that do not apply to a run kind are `null`, never absent,
//! so that every manifest has the same keys and a schema check catches a producer that forgot one.

use serde::{Deserialize, Serialize};

use crate::digest::DigestMethod;

/// The manifest schema version this build writes. Readers accept any `1.x`.
pub const MANIFEST_SCHEMA_VERSION: &str = "1.2";
/// The major version this build understands.
pub const MANIFEST_SCHEMA_MAJOR: u64 = 1;
/// The largest seed a manifest can record. Manifests are signed as canonical JSON (RFC 8785),
/// whose numbers are IEEE doubles, exact for integers up to 2^53 - 1 only; commands that take
/// a seed refuse larger ones up front rather than fail after the work is done.
pub const MAX_SEED: u64 = (1 << 53) - 1;

/// What kind of work a run records. New kinds are added by later features; the schema lists
/// them, so an unknown kind fails validation instead of being silently accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// Evidence produced outside husai and attested with `husai-audit attest`.
    External,
    /// A synthetic or prepared data set.
    Data,
    /// SAE training by a trainer plugin.
    Train,
    /// An evaluation by an evaluation plugin.
    Eval,
    /// Upstream evidence brought under provenance.
    Import,
    /// A release-candidate selection.
    Select,
    /// A release-gate decision.
    Gate,
}

impl RunKind {
    pub const ALL: [RunKind; 7] = [
        RunKind::External,
        RunKind::Data,
        RunKind::Train,
        RunKind::Eval,
        RunKind::Import,
        RunKind::Select,
        RunKind::Gate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::External => "external",
            RunKind::Data => "data",
            RunKind::Train => "train",
            RunKind::Eval => "eval",
            RunKind::Import => "import",
            RunKind::Select => "select",
            RunKind::Gate => "gate",
        }
    }

    pub fn parse(s: &str) -> Option<RunKind> {
        RunKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for RunKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run ended (schema 1.1; runs written before it have no status and read as [`RunStatus::Ok`]).
/// Only `ok` runs may be candidates for select and gate; the others are evidence that a run failed (fail-fast rules
/// count them), so they are signed like any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Finished as asked.
    #[default]
    Ok,
    /// Training stopped on a non-finite loss or parameter, or a held-out FVU above the ceiling.
    Diverged,
    /// Stopped early by SIGINT/SIGTERM after writing a resumable state.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Diverged => "diverged",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The program that wrote the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
    /// `git rev-parse HEAD` of the working tree the tool ran in, when there is one.
    pub git_commit: Option<String>,
    /// Whether that tree had uncommitted changes; `None` when unknown.
    pub git_dirty: Option<bool>,
}

/// The plugin that computed the outputs, pinned by the digest of its library file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub api_version: u32,
    pub library_path: String,
    pub library_sha256: String,
}

/// Which run an input came from. Verify follows these links (the provenance chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRef {
    pub campaign: String,
    pub run_id: String,
    /// The subject's path inside that run.
    pub subject: String,
}

/// A file the run read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputRef {
    /// The path as given on the command line (informational; the digest is what binds).
    pub path: String,
    /// One algorithm name to lowercase hex, in the same form as a statement subject's digest.
    /// For an input that is another run's output, the algorithm is the one that run's subject
    /// uses, so verify compares like with like.
    pub digest: std::collections::BTreeMap<String, String>,
    /// Set when the input is another run's output.
    pub run: Option<RunRef>,
}

/// A half-open row range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowRange {
    pub start: u64,
    pub end: u64,
}

/// The activation data set a run trained or evaluated on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRef {
    pub path: String,
    pub sha256: String,
    pub format: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub rows: RowRange,
}

/// Where the run executed. `device`, `backend` and `cuda_driver` are always written; the CUDA details after them
/// only for a run a trainer reports as trained on a GPU (its result's `environment`, trainer contract §5): absent
/// on a CPU run, so a CPU run's manifest is what it was before they existed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub os: String,
    pub arch: String,
    pub cpu: Option<String>,
    pub threads: u32,
    pub device: String,
    pub backend: String,
    pub cuda_driver: Option<String>,
    /// The GPU's compute capability, `major.minor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_capability: Option<String>,
    /// The CUDA runtime pieces the trainer used, e.g. `nvrtc 12.9` (husai has no libcudart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_runtime: Option<String>,
    /// cuBLAS's version, `major.minor.patch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cublas: Option<String>,
    /// Whether TF32 was allowed in the GPU's matrix products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tf32: Option<bool>,
}

impl Environment {
    /// The environment of this process, on the CPU backend.
    pub fn detect_cpu() -> Environment {
        Environment {
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpu: cpu_model_name(),
            threads: rayon::current_num_threads() as u32,
            device: "cpu".to_string(),
            backend: "cpu".to_string(),
            cuda_driver: None,
            compute_capability: None,
            cuda_runtime: None,
            cublas: None,
            tf32: None,
        }
    }
}

fn cpu_model_name() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// An external command whose outputs a run attests (`husai-audit attest ... -- CMD`).
///
/// The times (schema 1.2) are taken around the child process itself, so `duration_ms` is the command's own wall
/// time, not the run's (which also counts copying and hashing). Manifests before 1.2 have none of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandInfo {
    pub argv: Vec<String>,
    pub exit_code: i32,
    /// When the command was started (RFC 3339 UTC, milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Its wall time in milliseconds, measured on a monotonic clock (so a clock step cannot make it negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// The signed description of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: String,
    pub run_id: String,
    pub kind: RunKind,
    pub campaign: String,
    pub started_at: String,
    pub finished_at: String,
    pub argv: Vec<String>,
    pub tool: ToolInfo,
    pub plugin: Option<PluginInfo>,
    pub config: Option<serde_json::Value>,
    pub config_sha256: Option<String>,
    pub seeds: Vec<u64>,
    pub inputs: Vec<InputRef>,
    pub dataset: Option<DatasetRef>,
    pub digest: DigestMethod,
    /// Size in bytes of every output, by subject path. Lets verify name a truncated or grown
    /// file without hashing it, and size a progress bar before it starts.
    pub output_sizes: std::collections::BTreeMap<String, u64>,
    pub environment: Environment,
    pub command: Option<CommandInfo>,
    /// Kind-specific details (for example an import's per-file artifact kinds).
    pub extra: serde_json::Value,
    /// How the run ended; absent (so `ok`) in manifests before schema 1.1.
    #[serde(default)]
    pub status: RunStatus,
    /// For a status other than `ok`: the step, the quantity and a message (docs/trainer-contract.md §5).
    #[serde(default)]
    pub status_detail: Option<serde_json::Value>,
}

/// What a producer supplies; the store fills in the run id, times, tool and digest method.
#[derive(Debug, Clone)]
pub struct ManifestDraft {
    pub argv: Vec<String>,
    pub plugin: Option<PluginInfo>,
    pub config: Option<serde_json::Value>,
    pub seeds: Vec<u64>,
    pub inputs: Vec<InputRef>,
    pub dataset: Option<DatasetRef>,
    pub environment: Environment,
    pub command: Option<CommandInfo>,
    pub extra: serde_json::Value,
    /// The tool identity; defaults to husai-audit's own.
    pub tool: ToolInfo,
    /// How the run ended (`ok` unless the producer says otherwise).
    pub status: RunStatus,
    pub status_detail: Option<serde_json::Value>,
}

impl ManifestDraft {
    /// A draft with no config, inputs or seeds, for this process's argv and CPU environment.
    pub fn new(tool: ToolInfo) -> ManifestDraft {
        ManifestDraft {
            argv: std::env::args().collect(),
            plugin: None,
            config: None,
            seeds: Vec::new(),
            inputs: Vec::new(),
            dataset: None,
            environment: Environment::detect_cpu(),
            command: None,
            extra: serde_json::Value::Object(Default::default()),
            tool,
            status: RunStatus::Ok,
            status_detail: None,
        }
    }
}

/// The major number of a `major.minor` schema version string, if it is one.
pub fn schema_major(version: &str) -> Option<u64> {
    let (major, minor) = version.split_once('.')?;
    minor.parse::<u64>().ok()?;
    major.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_kind_round_trips_through_its_name() {
        for kind in RunKind::ALL {
            assert_eq!(RunKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
        }
        assert_eq!(RunKind::parse("training"), None);
    }

    #[test]
    fn schema_major_reads_major_minor_only() {
        assert_eq!(schema_major("1.0"), Some(1));
        assert_eq!(schema_major("2.13"), Some(2));
        assert_eq!(schema_major("1"), None);
        assert_eq!(schema_major("v1.0"), None);
        assert_eq!(schema_major("1.x"), None);
    }
}
