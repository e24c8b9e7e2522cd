//! `husai-audit claims`: check the claims registry, or run upstream's experiment-consistency audit (parity).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use husai_core::claims::check::Outcome;
use husai_core::claims::consistency::{self, ConsistencyCheck, ReportInfo};
use husai_core::claims::stats as claim_stats;
use husai_core::claims::{self as core_claims};
use husai_core::legacy::json;
use husai_core::legacy::pyrepr::json_dumps;
use husai_core::manifest::{InputRef, ManifestDraft, RunKind};
use husai_core::stats::BootstrapSpec;
use husai_core::store::RunStore;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::cli;

/// Claims: check the registry against verified runs, or reproduce upstream's consistency audit.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Check every claim in the registry against verified signed runs, release claims against their signed gate
    /// report, and every claim tag in the registry's Markdown documents. Exit 0 all hold, 1 any fails, 2 error.
    Check(CheckArgs),
    /// Upstream's verify_experiment_consistency.py (checks 1-3 and 6-8; 4 and 5 need numpy's RNG and are not
    /// ported). Checks run for the inputs given. Writes experiment_consistency_report.{json,md} as a signed run of
    /// kind `gate`. Exit 0 overall pass, 1 otherwise.
    Consistency(ConsistencyArgs),
    /// Statistics a claim can cite, computed by husai from a signed upstream file and written as a signed run of
    /// kind `eval` whose manifest records that file by its run. `lambda-difference`: the paired seed-level bootstrap
    /// of the mean trained pairwise PWMCC at --treatment minus at --control, from an upstream assignment-consistency
    /// results.json (one record per lambda). Exit 0 written, 2 error.
    Stats(StatsArgs),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Statistic {
    /// Mean trained pairwise PWMCC at one lambda minus another, resampling seeds (paired).
    LambdaDifference,
}

#[derive(Debug, clap::Args)]
struct StatsArgs {
    /// The statistic.
    #[arg(value_enum)]
    statistic: Statistic,
    /// The upstream results.json, a signed output of a verified run (e.g. results/husai-evidence/<run_id>/...).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// The lambda whose mean is the minuend.
    #[arg(long, value_name = "LAMBDA")]
    treatment: f64,
    /// The lambda subtracted.
    #[arg(long, value_name = "LAMBDA", default_value_t = 0.0)]
    control: f64,
    /// Confidence level of the percentile interval.
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = BootstrapSpec::default().resamples)]
    resamples: u32,
    /// Seed of the SplitMix64 generator (recorded in the result).
    #[arg(long, default_value_t = BootstrapSpec::default().seed)]
    bootstrap_seed: u64,
    /// Campaign of the new run (results/<campaign>/).
    #[arg(long, default_value = "claims-stats")]
    campaign: String,
    /// Signing key (PKCS#8 PEM ed25519).
    #[arg(long, env = "HUSAI_SIGNING_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Results tree to write into.
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    /// Keys directory with trust-policy.json (the input's run must verify against it).
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// Print the result JSON to stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The registry file.
    #[arg(long, default_value = "claims.json", value_name = "FILE")]
    registry: PathBuf,
    /// Results tree holding the cited runs.
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    /// Keys directory with trust-policy.json.
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// Print the full report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ConsistencyArgs {
    /// Phase-4a results.json (check 1).
    #[arg(long, value_name = "FILE")]
    phase4a_results: Option<PathBuf>,
    /// Core-ablations results: a results.json, or a root whose latest run_*/results.json is used (checks 2, 3).
    #[arg(long, value_name = "PATH")]
    core_ablations_root: Option<PathBuf>,
    /// Assignment-v2 results: a results.json, or a root as above (checks 6, 7).
    #[arg(long, value_name = "PATH")]
    assignment_v2_root: Option<PathBuf>,
    /// Release policy: a release_policy.json, or a root whose latest run_*/release_policy.json is used (check 8).
    #[arg(long, value_name = "PATH")]
    stress_gates_root: Option<PathBuf>,
    /// Campaign of the audit run (results/<campaign>/).
    #[arg(long, default_value = "decisions")]
    campaign: String,
    /// Signing key (PKCS#8 PEM ed25519).
    #[arg(long, env = "HUSAI_SIGNING_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Results tree to write into.
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    /// Print the report JSON to stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Check(a) => check(a),
        Action::Consistency(a) => consistency_audit(a),
        Action::Stats(a) => stats(a),
    }
}

fn stats(args: StatsArgs) -> anyhow::Result<ExitCode> {
    let key = cli::signing_key(args.key.as_deref())?;
    let trust = cli::trust_policy(&args.keys)?;
    let store = RunStore::open(&args.results)?;
    let Statistic::LambdaDifference = args.statistic;
    let (result, committed) = claim_stats::record_lambda_difference(
        &store,
        &trust,
        &key,
        cli::tool_info(),
        claim_stats::LambdaDifferenceRequest {
            input: &args.input,
            treatment: args.treatment,
            control: args.control,
            confidence: args.confidence,
            spec: BootstrapSpec {
                resamples: args.resamples,
                seed: args.bootstrap_seed,
            },
            campaign: &args.campaign,
        },
    )
    .with_context(|| format!("claims stats lambda-difference on {}", args.input.display()))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result.to_json()).context("serialising the result")?
        );
    } else {
        let i = &result.interval;
        println!(
            "lambda {} minus lambda {}: mean pairwise PWMCC difference {:+.4}, {}% interval [{:.4}, {:.4}] over {} seeds ({} resamples, seed {})",
            result.treatment.lambda,
            result.control.lambda,
            i.estimate,
            args.confidence * 100.0,
            i.low,
            i.high,
            i.n,
            args.resamples,
            args.bootstrap_seed
        );
        if let (Some(seed), Some(w), Some(wo)) = (
            result.reference_seed,
            &result.with_reference,
            &result.without_reference,
        ) {
            println!(
                "pairs with reference seed {seed}: {} pairs, mean difference {:+.4}; without: {} pairs, mean difference {:+.4}",
                w.count, w.mean_difference, wo.count, wo.mean_difference
            );
        }
        println!("run: {}", cli::display_path(&committed.dir).display());
    }
    Ok(cli::EXIT_OK)
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let trust = cli::trust_policy(&args.keys)?;
    let report = core_claims::check_registry(&args.registry, &args.results, &trust);
    if let Some(e) = &report.registry_error {
        return Err(anyhow!("{e}"));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("serialising the claims report")?
        );
    } else {
        print_report(&report);
    }
    Ok(if report.passed() {
        cli::EXIT_OK
    } else {
        cli::exit_fail()
    })
}

/// The readable form of a claims report (also used by `verify`).
pub fn print_report(report: &core_claims::check::ClaimsReport) {
    for c in &report.claims {
        let word = match c.outcome {
            Outcome::Pass => "ok   ",
            Outcome::Fail => "FAIL ",
            Outcome::Error => "ERROR",
        };
        println!("{word} {} ({})", c.id, c.level);
        for e in c.evidence.iter().filter(|e| e.outcome != Outcome::Pass) {
            println!(
                "      {}:{}{} {}",
                e.run,
                e.subject,
                e.pointer,
                e.message.as_deref().unwrap_or("")
            );
        }
        for m in &c.messages {
            println!("      {m}");
        }
    }
    for f in &report.document_findings {
        println!("FAIL  {}:{}: {}", f.path.display(), f.line, f.message);
    }
    println!(
        "{} claims, {} documents, {} claim spans checked",
        report.claims.len(),
        report.documents_checked,
        report.spans_checked
    );
}

/// Upstream's "latest" discovery: the last of the lexicographically sorted `<root>/run_*/<file>`; a file is used as is.
fn resolve(path: &Path, file: &str) -> anyhow::Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.is_dir() {
        return Err(anyhow!("{}: no such file or directory", path.display()));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot list {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("run_"))
        })
        .map(|p| p.join(file))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().ok_or_else(|| {
        anyhow!(
            "{}: no run_*/{file} below it (upstream raised FileNotFoundError)",
            path.display()
        )
    })
}

fn consistency_audit(args: ConsistencyArgs) -> anyhow::Result<ExitCode> {
    let key = cli::signing_key(args.key.as_deref())?;
    husai_core::store::check_campaign(&args.campaign)?;
    let phase4a = args
        .phase4a_results
        .as_deref()
        .map(|p| resolve(p, "results.json"))
        .transpose()?;
    let core = args
        .core_ablations_root
        .as_deref()
        .map(|p| resolve(p, "results.json"))
        .transpose()?;
    let v2 = args
        .assignment_v2_root
        .as_deref()
        .map(|p| resolve(p, "results.json"))
        .transpose()?;
    let gates = args
        .stress_gates_root
        .as_deref()
        .map(|p| resolve(p, "release_policy.json"))
        .transpose()?;
    if phase4a.is_none() && core.is_none() && v2.is_none() && gates.is_none() {
        return Err(anyhow!(
            "no inputs: give at least one of --phase4a-results, --core-ablations-root, --assignment-v2-root, --stress-gates-root"
        ));
    }
    let read = |p: &Option<PathBuf>| p.as_deref().map(json::read_file).transpose();
    let mut checks: Vec<ConsistencyCheck> = Vec::new();
    if let Some(v) = read(&phase4a)? {
        checks.push(consistency::phase4a_training_signal(&v));
    }
    if let Some(v) = read(&core)? {
        checks.push(consistency::core_sweep_has_positive_delta(&v, "k_sweep"));
        checks.push(consistency::core_sweep_has_positive_delta(
            &v,
            "d_sae_sweep",
        ));
    }
    if let Some(v) = read(&v2)? {
        checks.push(consistency::assignment_v2_internal_gain_positive(&v));
        checks.push(consistency::assignment_v2_external_gate_pass(&v));
    }
    if let Some(v) = read(&gates)? {
        checks.push(consistency::stress_release_policy_pass_all(&v));
    }

    let shown = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let info = ReportInfo {
        timestamp_utc: OffsetDateTime::now_utc()
            .format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]+00:00"
            ))
            .context("formatting the timestamp")?,
        git_commit: cli::tool_info()
            .git_commit
            .unwrap_or_else(|| "unknown".to_string()),
        inputs: vec![
            ("phase4a", shown(&phase4a)),
            ("core", shown(&core)),
            ("adaptive_search", None),
            ("adaptive_control", None),
            ("consistency", None),
            ("assignment_v2", shown(&v2)),
            ("stress_gates", shown(&gates)),
        ],
    };
    let mut json_text = json_dumps(&consistency::report_json(&info, &checks), 2);
    json_text.push('\n');
    let md = consistency::report_markdown(&info, &checks);

    let store = RunStore::open(&args.results)?;
    let staged = store.stage(&args.campaign, RunKind::Gate)?;
    for (name, text) in [
        ("experiment_consistency_report.json", &json_text),
        ("experiment_consistency_report.md", &md),
    ] {
        let path = staged.dir().join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut draft = ManifestDraft::new(cli::tool_info());
    for p in [&phase4a, &core, &v2, &gates].into_iter().flatten() {
        let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
        draft.inputs.push(InputRef {
            path: p.display().to_string(),
            digest: BTreeMap::from([(
                "sha256".to_string(),
                husai_core::digest::sha256_hex(&bytes),
            )]),
            run: None,
        });
    }
    let overall = consistency::overall_pass(&checks);
    draft.config = Some(
        serde_json::json!({"mode": "parity", "upstream_script": "verify_experiment_consistency.py"}),
    );
    draft.extra =
        serde_json::json!({"mode": "parity", "overall_pass": overall, "checks": checks.len()});
    let committed = staged.commit(draft, &key, &|_| {})?;
    if args.json {
        print!("{json_text}");
    } else {
        for c in &checks {
            println!("{:<45} {}", c.id, if c.passed() { "pass" } else { "FAIL" });
        }
        println!("overall_pass: {overall}");
        println!("run: {}", cli::display_path(&committed.dir).display());
    }
    Ok(if overall {
        cli::EXIT_OK
    } else {
        cli::exit_fail()
    })
}
