//! Upstream's experiment-consistency audit (`verify_experiment_consistency.py`, reference §3), ported for parity.
//!
//! Ported checks, with upstream's ids, pass rules and evidence keys: 1 `phase4a_training_signal`,
//! 2 `core_k_sweep_has_positive_delta`, 3 `core_d_sae_sweep_has_positive_delta`, 6
//! `assignment_v2_internal_gain_positive`, 7 `assignment_v2_external_gate_pass`, 8 `stress_release_policy_pass_all`.
//! A check runs only when its input is given.
//!
//! Not ported: checks 4 and 5 (adaptive-L0 gain and consistency-regularizer effect). Their verdicts are bootstrap
//! percentile CIs drawn from numpy's PCG64 stream (`default_rng(37)`/`(53)`), which cannot be reproduced exactly
//! without reimplementing numpy's generator and sampling; a tolerance-based replacement would not be parity.
//!
//! One intended difference: where upstream crashed on a missing field (KeyError, exit 1), the check reports
//! `error` with the field's name and `overall_pass` is false (reference W17).

use crate::legacy::json::LegacyValue;

#[derive(Debug, Clone, PartialEq)]
pub enum CheckStatus {
    Pass,
    Fail,
    /// The input lacks a field the check reads (upstream crashed here).
    Error(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsistencyCheck {
    pub id: &'static str,
    pub status: CheckStatus,
    /// Upstream's evidence object, keys in upstream's order.
    pub evidence: Vec<(&'static str, LegacyValue)>,
}

impl ConsistencyCheck {
    pub fn passed(&self) -> bool {
        self.status == CheckStatus::Pass
    }
}

fn missing(id: &'static str, field: &str) -> ConsistencyCheck {
    ConsistencyCheck {
        id,
        status: CheckStatus::Error(format!(
            "the input has no `{field}` (upstream raised KeyError here)"
        )),
        evidence: Vec::new(),
    }
}

fn field<'a>(v: &'a LegacyValue, keys: &[&str]) -> Option<&'a LegacyValue> {
    v.get_path(keys)
}

fn verdict(ok: bool) -> CheckStatus {
    if ok {
        CheckStatus::Pass
    } else {
        CheckStatus::Fail
    }
}

/// Check 1: `comparison.difference > 0` and `statistical_test.p_value < 0.05`.
pub fn phase4a_training_signal(phase4a: &LegacyValue) -> ConsistencyCheck {
    const ID: &str = "phase4a_training_signal";
    let Some(delta) = field(phase4a, &["comparison", "difference"]) else {
        return missing(ID, "comparison.difference");
    };
    let Some(p) = field(phase4a, &["statistical_test", "p_value"]) else {
        return missing(ID, "statistical_test.p_value");
    };
    let ok = matches!((delta.as_python_number(), p.as_python_number()), (Some(d), Some(p)) if d > 0.0 && p < 0.05);
    ConsistencyCheck {
        id: ID,
        status: verdict(ok),
        evidence: vec![("delta", delta.clone()), ("p_value", p.clone())],
    }
}

/// Checks 2 and 3: the sweep row with the largest `delta_pwmcc` (missing → −inf, first maximum wins) is positive.
pub fn core_sweep_has_positive_delta(core: &LegacyValue, sweep: &str) -> ConsistencyCheck {
    let (id, param, best_key, delta_key): (&'static str, &str, &'static str, &'static str) =
        match sweep {
            "k_sweep" => (
                "core_k_sweep_has_positive_delta",
                "k",
                "best_k",
                "best_k_delta",
            ),
            _ => (
                "core_d_sae_sweep_has_positive_delta",
                "d_sae",
                "best_d_sae",
                "best_d_delta",
            ),
        };
    let Some(rows) = field(core, &[sweep]).and_then(LegacyValue::as_array) else {
        return missing(id, sweep);
    };
    let score = |r: &LegacyValue| {
        r.get("delta_pwmcc")
            .and_then(LegacyValue::as_python_number)
            .unwrap_or(f64::NEG_INFINITY)
    };
    // Python's max() keeps the first of equal maxima.
    let Some(best) = rows.iter().fold(None::<&LegacyValue>, |acc, r| match acc {
        Some(a) if score(r) <= score(a) => Some(a),
        _ => Some(r),
    }) else {
        return ConsistencyCheck {
            id,
            status: CheckStatus::Error(format!(
                "`{sweep}` is empty (upstream raised ValueError from max())"
            )),
            evidence: Vec::new(),
        };
    };
    let Some(delta) = best.get("delta_pwmcc") else {
        return missing(id, &format!("{sweep}[].delta_pwmcc"));
    };
    let ok = delta.as_python_number().is_some_and(|d| d > 0.0);
    ConsistencyCheck {
        id,
        status: verdict(ok),
        evidence: vec![
            (
                best_key,
                best.get(param).cloned().unwrap_or(LegacyValue::Int(-1)),
            ),
            (delta_key, delta.clone()),
        ],
    }
}

/// Check 6: assignment-v2 `acceptance.best_delta_lcb > 0` and `acceptance.ev_drop <= 0.05`, both numeric.
pub fn assignment_v2_internal_gain_positive(results: &LegacyValue) -> ConsistencyCheck {
    const ID: &str = "assignment_v2_internal_gain_positive";
    let Some(acc) = field(results, &["acceptance"]) else {
        return missing(ID, "acceptance");
    };
    let get = |k: &str| acc.get(k).cloned().unwrap_or(LegacyValue::Null);
    let lcb = get("best_delta_lcb");
    let ev_drop = get("ev_drop");
    let ok = matches!((lcb.as_python_number(), ev_drop.as_python_number()), (Some(l), Some(e)) if l > 0.0 && e <= 0.05);
    ConsistencyCheck {
        id: ID,
        status: verdict(ok),
        evidence: vec![
            ("best_lambda", get("best_lambda")),
            ("best_delta_lcb", lcb),
            ("ev_drop", ev_drop),
        ],
    }
}

/// Check 7: assignment-v2 `acceptance.gate_external is True` (identity: only a literal `true` passes).
pub fn assignment_v2_external_gate_pass(results: &LegacyValue) -> ConsistencyCheck {
    const ID: &str = "assignment_v2_external_gate_pass";
    let Some(acc) = field(results, &["acceptance"]) else {
        return missing(ID, "acceptance");
    };
    let get = |k: &str| acc.get(k).cloned().unwrap_or(LegacyValue::Null);
    let gate = get("gate_external");
    ConsistencyCheck {
        id: ID,
        status: verdict(gate == LegacyValue::Bool(true)),
        evidence: vec![
            ("gate_external", gate),
            ("external_delta", get("external_delta")),
            ("min_external_delta", get("min_external_delta")),
        ],
    }
}

/// Check 8: the release policy's `gates.pass_all is True`.
pub fn stress_release_policy_pass_all(policy: &LegacyValue) -> ConsistencyCheck {
    const ID: &str = "stress_release_policy_pass_all";
    let Some(gates) = field(policy, &["gates"]) else {
        return missing(ID, "gates");
    };
    let Some(pass_all) = gates.get("pass_all") else {
        return missing(ID, "gates.pass_all");
    };
    let gate = |k: &str| gates.get(k).cloned().unwrap_or(LegacyValue::Null);
    ConsistencyCheck {
        id: ID,
        status: verdict(*pass_all == LegacyValue::Bool(true)),
        evidence: vec![
            ("pass_all", pass_all.clone()),
            ("random_model", gate("random_model")),
            ("transcoder", gate("transcoder")),
            ("ood", gate("ood")),
            ("external", gate("external")),
            (
                "external_delta",
                field(policy, &["metrics", "external_delta"])
                    .cloned()
                    .unwrap_or(LegacyValue::Null),
            ),
        ],
    }
}

/// Upstream's `overall_pass`: every check that ran passed.
pub fn overall_pass(checks: &[ConsistencyCheck]) -> bool {
    checks.iter().all(ConsistencyCheck::passed)
}

/// Upstream's input names, in its order; each `None` where that input was not given.
pub const INPUT_NAMES: [&str; 7] = [
    "phase4a",
    "core",
    "adaptive_search",
    "adaptive_control",
    "consistency",
    "assignment_v2",
    "stress_gates",
];

/// What the report records about the run itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportInfo {
    pub timestamp_utc: String,
    pub git_commit: String,
    /// Paths per [`INPUT_NAMES`] entry, as recorded (`None` = not given).
    pub inputs: Vec<(&'static str, Option<String>)>,
}

impl ReportInfo {
    /// Upstream's `config_hash`: sha256 of the sorted-key JSON of the input path strings (not of the files; the
    /// signed run's manifest records the files' digests).
    pub fn config_hash(&self) -> String {
        crate::digest::sha256_hex(
            crate::legacy::pyrepr::json_dumps_inline(&self.inputs_value(), true).as_bytes(),
        )
    }

    fn inputs_value(&self) -> LegacyValue {
        LegacyValue::Object(
            self.inputs
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        v.clone().map_or(LegacyValue::Null, LegacyValue::String),
                    )
                })
                .collect(),
        )
    }
}

fn check_value(c: &ConsistencyCheck) -> LegacyValue {
    let mut members = vec![
        ("id".to_string(), LegacyValue::String(c.id.to_string())),
        ("pass".to_string(), LegacyValue::Bool(c.passed())),
        (
            "evidence".to_string(),
            LegacyValue::Object(
                c.evidence
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            ),
        ),
    ];
    if let CheckStatus::Error(reason) = &c.status {
        members.push(("error".to_string(), LegacyValue::String(reason.clone())));
    }
    LegacyValue::Object(members)
}

/// The report object in upstream's shape (`experiment_consistency_report.json`), plus an `error` key on checks that
/// could not run.
pub fn report_json(info: &ReportInfo, checks: &[ConsistencyCheck]) -> LegacyValue {
    LegacyValue::Object(vec![
        (
            "run_metadata".into(),
            LegacyValue::Object(vec![
                (
                    "timestamp_utc".into(),
                    LegacyValue::String(info.timestamp_utc.clone()),
                ),
                (
                    "git_commit".into(),
                    LegacyValue::String(info.git_commit.clone()),
                ),
                (
                    "config_hash".into(),
                    LegacyValue::String(info.config_hash()),
                ),
            ]),
        ),
        ("inputs".into(), info.inputs_value()),
        (
            "checks".into(),
            LegacyValue::Array(checks.iter().map(check_value).collect()),
        ),
        (
            "overall_pass".into(),
            LegacyValue::Bool(overall_pass(checks)),
        ),
    ])
}

/// The Markdown report (upstream's sections and check table; evidence as sorted-key JSON in backticks).
pub fn report_markdown(info: &ReportInfo, checks: &[ConsistencyCheck]) -> String {
    use crate::legacy::pyrepr::json_dumps_inline;
    let b = |v: bool| if v { "True" } else { "False" };
    let mut lines = vec![
        "# Experiment Consistency Report".to_string(),
        String::new(),
        format!("- Timestamp (UTC): `{}`", info.timestamp_utc),
        format!("- Git commit: `{}`", info.git_commit),
        format!("- Overall pass: `{}`", b(overall_pass(checks))),
        String::new(),
        "## Inputs".to_string(),
        String::new(),
    ];
    for (name, path) in &info.inputs {
        lines.push(format!("- {name}: `{}`", path.as_deref().unwrap_or("None")));
    }
    lines.extend([String::new(), "## Checks".to_string(), String::new()]);
    lines.push("| check | pass | evidence |".to_string());
    lines.push("|---|---|---|".to_string());
    for c in checks {
        let evidence = LegacyValue::Object(
            c.evidence
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        );
        let mut cell = format!("`{}`", json_dumps_inline(&evidence, true));
        if let CheckStatus::Error(reason) = &c.status {
            cell.push_str(&format!(" error: {reason}"));
        }
        lines.push(format!("| {} | {} | {cell} |", c.id, b(c.passed())));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}
