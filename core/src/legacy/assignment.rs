//! Readers for upstream assignment-consistency results: v2 (`run_assignment_consistency_v2.py`, one `results[]`
//! entry per λ plus an acceptance block) and v3 (`run_assignment_consistency_v3.py`, one `records[]` entry per λ
//! with a selected checkpoint and its external evaluation).
//!
//! v2 feeds the claim audit (its acceptance gates); v3 also feeds the release-candidate selector (reference §2.2).
//! Both files contain bare `NaN` tokens in the evidence; metrics therefore read as `f64` with NaN preserved, and
//! consumers decide what a NaN means.

use std::path::{Path, PathBuf};

use super::json::LegacyValue;
use super::{ArtifactKind, Fields, ReadError, read_kind};

/// One λ of an assignment-v2 sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentV2Lambda {
    pub lambda_consistency: f64,
    pub delta_pwmcc: Option<f64>,
    pub delta_pwmcc_ci_low_conservative: Option<f64>,
    pub explained_variance_mean: Option<f64>,
}

/// The acceptance block of a v2 run: thresholds, the best λ's numbers, and the gate verdicts.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentV2Acceptance {
    pub best_lambda: Option<f64>,
    pub best_delta_pwmcc: Option<f64>,
    pub best_delta_lcb: Option<f64>,
    pub ev_drop: Option<f64>,
    pub external_delta: Option<f64>,
    pub min_delta_lcb: Option<f64>,
    pub max_ev_drop: Option<f64>,
    pub min_external_delta: Option<f64>,
    pub gate_delta_pwmcc: bool,
    pub gate_delta_lcb: bool,
    pub gate_ev_drop: bool,
    pub gate_external: bool,
    pub pass_all: bool,
}

/// A parsed assignment-v2 results file.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentV2Results {
    pub path: PathBuf,
    pub config: LegacyValue,
    pub lambdas: Vec<AssignmentV2Lambda>,
    pub acceptance: AssignmentV2Acceptance,
}

/// Reads an assignment-v2 results file.
pub fn read_assignment_v2(path: &Path) -> Result<AssignmentV2Results, ReadError> {
    let value = read_kind(path, ArtifactKind::AssignmentV2Results)?;
    parse_assignment_v2(path, &value)
}

/// Parses an already-read assignment-v2 value (the kind is not re-checked).
pub fn parse_assignment_v2(
    path: &Path,
    value: &LegacyValue,
) -> Result<AssignmentV2Results, ReadError> {
    const KIND: &str = "assignment_v2_results";
    let fields = Fields::new(path, value, KIND);
    let results = list(path, &fields, "results")?;
    let mut lambdas = Vec::with_capacity(results.len());
    for (i, item) in results.iter().enumerate() {
        let f = Fields::new(path, item, KIND);
        let at = |field: &str| format!("results[{i}].{field}");
        lambdas.push(AssignmentV2Lambda {
            lambda_consistency: f
                .f64(&["lambda_consistency"])
                .map_err(|e| rename_field(e, &at("lambda_consistency")))?,
            delta_pwmcc: f
                .opt_f64(&["delta_pwmcc"])
                .map_err(|e| rename_field(e, &at("delta_pwmcc")))?,
            delta_pwmcc_ci_low_conservative: f
                .opt_f64(&["delta_pwmcc_ci_low_conservative"])
                .map_err(|e| rename_field(e, &at("delta_pwmcc_ci_low_conservative")))?,
            explained_variance_mean: f
                .opt_f64(&["explained_variance", "mean"])
                .map_err(|e| rename_field(e, &at("explained_variance.mean")))?,
        });
    }
    fields.require(&["acceptance"])?;
    let acc = |key: &str| fields.opt_f64(&["acceptance", key]);
    let gate = |key: &str| fields.bool(&["acceptance", key]);
    Ok(AssignmentV2Results {
        path: path.to_path_buf(),
        config: value.get("config").cloned().unwrap_or(LegacyValue::Null),
        lambdas,
        acceptance: AssignmentV2Acceptance {
            best_lambda: acc("best_lambda")?,
            best_delta_pwmcc: acc("best_delta_pwmcc")?,
            best_delta_lcb: acc("best_delta_lcb")?,
            ev_drop: acc("ev_drop")?,
            external_delta: acc("external_delta")?,
            min_delta_lcb: acc("min_delta_lcb")?,
            max_ev_drop: acc("max_ev_drop")?,
            min_external_delta: acc("min_external_delta")?,
            gate_delta_pwmcc: gate("gate_delta_pwmcc")?,
            gate_delta_lcb: gate("gate_delta_lcb")?,
            gate_ev_drop: gate("gate_ev_drop")?,
            gate_external: gate("gate_external")?,
            pass_all: gate("pass_all")?,
        },
    })
}

/// One λ of an assignment-v3 sweep: the selected checkpoint and what the selector reads from it.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentV3Record {
    /// Position in `records[]`, counting skipped records.
    pub index: usize,
    pub lambda_consistency: f64,
    pub d_sae: Option<i64>,
    pub k: Option<i64>,
    /// `selected_checkpoint` (`…/lambda_{λ}/sae_seed{s}.pt`).
    pub selected_checkpoint: String,
    /// The seed matched by `sae_seed(\d+)` in the checkpoint path.
    pub seed: Option<i64>,
    /// `selection_metrics.saebench_delta`, else `external_eval.saebench.summary.best_minus_llm_auc`.
    pub saebench_delta: Option<f64>,
    /// `selection_metrics.cebench_delta`, else `external_eval.cebench.delta_vs_matched_baseline.…`.
    pub cebench_delta: Option<f64>,
    /// `selection_metrics.cebench_interpretability_max`, else `external_eval.cebench.custom_metrics.…`.
    pub cebench_interpretability_max: Option<f64>,
    /// `explained_variance.mean`: the mean over all seeds of this λ, not the selected checkpoint's own EV
    /// (reference W16).
    pub explained_variance_mean: Option<f64>,
    pub internal_lcb: Option<f64>,
    pub ev_drop: Option<f64>,
    pub saebench_summary_path: Option<String>,
    pub cebench_summary_path: Option<String>,
    pub saebench_returncode: Option<i64>,
    pub cebench_returncode: Option<i64>,
}

/// A parsed assignment-v3 results file.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentV3Results {
    pub path: PathBuf,
    pub config: LegacyValue,
    /// `config.hook_layer` / `config.hook_name`: every record was evaluated at this hook.
    pub hook_layer: Option<i64>,
    pub hook_name: Option<String>,
    pub records: Vec<AssignmentV3Record>,
    /// Indices of records without a string `selected_checkpoint` (upstream skipped them silently).
    pub skipped: Vec<usize>,
}

/// Reads an assignment-v3 results file.
pub fn read_assignment_v3(path: &Path) -> Result<AssignmentV3Results, ReadError> {
    let value = read_kind(path, ArtifactKind::AssignmentV3Results)?;
    parse_assignment_v3(path, &value)
}

/// Parses an already-read assignment-v3 value (the kind is not re-checked).
pub fn parse_assignment_v3(
    path: &Path,
    value: &LegacyValue,
) -> Result<AssignmentV3Results, ReadError> {
    const KIND: &str = "assignment_v3_results";
    let fields = Fields::new(path, value, KIND);
    let items = list(path, &fields, "records")?;
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Some(checkpoint) = item
            .get("selected_checkpoint")
            .and_then(LegacyValue::as_str)
        else {
            skipped.push(index);
            continue;
        };
        let f = Fields::new(path, item, KIND);
        let at = |keys: &[&str]| format!("records[{index}].{}", keys.join("."));
        let num = |keys: &[&str]| f.opt_f64(keys).map_err(|e| rename_field(e, &at(keys)));
        let int = |keys: &[&str]| f.opt_i64(keys).map_err(|e| rename_field(e, &at(keys)));
        let string = |keys: &[&str]| {
            f.opt_str(keys)
                .map(|s| s.map(str::to_string))
                .map_err(|e| rename_field(e, &at(keys)))
        };
        let preferred = |primary: &[&str], fallback: &[&str]| -> Result<Option<f64>, ReadError> {
            Ok(num(primary)?.or(num(fallback)?))
        };
        records.push(AssignmentV3Record {
            index,
            lambda_consistency: f
                .f64(&["lambda_consistency"])
                .map_err(|e| rename_field(e, &at(&["lambda_consistency"])))?,
            d_sae: int(&["d_sae"])?,
            k: int(&["k"])?,
            selected_checkpoint: checkpoint.to_string(),
            seed: seed_from_checkpoint(checkpoint),
            saebench_delta: preferred(
                &["selection_metrics", "saebench_delta"],
                &["external_eval", "saebench", "summary", "best_minus_llm_auc"],
            )?,
            cebench_delta: preferred(
                &["selection_metrics", "cebench_delta"],
                &[
                    "external_eval",
                    "cebench",
                    "delta_vs_matched_baseline",
                    "interpretability_score_mean_max",
                ],
            )?,
            cebench_interpretability_max: preferred(
                &["selection_metrics", "cebench_interpretability_max"],
                &[
                    "external_eval",
                    "cebench",
                    "custom_metrics",
                    "interpretability_score_mean_max",
                ],
            )?,
            explained_variance_mean: num(&["explained_variance", "mean"])?,
            internal_lcb: num(&["selection_metrics", "internal_lcb"])?,
            ev_drop: num(&["selection_metrics", "ev_drop"])?,
            saebench_summary_path: string(&["external_eval", "saebench_summary_path"])?,
            cebench_summary_path: string(&["external_eval", "cebench_summary_path"])?,
            saebench_returncode: int(&["external_eval", "saebench_returncode"])?,
            cebench_returncode: int(&["external_eval", "cebench_returncode"])?,
        });
    }
    let hook_layer = fields.opt_i64(&["config", "hook_layer"])?;
    let hook_name = fields
        .opt_str(&["config", "hook_name"])?
        .map(str::to_string);
    Ok(AssignmentV3Results {
        path: path.to_path_buf(),
        config: value.get("config").cloned().unwrap_or(LegacyValue::Null),
        hook_layer,
        hook_name,
        records,
        skipped,
    })
}

/// The integer after the first `sae_seed` in `path` (upstream's `re.search(r"sae_seed(\d+)", path)`).
pub fn seed_from_checkpoint(path: &str) -> Option<i64> {
    path.match_indices("sae_seed").find_map(|(at, marker)| {
        let digits: String = path[at + marker.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

fn list<'a>(path: &Path, fields: &Fields<'a>, key: &str) -> Result<&'a [LegacyValue], ReadError> {
    let value = fields.require(&[key])?;
    value.as_array().ok_or_else(|| ReadError::WrongType {
        path: path.to_path_buf(),
        field: key.to_string(),
        expected: "a list",
        found: super::describe(value),
    })
}

/// Replaces the field path of a field error with the full path inside the file (`records[3].d_sae`).
fn rename_field(e: ReadError, full: &str) -> ReadError {
    match e {
        ReadError::WrongType {
            path,
            expected,
            found,
            ..
        } => ReadError::WrongType {
            path,
            field: full.to_string(),
            expected,
            found,
        },
        ReadError::MissingField { path, kind, .. } => ReadError::MissingField {
            path,
            kind,
            field: full.to_string(),
        },
        other => other,
    }
}
