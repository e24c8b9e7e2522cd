//! `husai-audit plot`: draw the training curves of verified train runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use husai_core::plot;

use crate::cli;

/// Draw the metric curves (each loss term, L0, dead fraction, held-out FVU) of one or several train runs on shared
/// axes, as an SVG file.
///
/// Every run must verify against the trust policy, and its signed metrics.jsonl must match
/// schemas/metrics-line.v1.json line by line. Exit status 1 when a run fails verification, 2 for a run without a
/// metric stream, a bad line, or a file that cannot be written.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Train run directories (or files inside them), drawn in this order.
    #[arg(required = true, value_name = "RUN")]
    runs: Vec<PathBuf>,
    /// The SVG file to write.
    #[arg(long, value_name = "FILE.svg")]
    out: PathBuf,
    /// Keys directory holding trust-policy.json.
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let trust = cli::trust_policy(&args.keys)?;
    let svg = match plot::plot_runs(&args.runs, &trust) {
        Ok(svg) => svg,
        Err(e) if e.is_verification_failure() => {
            eprintln!("error: {e}");
            return Ok(cli::exit_fail());
        }
        Err(e) => return Err(e.into()),
    };
    std::fs::write(&args.out, svg)
        .with_context(|| format!("cannot write the plot to {}", args.out.display()))?;
    println!(
        "wrote {} ({} run{})",
        cli::display_path(&args.out).display(),
        args.runs.len(),
        if args.runs.len() == 1 { "" } else { "s" }
    );
    Ok(cli::EXIT_OK)
}
