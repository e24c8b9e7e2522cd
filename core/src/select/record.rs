//! Typed view of a strict `selection.json` for its consumers (the release gate, claims): the selected candidate with
//! the representative's identity and the group's statistics kept apart (W11), so a consumer names the statistic it
//! gates on (`mean`, `ci_low`) instead of reading a `metrics` key whose meaning depends on how it was made.

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

/// Why a document is not a usable strict selection.
#[derive(Debug, Error)]
pub enum SelectionRecordError {
    #[error("{source_name} is not a strict husai selection (schemas/selection.v1.json): {}", violations.join("; "))]
    Schema {
        source_name: String,
        violations: Vec<String>,
    },
    #[error("{source_name}: {message}")]
    Shape {
        source_name: String,
        message: String,
    },
}

/// One group statistic of one metric.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GroupMetric {
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// Distinct seeds with a finite value.
    pub n: u64,
    /// The value the ranking used (`ci_low` in LCB mode, `mean` in point mode, the row's value for a seed row).
    pub ranking_value: Option<f64>,
}

/// The group statistics of the selected candidate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GroupMetrics {
    pub saebench_delta: GroupMetric,
    pub cebench_interp_delta_vs_baseline: GroupMetric,
    pub train_explained_variance: GroupMetric,
    pub cebench_interpretability_max: GroupMetric,
    /// `lcb`, `point` or `seed`.
    pub basis: String,
}

/// The representative seed: the checkpoint a release would ship, and that seed's own metrics.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Representative {
    pub condition_id: String,
    pub seed: Option<i64>,
    pub architecture: String,
    pub checkpoint: String,
    pub hook_layer: Option<i64>,
    pub hook_name: Option<String>,
    pub saebench_summary_path: Option<String>,
    pub cebench_summary_path: Option<String>,
    pub summary_paths_derived: bool,
    /// A husai representative's train run (schema 1.1; absent or null for upstream rows): pass
    /// `results/<campaign>/<run_id>` as the gate's `--candidate`.
    #[serde(default)]
    pub run: Option<RunRecord>,
    /// The ood-stress eval run that measured it.
    #[serde(default)]
    pub eval_run: Option<RunRecord>,
}

/// A signed run a selection names: where it is, and the sha256 of its envelope (`husai.dsse.json`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RunRecord {
    pub campaign: String,
    pub run_id: String,
    pub manifest_sha256: String,
}

/// The `selected` block of a strict selection.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SelectedRecord {
    pub candidate_id: String,
    pub condition: String,
    pub config_sha256: String,
    pub seed_count: u64,
    pub seeds: Vec<i64>,
    pub joint_score: f64,
    pub is_pareto: bool,
    pub representative: Representative,
    pub group_metrics: GroupMetrics,
}

/// Checks `doc` against the selection schema and returns its selected candidate. `source_name` (a path or run
/// subject) is used in error messages.
pub fn selected_from_json(
    doc: &Value,
    source_name: &str,
) -> Result<SelectedRecord, SelectionRecordError> {
    super::output::validate_selection(doc).map_err(|violations| SelectionRecordError::Schema {
        source_name: source_name.to_string(),
        violations,
    })?;
    SelectedRecord::deserialize(&doc["selected"]).map_err(|e| SelectionRecordError::Shape {
        source_name: source_name.to_string(),
        message: format!("`selected` does not have the expected fields: {e}"),
    })
}
