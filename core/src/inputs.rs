//! Recording what a run read. An input that lies inside a verified run is recorded as that run's
//! output (campaign, run id, subject and the signed digest), which is the link `verify` follows
//! back through the provenance chain. Any other file is recorded by path and plain sha256.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::digest::{self, DigestMethod};
use crate::manifest::{InputRef, RunRef, RunStatus};
use crate::trust::TrustPolicy;
use crate::verify::{self, RunVerifyError, VerifiedRun};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("input {0} does not exist (give a file, a run directory or a run id)")]
    Missing(String),
    #[error("input {spec} is inside a run that fails verification: {source}")]
    RunFails {
        spec: String,
        #[source]
        source: Box<RunVerifyError>,
    },
    #[error("input {spec} is inside run {} but is not one of its signed outputs", run.display())]
    NotASubject { spec: String, run: PathBuf },
    #[error(
        "input {0} is a directory that is not a run; name its files one by one or attest it first"
    )]
    PlainDirectory(String),
    #[error("cannot hash input {spec}: {source}")]
    Io {
        spec: String,
        #[source]
        source: std::io::Error,
    },
    #[error("run {run_id} is not under {}", results.display())]
    RunNotFound { run_id: String, results: PathBuf },
    #[error(
        "input {spec} must be a file inside a verified run (strict mode takes signed inputs only; attest the file first or use --parity)"
    )]
    Unsigned { spec: String },
}

/// A verified run that did not end `ok` (it diverged, or was interrupted), offered to a decision that takes only
/// `ok` runs as candidates or evidence (select, gate). Such runs stay signed as the record of a failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "run {campaign}/{run_id} ({}) ended with status `{status}`{}; select and gate take only runs with status `ok` \
     as candidates or evidence ({})",
    dir.display(),
    detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default(),
    advice(*status)
)]
pub struct NotOkRun {
    pub campaign: String,
    pub run_id: String,
    pub dir: PathBuf,
    pub status: RunStatus,
    /// The manifest's `status_detail.message`, when it has one.
    pub detail: Option<String>,
}

fn advice(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Interrupted => {
            "continue it with `husai-audit train --resume RUN` and use the finished run"
        }
        RunStatus::Diverged => "train it again, for example with a lower learning rate",
        RunStatus::Ok => "",
    }
}

/// Refuses a run whose manifest status is not `ok` (docs/trainer-contract.md §8). Runs from before manifest 1.1
/// have no status and read as `ok`.
pub fn require_ok(run: &VerifiedRun) -> Result<(), NotOkRun> {
    let m = &run.manifest;
    if m.status == RunStatus::Ok {
        return Ok(());
    }
    Err(NotOkRun {
        campaign: m.campaign.clone(),
        run_id: m.run_id.clone(),
        dir: run.dir.clone(),
        status: m.status,
        detail: m
            .status_detail
            .as_ref()
            .and_then(|d| d.get("message"))
            .and_then(|m| m.as_str())
            .map(str::to_owned),
    })
}

/// Resolve one input given as a file, a run directory (every subject becomes an input) or a bare
/// run id looked up under `results`.
pub fn resolve(
    spec: &str,
    results: &Path,
    policy: &TrustPolicy,
) -> Result<Vec<InputRef>, InputError> {
    let path = PathBuf::from(spec);
    let path = if path.exists() {
        path
    } else if verify::looks_like_run_id(spec) {
        find_run(results, spec)?
    } else {
        return Err(InputError::Missing(spec.to_string()));
    };
    match verify::enclosing_run(&path) {
        Some((run_dir, rel)) => {
            let run =
                verify::load_verified_run(&run_dir, policy).map_err(|e| InputError::RunFails {
                    spec: spec.to_string(),
                    source: Box::new(e),
                })?;
            if rel.is_empty() {
                Ok(run
                    .subjects
                    .iter()
                    .map(|s| run_input(&run, &run_dir.join(&s.name), &s.name))
                    .collect())
            } else if run.subject(&rel).is_some() {
                Ok(vec![run_input(&run, &path, &rel)])
            } else {
                Err(InputError::NotASubject {
                    spec: spec.to_string(),
                    run: run_dir,
                })
            }
        }
        None if path.is_dir() => Err(InputError::PlainDirectory(spec.to_string())),
        None => {
            let d = digest::digest_file(&path, DigestMethod::Sha256).map_err(|source| {
                InputError::Io {
                    spec: spec.to_string(),
                    source,
                }
            })?;
            Ok(vec![InputRef {
                path: spec.to_string(),
                digest: BTreeMap::from([(d.algorithm, d.hex)]),
                run: None,
            }])
        }
    }
}

/// A file that must be a signed output of a verified run (the strict-mode rule for decisions):
/// returns the verified run and the recorded input.
pub fn resolve_signed_file(
    path: &Path,
    policy: &TrustPolicy,
) -> Result<(VerifiedRun, InputRef), InputError> {
    let spec = path.display().to_string();
    if !path.exists() {
        return Err(InputError::Missing(spec));
    }
    let Some((run_dir, rel)) = verify::enclosing_run(path).filter(|(_, rel)| !rel.is_empty())
    else {
        return Err(InputError::Unsigned { spec });
    };
    let run = verify::load_verified_run(&run_dir, policy).map_err(|e| InputError::RunFails {
        spec: spec.clone(),
        source: Box::new(e),
    })?;
    if run.subject(&rel).is_none() {
        return Err(InputError::NotASubject { spec, run: run_dir });
    }
    let input = run_input(&run, path, &rel);
    Ok((run, input))
}

/// An input that is a verified run's subject: its digest is the signed one, which
/// `load_verified_run` has just checked against the file.
fn run_input(run: &VerifiedRun, path: &Path, subject: &str) -> InputRef {
    let s = run
        .subject(subject)
        .expect("callers pass a subject of the run");
    InputRef {
        path: path.display().to_string(),
        digest: s.digest.clone(),
        run: Some(RunRef {
            campaign: run.manifest.campaign.clone(),
            run_id: run.manifest.run_id.clone(),
            subject: subject.to_string(),
        }),
    }
}

fn find_run(results: &Path, run_id: &str) -> Result<PathBuf, InputError> {
    let not_found = || InputError::RunNotFound {
        run_id: run_id.to_string(),
        results: results.to_path_buf(),
    };
    let campaigns = std::fs::read_dir(results).map_err(|_| not_found())?;
    campaigns
        .flatten()
        .map(|c| c.path().join(run_id))
        .find(|p| p.is_dir())
        .ok_or_else(not_found)
}
