//! OOD stress summary reader (`run_ood_stress_eval.py`, reference §1.3 and §1.6).

use std::path::Path;

use super::json::LegacyValue;
use super::{ArtifactKind, Fields, ReadError};

#[derive(Debug, Clone, PartialEq)]
pub struct OodStressSummary {
    /// `ood_drop` = ID best-minus-LLM AUC − OOD best-minus-LLM AUC (absolute units of AUC).
    pub ood_drop: f64,
    /// `relative_drop` = ood_drop / |id|; null upstream when |id| ≤ 1e-12.
    pub relative_drop: Option<f64>,
    pub id_best_minus_llm_auc: Option<f64>,
    pub ood_best_minus_llm_auc: Option<f64>,
    /// `config.checkpoint`: the SAE the stress test ran on, to compare with the release candidate.
    pub checkpoint: Option<String>,
}

pub fn read(path: &Path, value: &LegacyValue) -> Result<OodStressSummary, ReadError> {
    let f = Fields::new(path, value, "ood_stress_summary");
    f.expect_kind(ArtifactKind::OodStressSummary)?;
    Ok(OodStressSummary {
        ood_drop: f.finite_f64(&["ood_drop"])?,
        relative_drop: f.opt_f64(&["relative_drop"])?,
        id_best_minus_llm_auc: f.opt_f64(&["id_result", "best_minus_llm_auc"])?,
        ood_best_minus_llm_auc: f.opt_f64(&["ood_result", "best_minus_llm_auc"])?,
        checkpoint: f.opt_str(&["config", "checkpoint"])?.map(str::to_string),
    })
}
