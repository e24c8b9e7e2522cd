//! Reader for the external-metric scaling study (`run_external_metric_scaling_study.py`): the shared external
//! record layout ([`super::frontier`]) plus the per-record scaling axes (token budget, hook layer, dictionary size).
//!
//! Scaling records carry their own `condition_id` (`tok{budget}_layer{L}_dsae{d}_seed{s}`), and layer-1 records of
//! the older study were compared against a layer-0 CE-Bench baseline (reference W14); [`ScalingAxes`] and the
//! record's `cebench_baseline_sae_id` let the selector see both.

use std::path::Path;

use super::frontier::{ExternalResults, read_external_file};
use super::json::LegacyValue;
use super::{ArtifactKind, ReadError};

/// The scaling axes of one record, when the producer wrote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalingAxes {
    pub token_budget: Option<i64>,
    pub d_sae: Option<i64>,
}

/// Reads a scaling-study results file.
pub fn read_scaling(path: &Path) -> Result<ExternalResults, ReadError> {
    read_external_file(path, &[ArtifactKind::ScalingResults])
}

/// The scaling axes of `records[index]` of a scaling file's parsed JSON. Non-integer values read as absent: the
/// axes are descriptive, not used in any computation.
pub fn scaling_axes(root: &LegacyValue, index: usize) -> ScalingAxes {
    let record = root
        .get("records")
        .and_then(LegacyValue::as_array)
        .and_then(|records| records.get(index));
    let int = |key: &str| match record.and_then(|r| r.get(key)) {
        Some(LegacyValue::Int(i)) => Some(*i),
        _ => None,
    };
    ScalingAxes {
        token_budget: int("token_budget"),
        d_sae: int("d_sae"),
    }
}
