//! Release-policy reader for both upstream schemas (reference §1.5): `v1-legacy` (one external metric, four gates)
//! and the joint/LCB schema (`v2-joint`, `v3-lcb`).

use std::path::Path;

use super::json::LegacyValue;
use super::{ArtifactKind, Fields, ReadError};

#[derive(Debug, Clone, PartialEq)]
pub struct ReleasePolicy {
    /// `v1-legacy`, `v2-joint` or `v3-lcb` (see `kind`).
    pub schema_version: &'static str,
    pub run_id: Option<String>,
    pub random_model: bool,
    pub transcoder: bool,
    pub ood: bool,
    pub external: bool,
    /// Present from `v2-joint` on.
    pub external_saebench: Option<bool>,
    pub external_cebench: Option<bool>,
    pub external_mode_used: Option<String>,
    pub external_threshold_basis: Option<String>,
    pub pass_all: bool,
    /// `metrics` in file order; a null or non-numeric metric is `None`.
    pub metrics: Vec<(String, Option<f64>)>,
}

pub fn read(path: &Path, value: &LegacyValue) -> Result<ReleasePolicy, ReadError> {
    let f = Fields::new(path, value, "release_policy");
    let detected = f.expect_kind(ArtifactKind::ReleasePolicy)?;
    let legacy = detected.schema_version == "v1-legacy";
    let opt_bool = |name: &str| -> Result<Option<bool>, ReadError> {
        if legacy {
            Ok(None)
        } else {
            f.bool(&["gates", name]).map(Some)
        }
    };
    let metrics_value = f.require(&["metrics"])?;
    let metrics = metrics_value
        .as_object()
        .ok_or_else(|| ReadError::WrongType {
            path: path.to_path_buf(),
            field: "metrics".into(),
            expected: "an object",
            found: super::describe(metrics_value),
        })?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64()))
        .collect();
    Ok(ReleasePolicy {
        schema_version: detected.schema_version,
        run_id: f.opt_str(&["run_metadata", "run_id"])?.map(str::to_string),
        random_model: f.bool(&["gates", "random_model"])?,
        transcoder: f.bool(&["gates", "transcoder"])?,
        ood: f.bool(&["gates", "ood"])?,
        external: f.bool(&["gates", "external"])?,
        external_saebench: opt_bool("external_saebench")?,
        external_cebench: opt_bool("external_cebench")?,
        external_mode_used: f
            .opt_str(&["gates", "external_mode_used"])?
            .map(str::to_string),
        external_threshold_basis: f
            .opt_str(&["gates", "external_threshold_basis"])?
            .map(str::to_string),
        pass_all: f.bool(&["gates", "pass_all"])?,
        metrics,
    })
}
