//! Strict gate evaluation: typed inputs (one documented field per input kind), a named policy, `not_evaluated` for
//! missing inputs, and a report that says where every number came from. See the table in the module above for how
//! this differs from upstream.

use std::path::PathBuf;

use crate::legacy::json::LegacyValue;
use crate::legacy::{ArtifactKind, Fields, ReadError, ood, transcoder};

use super::report::{
    Candidate, Check, Comparator, EvidenceCoverage, GATE_REPORT_SCHEMA_VERSION, GateReport,
    GateResult, InputCitation, Status, TrainRunIdentity,
};
use super::source::SourcedFile;
use super::{Basis, ExternalMode, GateName, Policy};

/// The files each gate reads; `None`/empty where the input was not given.
#[derive(Debug, Clone, Default)]
pub struct StrictInputs {
    pub phase4a: Option<SourcedFile>,
    pub transcoder: Option<SourcedFile>,
    pub ood: Option<SourcedFile>,
    /// A selected candidate or selection summary, or up to one SAEBench and one CE-Bench summary.
    pub external: Vec<SourcedFile>,
    /// The SAE train runs the trained-vs-random summary covers ([`covered_runs`]), read from their signed
    /// manifests.
    pub random_model_runs: Vec<TrainRunIdentity>,
    /// The release candidate's own train run: the covered runs must be its family and configuration.
    pub candidate_run: Option<TrainRunIdentity>,
}

/// The `schema` value of husai's trained-vs-random summary (`schemas/trained-vs-random.v1.json`).
pub const TRAINED_VS_RANDOM_SCHEMA: &str = "trained-vs-random.v1";

fn is_trained_vs_random(file: &SourcedFile) -> bool {
    file.value.get("schema").and_then(LegacyValue::as_str) == Some(TRAINED_VS_RANDOM_SCHEMA)
}

/// The `(campaign, run_id)` of every SAE run a trained-vs-random summary covers (`sae_runs`), for the caller to
/// read from the results tree.
pub fn covered_runs(file: &SourcedFile) -> Result<Vec<(String, String)>, GateError> {
    let f = Fields::new(&file.path, &file.value, "trained_vs_random");
    let runs = f.require(&["sae_runs"])?;
    let Some(items) = runs.as_array() else {
        return Err(ReadError::WrongType {
            path: file.path.clone(),
            field: "sae_runs".into(),
            expected: "an array",
            found: crate::legacy::describe(runs),
        }
        .into());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let g = Fields::new(&file.path, run, "trained_vs_random");
            let text = |key: &str| -> Result<String, GateError> {
                Ok(g.opt_str(&[key])?
                    .ok_or_else(|| ReadError::MissingField {
                        path: file.path.clone(),
                        kind: "trained_vs_random",
                        field: format!("sae_runs[{i}].{key}"),
                    })?
                    .to_string())
            };
            Ok((text("campaign")?, text("run_id")?))
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{}: the {gate} gate reads {expected}, but this file is a {found}", path.display())]
    WrongInputKind {
        path: PathBuf,
        gate: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{} and {}: both provide {benchmark}; give one file per benchmark", first.display(), second.display())]
    DuplicateBenchmark {
        first: PathBuf,
        second: PathBuf,
        benchmark: &'static str,
    },
    #[error(
        "{}: basis `lcb` needs `{field}`, which this {kind} does not have; use a grouped candidate (husai-audit select) or --basis point",
        path.display()
    )]
    NoLcb {
        path: PathBuf,
        kind: &'static str,
        field: String,
    },
    #[error(
        "{}: the sweep's best condition {condition} has return code {code:?}; a failed condition cannot pass the transcoder gate",
        path.display()
    )]
    FailedSweepCondition {
        path: PathBuf,
        condition: String,
        code: Option<i64>,
    },
    #[error("{}: the sweep has no `best_condition`; no condition ran successfully", path.display())]
    NoBestCondition { path: PathBuf },
    #[error(
        "{}: the policy checks phase-4a significance (max p-value {max}), but the file has no `statistical_test.p_value`; use --profile cycle4 or a complete phase-4a file",
        path.display()
    )]
    NoPValue { path: PathBuf, max: f64 },
    #[error(
        "{}: strict mode's random_model gate reads husai's trained-vs-random summary (plugin trained-vs-random, schema {TRAINED_VS_RANDOM_SCHEMA}); an upstream phase-4a file bounds the difference only by a difference of two bounds over pairs that share seeds, which only --parity accepts",
        path.display()
    )]
    DifferenceOfBounds { path: PathBuf },
    #[error(
        "{}: the summary covers SAE runs {listed:?}, but the runs given to the gate are {given:?}",
        path.display()
    )]
    CoveredRunsDiffer {
        path: PathBuf,
        listed: Vec<String>,
        given: Vec<String>,
    },
    /// Boxed: two run identities named in full would make every `Result<_, GateError>` large.
    #[error("{0}")]
    EvidenceNotCandidate(Box<EvidenceMismatch>),
}

/// Random-model evidence about another run than the candidate (what [`GateError::EvidenceNotCandidate`] says).
#[derive(Debug, thiserror::Error)]
#[error(
    "{}: the random_model evidence covers run {run} ({family}, configuration {configuration}), but the candidate is run {candidate_run} ({candidate_family}, configuration {candidate_configuration}); evaluate trained-vs-random on SAE seeds of the candidate's own family and configuration",
    path.display()
)]
pub struct EvidenceMismatch {
    pub path: PathBuf,
    pub run: String,
    pub family: String,
    pub configuration: String,
    pub candidate_run: String,
    pub candidate_family: String,
    pub candidate_configuration: String,
}

/// A value with the field it came from.
#[derive(Debug, Clone, PartialEq)]
struct Sourced {
    value: f64,
    field: String,
}

fn check(
    metric: &str,
    value: Option<Sourced>,
    comparator: Comparator,
    threshold: f64,
    basis: &str,
) -> Check {
    let status = match &value {
        None => Status::NotEvaluated,
        Some(s) => {
            if comparator.holds(s.value, threshold) {
                Status::Pass
            } else {
                Status::Fail
            }
        }
    };
    Check {
        metric: metric.to_string(),
        value: value.as_ref().map(|s| s.value),
        threshold,
        comparator,
        basis: basis.to_string(),
        status,
        source_field: value.map(|s| s.field),
    }
}

fn gate_result(
    policy: &Policy,
    gate: GateName,
    inputs: Vec<InputCitation>,
    checks: Vec<Check>,
) -> GateResult {
    let allowed = policy.allows_missing(gate);
    let status = if inputs.is_empty() || checks.iter().any(|c| c.status == Status::NotEvaluated) {
        Status::NotEvaluated
    } else if checks.iter().all(|c| c.status == Status::Pass) {
        Status::Pass
    } else {
        Status::Fail
    };
    // A not_evaluated gate passes only when allowed; a failing check still fails it even then.
    let passed = match status {
        Status::Pass => true,
        Status::Fail => false,
        Status::NotEvaluated => allowed && checks.iter().all(|c| c.status != Status::Fail),
    };
    GateResult {
        gate,
        status,
        passed,
        allowed_missing: allowed,
        inputs,
        checks,
        evidence: None,
        reason: None,
    }
}

fn wrong_kind(file: &SourcedFile, gate: &'static str, expected: &'static str) -> GateError {
    GateError::WrongInputKind {
        path: file.path.clone(),
        gate,
        expected,
        found: file.detected.kind.as_str(),
    }
}

fn random_model(policy: &Policy, inputs: &StrictInputs) -> Result<GateResult, GateError> {
    let Some(file) = inputs.phase4a.as_ref() else {
        return Ok(gate_result(
            policy,
            GateName::RandomModel,
            Vec::new(),
            Vec::new(),
        ));
    };
    if !is_trained_vs_random(file) {
        if file.detected.kind == ArtifactKind::Phase4aTrainedVsRandom {
            return Err(GateError::DifferenceOfBounds {
                path: file.path.clone(),
            });
        }
        return Err(wrong_kind(
            file,
            "random_model",
            "a husai trained-vs-random summary",
        ));
    }
    let f = Fields::new(&file.path, &file.value, "trained_vs_random");
    // The runs the caller read must be exactly the ones the summary lists.
    let listed: Vec<String> = covered_runs(file)?
        .into_iter()
        .map(|(c, r)| format!("{c}/{r}"))
        .collect();
    let given: Vec<String> = inputs
        .random_model_runs
        .iter()
        .map(|r| format!("{}/{}", r.campaign, r.run_id))
        .collect();
    let (mut l, mut g) = (listed.clone(), given.clone());
    l.sort();
    g.sort();
    if l != g {
        return Err(GateError::CoveredRunsDiffer {
            path: file.path.clone(),
            listed,
            given,
        });
    }
    let seeds = f.finite_f64(&["trained", "n_seeds"])?;
    let lcb = f.opt_f64(&["difference", "ci_low"])?;
    if let Some(v) = lcb.filter(|v| !v.is_finite()) {
        return Err(ReadError::WrongType {
            path: file.path.clone(),
            field: "difference.ci_low".into(),
            expected: "a finite number or null",
            found: format!("float {v}"),
        }
        .into());
    }
    let effect = f.finite_f64(&["chance_normalised_effect"])?;
    let sourced = |value: f64, field: &str| {
        Some(Sourced {
            value,
            field: field.into(),
        })
    };
    let mut checks = vec![
        check(
            "trained_seeds",
            sourced(seeds, "trained.n_seeds"),
            Comparator::AtLeast,
            policy.min_random_model_seeds as f64,
            "count",
        ),
        // A null bound (fewer seeds than the interval needs) leaves this check not evaluated.
        check(
            "trained_random_difference_lcb",
            lcb.and_then(|v| sourced(v, "difference.ci_low")),
            Comparator::Above,
            policy.min_trained_random_lcb,
            "lcb",
        ),
        check(
            "chance_normalised_effect",
            sourced(effect, "chance_normalised_effect"),
            Comparator::AtLeast,
            policy.min_chance_normalised_effect,
            "point",
        ),
    ];
    if let Some(max) = policy.max_random_p_value {
        let p = f
            .opt_f64(&["mann_whitney", "p_value"])?
            .ok_or(GateError::NoPValue {
                path: file.path.clone(),
                max,
            })?;
        checks.push(check(
            "trained_vs_random_p_value",
            sourced(p, "mann_whitney.p_value"),
            Comparator::Below,
            max,
            "p_value",
        ));
    }
    // Scope: every covered run must be the candidate's family and configuration.
    let matches = match &inputs.candidate_run {
        None => None,
        Some(c) => {
            for run in &inputs.random_model_runs {
                if run.family != c.family || run.configuration != c.configuration {
                    return Err(GateError::EvidenceNotCandidate(Box::new(
                        EvidenceMismatch {
                            path: file.path.clone(),
                            run: format!("{}/{}", run.campaign, run.run_id),
                            family: run.family.clone(),
                            configuration: run.configuration.to_string(),
                            candidate_run: format!("{}/{}", c.campaign, c.run_id),
                            candidate_family: c.family.clone(),
                            candidate_configuration: c.configuration.to_string(),
                        },
                    )));
                }
            }
            Some(1.0)
        }
    };
    checks.push(check(
        "evidence_is_candidate_configuration",
        matches.and_then(|v| sourced(v, "sae_runs")),
        Comparator::AtLeast,
        1.0,
        "provenance",
    ));
    let mut result = gate_result(
        policy,
        GateName::RandomModel,
        vec![file.citation.clone()],
        checks,
    );
    result.evidence = Some(EvidenceCoverage {
        sae_runs: inputs.random_model_runs.clone(),
        candidate: inputs.candidate_run.clone(),
    });
    Ok(result)
}

/// The `schema` value of husai's transcoder stress summary (`schemas/transcoder-stress.v1.json`, plugin
/// `transcoder-stress`).
pub const TRANSCODER_STRESS_SCHEMA: &str = "transcoder-stress.v1";

fn transcoder_gate(
    policy: &Policy,
    file: Option<&SourcedFile>,
    candidate: Option<&TrainRunIdentity>,
) -> Result<GateResult, GateError> {
    let Some(file) = file else {
        return Ok(gate_result(
            policy,
            GateName::Transcoder,
            Vec::new(),
            Vec::new(),
        ));
    };
    if file.value.get("schema").and_then(LegacyValue::as_str) == Some(TRANSCODER_STRESS_SCHEMA) {
        return husai_transcoder_gate(policy, file, candidate);
    }
    let value = match file.detected.kind {
        ArtifactKind::TranscoderStressSummary => Sourced {
            value: transcoder::read_summary(&file.path, &file.value)?.delta,
            field: "delta".into(),
        },
        ArtifactKind::TranscoderStressSweep => {
            let sweep = transcoder::read_sweep(&file.path, &file.value)?;
            let best = sweep
                .best_condition
                .ok_or_else(|| GateError::NoBestCondition {
                    path: file.path.clone(),
                })?;
            if best.returncode != Some(0) {
                return Err(GateError::FailedSweepCondition {
                    path: file.path.clone(),
                    condition: best.condition_id,
                    code: best.returncode,
                });
            }
            let delta =
                best.delta
                    .filter(|d| d.is_finite())
                    .ok_or_else(|| ReadError::MissingField {
                        path: file.path.clone(),
                        kind: "transcoder_stress_sweep",
                        field: "best_condition.delta".into(),
                    })?;
            Sourced {
                value: delta,
                field: "best_condition.delta".into(),
            }
        }
        _ => {
            return Err(wrong_kind(
                file,
                "transcoder",
                "a transcoder stress summary or sweep",
            ));
        }
    };
    let checks = vec![check(
        "transcoder_delta",
        Some(value),
        Comparator::AtLeast,
        policy.min_transcoder_delta,
        "point",
    )];
    Ok(gate_result(
        policy,
        GateName::Transcoder,
        vec![file.citation.clone()],
        checks,
    ))
}

/// The transcoder gate on husai's own summary: the lower bound of the confirmed condition's paired interval
/// (`transcoder_delta_lcb`, fitted on seeds the sweep did not choose it on) must be at least
/// `min_transcoder_delta` (upstream gated the sweep winner's point delta, T2/T3). The evidence concerns the data run
/// both methods were fitted on, which must be the one the candidate was trained on; otherwise, or with no candidate
/// named, it is refused as the OOD evidence is: `not_evaluated`, failing, with the reason naming both runs. A
/// confirmation on too few seeds to gate is `not_evaluated` with the summary's reason.
fn husai_transcoder_gate(
    policy: &Policy,
    file: &SourcedFile,
    candidate: Option<&TrainRunIdentity>,
) -> Result<GateResult, GateError> {
    let f = Fields::new(&file.path, &file.value, "transcoder_stress");
    let text = |key: &str| -> Result<String, GateError> {
        Ok(f.opt_str(&["data_run", key])?
            .ok_or_else(|| ReadError::MissingField {
                path: file.path.clone(),
                kind: "transcoder_stress",
                field: format!("data_run.{key}"),
            })?
            .to_string())
    };
    let evidence = format!("{}/{}", text("campaign")?, text("run_id")?);
    let refusal = match candidate {
        None => Some(format!(
            "the transcoder evidence was measured on data run {evidence}; name the release candidate (--candidate \
             RUN) so the gate can check that it was trained on that run"
        )),
        Some(c) if c.data_run.as_deref() != Some(evidence.as_str()) => Some(format!(
            "the transcoder evidence was measured on data run {evidence}, but the candidate {}/{} was trained on {}; \
             run transcoder-stress on the candidate's own data run",
            c.campaign,
            c.run_id,
            c.data_run.as_deref().unwrap_or("a file outside any run")
        )),
        Some(_) => None,
    };
    let lcb = f.opt_f64(&["transcoder_delta_lcb"])?.map(|v| Sourced {
        value: v,
        field: "transcoder_delta_lcb".into(),
    });
    let checks = vec![check(
        "transcoder_delta_lcb",
        if refusal.is_some() { None } else { lcb },
        Comparator::AtLeast,
        policy.min_transcoder_delta,
        "lcb",
    )];
    let mut g = gate_result(
        policy,
        GateName::Transcoder,
        vec![file.citation.clone()],
        checks,
    );
    if let Some(why) = refusal {
        g.status = Status::NotEvaluated;
        g.passed = false;
        g.reason = Some(why);
    } else if g.status == Status::NotEvaluated {
        g.reason = f
            .opt_str(&["confirmation", "gate_reason"])?
            .map(|r| format!("the summary has no gateable bound: {r}"));
    }
    g.evidence = candidate.map(|c| EvidenceCoverage {
        sae_runs: Vec::new(),
        candidate: Some(c.clone()),
    });
    Ok(g)
}

/// The `schema` value of husai's OOD stress summary (`schemas/ood-stress.v1.json`, plugin `ood-stress`).
pub const OOD_STRESS_SCHEMA: &str = "ood-stress.v1";

fn ood_gate(
    policy: &Policy,
    file: Option<&SourcedFile>,
    candidate: Option<&TrainRunIdentity>,
) -> Result<GateResult, GateError> {
    let Some(file) = file else {
        return Ok(gate_result(policy, GateName::Ood, Vec::new(), Vec::new()));
    };
    if file.value.get("schema").and_then(LegacyValue::as_str) == Some(OOD_STRESS_SCHEMA) {
        return husai_ood_gate(policy, file, candidate);
    }
    if file.detected.kind != ArtifactKind::OodStressSummary {
        return Err(wrong_kind(file, "ood", "an OOD stress summary"));
    }
    let o = ood::read(&file.path, &file.value)?;
    let value = Sourced {
        value: o.ood_drop,
        field: "ood_drop".into(),
    };
    let checks = vec![check(
        "ood_drop",
        Some(value),
        Comparator::AtMost,
        policy.max_ood_drop,
        "point",
    )];
    Ok(gate_result(
        policy,
        GateName::Ood,
        vec![file.citation.clone()],
        checks,
    ))
}

/// The ood gate on husai's own summary: it concerns one SAE run, which must be the candidate's; then the upper
/// bound of the drop's interval must be at most `max_ood_drop` (upstream gated the point drop). Evidence about
/// another run, or with no candidate named, is refused: `not_evaluated`, failing even when ood is allowed
/// missing, with the reason naming both runs.
fn husai_ood_gate(
    policy: &Policy,
    file: &SourcedFile,
    candidate: Option<&TrainRunIdentity>,
) -> Result<GateResult, GateError> {
    let f = Fields::new(&file.path, &file.value, "ood_stress");
    let text = |key: &str| -> Result<String, GateError> {
        Ok(f.opt_str(&["sae_run", key])?
            .ok_or_else(|| ReadError::MissingField {
                path: file.path.clone(),
                kind: "ood_stress",
                field: format!("sae_run.{key}"),
            })?
            .to_string())
    };
    let evidence = format!("{}/{}", text("campaign")?, text("run_id")?);
    let refusal = match candidate {
        None => Some(format!(
            "the OOD evidence concerns SAE run {evidence}; name the release candidate (--candidate RUN) so the gate \
             can check that it is that run"
        )),
        Some(c) if format!("{}/{}", c.campaign, c.run_id) != evidence => Some(format!(
            "the OOD evidence concerns SAE run {evidence}, but the candidate is run {}/{}; evaluate ood-stress on \
             the candidate itself",
            c.campaign, c.run_id
        )),
        Some(_) => None,
    };
    let high = f.opt_f64(&["ood_drop_interval", "high"])?.map(|v| Sourced {
        value: v,
        field: "ood_drop_interval.high".into(),
    });
    let checks = vec![check(
        "ood_drop_ci_high",
        if refusal.is_some() { None } else { high },
        Comparator::AtMost,
        policy.max_ood_drop,
        "ci_high",
    )];
    let mut g = gate_result(policy, GateName::Ood, vec![file.citation.clone()], checks);
    if let Some(why) = refusal {
        g.status = Status::NotEvaluated;
        g.passed = false;
        g.reason = Some(why);
    } else if g.status == Status::NotEvaluated {
        g.reason = match f.opt_str(&["ood_drop_interval_reason"])? {
            Some(r) => Some(format!("the summary has no interval of the drop: {r}")),
            // An interval whose upper bound is null: the bootstrap left it unbounded above.
            None => Some(
                "the drop's interval is unbounded above, so it cannot bound the drop".to_string(),
            ),
        };
    }
    g.evidence = candidate.map(|c| EvidenceCoverage {
        sae_runs: Vec::new(),
        candidate: Some(c.clone()),
    });
    Ok(g)
}

/// External values found in the inputs, per benchmark, on the policy's basis.
#[derive(Default)]
struct ExternalValues {
    saebench: Option<(Sourced, PathBuf)>,
    cebench: Option<(Sourced, PathBuf)>,
    candidate: Option<Candidate>,
}

fn set(
    slot: &mut Option<(Sourced, PathBuf)>,
    value: Sourced,
    path: &std::path::Path,
    benchmark: &'static str,
) -> Result<(), GateError> {
    if let Some((_, first)) = slot {
        return Err(GateError::DuplicateBenchmark {
            first: first.clone(),
            second: path.to_path_buf(),
            benchmark,
        });
    }
    *slot = Some((value, path.to_path_buf()));
    Ok(())
}

/// Reads a candidate's metric for one benchmark. Grouped candidates (upstream's grouped selector) store the group
/// LCB under the plain key, so the point basis reads `<key>_mean` for them (reference W11).
fn candidate_metric(
    f: &Fields,
    prefix: &[&str],
    key: &str,
    grouped: bool,
    basis: Basis,
    kind: &'static str,
) -> Result<Option<Sourced>, GateError> {
    let field = match (basis, grouped) {
        (Basis::Lcb, _) => format!("{key}_ci95_low"),
        (Basis::Point, true) => format!("{key}_mean"),
        (Basis::Point, false) => key.to_string(),
    };
    let mut keys: Vec<&str> = prefix.to_vec();
    keys.push("metrics");
    keys.push(&field);
    let dotted = keys.join(".");
    match f.opt_f64(&keys)? {
        Some(v) if v.is_finite() => Ok(Some(Sourced {
            value: v,
            field: dotted,
        })),
        Some(_) => Err(ReadError::WrongType {
            path: f.path.to_path_buf(),
            field: dotted,
            expected: "a finite number",
            found: "a non-finite float".into(),
        }
        .into()),
        None if basis == Basis::Lcb => Err(GateError::NoLcb {
            path: f.path.to_path_buf(),
            kind,
            field: dotted,
        }),
        None => Ok(None),
    }
}

fn external_values(policy: &Policy, files: &[SourcedFile]) -> Result<ExternalValues, GateError> {
    let mut out = ExternalValues::default();
    for file in files {
        let kind = file.detected.kind;
        match kind {
            ArtifactKind::SelectedCandidate | ArtifactKind::SelectionSummary => {
                let prefix: &[&str] = if kind == ArtifactKind::SelectionSummary {
                    &["selected_candidate"]
                } else {
                    &[]
                };
                let f = Fields::new(&file.path, &file.value, kind.as_str());
                let candidate = f.require(prefix)?;
                let grouped = candidate
                    .get_path(&["selection", "grouped_from_seed_candidates"])
                    .is_some()
                    || candidate
                        .get_path(&["metrics", "saebench_delta_mean"])
                        .is_some();
                let need_sae = policy.external_mode != ExternalMode::Cebench;
                let need_ce = policy.external_mode != ExternalMode::Saebench;
                if need_sae
                    && let Some(v) = candidate_metric(
                        &f,
                        prefix,
                        "saebench_delta",
                        grouped,
                        policy.external_basis,
                        kind.as_str(),
                    )?
                {
                    set(&mut out.saebench, v, &file.path, "SAEBench")?;
                }
                if need_ce
                    && let Some(v) = candidate_metric(
                        &f,
                        prefix,
                        "cebench_interp_delta_vs_baseline",
                        grouped,
                        policy.external_basis,
                        kind.as_str(),
                    )?
                {
                    set(&mut out.cebench, v, &file.path, "CE-Bench")?;
                }
                let text = |k: &str| {
                    candidate
                        .get(k)
                        .and_then(LegacyValue::as_str)
                        .map(str::to_string)
                };
                out.candidate = Some(Candidate {
                    condition_id: text("condition_id"),
                    group_id: text("group_id"),
                    checkpoint: text("checkpoint"),
                    architecture: text("architecture"),
                });
            }
            ArtifactKind::HusaiSelection => {
                // husai's own selection keeps the group statistics apart from the representative's identity, so
                // the point basis reads `mean` and the LCB basis `ci_low` with no guessing (reference W11 fixed).
                let f = Fields::new(&file.path, &file.value, kind.as_str());
                let stat = match policy.external_basis {
                    Basis::Lcb => "ci_low",
                    Basis::Point => "mean",
                };
                let read = |metric: &str| -> Result<Option<Sourced>, GateError> {
                    let keys = ["selected", "group_metrics", metric, stat];
                    let field = keys.join(".");
                    match f.opt_f64(&keys)? {
                        Some(v) if v.is_finite() => Ok(Some(Sourced { value: v, field })),
                        Some(_) => Err(ReadError::WrongType {
                            path: file.path.clone(),
                            field,
                            expected: "a finite number",
                            found: "a non-finite float".into(),
                        }
                        .into()),
                        // A null bound (e.g. a single-seed candidate) cannot be judged on that basis.
                        None => Ok(None),
                    }
                };
                if policy.external_mode != ExternalMode::Cebench
                    && let Some(v) = read("saebench_delta")?
                {
                    set(&mut out.saebench, v, &file.path, "SAEBench")?;
                }
                if policy.external_mode != ExternalMode::Saebench
                    && let Some(v) = read("cebench_interp_delta_vs_baseline")?
                {
                    set(&mut out.cebench, v, &file.path, "CE-Bench")?;
                }
                let text = |keys: &[&str]| f.opt_str(keys).ok().flatten().map(str::to_string);
                out.candidate = Some(Candidate {
                    condition_id: text(&["selected", "representative", "condition_id"]),
                    group_id: text(&["selected", "candidate_id"]),
                    checkpoint: text(&["selected", "representative", "checkpoint"]),
                    architecture: text(&["selected", "representative", "architecture"]),
                });
            }
            ArtifactKind::SaebenchSummary | ArtifactKind::CebenchSummary => {
                let sae = kind == ArtifactKind::SaebenchSummary;
                let field = if sae {
                    "summary.best_minus_llm_auc"
                } else {
                    "delta_vs_matched_baseline.interpretability_score_mean_max"
                };
                if policy.external_basis == Basis::Lcb {
                    return Err(GateError::NoLcb {
                        path: file.path.clone(),
                        kind: kind.as_str(),
                        field: format!("{field} lower bound"),
                    });
                }
                let value = if sae {
                    Some(
                        crate::legacy::external::read_saebench(&file.path, &file.value)?
                            .best_minus_llm_auc,
                    )
                } else {
                    crate::legacy::external::read_cebench(&file.path, &file.value)?
                        .interp_delta_vs_baseline
                };
                let Some(value) = value.filter(|v| v.is_finite()) else {
                    return Err(ReadError::MissingField {
                        path: file.path.clone(),
                        kind: kind.as_str(),
                        field: field.into(),
                    }
                    .into());
                };
                let sourced = Sourced {
                    value,
                    field: field.into(),
                };
                if sae {
                    set(&mut out.saebench, sourced, &file.path, "SAEBench")?;
                } else {
                    set(&mut out.cebench, sourced, &file.path, "CE-Bench")?;
                }
            }
            _ => {
                return Err(wrong_kind(
                    file,
                    "external",
                    "a husai selection.json, an upstream selected candidate or selection summary, or a SAEBench/CE-Bench summary",
                ));
            }
        }
    }
    Ok(out)
}

fn external_gate(
    policy: &Policy,
    files: &[SourcedFile],
) -> Result<(GateResult, Option<Candidate>), GateError> {
    if files.is_empty() {
        return Ok((
            gate_result(policy, GateName::External, Vec::new(), Vec::new()),
            None,
        ));
    }
    let values = external_values(policy, files)?;
    let basis = policy.external_basis;
    let (sae_thr, ce_thr) = match basis {
        Basis::Lcb => (policy.min_saebench_delta_lcb, policy.min_cebench_delta_lcb),
        Basis::Point => (policy.min_saebench_delta, policy.min_cebench_delta),
    };
    let mut checks = Vec::new();
    if policy.external_mode != ExternalMode::Cebench {
        checks.push(check(
            "saebench_delta",
            values.saebench.map(|(v, _)| v),
            Comparator::AtLeast,
            sae_thr,
            basis.as_str(),
        ));
    }
    if policy.external_mode != ExternalMode::Saebench {
        checks.push(check(
            "cebench_interp_delta_vs_baseline",
            values.cebench.map(|(v, _)| v),
            Comparator::AtLeast,
            ce_thr,
            basis.as_str(),
        ));
    }
    let citations = files.iter().map(|f| f.citation.clone()).collect();
    Ok((
        gate_result(policy, GateName::External, citations, checks),
        values.candidate,
    ))
}

/// Evaluates every gate under `policy`. Errors (wrong input kind, missing or mistyped field) abort the whole
/// evaluation so that no report is written from bad inputs.
pub fn evaluate(policy: &Policy, inputs: &StrictInputs) -> Result<GateReport, GateError> {
    let random = random_model(policy, inputs)?;
    let transcoder = transcoder_gate(
        policy,
        inputs.transcoder.as_ref(),
        inputs.candidate_run.as_ref(),
    )?;
    let ood = ood_gate(policy, inputs.ood.as_ref(), inputs.candidate_run.as_ref())?;
    let (external, candidate) = external_gate(policy, &inputs.external)?;
    let gates = vec![random, transcoder, ood, external];
    let pass_all = gates.iter().all(|g| g.passed);
    Ok(GateReport {
        schema_version: GATE_REPORT_SCHEMA_VERSION.to_string(),
        mode: "strict".to_string(),
        policy: policy.clone(),
        candidate,
        gates,
        pass_all,
    })
}
