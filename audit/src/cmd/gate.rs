//! `husai-audit gate`: the release gate, as a signed run of kind `gate`.
//!
//! Strict mode (default) reads verified signed runs only and writes `gate-report.{json,md}`. `--parity` is a drop-in
//! for upstream's `run_stress_gated_release_policy.py`: upstream's flags and defaults, plain files, and upstream's
//! `release_policy.{json,md}` inside the signed run. The differences are tabled in `husai_core::gate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use husai_core::gate::parity::{
    self, UpstreamInputs, UpstreamMode, UpstreamRunInfo, UpstreamThresholds,
};
use husai_core::gate::report::{REPORT_JSON, REPORT_MD};
use husai_core::gate::source::{
    SourceError, SourcedFile, TrainRunError, read_train_run, read_verified,
};
use husai_core::gate::strict::{self, StrictInputs};
use husai_core::gate::{Basis, ExternalMode, GateName, PROFILES, Policy};
use husai_core::legacy::pyrepr::json_dumps;
use husai_core::manifest::{InputRef, ManifestDraft, RunKind, RunRef};
use husai_core::store::RunStore;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::cli;

/// Evaluate the release gate (random_model, transcoder, ood, external, pass_all) and sign the verdict.
///
/// Strict mode: every input is a file inside a verified signed run; a missing input is `not_evaluated` and fails its
/// gate unless --allow-missing names it. Exit 0 pass; 1 a gate fails or an input is not a verified signed file
/// (unsigned, failing verification, not a subject, changed after signing); 2 usage or I/O (a missing or unreadable
/// file, a bad option).
///
/// --parity: upstream's flags, defaults and quirks, reading plain files; writes release_policy.json/.md. Exit 1 iff
/// --fail-on-gate-fail and pass_all is false, else 0 (upstream exits 2 there; its code is recorded in the run).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
husai-audit gate --phase4a results/ev/<run>/phase4a.json --transcoder results/ev/<run>/results.json \\\n    \
--ood results/ev/<run>/ood_stress_summary.json --external results/sel/<run>/selected_candidate.json\n  \
husai-audit gate --parity --external-candidate-json selected_candidate.json --external-mode joint \\\n    \
--use-external-lcb --require-transcoder --require-ood --require-external --fail-on-gate-fail")]
pub struct Args {
    /// Reproduce upstream's run_stress_gated_release_policy.py (flags, defaults, quirks, outputs).
    #[arg(long)]
    parity: bool,

    // ---- strict inputs ----
    /// The trained-vs-random summary (trained_vs_random.json of a signed eval run of plugin trained-vs-random).
    #[arg(
        long,
        alias = "trained-vs-random",
        value_name = "FILE",
        conflicts_with = "parity"
    )]
    phase4a: Option<PathBuf>,
    /// The release candidate's SAE train run. The random_model evidence must cover its family and configuration,
    /// husai OOD evidence must be about this run, and husai transcoder evidence must have been measured on the data
    /// run it was trained on; evidence about another model is refused (not_evaluated, failing, naming both).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "parity")]
    candidate: Option<PathBuf>,
    /// Smallest chance-normalised PWMCC effect (x - rand)/(1 - rand) for random_model (profile default 0.05).
    #[arg(
        long,
        value_name = "X",
        allow_negative_numbers = true,
        conflicts_with = "parity"
    )]
    min_chance_normalised_effect: Option<f64>,
    /// Transcoder stress summary (husai's transcoder-stress eval: gated on its confirmed lower bound) or upstream
    /// summary/sweep results (point delta), inside a signed run.
    #[arg(long, value_name = "FILE", conflicts_with = "parity")]
    transcoder: Option<PathBuf>,
    /// OOD stress summary (inside a signed run).
    #[arg(long, value_name = "FILE", conflicts_with = "parity")]
    ood: Option<PathBuf>,
    /// Selected candidate / selection summary, or a SAEBench and/or a CE-Bench summary. Repeatable.
    #[arg(long = "external", value_name = "FILE", conflicts_with = "parity")]
    external: Vec<PathBuf>,
    /// Policy profile: strict (default) or cycle4.
    #[arg(long, default_value = "strict", conflicts_with = "parity")]
    profile: String,
    /// External threshold basis: point or lcb (overrides the profile).
    #[arg(long, value_name = "BASIS", conflicts_with = "parity")]
    basis: Option<String>,
    /// A gate whose missing input is tolerated: random_model, transcoder, ood, external. Repeatable.
    #[arg(long = "allow-missing", value_name = "GATE", conflicts_with = "parity")]
    allow_missing: Vec<String>,
    /// Maximum phase-4a p-value (overrides the profile; `none` disables the check).
    #[arg(long, value_name = "P", conflicts_with = "parity")]
    max_random_p_value: Option<String>,

    // ---- shared ----
    /// External mode: saebench, cebench or joint (parity also accepts auto, its default).
    #[arg(long, value_name = "MODE")]
    external_mode: Option<String>,
    /// Random-model gate: smallest trained-minus-random delta that passes (overrides the profile; parity: upstream's default).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    min_trained_random_delta: Option<f64>,
    /// Random-model gate: smallest lower confidence bound of that delta that passes.
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    min_trained_random_lcb: Option<f64>,
    /// Transcoder gate: smallest transcoder delta (vs its baseline) that passes.
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    min_transcoder_delta: Option<f64>,
    /// OOD gate: largest out-of-distribution drop that passes.
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    max_ood_drop: Option<f64>,
    /// External gate: smallest SAEBench delta that passes (point basis).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    min_saebench_delta: Option<f64>,
    /// External gate: smallest CE-Bench delta that passes (point basis).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    min_cebench_delta: Option<f64>,
    /// External gate: smallest lower confidence bound of the SAEBench delta that passes (lcb basis).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    min_saebench_delta_lcb: Option<f64>,
    /// External gate: smallest lower confidence bound of the CE-Bench delta that passes (lcb basis).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    min_cebench_delta_lcb: Option<f64>,

    // ---- parity (upstream) flags ----
    /// Upstream default: <project root>/results/experiments/phase4a_trained_vs_random/results.json.
    #[arg(long, value_name = "FILE", requires = "parity")]
    phase4a_results: Option<PathBuf>,
    /// Upstream's transcoder stress results (a plain file; missing: the gate is not evaluated).
    #[arg(long, value_name = "FILE", requires = "parity")]
    transcoder_results: Option<PathBuf>,
    /// Upstream's OOD stress results (a plain file; missing: the gate is not evaluated).
    #[arg(long, value_name = "FILE", requires = "parity")]
    ood_results: Option<PathBuf>,
    /// Upstream's external benchmark summary (used when --external-candidate-json is not given).
    #[arg(long, value_name = "FILE", requires = "parity")]
    external_summary: Option<PathBuf>,
    /// Upstream's selected candidate JSON (preferred over --external-summary when both are given).
    #[arg(long, value_name = "FILE", requires = "parity")]
    external_candidate_json: Option<PathBuf>,
    /// Legacy external gate: smallest external delta that passes.
    #[arg(
        long,
        value_name = "X",
        allow_negative_numbers = true,
        requires = "parity"
    )]
    min_external_delta: Option<f64>,
    /// Judge the external gate on lower confidence bounds instead of point estimates.
    #[arg(long, requires = "parity")]
    use_external_lcb: bool,
    /// Fail the transcoder gate when its input is missing (upstream: a missing input passes unless required).
    #[arg(long, requires = "parity")]
    require_transcoder: bool,
    /// Fail the OOD gate when its input is missing.
    #[arg(long, requires = "parity")]
    require_ood: bool,
    /// Fail the external gate when its input is missing.
    #[arg(long, requires = "parity")]
    require_external: bool,
    /// Exit 1 when pass_all is false (upstream exits 2 here; husai keeps one exit-code contract and records upstream's
    /// code as `upstream_exit_code` in the run). Without it parity mode exits 0 either way, as upstream does.
    #[arg(long, requires = "parity")]
    fail_on_gate_fail: bool,
    /// Reproduce the legacy policy (upstream <=511c56c): one external metric from --external-summary, four gates,
    /// and the legacy release_policy.json/.md layout.
    #[arg(
        long,
        requires = "parity",
        conflicts_with_all = ["external_candidate_json", "external_mode", "use_external_lcb",
            "min_saebench_delta", "min_cebench_delta", "min_saebench_delta_lcb", "min_cebench_delta_lcb"]
    )]
    legacy_schema: bool,

    // ---- output ----
    /// Campaign of the gate run (results/<campaign>/).
    #[arg(long, default_value = "decisions")]
    campaign: String,
    /// Signing key (PKCS#8 PEM ed25519).
    #[arg(long, env = "HUSAI_SIGNING_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Results tree to write into.
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    /// Keys directory with trust-policy.json, used to verify inputs.
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// Print the report (parity: upstream's release_policy.json) to stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = cli::signing_key(args.key.as_deref())?;
    husai_core::store::check_campaign(&args.campaign)?;
    if args.parity {
        run_parity(&args, &key)
    } else {
        run_strict(&args, &key)
    }
}

fn strict_policy(args: &Args) -> anyhow::Result<Policy> {
    let mut policy = Policy::profile(&args.profile).ok_or_else(|| {
        anyhow!(
            "unknown --profile {:?}; use one of {}",
            args.profile,
            PROFILES.join(", ")
        )
    })?;
    if let Some(mode) = &args.external_mode {
        policy.external_mode = ExternalMode::parse(mode).ok_or_else(|| {
            anyhow!("unknown --external-mode {mode:?}; use saebench, cebench or joint (`auto` exists only with --parity)")
        })?;
    }
    if let Some(basis) = &args.basis {
        policy.external_basis = Basis::parse(basis)
            .ok_or_else(|| anyhow!("unknown --basis {basis:?}; use point or lcb"))?;
    }
    for (slot, value) in [
        (
            &mut policy.min_trained_random_delta,
            args.min_trained_random_delta,
        ),
        (
            &mut policy.min_trained_random_lcb,
            args.min_trained_random_lcb,
        ),
        (&mut policy.min_transcoder_delta, args.min_transcoder_delta),
        (
            &mut policy.min_chance_normalised_effect,
            args.min_chance_normalised_effect,
        ),
        (&mut policy.max_ood_drop, args.max_ood_drop),
        (&mut policy.min_saebench_delta, args.min_saebench_delta),
        (&mut policy.min_cebench_delta, args.min_cebench_delta),
        (
            &mut policy.min_saebench_delta_lcb,
            args.min_saebench_delta_lcb,
        ),
        (
            &mut policy.min_cebench_delta_lcb,
            args.min_cebench_delta_lcb,
        ),
    ] {
        if let Some(v) = value {
            if !v.is_finite() {
                bail!("thresholds must be finite numbers, got {v}");
            }
            *slot = v;
        }
    }
    if let Some(p) = &args.max_random_p_value {
        policy.max_random_p_value = if p == "none" {
            None
        } else {
            Some(p.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
                anyhow!("--max-random-p-value {p:?} is not a number (or `none` to disable the check)")
            })?)
        };
    }
    for gate in &args.allow_missing {
        let g = GateName::parse(gate).ok_or_else(|| {
            anyhow!("unknown gate {gate:?} for --allow-missing; use random_model, transcoder, ood or external")
        })?;
        if !policy.allow_missing.contains(&g) {
            policy.allow_missing.push(g);
        }
    }
    Ok(policy)
}

fn run_strict(args: &Args, key: &husai_core::keys::SigningKey) -> anyhow::Result<ExitCode> {
    let policy = strict_policy(args)?;
    let trust = cli::trust_policy(&args.keys)?;
    let read = |p: &Option<PathBuf>| p.as_deref().map(|p| read_verified(p, &trust)).transpose();
    let read_all = || -> Result<(Option<SourcedFile>, StrictRest), SourceError> {
        Ok((
            read(&args.phase4a)?,
            StrictRest {
                transcoder: read(&args.transcoder)?,
                ood: read(&args.ood)?,
                external: args
                    .external
                    .iter()
                    .map(|p| read_verified(p, &trust))
                    .collect::<Result<_, _>>()?,
            },
        ))
    };
    let (phase4a, rest) = match read_all() {
        Ok(read) => read,
        Err(e) if is_verification_failure(&e) => {
            eprintln!("error: {e}");
            eprintln!("gate: FAILED (an input is not a verified signed file; nothing was signed)");
            return Ok(cli::exit_fail());
        }
        Err(e) => return Err(e.into()),
    };
    // The SAE runs a trained-vs-random summary covers, read from their signed manifests in the results tree,
    // and the candidate run; a run that does not verify is a verification failure (exit 1).
    let covered = match &phase4a {
        Some(file)
            if file.value.get("schema").and_then(|v| v.as_str())
                == Some(strict::TRAINED_VS_RANDOM_SCHEMA) =>
        {
            strict::covered_runs(file)?
        }
        _ => Vec::new(),
    };
    let read_runs = || -> Result<_, TrainRunError> {
        let runs = covered
            .iter()
            .map(|(campaign, run_id)| {
                read_train_run(&args.results.join(campaign).join(run_id), &trust)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let candidate = args
            .candidate
            .as_deref()
            .map(|d| read_train_run(d, &trust))
            .transpose()?;
        Ok((runs, candidate))
    };
    let (random_model_runs, candidate_run) = match read_runs() {
        Ok(runs) => runs,
        Err(e @ TrainRunError::Unverified { .. }) => {
            eprintln!("error: {e}");
            eprintln!(
                "gate: FAILED (a train run the evidence names does not verify; nothing was signed)"
            );
            return Ok(cli::exit_fail());
        }
        Err(e) => return Err(e.into()),
    };
    let inputs = StrictInputs {
        phase4a,
        transcoder: rest.transcoder,
        ood: rest.ood,
        external: rest.external,
        random_model_runs,
        candidate_run,
    };
    let report = strict::evaluate(&policy, &inputs)?;
    report
        .validate()
        .context("the gate report does not match schemas/gate-report.v1.json (a husai bug)")?;
    let json_text = report.to_json_text();

    let mut input_refs = Vec::new();
    for file in inputs
        .phase4a
        .iter()
        .chain(&inputs.transcoder)
        .chain(&inputs.ood)
        .chain(&inputs.external)
    {
        let c = &file.citation;
        input_refs.push(InputRef {
            path: c.path.clone(),
            digest: BTreeMap::from([("sha256".to_string(), c.sha256.clone())]),
            run: Some(RunRef {
                campaign: c.campaign.clone(),
                run_id: c.run_id.clone(),
                subject: c.subject.clone(),
            }),
        });
    }
    let config = serde_json::to_value(&policy).context("serialising the policy")?;
    let extra = serde_json::json!({"mode": "strict", "profile": policy.profile, "pass_all": report.pass_all});
    let committed = sign_outputs(
        args,
        key,
        &[
            (REPORT_JSON, json_text.as_bytes()),
            (REPORT_MD, report.to_markdown().as_bytes()),
        ],
        config,
        input_refs,
        extra,
    )?;
    if args.json {
        print!("{json_text}");
    } else {
        for g in &report.gates {
            println!(
                "{:<13} {:<14} passed={}",
                g.gate.as_str(),
                g.status.as_str(),
                g.passed
            );
        }
        println!("pass_all: {}", report.pass_all);
        println!("run: {}", cli::display_path(&committed).display());
    }
    Ok(if report.pass_all {
        cli::EXIT_OK
    } else {
        cli::exit_fail()
    })
}

/// Whether a strict input was refused for its provenance (exit 1), as opposed to a missing or unreadable file (2).
/// The strict inputs read (and verified) together with the phase-4a summary.
struct StrictRest {
    transcoder: Option<SourcedFile>,
    ood: Option<SourcedFile>,
    external: Vec<SourcedFile>,
}

fn is_verification_failure(e: &SourceError) -> bool {
    match e {
        SourceError::Unsigned { .. }
        | SourceError::Unverified { .. }
        | SourceError::NotOk { .. }
        | SourceError::NotASubject { .. }
        | SourceError::NoSha256 { .. }
        | SourceError::DigestMismatch { .. } => true,
        SourceError::NotFound { .. } | SourceError::Io { .. } | SourceError::Json(_) => false,
    }
}

/// Upstream's PROJECT_ROOT: the nearest ancestor of the working directory holding `.git`, else the working directory.
fn project_root(cwd: &Path) -> PathBuf {
    cwd.ancestors()
        .find(|d| d.join(".git").exists())
        .unwrap_or(cwd)
        .to_path_buf()
}

fn git_commit(root: &Path) -> String {
    std::process::Command::new("git")
        .arg("rev-parse")
        .arg("HEAD")
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

fn run_parity(args: &Args, key: &husai_core::keys::SigningKey) -> anyhow::Result<ExitCode> {
    let external_mode = match &args.external_mode {
        None => UpstreamMode::Auto,
        Some(m) => UpstreamMode::parse(m)
            .ok_or_else(|| anyhow!("argument --external-mode: invalid choice: {m:?} (choose from auto, saebench, cebench, joint)"))?,
    };
    let d = UpstreamThresholds::default();
    let t = UpstreamThresholds {
        min_trained_random_delta: args
            .min_trained_random_delta
            .unwrap_or(d.min_trained_random_delta),
        min_trained_random_lcb: args
            .min_trained_random_lcb
            .unwrap_or(d.min_trained_random_lcb),
        min_transcoder_delta: args.min_transcoder_delta.unwrap_or(d.min_transcoder_delta),
        max_ood_drop: args.max_ood_drop.unwrap_or(d.max_ood_drop),
        min_external_delta: args.min_external_delta.unwrap_or(d.min_external_delta),
        min_saebench_delta: args.min_saebench_delta.unwrap_or(d.min_saebench_delta),
        min_cebench_delta: args.min_cebench_delta.unwrap_or(d.min_cebench_delta),
        min_saebench_delta_lcb: args.min_saebench_delta_lcb,
        min_cebench_delta_lcb: args.min_cebench_delta_lcb,
        use_external_lcb: args.use_external_lcb,
        external_mode,
        require_transcoder: args.require_transcoder,
        require_ood: args.require_ood,
        require_external: args.require_external,
    };
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let root = project_root(&cwd);
    let phase4a_path = args
        .phase4a_results
        .clone()
        .unwrap_or_else(|| root.join("results/experiments/phase4a_trained_vs_random/results.json"));
    // Upstream prefers the candidate JSON over the summary when both are given.
    let external_path = args
        .external_candidate_json
        .as_deref()
        .or(args.external_summary.as_deref());
    let external_flag = if args.external_candidate_json.is_some() {
        "external-candidate-json"
    } else {
        "external-summary"
    };
    let files = [
        ("phase4a-results", Some(phase4a_path.as_path())),
        ("transcoder-results", args.transcoder_results.as_deref()),
        ("ood-results", args.ood_results.as_deref()),
        (external_flag, external_path),
    ]
    .map(|(flag, path)| parity::read_upstream_input(flag, path).map(|f| (path, f)));
    let [phase4a, transcoder, ood, external] = files;
    let (phase4a, transcoder, ood, external) = (phase4a?, transcoder?, ood?, external?);
    // Record the digest of the bytes actually read for every input that existed.
    let input_refs: Vec<InputRef> = [&phase4a, &transcoder, &ood, &external]
        .into_iter()
        .filter_map(|(path, file)| Some((path.as_ref()?, file.as_ref()?)))
        .map(|(path, file)| InputRef {
            path: path.display().to_string(),
            digest: BTreeMap::from([("sha256".to_string(), file.sha256.clone())]),
            run: None,
        })
        .collect();
    let inputs = UpstreamInputs {
        phase4a: phase4a.1.map(|f| f.value),
        transcoder: transcoder.1.map(|f| f.value),
        ood: ood.1.map(|f| f.value),
        external: external.1.map(|f| f.value),
    };
    // Evaluation is pure; every input was read (and any error raised) above, before anything is staged.
    let legacy = args
        .legacy_schema
        .then(|| parity::evaluate_legacy(&t, &inputs));

    let now = OffsetDateTime::now_utc();
    let rel = |p: &Option<PathBuf>| p.as_deref().map(|p| parity::repo_rel(p, &cwd, &root));
    let info = UpstreamRunInfo {
        timestamp_utc: now
            .format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]+00:00"
            ))
            .context("formatting the timestamp")?,
        git_commit: git_commit(&root),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        run_id: format!(
            "run_{}",
            now.format(format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .context("formatting the run id")?
        ),
        phase4a_results: rel(&Some(phase4a_path.clone())),
        transcoder_results: rel(&args.transcoder_results),
        ood_results: rel(&args.ood_results),
        external_summary: rel(&args.external_summary),
        external_candidate_json: rel(&args.external_candidate_json),
    };
    let (report, md, pass_all, exit_code) = if let Some(o) = &legacy {
        (
            parity::report_json_legacy(&info, &t, o),
            parity::report_markdown_legacy(&info.run_id, o),
            o.pass_all,
            o.exit_code(args.fail_on_gate_fail),
        )
    } else {
        let o = parity::evaluate(&t, &inputs);
        (
            parity::report_json(&info, &t, &o),
            parity::report_markdown(&info.run_id, &o),
            o.gates.pass_all,
            o.exit_code(args.fail_on_gate_fail),
        )
    };
    let mut json_text = json_dumps(&report, 2);
    json_text.push('\n');

    let config = serde_json::json!({
        "mode": "parity",
        "upstream_script": "run_stress_gated_release_policy.py",
        "thresholds": report.get("thresholds").map(|t| t.to_json()),
        "fail_on_gate_fail": args.fail_on_gate_fail,
    });
    let extra = serde_json::json!({
        "mode": "parity",
        "upstream_run_id": info.run_id,
        "pass_all": pass_all,
        "schema": if args.legacy_schema { "v1-legacy" } else { "v3-lcb" },
        "upstream_exit_code": exit_code,
    });
    let committed = sign_outputs(
        args,
        key,
        &[
            ("release_policy.json", json_text.as_bytes()),
            ("release_policy.md", md.as_bytes()),
        ],
        config,
        input_refs,
        extra,
    )?;
    if args.json {
        print!("{json_text}");
    } else {
        println!("Stress-gated release policy complete");
        println!("Run dir: {}", cli::display_path(&committed).display());
        println!("pass_all: {}", if pass_all { "True" } else { "False" });
    }
    // Upstream's non-zero code (2, with --fail-on-gate-fail) is a gate failure; husai's contract says 1 for that.
    Ok(if exit_code == 0 {
        cli::EXIT_OK
    } else {
        cli::exit_fail()
    })
}

/// Writes `files` into a staged run of kind `gate` and commits it; returns the run directory.
fn sign_outputs(
    args: &Args,
    key: &husai_core::keys::SigningKey,
    files: &[(&str, &[u8])],
    config: serde_json::Value,
    inputs: Vec<InputRef>,
    extra: serde_json::Value,
) -> anyhow::Result<PathBuf> {
    let store = RunStore::open(&args.results)?;
    let staged = store.stage(&args.campaign, RunKind::Gate)?;
    for (name, bytes) in files {
        let path = staged.dir().join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut draft = ManifestDraft::new(cli::tool_info());
    draft.config = Some(config);
    draft.inputs = inputs;
    draft.extra = extra;
    let committed = staged.commit(draft, key, &|_| {})?;
    Ok(committed.dir)
}
