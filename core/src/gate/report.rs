//! The strict gate report (`gate-report.json`, schema `schemas/gate-report.v1.json`) and its Markdown rendering.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{GateName, Policy};

pub const GATE_REPORT_SCHEMA_VERSION: &str = "1.2";
/// The report's schema in the embedded schema registry (`schemas/gate-report.v1.json`).
pub const GATE_REPORT_SCHEMA_ID: &str = "gate-report.v1";
/// File names inside a strict gate run.
pub const REPORT_JSON: &str = "gate-report.json";
pub const REPORT_MD: &str = "gate-report.md";

/// Where an input came from: the verified run and subject it was read from, and the digest of the bytes read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputCitation {
    /// The path as given on the command line.
    pub path: String,
    pub campaign: String,
    pub run_id: String,
    /// The file's subject name inside that run.
    pub subject: String,
    pub sha256: String,
    /// Detected upstream artifact kind and schema version (`legacy::kind`).
    pub kind: String,
    pub schema_version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    NotEvaluated,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::NotEvaluated => "not_evaluated",
        }
    }
}

/// How a check's value is compared with its threshold (`value <op> threshold` passes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparator {
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = ">")]
    Above,
}

impl Comparator {
    pub fn as_str(self) -> &'static str {
        match self {
            Comparator::AtLeast => ">=",
            Comparator::AtMost => "<=",
            Comparator::Below => "<",
            Comparator::Above => ">",
        }
    }

    /// False for NaN, like every IEEE comparison.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparator::AtLeast => value >= threshold,
            Comparator::AtMost => value <= threshold,
            Comparator::Below => value < threshold,
            Comparator::Above => value > threshold,
        }
    }
}

/// One comparison inside a gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub metric: String,
    /// `None` when the input does not provide this metric (status `not_evaluated`).
    pub value: Option<f64>,
    pub threshold: f64,
    pub comparator: Comparator,
    /// `point`, `lcb`, `p_value`, `count`, `provenance` or `ci_high` (the upper bound of an interval, for a metric
    /// that must stay low).
    pub basis: String,
    pub status: Status,
    /// The field of the input file the value was read from (`metrics.saebench_delta_ci95_low`).
    pub source_field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub gate: GateName,
    pub status: Status,
    /// Whether the gate counts as passed for pass_all (a `not_evaluated` gate passes only when allowed missing).
    pub passed: bool,
    pub allowed_missing: bool,
    /// The files the gate read (the external gate may read a SAEBench and a CE-Bench summary); empty if none given.
    pub inputs: Vec<InputCitation>,
    pub checks: Vec<Check>,
    /// random_model only: the SAE runs its evidence covers and the candidate they were matched against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<EvidenceCoverage>,
    /// Why the gate is `not_evaluated` although its input was given (report schema 1.1): its evidence concerns
    /// another model than the candidate, or no candidate was named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One signed SAE train run, identified the way the random_model gate matches evidence to a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRunIdentity {
    pub campaign: String,
    pub run_id: String,
    /// The trainer plugin's name (the SAE family).
    pub family: String,
    /// The run's recorded config without its seed (and resume link): what seeds of one configuration share.
    pub configuration: serde_json::Value,
    pub seed: Option<u64>,
    /// The run its training rows came from, `campaign/run_id` (schema 1.2; None when the rows were a plain file):
    /// the transcoder gate checks that its evidence was measured on the candidate's own data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_run: Option<String>,
}

/// Which SAE runs a random_model summary covers, and the candidate they were checked against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceCoverage {
    pub sae_runs: Vec<TrainRunIdentity>,
    pub candidate: Option<TrainRunIdentity>,
}

/// The release candidate the external gate judged, so claims can match a gate report to their evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub condition_id: Option<String>,
    pub group_id: Option<String>,
    pub checkpoint: Option<String>,
    pub architecture: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub schema_version: String,
    pub mode: String,
    pub policy: Policy,
    pub candidate: Option<Candidate>,
    pub gates: Vec<GateResult>,
    pub pass_all: bool,
}

impl GateReport {
    pub fn gate(&self, name: GateName) -> Option<&GateResult> {
        self.gates.iter().find(|g| g.gate == name)
    }

    /// Checks the report against `schemas/gate-report.v1.json` (done before a report is signed).
    pub fn validate(&self) -> Result<(), crate::schema::SchemaError> {
        let doc = serde_json::to_value(self).expect("gate report values are finite");
        crate::schema::validate(GATE_REPORT_SCHEMA_ID, &doc)
    }

    /// The report as JSON text (pretty, trailing newline). Values are finite by construction (typed readers reject
    /// non-finite inputs), so serialisation cannot fail.
    pub fn to_json_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("gate report values are finite");
        text.push('\n');
        text
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Release gate report\n");
        let _ = writeln!(out, "- Profile: `{}`", self.policy.profile);
        let _ = writeln!(out, "- pass_all: `{}`", self.pass_all);
        let _ = writeln!(
            out,
            "- External: mode `{}`, basis `{}`",
            self.policy.external_mode.as_str(),
            self.policy.external_basis.as_str()
        );
        if let Some(c) = &self.candidate {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
            let _ = writeln!(
                out,
                "- Candidate: condition `{}`, group `{}`, checkpoint `{}`",
                show(&c.condition_id),
                show(&c.group_id),
                show(&c.checkpoint)
            );
        }
        let allowed: Vec<&str> = self
            .policy
            .allow_missing
            .iter()
            .map(|g| g.as_str())
            .collect();
        if !allowed.is_empty() {
            let _ = writeln!(out, "- Allowed missing: `{}`", allowed.join(", "));
        }
        let _ = writeln!(out, "\n## Gates\n");
        let _ = writeln!(
            out,
            "| gate | status | passed | metric | value | comparator | threshold | basis | source field |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
        for g in &self.gates {
            if g.checks.is_empty() {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | - | - | - | - | - | - |",
                    g.gate.as_str(),
                    g.status.as_str(),
                    g.passed
                );
            }
            for c in &g.checks {
                let value = c.value.map_or_else(|| "-".to_string(), |v| format!("{v}"));
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    g.gate.as_str(),
                    c.status.as_str(),
                    g.passed,
                    c.metric,
                    value,
                    c.comparator.as_str(),
                    c.threshold,
                    c.basis,
                    c.source_field.as_deref().unwrap_or("-")
                );
            }
        }
        let reasons: Vec<(&str, &str)> = self
            .gates
            .iter()
            .filter_map(|g| g.reason.as_deref().map(|r| (g.gate.as_str(), r)))
            .collect();
        if !reasons.is_empty() {
            let _ = writeln!(out, "\n## Not evaluated, and why\n");
            for (gate, why) in reasons {
                let _ = writeln!(out, "- {gate}: {why}");
            }
        }
        let _ = writeln!(out, "\n## Inputs\n");
        for g in &self.gates {
            if g.inputs.is_empty() {
                let _ = writeln!(out, "- {}: not given", g.gate.as_str());
            }
            for i in &g.inputs {
                let _ = writeln!(
                    out,
                    "- {}: `{}` ({} {}), run `{}/{}`, subject `{}`, sha256 `{}`",
                    g.gate.as_str(),
                    i.path,
                    i.kind,
                    i.schema_version,
                    i.campaign,
                    i.run_id,
                    i.subject,
                    i.sha256
                );
            }
        }
        out
    }
}
