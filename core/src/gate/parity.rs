//! Exact port of upstream's stress-gated release policy (`run_stress_gated_release_policy.py` at d137ac4 and later,
//! reference §1), quirks included: "first numeric wins" extraction chains, booleans counted as numbers, a missing
//! optional metric passing its gate, `auto` mode fallbacks, and exit status 2 only under `--fail-on-gate-fail`.
//!
//! Evaluation is pure ([`evaluate`]); reading files the way upstream did is [`load_upstream_input`]; rendering is
//! [`report_json`] and [`report_markdown`], which reproduce upstream's `release_policy.json` and `release_policy.md`.

use std::path::{Component, Path, PathBuf};

use crate::legacy::json::{self, LegacyJsonError, LegacyValue};
use crate::legacy::pyrepr::float_repr;

/// `--external-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamMode {
    Auto,
    Saebench,
    Cebench,
    Joint,
}

impl UpstreamMode {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamMode::Auto => "auto",
            UpstreamMode::Saebench => "saebench",
            UpstreamMode::Cebench => "cebench",
            UpstreamMode::Joint => "joint",
        }
    }

    pub fn parse(s: &str) -> Option<UpstreamMode> {
        [
            UpstreamMode::Auto,
            UpstreamMode::Saebench,
            UpstreamMode::Cebench,
            UpstreamMode::Joint,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// Upstream's thresholds and switches, with upstream's defaults (reference §1.1).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamThresholds {
    pub min_trained_random_delta: f64,
    pub min_trained_random_lcb: f64,
    pub min_transcoder_delta: f64,
    pub max_ood_drop: f64,
    pub min_external_delta: f64,
    pub min_saebench_delta: f64,
    pub min_cebench_delta: f64,
    pub min_saebench_delta_lcb: Option<f64>,
    pub min_cebench_delta_lcb: Option<f64>,
    pub use_external_lcb: bool,
    pub external_mode: UpstreamMode,
    pub require_transcoder: bool,
    pub require_ood: bool,
    pub require_external: bool,
}

impl Default for UpstreamThresholds {
    fn default() -> Self {
        UpstreamThresholds {
            min_trained_random_delta: 0.0,
            min_trained_random_lcb: 0.0,
            min_transcoder_delta: 0.0,
            max_ood_drop: 0.1,
            min_external_delta: 0.0,
            min_saebench_delta: 0.0,
            min_cebench_delta: 0.0,
            min_saebench_delta_lcb: None,
            min_cebench_delta_lcb: None,
            use_external_lcb: false,
            external_mode: UpstreamMode::Auto,
            require_transcoder: false,
            require_ood: false,
            require_external: false,
        }
    }
}

/// The parsed input files; `None` where upstream would have had `None` (not given, or given but not found).
#[derive(Debug, Clone, Default)]
pub struct UpstreamInputs {
    pub phase4a: Option<LegacyValue>,
    pub transcoder: Option<LegacyValue>,
    pub ood: Option<LegacyValue>,
    /// The payload of `--external-candidate-json` if given, else of `--external-summary`.
    pub external: Option<LegacyValue>,
}

/// Every metric upstream writes, in its order (reference §1.5).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamMetrics {
    pub trained_random_delta: Option<f64>,
    pub trained_random_delta_lcb: Option<f64>,
    pub transcoder_delta: Option<f64>,
    pub ood_drop: Option<f64>,
    pub external_delta: Option<f64>,
    pub saebench_delta: Option<f64>,
    pub saebench_delta_ci95_low: Option<f64>,
    pub cebench_interp_delta_vs_baseline: Option<f64>,
    pub cebench_interp_delta_vs_baseline_ci95_low: Option<f64>,
    pub cebench_interpretability_max: Option<f64>,
    pub external_gate_saebench_value: Option<f64>,
    pub external_gate_cebench_value: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamGates {
    pub random_model: bool,
    pub transcoder: bool,
    pub ood: bool,
    pub external: bool,
    pub external_saebench: bool,
    pub external_cebench: bool,
    pub external_mode_used: &'static str,
    pub external_threshold_basis: &'static str,
    pub pass_all: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamOutcome {
    pub metrics: UpstreamMetrics,
    pub gates: UpstreamGates,
}

impl UpstreamOutcome {
    /// Upstream's exit status: 2 iff `--fail-on-gate-fail` and pass_all is false, else 0.
    pub fn exit_code(&self, fail_on_gate_fail: bool) -> i32 {
        if fail_on_gate_fail && !self.gates.pass_all {
            2
        } else {
            0
        }
    }
}

/// Python's "first numeric wins": the first path whose value is an int, float or bool, as a float.
fn first_numeric(obj: &LegacyValue, chain: &[&[&str]]) -> Option<f64> {
    chain
        .iter()
        .find_map(|keys| obj.get_path(keys).and_then(LegacyValue::as_python_number))
}

/// `thr(v, t, required)`: a missing value passes unless required; otherwise `v >= t` (false for NaN).
fn thr(value: Option<f64>, threshold: f64, required: bool) -> bool {
    match value {
        None => !required,
        Some(v) => v >= threshold,
    }
}

/// Upstream's evaluation, field for field.
pub fn evaluate(t: &UpstreamThresholds, inputs: &UpstreamInputs) -> UpstreamOutcome {
    let empty = LegacyValue::Object(Vec::new());

    let phase4a = inputs.phase4a.as_ref().unwrap_or(&empty);
    let trained_random_delta = first_numeric(phase4a, &[&["comparison", "difference"]]);
    let trained_random_delta_lcb = match (
        phase4a
            .get_path(&["trained", "ci95_low"])
            .and_then(LegacyValue::as_python_number),
        phase4a
            .get_path(&["random", "ci95_high"])
            .and_then(LegacyValue::as_python_number),
    ) {
        (Some(lo), Some(hi)) => Some(lo - hi),
        _ => None,
    };

    let transcoder = inputs.transcoder.as_ref().unwrap_or(&empty);
    let transcoder_delta = first_numeric(
        transcoder,
        &[
            &["delta"],
            &["transcoder_delta"],
            &["metrics", "delta"],
            &["metrics", "transcoder_delta"],
        ],
    );

    let ood = inputs.ood.as_ref().unwrap_or(&empty);
    let ood_drop = first_numeric(
        ood,
        &[
            &["ood_drop"],
            &["relative_drop"],
            &["drop"],
            &["metrics", "ood_drop"],
            &["metrics", "relative_drop"],
        ],
    );

    // A selection summary carries the candidate under `selected_candidate`.
    let payload = inputs.external.as_ref().unwrap_or(&empty);
    let obj = match payload.get("selected_candidate") {
        Some(c @ LegacyValue::Object(_)) => c,
        _ => payload,
    };
    let m = match obj.get("metrics") {
        Some(m @ LegacyValue::Object(_)) => m,
        _ => &empty,
    };
    let first_of = |pairs: &[(&LegacyValue, &[&str])]| {
        pairs
            .iter()
            .find_map(|(o, keys)| o.get_path(keys).and_then(LegacyValue::as_python_number))
    };
    let saebench_delta = first_of(&[
        (m, &["saebench_delta"]),
        (obj, &["saebench_delta"]),
        (obj, &["best_minus_llm_auc"]),
        (obj, &["summary", "best_minus_llm_auc"]),
    ]);
    let saebench_delta_ci95_low = first_of(&[
        (m, &["saebench_delta_ci95_low"]),
        (obj, &["saebench_delta_ci95_low"]),
    ]);
    let cebench_interp_delta_vs_baseline = first_of(&[
        (m, &["cebench_interp_delta_vs_baseline"]),
        (m, &["cebench_delta"]),
        (obj, &["cebench_interp_delta_vs_baseline"]),
        (obj, &["cebench_delta"]),
        (
            obj,
            &[
                "delta_vs_matched_baseline",
                "interpretability_score_mean_max",
            ],
        ),
    ]);
    let cebench_interp_delta_vs_baseline_ci95_low = first_of(&[
        (m, &["cebench_interp_delta_vs_baseline_ci95_low"]),
        (obj, &["cebench_interp_delta_vs_baseline_ci95_low"]),
    ]);
    let cebench_interpretability_max = first_of(&[
        (m, &["cebench_interpretability_max"]),
        (obj, &["cebench_interpretability_max"]),
        (obj, &["custom_metrics", "interpretability_score_mean_max"]),
        (obj, &["cebench_summary", "interpretability_score_mean_max"]),
    ]);
    let external_delta = first_numeric(
        obj,
        &[
            &["summary", "best_minus_llm_auc"],
            &["best_minus_llm_auc"],
            &[
                "delta_vs_matched_baseline",
                "interpretability_score_mean_max",
            ],
            &["delta_vs_matched_baseline", "contrastive_score_mean_max"],
            &["delta_vs_matched_baseline", "independent_score_mean_max"],
            &["external_delta"],
        ],
    )
    .or(saebench_delta)
    .or(cebench_interp_delta_vs_baseline);

    let random_model = match (trained_random_delta, trained_random_delta_lcb) {
        (Some(d), Some(l)) => d >= t.min_trained_random_delta && l >= t.min_trained_random_lcb,
        _ => false,
    };
    let transcoder_gate = thr(
        transcoder_delta,
        t.min_transcoder_delta,
        t.require_transcoder,
    );
    let ood_gate = match ood_drop {
        None => !t.require_ood,
        Some(d) => d <= t.max_ood_drop,
    };

    let (sae_value, sae_thr, ce_value, ce_thr) = if t.use_external_lcb {
        (
            saebench_delta_ci95_low,
            t.min_saebench_delta_lcb.unwrap_or(t.min_saebench_delta),
            cebench_interp_delta_vs_baseline_ci95_low,
            t.min_cebench_delta_lcb.unwrap_or(t.min_cebench_delta),
        )
    } else {
        (
            saebench_delta,
            t.min_saebench_delta,
            cebench_interp_delta_vs_baseline,
            t.min_cebench_delta,
        )
    };
    let external_saebench = thr(sae_value, sae_thr, t.require_external);
    let external_cebench = thr(ce_value, ce_thr, t.require_external);
    let (external, external_mode_used) = match t.external_mode {
        UpstreamMode::Saebench => (external_saebench, "saebench"),
        UpstreamMode::Cebench => (external_cebench, "cebench"),
        UpstreamMode::Joint => (external_saebench && external_cebench, "joint"),
        UpstreamMode::Auto if t.use_external_lcb => {
            if sae_value.is_some() && ce_value.is_some() {
                (external_saebench && external_cebench, "auto_joint_lcb")
            } else {
                (!t.require_external, "auto_lcb_missing")
            }
        }
        UpstreamMode::Auto => {
            if sae_value.is_some() && ce_value.is_some() {
                (external_saebench && external_cebench, "auto_joint")
            } else {
                (
                    thr(external_delta, t.min_external_delta, t.require_external),
                    "auto_legacy",
                )
            }
        }
    };
    let pass_all = random_model && transcoder_gate && ood_gate && external;
    UpstreamOutcome {
        metrics: UpstreamMetrics {
            trained_random_delta,
            trained_random_delta_lcb,
            transcoder_delta,
            ood_drop,
            external_delta,
            saebench_delta,
            saebench_delta_ci95_low,
            cebench_interp_delta_vs_baseline,
            cebench_interp_delta_vs_baseline_ci95_low,
            cebench_interpretability_max,
            external_gate_saebench_value: sae_value,
            external_gate_cebench_value: ce_value,
        },
        gates: UpstreamGates {
            random_model,
            transcoder: transcoder_gate,
            ood: ood_gate,
            external,
            external_saebench,
            external_cebench,
            external_mode_used,
            external_threshold_basis: if t.use_external_lcb { "lcb" } else { "point" },
            pass_all,
        },
    }
}

/// Why an upstream input could not be loaded (upstream itself crashed with a traceback in these cases).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamInputError {
    #[error(
        "--{flag} was given an empty path; upstream turns \"\" into '.' and crashes reading a directory. Pass a file or leave the flag out"
    )]
    EmptyPath { flag: &'static str },
    #[error("--{flag} {}: is a directory, not a JSON file", path.display())]
    Directory { flag: &'static str, path: PathBuf },
    #[error("--{flag}: {source}")]
    Json {
        flag: &'static str,
        #[source]
        source: LegacyJsonError,
    },
}

/// One input file as read: its parsed value and the sha256 of exactly the bytes parsed (for the run's manifest).
#[derive(Debug, Clone)]
pub struct UpstreamFile {
    pub value: LegacyValue,
    pub sha256: String,
}

/// Loads one input the upstream way: not given → `None`; given but nonexistent → `None`, silently (upstream W2);
/// anything unreadable → an error (upstream crashed).
pub fn read_upstream_input(
    flag: &'static str,
    path: Option<&Path>,
) -> Result<Option<UpstreamFile>, UpstreamInputError> {
    let Some(path) = path else { return Ok(None) };
    if path.as_os_str().is_empty() {
        return Err(UpstreamInputError::EmptyPath { flag });
    }
    if path.is_dir() {
        return Err(UpstreamInputError::Directory {
            flag,
            path: path.to_path_buf(),
        });
    }
    if !path.exists() {
        return Ok(None);
    }
    let json_err = |source| UpstreamInputError::Json { flag, source };
    let bytes = std::fs::read(path).map_err(|source| {
        json_err(LegacyJsonError::Io {
            path: path.to_path_buf(),
            source,
        })
    })?;
    let value = json::parse_bytes(&bytes).map_err(|e| json_err(e.with_path(path)))?;
    Ok(Some(UpstreamFile {
        value,
        sha256: crate::digest::sha256_hex(&bytes),
    }))
}

/// [`read_upstream_input`] without the digest.
pub fn load_upstream_input(
    flag: &'static str,
    path: Option<&Path>,
) -> Result<Option<LegacyValue>, UpstreamInputError> {
    Ok(read_upstream_input(flag, path)?.map(|f| f.value))
}

/// Upstream's `repo_rel`: the path resolved against the working directory, relative to the project root when inside
/// it, else absolute. Existing paths are canonicalised (Python's `resolve()` follows symlinks); others are normalised
/// lexically.
pub fn repo_rel(path: &Path, cwd: &Path, project_root: &Path) -> String {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let resolved = std::fs::canonicalize(&joined).unwrap_or_else(|_| normalize(&joined));
    let root = std::fs::canonicalize(project_root).unwrap_or_else(|_| normalize(project_root));
    match resolved.strip_prefix(&root) {
        Ok(rel) => rel.to_string_lossy().into_owned(),
        Err(_) => resolved.to_string_lossy().into_owned(),
    }
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// What upstream records about the run itself (`run_metadata`) and its input paths (`inputs`).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamRunInfo {
    /// ISO timestamp with `+00:00`, second resolution.
    pub timestamp_utc: String,
    pub git_commit: String,
    pub command: String,
    /// `run_YYYYMMDDTHHMMSSZ`.
    pub run_id: String,
    pub phase4a_results: Option<String>,
    pub transcoder_results: Option<String>,
    pub ood_results: Option<String>,
    pub external_summary: Option<String>,
    pub external_candidate_json: Option<String>,
}

fn num(v: Option<f64>) -> LegacyValue {
    v.map_or(LegacyValue::Null, LegacyValue::Float)
}

fn text(v: &Option<String>) -> LegacyValue {
    v.as_ref()
        .map_or(LegacyValue::Null, |s| LegacyValue::String(s.clone()))
}

fn obj(members: Vec<(&str, LegacyValue)>) -> LegacyValue {
    LegacyValue::Object(
        members
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// The `release_policy.json` object, keys in upstream's order. Serialise with `pyrepr::json_dumps(.., 2)` plus `\n`.
pub fn report_json(
    info: &UpstreamRunInfo,
    t: &UpstreamThresholds,
    outcome: &UpstreamOutcome,
) -> LegacyValue {
    let m = &outcome.metrics;
    let g = &outcome.gates;
    let external_source_used = info
        .external_candidate_json
        .clone()
        .or_else(|| info.external_summary.clone());
    obj(vec![
        (
            "run_metadata",
            obj(vec![
                (
                    "timestamp_utc",
                    LegacyValue::String(info.timestamp_utc.clone()),
                ),
                ("git_commit", LegacyValue::String(info.git_commit.clone())),
                ("command", LegacyValue::String(info.command.clone())),
                ("run_id", LegacyValue::String(info.run_id.clone())),
            ]),
        ),
        (
            "inputs",
            obj(vec![
                ("phase4a_results", text(&info.phase4a_results)),
                ("transcoder_results", text(&info.transcoder_results)),
                ("ood_results", text(&info.ood_results)),
                ("external_summary", text(&info.external_summary)),
                (
                    "external_candidate_json",
                    text(&info.external_candidate_json),
                ),
                ("external_source_used", text(&external_source_used)),
            ]),
        ),
        (
            "thresholds",
            obj(vec![
                (
                    "min_trained_random_delta",
                    LegacyValue::Float(t.min_trained_random_delta),
                ),
                (
                    "min_trained_random_lcb",
                    LegacyValue::Float(t.min_trained_random_lcb),
                ),
                (
                    "min_transcoder_delta",
                    LegacyValue::Float(t.min_transcoder_delta),
                ),
                ("max_ood_drop", LegacyValue::Float(t.max_ood_drop)),
                (
                    "min_external_delta",
                    LegacyValue::Float(t.min_external_delta),
                ),
                (
                    "min_saebench_delta",
                    LegacyValue::Float(t.min_saebench_delta),
                ),
                ("min_cebench_delta", LegacyValue::Float(t.min_cebench_delta)),
                ("min_saebench_delta_lcb", num(t.min_saebench_delta_lcb)),
                ("min_cebench_delta_lcb", num(t.min_cebench_delta_lcb)),
                ("use_external_lcb", LegacyValue::Bool(t.use_external_lcb)),
                (
                    "external_mode",
                    LegacyValue::String(t.external_mode.as_str().to_string()),
                ),
                (
                    "require_transcoder",
                    LegacyValue::Bool(t.require_transcoder),
                ),
                ("require_ood", LegacyValue::Bool(t.require_ood)),
                ("require_external", LegacyValue::Bool(t.require_external)),
            ]),
        ),
        (
            "metrics",
            obj(vec![
                ("trained_random_delta", num(m.trained_random_delta)),
                ("trained_random_delta_lcb", num(m.trained_random_delta_lcb)),
                ("transcoder_delta", num(m.transcoder_delta)),
                ("ood_drop", num(m.ood_drop)),
                ("external_delta", num(m.external_delta)),
                ("saebench_delta", num(m.saebench_delta)),
                ("saebench_delta_ci95_low", num(m.saebench_delta_ci95_low)),
                (
                    "cebench_interp_delta_vs_baseline",
                    num(m.cebench_interp_delta_vs_baseline),
                ),
                (
                    "cebench_interp_delta_vs_baseline_ci95_low",
                    num(m.cebench_interp_delta_vs_baseline_ci95_low),
                ),
                (
                    "cebench_interpretability_max",
                    num(m.cebench_interpretability_max),
                ),
                (
                    "external_gate_saebench_value",
                    num(m.external_gate_saebench_value),
                ),
                (
                    "external_gate_cebench_value",
                    num(m.external_gate_cebench_value),
                ),
            ]),
        ),
        (
            "gates",
            obj(vec![
                ("random_model", LegacyValue::Bool(g.random_model)),
                ("transcoder", LegacyValue::Bool(g.transcoder)),
                ("ood", LegacyValue::Bool(g.ood)),
                ("external", LegacyValue::Bool(g.external)),
                ("external_saebench", LegacyValue::Bool(g.external_saebench)),
                ("external_cebench", LegacyValue::Bool(g.external_cebench)),
                (
                    "external_mode_used",
                    LegacyValue::String(g.external_mode_used.to_string()),
                ),
                (
                    "external_threshold_basis",
                    LegacyValue::String(g.external_threshold_basis.to_string()),
                ),
                ("pass_all", LegacyValue::Bool(g.pass_all)),
            ]),
        ),
    ])
}

/// Upstream's `release_policy.md`, byte for byte (values rendered with Python's `str()`).
pub fn report_markdown(run_id: &str, outcome: &UpstreamOutcome) -> String {
    let m = &outcome.metrics;
    let g = &outcome.gates;
    let b = |v: bool| if v { "True" } else { "False" };
    let v = |x: Option<f64>| x.map_or_else(|| "None".to_string(), float_repr);
    let mut lines = vec![
        "# Stress-Gated Release Policy".to_string(),
        String::new(),
        format!("- Run ID: `{run_id}`"),
        format!("- pass_all: `{}`", b(g.pass_all)),
        format!("- external_mode_used: `{}`", g.external_mode_used),
        format!(
            "- external_threshold_basis: `{}`",
            g.external_threshold_basis
        ),
        String::new(),
        "## Gate Status".to_string(),
        String::new(),
    ];
    for (name, value) in [
        ("random_model", g.random_model),
        ("transcoder", g.transcoder),
        ("ood", g.ood),
        ("external", g.external),
        ("external_saebench", g.external_saebench),
        ("external_cebench", g.external_cebench),
    ] {
        lines.push(format!("- {name}: `{}`", b(value)));
    }
    lines.extend([String::new(), "## Metrics".to_string(), String::new()]);
    for (name, value) in [
        ("trained_random_delta", m.trained_random_delta),
        ("trained_random_delta_lcb", m.trained_random_delta_lcb),
        ("transcoder_delta", m.transcoder_delta),
        ("ood_drop", m.ood_drop),
        ("external_delta (legacy)", m.external_delta),
        ("saebench_delta", m.saebench_delta),
        ("saebench_delta_ci95_low", m.saebench_delta_ci95_low),
        (
            "cebench_interp_delta_vs_baseline",
            m.cebench_interp_delta_vs_baseline,
        ),
        (
            "cebench_interp_delta_vs_baseline_ci95_low",
            m.cebench_interp_delta_vs_baseline_ci95_low,
        ),
        (
            "cebench_interpretability_max",
            m.cebench_interpretability_max,
        ),
    ] {
        lines.push(format!("- {name}: `{}`", v(value)));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The outcome of the legacy policy (upstream ≤511c56c): one external metric and four gates.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyOutcome {
    pub trained_random_delta: Option<f64>,
    pub trained_random_delta_lcb: Option<f64>,
    pub transcoder_delta: Option<f64>,
    pub ood_drop: Option<f64>,
    pub external_delta: Option<f64>,
    pub random_model: bool,
    pub transcoder: bool,
    pub ood: bool,
    pub external: bool,
    pub pass_all: bool,
}

impl LegacyOutcome {
    pub fn exit_code(&self, fail_on_gate_fail: bool) -> i32 {
        if fail_on_gate_fail && !self.pass_all {
            2
        } else {
            0
        }
    }
}

/// Upstream's legacy policy (≤511c56c, reference §1.3 last line and §1.5): the external gate reads one chain,
/// `summary.best_minus_llm_auc` → `best_minus_llm_auc` → `delta_vs_matched_baseline.{interpretability,contrastive,
/// independent}_score_mean_max`, from the summary as given (no candidate unwrapping, no modes, no LCB basis), and
/// compares it with `--min-external-delta`. The other three gates are the current ones.
pub fn evaluate_legacy(t: &UpstreamThresholds, inputs: &UpstreamInputs) -> LegacyOutcome {
    let internal = evaluate(
        t,
        &UpstreamInputs {
            external: None,
            ..inputs.clone()
        },
    );
    let empty = LegacyValue::Object(Vec::new());
    let payload = inputs.external.as_ref().unwrap_or(&empty);
    let external_delta = first_numeric(
        payload,
        &[
            &["summary", "best_minus_llm_auc"],
            &["best_minus_llm_auc"],
            &[
                "delta_vs_matched_baseline",
                "interpretability_score_mean_max",
            ],
            &["delta_vs_matched_baseline", "contrastive_score_mean_max"],
            &["delta_vs_matched_baseline", "independent_score_mean_max"],
        ],
    );
    let external = thr(external_delta, t.min_external_delta, t.require_external);
    let m = internal.metrics;
    let g = internal.gates;
    LegacyOutcome {
        trained_random_delta: m.trained_random_delta,
        trained_random_delta_lcb: m.trained_random_delta_lcb,
        transcoder_delta: m.transcoder_delta,
        ood_drop: m.ood_drop,
        external_delta,
        random_model: g.random_model,
        transcoder: g.transcoder,
        ood: g.ood,
        external,
        pass_all: g.random_model && g.transcoder && g.ood && external,
    }
}

/// The legacy `release_policy.json` object (first four inputs, five thresholds plus the three `require_*` flags,
/// five metrics, four gates plus pass_all).
pub fn report_json_legacy(
    info: &UpstreamRunInfo,
    t: &UpstreamThresholds,
    o: &LegacyOutcome,
) -> LegacyValue {
    obj(vec![
        (
            "run_metadata",
            obj(vec![
                (
                    "timestamp_utc",
                    LegacyValue::String(info.timestamp_utc.clone()),
                ),
                ("git_commit", LegacyValue::String(info.git_commit.clone())),
                ("command", LegacyValue::String(info.command.clone())),
                ("run_id", LegacyValue::String(info.run_id.clone())),
            ]),
        ),
        (
            "inputs",
            obj(vec![
                ("phase4a_results", text(&info.phase4a_results)),
                ("transcoder_results", text(&info.transcoder_results)),
                ("ood_results", text(&info.ood_results)),
                ("external_summary", text(&info.external_summary)),
            ]),
        ),
        (
            "thresholds",
            obj(vec![
                (
                    "min_trained_random_delta",
                    LegacyValue::Float(t.min_trained_random_delta),
                ),
                (
                    "min_trained_random_lcb",
                    LegacyValue::Float(t.min_trained_random_lcb),
                ),
                (
                    "min_transcoder_delta",
                    LegacyValue::Float(t.min_transcoder_delta),
                ),
                ("max_ood_drop", LegacyValue::Float(t.max_ood_drop)),
                (
                    "min_external_delta",
                    LegacyValue::Float(t.min_external_delta),
                ),
                (
                    "require_transcoder",
                    LegacyValue::Bool(t.require_transcoder),
                ),
                ("require_ood", LegacyValue::Bool(t.require_ood)),
                ("require_external", LegacyValue::Bool(t.require_external)),
            ]),
        ),
        (
            "metrics",
            obj(vec![
                ("trained_random_delta", num(o.trained_random_delta)),
                ("trained_random_delta_lcb", num(o.trained_random_delta_lcb)),
                ("transcoder_delta", num(o.transcoder_delta)),
                ("ood_drop", num(o.ood_drop)),
                ("external_delta", num(o.external_delta)),
            ]),
        ),
        (
            "gates",
            obj(vec![
                ("random_model", LegacyValue::Bool(o.random_model)),
                ("transcoder", LegacyValue::Bool(o.transcoder)),
                ("ood", LegacyValue::Bool(o.ood)),
                ("external", LegacyValue::Bool(o.external)),
                ("pass_all", LegacyValue::Bool(o.pass_all)),
            ]),
        ),
    ])
}

/// The legacy `release_policy.md`, byte for byte.
pub fn report_markdown_legacy(run_id: &str, o: &LegacyOutcome) -> String {
    let b = |v: bool| if v { "True" } else { "False" };
    let v = |x: Option<f64>| x.map_or_else(|| "None".to_string(), float_repr);
    let mut lines = vec![
        "# Stress-Gated Release Policy".to_string(),
        String::new(),
        format!("- Run ID: `{run_id}`"),
        format!("- pass_all: `{}`", b(o.pass_all)),
        String::new(),
        "## Gate Status".to_string(),
        String::new(),
    ];
    for (name, value) in [
        ("random_model", o.random_model),
        ("transcoder", o.transcoder),
        ("ood", o.ood),
        ("external", o.external),
    ] {
        lines.push(format!("- {name}: `{}`", b(value)));
    }
    lines.extend([String::new(), "## Metrics".to_string(), String::new()]);
    for (name, value) in [
        ("trained_random_delta", o.trained_random_delta),
        ("trained_random_delta_lcb", o.trained_random_delta_lcb),
        ("transcoder_delta", o.transcoder_delta),
        ("ood_drop", o.ood_drop),
        ("external_delta", o.external_delta),
    ] {
        lines.push(format!("- {name}: `{}`", v(value)));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}
