//! `husai-audit attest`: turn files that any tool produced into a signed run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use husai_core::digest;
use husai_core::manifest::{CommandInfo, InputRef, ManifestDraft, RunKind, RunRef};
use husai_core::store::RunStore;
use husai_core::trust::TrustPolicy;
use husai_core::verify::{self, VerifiedRun};

use crate::cli;

/// Attest the files in DIR as a new signed run under results/<campaign>/<run_id>/.
///
/// If a command follows `--`, it runs first (with DIR existing) and its argv and exit status are
/// recorded; a command that fails produces no run. Without a command, the files already in DIR
/// are attested as they are. DIR is copied into the run, never moved, so nothing is lost if
/// attesting fails; every file in it must be a regular file.
///
/// Inputs (--input) are recorded with their digests. An input inside a verified run (a file
/// path, a run directory, or a bare run id found under --results) is recorded as that run's
/// output, which forms the provenance chain `verify` follows.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
husai-audit attest out/ --campaign exp1 --kind external --key dev.pem \\\n    \
--input results/exp1/<run_id>/sae_weights.safetensors -- python eval.py --out out/")]
pub struct Args {
    /// Directory holding (or receiving, when a command is given) the outputs.
    dir: PathBuf,
    /// Campaign the run belongs to (results/<campaign>/).
    #[arg(long)]
    campaign: String,
    /// Run kind: external (evidence made outside husai), data, train, eval, import, select, gate.
    #[arg(long, value_parser = parse_kind, default_value = "external")]
    kind: RunKind,
    /// An input: a file, a run directory, or a run id under --results. Repeatable.
    #[arg(long = "input", value_name = "PATH_OR_RUN")]
    inputs: Vec<String>,
    /// Signing key (PKCS#8 PEM ed25519).
    #[arg(long, env = "HUSAI_SIGNING_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Results tree to write into.
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    /// Keys directory with trust-policy.json, used to verify input runs.
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// Print the new run as JSON.
    #[arg(long)]
    json: bool,
    /// The command that produces the outputs.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn parse_kind(s: &str) -> Result<RunKind, String> {
    RunKind::parse(s).ok_or_else(|| {
        let names: Vec<&str> = RunKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown kind {s:?}; use one of {}", names.join(", "))
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = cli::signing_key(args.key.as_deref())?;
    husai_core::store::check_campaign(&args.campaign)?;

    let inputs = if args.inputs.is_empty() {
        Vec::new()
    } else {
        let policy = cli::trust_policy(&args.keys)?;
        let mut out = Vec::new();
        for spec in &args.inputs {
            out.extend(resolve_input(spec, &args.results, &policy)?);
        }
        out
    };

    let command = if args.command.is_empty() {
        None
    } else {
        std::fs::create_dir_all(&args.dir)
            .with_context(|| format!("cannot create output directory {}", args.dir.display()))?;
        let status = std::process::Command::new(&args.command[0])
            .args(&args.command[1..])
            .status()
            .with_context(|| format!("cannot run {:?}", args.command[0]))?;
        let code = status.code().unwrap_or(-1);
        if !status.success() {
            bail!(
                "command {:?} failed ({status}); nothing was attested",
                args.command.join(" ")
            );
        }
        Some(CommandInfo {
            argv: args.command.clone(),
            exit_code: code,
        })
    };

    let meta = std::fs::metadata(&args.dir)
        .with_context(|| format!("cannot read output directory {}", args.dir.display()))?;
    if !meta.is_dir() {
        bail!(
            "{} is not a directory; attest takes a directory of outputs",
            args.dir.display()
        );
    }

    let store = RunStore::open(&args.results)?;
    let staged = store.stage(&args.campaign, args.kind)?;
    copy_tree(&args.dir, staged.dir())?;

    let mut draft = ManifestDraft::new(cli::tool_info());
    draft.inputs = inputs;
    draft.command = command;
    let total = dir_size(staged.dir());
    let bar = cli::bytes_bar(total, "hashing");
    let committed = staged.commit(draft, &key, &|n| bar.inc(n))?;
    bar.finish_and_clear();

    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "run_id": committed.run_id,
                "campaign": committed.campaign,
                "dir": committed.dir,
                "subjects": committed.subjects,
            })
        );
    } else {
        println!(
            "attested {} files as run {}/{} in {}",
            committed.subjects.len(),
            committed.campaign,
            committed.run_id,
            cli::display_path(&committed.dir).display()
        );
    }
    Ok(cli::EXIT_OK)
}

/// Resolve one `--input` into recorded inputs.
fn resolve_input(
    spec: &str,
    results: &Path,
    policy: &TrustPolicy,
) -> anyhow::Result<Vec<InputRef>> {
    let path = PathBuf::from(spec);
    let path = if path.exists() {
        path
    } else if verify::looks_like_run_id(spec) {
        find_run(results, spec)?
    } else {
        bail!("input {spec} does not exist (give a file, a run directory or a run id)");
    };
    match verify::enclosing_run(&path) {
        Some((run_dir, rel)) => {
            let run = verify::load_verified_run(&run_dir, policy).map_err(|e| {
                anyhow!("input {spec} is inside a run that fails verification: {e}")
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
                bail!(
                    "input {spec} is inside run {} but is not one of its signed outputs",
                    run_dir.display()
                )
            }
        }
        None => {
            if path.is_dir() {
                bail!(
                    "input {spec} is a directory that is not a run; name its files one by one \
                     or attest it first"
                );
            }
            let d = digest::digest_file(&path, digest::DigestMethod::Sha256)
                .with_context(|| format!("cannot hash input {spec}"))?;
            Ok(vec![InputRef {
                path: spec.to_string(),
                digest: BTreeMap::from([(d.algorithm, d.hex)]),
                run: None,
            }])
        }
    }
}

/// An input that is a verified run's subject: its digest is the signed one, which
/// `load_verified_run` has just checked against the file.
fn run_input(run: &VerifiedRun, path: &Path, subject: &str) -> InputRef {
    let s = run.subject(subject).expect("caller checked the subject");
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

fn find_run(results: &Path, run_id: &str) -> anyhow::Result<PathBuf> {
    let campaigns = std::fs::read_dir(results)
        .with_context(|| format!("cannot look for run {run_id} in {}", results.display()))?;
    for c in campaigns.flatten() {
        let candidate = c.path().join(run_id);
        if candidate.is_dir() {
            return Ok(candidate);
        }
    }
    bail!("run {run_id} is not under {}", results.display())
}

/// Copy `from` into the (existing, empty) directory `to`, refusing anything but regular files
/// and directories.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in walkdir::WalkDir::new(from).follow_links(false).min_depth(1) {
        let entry = entry.with_context(|| format!("cannot list {}", from.display()))?;
        let rel = entry.path().strip_prefix(from).expect("under its root");
        let target = to.join(rel);
        let ft = entry.file_type();
        if ft.is_dir() {
            std::fs::create_dir_all(&target)
                .with_context(|| format!("cannot create {}", target.display()))?;
        } else if ft.is_file() {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy {} into the run", entry.path().display()))?;
        } else {
            bail!(
                "{} is a symbolic link or special file; a run holds regular files only \
                 (replace the link with the file it points to)",
                entry.path().display()
            );
        }
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
