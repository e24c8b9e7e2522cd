//! Files any tool produced, as one signed run (`husai-audit attest`).
//!
//! If a command is given it runs first (with the directory existing), and its argv and exit status are recorded; a
//! command that fails produces no run. The directory is copied into the staged run, never moved, so nothing is lost
//! if attesting fails; every file in it must be a regular file. Inputs are recorded with their digests; an input
//! inside a verified run (a file, a run directory, or a run id found under the results root) is recorded as that
//! run's output, which forms the provenance chain `verify` follows.

use std::path::{Path, PathBuf};

use super::{Pipeline, PipelineError};
use crate::inputs;
use crate::manifest::{CommandInfo, RunKind};
use crate::store::{CommittedRun, format_timestamp};

/// What to attest.
#[derive(Debug, Clone, PartialEq)]
pub struct AttestRequest {
    /// Directory holding (or receiving, when a command is given) the outputs.
    pub dir: PathBuf,
    pub campaign: String,
    pub kind: RunKind,
    /// Files, run directories or run ids.
    pub inputs: Vec<String>,
    /// The command that produces the outputs (empty: attest the files as they are).
    pub command: Vec<String>,
}

impl Pipeline {
    /// Attests `req.dir`. `on_bytes_total` is told the byte count to hash before hashing starts, and `on_bytes` the
    /// bytes hashed as it goes (for a progress bar).
    pub fn attest(
        &self,
        req: &AttestRequest,
        on_bytes_total: &mut dyn FnMut(u64),
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<CommittedRun, PipelineError> {
        crate::store::check_campaign(&req.campaign)?;
        let mut recorded = Vec::new();
        if !req.inputs.is_empty() {
            let policy = self.policy()?;
            for spec in &req.inputs {
                recorded.extend(inputs::resolve(spec, self.store.root(), policy)?);
            }
        }
        // The run starts when its work does: before the command, so that started_at (and the run id) is not the
        // signing time. Staging waits until the command has succeeded, so a failed command leaves nothing behind.
        let started = time::OffsetDateTime::now_utc();
        let command = match req.command.split_first() {
            None => None,
            Some((program, args)) => {
                std::fs::create_dir_all(&req.dir).map_err(|e| {
                    PipelineError::Attest(format!(
                        "cannot create output directory {}: {e}",
                        req.dir.display()
                    ))
                })?;
                Some(run_command(&req.command, program, args)?)
            }
        };
        let meta = std::fs::metadata(&req.dir).map_err(|e| {
            PipelineError::Attest(format!(
                "cannot read output directory {}: {e}",
                req.dir.display()
            ))
        })?;
        if !meta.is_dir() {
            return Err(PipelineError::Attest(format!(
                "{} is not a directory; attest takes a directory of outputs",
                req.dir.display()
            )));
        }
        refuse_results_inside(&req.dir, self.store.root())?;
        let staged = self
            .store
            .stage_started_at(&req.campaign, req.kind, started)?;
        copy_tree(&req.dir, staged.dir())?;
        let mut draft = self.draft();
        draft.inputs = recorded;
        draft.command = command;
        on_bytes_total(dir_size(staged.dir()));
        self.sign(staged, draft, on_bytes)
    }
}

/// Runs the attested command, timing the child process alone.
fn run_command(
    argv: &[String],
    program: &str,
    args: &[String],
) -> Result<CommandInfo, PipelineError> {
    let started_at = time::OffsetDateTime::now_utc();
    let clock = std::time::Instant::now();
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .map_err(|e| PipelineError::Attest(format!("cannot run {program:?}: {e}")))?;
    let duration = clock.elapsed();
    let finished_at = time::OffsetDateTime::now_utc();
    if !status.success() {
        return Err(PipelineError::CommandFailed {
            command: argv.join(" "),
            status: status.to_string(),
        });
    }
    Ok(CommandInfo {
        argv: argv.to_vec(),
        exit_code: status.code().unwrap_or(-1),
        started_at: Some(format_timestamp(started_at)),
        finished_at: Some(format_timestamp(finished_at)),
        duration_ms: Some(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)),
    })
}

/// Copies `from` into the (existing, empty) directory `to`, refusing anything but regular files and directories.
fn copy_tree(from: &Path, to: &Path) -> Result<(), PipelineError> {
    for entry in walkdir::WalkDir::new(from).follow_links(false).min_depth(1) {
        let entry = entry
            .map_err(|e| PipelineError::Attest(format!("cannot list {}: {e}", from.display())))?;
        let rel = entry.path().strip_prefix(from).expect("under its root");
        let target = to.join(rel);
        let ft = entry.file_type();
        if ft.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| {
                PipelineError::Attest(format!("cannot create {}: {e}", target.display()))
            })?;
        } else if ft.is_file() {
            let holds_key = crate::keys::file_holds_private_key(entry.path()).map_err(|e| {
                PipelineError::Attest(format!("cannot read {}: {e}", entry.path().display()))
            })?;
            if holds_key {
                return Err(PipelineError::Attest(format!(
                    "{} holds a PEM private key; refusing to attest it, since the run would publish the key under \
                     results/ (move the key out of {})",
                    crate::untrusted::display_path(entry.path()),
                    crate::untrusted::display_path(from)
                )));
            }
            std::fs::copy(entry.path(), &target).map_err(|e| {
                PipelineError::Attest(format!(
                    "cannot copy {} into the run: {e}",
                    entry.path().display()
                ))
            })?;
        } else {
            return Err(PipelineError::Attest(format!(
                "{} is a symbolic link or special file; a run holds regular files only (replace the link with the \
                 file it points to)",
                entry.path().display()
            )));
        }
    }
    Ok(())
}

/// Attesting a directory that contains the results tree (`attest results`, `attest .`) would copy the run store,
/// including the new run's own staging directory, into the run.
fn refuse_results_inside(dir: &Path, results: &Path) -> Result<(), PipelineError> {
    let resolve = |p: &Path| {
        std::fs::canonicalize(p)
            .map_err(|e| PipelineError::Attest(format!("cannot resolve {}: {e}", p.display())))
    };
    if resolve(results)?.starts_with(resolve(dir)?) {
        return Err(PipelineError::Attest(format!(
            "{} contains the results tree {}; attesting it would copy the run store (and this run's own staging \
             directory) into the run: attest a directory outside the results tree",
            crate::untrusted::display_path(dir),
            crate::untrusted::display_path(results)
        )));
    }
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}
