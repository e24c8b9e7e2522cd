//! `husai-audit verify`: re-check runs before any claim upgrade, and in CI.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use husai_core::trust::TrustPolicy;
use husai_core::untrusted::{display_path, escape_for_terminal};
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
/// Then the claims registry (--claims FILE; or claims.json, when it exists and no PATH is given)
/// is checked: every claim against the verified runs it cites (results root: the first PATH,
/// default results/), release-level claims
/// against a signed gate report with pass_all=true, and numbers quoted under claim tags in the
/// registry's Markdown documents against the evidence.
///
/// A leftover `.staging-<run_id>-<pid>` directory (an interrupted or in-flight run) fails
/// verification unless --allow-staging is given; a `.staging-*` name the store does not make
/// fails always. File names are escaped before printing (control characters as \u{..}).
///
/// A tree with no runs at all fails (a CI job pointed at the wrong directory must not pass) unless
/// --allow-empty is given. Whatever fails, the last line starts with FAILED and names what failed:
/// runs, an empty tree, the claims registry or claims. --json prints every path relative to the
/// results root (`results_root` in the report).
///
/// --key PUB.pem checks signatures against that one public key instead of the trust policy, like
/// `cosign verify-blob --key`: a one-off check that BYPASSES the policy (no roles, validity window,
/// revocation or plugin pins apply), labelled so in the output.
///
/// Exit status: 0 all good, 1 any verification or claim failure (an empty tree included), 2 a
/// path, file, key or registry that cannot be read.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directories, files inside runs, or trees of runs [default: results].
    paths: Vec<PathBuf>,
    /// Keys directory holding trust-policy.json and the public keys it names.
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// One-off check against this single public key (SPKI PEM), BYPASSING the trust policy: no
    /// roles, validity window, revocation or plugin pins are checked (as `cosign verify-blob --key`).
    #[arg(long, value_name = "PUB.pem", conflicts_with = "keys")]
    key: Option<PathBuf>,
    /// Pass when the paths hold no runs at all (by default an empty tree fails: a wrong path).
    #[arg(long)]
    allow_empty: bool,
    /// Accept signatures only from keys holding this role. Repeatable.
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// Claims registry to check after the runs (default: claims.json, when it exists).
    #[arg(long, value_name = "FILE")]
    claims: Option<PathBuf>,
    /// Do not check the claims registry.
    #[arg(long, conflicts_with = "claims")]
    no_claims: bool,
    /// Print a machine-readable report on stdout.
    #[arg(long)]
    json: bool,
    /// Report leftover staging directories of interrupted or in-flight runs as warnings instead
    /// of failing.
    #[arg(long)]
    allow_staging: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let policy = match &args.key {
        Some(pem) => {
            let policy = TrustPolicy::single_key(pem)
                .map_err(|e| anyhow::anyhow!("--key {}: {e}", display_path(pem)))?;
            eprintln!(
                "note: --key {}: checking signatures against this one key, BYPASSING the trust policy (no roles, validity window, revocation or plugin pins are checked)",
                display_path(pem)
            );
            policy
        }
        None => cli::trust_policy(&args.keys)?,
    };
    // Verifying the project's own results (no PATH) also checks the project's claims.
    let own_results = args.paths.is_empty();
    let paths = if own_results {
        vec![PathBuf::from("results")]
    } else {
        args.paths.clone()
    };
    let started = Instant::now();
    let bar = cli::bytes_bar(0, "verifying");
    let on_total = |total: u64| bar.set_length(total);
    let on_bytes = |n: u64| bar.inc(n);
    let mut report = verify::verify_paths(
        &paths,
        &policy,
        VerifyOptions {
            accepted_roles: (!args.roles.is_empty()).then(|| args.roles.clone()),
            on_bytes: &on_bytes,
            on_total: &on_total,
            allow_staging: args.allow_staging,
            now: None,
        },
    );
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();

    let registry = match (&args.claims, args.no_claims) {
        (_, true) => None,
        (Some(path), false) => Some(path.clone()),
        (None, false) => {
            Some(PathBuf::from(DEFAULT_REGISTRY)).filter(|p| own_results && p.exists())
        }
    };
    let results_root = paths[0].clone();
    let claims = registry.map(|r| husai_core::claims::check_registry(&r, &results_root, &policy));

    let empty = report.runs.is_empty() && !args.allow_empty;
    let mut failures = Vec::new();
    let failed_runs = report.runs.iter().filter(|r| !r.ok).count();
    if !report.passed() {
        failures.push(format!(
            "{failed_runs} of {} runs failed; {} problems (listed on stderr)",
            report.runs.len(),
            report.errors().count()
        ));
    }
    if empty {
        failures.push(format!(
            "no runs found under {} (a wrong path? pass --allow-empty if an empty tree is expected)",
            paths
                .iter()
                .map(|p| display_path(p))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(c) = &claims {
        if c.registry_error.is_some() {
            failures.push(format!(
                "claims registry {} cannot be used",
                display_path(&c.registry)
            ));
        } else if !c.passed() {
            let failed = c
                .claims
                .iter()
                .filter(|r| r.outcome != husai_core::claims::check::Outcome::Pass)
                .count();
            failures.push(format!(
                "claims check: {failed} of {} claims failed, {} document findings",
                c.claims.len(),
                c.document_findings.len()
            ));
        }
    }

    if args.json {
        let root = verify::results_root_of(&paths[0]);
        report.make_paths_relative(&root);
        let mut doc = serde_json::to_value(&report)?;
        doc["results_root"] = serde_json::json!(husai_core::untrusted::path_text(&root));
        doc["trust"] = match &args.key {
            Some(pem) => {
                serde_json::json!({"single_key": husai_core::untrusted::path_text(pem), "policy_bypassed": true})
            }
            None => {
                serde_json::json!({"policy": husai_core::untrusted::path_text(policy.path()), "policy_bypassed": false})
            }
        };
        doc["claims"] = serde_json::to_value(&claims)?;
        doc["passed"] = serde_json::Value::Bool(failures.is_empty());
        doc["failures"] = serde_json::to_value(&failures)?;
        doc["seconds"] = serde_json::json!(elapsed);
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_readable(&report);
        if let Some(c) = &claims {
            match &c.registry_error {
                Some(e) => eprintln!("error[claims_registry]: {}", escape_for_terminal(e)),
                None => super::claims::print_report(c),
            }
        }
        if failures.is_empty() {
            let rate = report.bytes_hashed as f64 / elapsed.max(1e-9);
            let against = match &args.key {
                Some(pem) => format!(
                    " against the single key {} (trust policy BYPASSED)",
                    display_path(pem)
                ),
                None => String::new(),
            };
            println!(
                "verified {} runs{against} ({} hashed at {}/s) in {elapsed:.2} s: all good",
                report.runs.len(),
                cli::human_bytes(report.bytes_hashed),
                cli::human_bytes(rate as u64)
            );
        } else {
            println!("FAILED: {}", failures.join("; "));
        }
    }
    let claims_unreadable = claims.as_ref().is_some_and(|c| c.registry_error.is_some());
    Ok(if report.has_unreadable() || claims_unreadable {
        cli::exit_usage()
    } else if failures.is_empty() {
        cli::EXIT_OK
    } else {
        cli::exit_fail()
    })
}

/// The claims registry `verify` checks when it exists and neither a PATH nor --claims is given.
const DEFAULT_REGISTRY: &str = "claims.json";

fn print_readable(report: &VerifyReport) {
    for run in &report.runs {
        if run.ok {
            println!(
                "ok    {}  {} {} files, {}, signed by {}",
                display_path(&cli::display_path(&run.dir)),
                run.kind.as_deref().unwrap_or("?"),
                run.subjects,
                cli::human_bytes(run.bytes),
                run.signer.as_deref().map_or("?", |k| &k[..k.len().min(16)])
            );
        } else {
            println!("FAIL  {}", display_path(&cli::display_path(&run.dir)));
        }
    }
    for f in &report.findings {
        let tag = match f.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Unreadable => "unreadable",
        };
        // Messages quote file names; escape them so that a name cannot move the cursor or print
        // a line of its own.
        eprintln!("{tag}[{}]: {}", f.code, escape_for_terminal(&f.message));
    }
}
