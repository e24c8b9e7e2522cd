//! `husai-audit attest`: turn files that any tool produced into a signed run (`husai_core::pipeline::Pipeline::attest`
//! does the work; this file parses and prints).

use std::path::PathBuf;
use std::process::ExitCode;

use husai_core::manifest::RunKind;
use husai_core::pipeline::AttestRequest;

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
    let pipeline = cli::pipeline(key, &args.results, &args.keys)?;
    let request = AttestRequest {
        dir: args.dir.clone(),
        campaign: args.campaign.clone(),
        kind: args.kind,
        inputs: args.inputs.clone(),
        command: args.command.clone(),
    };
    let bar = cli::bytes_bar(0, "hashing");
    let committed = pipeline.attest(&request, &mut |total| bar.set_length(total), &|n| {
        bar.inc(n)
    });
    bar.finish_and_clear();
    let committed = match committed {
        // The attested work failed: exit 1 like any other failed check, not 2 (usage or I/O).
        Err(e @ husai_core::pipeline::PipelineError::CommandFailed { .. }) => {
            eprintln!("error: {e}");
            return Ok(cli::exit_fail());
        }
        other => other?,
    };

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
