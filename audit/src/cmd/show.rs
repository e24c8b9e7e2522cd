//! `husai-audit show`: print a run's verified manifest.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use husai_core::verify;

use crate::cli;

/// `println!` with control characters escaped: manifests and subject names are the signer's text,
/// and must not be able to drive the terminal.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", husai_core::untrusted::escape_for_terminal(&format!($($arg)*)))
    };
}

/// Verify one run and print its manifest: what ran, on what, with which code and inputs.
///
/// Only the signed payload is shown, and only after the run verifies; a run that fails
/// verification prints the reasons and exits 1.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run directory (or any file inside it).
    run: PathBuf,
    /// Keys directory holding trust-policy.json.
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// Print the signed statement (subjects and manifest) as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let policy = cli::trust_policy(&args.keys)?;
    let (dir, _) = verify::enclosing_run(&args.run).ok_or_else(|| {
        anyhow!(
            "{} is not a run directory or inside one (no husai.dsse.json above it)",
            args.run.display()
        )
    })?;
    let run = match verify::load_verified_run(&dir, &policy) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("{e}");
            return Ok(cli::exit_fail());
        }
    };
    if args.json {
        let doc = serde_json::json!({
            "dir": run.dir,
            "signer": run.signer,
            "subject": run.subjects,
            "predicate": run.manifest,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(cli::EXIT_OK);
    }
    let m = &run.manifest;
    say!("run        {}/{}  ({})", m.campaign, m.run_id, m.kind);
    say!("verified   signed by key {}", run.signer);
    say!("time       {} -> {}", m.started_at, m.finished_at);
    say!(
        "tool       {} {} (commit {}{})",
        m.tool.name,
        m.tool.version,
        m.tool.git_commit.as_deref().unwrap_or("unknown"),
        match m.tool.git_dirty {
            Some(true) => ", dirty",
            _ => "",
        }
    );
    if let Some(p) = &m.plugin {
        say!(
            "plugin     {} {} (api {}, {} sha256 {})",
            p.name,
            p.version,
            p.api_version,
            p.library_path,
            p.library_sha256
        );
    }
    if let Some(c) = &m.command {
        say!("command    {} (exit {})", c.argv.join(" "), c.exit_code);
    }
    say!("argv       {}", m.argv.join(" "));
    if let Some(h) = &m.config_sha256 {
        say!("config     sha256 {h}");
        if let Some(c) = &m.config {
            say!("           {c}");
        }
    }
    if !m.seeds.is_empty() {
        let seeds: Vec<String> = m.seeds.iter().map(u64::to_string).collect();
        say!("seeds      {}", seeds.join(", "));
    }
    if let Some(d) = &m.dataset {
        say!(
            "dataset    {} ({} {} {:?}, rows {}..{}) sha256 {}",
            d.path,
            d.format,
            d.dtype,
            d.shape,
            d.rows.start,
            d.rows.end,
            d.sha256
        );
    }
    for i in &m.inputs {
        let digest: Vec<String> = i.digest.iter().map(|(a, h)| format!("{a} {h}")).collect();
        match &i.run {
            Some(r) => say!(
                "input      {} from run {}/{} ({}) {}",
                i.path,
                r.campaign,
                r.run_id,
                r.subject,
                digest.join(" ")
            ),
            None => say!("input      {} {}", i.path, digest.join(" ")),
        }
    }
    let e = &m.environment;
    say!(
        "env        {} {} {} threads, {} ({}){}",
        e.os,
        e.arch,
        e.threads,
        e.device,
        e.backend,
        e.cpu
            .as_deref()
            .map(|c| format!(", {c}"))
            .unwrap_or_default()
    );
    // A train run's summary figures (the trainer's `metrics`, signed in the manifest's extra), one per line.
    if m.kind == husai_core::manifest::RunKind::Train {
        match m.extra.get("metrics") {
            Some(metrics) if metrics.is_object() => {
                say!("metrics");
                for (key, value) in super::train::flatten(metrics) {
                    say!("  {key:<38} {value}");
                }
            }
            _ => say!("metrics    none recorded"),
        }
    }
    say!("outputs    ({} files)", run.subjects.len());
    for s in &run.subjects {
        let size = m.output_sizes.get(&s.name).copied().unwrap_or(0);
        let (alg, hex) = s.digest_pair().unwrap_or(("?", "?"));
        say!(
            "  {:<40} {:>10}  {alg} {hex}",
            s.name,
            cli::human_bytes(size)
        );
    }
    Ok(cli::EXIT_OK)
}
