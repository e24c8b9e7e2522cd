//! Strict gate evaluation: typed inputs (one documented field per input kind), a named policy, `not_evaluated` for
//! missing inputs, and a report that says where every number came from. See the table in the module above for how
//! this differs from upstream.

use std::path::PathBuf;

use crate::legacy::json::LegacyValue;
use crate::legacy::{ArtifactKind, Fields, ReadError, ood, phase4a, transcoder};

use super::report::{
    Candidate, Check, Comparator, GATE_REPORT_SCHEMA_VERSION, GateReport, GateResult,
    InputCitation, Status,
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

fn random_model(policy: &Policy, file: Option<&SourcedFile>) -> Result<GateResult, GateError> {
    let Some(file) = file else {
        return Ok(gate_result(
            policy,
            GateName::RandomModel,
            Vec::new(),
            Vec::new(),
        ));
    };
    if file.detected.kind != ArtifactKind::Phase4aTrainedVsRandom {
        return Err(wrong_kind(
            file,
            "random_model",
            "a phase-4a trained-vs-random results file",
        ));
    }
    let r = phase4a::read(&file.path, &file.value)?;
    let mut checks = vec![
        check(
            "trained_random_delta",
            Some(Sourced {
                value: r.difference,
                field: "comparison.difference".into(),
            }),
            Comparator::AtLeast,
            policy.min_trained_random_delta,
            "point",
        ),
        check(
            "trained_random_delta_lcb",
            Some(Sourced {
                value: r.difference_of_bounds(),
                field: "trained.ci95_low - random.ci95_high".into(),
            }),
            Comparator::AtLeast,
            policy.min_trained_random_lcb,
            "lcb",
        ),
    ];
    if let Some(max) = policy.max_random_p_value {
        let p = r.p_value.ok_or(GateError::NoPValue {
            path: file.path.clone(),
            max,
        })?;
        checks.push(check(
            "trained_vs_random_p_value",
            Some(Sourced {
                value: p,
                field: "statistical_test.p_value".into(),
            }),
            Comparator::Below,
            max,
            "p_value",
        ));
    }
    Ok(gate_result(
        policy,
        GateName::RandomModel,
        vec![file.citation.clone()],
        checks,
    ))
}

fn transcoder_gate(policy: &Policy, file: Option<&SourcedFile>) -> Result<GateResult, GateError> {
    let Some(file) = file else {
        return Ok(gate_result(
            policy,
            GateName::Transcoder,
            Vec::new(),
            Vec::new(),
        ));
    };
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

fn ood_gate(policy: &Policy, file: Option<&SourcedFile>) -> Result<GateResult, GateError> {
    let Some(file) = file else {
        return Ok(gate_result(policy, GateName::Ood, Vec::new(), Vec::new()));
    };
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
    let random = random_model(policy, inputs.phase4a.as_ref())?;
    let transcoder = transcoder_gate(policy, inputs.transcoder.as_ref())?;
    let ood = ood_gate(policy, inputs.ood.as_ref())?;
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
