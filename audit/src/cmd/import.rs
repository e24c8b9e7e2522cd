//! `husai-audit import husai-evidence DIR`: attest an upstream evidence tree as signed import runs.

use std::path::PathBuf;
use std::process::ExitCode;

use husai_core::legacy::import;
use husai_core::store::RunStore;

use crate::cli;

/// Import evidence produced outside husai as signed runs of kind `import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    source: Source,
}

#[derive(Debug, clap::Subcommand)]
enum Source {
    /// An upstream HUSAI evidence tree (docs/evidence): one signed run per top-level directory, plus `_root` for the
    /// files directly in DIR. Every file is copied byte for byte; each JSON file's detected artifact kind, schema
    /// version, non-finite fields and parse error (if it does not parse) are recorded per file in the manifest's
    /// `extra.import.files`, so later decisions can cite the files by run, subject and digest.
    HusaiEvidence(EvidenceArgs),
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  husai-audit import husai-evidence ../HUSAI/docs/evidence --campaign husai-evidence"
)]
struct EvidenceArgs {
    /// The evidence tree's root.
    dir: PathBuf,
    /// Campaign the import runs belong to (results/<campaign>/).
    #[arg(long)]
    campaign: String,
    /// Signing key (PKCS#8 PEM ed25519).
    #[arg(long, env = "HUSAI_SIGNING_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Results tree to write into.
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    /// Import only this top-level directory (`_root` for the root's own files). Repeatable; default: all.
    #[arg(long = "only", value_name = "NAME")]
    only: Vec<String>,
    /// Print one JSON line per run (group, run id, directory, file and parse-error counts).
    #[arg(long)]
    json: bool,
    /// Import a directory again even when a run in the campaign already holds it unchanged (same source, same files
    /// and digests); without it such a directory is reported and skipped.
    #[arg(long)]
    again: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Source::HusaiEvidence(args) = args.source;
    let key = cli::signing_key(args.key.as_deref())?;
    husai_core::store::check_campaign(&args.campaign)?;
    let store = RunStore::open(&args.results)?;
    let argv: Vec<String> = std::env::args().collect();
    let outcome = import::import_tree_once(
        &store,
        &args.campaign,
        &args.dir,
        &args.only,
        &key,
        &cli::tool_info(),
        &argv,
        args.again,
    )?;
    for (group, run_id) in &outcome.already_imported {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"group": group.name, "already_imported": run_id, "files": group.files.len()})
            );
        } else {
            println!(
                "{:<55} already imported as run {}/{run_id}; nothing done (--again imports it anyway)",
                group.name, args.campaign
            );
        }
    }
    for (group, run) in &outcome.imported {
        let parse_errors: Vec<&import::ImportFile> = group
            .files
            .iter()
            .filter(|f| f.parse_error.is_some())
            .collect();
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "group": group.name,
                    "run_id": run.run_id,
                    "dir": run.dir.display().to_string(),
                    "files": group.files.len(),
                    "parse_errors": parse_errors.len(),
                })
            );
        } else {
            println!(
                "{:<55} {} ({} files, {} unparseable)",
                group.name,
                cli::display_path(&run.dir).display(),
                group.files.len(),
                parse_errors.len()
            );
        }
        for f in parse_errors {
            eprintln!(
                "warning: imported but unparseable: {}",
                f.parse_error.as_deref().unwrap_or("")
            );
        }
    }
    Ok(cli::EXIT_OK)
}
