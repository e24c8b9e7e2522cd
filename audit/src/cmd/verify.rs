//! `husai-audit verify`: re-check runs before any claim upgrade, and in CI.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use husai_core::verify::{self, Severity, VerifyOptions, VerifyReport};

use crate::cli;

/// Verify every run under the given paths (default: results/).
///
/// For each run: the envelope is present and well-formed; a signature verifies under a key the
/// trust policy (keys/trust-policy.json) trusts, unrevoked and in its validity window; the signed
/// manifest matches its schema; every signed file is present, inside the run, a regular file,
/// with the signed size and sha256; no file in the run is unsigned; and every input taken from
/// another run matches that run's signed output, following the chain back. Every failure is
/// reported, not just the first.
///
/// Exit status: 0 all good, 1 any verification failure, 2 a path or file that cannot be read.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directories, files inside runs, or trees of runs.
    #[arg(default_value = "results")]
    paths: Vec<PathBuf>,
    /// Keys directory holding trust-policy.json and the public keys it names.
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// Accept signatures only from keys holding this role. Repeatable.
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// Print a machine-readable report on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let policy = cli::trust_policy(&args.keys)?;
    let started = Instant::now();
    let bar = cli::bytes_bar(0, "verifying");
    let on_total = |total: u64| bar.set_length(total);
    let on_bytes = |n: u64| bar.inc(n);
    let report = verify::verify_paths(
        &args.paths,
        &policy,
        VerifyOptions {
            accepted_roles: (!args.roles.is_empty()).then(|| args.roles.clone()),
            on_bytes: &on_bytes,
            on_total: &on_total,
        },
    );
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();

    if args.json {
        let mut doc = serde_json::to_value(&report)?;
        doc["passed"] = serde_json::Value::Bool(report.passed());
        doc["seconds"] = serde_json::json!(elapsed);
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_readable(&report, elapsed);
    }
    Ok(if report.has_unreadable() {
        cli::exit_usage()
    } else if report.passed() {
        cli::EXIT_OK
    } else {
        cli::exit_fail()
    })
}

fn print_readable(report: &VerifyReport, seconds: f64) {
    for run in &report.runs {
        if run.ok {
            println!(
                "ok    {}  {} {} files, {}, signed by {}",
                cli::display_path(&run.dir).display(),
                run.kind.as_deref().unwrap_or("?"),
                run.subjects,
                cli::human_bytes(run.bytes),
                run.signer.as_deref().map_or("?", |k| &k[..k.len().min(16)])
            );
        } else {
            println!("FAIL  {}", cli::display_path(&run.dir).display());
        }
    }
    for f in &report.findings {
        let tag = match f.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Unreadable => "unreadable",
        };
        eprintln!("{tag}[{}]: {}", f.code, f.message);
    }
    let failed = report.runs.iter().filter(|r| !r.ok).count();
    let problems = report.errors().count();
    let rate = report.bytes_hashed as f64 / seconds.max(1e-9);
    if report.passed() {
        println!(
            "verified {} runs ({} hashed at {}/s) in {seconds:.2} s: all good",
            report.runs.len(),
            cli::human_bytes(report.bytes_hashed),
            cli::human_bytes(rate as u64)
        );
    } else {
        println!(
            "FAILED: {failed} of {} runs failed; {problems} problems (listed on stderr)",
            report.runs.len()
        );
    }
}
