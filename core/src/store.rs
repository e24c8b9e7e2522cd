//! The run store: the only way outputs become a signed run under `results/`.
//!
//! A producer asks for a [`StagedRun`], writes its outputs into the staging directory, and hands
//! the store a [`ManifestDraft`]. The store then hashes every output, builds and validates the
//! manifest, signs the in-toto Statement into a DSSE envelope, flushes everything to disk and
//! renames the staging directory into `results/<campaign>/<run_id>/` in one step.
//!
//! Crash safety rests on that last rename. Until it happens the outputs live in
//! `results/<campaign>/.staging-<run_id>-<pid>/`, a name verify never mistakes for a run (it
//! reports it as leftover staging). A process killed at any point before the rename leaves at
//! most such a directory; [`RunStore::stage`] removes leftovers whose owning process is gone. A
//! staged run dropped without commit (an error, a failed plugin) removes its directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::canonical;
use crate::digest::{self, DigestMethod};
use crate::dsse;
use crate::keys::SigningKey;
use crate::manifest::{MANIFEST_SCHEMA_VERSION, Manifest, ManifestDraft, RunKind};
use crate::schema::{self, SchemaError};
use crate::statement::{Statement, Subject};

/// The envelope file at the top of every run directory.
pub const ENVELOPE_FILE: &str = "husai.dsse.json";
/// Prefix of staging directories inside a campaign directory.
pub const STAGING_PREFIX: &str = ".staging-";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "campaign name {0:?} is not allowed: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    )]
    BadCampaign(String),
    #[error(
        "output {path} is {what}; a run holds regular files only (copy the file into the output directory instead)"
    )]
    NotARegularFile { path: PathBuf, what: &'static str },
    #[error("output {0} uses the reserved name {ENVELOPE_FILE}; rename it")]
    ReservedName(PathBuf),
    #[error("output path {} is not valid UTF-8; subject names must be UTF-8 (rename the file)", crate::untrusted::display_path(.0))]
    NonUtf8Path(PathBuf),
    #[error(
        "output {} has a name verify would reject ({reason}); rename the file before attesting it",
        crate::untrusted::display_path(path)
    )]
    BadOutputName { path: PathBuf, reason: String },
    #[error("the run has no outputs in {0}; nothing to attest")]
    NoOutputs(PathBuf),
    #[error("the manifest {0}")]
    Schema(#[from] SchemaError),
    #[error("the config cannot be hashed: {0}")]
    Canonical(#[from] canonical::CanonicalError),
    #[error("run {0} already exists; runs are never overwritten")]
    Exists(PathBuf),
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> StoreError + 'p {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Check a campaign name against the same rule as the manifest schema.
pub fn check_campaign(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadCampaign(name.to_string()))
    }
}

/// A new run id: UTC time to the second, then 64 random bits, e.g.
/// `20261128T052501Z-9f3a1c2b7d4e6a80`. Sorting by id sorts by start time; two runs started in
/// the same second collide with probability 2^-64 per pair, and the rename refuses to overwrite
/// even then.
pub fn new_run_id(now: OffsetDateTime) -> String {
    use rand_core::RngCore;
    let mut rnd = [0u8; 8];
    rand_core::OsRng.fill_bytes(&mut rnd);
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = now
        .to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .expect("a UTC time always formats");
    format!("{stamp}-{}", hex::encode(rnd))
}

/// RFC 3339 UTC with millisecond precision, the form every manifest timestamp takes.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .expect("a UTC time always formats")
}

/// Parse a manifest timestamp.
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// A results tree: `<root>/<campaign>/<run_id>/`.
#[derive(Debug, Clone)]
pub struct RunStore {
    root: PathBuf,
    digest_method: DigestMethod,
}

impl RunStore {
    /// Open (and create if needed) the results tree at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<RunStore, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_err("create results directory", &root))?;
        Ok(RunStore {
            root,
            digest_method: DigestMethod::Sha256Sharded {
                shard_size: digest::DEFAULT_SHARD_SIZE,
            },
        })
    }

    /// Use another digest method for runs committed through this store.
    pub fn with_digest_method(mut self, method: DigestMethod) -> RunStore {
        self.digest_method = method;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory a committed run lives in.
    pub fn run_dir(&self, campaign: &str, run_id: &str) -> PathBuf {
        self.root.join(campaign).join(run_id)
    }

    /// Start a run: create its staging directory and clear leftovers of dead processes.
    pub fn stage(&self, campaign: &str, kind: RunKind) -> Result<StagedRun, StoreError> {
        self.stage_started_at(campaign, kind, OffsetDateTime::now_utc())
    }

    /// [`RunStore::stage`] for work that began at `started` (an attested command that has already
    /// run): the run id and the manifest's `started_at` are that time, not the staging time.
    pub fn stage_started_at(
        &self,
        campaign: &str,
        kind: RunKind,
        started: OffsetDateTime,
    ) -> Result<StagedRun, StoreError> {
        check_campaign(campaign)?;
        let campaign_dir = self.root.join(campaign);
        fs::create_dir_all(&campaign_dir)
            .map_err(io_err("create campaign directory", &campaign_dir))?;
        remove_dead_staging(&campaign_dir);
        let run_id = new_run_id(started);
        let dir = campaign_dir.join(format!("{STAGING_PREFIX}{run_id}-{}", std::process::id()));
        fs::create_dir(&dir).map_err(io_err("create staging directory", &dir))?;
        Ok(StagedRun {
            root: self.root.clone(),
            campaign: campaign.to_string(),
            kind,
            run_id,
            dir,
            started,
            digest_method: self.digest_method,
            done: false,
        })
    }
}

/// Remove staging directories whose owning process no longer exists. Best effort: a directory
/// that cannot be removed is left for verify to report.
fn remove_dead_staging(campaign_dir: &Path) {
    let Ok(entries) = fs::read_dir(campaign_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(pid) = staging_owner_pid(name)
            && !process_alive(pid)
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The pid encoded in a staging directory name, if `name` is one.
pub fn staging_owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(STAGING_PREFIX)?;
    rest.rsplit_once('-')?.1.parse().ok()
}

fn process_alive(pid: u32) -> bool {
    // /proc exists on Linux, the only platform husai stages runs on; elsewhere assume alive and
    // leave the directory for verify to report.
    if !Path::new("/proc/self").exists() {
        return true;
    }
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A run being produced. Outputs go into [`StagedRun::dir`]. Dropping it without
/// [`StagedRun::commit`] deletes the staging directory.
#[derive(Debug)]
pub struct StagedRun {
    root: PathBuf,
    campaign: String,
    kind: RunKind,
    run_id: String,
    dir: PathBuf,
    started: OffsetDateTime,
    digest_method: DigestMethod,
    done: bool,
}

/// A run that is now signed and in place.
#[derive(Debug, Clone)]
pub struct CommittedRun {
    pub run_id: String,
    pub campaign: String,
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub subjects: Vec<Subject>,
}

impl StagedRun {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn campaign(&self) -> &str {
        &self.campaign
    }

    pub fn kind(&self) -> RunKind {
        self.kind
    }

    /// Hash, describe, sign and publish the run. `on_bytes` is told how many bytes were hashed,
    /// as hashing goes, for a progress bar.
    pub fn commit(
        mut self,
        draft: ManifestDraft,
        key: &SigningKey,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<CommittedRun, StoreError> {
        let outputs = list_outputs(&self.dir)?;
        if outputs.is_empty() {
            return Err(StoreError::NoOutputs(self.dir.clone()));
        }
        let paths: Vec<PathBuf> = outputs.iter().map(|(_, p)| p.clone()).collect();
        let (subjects, output_sizes) =
            digest_subjects(&outputs, &paths, self.digest_method, on_bytes)?;

        let config_sha256 = draft
            .config
            .as_ref()
            .map(canonical::canonical_sha256_hex)
            .transpose()?;
        let manifest = Manifest {
            schema_version: MANIFEST_SCHEMA_VERSION.to_string(),
            run_id: self.run_id.clone(),
            kind: self.kind,
            campaign: self.campaign.clone(),
            started_at: format_timestamp(self.started),
            finished_at: format_timestamp(OffsetDateTime::now_utc()),
            argv: draft.argv,
            tool: draft.tool,
            plugin: draft.plugin,
            config: draft.config,
            config_sha256,
            seeds: draft.seeds,
            inputs: draft.inputs,
            dataset: draft.dataset,
            digest: self.digest_method,
            output_sizes,
            environment: draft.environment,
            command: draft.command,
            extra: draft.extra,
            status: draft.status,
            status_detail: draft.status_detail,
        };
        let statement = Statement::new(subjects, manifest);
        let statement_json =
            serde_json::to_value(&statement).expect("statement types always serialise");
        schema::validate("statement.v1", &statement_json)?;
        schema::validate("run-manifest.v1", &statement_json["predicate"])?;
        let payload = canonical::to_canonical_vec(&statement_json)?;
        let envelope = dsse::sign_envelope(dsse::INTOTO_PAYLOAD_TYPE, &payload, key);

        let envelope_path = self.dir.join(ENVELOPE_FILE);
        let mut text =
            serde_json::to_vec_pretty(&envelope).expect("envelope types always serialise");
        text.push(b'\n');
        write_synced(&envelope_path, &text)?;
        // Make the outputs durable before the rename publishes them.
        for (_, path) in &outputs {
            sync_path(path)?;
        }
        sync_dirs_under(&self.dir)?;

        let target = self.root.join(&self.campaign).join(&self.run_id);
        if target.exists() {
            return Err(StoreError::Exists(target));
        }
        fs::rename(&self.dir, &target).map_err(io_err("publish run", &target))?;
        self.done = true;
        sync_path(&self.root.join(&self.campaign))?;

        Ok(CommittedRun {
            run_id: self.run_id.clone(),
            campaign: self.campaign.clone(),
            dir: target,
            subjects: statement.subject,
            manifest: statement.predicate,
        })
    }
}

/// Subjects and sizes for the outputs: plain sha256 for every file and, under a sharded method, the
/// sharded digest of each file over one shard (statement module docs). A big file is read twice:
/// first by the sharded pass (every core on one file), then by the plain pass (one core per file).
fn digest_subjects(
    outputs: &[(String, PathBuf)],
    paths: &[PathBuf],
    method: DigestMethod,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<(Vec<Subject>, BTreeMap<String, u64>), StoreError> {
    let first = digest::digest_files(paths, method, on_bytes);
    let mut sharded: Vec<Option<String>> = Vec::with_capacity(outputs.len());
    let mut plain: Vec<Option<String>> = Vec::with_capacity(outputs.len());
    let mut sizes = Vec::with_capacity(outputs.len());
    for ((_, path), d) in outputs.iter().zip(first) {
        let d = d.map_err(io_err("hash output", path))?;
        sizes.push(d.size);
        if d.algorithm == "sha256" {
            plain.push(Some(d.hex));
            sharded.push(None);
        } else {
            plain.push(None);
            sharded.push(Some(d.hex));
        }
    }
    let big: Vec<PathBuf> = paths
        .iter()
        .zip(&plain)
        .filter(|(_, p)| p.is_none())
        .map(|(path, _)| path.clone())
        .collect();
    let mut big_plain = digest::digest_files(&big, DigestMethod::Sha256, &|_| {}).into_iter();
    let mut subjects = Vec::with_capacity(outputs.len());
    let mut output_sizes = BTreeMap::new();
    for (i, (name, path)) in outputs.iter().enumerate() {
        let sha256 = match plain[i].take() {
            Some(h) => h,
            None => {
                let d = big_plain
                    .next()
                    .expect("one plain digest per big file")
                    .map_err(io_err("hash output", path))?;
                if d.size != sizes[i] {
                    return Err(StoreError::Io {
                        op: "hash output",
                        path: path.clone(),
                        source: std::io::Error::other("the file changed size while it was hashed"),
                    });
                }
                d.hex
            }
        };
        output_sizes.insert(name.clone(), sizes[i]);
        subjects.push(Subject::new(name.clone(), sha256, sharded[i].take()));
    }
    Ok((subjects, output_sizes))
}

impl Drop for StagedRun {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Every output file under `dir` as (subject name, path), sorted by name. Symlinks and special
/// files are refused: a run holds what it says it holds, not a pointer to something else.
fn list_outputs(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(false).min_depth(1) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            StoreError::Io {
                op: "list outputs",
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
                path,
            }
        })?;
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        if ft.is_symlink() {
            return Err(StoreError::NotARegularFile {
                path: entry.path().to_path_buf(),
                what: "a symbolic link",
            });
        }
        if !ft.is_file() {
            return Err(StoreError::NotARegularFile {
                path: entry.path().to_path_buf(),
                what: "not a regular file",
            });
        }
        let rel = entry
            .path()
            .strip_prefix(dir)
            .expect("walkdir yields paths under its root");
        let name = rel
            .to_str()
            .ok_or_else(|| StoreError::NonUtf8Path(entry.path().to_path_buf()))?
            .replace(std::path::MAIN_SEPARATOR, "/");
        if name == ENVELOPE_FILE {
            return Err(StoreError::ReservedName(entry.path().to_path_buf()));
        }
        check_output_name(&name).map_err(|reason| StoreError::BadOutputName {
            path: entry.path().to_path_buf(),
            reason,
        })?;
        out.push((name, entry.path().to_path_buf()));
    }
    out.sort();
    Ok(out)
}

/// A subject name the store publishes must pass verify's subject-path check (no backslash, no
/// drive prefix such as `C:x`, no `..`), and carry no control characters, which a terminal would
/// interpret when the name is printed.
pub fn check_output_name(name: &str) -> Result<(), String> {
    crate::statement::check_subject_path(name).map_err(|e| e.to_string())?;
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "it contains the control character U+{:04X}",
            c as u32
        ));
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err("create", path))?;
    f.write_all(bytes).map_err(io_err("write", path))?;
    f.sync_all().map_err(io_err("sync", path))
}

fn sync_path(path: &Path) -> Result<(), StoreError> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err("sync", path))
}

fn sync_dirs_under(dir: &Path) -> Result<(), StoreError> {
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let Ok(entry) = entry else { continue };
        if entry.file_type().is_dir() {
            sync_path(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time_and_do_not_repeat() {
        let t = time::macros::datetime!(2026-11-28 05:25:01 UTC);
        let a = new_run_id(t);
        let b = new_run_id(t);
        assert!(a.starts_with("20261128T052501Z-"), "{a}");
        assert_eq!(a.len(), "20261128T052501Z-".len() + 16);
        assert_ne!(a, b);
        let later = new_run_id(time::macros::datetime!(2026-11-28 05:25:02 UTC));
        assert!(a < later && b < later);
    }

    #[test]
    fn timestamps_are_utc_millis_and_parse_back() {
        let t = time::macros::datetime!(2026-11-28 05:25:01.123456 UTC);
        let s = format_timestamp(t);
        assert_eq!(s, "2026-11-28T05:25:01.123Z");
        assert_eq!(
            parse_timestamp(&s).unwrap(),
            time::macros::datetime!(2026-11-28 05:25:01.123 UTC)
        );
    }

    #[test]
    fn campaign_names_are_checked() {
        for ok in ["examples", "cycle4.followups", "a", "run_2-x"] {
            assert!(check_campaign(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "..", "with space", &"x".repeat(65)] {
            let err = check_campaign(bad).unwrap_err().to_string();
            assert!(err.contains("is not allowed"), "{err}");
        }
    }

    #[test]
    fn staging_names_carry_the_owner_pid() {
        assert_eq!(
            staging_owner_pid(".staging-20261128T052501Z-9f3a1c2b7d4e6a80-4242"),
            Some(4242)
        );
        assert_eq!(staging_owner_pid("20261128T052501Z-9f3a1c2b7d4e6a80"), None);
    }
}
