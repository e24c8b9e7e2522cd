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
//! is missing, and a `.staging-<run_id>-<pid>` directory is an interrupted or in-flight run: an
//! error (it could hide any file), or a warning with [`VerifyOptions::allow_staging`]. A
//! `.staging-*` name the store does not make is an error always.
//!
//! Hardening (docs/threat-model.md): the envelope is read as a bounded regular file
//! ([`crate::untrusted`]: no symlink, FIFO or device, at most [`dsse::MAX_ENVELOPE_BYTES`]); all
//! JSON is strict (duplicate keys are errors); each signature is checked only against the key its
//! keyid names; the signing time (`finished_at`) must be a real date no later than the
//! verifier's clock plus [`CLOCK_SKEW_SECS`]; the signer's roles must allow the run's kind; a run
//! lives exactly at `<root>/<campaign>/<run_id>` and is counted once; a file rewritten while it
//! is hashed (even with its mtime restored) is reported, by its inode change time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::digest::{self, DigestMethod};
use crate::dsse::{self, Envelope, SignatureError};
use crate::manifest::{MANIFEST_SCHEMA_MAJOR, Manifest, schema_major};
use crate::schema;
use crate::statement::{Statement, Subject, check_subject_path};
use crate::store::{ENVELOPE_FILE, STAGING_PREFIX, parse_timestamp};
use crate::trust::{TrustContext, TrustError, TrustPolicy};
use crate::untrusted::{self, ReadError, path_text};

/// How far in the future (by the verifier's clock) a signing time may lie: 5 minutes.
pub const CLOCK_SKEW_SECS: i64 = 300;

fn ser_path<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path_text(p))
}

fn ser_opt_path<S: serde::Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_str(&path_text(p)),
        None => s.serialize_none(),
    }
}

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
    /// The run directory concerned, if any (in JSON: non-UTF-8 bytes as `\xNN`).
    #[serde(serialize_with = "ser_opt_path")]
    pub run: Option<PathBuf>,
    /// The file concerned, if any.
    #[serde(serialize_with = "ser_opt_path")]
    pub file: Option<PathBuf>,
    pub message: String,
}

/// One verified (or failed) run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    #[serde(serialize_with = "ser_path")]
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

    /// Rewrites every path in the report relative to `root` (the results root), so that a report
    /// reads the same whatever the verifier's working directory and however a run was reached
    /// (named on the command line, or followed as an ancestor). The root itself becomes `.`; a
    /// path outside the root stays absolute.
    pub fn make_paths_relative(&mut self, root: &Path) {
        let Some(root) = absolute_path(root) else {
            return;
        };
        let rel = |p: &Path| -> PathBuf {
            match absolute_path(p) {
                Some(abs) => match abs.strip_prefix(&root) {
                    Ok(r) if r.as_os_str().is_empty() => PathBuf::from("."),
                    Ok(r) => r.to_path_buf(),
                    Err(_) => abs,
                },
                None => p.to_path_buf(),
            }
        };
        for run in &mut self.runs {
            run.dir = rel(&run.dir);
        }
        for f in &mut self.findings {
            f.run = f.run.as_deref().map(rel);
            f.file = f.file.as_deref().map(rel);
        }
    }
}

/// `p` made absolute with its directory resolved (symlinks in the directories above it followed,
/// the last component kept as named, so a symlink finding still names the link).
fn absolute_path(p: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(p).ok()?;
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => Some(
            fs::canonicalize(parent)
                .map(|d| d.join(name))
                .unwrap_or(abs.clone()),
        ),
        _ => fs::canonicalize(&abs).ok().or(Some(abs)),
    }
}

/// The results root of a verify of `path`: `path` itself for a tree of campaigns, its parent for
/// a campaign directory, and `<root>` for a run directory `<root>/<campaign>/<run_id>` (or a file
/// inside one).
pub fn results_root_of(path: &Path) -> PathBuf {
    if let Some((run, _)) = enclosing_run(path)
        && let Some(root) = run.parent().and_then(Path::parent)
    {
        return root.to_path_buf();
    }
    let holds_runs = |d: &Path| {
        fs::read_dir(d).is_ok_and(|rd| rd.flatten().any(|e| e.path().join(ENVELOPE_FILE).is_file()))
    };
    if holds_runs(path)
        && let Some(parent) = path.parent()
    {
        return if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent.to_path_buf()
        };
    }
    path.to_path_buf()
}

/// Knobs for a verification.
pub struct VerifyOptions<'a> {
    /// Roles whose signatures are accepted; `None` accepts any role in the policy.
    pub accepted_roles: Option<Vec<String>>,
    /// Called with the number of bytes hashed, as hashing goes.
    pub on_bytes: &'a (dyn Fn(u64) + Sync),
    /// Called once, before hashing, with the total bytes the signed sizes announce.
    pub on_total: &'a dyn Fn(u64),
    /// Report `.staging-<run_id>-<pid>` directories as warnings instead of errors.
    pub allow_staging: bool,
    /// The verifier's clock; `None` reads the system clock once per verification.
    pub now: Option<time::OffsetDateTime>,
}

impl Default for VerifyOptions<'_> {
    fn default() -> Self {
        VerifyOptions {
            accepted_roles: None,
            on_bytes: &|_| {},
            on_total: &|_| {},
            allow_staging: false,
            now: None,
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
#[error("run {} failed verification:\n  {}", untrusted::display_path(dir), findings.iter().map(|f| f.message.clone()).collect::<Vec<_>>().join("\n  "))]
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
        v.discover(path, 0, &mut run_dirs);
    }
    // Announce the total before hashing so that a progress bar has a length.
    let total: u64 = run_dirs
        .par_iter()
        .filter_map(|d| peek_output_total(d))
        .sum();
    (v.opts.on_total)(total);
    // Checks that need no other run go in parallel, one run per task; the provenance chain is
    // then followed in discovery order, so findings come out in the same order every time.
    let keys: Vec<PathBuf> = run_dirs
        .par_iter()
        .map(|dir| fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()))
        .collect();
    let mut keyed: Vec<(PathBuf, PathBuf)> = Vec::with_capacity(run_dirs.len());
    let mut unique = HashSet::new();
    for (key, dir) in keys.iter().zip(&run_dirs) {
        if unique.insert(key.clone()) {
            keyed.push((key.clone(), dir.clone()));
        }
    }
    let (on_bytes, roles, allow_staging, now) = (
        v.opts.on_bytes,
        v.opts.accepted_roles.clone(),
        v.opts.allow_staging,
        v.now,
    );
    let local: Vec<(PathBuf, LocalResult)> = keyed
        .into_par_iter()
        .map(|(key, dir)| {
            let mut w = Verifier::new(
                policy,
                VerifyOptions {
                    accepted_roles: roles.clone(),
                    on_bytes,
                    on_total: &|_| {},
                    allow_staging,
                    now: Some(now),
                },
            );
            let outcome = w.check_local(&dir, &key);
            let result = LocalResult {
                findings: w.report.findings,
                bytes_hashed: w.report.bytes_hashed,
                outcome,
            };
            (key, result)
        })
        .collect();
    v.precomputed = local.into_iter().collect();
    for (dir, key) in run_dirs.iter().zip(keys) {
        v.verify_run_keyed(dir, key);
    }
    v.report
}

/// The total of the signed output sizes of a run, read without verifying (for progress only).
fn peek_output_total(dir: &Path) -> Option<u64> {
    let bytes =
        untrusted::read_regular_file(&dir.join(ENVELOPE_FILE), dsse::MAX_ENVELOPE_BYTES).ok()?;
    let env: Envelope = serde_json::from_slice(&bytes).ok()?;
    #[derive(serde::Deserialize)]
    struct Peek {
        predicate: PeekPredicate,
    }
    #[derive(serde::Deserialize)]
    struct PeekPredicate {
        output_sizes: BTreeMap<String, u64>,
    }
    let peek: Peek = serde_json::from_slice(&env.decode_payload().ok()?).ok()?;
    Some(peek.predicate.output_sizes.values().sum())
}

/// What [`Verifier::check_local`] found for one run.
struct LocalResult {
    findings: Vec<Finding>,
    bytes_hashed: u64,
    outcome: Option<VerifiedRun>,
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
    /// Where each (campaign, run id) was found, so that a copy elsewhere is caught.
    seen_ids: HashMap<(String, String), PathBuf>,
    /// Results of [`Verifier::check_local`] computed ahead (in parallel), by canonical run dir.
    precomputed: HashMap<PathBuf, LocalResult>,
    now: time::OffsetDateTime,
}

impl<'a> Verifier<'a> {
    fn new(policy: &'a TrustPolicy, opts: VerifyOptions<'a>) -> Self {
        Verifier {
            policy,
            now: opts.now.unwrap_or_else(time::OffsetDateTime::now_utc),
            opts,
            report: VerifyReport::default(),
            state: HashMap::new(),
            seen_ids: HashMap::new(),
            precomputed: HashMap::new(),
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
    /// `depth` counts directories below the path the caller named: a run may sit at depth 0 (the
    /// run itself), 1 (under its campaign directory) or 2 (under a results root), nowhere deeper.
    fn discover(&mut self, path: &Path, depth: usize, runs: &mut Vec<PathBuf>) {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.push(
                    Severity::Unreadable,
                    "unreadable",
                    None,
                    Some(path),
                    format!("cannot read {}: {e}", untrusted::display_path(path)),
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
                    untrusted::display_path(path)
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
                        untrusted::display_path(path)
                    ),
                ),
            }
            return;
        }
        // Staging first: a run killed after signing but before its rename has an envelope too,
        // and is still not a run.
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path
            .file_name()
            .is_some_and(|n| n.as_encoded_bytes().starts_with(STAGING_PREFIX.as_bytes()))
        {
            if is_store_staging_name(name) {
                let (severity, advice) = if self.opts.allow_staging {
                    (Severity::Warning, "allowed by --allow-staging")
                } else {
                    (
                        Severity::Error,
                        "it could hold any file; delete it once no husai process is using it, or pass --allow-staging while a run is in flight",
                    )
                };
                self.push(
                    severity,
                    "leftover_staging",
                    None,
                    Some(path),
                    format!(
                        "{} is the staging directory of an interrupted or still-running run; it is not a run and was not verified ({advice})",
                        untrusted::display_path(path)
                    ),
                );
            } else {
                self.push(
                    Severity::Error,
                    "bad_staging_name",
                    None,
                    Some(path),
                    format!(
                        "{} is named like a staging directory but not as the run store names them (.staging-<run_id>-<pid>); husai never made it, so remove it",
                        untrusted::display_path(path)
                    ),
                );
            }
            return;
        }
        if fs::symlink_metadata(path.join(ENVELOPE_FILE)).is_ok() {
            if depth > 2 {
                self.push(
                    Severity::Error,
                    "run_location",
                    Some(path),
                    None,
                    format!(
                        "run {} is nested {depth} directories below the verified path; runs live exactly at <results>/<campaign>/<run_id>, so this is a copy or a misplaced run (move or delete it)",
                        untrusted::display_path(path)
                    ),
                );
                return;
            }
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
                    untrusted::display_path(path)
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
                    format!("cannot list {}: {e}", untrusted::display_path(path)),
                );
                return;
            }
        };
        let mut children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        children.sort();
        for child in children {
            self.discover(&child, depth + 1, runs);
        }
    }

    fn verify_run(&mut self, dir: &Path) -> Option<VerifiedRun> {
        let key = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        self.verify_run_keyed(dir, key)
    }

    /// [`Verifier::verify_run`] with the canonical directory already known.
    fn verify_run_keyed(&mut self, dir: &Path, key: PathBuf) -> Option<VerifiedRun> {
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
                        untrusted::display_path(dir)
                    ),
                );
                return None;
            }
            None => {}
        }
        self.state.insert(key.clone(), RunState::InProgress);
        let before = self.report.findings.len();
        let outcome = self.check_run(dir, &key);
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
    fn check_run(&mut self, dir: &Path, canon: &Path) -> Option<VerifiedRun> {
        let outcome = match self.precomputed.remove(canon) {
            Some(local) => {
                self.report.findings.extend(local.findings);
                self.report.bytes_hashed += local.bytes_hashed;
                local.outcome
            }
            None => self.check_local(dir, canon),
        }?;
        let manifest = &outcome.manifest;
        // A run is one (campaign, run id): the same run found at a second place is a copy.
        let id = (manifest.campaign.clone(), manifest.run_id.clone());
        match self.seen_ids.get(&id) {
            Some(first) if first != canon => {
                let message = format!(
                    "run {}/{} appears twice, at {} and at {}; a run exists once (delete the copy)",
                    manifest.campaign,
                    manifest.run_id,
                    untrusted::display_path(first),
                    untrusted::display_path(canon)
                );
                self.push(Severity::Error, "duplicate_run", Some(dir), None, message);
            }
            Some(_) => {}
            None => {
                self.seen_ids.insert(id, canon.to_path_buf());
            }
        }
        // 7. The provenance chain.
        self.check_inputs(dir, canon, &outcome.manifest);
        Some(outcome)
    }

    /// Checks 1 to 6 of one run: everything that needs no other run, so that runs can be checked
    /// in parallel. `canon` is the run directory made canonical.
    fn check_local(&mut self, dir: &Path, canon: &Path) -> Option<VerifiedRun> {
        let env_path = dir.join(ENVELOPE_FILE);
        let run = Some(dir);
        let file = Some(env_path.as_path());

        // 1. The envelope: a bounded regular file, strict JSON, schema-valid.
        let bytes = match untrusted::read_regular_file(&env_path, dsse::MAX_ENVELOPE_BYTES) {
            Ok(b) => b,
            Err(e) => {
                let shown = untrusted::display_path(&env_path);
                let (severity, code, message) = match &e {
                    ReadError::NotFound { .. } => (
                        Severity::Error,
                        "missing_envelope",
                        format!("envelope {shown} is missing"),
                    ),
                    ReadError::Symlink { .. } => (
                        Severity::Error,
                        "symlink",
                        format!(
                            "envelope {shown} is a symbolic link; it must be a regular file (it was not followed)"
                        ),
                    ),
                    ReadError::NotRegular { what, .. } => (
                        Severity::Error,
                        "not_a_file",
                        format!("envelope {shown} is {what}, not a regular file; it was not read"),
                    ),
                    ReadError::TooLarge { size, cap, .. } => (
                        Severity::Error,
                        "envelope_too_large",
                        format!(
                            "envelope {shown} is {size} bytes, over the {cap}-byte limit for envelopes; it was not parsed"
                        ),
                    ),
                    ReadError::PermissionDenied { .. } => (
                        Severity::Unreadable,
                        "permission_denied",
                        format!(
                            "envelope {shown} cannot be read: permission denied (fix its mode or owner; nothing in the run was checked)"
                        ),
                    ),
                    ReadError::Io { source, .. } => (
                        Severity::Unreadable,
                        "unreadable",
                        format!("cannot read envelope {shown}: {source}"),
                    ),
                };
                self.push(severity, code, run, file, message);
                return None;
            }
        };
        let shown_env = untrusted::display_path(&env_path);
        let envelope = match decode_envelope(&bytes, &shown_env) {
            Ok(e) => e,
            Err((code, message)) => {
                self.push(Severity::Error, code, run, file, message);
                return None;
            }
        };

        // 2. The signatures, cryptographically: which policy keys signed these payload bytes.
        // The trust decision (revocation, window, roles, kind) waits for the authenticated
        // payload, which holds the signing time and the run kind.
        let authenticated = match dsse::authenticate(&envelope, self.policy) {
            Ok(a) => a,
            Err(e) => {
                self.push(
                    Severity::Error,
                    "signature",
                    run,
                    file,
                    format!("envelope {shown_env}: {e}"),
                );
                return None;
            }
        };

        // 3. The payload.
        let statement = match decode_statement(&authenticated.payload, &shown_env) {
            Ok(s) => s,
            Err((code, message)) => {
                self.push(Severity::Error, code, run, file, message);
                return None;
            }
        };
        let manifest = statement.predicate;
        let subjects = statement.subject;

        // 4. The trust decision, at the signing time the signed payload records. That time is
        // the signer's word, so it must be a real date and not lie in the verifier's future.
        let signed_at = match parse_timestamp(&manifest.finished_at) {
            Some(t) => t,
            None => {
                self.push(
                    Severity::Error,
                    "signing_time",
                    run,
                    file,
                    format!(
                        "manifest in {shown_env} has finished_at {:?}, which is not a valid RFC 3339 date-time (no such date or time); the signing time cannot be established, so no key can be trusted for it",
                        manifest.finished_at
                    ),
                );
                return None;
            }
        };
        if signed_at > self.now + time::Duration::seconds(CLOCK_SKEW_SECS) {
            self.push(
                Severity::Error,
                "signing_time",
                run,
                file,
                format!(
                    "manifest in {shown_env} records signing time (finished_at) {}, after this verifier's clock ({}) plus {CLOCK_SKEW_SECS} s of allowed skew; a postdated signing time could make a not-yet-valid key look valid",
                    manifest.finished_at,
                    crate::store::format_timestamp(self.now)
                ),
            );
            return None;
        }
        let ctx = TrustContext {
            signed_at,
            accepted_roles: self.opts.accepted_roles.clone(),
            kind: Some(manifest.kind),
        };
        let verified = match authenticated.trust(self.policy, &ctx) {
            Ok(v) => v,
            Err(e) => {
                let code = if is_kind_refusal(&e) {
                    "role_kind"
                } else {
                    "signature"
                };
                self.push(
                    Severity::Error,
                    code,
                    run,
                    file,
                    format!("envelope {shown_env}: {e}"),
                );
                return None;
            }
        };

        // 4. The envelope belongs to this directory.
        let dir_name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let campaign_name = canon
            .parent()
            .and_then(|d| d.file_name()?.to_str().map(str::to_string))
            .unwrap_or_default();
        if manifest.run_id != dir_name || manifest.campaign != campaign_name {
            self.push(
                Severity::Error,
                "envelope_mismatch",
                run,
                file,
                format!(
                    "envelope {} was signed for run {}/{}, not for this directory ({campaign_name}/{dir_name}): an envelope copied from another run",
                    untrusted::display_path(&env_path),
                    manifest.campaign,
                    manifest.run_id
                ),
            );
        }
        // The plugin that made the run, against plugins.lock when there is one.
        self.check_plugin_pin(dir, &env_path, &manifest);

        // 5. Subjects.
        self.check_subjects(dir, canon, &manifest, &subjects);

        // 6. Nothing unattested.
        let covered: HashSet<&str> = subjects.iter().map(|s| s.name.as_str()).collect();
        self.check_unattested(dir, &covered);

        Some(VerifiedRun {
            dir: dir.to_path_buf(),
            manifest,
            subjects,
            signer: verified.keyid,
        })
    }

    fn check_plugin_pin(&mut self, dir: &Path, env_path: &Path, manifest: &Manifest) {
        use crate::plugin::pin::PinStatus;
        let (Some(lock), Some(plugin)) = (self.policy.plugin_lock(), &manifest.plugin) else {
            return;
        };
        let (severity, detail) = match lock.status(
            &plugin.name,
            &plugin.version,
            &plugin.library_sha256,
        ) {
            PinStatus::Pinned => return,
            PinStatus::Mismatch { pinned_sha256 } => (
                Severity::Error,
                format!(
                    "the lock pins {} {} to sha256 {pinned_sha256}: another library made this run",
                    plugin.name, plugin.version
                ),
            ),
            PinStatus::Unlisted => (
                Severity::Warning,
                format!(
                    "the lock lists no {} {} (pin it with `husai-audit pin` if the library is trusted)",
                    plugin.name, plugin.version
                ),
            ),
        };
        let message = format!(
            "run {} was made by plugin {} {} with library sha256 {}, which {} does not pin: {detail}",
            untrusted::display_path(dir),
            plugin.name,
            plugin.version,
            plugin.library_sha256,
            untrusted::display_path(lock.path())
        );
        self.push(
            severity,
            "unpinned_plugin",
            Some(dir),
            Some(env_path),
            message,
        );
    }

    fn check_subjects(
        &mut self,
        dir: &Path,
        canon_dir: &Path,
        manifest: &Manifest,
        subjects: &[Subject],
    ) {
        let run = Some(dir);
        let mut seen = HashSet::new();
        let mut to_hash: Vec<(&Subject, PathBuf, Stamp)> = Vec::new();
        for s in subjects {
            let path = dir.join(&s.name);
            if let Err(e) = check_subject_path(&s.name) {
                self.push(
                    Severity::Error,
                    "subject_path",
                    run,
                    Some(&path),
                    format!("run {}: {e}", untrusted::display_path(dir)),
                );
                continue;
            }
            if !seen.insert(s.name.as_str()) {
                self.push(
                    Severity::Error,
                    "duplicate_subject",
                    run,
                    Some(&path),
                    format!(
                        "run {}: subject {} is listed twice",
                        untrusted::display_path(dir),
                        s.name
                    ),
                );
                continue;
            }
            // The legacy subject digest (sha256-sharded in place of sha256) is read only from runs written before
            // manifest schema 1.2; a 1.2 run carrying it was not written by husai and third-party tools cannot match it.
            let legacy_allowed = !schema_at_least(&manifest.schema_version, 1, 2);
            if s.digest_pair().is_none()
                || (s.sha256().is_none() && (s.legacy_sharded().is_none() || !legacy_allowed))
            {
                self.push(
                    Severity::Error,
                    "subject_digest",
                    run,
                    Some(&path),
                    format!(
                        "run {}: subject {} must carry exactly one digest, sha256 (or, in runs signed before manifest schema 1.2, sha256-sharded; this run's manifest is schema {})",
                        untrusted::display_path(dir),
                        s.name,
                        manifest.schema_version
                    ),
                );
                continue;
            }
            // Every directory on the way must be a real directory inside the run, and the file a
            // regular file: a symlink could point anywhere.
            let listed = match fs::symlink_metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.push(
                        Severity::Error,
                        "missing_output",
                        run,
                        Some(&path),
                        format!(
                            "output {} is signed but missing (deleted or renamed)",
                            untrusted::display_path(&path)
                        ),
                    );
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    self.push(
                        Severity::Unreadable,
                        "permission_denied",
                        run,
                        Some(&path),
                        format!(
                            "output {} cannot be checked: permission denied on it or a directory above it (it may be intact; fix the modes and verify again)",
                            untrusted::display_path(&path)
                        ),
                    );
                    continue;
                }
                Err(e) => {
                    self.push(
                        Severity::Unreadable,
                        "unreadable",
                        run,
                        Some(&path),
                        format!(
                            "output {} cannot be checked: {e}",
                            untrusted::display_path(&path)
                        ),
                    );
                    continue;
                }
                Ok(m) if m.file_type().is_symlink() => {
                    let target = fs::canonicalize(&path).ok();
                    let outside = target.as_ref().is_none_or(|t| !t.starts_with(canon_dir));
                    let message = if outside {
                        format!(
                            "output {} is a symbolic link leading out of the run directory (to {}); outputs must be regular files inside the run",
                            untrusted::display_path(&path),
                            target.map_or("a missing target".to_string(), |t| t
                                .display()
                                .to_string())
                        )
                    } else {
                        format!(
                            "output {} is a symbolic link; outputs must be regular files",
                            untrusted::display_path(&path)
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
                        format!(
                            "output {} is not a regular file",
                            untrusted::display_path(&path)
                        ),
                    );
                    continue;
                }
                Ok(m) => {
                    // A top-level subject's parent is the run itself (already canonical); only
                    // nested subjects need their directories resolved.
                    let inside = !s.name.contains('/')
                        || path
                            .parent()
                            .and_then(|p| fs::canonicalize(p).ok())
                            .is_some_and(|p| p.starts_with(canon_dir));
                    if !inside {
                        self.push(
                            Severity::Error,
                            "symlink",
                            run,
                            Some(&path),
                            format!(
                                "output {} sits under a symbolic link leading out of the run directory",
                                untrusted::display_path(&path)
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
                                    untrusted::display_path(&path),
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
                                    untrusted::display_path(dir),
                                    s.name
                                ),
                            );
                            continue;
                        }
                    }
                    m
                }
            };
            to_hash.push((s, path, Stamp::of(&listed)));
        }
        // A subject with a sharded digest (annotated, or the legacy form) is hashed by the run's
        // method, so one big file uses every core; any other by plain sha256.
        let by_method: Vec<bool> = to_hash
            .iter()
            .map(|(s, _, _)| {
                (s.sharded_annotation().is_some() && s.sha256().is_some())
                    || s.legacy_sharded().is_some()
            })
            .collect();
        let pick = |want: bool| -> Vec<PathBuf> {
            to_hash
                .iter()
                .zip(&by_method)
                .filter(|(_, m)| **m == want)
                .map(|((_, p, _), _)| p.clone())
                .collect()
        };
        let mut sharded =
            digest::digest_files(&pick(true), manifest.digest, self.opts.on_bytes).into_iter();
        let mut plain =
            digest::digest_files(&pick(false), DigestMethod::Sha256, self.opts.on_bytes)
                .into_iter();
        let digests: Vec<_> = by_method
            .iter()
            .map(|&m| {
                if m { sharded.next() } else { plain.next() }.expect("one digest per hashed file")
            })
            .collect();
        for (((s, path, before), got), method_used) in
            to_hash.into_iter().zip(digests).zip(by_method)
        {
            // What the hash must equal: a sharded digest when the file was over one shard (the
            // annotation, or the legacy subject digest), else the plain sha256.
            let want = |d: &digest::FileDigest| -> (&'static str, Option<&str>) {
                if d.algorithm == "sha256" {
                    ("sha256", s.sha256())
                } else {
                    (
                        "sha256-sharded",
                        s.sharded_annotation().or(s.legacy_sharded()),
                    )
                }
            };
            // The bytes hashed are the bytes signed only if nothing rewrote the file meanwhile;
            // an in-place rewrite can restore size and mtime, but not the inode change time.
            if got.is_ok() {
                let after = fs::symlink_metadata(&path).ok().map(|m| Stamp::of(&m));
                if after.as_ref() != Some(&before) {
                    self.push(
                        Severity::Error,
                        "changed_during_verify",
                        run,
                        Some(&path),
                        format!(
                            "output {} changed while it was being verified (its inode change time or identity differs from before hashing, even if size and mtime match); what was hashed may not be what is there now: verify again once nothing writes to the run",
                            untrusted::display_path(&path)
                        ),
                    );
                    continue;
                }
            }
            match got {
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => self.push(
                    Severity::Unreadable,
                    "permission_denied",
                    run,
                    Some(&path),
                    format!(
                        "output {} cannot be read: permission denied (it may be intact; fix its mode and verify again)",
                        untrusted::display_path(&path)
                    ),
                ),
                Err(e) => self.push(
                    Severity::Unreadable,
                    "unreadable",
                    run,
                    Some(&path),
                    format!("cannot hash output {}: {e}", untrusted::display_path(&path)),
                ),
                Ok(d) => {
                    self.report.bytes_hashed += d.size;
                    match want(&d) {
                        (alg, None) => self.push(
                            Severity::Error,
                            "digest_algorithm",
                            run,
                            Some(&path),
                            format!(
                                "output {} is a file of {} bytes, which the run's method {} digests as {alg}, but its subject carries no {alg} digest (signed: {})",
                                untrusted::display_path(&path),
                                d.size,
                                if method_used { method_name(manifest.digest) } else { "sha256".to_string() },
                                digest_display(&s.digest)
                            ),
                        ),
                        (alg, Some(want)) if d.hex != want => self.push(
                            Severity::Error,
                            "digest_mismatch",
                            run,
                            Some(&path),
                            format!(
                                "output {} does not match its signed {alg} digest (content changed after signing): signed {want}, found {}",
                                untrusted::display_path(&path),
                                d.hex
                            ),
                        ),
                        _ => {}
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
                        format!("cannot list {}: {e}", untrusted::display_path(&p)),
                    );
                    continue;
                }
            };
            if entry.file_type().is_dir() {
                continue;
            }
            let rel_path = entry
                .path()
                .strip_prefix(dir)
                .expect("walkdir stays under its root");
            // A name that is not UTF-8 is never covered, even if its lossy form (with U+FFFD)
            // equals a subject name: subjects name exact bytes.
            let Some(rel) = rel_path.to_str().map(|r| r.replace('\\', "/")) else {
                self.push(
                    Severity::Error,
                    "unattested_file",
                    Some(dir),
                    Some(entry.path()),
                    format!(
                        "{} is inside run {} but not covered by its signed statement (its name is not UTF-8, so no subject can name it)",
                        untrusted::display_path(entry.path()),
                        untrusted::display_path(dir)
                    ),
                );
                continue;
            };
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
                    untrusted::display_path(entry.path()),
                    untrusted::display_path(dir)
                ),
            );
        }
    }

    fn check_inputs(&mut self, dir: &Path, canon: &Path, manifest: &Manifest) {
        if manifest.inputs.iter().all(|i| i.run.is_none()) {
            return;
        }
        // The results root is two levels above a run: <root>/<campaign>/<run_id>.
        let Some(root) = canon.parent().and_then(Path::parent) else {
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
                        untrusted::display_path(dir),
                        input.path,
                        r.campaign,
                        r.run_id,
                        untrusted::display_path(root)
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
                        untrusted::display_path(dir),
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
                        untrusted::display_path(dir),
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
                        untrusted::display_path(dir),
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

/// Stage 1 on bytes already read: strict JSON, the envelope schema, decoding. Errors are a finding
/// code and message; `shown_env` names the file in messages.
pub(crate) fn decode_envelope(
    bytes: &[u8],
    shown_env: &str,
) -> Result<Envelope, (&'static str, String)> {
    let env_json = parse_json(bytes)
        .map_err(|why| ("malformed_envelope", format!("envelope {shown_env} {why}")))?;
    schema::validate("dsse-envelope.v1", &env_json)
        .map_err(|e| ("envelope_schema", format!("envelope {shown_env} {e}")))?;
    serde_json::from_value(env_json).map_err(|e| {
        (
            "envelope_schema",
            format!("envelope {shown_env} cannot be decoded: {e}"),
        )
    })
}

/// Stage 3 on authenticated payload bytes: strict JSON, the Statement schema, a supported
/// manifest major version, the manifest schema, decoding.
pub(crate) fn decode_statement(
    payload: &[u8],
    shown_env: &str,
) -> Result<Statement, (&'static str, String)> {
    let payload = parse_json(payload).map_err(|why| {
        (
            "malformed_payload",
            format!("signed payload of {shown_env} {why}"),
        )
    })?;
    schema::validate("statement.v1", &payload).map_err(|e| {
        (
            "statement_schema",
            format!("signed statement in {shown_env} {e}"),
        )
    })?;
    let predicate = &payload["predicate"];
    match predicate["schema_version"].as_str().map(schema_major) {
        Some(Some(MANIFEST_SCHEMA_MAJOR)) => {}
        Some(Some(major)) => {
            return Err((
                "unsupported_schema_version",
                format!(
                    "manifest in {shown_env} has schema_version {} (major {major}); this husai reads major {MANIFEST_SCHEMA_MAJOR} only: upgrade husai to verify it",
                    predicate["schema_version"]
                ),
            ));
        }
        _ => {
            return Err((
                "manifest_schema",
                format!(
                    "manifest in {shown_env} has no valid schema_version (expected \"1.<minor>\")"
                ),
            ));
        }
    }
    schema::validate("run-manifest.v1", predicate)
        .map_err(|e| ("manifest_schema", format!("manifest in {shown_env} {e}")))?;
    serde_json::from_value(payload).map_err(|e| {
        (
            "manifest_schema",
            format!("manifest in {shown_env} cannot be decoded: {e}"),
        )
    })
}

/// What identifies a file's state for the re-check after hashing: identity, size, mtime and the
/// inode change time (which `utimes` cannot set back).
#[derive(Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    ids: (u64, u64, i64, i64),
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt as _;
        Stamp {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            ids: (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()),
        }
    }
}

/// Does every reason in `e` say the key's roles may not sign this run kind?
fn is_kind_refusal(e: &SignatureError) -> bool {
    match e {
        SignatureError::Untrusted { source, .. } => {
            matches!(**source, TrustError::KindNotAllowed { .. })
        }
        SignatureError::NoneAcceptable { errors } => errors.iter().all(is_kind_refusal),
        _ => false,
    }
}

/// Is `name` exactly what [`crate::store::RunStore::stage`] names a staging directory:
/// `.staging-<run_id>-<pid>`?
pub fn is_store_staging_name(name: &str) -> bool {
    name.strip_prefix(STAGING_PREFIX)
        .and_then(|rest| rest.rsplit_once('-'))
        .is_some_and(|(id, pid)| {
            looks_like_run_id(id)
                && !pid.is_empty()
                && pid.len() <= 10
                && pid.bytes().all(|b| b.is_ascii_digit())
        })
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

/// Parse strict JSON (duplicate keys are errors), explaining the common ways a file fails to be
/// JSON.
fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("is empty (0 bytes of JSON)".to_string());
    }
    untrusted::parse_json(bytes).map_err(|e| {
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

/// Whether a `MAJOR.MINOR` schema version is at least `major.minor` (an unparsable minor counts as 0).
fn schema_at_least(version: &str, major: u64, minor: u64) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (have_major, have_minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (have_major, have_minor) >= (major, minor)
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
