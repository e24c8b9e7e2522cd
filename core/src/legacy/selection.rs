//! Readers for upstream selector outputs: `selected_candidate.json` and `selection_summary.json`
//! (`select_release_candidate.py`, reference §2.8).
//!
//! A candidate mixes the representative seed's identity (seed, checkpoint, summary paths, hook) with group metrics
//! stored under the same keys: in grouped mode `metrics.saebench_delta` is the group's LCB or mean, not the
//! representative's own value (reference W11). [`LegacyCandidate`] keeps upstream's names but documents which is
//! which, and [`LegacyCandidate::group_metric`] reads the `_mean/_ci95_low/…` fields explicitly.

use std::path::{Path, PathBuf};

use super::json::LegacyValue;
use super::{ArtifactKind, Fields, ReadError, read_kind};

/// The four metric keys upstream's selector writes, in its order.
pub const METRIC_KEYS: [&str; 4] = [
    "saebench_delta",
    "cebench_interp_delta_vs_baseline",
    "cebench_interpretability_max",
    "train_explained_variance",
];

/// One candidate (a seed row or a grouped record) as upstream wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyCandidate {
    /// `frontier`, `scaling`, `assignment` or `grouped`.
    pub source: String,
    pub condition_id: String,
    /// Grouped records only.
    pub group_id: Option<String>,
    pub representative_condition_id: Option<String>,
    pub seed_count: Option<i64>,
    pub architecture: Option<String>,
    /// For a grouped record: the representative seed.
    pub seed: Option<i64>,
    pub checkpoint: Option<String>,
    pub hook_layer: Option<i64>,
    pub hook_name: Option<String>,
    pub saebench_summary_path: Option<String>,
    pub cebench_summary_path: Option<String>,
    /// The `metrics` object as written (NaN preserved); read values with [`Self::metric`].
    pub metrics: LegacyValue,
    pub joint_score: Option<f64>,
    pub is_pareto: Option<bool>,
    /// `selection.uncertainty_mode` (grouped records written by 843f949 and later).
    pub uncertainty_mode: Option<String>,
}

impl LegacyCandidate {
    /// `metrics.<key>`: for a grouped record this is the value the ranking used (LCB or mean).
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics.get(key).and_then(LegacyValue::as_f64)
    }

    /// `metrics.<key>_<stat>` of a grouped record, e.g. `group_metric("saebench_delta", "ci95_low")`.
    pub fn group_metric(&self, key: &str, stat: &str) -> Option<f64> {
        self.metric(&format!("{key}_{stat}"))
    }
}

/// `counts` of a selection summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectionCounts {
    pub total_candidates: i64,
    pub eligible_seed_candidates: i64,
    pub eligible_candidates: i64,
    pub pareto_count: i64,
}

/// A parsed `selection_summary.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionSummary {
    pub path: PathBuf,
    /// `v1`, `v2-grouped` or `v3-diagnostics` (see [`super::kind`]).
    pub schema_version: &'static str,
    pub run_id: Option<String>,
    /// The `config` object as written.
    pub config: LegacyValue,
    pub counts: SelectionCounts,
    pub selected: LegacyCandidate,
    pub pareto_front: Vec<LegacyCandidate>,
    pub ranked: Vec<LegacyCandidate>,
}

/// Reads a `selected_candidate.json`.
pub fn read_selected_candidate(path: &Path) -> Result<LegacyCandidate, ReadError> {
    let value = read_kind(path, ArtifactKind::SelectedCandidate)?;
    parse_candidate(path, &value, "")
}

/// Reads a `selection_summary.json` (also upstream's older `release_selection_summary.json`).
pub fn read_selection_summary(path: &Path) -> Result<SelectionSummary, ReadError> {
    let value = read_kind(path, ArtifactKind::SelectionSummary)?;
    let detected = super::detect_kind(path, Some(&value));
    let fields = Fields::new(path, &value, "selection_summary");
    let count = |key: &str| -> Result<i64, ReadError> {
        fields
            .opt_i64(&["counts", key])?
            .ok_or_else(|| ReadError::MissingField {
                path: path.to_path_buf(),
                kind: "selection_summary",
                field: format!("counts.{key}"),
            })
    };
    let counts = SelectionCounts {
        total_candidates: count("total_candidates")?,
        eligible_seed_candidates: count("eligible_seed_candidates")?,
        eligible_candidates: count("eligible_candidates")?,
        pareto_count: count("pareto_count")?,
    };
    let selected = parse_candidate(
        path,
        fields.require(&["selected_candidate"])?,
        "selected_candidate.",
    )?;
    let list = |key: &str| -> Result<Vec<LegacyCandidate>, ReadError> {
        let items = fields.require(&[key])?;
        let items = items.as_array().ok_or_else(|| ReadError::WrongType {
            path: path.to_path_buf(),
            field: key.to_string(),
            expected: "a list",
            found: super::describe(items),
        })?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_candidate(path, item, &format!("{key}[{i}].")))
            .collect()
    };
    Ok(SelectionSummary {
        path: path.to_path_buf(),
        schema_version: detected.schema_version,
        run_id: fields
            .opt_str(&["run_metadata", "run_id"])?
            .map(str::to_string),
        config: value.get("config").cloned().unwrap_or(LegacyValue::Null),
        counts,
        selected,
        pareto_front: list("pareto_front")?,
        ranked: list("ranked_candidates")?,
    })
}

/// Parses one candidate object; `prefix` locates it inside the file for error messages.
pub fn parse_candidate(
    path: &Path,
    value: &LegacyValue,
    prefix: &str,
) -> Result<LegacyCandidate, ReadError> {
    let f = Fields::new(path, value, "selected_candidate");
    let with_prefix = |e: ReadError| match e {
        ReadError::WrongType {
            path,
            field,
            expected,
            found,
        } => ReadError::WrongType {
            path,
            field: format!("{prefix}{field}"),
            expected,
            found,
        },
        ReadError::MissingField { path, kind, field } => ReadError::MissingField {
            path,
            kind,
            field: format!("{prefix}{field}"),
        },
        other => other,
    };
    let string = |keys: &[&str]| {
        f.opt_str(keys)
            .map(|s| s.map(str::to_string))
            .map_err(with_prefix)
    };
    let required_string = |key: &str| -> Result<String, ReadError> {
        string(&[key])?.ok_or_else(|| {
            with_prefix(ReadError::MissingField {
                path: path.to_path_buf(),
                kind: "selected_candidate",
                field: key.to_string(),
            })
        })
    };
    let metrics = f.require(&["metrics"]).map_err(with_prefix)?;
    if metrics.as_object().is_none() {
        return Err(with_prefix(ReadError::WrongType {
            path: path.to_path_buf(),
            field: "metrics".to_string(),
            expected: "an object",
            found: super::describe(metrics),
        }));
    }
    let is_pareto = match f.opt(&["selection", "is_pareto"]) {
        None => None,
        Some(_) => Some(f.bool(&["selection", "is_pareto"]).map_err(with_prefix)?),
    };
    Ok(LegacyCandidate {
        source: required_string("source")?,
        condition_id: required_string("condition_id")?,
        group_id: string(&["group_id"])?,
        representative_condition_id: string(&["representative_condition_id"])?,
        seed_count: f.opt_i64(&["seed_count"]).map_err(with_prefix)?,
        architecture: string(&["architecture"])?,
        seed: f.opt_i64(&["seed"]).map_err(with_prefix)?,
        checkpoint: string(&["checkpoint"])?,
        hook_layer: f.opt_i64(&["hook_layer"]).map_err(with_prefix)?,
        hook_name: string(&["hook_name"])?,
        saebench_summary_path: string(&["saebench_summary_path"])?,
        cebench_summary_path: string(&["cebench_summary_path"])?,
        metrics: metrics.clone(),
        joint_score: f
            .opt_f64(&["selection", "joint_score"])
            .map_err(with_prefix)?,
        is_pareto,
        uncertainty_mode: string(&["selection", "uncertainty_mode"])?,
    })
}
