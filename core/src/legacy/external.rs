//! SAEBench and CE-Bench summary readers (`run_husai_saebench_custom_eval.py`, `run_husai_cebench_custom_eval.py`).

use std::path::Path;

use super::json::LegacyValue;
use super::{ArtifactKind, Fields, ReadError};

#[derive(Debug, Clone, PartialEq)]
pub struct SaebenchSummary {
    /// `summary.best_minus_llm_auc`: best SAE probe AUC over k minus the LLM probe AUC.
    pub best_minus_llm_auc: f64,
    pub checkpoint: Option<String>,
    pub architecture: Option<String>,
    pub hook_name: Option<String>,
    pub dataset_names: Vec<String>,
}

pub fn read_saebench(path: &Path, value: &LegacyValue) -> Result<SaebenchSummary, ReadError> {
    let f = Fields::new(path, value, "saebench_summary");
    f.expect_kind(ArtifactKind::SaebenchSummary)?;
    let dataset_names = f
        .opt(&["config", "dataset_names"])
        .and_then(LegacyValue::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(SaebenchSummary {
        best_minus_llm_auc: f.finite_f64(&["summary", "best_minus_llm_auc"])?,
        checkpoint: f.opt_str(&["config", "checkpoint"])?.map(str::to_string),
        architecture: f
            .opt_str(&["sae_meta", "architecture"])?
            .map(str::to_string),
        hook_name: f.opt_str(&["config", "hook_name"])?.map(str::to_string),
        dataset_names,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct CebenchSummary {
    /// `custom_metrics.interpretability_score_mean_max`.
    pub interpretability_max: f64,
    /// `delta_vs_matched_baseline.interpretability_score_mean_max`; `None` when the run had no matched baseline
    /// (upstream writes the whole block as null).
    pub interp_delta_vs_baseline: Option<f64>,
    pub checkpoint_sha256: Option<String>,
    pub hook_name: Option<String>,
    /// `matched_baseline_payload.sae_id`: must name the same hook as `hook_name` for the delta to mean anything
    /// (reference §6 W14).
    pub baseline_sae_id: Option<String>,
}

pub fn read_cebench(path: &Path, value: &LegacyValue) -> Result<CebenchSummary, ReadError> {
    let f = Fields::new(path, value, "cebench_summary");
    f.expect_kind(ArtifactKind::CebenchSummary)?;
    Ok(CebenchSummary {
        interpretability_max: f
            .finite_f64(&["custom_metrics", "interpretability_score_mean_max"])?,
        interp_delta_vs_baseline: f.opt_f64(&[
            "delta_vs_matched_baseline",
            "interpretability_score_mean_max",
        ])?,
        checkpoint_sha256: f
            .opt_str(&["config", "checkpoint_sha256"])?
            .map(str::to_string),
        hook_name: f.opt_str(&["config", "hook_name"])?.map(str::to_string),
        baseline_sae_id: f
            .opt_str(&["matched_baseline_payload", "sae_id"])?
            .map(str::to_string),
    })
}
