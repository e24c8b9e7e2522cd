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

/// Config keys of a train run that say how it was executed, not what was trained, left out of the configuration
/// that seeds share (and so of the configuration hash `select` groups husai runs by, and of the random_model gate's
/// match): `resume_from` (which run it continued) and `device` (`auto`, `cpu` or `cuda`, issue #13: the same
/// maths on another backend; the manifest's environment records where it ran). `tf32` is not among them: TF32
/// products change the arithmetic, so runs with and without it are different configurations. The manifest's
/// `config_sha256` still digests the whole recorded config, these keys included.
pub const EXECUTION_KEYS: [&str; 2] = ["resume_from", "device"];

/// Turns a train run's recorded config into the configuration its seeds share (removing `seed` and
/// [`EXECUTION_KEYS`]) and returns the seed.
pub fn shared_configuration(
    config: &mut serde_json::Map<String, serde_json::Value>,
) -> Option<u64> {
    let seed = config.remove("seed").and_then(|s| s.as_u64());
    for key in EXECUTION_KEYS {
        config.remove(key);
    }
    seed
}

/// Reads the identity of the signed train run in `dir` (verified against `trust`): its trainer plugin (the
/// family), its config without `seed` and [`EXECUTION_KEYS`] (the configuration seeds share), and its seed.
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
    let seed = shared_configuration(&mut config);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn shared(v: Value) -> (String, Option<u64>) {
        let mut m = v.as_object().unwrap().clone();
        let seed = shared_configuration(&mut m);
        let hash = crate::select::json_config_fingerprint(&Value::Object(m), "test").unwrap();
        (hash, seed)
    }

    #[test]
    fn device_and_resume_from_stay_out_of_the_shared_configuration_and_tf32_does_not() {
        let base = json!({"d_sae": 64, "k": 4, "seed": 3, "tf32": false, "device": "auto", "resume_from": null});
        let (hash, seed) = shared(base.clone());
        assert_eq!(seed, Some(3));
        // Another backend, a resumed run, or a run recorded before the key existed: one configuration.
        for (key, value) in [
            ("device", json!("cpu")),
            ("device", json!("cuda")),
            ("resume_from", json!({"run_id": "x"})),
            ("seed", json!(4)),
        ] {
            let mut v = base.clone();
            v[key] = value;
            assert_eq!(shared(v).0, hash, "{key}");
        }
        let mut old = base.clone();
        old.as_object_mut().unwrap().remove("device");
        assert_eq!(shared(old).0, hash);
        // TF32 changes the arithmetic: another configuration.
        let mut v = base.clone();
        v["tf32"] = json!(true);
        assert_ne!(shared(v).0, hash);
    }
}
