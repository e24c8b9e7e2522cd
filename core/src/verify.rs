//! The verifier: re-check a results tree against its signatures, schemas, digests and
//! provenance chain, and report every failure it finds.
//!
//! For each run directory (one holding `husai.dsse.json`) it checks, in order:
//! 1. the envelope is present, readable, JSON and schema-valid;
//! 2. a signature verifies under a trusted, unrevoked, in-window key of the pinned policy
//!    (the signing time is the `finished_at` inside the signed payload);
//! 3. the payload is a schema-valid Statement whose manifest has a supported major version;
//! 4. the manifest names this directory (run id and campaign), so an envelope copied from
//!    another run is caught;
//! 5. every subject path is relative, normalised and inside the run, every subject is a regular
//!    file (not a symlink) with the signed size and digest;
//! 6. no file in the run directory is left unattested;
//! 7. every input that names another run resolves to a verified run whose subject has the same
//!    digest, recursively.
//!
//! Outside run directories, a results tree may hold only directories. A file there is
//! unattested, a directory named like a run id but lacking an envelope is a run whose envelope
//! is missing, and a `.staging-*` directory is an interrupted or in-flight run (a warning).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::digest::{self, DigestMethod};
use crate::dsse::{self, Envelope};
use crate::manifest::{MANIFEST_SCHEMA_MAJOR, Manifest, schema_major};
use crate::schema;
use crate::statement::{Statement, Subject, check_subject_path};
use crate::store::{ENVELOPE_FILE, STAGING_PREFIX, parse_timestamp};
use crate::trust::{TrustContext, TrustPolicy};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; does not fail verification.
    Warning,
    /// Verification fails (exit 1).
    Error,
    /// Something could not be read at all (exit 2).
    Unreadable,
}

/// One problem, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// A stable machine-readable code, e.g. `digest_mismatch`.
    pub code: &'static str,
    /// The run directory concerned, if any.
    pub run: Option<PathBuf>,
    /// The file concerned, if any.
    pub file: Option<PathBuf>,
    pub message: String,
}

/// One verified (or failed) run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub dir: PathBuf,
    pub run_id: Option<String>,
    pub campaign: Option<String>,
    pub kind: Option<String>,
    pub signer: Option<String>,
    pub subjects: usize,
    pub bytes: u64,
    pub ok: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub runs: Vec<RunSummary>,
    pub findings: Vec<Finding>,
    pub bytes_hashed: u64,
}

impl VerifyReport {
    /// No errors (warnings allowed).
    pub fn passed(&self) -> bool {
        self.findings
            .iter()
            .all(|f| f.severity == Severity::Warning)
    }

    /// Some input could not be read at all.
    pub fn has_unreadable(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Unreadable)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity != Severity::Warning)
    }
}

/// Knobs for a verification.
pub struct VerifyOptions<'a> {
    /// Roles whose signatures are accepted; `None` accepts any role in the policy.
    pub accepted_roles: Option<Vec<String>>,
    /// Called with the number of bytes hashed, as hashing goes.
    pub on_bytes: &'a (dyn Fn(u64) + Sync),
    /// Called once, before hashing, with the total bytes the signed sizes announce.
    pub on_total: &'a dyn Fn(u64),
}

impl Default for VerifyOptions<'_> {
    fn default() -> Self {
        VerifyOptions {
            accepted_roles: None,
            on_bytes: &|_| {},
            on_total: &|_| {},
        }
    }
}

/// A run that passed verification, with its decoded manifest.
#[derive(Debug, Clone)]
pub struct VerifiedRun {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub subjects: Vec<Subject>,
    pub signer: String,
}

impl VerifiedRun {
    pub fn subject(&self, name: &str) -> Option<&Subject> {
        self.subjects.iter().find(|s| s.name == name)
    }
}

/// Why a single run could not be loaded as verified.
#[derive(Debug, thiserror::Error)]
#[error("run {} failed verification:\n  {}", dir.display(), findings.iter().map(|f| f.message.clone()).collect::<Vec<_>>().join("\n  "))]
pub struct RunVerifyError {
    pub dir: PathBuf,
    pub findings: Vec<Finding>,
}

/// Is `name` shaped like a run id (`YYYYMMDDTHHMMSSZ-<16 hex>`)?
pub fn looks_like_run_id(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 33
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// The run directory that contains `path` (a file or directory inside a run, or the run itself),
/// and the path of `path` relative to it with '/' separators ("" for the run itself).
pub fn enclosing_run(path: &Path) -> Option<(PathBuf, String)> {
    let abs = fs::canonicalize(path).ok()?;
    let mut dir = if abs.is_dir() {
        abs.clone()
    } else {
        abs.parent()?.to_path_buf()
    };
    loop {
        if dir.join(ENVELOPE_FILE).is_file() {
            let rel = abs.strip_prefix(&dir).ok()?.to_str()?.replace('\\', "/");
            return Some((dir, rel));
        }
        dir = dir.parent()?.to_path_buf();
    }
}

/// Verify one run directory (and its ancestors) and return its manifest.
pub fn load_verified_run(dir: &Path, policy: &TrustPolicy) -> Result<VerifiedRun, RunVerifyError> {
    let mut v = Verifier::new(policy, VerifyOptions::default());
    let outcome = v.verify_run(dir);
    let errors: Vec<Finding> = v
        .report
        .findings
        .into_iter()
        .filter(|f| f.severity != Severity::Warning)
        .collect();
    match outcome {
        Some(run) if errors.is_empty() => Ok(run),
        _ => Err(RunVerifyError {
            dir: dir.to_path_buf(),
            findings: errors,
        }),
    }
}

/// Verify every run under `paths` (run directories or trees of them).
pub fn verify_paths(paths: &[PathBuf], policy: &TrustPolicy, opts: VerifyOptions) -> VerifyReport {
    let mut v = Verifier::new(policy, opts);
    let mut run_dirs = Vec::new();
    for path in paths {
        v.discover(path, &mut run_dirs);
    }
    // Announce the total before hashing so that a progress bar has a length.
    let total: u64 = run_dirs.iter().filter_map(|d| peek_output_total(d)).sum();
    (v.opts.on_total)(total);
    for dir in run_dirs {
        v.verify_run(&dir);
    }
    v.report
}

/// The total of the signed output sizes of a run, read without verifying (for progress only).
fn peek_output_total(dir: &Path) -> Option<u64> {
    let env: Envelope = serde_json::from_slice(&fs::read(dir.join(ENVELOPE_FILE)).ok()?).ok()?;
    let payload: Value = serde_json::from_slice(&env.decode_payload().ok()?).ok()?;
    Some(
        payload["predicate"]["output_sizes"]
            .as_object()?
            .values()
            .filter_map(Value::as_u64)
            .sum(),
    )
}

enum RunState {
    InProgress,
    Done(Option<Box<VerifiedRun>>),
}

struct Verifier<'a> {
    policy: &'a TrustPolicy,
    opts: VerifyOptions<'a>,
    report: VerifyReport,
    /// Verification outcome per canonical run directory, so that a run reached both directly and
    /// as an ancestor is checked once, and a cycle of inputs terminates.
    state: HashMap<PathBuf, RunState>,
}

impl<'a> Verifier<'a> {
    fn new(policy: &'a TrustPolicy, opts: VerifyOptions<'a>) -> Self {
        Verifier {
            policy,
            opts,
            report: VerifyReport::default(),
            state: HashMap::new(),
        }
    }

    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        run: Option<&Path>,
        file: Option<&Path>,
        message: String,
    ) {
        self.report.findings.push(Finding {
            severity,
            code,
            run: run.map(Path::to_path_buf),
            file: file.map(Path::to_path_buf),
            message,
        });
    }

    /// Walk `path`, collecting run directories and reporting anything else that is not allowed.
    fn discover(&mut self, path: &Path, runs: &mut Vec<PathBuf>) {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.push(
                    Severity::Unreadable,
                    "unreadable",
                    None,
                    Some(path),
                    format!("cannot read {}: {e}", path.display()),
                );
                return;
            }
        };
        if meta.file_type().is_symlink() {
            self.push(
                Severity::Error,
                "symlink_in_tree",
                None,
                Some(path),
                format!(
                    "{} is a symbolic link; results trees hold real files and directories only",
                    path.display()
                ),
            );
            return;
        }
        if meta.is_file() {
            match enclosing_run(path) {
                // A file argument inside a run: verify that run.
                Some((dir, _)) => runs.push(dir),
                None => self.push(
                    Severity::Error,
                    "unattested_file",
                    None,
                    Some(path),
                    format!(
                        "{} is not inside any run, so no signature covers it; attest it with `husai-audit attest` or remove it",
                        path.display()
                    ),
                ),
            }
            return;
        }
        // Staging first: a run killed after signing but before its rename has an envelope too,
        // and is still not a run.
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(STAGING_PREFIX) {
            self.push(
                Severity::Warning,
                "leftover_staging",
                None,
                Some(path),
                format!(
                    "{} is the staging directory of an interrupted or still-running run; it is not a run and was not verified (delete it once no husai process is using it)",
                    path.display()
                ),
            );
            return;
        }
        if fs::symlink_metadata(path.join(ENVELOPE_FILE)).is_ok() {
            runs.push(path.to_path_buf());
            return;
        }
        if looks_like_run_id(name) {
            self.push(
                Severity::Error,
                "missing_envelope",
                Some(path),
                Some(&path.join(ENVELOPE_FILE)),
                format!(
                    "run directory {} has no envelope {ENVELOPE_FILE}; nothing in it is signed",
                    path.display()
                ),
            );
            return;
        }
        let entries = match fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) => {
                self.push(
                    Severity::Unreadable,
                    "unreadable",
                    None,
                    Some(path),
                    format!("cannot list {}: {e}", path.display()),
                );
                return;
            }
        };
        let mut children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        children.sort();
        for child in children {
            self.discover(&child, runs);
        }
    }

    fn verify_run(&mut self, dir: &Path) -> Option<VerifiedRun> {
        let key = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        match self.state.get(&key) {
            Some(RunState::Done(outcome)) => return outcome.as_deref().cloned(),
            Some(RunState::InProgress) => {
                self.push(
                    Severity::Error,
                    "input_cycle",
                    Some(dir),
                    None,
                    format!(
                        "run {} is its own ancestor (a cycle of inputs)",
                        dir.display()
                    ),
                );
                return None;
            }
            None => {}
        }
        self.state.insert(key.clone(), RunState::InProgress);
        let before = self.report.findings.len();
        let outcome = self.check_run(dir);
        let failed = self.report.findings[before..]
            .iter()
            .any(|f| f.severity != Severity::Warning);
        let outcome = if failed { None } else { outcome };
        self.report.runs.push(RunSummary {
            dir: dir.to_path_buf(),
            run_id: outcome.as_ref().map(|r| r.manifest.run_id.clone()),
            campaign: outcome.as_ref().map(|r| r.manifest.campaign.clone()),
            kind: outcome.as_ref().map(|r| r.manifest.kind.to_string()),
            signer: outcome.as_ref().map(|r| r.signer.clone()),
            subjects: outcome.as_ref().map_or(0, |r| r.subjects.len()),
            bytes: outcome
                .as_ref()
                .map_or(0, |r| r.manifest.output_sizes.values().sum()),
            ok: outcome.is_some(),
        });
        self.state
            .insert(key, RunState::Done(outcome.clone().map(Box::new)));
        outcome
    }

    /// All checks of one run. Returns the run when it could be decoded and authenticated;
    /// `verify_run` turns that into a failure if any error was pushed on the way.
    fn check_run(&mut self, dir: &Path) -> Option<VerifiedRun> {
        let env_path = dir.join(ENVELOPE_FILE);
        let run = Some(dir);
        let file = Some(env_path.as_path());

        // 1. The envelope.
        let bytes = match fs::symlink_metadata(&env_path) {
            Ok(m) if m.file_type().is_symlink() => {
                self.push(
                    Severity::Error,
                    "symlink",
                    run,
                    file,
                    format!(
                        "envelope {} is a symbolic link; it must be a regular file",
                        env_path.display()
                    ),
                );
                return None;
            }
            Ok(_) => match fs::read(&env_path) {
                Ok(b) => b,
                Err(e) => {
                    self.push(
                        Severity::Unreadable,
                        "unreadable",
                        run,
                        file,
                        format!("cannot read envelope {}: {e}", env_path.display()),
                    );
                    return None;
                }
            },
            Err(e) => {
                self.push(
                    Severity::Error,
                    "missing_envelope",
                    run,
                    file,
                    format!("envelope {} is missing: {e}", env_path.display()),
                );
                return None;
            }
        };
        let env_json = match parse_json(&bytes) {
            Ok(v) => v,
            Err(why) => {
                self.push(
                    Severity::Error,
                    "malformed_envelope",
                    run,
                    file,
                    format!("envelope {} {why}", env_path.display()),
                );
                return None;
            }
        };
        if let Err(e) = schema::validate("dsse-envelope.v1", &env_json) {
            self.push(
                Severity::Error,
                "envelope_schema",
                run,
                file,
                format!("envelope {} {e}", env_path.display()),
            );
            return None;
        }
        let envelope: Envelope =
            serde_json::from_value(env_json).expect("schema-valid envelopes deserialise");

        // 2. The signature. The signing time comes from the payload, which the signature then
        // authenticates; if the payload cannot be read the time is unknown and "now" is used, and
        // the payload error is reported below.
        let untrusted_payload = envelope.decode_payload().ok();
        let untrusted_json = untrusted_payload
            .as_deref()
            .and_then(|p| serde_json::from_slice::<Value>(p).ok());
        let signed_at = untrusted_json
            .as_ref()
            .and_then(|v| v["predicate"]["finished_at"].as_str())
            .and_then(parse_timestamp)
            .unwrap_or_else(time::OffsetDateTime::now_utc);
        let ctx = TrustContext {
            signed_at,
            accepted_roles: self.opts.accepted_roles.clone(),
        };
        let verified = match dsse::verify_envelope(&envelope, self.policy, &ctx) {
            Ok(v) => v,
            Err(e) => {
                self.push(
                    Severity::Error,
                    "signature",
                    run,
                    file,
                    format!("envelope {}: {e}", env_path.display()),
                );
                return None;
            }
        };

        // 3. The payload.
        let payload = match parse_json(&verified.payload) {
            Ok(v) => v,
            Err(why) => {
                self.push(
                    Severity::Error,
                    "malformed_payload",
                    run,
                    file,
                    format!("signed payload of {} {why}", env_path.display()),
                );
                return None;
            }
        };
        if let Err(e) = schema::validate("statement.v1", &payload) {
            self.push(
                Severity::Error,
                "statement_schema",
                run,
                file,
                format!("signed statement in {} {e}", env_path.display()),
            );
            return None;
        }
        let predicate = &payload["predicate"];
        match predicate["schema_version"].as_str().map(schema_major) {
            Some(Some(MANIFEST_SCHEMA_MAJOR)) => {}
            Some(Some(major)) => {
                self.push(
                    Severity::Error,
                    "unsupported_schema_version",
                    run,
                    file,
                    format!(
                        "manifest in {} has schema_version {} (major {major}); this husai reads major {MANIFEST_SCHEMA_MAJOR} only: upgrade husai to verify it",
                        env_path.display(),
                        predicate["schema_version"]
                    ),
                );
                return None;
            }
            _ => {
                self.push(
                    Severity::Error,
                    "manifest_schema",
                    run,
                    file,
                    format!(
                        "manifest in {} has no valid schema_version (expected \"1.<minor>\")",
                        env_path.display()
                    ),
                );
                return None;
            }
        }
        if let Err(e) = schema::validate("run-manifest.v1", predicate) {
            self.push(
                Severity::Error,
                "manifest_schema",
                run,
                file,
                format!("manifest in {} {e}", env_path.display()),
            );
            return None;
        }
        let statement: Statement = match serde_json::from_value(payload) {
            Ok(s) => s,
            Err(e) => {
                self.push(
                    Severity::Error,
                    "manifest_schema",
                    run,
                    file,
                    format!("manifest in {} cannot be decoded: {e}", env_path.display()),
                );
                return None;
            }
        };
        let manifest = statement.predicate;
        let subjects = statement.subject;

        // 4. The envelope belongs to this directory.
        let dir_name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let campaign_name = fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.parent()?.file_name()?.to_str().map(str::to_string))
            .unwrap_or_default();
        if manifest.run_id != dir_name || manifest.campaign != campaign_name {
            self.push(
                Severity::Error,
                "envelope_mismatch",
                run,
                file,
                format!(
                    "envelope {} was signed for run {}/{}, not for this directory ({campaign_name}/{dir_name}): an envelope copied from another run",
                    env_path.display(),
                    manifest.campaign,
                    manifest.run_id
                ),
            );
        }

        // 5. Subjects.
        self.check_subjects(dir, &manifest, &subjects);

        // 6. Nothing unattested.
        let covered: HashSet<&str> = subjects.iter().map(|s| s.name.as_str()).collect();
        self.check_unattested(dir, &covered);

        // 7. The provenance chain.
        self.check_inputs(dir, &manifest);

        Some(VerifiedRun {
            dir: dir.to_path_buf(),
            manifest,
            subjects,
            signer: verified.keyid,
        })
    }

    fn check_subjects(&mut self, dir: &Path, manifest: &Manifest, subjects: &[Subject]) {
        let run = Some(dir);
        let canon_dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut seen = HashSet::new();
        let mut to_hash: Vec<(&Subject, PathBuf)> = Vec::new();
        for s in subjects {
            let path = dir.join(&s.name);
            if let Err(e) = check_subject_path(&s.name) {
                self.push(
                    Severity::Error,
                    "subject_path",
                    run,
                    Some(&path),
                    format!("run {}: {e}", dir.display()),
                );
                continue;
            }
            if !seen.insert(s.name.as_str()) {
                self.push(
                    Severity::Error,
                    "duplicate_subject",
                    run,
                    Some(&path),
                    format!("run {}: subject {} is listed twice", dir.display(), s.name),
                );
                continue;
            }
            if s.digest_pair().is_none() {
                self.push(
                    Severity::Error,
                    "subject_digest",
                    run,
                    Some(&path),
                    format!(
                        "run {}: subject {} must carry exactly one digest",
                        dir.display(),
                        s.name
                    ),
                );
                continue;
            }
            // Every directory on the way must be a real directory inside the run, and the file a
            // regular file: a symlink could point anywhere.
            match fs::symlink_metadata(&path) {
                Err(_) => {
                    self.push(
                        Severity::Error,
                        "missing_output",
                        run,
                        Some(&path),
                        format!(
                            "output {} is signed but missing (deleted or renamed)",
                            path.display()
                        ),
                    );
                    continue;
                }
                Ok(m) if m.file_type().is_symlink() => {
                    let target = fs::canonicalize(&path).ok();
                    let outside = target.as_ref().is_none_or(|t| !t.starts_with(&canon_dir));
                    let message = if outside {
                        format!(
                            "output {} is a symbolic link leading out of the run directory (to {}); outputs must be regular files inside the run",
                            path.display(),
                            target.map_or("a missing target".to_string(), |t| t
                                .display()
                                .to_string())
                        )
                    } else {
                        format!(
                            "output {} is a symbolic link; outputs must be regular files",
                            path.display()
                        )
                    };
                    self.push(Severity::Error, "symlink", run, Some(&path), message);
                    continue;
                }
                Ok(m) if !m.is_file() => {
                    self.push(
                        Severity::Error,
                        "not_a_file",
                        run,
                        Some(&path),
                        format!("output {} is not a regular file", path.display()),
                    );
                    continue;
                }
                Ok(m) => {
                    let real_parent = path.parent().and_then(|p| fs::canonicalize(p).ok());
                    if real_parent.is_none_or(|p| !p.starts_with(&canon_dir)) {
                        self.push(
                            Severity::Error,
                            "symlink",
                            run,
                            Some(&path),
                            format!(
                                "output {} sits under a symbolic link leading out of the run directory",
                                path.display()
                            ),
                        );
                        continue;
                    }
                    match manifest.output_sizes.get(&s.name) {
                        Some(&signed) if signed != m.len() => {
                            let how = if m.len() < signed {
                                "truncated"
                            } else {
                                "grown"
                            };
                            self.push(
                                Severity::Error,
                                "size_mismatch",
                                run,
                                Some(&path),
                                format!(
                                    "output {} is {} bytes but was signed at {signed} bytes ({how})",
                                    path.display(),
                                    m.len()
                                ),
                            );
                            continue;
                        }
                        Some(_) => {}
                        None => {
                            self.push(
                                Severity::Error,
                                "manifest_schema",
                                run,
                                Some(&path),
                                format!(
                                    "manifest of run {} has no signed size for subject {}",
                                    dir.display(),
                                    s.name
                                ),
                            );
                            continue;
                        }
                    }
                }
            }
            to_hash.push((s, path));
        }
        let paths: Vec<PathBuf> = to_hash.iter().map(|(_, p)| p.clone()).collect();
        let digests = digest::digest_files(&paths, manifest.digest, self.opts.on_bytes);
        for ((s, path), got) in to_hash.into_iter().zip(digests) {
            let (alg, want) = s.digest_pair().expect("checked above");
            match got {
                Err(e) => self.push(
                    Severity::Unreadable,
                    "unreadable",
                    run,
                    Some(&path),
                    format!("cannot hash output {}: {e}", path.display()),
                ),
                Ok(d) => {
                    self.report.bytes_hashed += d.size;
                    if d.algorithm != alg {
                        self.push(
                            Severity::Error,
                            "digest_algorithm",
                            run,
                            Some(&path),
                            format!(
                                "output {} is signed with digest {alg}, but the run's method {} gives {} for a file of {} bytes",
                                path.display(),
                                method_name(manifest.digest),
                                d.algorithm,
                                d.size
                            ),
                        );
                    } else if d.hex != want {
                        self.push(
                            Severity::Error,
                            "digest_mismatch",
                            run,
                            Some(&path),
                            format!(
                                "output {} does not match its signed {alg} digest (content changed after signing): signed {want}, found {}",
                                path.display(),
                                d.hex
                            ),
                        );
                    }
                }
            }
        }
    }

    fn check_unattested(&mut self, dir: &Path, covered: &HashSet<&str>) {
        for entry in walkdir::WalkDir::new(dir).follow_links(false).min_depth(1) {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let p = e.path().unwrap_or(dir).to_path_buf();
                    self.push(
                        Severity::Unreadable,
                        "unreadable",
                        Some(dir),
                        Some(&p),
                        format!("cannot list {}: {e}", p.display()),
                    );
                    continue;
                }
            };
            if entry.file_type().is_dir() {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(dir)
                .expect("walkdir stays under its root")
                .to_string_lossy()
                .replace('\\', "/");
            if rel == ENVELOPE_FILE || covered.contains(rel.as_str()) {
                continue;
            }
            self.push(
                Severity::Error,
                "unattested_file",
                Some(dir),
                Some(entry.path()),
                format!(
                    "{} is inside run {} but not covered by its signed statement (an extra file)",
                    entry.path().display(),
                    dir.display()
                ),
            );
        }
    }

    fn check_inputs(&mut self, dir: &Path, manifest: &Manifest) {
        // The results root is two levels above a run: <root>/<campaign>/<run_id>.
        let Some(root) = fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.parent()?.parent().map(Path::to_path_buf))
        else {
            return;
        };
        for input in &manifest.inputs {
            let Some(r) = &input.run else { continue };
            let ancestor = root.join(&r.campaign).join(&r.run_id);
            if !ancestor.join(ENVELOPE_FILE).exists() {
                self.push(
                    Severity::Error,
                    "missing_ancestor",
                    Some(dir),
                    Some(&ancestor),
                    format!(
                        "run {} used input {} from run {}/{}, which is not present under {}",
                        dir.display(),
                        input.path,
                        r.campaign,
                        r.run_id,
                        root.display()
                    ),
                );
                continue;
            }
            let Some(verified) = self.verify_run(&ancestor) else {
                self.push(
                    Severity::Error,
                    "ancestor_failed",
                    Some(dir),
                    Some(&ancestor),
                    format!(
                        "run {} used input {} from run {}/{}, which fails verification",
                        dir.display(),
                        input.path,
                        r.campaign,
                        r.run_id
                    ),
                );
                continue;
            };
            match verified.subject(&r.subject) {
                None => self.push(
                    Severity::Error,
                    "ancestor_mismatch",
                    Some(dir),
                    Some(&ancestor.join(&r.subject)),
                    format!(
                        "run {} used {} from run {}/{}, but that run has no output {}",
                        dir.display(),
                        input.path,
                        r.campaign,
                        r.run_id,
                        r.subject
                    ),
                ),
                Some(s) if s.digest != input.digest => self.push(
                    Severity::Error,
                    "ancestor_mismatch",
                    Some(dir),
                    Some(&ancestor.join(&r.subject)),
                    format!(
                        "run {} used {} with digest {}, but run {}/{} signed {} as {}",
                        dir.display(),
                        input.path,
                        digest_display(&input.digest),
                        r.campaign,
                        r.run_id,
                        r.subject,
                        digest_display(&s.digest)
                    ),
                ),
                Some(_) => {}
            }
        }
    }
}

fn method_name(m: DigestMethod) -> String {
    match m {
        DigestMethod::Sha256 => "sha256".to_string(),
        DigestMethod::Sha256Sharded { shard_size } => format!("sha256-sharded({shard_size})"),
    }
}

fn digest_display(d: &BTreeMap<String, String>) -> String {
    d.iter()
        .map(|(a, h)| format!("{a}:{h}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parse strict JSON, explaining the common ways a file fails to be JSON.
fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("is empty (0 bytes of JSON)".to_string());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let text = String::from_utf8_lossy(bytes);
        let hint = if text.contains("NaN") || text.contains("Infinity") {
            " (it contains a bare NaN/Infinity token, which is not JSON)"
        } else {
            ""
        };
        format!(
            "is not valid JSON at line {}, column {}: {e}{hint}",
            e.line(),
            e.column()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_shape() {
        assert!(looks_like_run_id("20261128T052501Z-9f3a1c2b7d4e6a80"));
        assert!(!looks_like_run_id("20261128T052501Z-9f3a1c2b7d4e6a8"));
        assert!(!looks_like_run_id("20261128T052501Z-9F3A1C2B7D4E6A80"));
        assert!(!looks_like_run_id("examples"));
    }

    #[test]
    fn parse_json_explains_failures() {
        assert_eq!(parse_json(b"").unwrap_err(), "is empty (0 bytes of JSON)");
        assert!(
            parse_json(b"{\"a\": NaN}")
                .unwrap_err()
                .contains("NaN/Infinity")
        );
        assert!(parse_json(b"{\"a\": ").unwrap_err().contains("line 1"));
        assert!(parse_json(b"{\"a\": 1}").is_ok());
    }
}
