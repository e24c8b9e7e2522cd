//! Reader for the external-metric scaling study (`run_external_metric_scaling_study.py`): the shared external
//! record layout ([`super::frontier`]), one record per (token budget, hook layer, dictionary size, seed).
//!
//! Scaling records carry their own `condition_id` (`tok{budget}_layer{L}_dsae{d}_seed{s}`). The older study
//! evaluated layer-1 SAEs against a layer-0 CE-Bench baseline (reference W14); each record's
//! `cebench_baseline_sae_id` and `cebench_hook_name` let the selector detect that.

use std::path::Path;

use super::frontier::{ExternalResults, read_external_file};
use super::{ArtifactKind, ReadError};

/// Reads a scaling-study results file.
pub fn read_scaling(path: &Path) -> Result<ExternalResults, ReadError> {
    read_external_file(path, &[ArtifactKind::ScalingResults])
}
