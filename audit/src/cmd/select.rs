//! `husai-audit select`: pick a release candidate from evaluation results and record the decision as a signed run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use husai_core::digest;
use husai_core::manifest::{InputRef, ManifestDraft, RunKind, RunRef};
use husai_core::select::output::{
    self, InputCitation, ParityInputs, ParityRunMetadata, python_json_text,
};
use husai_core::select::{
    InputRole, LcbMethod, LoadedInput, Mode, SelectConfig, UncertaintyMode, Weights, husai,
    load_input_bytes, select,
};
use husai_core::stats::BootstrapSpec;
use husai_core::store::RunStore;
use husai_core::verify;

use crate::cli;

/// Select a release candidate and write the decision as a signed run (kind `select`).
///
/// Strict mode (the default) reads only files inside verified signed runs, groups seeds by
/// condition and configuration hash, counts distinct seeds, bounds group means with Student-t
/// intervals (or a seed bootstrap), and keeps rows with a missing metric off the Pareto front. It
/// writes selection.json, summary.md and pareto.svg.
///
/// Strict mode also takes husai's own SAE train runs as candidates (--run, each with the
/// ood-stress eval run that measured it, --eval-run): one seed row per run, grouped by family
/// and configuration hash, with the ood-stress in-distribution probe gap as its SAEBench delta
/// (an offline analogue) and no CE-Bench delta (not applicable, not missing). The selected
/// representative names its train run, which `husai-audit gate --candidate` takes.
///
/// `--parity` is a drop-in for upstream HUSAI's select_release_candidate.py: same flags and
/// defaults, plain files, upstream's results bit for bit, and upstream's five output files
/// (selection_summary.json, selected_candidate.json, pareto_front.json, candidate_table.json,
/// summary.md), still inside a signed run.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
husai-audit select --key dev.pem --input results/import/<run_id>/frontier_results.json \\\n    \
--input results/import/<run_id>/scaling_results.json\n  \
husai-audit select --parity --key dev.pem --frontier-results frontier.json \\\n    \
--scaling-results scaling.json --require-both-external --json\n  \
husai-audit select --key dev.pem --run results/exp1/<topk_seed0> --eval-run results/exp1/<its_ood_eval> \\\n    \
--run results/exp1/<topk_seed1> --eval-run results/exp1/<its_ood_eval> ...")]
pub struct Args {
    /// Reproduce upstream's selector exactly (plain input files, upstream's outputs).
    #[arg(long)]
    parity: bool,
    /// Frontier-layout results (frontier, routed, matryoshka). Repeatable.
    #[arg(long = "frontier-results", value_name = "FILE")]
    frontier_results: Vec<PathBuf>,
    /// Scaling-study results. Repeatable.
    #[arg(long = "scaling-results", value_name = "FILE")]
    scaling_results: Vec<PathBuf>,
    /// Assignment-consistency v3 results. Repeatable.
    #[arg(long = "assignment-results", value_name = "FILE")]
    assignment_results: Vec<PathBuf>,
    /// Strict mode: any selector input; its kind is detected. Repeatable.
    #[arg(long = "input", value_name = "FILE", conflicts_with = "parity")]
    inputs: Vec<PathBuf>,
    /// Strict mode: a husai SAE train run (its directory, results/<campaign>/<run_id>) as a candidate. Repeatable.
    ///
    /// The run is verified (signature, trust policy, provenance chain) before anything of it is read, and its
    /// metrics.json is read through its signed digest. Its row: condition and architecture = the trainer plugin (the
    /// family, e.g. sae-topk); seed = the config's seed; group = family + hash of the config without the seed, so
    /// seeds of one configuration pool and two configurations are two groups; checkpoint = campaign/run_id (what
    /// `gate --candidate` takes); train EV = 1 - eval.fvu of metrics.json (held-out rows); SAEBench delta = from its
    /// --eval-run; CE-Bench does not apply (a husai row is complete without it). Runs that diverged or were
    /// interrupted are never candidates: they are listed in selection.json's skipped_records.
    #[arg(long = "run", value_name = "RUN_DIR", conflicts_with = "parity")]
    runs: Vec<PathBuf>,
    /// Strict mode: the ood-stress eval run (its directory) of one --run; at most one per train run. Repeatable.
    ///
    /// The summary's sae_run must be one of the --run runs (and its weights digest that run's). The row's SAEBench
    /// delta is its mean gap over in-distribution tasks at gate_k: AUC of a k-sparse probe on the SAE's latents
    /// minus AUC of a dense probe on the raw rows. That is the offline analogue of SAEBench's sparse-probing
    /// best_minus_llm_auc, the same definition on synthetic tasks (ground-truth features of the data synth run),
    /// with k fixed in the eval's config rather than picked on the test AUC; compare it between husai runs, not
    /// with upstream's SAEBench numbers. All eval runs must share one ood-stress task setting and data run. A --run
    /// without an eval run is incomplete: dropped as missing_metric unless --allow-incomplete.
    #[arg(
        long = "eval-run",
        value_name = "RUN_DIR",
        requires = "runs",
        conflicts_with = "parity"
    )]
    eval_runs: Vec<PathBuf>,
    /// Per-row floor on the SAEBench delta (applied when present).
    #[arg(long, default_value_t = -1e9, allow_negative_numbers = true)]
    min_saebench_delta: f64,
    /// Per-row floor on the CE-Bench delta (applied when present).
    #[arg(long, default_value_t = -1e9, allow_negative_numbers = true)]
    min_cebench_delta: f64,
    /// Drop rows missing either delta (strict mode always does, unless --allow-incomplete).
    #[arg(long)]
    require_both_external: bool,
    /// Strict mode: keep rows missing a delta in the ranking (never on the Pareto front).
    #[arg(long, conflicts_with_all = ["parity", "require_both_external"])]
    allow_incomplete: bool,
    /// Group seeds into conditions (the default; upstream's flag, kept for drop-in use).
    #[arg(long, conflicts_with = "seed_level_selection")]
    group_by_condition: bool,
    /// Rank individual seed rows instead of groups.
    #[arg(long)]
    seed_level_selection: bool,
    /// What ranks a group: its lower confidence bound (lcb) or its mean (point).
    #[arg(long, default_value = "lcb", value_parser = ["lcb", "point"])]
    uncertainty_mode: String,
    /// Minimum group size: distinct seeds (strict) or rows (parity).
    #[arg(long, default_value_t = 3, allow_negative_numbers = true)]
    min_seeds_per_group: i64,
    /// Weight of the normalised SAEBench delta in the joint score.
    #[arg(long, default_value_t = 0.5)]
    weight_saebench: f64,
    /// Weight of the normalised CE-Bench delta in the joint score.
    #[arg(long, default_value_t = 0.5)]
    weight_cebench: f64,
    /// Weight of the normalised training explained variance (weights are not normalised, as upstream).
    #[arg(long, default_value_t = 0.1)]
    weight_train_ev: f64,
    /// Strict mode: how group bounds are computed.
    #[arg(long, default_value = "student-t", value_parser = ["student-t", "bootstrap"], conflicts_with = "parity")]
    lcb_method: String,
    /// Strict mode: two-sided confidence level of group intervals.
    #[arg(long, default_value_t = 0.95, conflicts_with = "parity")]
    confidence: f64,
    /// Bootstrap resamples (with --lcb-method bootstrap).
    #[arg(long, default_value_t = BootstrapSpec::default().resamples)]
    bootstrap_resamples: u32,
    /// Bootstrap generator seed (SplitMix64; with --lcb-method bootstrap).
    #[arg(long, default_value_t = BootstrapSpec::default().seed)]
    bootstrap_seed: u64,
    /// Campaign the decision run belongs to (results/<campaign>/).
    #[arg(long, default_value = "decisions")]
    campaign: String,
    /// Signing key (PKCS#8 PEM ed25519).
    #[arg(long, env = "HUSAI_SIGNING_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Results tree to write into. `--output-dir` (upstream's flag) is accepted as an alias.
    #[arg(
        long,
        alias = "output-dir",
        default_value = "results",
        value_name = "DIR"
    )]
    results: PathBuf,
    /// Keys directory with trust-policy.json, used to verify input runs (strict mode).
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// Print the selection JSON (parity: upstream's selection_summary.json) to stdout.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn config(&self) -> SelectConfig {
        let mode = if self.parity {
            Mode::Parity
        } else {
            Mode::Strict
        };
        SelectConfig {
            mode,
            group_by_condition: !self.seed_level_selection,
            uncertainty: if self.uncertainty_mode == "point" {
                UncertaintyMode::Point
            } else {
                UncertaintyMode::Lcb
            },
            lcb_method: if self.lcb_method == "bootstrap" {
                LcbMethod::Bootstrap(BootstrapSpec {
                    resamples: self.bootstrap_resamples,
                    seed: self.bootstrap_seed,
                })
            } else {
                LcbMethod::StudentT
            },
            confidence: self.confidence,
            min_seeds_per_group: self.min_seeds_per_group,
            min_saebench_delta: self.min_saebench_delta,
            min_cebench_delta: self.min_cebench_delta,
            require_both_external: match mode {
                Mode::Parity => self.require_both_external,
                Mode::Strict => !self.allow_incomplete,
            },
            weights: Weights {
                saebench: self.weight_saebench,
                cebench_delta: self.weight_cebench,
                train_ev: self.weight_train_ev,
            },
        }
    }

    /// Inputs in processing order: all frontier files, then scaling, then assignment (upstream's order, whatever
    /// the command line's), then strict `--input` files.
    fn ordered_inputs(&self) -> Vec<(InputRole, &Path)> {
        let mut out: Vec<(InputRole, &Path)> = Vec::new();
        out.extend(
            self.frontier_results
                .iter()
                .map(|p| (InputRole::Frontier, p.as_path())),
        );
        out.extend(
            self.scaling_results
                .iter()
                .map(|p| (InputRole::Scaling, p.as_path())),
        );
        out.extend(
            self.assignment_results
                .iter()
                .map(|p| (InputRole::Assignment, p.as_path())),
        );
        out.extend(self.inputs.iter().map(|p| (InputRole::Auto, p.as_path())));
        out
    }
}

/// One input, read once: its bytes were hashed (and in strict mode checked against the signed digest) before they
/// were parsed.
struct ReadInput {
    loaded: LoadedInput,
    citation: InputCitation,
    manifest_ref: InputRef,
}

fn config_json(config: &SelectConfig, args: &Args) -> serde_json::Value {
    serde_json::json!({
        "mode": config.mode.as_str(),
        "frontier_results": args.frontier_results,
        "scaling_results": args.scaling_results,
        "assignment_results": args.assignment_results,
        "inputs": args.inputs,
        "runs": args.runs,
        "eval_runs": args.eval_runs,
        "group_by_condition": config.group_by_condition,
        "uncertainty_mode": config.uncertainty.as_str(),
        "lcb_method": match config.mode {
            Mode::Parity => "z=1.96 (upstream parity)".to_string(),
            Mode::Strict => config.lcb_method.describe(),
        },
        "confidence": config.confidence,
        "min_seeds_per_group": config.min_seeds_per_group,
        "min_saebench_delta": config.min_saebench_delta,
        "min_cebench_delta": config.min_cebench_delta,
        "require_both_external": config.require_both_external,
        "weights": {
            "saebench": config.weights.saebench,
            "cebench_delta": config.weights.cebench_delta,
            "train_ev": config.weights.train_ev,
        },
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config();
    let ordered = args.ordered_inputs();
    if ordered.is_empty() && args.runs.is_empty() {
        bail!(
            "no selector inputs: give --frontier-results, --scaling-results, --assignment-results \
             or (strict mode) --input files or husai train runs (--run)"
        );
    }
    husai_core::store::check_campaign(&args.campaign)?;
    let key = cli::signing_key(args.key.as_deref())?;

    let policy = match config.mode {
        Mode::Strict => Some(cli::trust_policy(&args.keys)?),
        Mode::Parity => None,
    };
    let mut read = Vec::with_capacity(ordered.len());
    for (role, path) in &ordered {
        match read_input(*role, path, config.mode, policy.as_ref()) {
            Ok(input) => read.push(input),
            Err(InputFailure::Verification(message)) => {
                eprintln!("error: {message}");
                return Ok(cli::exit_fail());
            }
            Err(InputFailure::Other(e)) => return Err(e),
        }
    }
    let mut loaded: Vec<LoadedInput> = read.iter().map(|r| r.loaded.clone()).collect();
    let mut cited_husai = Vec::new();
    if let Some(policy) = policy.as_ref().filter(|_| !args.runs.is_empty()) {
        match husai::load_husai_runs(&args.runs, &args.eval_runs, policy) {
            Ok(h) => {
                loaded.extend(h.loaded);
                cited_husai = h.cited;
            }
            Err(e) if e.is_verification_failure() => {
                eprintln!("error: {e}");
                return Ok(cli::exit_fail());
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Select before staging anything: a failed selection leaves no run directory behind.
    let selection = select(&loaded, &config)?;

    let store = RunStore::open(&args.results)?;
    let staged = store.stage(&args.campaign, RunKind::Select)?;
    let run_id = staged.run_id().to_string();
    let stdout_json = match config.mode {
        Mode::Parity => {
            let argv: Vec<String> = std::env::args().collect();
            let meta = ParityRunMetadata {
                timestamp_utc: parity_timestamp(),
                git_commit: cli::tool_info().git_commit,
                command: argv.join(" "),
                run_id: run_id.clone(),
            };
            let display =
                |paths: &[PathBuf]| paths.iter().map(|p| p.display().to_string()).collect();
            let inputs = ParityInputs {
                frontier_results: display(&args.frontier_results),
                scaling_results: display(&args.scaling_results),
                assignment_results: display(&args.assignment_results),
            };
            let artifact_dir = format!("{}/{}/{run_id}", args.results.display(), args.campaign);
            let out = output::parity_outputs(&selection, &meta, &inputs, &artifact_dir);
            let summary_text = python_json_text(&out.selection_summary);
            write(staged.dir(), "selection_summary.json", &summary_text)?;
            write(
                staged.dir(),
                "selected_candidate.json",
                &python_json_text(&out.selected_candidate),
            )?;
            write(
                staged.dir(),
                "pareto_front.json",
                &python_json_text(&out.pareto_front),
            )?;
            write(
                staged.dir(),
                "candidate_table.json",
                &python_json_text(&out.candidate_table),
            )?;
            write(staged.dir(), "summary.md", &out.summary_md)?;
            summary_text
        }
        Mode::Strict => {
            let citations: Vec<InputCitation> = read
                .iter()
                .map(|r| r.citation.clone())
                .chain(cited_husai.iter().map(|c| c.citation.clone()))
                .collect();
            let doc = output::strict_selection_json(&selection, &citations);
            if let Err(violations) = output::validate_selection(&doc) {
                bail!(
                    "internal error: the selection does not match schemas/selection.v1.json ({}); nothing was written",
                    violations.join("; ")
                );
            }
            let text = format!("{}\n", serde_json::to_string_pretty(&doc)?);
            write(staged.dir(), "selection.json", &text)?;
            write(
                staged.dir(),
                "summary.md",
                &output::strict_markdown(&selection, &run_id),
            )?;
            write(
                staged.dir(),
                "pareto.svg",
                &husai_core::select::svg::pareto_svg(&selection),
            )?;
            text
        }
    };

    let mut draft = ManifestDraft::new(cli::tool_info());
    draft.config = Some(config_json(&config, &args));
    draft.inputs = read
        .iter()
        .map(|r| r.manifest_ref.clone())
        .chain(cited_husai.iter().map(|c| c.input_ref.clone()))
        .collect();
    if let LcbMethod::Bootstrap(spec) = config.lcb_method
        && config.mode == Mode::Strict
    {
        draft.seeds = vec![spec.seed];
    }
    let selected = selection.selected();
    let representative = &selection.rows[selected.representative];
    draft.extra = serde_json::json!({
        "select": {
            "mode": config.mode.as_str(),
            "selected_candidate": selected.id,
            "representative_checkpoint": representative.checkpoint,
            "representative_run": representative.husai.as_ref().map(|h| h.run.id()),
            "counts": {
                "total_rows": selection.rows.len(),
                "eligible_rows": selection.eligible.len(),
                "candidates": selection.candidates.len(),
                "pareto_count": selection.pareto_count(),
            },
        }
    });
    let committed = staged.commit(draft, &key, &|_| {})?;

    if args.json {
        print!("{stdout_json}");
    } else {
        println!(
            "selected {} ({} of {} candidates on the Pareto front); run {}/{} in {}",
            selected.id,
            selection.pareto_count(),
            selection.candidates.len(),
            committed.campaign,
            committed.run_id,
            cli::display_path(&committed.dir).display()
        );
    }
    Ok(cli::EXIT_OK)
}

enum InputFailure {
    /// A signed input that fails verification, or an unsigned input in strict mode: exit status 1.
    Verification(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for InputFailure {
    fn from(e: anyhow::Error) -> Self {
        InputFailure::Other(e)
    }
}

fn read_input(
    role: InputRole,
    path: &Path,
    mode: Mode,
    policy: Option<&husai_core::trust::TrustPolicy>,
) -> Result<ReadInput, InputFailure> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "cannot read selector input {}; check the path",
            path.display()
        )
    })?;
    let sha256 = digest::sha256_hex(&bytes);
    let role_name = |loaded: &LoadedInput| loaded.source.as_str().to_string();
    match mode {
        Mode::Parity => {
            let display = path.display().to_string();
            let loaded = load_input_bytes(path, &bytes, &display, role, mode)
                .map_err(anyhow::Error::from)?;
            Ok(ReadInput {
                citation: InputCitation {
                    role: role_name(&loaded),
                    path: display.clone(),
                    sha256: sha256.clone(),
                    campaign: None,
                    run_id: None,
                    subject: None,
                },
                manifest_ref: InputRef {
                    path: display,
                    digest: BTreeMap::from([("sha256".to_string(), sha256)]),
                    run: None,
                },
                loaded,
            })
        }
        Mode::Strict => {
            let policy = policy.expect("strict mode loads the trust policy");
            let Some((run_dir, subject)) = verify::enclosing_run(path) else {
                return Err(InputFailure::Verification(format!(
                    "{} is not inside a signed run; strict selection reads only verified inputs. \
                     Bring it under provenance first (husai-audit import or attest), or use --parity for plain upstream files",
                    path.display()
                )));
            };
            let run = verify::load_verified_run(&run_dir, policy).map_err(|e| {
                InputFailure::Verification(format!(
                    "selector input {} is inside run {} which fails verification: {e}",
                    path.display(),
                    run_dir.display()
                ))
            })?;
            husai_core::inputs::require_ok(&run).map_err(|e| {
                InputFailure::Verification(format!("selector input {}: {e}", path.display()))
            })?;
            let signed = run.subject(&subject).ok_or_else(|| {
                InputFailure::Verification(format!(
                    "{} is inside run {} but is not one of its signed outputs",
                    path.display(),
                    run_dir.display()
                ))
            })?;
            match signed.digest.get("sha256") {
                Some(hex) if *hex == sha256 => {}
                Some(_) => {
                    return Err(InputFailure::Verification(format!(
                        "{} changed after its run was verified (sha256 differs from the signed digest)",
                        path.display()
                    )));
                }
                None => {
                    return Err(InputFailure::Other(anyhow!(
                        "{} is signed with a sharded digest (a file over 64 MiB); selector inputs are small JSON files, \
                         so this is not a selector input",
                        path.display()
                    )));
                }
            }
            let display = format!(
                "{}/{}/{subject}",
                run.manifest.campaign, run.manifest.run_id
            );
            let loaded = load_input_bytes(path, &bytes, &display, role, mode)
                .map_err(anyhow::Error::from)?;
            Ok(ReadInput {
                citation: InputCitation {
                    role: role_name(&loaded),
                    path: display,
                    sha256: sha256.clone(),
                    campaign: Some(run.manifest.campaign.clone()),
                    run_id: Some(run.manifest.run_id.clone()),
                    subject: Some(subject.clone()),
                },
                manifest_ref: InputRef {
                    path: path.display().to_string(),
                    digest: BTreeMap::from([("sha256".to_string(), sha256)]),
                    run: Some(RunRef {
                        campaign: run.manifest.campaign.clone(),
                        run_id: run.manifest.run_id.clone(),
                        subject,
                    }),
                },
                loaded,
            })
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Upstream's `timestamp_utc` form: `2026-02-15T19:04:02+00:00`.
fn parity_timestamp() -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
    time::OffsetDateTime::now_utc()
        .format(fmt)
        .expect("a UTC time always formats")
}
