//! `husai-audit train`: train an SAE with a trainer plugin and record the result as one signed run (kind `train`).
//!
//! The plugin runs in a child process and writes into a staging directory; husai-audit then hashes the outputs,
//! records the dataset digest, config hash, seed, plugin identity (with the library's sha256) and environment, and
//! signs. If the plugin fails in any way (an error, a panic, a crash), the staging directory is removed and no run
//! appears under --results.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use husai_core::digest::{self, DigestMethod};
use husai_core::manifest::{DatasetRef, InputRef, ManifestDraft, PluginInfo, RowRange, RunKind};
use husai_core::plugin::{PluginHost, PluginKind, RunRequest};
use husai_core::store::RunStore;
use husai_kernels::activations;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::cli;

/// Train an SAE on an activation bank and sign the result as a run.
///
/// Exactly one of --steps and --epochs sets the length of training (an epoch is rows / batch steps, rounded up).
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("length").required(true).args(["steps", "epochs"])))]
pub struct Args {
    /// Trainer plugin, by the name it describes itself with (see `husai-audit plugins`).
    #[arg(long, default_value = "sae-topk")]
    plugin: String,
    /// Activation bank: a .npy (float32/float16, [rows, d_in], C order) or .safetensors file.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Tensor to read from a .safetensors file (needed when it holds more than one).
    #[arg(long)]
    tensor: Option<String>,
    /// Train on rows START..END of the file only (END exclusive), e.g. `--rows 0:16384`.
    #[arg(long, value_name = "START:END", value_parser = parse_rows)]
    rows: Option<(usize, usize)>,
    /// Number of latents.
    #[arg(long = "d-sae", value_name = "N")]
    d_sae: usize,
    /// Latents kept per row.
    #[arg(long)]
    k: usize,
    /// Initialisation seed (0 to 2^53-1, so that the signed manifest records it exactly).
    #[arg(long, value_parser = clap::value_parser!(u64).range(..=husai_core::manifest::MAX_SEED))]
    seed: u64,
    /// Optimiser steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Passes over the data (converted to steps, rounded up).
    #[arg(long)]
    epochs: Option<f64>,
    /// Rows per step.
    #[arg(long, default_value_t = 4096)]
    batch: usize,
    /// Continue training from the checkpoint of this verified train run (a run directory). The
    /// run's weights are recorded as inputs and its identity enters the config hash; Adam's moments
    /// restart from zero, since SAELens checkpoints carry no optimiser state.
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    // f64 so that the config records the value as typed (an f32 widened to JSON would read 0.0010000000474974513);
    // the plugin narrows it to f32.
    lr: f64,
    /// Campaign the run belongs to (results/<campaign>/<run_id>/).
    #[arg(long)]
    campaign: String,
    /// Signing key (ed25519 PKCS#8 PEM).
    #[arg(long, env = "HUSAI_SIGNING_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Root of the run store.
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    /// Keys directory with trust-policy.json, used when --data is itself the output of a run.
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// Kill the plugin if training runs longer than this many seconds (no run is recorded).
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    timeout: Option<std::time::Duration>,
    /// Directory to search for plugins first (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// A positive number of seconds.
fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("{s} must be a positive number of seconds"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// `START:END` with START < END.
fn parse_rows(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not START:END (for example 0:16384)"))?;
    let start = a
        .trim()
        .parse::<usize>()
        .map_err(|_| format!("START {a:?} is not a row number"))?;
    let end = b
        .trim()
        .parse::<usize>()
        .map_err(|_| format!("END {b:?} is not a row number"))?;
    if start >= end {
        return Err(format!("{s:?} selects no rows: START must be below END"));
    }
    Ok((start, end))
}

/// Steps for `epochs` passes over `rows` rows in batches of `batch`.
fn epochs_to_steps(epochs: f64, rows: usize, batch: usize) -> anyhow::Result<usize> {
    if !(epochs.is_finite() && epochs > 0.0) {
        bail!("--epochs {epochs} must be a positive number");
    }
    let steps = (epochs * rows as f64 / batch as f64).ceil();
    if steps < 1.0 || steps > usize::MAX as f64 {
        bail!("--epochs {epochs} gives {steps} steps for {rows} rows in batches of {batch}");
    }
    Ok(steps as usize)
}

/// The data set as an input of the run: linked to the run that produced it when it is a signed output.
fn data_input(args: &Args) -> anyhow::Result<InputRef> {
    let spec = args.data.display().to_string();
    if husai_core::verify::enclosing_run(&args.data).is_some() {
        let policy = cli::trust_policy(&args.keys)?;
        let mut refs = husai_core::inputs::resolve(&spec, &args.results, &policy)?;
        return refs
            .pop()
            .ok_or_else(|| anyhow!("--data {spec} resolved to no file"));
    }
    let d = digest::digest_file(&args.data, DigestMethod::Sha256)
        .with_context(|| format!("cannot hash --data {spec}"))?;
    Ok(InputRef {
        path: spec,
        digest: BTreeMap::from([(d.algorithm, d.hex)]),
        run: None,
    })
}

/// A verified train run to resume from: its directory, its checkpoint files as recorded inputs,
/// and its identity for the config.
struct Resume {
    dir: PathBuf,
    inputs: Vec<InputRef>,
    identity: Value,
}

fn resume_inputs(dir: &Path, args: &Args) -> anyhow::Result<Resume> {
    let policy = cli::trust_policy(&args.keys)?;
    let (run_dir, _) = husai_core::verify::enclosing_run(dir)
        .filter(|(_, rel)| rel.is_empty())
        .ok_or_else(|| {
            anyhow!(
                "--resume {} is not a run directory; give the directory of a signed train run",
                dir.display()
            )
        })?;
    let run = husai_core::verify::load_verified_run(&run_dir, &policy)
        .map_err(|e| anyhow!("--resume {}: {e}", dir.display()))?;
    if run.manifest.kind != RunKind::Train {
        bail!(
            "--resume {} is a {} run; resume from a train run",
            dir.display(),
            run.manifest.kind
        );
    }
    let mut inputs = Vec::new();
    for name in [
        husai_kernels::checkpoint::CONFIG_FILE,
        husai_kernels::checkpoint::WEIGHTS_FILE,
    ] {
        let spec = run_dir.join(name).display().to_string();
        inputs.extend(husai_core::inputs::resolve(&spec, &args.results, &policy)?);
    }
    let weights = inputs.last().map(|i| i.digest.clone()).unwrap_or_default();
    Ok(Resume {
        dir: std::path::absolute(&run_dir).unwrap_or(run_dir),
        identity: json!({"run_id": run.manifest.run_id, "campaign": run.manifest.campaign, "weights_digest": weights}),
        inputs,
    })
}

fn steps_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), cli::draw_target());
    bar.set_style(
        ProgressStyle::with_template(
            "training [{bar:30}] {pos}/{len} steps {per_sec} eta {eta} {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Everything that can be refused cheaply is checked before any training starts.
    let key = cli::signing_key(args.key.as_deref())?;
    husai_core::store::check_campaign(&args.campaign)?;
    let info = activations::inspect(&args.data, args.tensor.as_deref())?;
    let (row_start, row_end) = args.rows.unwrap_or((0, info.rows));
    if row_end > info.rows {
        bail!(
            "--rows {row_start}:{row_end} runs past the end of {} ({} rows)",
            args.data.display(),
            info.rows
        );
    }
    let steps = match (args.steps, args.epochs) {
        (Some(s), None) => s,
        (None, Some(e)) => epochs_to_steps(e, row_end - row_start, args.batch)?,
        _ => unreachable!("clap's `length` group requires exactly one of --steps and --epochs"),
    };
    super::plugins::check_plugin_dirs(&args.plugin_dirs)?;
    let host = PluginHost::for_current_exe(&args.plugin_dirs)?.with_timeout(args.timeout);
    let plugin = host.find(&args.plugin)?;
    // With keys/plugins.lock present, only pinned libraries run (docs/threat-model.md).
    husai_core::plugin::pin::check_pinned(
        &args.keys,
        &plugin,
        husai_core::plugin::pin::allow_unpinned_from_env(),
    )?;
    if plugin.description.kind != PluginKind::Trainer {
        bail!(
            "plugin {} ({}) is a {} plugin; `train` needs a trainer",
            args.plugin,
            plugin.library_path.display(),
            plugin.description.kind
        );
    }

    let input = data_input(&args)?;
    let resume = args
        .resume
        .as_ref()
        .map(|dir| resume_inputs(dir, &args))
        .transpose()?;
    let dataset_sha256 = match input.digest.get("sha256") {
        Some(hex) => hex.clone(),
        None => digest::digest_file(&args.data, DigestMethod::Sha256)?.hex,
    };
    let mut config = json!({
        "d_sae": args.d_sae, "k": args.k, "seed": args.seed, "steps": steps, "batch": args.batch, "lr": args.lr,
    });
    if let Some(t) = &args.tensor {
        config["tensor"] = json!(t);
    }
    // Only an explicit selection enters the config, so a run on the whole file hashes the same as before.
    if args.rows.is_some() {
        config["rows"] = json!({"start": row_start, "end": row_end});
    }
    if let Some(r) = &resume {
        config["resume_from"] = r.identity.clone();
    }

    let store = RunStore::open(&args.results)?;
    let staged = store.stage(&args.campaign, RunKind::Train)?;
    let data_abs = std::path::absolute(&args.data).unwrap_or_else(|_| args.data.clone());
    let request = RunRequest {
        config: config.clone(),
        inputs: {
            let mut inputs = BTreeMap::from([("activations".to_owned(), data_abs)]);
            if let Some(r) = &resume {
                inputs.insert("resume".to_owned(), r.dir.clone());
            }
            inputs
        },
        output_dir: staged.dir().to_path_buf(),
    };
    let bar = steps_bar(steps as u64);
    let outcome = host.run(&plugin, &request, &mut |event| {
        bar.set_length(event.total);
        bar.set_position(event.done);
        bar.set_message(event.message.clone());
    });
    bar.finish_and_clear();
    // On error `staged` is dropped here, which deletes the staging directory: no half-finished run remains.
    let result = outcome?;
    check_outputs(staged.dir(), &result)?;

    let mut draft = ManifestDraft::new(cli::tool_info());
    draft.plugin = Some(PluginInfo {
        name: plugin.description.name.clone(),
        version: plugin.description.version.clone(),
        api_version: plugin.api_version,
        library_path: plugin.library_path.display().to_string(),
        library_sha256: plugin.library_sha256.clone(),
    });
    draft.config = Some(config);
    draft.seeds = vec![args.seed];
    draft.dataset = Some(DatasetRef {
        path: args.data.display().to_string(),
        sha256: dataset_sha256,
        format: info.format.as_str().to_owned(),
        dtype: info.dtype.as_str().to_owned(),
        shape: info.shape().to_vec(),
        rows: RowRange {
            start: row_start as u64,
            end: row_end as u64,
        },
    });
    draft.inputs = vec![input];
    if let Some(r) = resume {
        draft.inputs.extend(r.inputs);
    }
    let mut extra = json!({"metrics": result.get("metrics").cloned().unwrap_or(Value::Null)});
    if let Some(e) = args.epochs {
        extra["epochs"] = json!(e);
    }
    if let Some(t) = &info.tensor {
        extra["tensor"] = json!(t);
    }
    draft.extra = extra;
    let committed = staged.commit(draft, &key, &|_| {})?;

    let metrics = result.get("metrics").cloned().unwrap_or(Value::Null);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "run_id": committed.run_id, "dir": committed.dir, "metrics": metrics,
            }))?
        );
    } else {
        // Non-finite metrics are null in the result; show them as n/a.
        let f = |k: &str, prec: usize| {
            metrics
                .get(k)
                .and_then(Value::as_f64)
                .map_or("n/a".to_owned(), |v| format!("{v:.prec$}"))
        };
        println!(
            "signed train run {}",
            cli::display_path(&committed.dir).display()
        );
        println!(
            "  mse {}  fvu {}  l0 {}  dead fraction {}  (training {} s, {} rows/s)",
            f("mse", 6),
            f("fvu", 4),
            f("l0", 2),
            f("dead_fraction", 4),
            f("wall_s", 3),
            f("rows_per_s", 0)
        );
    }
    Ok(cli::EXIT_OK)
}

/// The plugin's result must list the files it wrote, and they must be there: a plugin that claims outputs it did
/// not write is broken, and signing would hide that.
fn check_outputs(dir: &Path, result: &Value) -> anyhow::Result<()> {
    let outputs = result
        .get("outputs")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("the plugin's result has no \"outputs\" list: {result}"))?;
    for o in outputs {
        let name = o
            .as_str()
            .ok_or_else(|| anyhow!("the plugin's result lists a non-string output {o}"))?;
        if !dir.join(name).is_file() {
            bail!("the plugin reported output {name:?} but did not write it; no run was recorded");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_as_start_colon_end() {
        assert_eq!(parse_rows("0:16384"), Ok((0, 16384)));
        assert_eq!(parse_rows(" 5 : 9 "), Ok((5, 9)));
        assert!(parse_rows("5").unwrap_err().contains("is not START:END"));
        assert!(parse_rows("9:5").unwrap_err().contains("selects no rows"));
        assert!(
            parse_rows("a:5")
                .unwrap_err()
                .contains("START \"a\" is not a row number")
        );
    }

    #[test]
    fn epochs_round_up_to_whole_steps() {
        assert_eq!(epochs_to_steps(1.0, 1000, 256).unwrap(), 4);
        assert_eq!(epochs_to_steps(2.0, 1024, 256).unwrap(), 8);
        assert_eq!(epochs_to_steps(0.01, 1000, 256).unwrap(), 1);
        assert!(
            epochs_to_steps(0.0, 1000, 256)
                .unwrap_err()
                .to_string()
                .contains("--epochs 0 must be a positive")
        );
        assert!(epochs_to_steps(f64::NAN, 1000, 256).is_err());
    }
}
