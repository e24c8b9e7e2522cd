//! Reading a decision input from a verified signed run.
//!
//! A decision (gate, claim) may only read a file that a verified run's signed statement covers. The file is located
//! by walking up to its run directory, the run is verified against the trust policy, the file must be one of the
//! run's subjects, and the bytes actually read must hash to the subject's digest (so a file swapped after
//! verification is caught). A run whose status is not `ok` (diverged, interrupted) is refused. The result cites
//! run id, subject and sha256.

use std::path::{Path, PathBuf};

use crate::digest::sha256_hex;
use crate::inputs::{NotOkRun, require_ok};
use crate::legacy::json::{self, LegacyValue};
use crate::legacy::{DetectedKind, detect_kind};
use crate::trust::TrustPolicy;
use crate::verify::{self, RunVerifyError};

use super::report::{InputCitation, TrainRunIdentity};

/// A parsed input file with its provenance.
#[derive(Debug, Clone)]
pub struct SourcedFile {
    pub citation: InputCitation,
    /// Where the file was read from.
    pub path: PathBuf,
    pub value: LegacyValue,
    pub detected: DetectedKind,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{}: no such file; check the path", path.display())]
    NotFound { path: PathBuf },
    #[error(
        "{}: not inside a signed run (no husai.dsse.json above it); strict mode reads verified runs only. Import upstream files with `husai-audit import husai-evidence`, or use --parity to read plain files",
        path.display()
    )]
    Unsigned { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Unverified {
        path: PathBuf,
        #[source]
        source: Box<RunVerifyError>,
    },
    #[error("{}: {source}", path.display())]
    NotOk {
        path: PathBuf,
        #[source]
        source: Box<NotOkRun>,
    },
    #[error(
        "{}: the file is inside run {run_id} but is not one of its signed subjects; only signed files can be cited",
        path.display()
    )]
    NotASubject { path: PathBuf, run_id: String },
    #[error(
        "{}: subject {subject} of run {run_id} has no plain sha256 digest (files over the shard size are too large to be decision inputs)",
        path.display()
    )]
    NoSha256 {
        path: PathBuf,
        run_id: String,
        subject: String,
    },
    #[error(
        "{}: the bytes read hash to {actual}, but run {run_id} signed {expected} for it; the file changed after signing",
        path.display()
    )]
    DigestMismatch {
        path: PathBuf,
        run_id: String,
        expected: String,
        actual: String,
    },
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Json(#[from] json::LegacyJsonError),
}

/// Reads `path` from its verified run. `given` is the path as the user wrote it, recorded in the citation.
pub fn read_verified(path: &Path, trust: &TrustPolicy) -> Result<SourcedFile, SourceError> {
    if !path.is_file() {
        return Err(SourceError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let (run_dir, subject) = verify::enclosing_run(path).ok_or_else(|| SourceError::Unsigned {
        path: path.to_path_buf(),
    })?;
    let run = verify::load_verified_run(&run_dir, trust).map_err(|e| SourceError::Unverified {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    require_ok(&run).map_err(|e| SourceError::NotOk {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    let run_id = run.manifest.run_id.clone();
    let signed = run
        .subject(&subject)
        .ok_or_else(|| SourceError::NotASubject {
            path: path.to_path_buf(),
            run_id: run_id.clone(),
        })?;
    let expected = signed
        .digest
        .get("sha256")
        .cloned()
        .ok_or_else(|| SourceError::NoSha256 {
            path: path.to_path_buf(),
            run_id: run_id.clone(),
            subject: subject.clone(),
        })?;
    let bytes = std::fs::read(path).map_err(|source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let actual = sha256_hex(&bytes);
    if actual != expected {
        return Err(SourceError::DigestMismatch {
            path: path.to_path_buf(),
            run_id,
            expected,
            actual,
        });
    }
    let value = json::parse_bytes(&bytes).map_err(|e| e.with_path(path))?;
    let detected = detect_kind(path, Some(&value));
    Ok(SourcedFile {
        citation: InputCitation {
            path: path.display().to_string(),
            campaign: run.manifest.campaign.clone(),
            run_id,
            subject,
            sha256: actual,
            kind: detected.kind.as_str().to_string(),
            schema_version: detected.schema_version.to_string(),
        },
        path: path.to_path_buf(),
        value,
        detected,
    })
}

/// Why an SAE train run could not serve as the random_model gate's candidate or covered run.
#[derive(Debug, thiserror::Error)]
pub enum TrainRunError {
    #[error("{}: {source}", dir.display())]
    Unverified {
        dir: PathBuf,
        #[source]
        source: Box<RunVerifyError>,
    },
    #[error("{}: run {run_id} is a {kind} run; the random_model gate matches SAE train runs", dir.display())]
    NotTrain {
        dir: PathBuf,
        run_id: String,
        kind: String,
    },
    #[error("{}: train run {run_id} records no plugin or no config object", dir.display())]
    Incomplete { dir: PathBuf, run_id: String },
}

/// Reads the identity of the signed train run in `dir` (verified against `trust`): its trainer plugin (the
/// family), its config without `seed` and `resume_from` (the configuration seeds share), and its seed.
pub fn read_train_run(dir: &Path, trust: &TrustPolicy) -> Result<TrainRunIdentity, TrainRunError> {
    let run = verify::load_verified_run(dir, trust).map_err(|e| TrainRunError::Unverified {
        dir: dir.to_path_buf(),
        source: Box::new(e),
    })?;
    let m = &run.manifest;
    if m.kind != crate::manifest::RunKind::Train {
        return Err(TrainRunError::NotTrain {
            dir: dir.to_path_buf(),
            run_id: m.run_id.clone(),
            kind: m.kind.as_str().to_string(),
        });
    }
    let incomplete = || TrainRunError::Incomplete {
        dir: dir.to_path_buf(),
        run_id: m.run_id.clone(),
    };
    let family = m.plugin.as_ref().ok_or_else(incomplete)?.name.clone();
    let mut config = m
        .config
        .as_ref()
        .and_then(|c| c.as_object())
        .cloned()
        .ok_or_else(incomplete)?;
    let seed = config.remove("seed").and_then(|s| s.as_u64());
    config.remove("resume_from");
    Ok(TrainRunIdentity {
        campaign: m.campaign.clone(),
        run_id: m.run_id.clone(),
        family,
        configuration: serde_json::Value::Object(config),
        seed: seed.or_else(|| m.seeds.first().copied()),
        data_run: m
            .inputs
            .iter()
            .find_map(|i| i.run.as_ref())
            .map(|r| format!("{}/{}", r.campaign, r.run_id)),
    })
}
