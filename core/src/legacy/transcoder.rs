//! Transcoder stress readers: the per-condition summary (`run_transcoder_stress_eval.py`) and the sweep over
//! conditions (`run_transcoder_stress_sweep.py`), reference §1.3 and §1.6.

use std::path::Path;

use super::json::LegacyValue;
use super::{ArtifactKind, Fields, ReadError};
use crate::stats::{self, BootstrapSpec, Interval, StatsError};

/// Upstream's transcoder statistic, recomputed from its pairwise PWMCC values (`--parity`; reference §1.3 step 5
/// and §1.5): a percentile bootstrap of the mean of each side's pairwise values (10 000 resamples; upstream seeds 13
/// and 17, whose numpy streams this does not replay) and `delta_lcb = ci95_low(transcoder) − ci95_high(SAE)`.
/// With 3 seeds there are 3 pairwise values, and each percentile bound is the extreme value itself (all three
/// draws equal the minimum with probability 1/27 > 2.5 %), so `delta_lcb = min(TC) − max(SAE)`: not a bound on the
/// difference (reference T1), which is why the strict gate does not read it.
pub fn parity_delta_lcb(
    transcoder_pairs: &[f64],
    sae_pairs: &[f64],
) -> Result<(Interval, Interval, f64), StatsError> {
    let spec = |seed| BootstrapSpec {
        resamples: 10_000,
        seed,
    };
    let tc = stats::seed_bootstrap_mean(transcoder_pairs, 0.95, spec(13))?;
    let sae = stats::seed_bootstrap_mean(sae_pairs, 0.95, spec(17))?;
    let lcb = tc.low - sae.high;
    Ok((tc, sae, lcb))
}

#[derive(Debug, Clone, PartialEq)]
pub struct TranscoderStressSummary {
    /// `delta`: mean pairwise decoder PWMCC of transcoders minus that of SAEs.
    pub delta: f64,
    /// `transcoder.summary.ci95_low − sae.summary.ci95_high` (upstream's sweep LCB), when both are present.
    pub delta_lcb: Option<f64>,
    pub run_id: Option<String>,
}

const SUMMARY_KIND: &str = "transcoder_stress_summary";

pub fn read_summary(
    path: &Path,
    value: &LegacyValue,
) -> Result<TranscoderStressSummary, ReadError> {
    let f = Fields::new(path, value, SUMMARY_KIND);
    f.expect_kind(ArtifactKind::TranscoderStressSummary)?;
    let delta = f.finite_f64(&["delta"])?;
    // The producer writes the same number to `delta` and `transcoder_delta`; a file where they differ was edited.
    if let Some(other) = f.opt_f64(&["transcoder_delta"])?
        && other.to_bits() != delta.to_bits()
    {
        return Err(ReadError::WrongType {
            path: path.to_path_buf(),
            field: "transcoder_delta".into(),
            expected: "equal to `delta` (the producer writes the same value to both)",
            found: format!("{other} vs delta {delta}"),
        });
    }
    let low = f.opt_f64(&["transcoder", "summary", "ci95_low"])?;
    let high = f.opt_f64(&["sae", "summary", "ci95_high"])?;
    Ok(TranscoderStressSummary {
        delta,
        delta_lcb: low.zip(high).map(|(l, h)| l - h),
        run_id: f.opt_str(&["run_metadata", "run_id"])?.map(str::to_string),
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct SweepCondition {
    pub condition_id: String,
    pub returncode: Option<i64>,
    pub summary_path: Option<String>,
    pub delta: Option<f64>,
    pub delta_lcb: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TranscoderStressSweep {
    pub conditions: Vec<SweepCondition>,
    /// The sweep's own choice: argmax `delta_lcb` among conditions with returncode 0.
    pub best_condition: Option<SweepCondition>,
    pub pass_all: Option<bool>,
}

const SWEEP_KIND: &str = "transcoder_stress_sweep";

fn condition(path: &Path, value: &LegacyValue, field: &str) -> Result<SweepCondition, ReadError> {
    let f = Fields::new(path, value, SWEEP_KIND);
    let condition_id = f
        .opt_str(&["condition_id"])
        .map_err(|e| prefix(e, field))?
        .ok_or_else(|| ReadError::MissingField {
            path: path.to_path_buf(),
            kind: SWEEP_KIND,
            field: format!("{field}.condition_id"),
        })?;
    let wrap = |e| prefix(e, field);
    Ok(SweepCondition {
        condition_id: condition_id.to_string(),
        returncode: f.opt_i64(&["returncode"]).map_err(wrap)?,
        summary_path: f
            .opt_str(&["summary_path"])
            .map_err(wrap)?
            .map(str::to_string),
        delta: f.opt_f64(&["delta"]).map_err(wrap)?,
        delta_lcb: f.opt_f64(&["delta_lcb"]).map_err(wrap)?,
    })
}

/// Prefixes a field error with the position of the sub-object it came from (`records[3].delta`).
fn prefix(e: ReadError, at: &str) -> ReadError {
    match e {
        ReadError::MissingField { path, kind, field } => ReadError::MissingField {
            path,
            kind,
            field: format!("{at}.{field}"),
        },
        ReadError::WrongType {
            path,
            field,
            expected,
            found,
        } => ReadError::WrongType {
            path,
            field: format!("{at}.{field}"),
            expected,
            found,
        },
        other => other,
    }
}

pub fn read_sweep(path: &Path, value: &LegacyValue) -> Result<TranscoderStressSweep, ReadError> {
    let f = Fields::new(path, value, SWEEP_KIND);
    f.expect_kind(ArtifactKind::TranscoderStressSweep)?;
    let records = f.require(&["records"])?;
    let items = records.as_array().ok_or_else(|| ReadError::WrongType {
        path: path.to_path_buf(),
        field: "records".into(),
        expected: "a list",
        found: super::describe(records),
    })?;
    let conditions = items
        .iter()
        .enumerate()
        .map(|(i, v)| condition(path, v, &format!("records[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let best_condition = f
        .opt(&["best_condition"])
        .map(|v| condition(path, v, "best_condition"))
        .transpose()?;
    Ok(TranscoderStressSweep {
        conditions,
        best_condition,
        pass_all: f.opt(&["gates", "pass_all"]).and_then(LegacyValue::as_bool),
    })
}
