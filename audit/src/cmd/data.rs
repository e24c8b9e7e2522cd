//! `husai-audit data`: make activation data sets and look at them through an SAE, with the `data` plugin.
//!
//! - `data synth` runs the plugin's `synth` operation (`husai_kernels::synth`, in the plugin) through the pipeline:
//!   activations from a known sparse dictionary, with the ground-truth dictionary and the generator config, signed
//!   as one run of kind `data`.
//! - `data encode` runs its `encode` operation: an SAE checkpoint's dense feature activations for the first rows of a
//!   data set, written to a plain `.npy` file. It is an inspection and interoperability aid
//!   (scripts/saelens_interop.py compares it with SAELens's encoder); its output is deliberately not a run and is
//!   never written into one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use husai_core::pipeline::ProduceRequest;
use husai_core::pipeline::produce::run_unsigned;
use husai_core::plugin::PluginHost;
use serde_json::{Map, Value, json};

use crate::cli;

/// The plugin both operations run.
const DATA_PLUGIN: &str = "data";
/// File names inside a `data synth` run (written by the plugin).
pub const SYNTH_ACTIVATIONS: &str = "activations.npy";
pub const SYNTH_DICTIONARY: &str = "dictionary.npy";
/// The file the plugin's `encode` writes.
const ENCODED: &str = "encoded.npy";

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
    Generate(GenerateArgs),
}

/// Run any data plugin that generates a data set (for example `toy-modadd`) and sign its outputs as a `data` run.
///
/// The plugin's options come from its schema (`husai-audit plugins show NAME`): defaults, overlaid by --config FILE,
/// then each --set KEY=VALUE.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  husai-audit data generate --plugin toy-modadd --set seed=0 --campaign toy"
)]
pub struct GenerateArgs {
    /// Data plugin, by the name it describes itself with.
    #[arg(long)]
    plugin: String,
    /// Config file, .toml or .json, holding one table of the plugin's options.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set one option (repeatable, applied in order after --config).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Campaign the generated run belongs to (results/<campaign>/<run_id>/).
    #[arg(long)]
    campaign: String,
    /// Signing key (ed25519 PKCS#8 PEM).
    #[arg(long, env = "HUSAI_SIGNING_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Root of the run store.
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    /// Keys directory with trust-policy.json.
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// Directory to search for the plugin first (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
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
    /// Campaign the data run belongs to (results/<campaign>/<run_id>/).
    #[arg(long)]
    campaign: String,
    /// Signing key (ed25519 PKCS#8 PEM).
    #[arg(long, env = "HUSAI_SIGNING_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Root of the run store.
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    /// Keys directory with trust-policy.json.
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// Directory to search for the data plugin first (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
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
    /// Rows to encode: START:END (END excluded), or a count N for the first N rows (0:N); the same meaning as
    /// `train --rows`.
    #[arg(long, default_value = "100", value_name = "START:END|N", value_parser = cli::parse_rows)]
    rows: (usize, usize),
    /// Output .npy file, [rows, d_sae] float32.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Directory to search for the data plugin first (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// Keys directory with trust-policy.json, used to verify the checkpoint's run.
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// Encode a checkpoint that is not inside a signed run (a third-party SAE, say); the output says so.
    #[arg(long)]
    allow_unsigned: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        DataCommand::Synth(a) => synth_run(a),
        DataCommand::Encode(a) => encode(a),
        DataCommand::Generate(a) => generate(a),
    }
}

fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let key = cli::signing_key(args.key.as_deref())?;
    husai_core::store::check_campaign(&args.campaign)?;
    super::plugins::check_plugin_dirs(&args.plugin_dirs)?;
    let host = PluginHost::for_current_exe(&args.plugin_dirs)?;
    let pipeline = cli::pipeline(key, &args.results, &args.keys)?;
    let request = ProduceRequest {
        plugin: args.plugin.clone(),
        config: husai_core::pipeline::ConfigSources {
            file: args.config.clone(),
            sets: args.sets.clone(),
        },
        flags: Map::new(),
        inputs: BTreeMap::new(),
        campaign: args.campaign.clone(),
    };
    let (committed, result) = pipeline.produce(&host, &request, &mut |e| {
        eprintln!("{}: {}/{} {}", args.plugin, e.done, e.total, e.message);
    })?;
    let summary = result.get("summary").cloned().unwrap_or(Value::Null);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"run_id": committed.run_id, "dir": cli::display_path(&committed.dir), "summary": summary})
            )?
        );
    } else {
        println!(
            "signed data run {} ({})",
            cli::display_path(&committed.dir).display(),
            args.plugin
        );
        println!("  {summary}");
    }
    Ok(cli::EXIT_OK)
}

fn synth_run(args: SynthArgs) -> anyhow::Result<ExitCode> {
    let key = cli::signing_key(args.key.as_deref())?;
    husai_core::store::check_campaign(&args.campaign)?;
    super::plugins::check_plugin_dirs(&args.plugin_dirs)?;
    let host = PluginHost::for_current_exe(&args.plugin_dirs)?;
    let pipeline = cli::pipeline(key, &args.results, &args.keys)?;
    let flags: Map<String, Value> = json!({
        "operation": "synth", "rows": args.rows, "d_in": args.d_in, "n_features": args.n_features, "l0": args.l0,
        "coef_min": args.coef_min, "coef_max": args.coef_max, "seed": args.seed,
    })
    .as_object()
    .cloned()
    .expect("an object literal");
    let request = ProduceRequest {
        plugin: DATA_PLUGIN.to_owned(),
        config: Default::default(),
        flags,
        inputs: BTreeMap::new(),
        campaign: args.campaign.clone(),
    };
    let (committed, _) = pipeline.produce(&host, &request, &mut |_| {})?;
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
            args.rows, args.d_in, args.n_features, args.d_in, args.l0
        );
    }
    Ok(cli::EXIT_OK)
}

fn encode(args: EncodeArgs) -> anyhow::Result<ExitCode> {
    super::plugins::check_plugin_dirs(&args.plugin_dirs)?;
    // The checkpoint's run is verified before a byte of it is used: a checkpoint changed after signing is refused.
    let provenance = match checkpoint_provenance(&args) {
        Ok(p) => p,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!(
                "data encode: FAILED (the checkpoint's run does not verify; nothing was written)"
            );
            return Ok(cli::exit_fail());
        }
    };
    let host = PluginHost::for_current_exe(&args.plugin_dirs)?;
    let (start, end) = args.rows;
    let mut flags = Map::new();
    flags.insert("operation".into(), json!("encode"));
    flags.insert("rows".into(), json!(end - start));
    flags.insert("start".into(), json!(start));
    flags.insert("tensor".into(), json!(args.tensor));
    let request = ProduceRequest {
        plugin: DATA_PLUGIN.to_owned(),
        config: Default::default(),
        flags,
        inputs: BTreeMap::from([
            ("checkpoint".to_owned(), args.checkpoint.clone()),
            ("activations".to_owned(), args.data.clone()),
        ]),
        campaign: String::new(),
    };
    // The plugin writes into a scratch directory beside --out; only a finished file is moved into place.
    let parent = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let scratch = parent.join(format!(".husai-encode-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let outcome = run_unsigned(&host, &request, &scratch, &mut |_| {})
        .map_err(anyhow::Error::from)
        .and_then(|r| move_into_place(&scratch.join(ENCODED), &args.out).map(|()| r));
    let _ = std::fs::remove_dir_all(&scratch);
    let result = outcome?;
    println!(
        "wrote {} ({} feature activations of rows {start}:{end}, not a signed run)",
        args.out.display(),
        result
            .get("shape")
            .map_or("[rows, d_sae]".to_owned(), Value::to_string)
    );
    println!("checkpoint {provenance}");
    Ok(cli::EXIT_OK)
}

/// Verifies the run holding `--checkpoint` and says which it is; a checkpoint outside any run is refused unless
/// `--allow-unsigned`. Err: why it cannot be used (a verification failure, exit 1).
fn checkpoint_provenance(args: &EncodeArgs) -> Result<String, String> {
    let Some((dir, _)) = husai_core::verify::enclosing_run(&args.checkpoint) else {
        return if args.allow_unsigned {
            Ok(format!(
                "{} is not inside a signed run (--allow-unsigned)",
                args.checkpoint.display()
            ))
        } else {
            Err(format!(
                "checkpoint {} is not inside a signed run (no husai.dsse.json above it); encode a train run's \
                 directory, or pass --allow-unsigned for a checkpoint without provenance",
                args.checkpoint.display()
            ))
        };
    };
    let policy = cli::trust_policy(&args.keys).map_err(|e| format!("{e:#}"))?;
    let run = husai_core::verify::load_verified_run(&dir, &policy).map_err(|e| {
        format!(
            "checkpoint {}: its run {} does not verify: {e}",
            args.checkpoint.display(),
            cli::display_path(&dir).display()
        )
    })?;
    Ok(format!(
        "from verified run {}/{}",
        run.manifest.campaign, run.manifest.run_id
    ))
}

fn move_into_place(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to).with_context(|| format!("cannot write {}", to.display()))
}
