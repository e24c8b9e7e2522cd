//! Reader for the routed-frontier results (`run_routed_frontier_external.py`): the shared external record layout
//! ([`super::frontier`]) written by a sweep whose runs differ in their routing configuration.
//!
//! Upstream fed every sweep run to the selector as `--frontier-results` and grouped them by architecture name, which
//! pooled five configurations (d_sae, k, experts, top-k mode) into one `routed_topk` group (reference W9). The
//! configuration that makes runs different is in the file's top-level `config`; [`RoutedConfig`] names the routing
//! knobs so reports can say which sweep point a group is.

use std::path::Path;

use super::frontier::{ExternalResults, read_external_file};
use super::json::LegacyValue;
use super::{ArtifactKind, ReadError};

/// The routing knobs of one routed run (absent knobs read as `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedConfig {
    pub d_sae: Option<i64>,
    pub k: Option<i64>,
    pub num_experts: Option<i64>,
    pub route_topk_mode: Option<String>,
}

/// Reads a routed-frontier results file.
pub fn read_routed(path: &Path) -> Result<ExternalResults, ReadError> {
    read_external_file(path, &[ArtifactKind::RoutedResults])
}

/// The routing knobs from a routed file's top-level `config`.
pub fn routed_config(results: &ExternalResults) -> RoutedConfig {
    let int = |key: &str| match results.config.get(key) {
        Some(LegacyValue::Int(i)) => Some(*i),
        _ => None,
    };
    RoutedConfig {
        d_sae: int("d_sae"),
        k: int("k"),
        num_experts: int("num_experts"),
        route_topk_mode: results
            .config
            .get("route_topk_mode")
            .and_then(LegacyValue::as_str)
            .map(str::to_string),
    }
}
