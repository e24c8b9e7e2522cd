//! Known-circuit recovery closure reader (`run_known_circuit_recovery_closure.py`, reference §1.6).

use std::path::Path;

use super::json::LegacyValue;
use super::{ArtifactKind, Fields, ReadError};

#[derive(Debug, Clone, PartialEq)]
pub struct KnownCircuitClosure {
    pub trained_r2: f64,
    /// `transformer.random_stats.ci95_high`.
    pub random_r2_ci95_high: f64,
    /// `sae.checkpoints_evaluated`; 0 means the SAE overlap statistics are all NaN.
    pub sae_checkpoints_evaluated: i64,
    /// `sae.delta_vs_random_lcb`; null upstream when no checkpoint was evaluated.
    pub sae_delta_vs_random_lcb: Option<f64>,
    pub gate_transformer_r2: bool,
    pub gate_sae_overlap: bool,
    pub pass_all: bool,
}

pub fn read(path: &Path, value: &LegacyValue) -> Result<KnownCircuitClosure, ReadError> {
    let f = Fields::new(path, value, "known_circuit_closure");
    f.expect_kind(ArtifactKind::KnownCircuitClosure)?;
    Ok(KnownCircuitClosure {
        trained_r2: f.f64(&["transformer", "trained", "r2"])?,
        random_r2_ci95_high: f.f64(&["transformer", "random_stats", "ci95_high"])?,
        sae_checkpoints_evaluated: f.opt_i64(&["sae", "checkpoints_evaluated"])?.unwrap_or(0),
        sae_delta_vs_random_lcb: f.opt_f64(&["sae", "delta_vs_random_lcb"])?,
        gate_transformer_r2: f.bool(&["gates", "transformer_r2"])?,
        gate_sae_overlap: f.bool(&["gates", "sae_overlap"])?,
        pass_all: f.bool(&["gates", "pass_all"])?,
    })
}
