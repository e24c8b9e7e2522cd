//! `husai-audit attest`: turn files that any tool produced into a signed run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use husai_core::manifest::{CommandInfo, ManifestDraft, RunKind};
use husai_core::store::RunStore;

use crate::cli;

/// Attest the files in DIR as a new signed run under results/<campaign>/<run_id>/.
///
/// If a command follows `--`, it runs first (with DIR existing) and its argv and exit status are
/// recorded; a command that fails produces no run. Without a command, the files already in DIR
/// are attested as they are. DIR is copied into the run, never moved, so nothing is lost if
/// attesting fails; every file in it must be a regular file with a name verify accepts (UTF-8,
/// no backslash, no drive prefix like `C:x`, no control characters). A directory holding a PEM
/// private key is refused, and so is a directory that contains the results tree itself.
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
            out.extend(husai_core::inputs::resolve(spec, &args.results, &policy)?);
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
    refuse_results_inside(&args.dir, store.root())?;
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
            if husai_core::keys::file_holds_private_key(entry.path())
                .with_context(|| format!("cannot read {}", entry.path().display()))?
            {
                bail!(
                    "{} holds a PEM private key; refusing to attest it, since the run would \
                     publish the key under results/ (move the key out of {})",
                    husai_core::untrusted::display_path(entry.path()),
                    husai_core::untrusted::display_path(from)
                );
            }
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

/// Attesting a directory that contains the results tree (`attest results`, `attest .`) would copy
/// the run store, including the new run's own staging directory, into the run.
fn refuse_results_inside(dir: &Path, results: &Path) -> anyhow::Result<()> {
    let dir_abs =
        std::fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let results_abs = std::fs::canonicalize(results)
        .with_context(|| format!("cannot resolve {}", results.display()))?;
    if results_abs.starts_with(&dir_abs) {
        bail!(
            "{} contains the results tree {}; attesting it would copy the run store (and this \
             run's own staging directory) into the run: attest a directory outside the results tree",
            husai_core::untrusted::display_path(dir),
            husai_core::untrusted::display_path(results)
        );
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
