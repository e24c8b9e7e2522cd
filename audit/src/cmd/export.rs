//! `husai-audit export`: a verified run's outputs in another tool's layout (the conversion is
//! `husai_core::export`).

use std::path::PathBuf;
use std::process::ExitCode;

use husai_core::export;

use crate::cli;

/// Write a verified run's SAE in another tool's layout (a plain directory, not a run).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    format: Format,
}

#[derive(Debug, clap::Subcommand)]
enum Format {
    Sparsify(SparsifyArgs),
}

/// EleutherAI sparsify's layout: OUT/cfg.json and OUT/sae.safetensors (encoder.weight, encoder.bias, W_dec, b_dec),
/// loadable with `sparsify.SparseCoder.load_from_disk(OUT)`.
///
/// The train run is verified first; a run that does not verify, is not ok, or whose files changed after signing is
/// refused with exit 1 and nothing is written. Only TopK checkpoints whose encoder is sparsify's are converted.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  husai-audit export sparsify results/exp1/<run_id> exported/exp1-sparsify"
)]
struct SparsifyArgs {
    /// The train run directory (or a file inside it).
    run: PathBuf,
    /// Output directory (created; must not exist or be empty).
    out: PathBuf,
    /// Keys directory with trust-policy.json, used to verify the run.
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Format::Sparsify(args) = args.format;
    let trust = cli::trust_policy(&args.keys)?;
    let written = match export::export_sparsify(&args.run, &args.out, &trust) {
        Ok(w) => w,
        Err(e) if e.is_verification_failure() => {
            eprintln!("error: {e}");
            eprintln!("export: FAILED (the run does not verify; nothing was written)");
            return Ok(cli::exit_fail());
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "run": written.run, "out": written.out, "d_in": written.d_in,
                "num_latents": written.num_latents, "k": written.k,
                "files": [export::sparsify::SPARSIFY_CONFIG, export::sparsify::SPARSIFY_WEIGHTS],
            })
        );
    } else {
        println!(
            "wrote {} (sparsify layout: d_in {}, {} latents, k {}) from verified run {}; a plain copy, not a run",
            cli::display_path(&written.out).display(),
            written.d_in,
            written.num_latents,
            written.k,
            written.run
        );
    }
    Ok(cli::EXIT_OK)
}
