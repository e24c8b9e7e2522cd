//! `husai-audit eval`: run an eval plugin on signed runs and record its summary as one signed run (kind `eval`).
//!
//! Arguments only: the pipeline (`husai_core::pipeline::Pipeline::eval`) verifies the input runs, builds the config
//! from the plugin's schema, runs the plugin in a child process, checks its summary against its schema and signs
//! (docs/eval-contract.md). This file parses and prints.

use std::path::PathBuf;
use std::process::ExitCode;

use husai_core::pipeline::{ConfigSources, EvalRequest};
use husai_core::plugin::PluginHost;
use serde_json::json;

use crate::cli;

/// Evaluate signed runs with an eval plugin and sign its summary as a run.
///
/// Each --input is a run (its directory, or its run id under --results), optionally with a role the plugin reads it
/// under (`sae=RUN`; without one the role is `run`). Every input run is verified with its chain and must have ended
/// `ok`; the eval run records all their files with their signed digests. The plugin's options come from its schema
/// (see `husai-audit plugins show NAME`), overlaid by --config FILE and then each --set KEY=VALUE.
///
/// Exit codes: 0 a signed eval run (what it found is in its summary); 2 nothing was signed.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
husai-audit eval --plugin known-circuit --input model=<toy run> --input sae=<sae run 1> --input sae=<sae run 2> --campaign toy\n  \
husai-audit eval --plugin known-circuit --input model=results/toy/<run_id> --set parity=true --campaign toy")]
pub struct Args {
    /// Eval plugin, by the name it describes itself with (see `husai-audit plugins`).
    #[arg(long)]
    plugin: String,
    /// An input run, `[ROLE=]RUN` (repeatable, at least one): a run directory or a run id.
    #[arg(long = "input", value_name = "[ROLE=]RUN", required = true,
          value_parser = parse_input)]
    inputs: Vec<(String, String)>,
    /// Config file, .toml or .json, holding one table of the plugin's options.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set one option (repeatable, applied in order after --config): KEY may be dotted; VALUE is read as JSON when it
    /// parses as JSON, else as a string.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Campaign the run belongs to (results/<campaign>/<run_id>/).
    #[arg(long)]
    campaign: String,
    /// Signing key (ed25519 PKCS#8 PEM).
    #[arg(long, env = "HUSAI_SIGNING_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Root of the run store (where run ids are looked up and the eval run is written).
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    /// Keys directory with trust-policy.json, used to verify the input runs.
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// Kill the plugin if it runs longer than this many seconds (no run is recorded).
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    timeout: Option<std::time::Duration>,
    /// Directory to search for plugins first (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// Print the result as JSON (run id, directory, summary).
    #[arg(long)]
    json: bool,
}

fn parse_input(s: &str) -> Result<(String, String), String> {
    EvalRequest::parse_input(s)
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("{s} must be a positive number of seconds"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = cli::signing_key(args.key.as_deref())?;
    husai_core::store::check_campaign(&args.campaign)?;
    super::plugins::check_plugin_dirs(&args.plugin_dirs)?;
    let host = PluginHost::for_current_exe(&args.plugin_dirs)?.with_timeout(args.timeout);
    let pipeline = cli::pipeline(key, &args.results, &args.keys)?;
    let request = EvalRequest {
        plugin: args.plugin.clone(),
        inputs: args.inputs.clone(),
        config: ConfigSources {
            file: args.config.clone(),
            sets: args.sets.clone(),
        },
        campaign: args.campaign.clone(),
    };
    let done = pipeline.eval(&host, &request, &mut |e| {
        eprintln!("eval: {}/{} {}", e.done, e.total, e.message);
    })?;
    let dir = cli::display_path(&done.run.dir);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "run_id": done.run.run_id, "dir": dir, "summary_file": done.summary_file,
                "schema": done.summary_schema, "summary": done.summary,
            }))?
        );
    } else {
        println!("signed eval run {} ({})", dir.display(), done.plugin);
        println!(
            "  summary {} (schema {})",
            dir.join(&done.summary_file).display(),
            done.summary_schema
        );
    }
    Ok(cli::EXIT_OK)
}
