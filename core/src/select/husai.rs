//! husai's own runs as selector inputs (strict mode): each signed SAE train run (`--run`) is one seed row, measured
//! by the signed `ood-stress` eval run (`--eval-run`) that names it.
//!
//! A husai row is made of:
//! - **condition** and **architecture**: the trainer plugin's name, i.e. the family (`sae-topk`, `sae-batchtopk`);
//! - **seed**: the run's config `seed`; **configuration hash**: [`super::config_fingerprint`] of the config without
//!   `seed` and [`crate::gate::source::EXECUTION_KEYS`] (`resume_from`, `device`: the configuration as the release
//!   gate's `read_train_run` reads it) and without
//!   [`super::VOLATILE_CONFIG_KEYS`]. So the seeds of one configuration pool into one group, two configurations of
//!   one family are two groups, and a group's size is its count of distinct seeds;
//! - **checkpoint**: `campaign/run_id` of the train run, the run `husai-audit gate --candidate` takes
//!   (`results/<campaign>/<run_id>`);
//! - **train explained variance**: `1 − eval.fvu` of the run's signed `metrics.json`, the FVU on held-out rows the
//!   SAE never trained on (docs/trainer-contract.md §4), not the training rows' figure;
//! - **SAEBench delta**: the ood-stress eval's mean gap over its in-distribution tasks at the eval's `gate_k`
//!   (`by_k[k = gate_k].id_mean_gap`): the AUC of a k-sparse logistic probe on the SAE's latents minus the AUC of a
//!   dense probe on the raw rows, averaged over tasks. That is SAEBench's sparse-probing `best_minus_llm_auc`
//!   (mean k-sparse SAE-probe AUC minus the dense LLM-probe AUC over a slice of binary tasks) by the same
//!   definition, with two differences: the tasks are synthetic ("is ground-truth feature f active?" on the `data
//!   synth` run the SAE was trained on) instead of SAEBench's datasets, and k is fixed by the eval's config before
//!   any probe runs instead of picked on the test AUC. It is an offline analogue: comparable between husai runs
//!   evaluated alike, not with SAEBench numbers of upstream's files;
//! - **CE-Bench**: not applicable. husai has no CE-Bench producer, so a husai row is complete with its SAEBench
//!   analogue and train EV ([`super::score::Evidence::Husai`]); without an ood-stress eval it is incomplete (dropped
//!   as `missing_metric` unless incomplete rows are allowed).
//!
//! Every run is verified (signature, trust policy, provenance chain) before anything of it is read, and each file
//! read is checked against its signed digest. A train run that ended `diverged` or `interrupted` is never a
//! candidate: it is skipped and listed in `skipped_records`. Every run given is cited by the decision.
//!
//! Refused, each naming the run(s): a `--run` that is not a train run; an `--eval-run` that is not an ood-stress
//! eval; an eval run whose `sae_run` is not among the `--run` runs, or that evaluated other weights than that run
//! signs; two eval runs for one SAE run; a run given twice; train runs trained on different data, and eval runs
//! with different task settings or data runs (their numbers would not be comparable).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::digest::sha256_hex;
use crate::gate::source::{TrainRunError, read_train_run};
use crate::inputs::{NotOkRun, require_ok};
use crate::manifest::{InputRef, RunKind, RunRef};
use crate::store::ENVELOPE_FILE;
use crate::trust::TrustPolicy;
use crate::verify::{self, RunVerifyError, VerifiedRun};

use super::output::InputCitation;
use super::rows::{InputContent, LoadedInput, Metrics, Row, SourceKind};
use super::{SelectError, json_config_fingerprint};

/// The summary a train run signs with its final metrics.
pub const TRAIN_METRICS: &str = "metrics.json";
/// The eval plugin whose runs `--eval-run` takes.
pub const OOD_PLUGIN: &str = "ood-stress";
/// Its summary file and schema.
pub const OOD_SUMMARY: &str = "ood_stress_summary.json";
pub const OOD_SCHEMA: &str = "ood-stress.v1";
/// The SAE weights file a train run signs (and an ood-stress summary names by digest).
const WEIGHTS: &str = "sae_weights.safetensors";
/// ood-stress config keys that do not change what `id_mean_gap` measures (resampling, the other budgets).
const EVAL_KEYS_NOT_COMPARED: [&str; 6] = [
    "ks",
    "bootstrap",
    "bootstrap_seed",
    "permutations",
    "permutation_seed",
    "confidence",
];

/// A signed run: where it is in the results tree, and the sha256 of its signed envelope (`husai.dsse.json`, read
/// right after it verified), which pins its manifest and every subject digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIdentity {
    pub campaign: String,
    pub run_id: String,
    pub manifest_sha256: String,
}

impl RunIdentity {
    /// `campaign/run_id`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.campaign, self.run_id)
    }
}

/// The ood-stress evaluation of one train run.
#[derive(Debug, Clone, PartialEq)]
pub struct HusaiEval {
    pub run: RunIdentity,
    /// The budget the eval's verdict (and the SAEBench analogue) uses, fixed in its config.
    pub gate_k: u64,
    /// In-distribution tasks the mean gap is over.
    pub id_tasks: u64,
    /// Mean over ID tasks of (k-sparse SAE-probe AUC − dense-probe AUC) at `gate_k`.
    pub id_mean_gap: Option<f64>,
}

/// One husai train run as the selector sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HusaiRun {
    pub run: RunIdentity,
    /// The trainer plugin (the SAE family).
    pub family: String,
    pub seed: Option<u64>,
    /// `eval.fvu` of its `metrics.json` (held-out rows); `None` when the run recorded none.
    pub heldout_fvu: Option<f64>,
    /// The ood-stress eval run that measured it, if one was given.
    pub eval: Option<HusaiEval>,
    /// Why the run is not a candidate (it did not end `ok`); such a run yields no row.
    pub skipped: Option<String>,
}

/// Why husai runs could not be read as selector inputs. Nothing is written when this happens.
#[derive(Debug, thiserror::Error)]
pub enum HusaiRunError {
    #[error("{flag} {}: {source}", dir.display())]
    Unverified {
        flag: &'static str,
        dir: PathBuf,
        #[source]
        source: Box<RunVerifyError>,
    },
    #[error(
        "--run {}: run {run} is {what}, not a train run; --run takes husai SAE train runs (made by `husai-audit train`){hint}",
        dir.display()
    )]
    NotTrain {
        dir: PathBuf,
        run: String,
        what: String,
        hint: &'static str,
    },
    #[error("--run {}: train run {run} records no plugin or no config object, so it has no family or configuration", dir.display())]
    TrainIncomplete { dir: PathBuf, run: String },
    #[error(
        "--eval-run {}: run {run} is {what}, not an ood-stress eval; --eval-run takes runs of `husai-audit eval --plugin ood-stress --input sae=RUN --input data=RUN`{hint}",
        dir.display()
    )]
    NotOodStress {
        dir: PathBuf,
        run: String,
        what: String,
        hint: &'static str,
    },
    #[error("--eval-run {}: {source}", dir.display())]
    EvalNotOk {
        dir: PathBuf,
        #[source]
        source: Box<NotOkRun>,
    },
    #[error("{flag} {}: run {run} signs no {file}; {why}", dir.display())]
    MissingFile {
        flag: &'static str,
        dir: PathBuf,
        run: String,
        file: &'static str,
        why: &'static str,
    },
    #[error(
        "{}: run {run} signs it with a sharded digest (a file over the shard size), which is not a summary husai wrote",
        path.display()
    )]
    NoPlainDigest { path: PathBuf, run: String },
    #[error(
        "{}: the bytes read hash to {actual}, but run {run} signed {expected} for it; the file changed after the run was verified",
        path.display()
    )]
    Changed {
        path: PathBuf,
        run: String,
        expected: String,
        actual: String,
    },
    #[error("{}: run {expected} changed while it was read (it now holds run {found}); read it again", dir.display())]
    RunChanged {
        dir: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} (run {run}): {message}", path.display())]
    BadFile {
        path: PathBuf,
        run: String,
        message: String,
    },
    #[error("{flag} names run {run} twice; give each run once")]
    Duplicate { flag: &'static str, run: String },
    #[error(
        "eval run {eval_run} measured SAE run {sae_run}, which is not among the --run runs ({runs}); add --run results/{sae_run}, or leave that eval run out"
    )]
    UnknownSaeRun {
        eval_run: String,
        sae_run: String,
        runs: String,
    },
    #[error(
        "SAE run {sae_run} has two ood-stress eval runs, {first} and {second}; give one --eval-run per train run (the selection will not pick one of two measurements for you)"
    )]
    TwoEvals {
        sae_run: String,
        first: String,
        second: String,
    },
    #[error(
        "eval run {eval_run} names SAE run {sae_run}, but evaluated weights with sha256 {evaluated}, while that run signs {signed} for {WEIGHTS}; evaluate the run again"
    )]
    OtherWeights {
        eval_run: String,
        sae_run: String,
        evaluated: String,
        signed: String,
    },
    #[error(
        "train runs {first} and {second} were trained on different data (dataset sha256 {first_data} vs {second_data}); their metrics are not comparable, so select candidates trained on one bank"
    )]
    MixedData {
        first: String,
        second: String,
        first_data: String,
        second_data: String,
    },
    #[error(
        "eval runs {first} and {second} measured their SAEs differently ({detail}); the SAEBench analogue is comparable only between evals with the same tasks, so evaluate every candidate with one ood-stress config on one data run"
    )]
    MixedEvalSettings {
        first: String,
        second: String,
        detail: String,
    },
    #[error(transparent)]
    Select(#[from] SelectError),
}

impl HusaiRunError {
    /// Whether the input was refused for its provenance (a run that does not verify, a file changed after
    /// signing, an eval run that did not end `ok`): exit status 1, as for the other strict inputs.
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            HusaiRunError::Unverified { .. }
                | HusaiRunError::EvalNotOk { .. }
                | HusaiRunError::Changed { .. }
                | HusaiRunError::RunChanged { .. }
        )
    }
}

/// A file a decision read from a verified run, recorded both ways: for `selection.json` and for the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct CitedFile {
    pub citation: InputCitation,
    pub input_ref: InputRef,
}

/// husai runs read for a selection: one [`LoadedInput`] per train run (in `--run` order) and every file cited.
#[derive(Debug, Clone)]
pub struct HusaiInputs {
    pub loaded: Vec<LoadedInput>,
    pub cited: Vec<CitedFile>,
}

/// What one `--run` holds.
struct TrainRead {
    /// `campaign/run_id`.
    name: String,
    husai: HusaiRun,
    config_sha256: String,
    weights_sha256: Option<String>,
    dataset_sha256: Option<String>,
    cited: Option<CitedFile>,
}

/// What one `--eval-run` holds.
struct EvalRead {
    eval: HusaiEval,
    sae_run: String,
    weights_sha256: String,
    /// The settings that define what `id_mean_gap` measures: the config without [`EVAL_KEYS_NOT_COMPARED`], and
    /// the data run whose features define the tasks.
    settings: Value,
    cited: CitedFile,
}

/// Reads husai train runs (`train`, run directories) and their ood-stress eval runs (`evals`), verifying each with
/// `trust` before reading it, and pairs every eval with the train run its summary names.
pub fn load_husai_runs(
    train: &[PathBuf],
    evals: &[PathBuf],
    trust: &TrustPolicy,
) -> Result<HusaiInputs, HusaiRunError> {
    let mut runs = Vec::with_capacity(train.len());
    for dir in train {
        let read = read_train(dir, trust)?;
        if runs.iter().any(|r: &TrainRead| r.name == read.name) {
            return Err(HusaiRunError::Duplicate {
                flag: "--run",
                run: read.name,
            });
        }
        runs.push(read);
    }
    let mut eval_reads: Vec<EvalRead> = Vec::with_capacity(evals.len());
    for dir in evals {
        let read = read_eval(dir, trust)?;
        if eval_reads.iter().any(|e| e.eval.run == read.eval.run) {
            return Err(HusaiRunError::Duplicate {
                flag: "--eval-run",
                run: read.eval.run.id(),
            });
        }
        eval_reads.push(read);
    }
    check_one_dataset(&runs)?;
    // Pair each eval with its train run, then check that the evals measured alike.
    let mut cited_evals = Vec::with_capacity(eval_reads.len());
    let mut settings = Vec::with_capacity(eval_reads.len());
    for e in eval_reads {
        let Some(target) = runs.iter_mut().find(|r| r.name == e.sae_run) else {
            return Err(HusaiRunError::UnknownSaeRun {
                eval_run: e.eval.run.id(),
                sae_run: e.sae_run,
                runs: runs
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if let Some(first) = &target.husai.eval {
            return Err(HusaiRunError::TwoEvals {
                sae_run: e.sae_run,
                first: first.run.id(),
                second: e.eval.run.id(),
            });
        }
        if target.weights_sha256.as_deref() != Some(e.weights_sha256.as_str()) {
            return Err(HusaiRunError::OtherWeights {
                eval_run: e.eval.run.id(),
                sae_run: e.sae_run,
                evaluated: e.weights_sha256,
                signed: target
                    .weights_sha256
                    .clone()
                    .unwrap_or_else(|| "nothing".to_string()),
            });
        }
        settings.push((e.eval.run.id(), e.settings));
        target.husai.eval = Some(e.eval);
        cited_evals.push(e.cited);
    }
    check_one_eval_setting(&settings)?;
    let mut cited: Vec<CitedFile> = runs.iter().filter_map(|r| r.cited.clone()).collect();
    cited.extend(cited_evals);
    Ok(HusaiInputs {
        loaded: runs
            .into_iter()
            .map(|r| LoadedInput {
                display: r.name,
                source: SourceKind::Husai,
                content: InputContent::Husai(r.husai),
                config_sha256: r.config_sha256,
            })
            .collect(),
        cited,
    })
}

/// The seed row of one husai train run, or none for a skipped run.
pub(super) fn husai_row(input: &LoadedInput, input_index: usize, run: &HusaiRun) -> Option<Row> {
    if run.skipped.is_some() {
        return None;
    }
    Some(Row {
        source: SourceKind::Husai,
        source_results: input.display.clone(),
        input_index,
        row_index: 0,
        condition_id: run.family.clone(),
        architecture: run.family.clone(),
        // Seeds above i64::MAX cannot be counted; such a row is filtered as `no_seed`.
        seed: run.seed.and_then(|s| i64::try_from(s).ok()),
        hook_layer: None,
        hook_name: None,
        checkpoint: run.run.id(),
        saebench_summary_path: run
            .eval
            .as_ref()
            .map(|e| format!("{}/{OOD_SUMMARY}", e.run.id())),
        cebench_summary_path: None,
        metrics: Metrics {
            saebench_delta: run.eval.as_ref().and_then(|e| e.id_mean_gap),
            cebench_interp_delta_vs_baseline: None,
            cebench_interpretability_max: None,
            train_explained_variance: run.heldout_fvu.map(|fvu| 1.0 - fvu),
        },
        saebench_returncode: None,
        cebench_returncode: None,
        assignment: None,
        config_sha256: input.config_sha256.clone(),
        cebench_baseline_mismatch: false,
        husai: Some(run.clone()),
    })
}

fn unverified(flag: &'static str, dir: &Path) -> impl FnOnce(RunVerifyError) -> HusaiRunError {
    move |e| HusaiRunError::Unverified {
        flag,
        dir: dir.to_path_buf(),
        source: Box::new(e),
    }
}

/// "a data run", "an eval run of plugin known-circuit", ...
fn describe_run(run: &VerifiedRun) -> String {
    let kind = run.manifest.kind.as_str();
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    match &run.manifest.plugin {
        Some(p) => format!("{article} {kind} run of plugin {}", p.name),
        None => format!("{article} {kind} run"),
    }
}

fn identity_of(run: &VerifiedRun) -> Result<RunIdentity, HusaiRunError> {
    let path = run.dir.join(ENVELOPE_FILE);
    let bytes = std::fs::read(&path).map_err(|source| HusaiRunError::Io { path, source })?;
    Ok(RunIdentity {
        campaign: run.manifest.campaign.clone(),
        run_id: run.manifest.run_id.clone(),
        manifest_sha256: sha256_hex(&bytes),
    })
}

/// A subject of `run` cited without being read (a skipped run's): its signed digest.
fn cite_unread(run: &VerifiedRun, dir: &Path, subject: &str, role: &str) -> Option<CitedFile> {
    let s = run.subject(subject)?;
    let sha256 = s.digest.get("sha256")?.clone();
    Some(cite(run, dir, subject, role, sha256))
}

fn cite(run: &VerifiedRun, dir: &Path, subject: &str, role: &str, sha256: String) -> CitedFile {
    let m = &run.manifest;
    CitedFile {
        citation: InputCitation {
            role: role.to_string(),
            path: format!("{}/{}/{subject}", m.campaign, m.run_id),
            sha256: sha256.clone(),
            campaign: Some(m.campaign.clone()),
            run_id: Some(m.run_id.clone()),
            subject: Some(subject.to_string()),
        },
        input_ref: InputRef {
            path: dir.join(subject).display().to_string(),
            digest: BTreeMap::from([("sha256".to_string(), sha256)]),
            run: Some(RunRef {
                campaign: m.campaign.clone(),
                run_id: m.run_id.clone(),
                subject: subject.to_string(),
            }),
        },
    }
}

/// Reads subject `subject` of the verified `run`, checking the bytes against the signed digest, and parses it.
fn read_signed_json(
    run: &VerifiedRun,
    flag: &'static str,
    dir: &Path,
    subject: &'static str,
    why: &'static str,
) -> Result<(Value, String), HusaiRunError> {
    let run_name = format!("{}/{}", run.manifest.campaign, run.manifest.run_id);
    let path = dir.join(subject);
    let signed = run
        .subject(subject)
        .ok_or_else(|| HusaiRunError::MissingFile {
            flag,
            dir: dir.to_path_buf(),
            run: run_name.clone(),
            file: subject,
            why,
        })?;
    let expected =
        signed
            .digest
            .get("sha256")
            .cloned()
            .ok_or_else(|| HusaiRunError::NoPlainDigest {
                path: path.clone(),
                run: run_name.clone(),
            })?;
    let bytes = std::fs::read(&path).map_err(|source| HusaiRunError::Io {
        path: path.clone(),
        source,
    })?;
    let actual = sha256_hex(&bytes);
    if actual != expected {
        return Err(HusaiRunError::Changed {
            path,
            run: run_name,
            expected,
            actual,
        });
    }
    let value = serde_json::from_slice(&bytes).map_err(|e| HusaiRunError::BadFile {
        path,
        run: run_name,
        message: format!("not valid JSON: {e}"),
    })?;
    Ok((value, actual))
}

fn read_train(dir: &Path, trust: &TrustPolicy) -> Result<TrainRead, HusaiRunError> {
    let run = verify::load_verified_run(dir, trust).map_err(unverified("--run", dir))?;
    let m = &run.manifest;
    let name = format!("{}/{}", m.campaign, m.run_id);
    if m.kind != RunKind::Train {
        let ood =
            m.kind == RunKind::Eval && m.plugin.as_ref().is_some_and(|p| p.name == OOD_PLUGIN);
        return Err(HusaiRunError::NotTrain {
            dir: dir.to_path_buf(),
            run: name,
            what: describe_run(&run),
            hint: if ood {
                "; an ood-stress eval run goes to --eval-run"
            } else {
                ""
            },
        });
    }
    // The family, configuration and seed exactly as the release gate reads a candidate train run.
    let identity = read_train_run(dir, trust).map_err(|e| match e {
        TrainRunError::Unverified { dir, source } => HusaiRunError::Unverified {
            flag: "--run",
            dir,
            source,
        },
        TrainRunError::NotTrain { dir, run_id, kind } => HusaiRunError::RunChanged {
            dir,
            expected: name.clone(),
            found: format!("{run_id} of kind {kind}"),
        },
        TrainRunError::Incomplete { dir, .. } => HusaiRunError::TrainIncomplete {
            dir,
            run: name.clone(),
        },
    })?;
    if (identity.campaign.as_str(), identity.run_id.as_str()) != (&m.campaign, &m.run_id) {
        return Err(HusaiRunError::RunChanged {
            dir: dir.to_path_buf(),
            expected: name.clone(),
            found: format!("{}/{}", identity.campaign, identity.run_id),
        });
    }
    let config_sha256 = json_config_fingerprint(&identity.configuration, &name)?;
    let mut husai = HusaiRun {
        run: identity_of(&run)?,
        family: identity.family.clone(),
        seed: identity.seed,
        heldout_fvu: None,
        eval: None,
        skipped: None,
    };
    let weights_sha256 = run
        .subject(WEIGHTS)
        .and_then(|s| s.digest.get("sha256"))
        .cloned();
    let dataset_sha256 = m.dataset.as_ref().map(|d| d.sha256.clone());
    let cited = if let Err(not_ok) = require_ok(&run) {
        husai.skipped = Some(format!(
            "train run ended with status `{}`{}; only runs with status `ok` are candidates",
            not_ok.status.as_str(),
            not_ok
                .detail
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ));
        // Cited by its signed digest; nothing of a skipped run is read.
        cite_unread(&run, dir, TRAIN_METRICS, "husai_train")
    } else {
        let (metrics, sha256) = read_signed_json(
            &run,
            "--run",
            dir,
            TRAIN_METRICS,
            "a husai trainer writes one with its held-out FVU (docs/trainer-contract.md §3)",
        )?;
        let path = dir.join(TRAIN_METRICS);
        let bad = |message: String| HusaiRunError::BadFile {
            path: path.clone(),
            run: name.clone(),
            message,
        };
        match metrics.get("status").and_then(Value::as_str) {
            Some("ok") => {}
            Some(other) => {
                husai.skipped = Some(format!(
                    "metrics.json records status `{other}`; only runs with status `ok` are candidates"
                ));
            }
            None => return Err(bad("`status` is missing or not a string".to_string())),
        }
        husai.heldout_fvu = match metrics.get("eval").map(|e| e.get("fvu")) {
            None | Some(None) | Some(Some(Value::Null)) => None,
            Some(Some(Value::Number(n))) => n.as_f64(),
            Some(Some(other)) => {
                return Err(bad(format!("`eval.fvu` is {other}, not a number or null")));
            }
        };
        Some(cite(&run, dir, TRAIN_METRICS, "husai_train", sha256))
    };
    Ok(TrainRead {
        name,
        husai,
        config_sha256,
        weights_sha256,
        dataset_sha256,
        cited,
    })
}

fn read_eval(dir: &Path, trust: &TrustPolicy) -> Result<EvalRead, HusaiRunError> {
    let run = verify::load_verified_run(dir, trust).map_err(unverified("--eval-run", dir))?;
    let m = &run.manifest;
    let name = format!("{}/{}", m.campaign, m.run_id);
    if m.kind != RunKind::Eval || m.plugin.as_ref().map(|p| p.name.as_str()) != Some(OOD_PLUGIN) {
        return Err(HusaiRunError::NotOodStress {
            dir: dir.to_path_buf(),
            run: name,
            what: describe_run(&run),
            hint: if m.kind == RunKind::Train {
                "; a train run goes to --run"
            } else {
                ""
            },
        });
    }
    require_ok(&run).map_err(|e| HusaiRunError::EvalNotOk {
        dir: dir.to_path_buf(),
        source: Box::new(e),
    })?;
    let (summary, sha256) = read_signed_json(
        &run,
        "--eval-run",
        dir,
        OOD_SUMMARY,
        "every ood-stress eval signs its summary",
    )?;
    let path = dir.join(OOD_SUMMARY);
    let bad = |message: String| HusaiRunError::BadFile {
        path: path.clone(),
        run: name.clone(),
        message,
    };
    crate::schema::validate(OOD_SCHEMA, &summary).map_err(|e| {
        bad(format!(
            "does not match schemas/{OOD_SCHEMA}.json: {}",
            e.violations.join("; ")
        ))
    })?;
    // The schema guarantees the fields read below exist with these types.
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let sae = &summary["sae_run"];
    let sae_run = format!("{}/{}", text(&sae["campaign"]), text(&sae["run_id"]));
    let gate_k = summary["gate_k"].as_u64().unwrap_or_default();
    let at_gate_k = summary["by_k"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["k"].as_u64() == Some(gate_k)))
        .ok_or_else(|| bad(format!("`by_k` has no row for gate_k {gate_k}")))?;
    let mut settings = summary["config"].clone();
    if let Value::Object(map) = &mut settings {
        for key in EVAL_KEYS_NOT_COMPARED {
            map.remove(key);
        }
    }
    Ok(EvalRead {
        eval: HusaiEval {
            run: identity_of(&run)?,
            gate_k,
            id_tasks: at_gate_k["id_tasks"].as_u64().unwrap_or_default(),
            id_mean_gap: at_gate_k["id_mean_gap"].as_f64(),
        },
        sae_run,
        weights_sha256: text(&sae["weights_sha256"]),
        settings: serde_json::json!({"config": settings, "data_run": summary["data_run"]}),
        cited: cite(&run, dir, OOD_SUMMARY, "husai_eval", sha256),
    })
}

fn check_one_dataset(runs: &[TrainRead]) -> Result<(), HusaiRunError> {
    let mut first: Option<(&str, &str)> = None;
    for r in runs {
        let Some(data) = r
            .dataset_sha256
            .as_deref()
            .filter(|_| r.husai.skipped.is_none())
        else {
            continue;
        };
        match first {
            None => first = Some((&r.name, data)),
            Some((name, d)) if d != data => {
                return Err(HusaiRunError::MixedData {
                    first: name.to_string(),
                    second: r.name.clone(),
                    first_data: d.to_string(),
                    second_data: data.to_string(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn check_one_eval_setting(evals: &[(String, Value)]) -> Result<(), HusaiRunError> {
    let Some((first_run, first)) = evals.first() else {
        return Ok(());
    };
    for (run, settings) in &evals[1..] {
        if settings == first {
            continue;
        }
        let data_run = |s: &Value| {
            format!(
                "{}/{}",
                s["data_run"]["campaign"].as_str().unwrap_or("?"),
                s["data_run"]["run_id"].as_str().unwrap_or("?")
            )
        };
        let detail = if settings["data_run"] != first["data_run"] {
            format!("data runs {} and {}", data_run(first), data_run(settings))
        } else {
            let (a, b) = (&first["config"], &settings["config"]);
            let mut keys: Vec<&String> = a
                .as_object()
                .into_iter()
                .chain(b.as_object())
                .flat_map(|m| m.keys())
                .collect();
            keys.sort();
            keys.dedup();
            let show = |v: Option<&Value>| v.map_or("absent".to_string(), Value::to_string);
            keys.into_iter()
                .find(|k| a.get(k.as_str()) != b.get(k.as_str()))
                .map_or_else(
                    || "their configs differ".to_string(),
                    |k| {
                        format!(
                            "{k} {} vs {}",
                            show(a.get(k.as_str())),
                            show(b.get(k.as_str()))
                        )
                    },
                )
        };
        return Err(HusaiRunError::MixedEvalSettings {
            first: first_run.clone(),
            second: run.clone(),
            detail,
        });
    }
    Ok(())
}
