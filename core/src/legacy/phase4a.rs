//! Phase-4a trained-vs-random reader (upstream `run_phase4a_reproduction.py`, reference §1.3).

use std::path::Path;

use super::json::LegacyValue;
use super::{ArtifactKind, Fields, ReadError};

/// One group's summary of pairwise PWMCC values (a bootstrap percentile CI of the mean of the pairs).
#[derive(Debug, Clone, PartialEq)]
pub struct PwmccGroup {
    pub mean: f64,
    pub ci95_low: f64,
    pub ci95_high: f64,
    pub n_pairs: Option<i64>,
    pub pwmcc_values: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Phase4aResults {
    /// `comparison.difference` = trained mean − random mean.
    pub difference: f64,
    pub trained: PwmccGroup,
    pub random: PwmccGroup,
    /// `statistical_test.p_value` (one-sided Mann-Whitney U); absent in hand-made files.
    pub p_value: Option<f64>,
}

impl Phase4aResults {
    /// Upstream's LCB: `trained.ci95_low − random.ci95_high`, a difference of bounds (not a CI of the difference).
    pub fn difference_of_bounds(&self) -> f64 {
        self.trained.ci95_low - self.random.ci95_high
    }
}

const KIND: &str = "phase4a_trained_vs_random";

fn group(f: &Fields, name: &str) -> Result<PwmccGroup, ReadError> {
    let values = match f.opt(&[name, "pwmcc_values"]) {
        None => Vec::new(),
        Some(LegacyValue::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_f64().ok_or_else(|| ReadError::WrongType {
                    path: f.path.to_path_buf(),
                    field: format!("{name}.pwmcc_values[{i}]"),
                    expected: "a number",
                    found: super::describe(v),
                })
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(ReadError::WrongType {
                path: f.path.to_path_buf(),
                field: format!("{name}.pwmcc_values"),
                expected: "a list of numbers",
                found: super::describe(other),
            });
        }
    };
    Ok(PwmccGroup {
        mean: f.finite_f64(&[name, "mean"])?,
        ci95_low: f.finite_f64(&[name, "ci95_low"])?,
        ci95_high: f.finite_f64(&[name, "ci95_high"])?,
        n_pairs: f.opt_i64(&[name, "n_pairs"])?,
        pwmcc_values: values,
    })
}

/// Reads a parsed phase-4a file. Structural detection only: the phase-4a producer records no script name in every
/// version, so a file with `comparison.difference`, `trained` and `random` is accepted.
pub fn read(path: &Path, value: &LegacyValue) -> Result<Phase4aResults, ReadError> {
    let f = Fields::new(path, value, KIND);
    f.expect_kind(ArtifactKind::Phase4aTrainedVsRandom)?;
    Ok(Phase4aResults {
        difference: f.finite_f64(&["comparison", "difference"])?,
        trained: group(&f, "trained")?,
        random: group(&f, "random")?,
        p_value: f.opt_f64(&["statistical_test", "p_value"])?,
    })
}
