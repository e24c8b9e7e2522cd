//! `husai-audit data`: make activation data sets and look at them through an SAE.
//!
//! - `data synth` generates activations from a known sparse dictionary (`husai_kernels::synth`) and signs them,
//!   with the ground-truth dictionary and the generator config, as one run of kind `data`.
//! - `data encode` writes an SAE checkpoint's dense feature activations for the first rows of a data set to a plain
//!   `.npy` file. It is an inspection and interoperability aid (scripts/saelens_interop.py compares it with
//!   SAELens's encoder); its output is deliberately not a run and is never written into one.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use husai_core::manifest::{ManifestDraft, RunKind};
use husai_core::store::RunStore;
use husai_kernels::activations::{self, OpenOptions, write_npy_f32};
use husai_kernels::synth::{self, SynthConfig};
use husai_kernels::{TopKSae, checkpoint};
use serde_json::json;

use crate::cli;

/// File names inside a `data synth` run.
pub const SYNTH_ACTIVATIONS: &str = "activations.npy";
pub const SYNTH_DICTIONARY: &str = "dictionary.npy";
pub const SYNTH_GENERATOR: &str = "generator.json";

/// Make activation data sets (`synth`, a signed run) and encode data with an SAE checkpoint (`encode`)
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DataCommand {
    Synth(SynthArgs),
    Encode(EncodeArgs),
}

/// Generate activations from a known sparse dictionary and sign them as a `data` run.
///
/// `n_features` unit-norm directions in `d_in` dimensions (in superposition when n_features > d_in); each row is the
/// sum of exactly `l0` distinct features with coefficients uniform in [coef_min, coef_max). The run holds
/// activations.npy [rows, d_in], dictionary.npy [n_features, d_in] (the ground truth) and generator.json.
#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Activation rows to generate.
    #[arg(long)]
    rows: usize,
    /// Width of each row (the model dimension).
    #[arg(long = "d-in")]
    d_in: usize,
    /// True features in the dictionary; more than d-in puts them in superposition.
    #[arg(long = "n-features")]
    n_features: usize,
    /// Features active per row.
    #[arg(long)]
    l0: usize,
    /// Smallest coefficient of an active feature.
    #[arg(long = "coef-min", default_value_t = 0.5)]
    coef_min: f32,
    /// Coefficients are drawn uniformly from [coef-min, coef-max).
    #[arg(long = "coef-max", default_value_t = 1.5)]
    coef_max: f32,
    /// Generator seed (0 to 2^53-1, so that the signed manifest records it exactly).
    #[arg(long, value_parser = clap::value_parser!(u64).range(..=husai_core::manifest::MAX_SEED))]
    seed: u64,
    #[arg(long)]
    campaign: String,
    /// Signing key (ed25519 PKCS#8 PEM).
    #[arg(long, env = "HUSAI_SIGNING_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Root of the run store.
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Write an SAE's dense feature activations for the first rows of a data set to a .npy file (not a run).
#[derive(Debug, clap::Args)]
pub struct EncodeArgs {
    /// Checkpoint directory holding cfg.json and sae_weights.safetensors (for example a train run).
    #[arg(long, value_name = "DIR")]
    checkpoint: PathBuf,
    /// Activation bank (.npy or .safetensors).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Tensor to read from a .safetensors file.
    #[arg(long)]
    tensor: Option<String>,
    /// How many leading rows to encode.
    #[arg(long, default_value_t = 100)]
    rows: usize,
    /// Output .npy file, [rows, d_sae] float32.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        DataCommand::Synth(a) => synth_run(a),
        DataCommand::Encode(a) => encode(a),
    }
}

fn synth_run(args: SynthArgs) -> anyhow::Result<ExitCode> {
    let key = cli::signing_key(args.key.as_deref())?;
    husai_core::store::check_campaign(&args.campaign)?;
    let config = SynthConfig {
        rows: args.rows,
        d_in: args.d_in,
        n_features: args.n_features,
        l0: args.l0,
        coef_min: args.coef_min,
        coef_max: args.coef_max,
        seed: args.seed,
    };
    config.validate()?;
    if args.rows == 0 {
        bail!("--rows must be at least 1");
    }
    let data = synth::generate(&config)?;

    let store = RunStore::open(&args.results)?;
    let staged = store.stage(&args.campaign, RunKind::Data)?;
    let dir = staged.dir();
    write_npy_f32(
        &dir.join(SYNTH_ACTIVATIONS),
        config.rows,
        config.d_in,
        &data.x,
    )
    .with_context(|| format!("cannot write {SYNTH_ACTIVATIONS}"))?;
    write_npy_f32(
        &dir.join(SYNTH_DICTIONARY),
        config.n_features,
        config.d_in,
        &data.dictionary,
    )
    .with_context(|| format!("cannot write {SYNTH_DICTIONARY}"))?;
    let config_json = serde_json::to_value(config)?;
    let generator = json!({
        "generator": "husai_kernels::synth",
        "generator_version": env!("CARGO_PKG_VERSION"),
        "config": config_json,
        "dictionary": "n_features directions drawn i.i.d. standard normal in d_in dimensions, scaled to unit norm",
        "coefficient_law": "each row is the sum of exactly l0 distinct features chosen uniformly; coefficients \
                            uniform in [coef_min, coef_max)",
        "files": {
            SYNTH_ACTIVATIONS: {"shape": [config.rows, config.d_in], "dtype": "float32"},
            SYNTH_DICTIONARY: {"shape": [config.n_features, config.d_in], "dtype": "float32"},
        },
    });
    let mut text = serde_json::to_vec_pretty(&generator)?;
    text.push(b'\n');
    std::fs::write(dir.join(SYNTH_GENERATOR), text)
        .with_context(|| format!("cannot write {SYNTH_GENERATOR}"))?;

    let mut draft = ManifestDraft::new(cli::tool_info());
    draft.config = Some(config_json);
    draft.seeds = vec![config.seed];
    draft.extra = json!({"generator": "husai_kernels::synth"});
    let committed = staged.commit(draft, &key, &|_| {})?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"run_id": committed.run_id, "dir": committed.dir})
            )?
        );
    } else {
        println!(
            "signed data run {}",
            cli::display_path(&committed.dir).display()
        );
        println!(
            "  {SYNTH_ACTIVATIONS} [{}, {}], {SYNTH_DICTIONARY} [{}, {}], l0 {}",
            config.rows, config.d_in, config.n_features, config.d_in, config.l0
        );
    }
    Ok(cli::EXIT_OK)
}

fn encode(args: EncodeArgs) -> anyhow::Result<ExitCode> {
    let parts = checkpoint::read(&args.checkpoint)?;
    let (d_in, d_sae) = (parts.d_in, parts.d_sae);
    // Only the rows encoded are read and checked.
    let opts = OpenOptions {
        tensor: args.tensor.clone(),
        min_rows: 1,
        expected_d_in: Some(d_in),
        rows: Some((0, args.rows)),
    };
    let acts = activations::open(&args.data, &opts)?;
    let model = TopKSae::from_parts(parts)?;
    let code = model.encode(acts.data())?;
    let mut dense = vec![0.0f32; args.rows * d_sae];
    for r in 0..args.rows {
        let (idx, val) = code.row(r);
        for (&j, &v) in idx.iter().zip(val) {
            dense[r * d_sae + j as usize] = v;
        }
    }
    write_npy_f32(&args.out, args.rows, d_sae, &dense)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote {} ([{}, {}] feature activations, not a signed run)",
        args.out.display(),
        args.rows,
        d_sae
    );
    Ok(cli::EXIT_OK)
}
