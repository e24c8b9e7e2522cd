//! Reader for upstream "external results" files: the `records[]` layout shared by the architecture frontier
//! (`run_architecture_frontier_external.py`), the scaling study, the routed frontier and the matryoshka frontier.
//!
//! Each record describes one trained SAE (one condition, one seed): its checkpoint, training metrics, and the
//! embedded SAEBench and CE-Bench summaries. The reader extracts exactly the fields the release-candidate selector
//! uses (reference §2.2), typed: a metric must be a JSON number (NaN allowed, booleans rejected), an identity field
//! a string or an integer. Which fallback a value came from is kept where upstream's and our semantics differ (the
//! SAEBench delta, whose upstream `a or b` treats an exact 0.0 as missing), so the selector can apply either rule.
//!
//! The scaling, routed and matryoshka readers (`scaling.rs`, `routed.rs`, `matryoshka.rs`) share this record model
//! and add their family checks.

use std::path::{Path, PathBuf};

use super::json::LegacyValue;
use super::{ArtifactKind, Fields, ReadError, detect_kind, json};

/// The record-level fields the selector needs from one external-results record.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalRecord {
    /// Position in the file's `records[]` (upstream's `row_index`), counting skipped records.
    pub index: usize,
    /// `record.condition_id` when the producer wrote one (scaling does; frontier does not).
    pub condition_id: Option<String>,
    /// `record.architecture`, else `cebench.sae_meta.architecture`, else `saebench.sae_meta.architecture`.
    pub architecture: Option<String>,
    pub seed: Option<i64>,
    pub checkpoint: String,
    /// `record.hook_layer`, else `cebench.config.hook_layer`, else `saebench.config.hook_layer` (floats truncate,
    /// as Python's `int()` does).
    pub hook_layer: Option<i64>,
    /// The first string among `record.hook_name`, `cebench.config.hook_name`, `saebench.config.hook_name`.
    pub hook_name: Option<String>,
    /// `saebench.summary.best_minus_llm_auc`.
    pub saebench_summary_delta: Option<f64>,
    /// `saebench.best_minus_llm_auc` (older layout, and upstream's fallback).
    pub saebench_flat_delta: Option<f64>,
    /// `cebench.delta_vs_matched_baseline.interpretability_score_mean_max`.
    pub cebench_delta: Option<f64>,
    /// `cebench.custom_metrics.interpretability_score_mean_max`, else `cebench.cebench_summary.…`.
    pub cebench_interpretability_max: Option<f64>,
    /// `train_metrics.explained_variance`, else `train_summary.final_metrics.explained_variance`.
    pub train_explained_variance: Option<f64>,
    pub saebench_returncode: Option<i64>,
    pub cebench_returncode: Option<i64>,
    /// `cebench.matched_baseline_payload.sae_id`: the hook the CE-Bench baseline was measured at (reference W14).
    pub cebench_baseline_sae_id: Option<String>,
    /// `cebench.config.hook_name`: the hook the candidate was evaluated at by CE-Bench.
    pub cebench_hook_name: Option<String>,
}

impl ExternalRecord {
    /// Upstream's SAEBench delta: `summary.best_minus_llm_auc or best_minus_llm_auc`. Python's `or` falls through
    /// on an exact 0.0 (NaN is truthy and stays), so a real 0.0 delta is replaced by the flat field.
    pub fn saebench_delta_python_or(&self) -> Option<f64> {
        match self.saebench_summary_delta {
            Some(v) if v != 0.0 => Some(v),
            _ => self.saebench_flat_delta,
        }
    }

    /// Our SAEBench delta: the summary field when present (0.0 included), else the flat field.
    pub fn saebench_delta(&self) -> Option<f64> {
        self.saebench_summary_delta.or(self.saebench_flat_delta)
    }
}

/// A record upstream skipped silently because `checkpoint` is not a string; we keep the count and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRecord {
    pub index: usize,
    pub reason: String,
}

/// One parsed external-results file.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalResults {
    pub path: PathBuf,
    /// Which producer wrote the file (frontier, scaling, routed or matryoshka).
    pub kind: ArtifactKind,
    /// The top-level `config` object (`Null` when the producer wrote none).
    pub config: LegacyValue,
    pub records: Vec<ExternalRecord>,
    pub skipped: Vec<SkippedRecord>,
}

/// The producers whose files use this record layout.
pub const EXTERNAL_RECORD_KINDS: [ArtifactKind; 4] = [
    ArtifactKind::FrontierResults,
    ArtifactKind::ScalingResults,
    ArtifactKind::RoutedResults,
    ArtifactKind::MatryoshkaResults,
];

/// Reads an architecture-frontier results file.
pub fn read_frontier(path: &Path) -> Result<ExternalResults, ReadError> {
    read_external_file(path, &[ArtifactKind::FrontierResults])
}

/// Reads a file whose kind must be one of `accepted` (a subset of [`EXTERNAL_RECORD_KINDS`]).
pub fn read_external_file(
    path: &Path,
    accepted: &[ArtifactKind],
) -> Result<ExternalResults, ReadError> {
    let value = json::read_file(path)?;
    parse_external(path, &value, accepted)
}

/// Parses an already-read value; `accepted` lists the kinds the caller allows.
pub fn parse_external(
    path: &Path,
    value: &LegacyValue,
    accepted: &[ArtifactKind],
) -> Result<ExternalResults, ReadError> {
    let detected = detect_kind(path, Some(value));
    if !accepted.contains(&detected.kind) {
        let expected = accepted
            .first()
            .copied()
            .unwrap_or(ArtifactKind::FrontierResults);
        return Err(ReadError::WrongKind {
            path: path.to_path_buf(),
            expected: expected.as_str(),
            found: detected.kind.as_str().to_string(),
        });
    }
    let kind_name = detected.kind.as_str();
    let fields = Fields::new(path, value, kind_name);
    let records_value = fields.require(&["records"])?;
    let items = records_value
        .as_array()
        .ok_or_else(|| ReadError::WrongType {
            path: path.to_path_buf(),
            field: "records".to_string(),
            expected: "a list",
            found: super::describe(records_value),
        })?;
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    for (index, item) in items.iter().enumerate() {
        if item.as_object().is_none() {
            return Err(ReadError::WrongType {
                path: path.to_path_buf(),
                field: format!("records[{index}]"),
                expected: "an object",
                found: super::describe(item),
            });
        }
        match item.get("checkpoint").and_then(LegacyValue::as_str) {
            Some(checkpoint) => {
                records.push(parse_record(path, kind_name, index, item, checkpoint)?)
            }
            None => skipped.push(SkippedRecord {
                index,
                reason: "`checkpoint` is missing or not a string".to_string(),
            }),
        }
    }
    Ok(ExternalResults {
        path: path.to_path_buf(),
        kind: detected.kind,
        config: value.get("config").cloned().unwrap_or(LegacyValue::Null),
        records,
        skipped,
    })
}

/// Field access inside `records[index]`, with error paths prefixed by `records[index].`.
struct RecordFields<'a> {
    path: &'a Path,
    index: usize,
    inner: Fields<'a>,
}

impl<'a> RecordFields<'a> {
    fn prefix(&self, e: ReadError) -> ReadError {
        match e {
            ReadError::WrongType {
                path,
                field,
                expected,
                found,
            } => ReadError::WrongType {
                path,
                field: format!("records[{}].{field}", self.index),
                expected,
                found,
            },
            ReadError::MissingField { path, kind, field } => ReadError::MissingField {
                path,
                kind,
                field: format!("records[{}].{field}", self.index),
            },
            other => other,
        }
    }

    fn f64(&self, keys: &[&str]) -> Result<Option<f64>, ReadError> {
        self.inner.opt_f64(keys).map_err(|e| self.prefix(e))
    }

    fn first_f64(&self, chains: &[&[&str]]) -> Result<Option<f64>, ReadError> {
        for keys in chains {
            if let Some(v) = self.f64(keys)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    fn string(&self, keys: &[&str]) -> Result<Option<String>, ReadError> {
        self.inner
            .opt_str(keys)
            .map(|s| s.map(str::to_string))
            .map_err(|e| self.prefix(e))
    }

    fn int(&self, keys: &[&str]) -> Result<Option<i64>, ReadError> {
        self.inner.opt_i64(keys).map_err(|e| self.prefix(e))
    }

    /// An integer, or a float truncated toward zero (Python `int()`), or absent.
    fn truncated_int(&self, keys: &[&str]) -> Result<Option<i64>, ReadError> {
        match self.inner.opt(keys) {
            None => Ok(None),
            Some(LegacyValue::Int(i)) => Ok(Some(*i)),
            Some(LegacyValue::Float(f)) if f.is_finite() => Ok(Some(f.trunc() as i64)),
            Some(v) => Err(ReadError::WrongType {
                path: self.path.to_path_buf(),
                field: format!("records[{}].{}", self.index, keys.join(".")),
                expected: "an integer",
                found: super::describe(v),
            }),
        }
    }
}

fn parse_record(
    path: &Path,
    kind: &'static str,
    index: usize,
    item: &LegacyValue,
    checkpoint: &str,
) -> Result<ExternalRecord, ReadError> {
    let f = RecordFields {
        path,
        index,
        inner: Fields::new(path, item, kind),
    };
    let mut architecture = None;
    for keys in [
        &["architecture"][..],
        &["cebench", "sae_meta", "architecture"],
        &["saebench", "sae_meta", "architecture"],
    ] {
        if let Some(a) = f.string(keys)? {
            architecture = Some(a);
            break;
        }
    }
    let mut hook_layer = None;
    for keys in [
        &["hook_layer"][..],
        &["cebench", "config", "hook_layer"],
        &["saebench", "config", "hook_layer"],
    ] {
        if let Some(layer) = f.truncated_int(keys)? {
            hook_layer = Some(layer);
            break;
        }
    }
    // Upstream takes the first *string* here, skipping values of other types.
    let hook_name = [
        &["hook_name"][..],
        &["cebench", "config", "hook_name"],
        &["saebench", "config", "hook_name"],
    ]
    .iter()
    .find_map(|keys| item.get_path(keys).and_then(LegacyValue::as_str))
    .map(str::to_string);
    Ok(ExternalRecord {
        index,
        condition_id: f.string(&["condition_id"])?,
        architecture,
        seed: f.int(&["seed"])?,
        checkpoint: checkpoint.to_string(),
        hook_layer,
        hook_name,
        saebench_summary_delta: f.f64(&["saebench", "summary", "best_minus_llm_auc"])?,
        saebench_flat_delta: f.f64(&["saebench", "best_minus_llm_auc"])?,
        cebench_delta: f.f64(&[
            "cebench",
            "delta_vs_matched_baseline",
            "interpretability_score_mean_max",
        ])?,
        cebench_interpretability_max: f.first_f64(&[
            &[
                "cebench",
                "custom_metrics",
                "interpretability_score_mean_max",
            ],
            &[
                "cebench",
                "cebench_summary",
                "interpretability_score_mean_max",
            ],
        ])?,
        train_explained_variance: f.first_f64(&[
            &["train_metrics", "explained_variance"],
            &["train_summary", "final_metrics", "explained_variance"],
        ])?,
        saebench_returncode: f.int(&["saebench_returncode"])?,
        cebench_returncode: f.int(&["cebench_returncode"])?,
        cebench_baseline_sae_id: f.string(&["cebench", "matched_baseline_payload", "sae_id"])?,
        cebench_hook_name: f.string(&["cebench", "config", "hook_name"])?,
    })
}
