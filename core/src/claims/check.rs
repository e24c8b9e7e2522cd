//! Checking every claim in the registry against verified signed runs, and every claim tag in the listed documents
//! against the values the evidence actually holds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::registry::{self, Claim, Comparator, Evidence};
use super::tags::{self, Quoted};
use crate::digest::sha256_hex;
use crate::gate::GateName;
use crate::gate::report::{GateReport, REPORT_JSON};
use crate::legacy::json::{self, LegacyValue};
use crate::trust::TrustPolicy;
use crate::verify::{self, VerifiedRun};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    /// The evidence was read and does not satisfy the claim.
    Fail,
    /// The evidence could not be read (unverified run, missing subject, missing pointer, unparseable file).
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvidenceResult {
    pub run: String,
    pub subject: String,
    pub pointer: String,
    pub comparator: &'static str,
    pub expected: serde_json::Value,
    /// The value found (non-finite numbers appear as null; see `message`).
    pub actual: Option<serde_json::Value>,
    pub sha256: Option<String>,
    pub outcome: Outcome,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClaimResult {
    pub id: String,
    pub level: &'static str,
    pub outcome: Outcome,
    pub evidence: Vec<EvidenceResult>,
    /// Messages about the claim as a whole (release gate checks).
    pub messages: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DocumentFinding {
    pub path: PathBuf,
    pub line: usize,
    pub claim_id: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClaimsReport {
    pub registry: PathBuf,
    /// Set when the registry itself cannot be used; then no claim was checked.
    pub registry_error: Option<String>,
    pub claims: Vec<ClaimResult>,
    pub documents_checked: usize,
    pub spans_checked: usize,
    pub document_findings: Vec<DocumentFinding>,
}

impl ClaimsReport {
    pub fn passed(&self) -> bool {
        self.registry_error.is_none()
            && self.document_findings.is_empty()
            && self.claims.iter().all(|c| c.outcome == Outcome::Pass)
    }
}

/// Verified runs, loaded once each.
pub(super) struct Runs<'a> {
    pub(super) results_root: &'a Path,
    trust: &'a TrustPolicy,
    cache: HashMap<String, Result<VerifiedRun, String>>,
}

impl Runs<'_> {
    pub(super) fn get(&mut self, run: &str) -> Result<&VerifiedRun, String> {
        if !self.cache.contains_key(run) {
            let loaded = match run.split_once('/') {
                None => Err(format!("run {run:?} is not <campaign>/<run_id>")),
                Some((campaign, run_id)) => {
                    let dir = self.results_root.join(campaign).join(run_id);
                    if !dir.is_dir() {
                        Err(format!(
                            "run {run} not found under {}",
                            self.results_root.display()
                        ))
                    } else {
                        verify::load_verified_run(&dir, self.trust).map_err(|e| e.to_string())
                    }
                }
            };
            self.cache.insert(run.to_string(), loaded);
        }
        self.cache[run].as_ref().map_err(Clone::clone)
    }

    /// The bytes of a signed subject, checked against the signed digest.
    pub(super) fn subject_bytes(
        &mut self,
        run: &str,
        subject: &str,
    ) -> Result<(Vec<u8>, String), String> {
        let verified = self.get(run)?;
        let signed = verified
            .subject(subject)
            .ok_or_else(|| format!("run {run} has no signed subject {subject:?}"))?;
        let expected =
            signed.digest.get("sha256").cloned().ok_or_else(|| {
                format!("subject {subject} of run {run} has no plain sha256 digest")
            })?;
        let path = verified.dir.join(subject);
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let actual = sha256_hex(&bytes);
        if actual != expected {
            return Err(format!(
                "{} changed after verification (sha256 {actual}, signed {expected})",
                path.display()
            ));
        }
        Ok((bytes, actual))
    }
}

fn compare(
    actual: &LegacyValue,
    comparator: Comparator,
    expected: &serde_json::Value,
    tolerance: f64,
) -> Result<bool, String> {
    use serde_json::Value;
    match expected {
        Value::Number(n) => {
            let e = n.as_f64().ok_or("expected number is not representable")?;
            let a = actual.as_f64().ok_or_else(|| {
                format!(
                    "expected a number, found {}",
                    crate::legacy::describe(actual)
                )
            })?;
            if a.is_nan() {
                return Err("the value is NaN; no comparison holds for NaN".into());
            }
            Ok(match comparator {
                Comparator::Eq => (a - e).abs() <= tolerance,
                Comparator::Ne => (a - e).abs() > tolerance,
                Comparator::Ge => a >= e,
                Comparator::Gt => a > e,
                Comparator::Le => a <= e,
                Comparator::Lt => a < e,
            })
        }
        Value::Bool(_) | Value::String(_) | Value::Null => {
            let same = match (expected, actual) {
                (Value::Bool(e), LegacyValue::Bool(a)) => e == a,
                (Value::String(e), LegacyValue::String(a)) => e == a,
                (Value::Null, LegacyValue::Null) => true,
                _ => false,
            };
            match comparator {
                Comparator::Eq => Ok(same),
                Comparator::Ne => Ok(!same),
                other => Err(format!(
                    "comparator {} needs a numeric value",
                    other.as_str()
                )),
            }
        }
        _ => Err("expected value must be a number, boolean, string or null".into()),
    }
}

fn check_evidence(runs: &mut Runs, ev: &Evidence) -> (EvidenceResult, Option<LegacyValue>) {
    let mut result = EvidenceResult {
        run: ev.run.clone(),
        subject: ev.subject.clone(),
        pointer: ev.pointer.clone(),
        comparator: ev.comparator.as_str(),
        expected: ev.value.clone(),
        actual: None,
        sha256: None,
        outcome: Outcome::Error,
        message: None,
    };
    let (bytes, sha) = match runs.subject_bytes(&ev.run, &ev.subject) {
        Ok(x) => x,
        Err(m) => {
            result.message = Some(m);
            return (result, None);
        }
    };
    result.sha256 = Some(sha);
    let doc = match json::parse_bytes(&bytes) {
        Ok(v) => v,
        Err(e) => {
            result.message = Some(e.with_path(Path::new(&ev.subject)).to_string());
            return (result, None);
        }
    };
    let Some(actual) = doc.pointer(&ev.pointer).cloned() else {
        result.message = Some(format!(
            "{} in run {} has nothing at {}",
            ev.subject, ev.run, ev.pointer
        ));
        return (result, None);
    };
    result.actual = Some(actual.to_json());
    match compare(
        &actual,
        ev.comparator,
        &ev.value,
        ev.tolerance.unwrap_or(0.0),
    ) {
        Ok(true) => result.outcome = Outcome::Pass,
        Ok(false) => {
            result.outcome = Outcome::Fail;
            result.message = Some(format!(
                "{} is {}, which is not {} {}",
                ev.pointer,
                crate::legacy::pyrepr::py_repr(&actual),
                ev.comparator.as_str(),
                ev.value
            ));
        }
        Err(m) => result.message = Some(format!("{}: {m}", ev.pointer)),
    }
    (result, Some(actual))
}

/// A release claim needs a signed strict gate report with pass_all=true that judged a file the claim cites.
fn check_gate(
    runs: &mut Runs,
    claim: &Claim,
    gate_run: &str,
    messages: &mut Vec<String>,
) -> Outcome {
    let produced = match runs.get(gate_run) {
        Ok(run) => super::gate_evidence::check_produced_by_gate(run),
        Err(m) => {
            messages.push(format!("gate run: {m}"));
            return Outcome::Error;
        }
    };
    if let Err(m) = produced {
        messages.push(m);
        return Outcome::Error;
    }
    let bytes = match runs.subject_bytes(gate_run, REPORT_JSON) {
        Ok((b, _)) => b,
        Err(m) => {
            messages.push(format!(
                "{m} (a release claim needs a strict gate report; parity gate runs do not count)"
            ));
            return Outcome::Error;
        }
    };
    let report: GateReport = match super::gate_evidence::parse_gate_report(&bytes) {
        Ok(r) => r,
        Err(e) => {
            messages.push(format!(
                "{gate_run}/{REPORT_JSON} is not a gate report: {e}"
            ));
            return Outcome::Error;
        }
    };
    let mut outcome = Outcome::Pass;
    if !report.pass_all {
        messages.push(format!(
            "gate run {gate_run} has pass_all=false; a release claim needs a passing gate"
        ));
        outcome = Outcome::Fail;
    }
    let judged: Vec<(String, String)> = report
        .gate(GateName::External)
        .map(|g| {
            g.inputs
                .iter()
                .map(|i| (format!("{}/{}", i.campaign, i.run_id), i.subject.clone()))
                .collect()
        })
        .unwrap_or_default();
    let cited = claim.evidence.iter().any(|e| {
        judged
            .iter()
            .any(|(run, subject)| *run == e.run && *subject == e.subject)
    });
    if !cited {
        let judged_text: Vec<String> = judged.iter().map(|(r, s)| format!("{r}:{s}")).collect();
        messages.push(format!(
            "the gate judged candidate file(s) [{}], none of which the claim's evidence cites; cite the candidate the gate passed",
            judged_text.join(", ")
        ));
        outcome = Outcome::Fail;
    }
    outcome
}

/// The worse of two outcomes (error over fail over pass).
fn combine(a: Outcome, b: Outcome) -> Outcome {
    match (a, b) {
        (Outcome::Error, _) | (_, Outcome::Error) => Outcome::Error,
        (Outcome::Fail, _) | (_, Outcome::Fail) => Outcome::Fail,
        _ => Outcome::Pass,
    }
}

fn markdown_files(base: &Path, entry: &str) -> Result<Vec<PathBuf>, String> {
    let path = base.join(entry);
    if path.is_file() {
        return Ok(vec![path]);
    }
    if !path.is_dir() {
        return Err(format!(
            "document {} listed in the registry does not exist",
            path.display()
        ));
    }
    let mut files = Vec::new();
    for e in walkdir::WalkDir::new(&path).sort_by_file_name() {
        let e = e.map_err(|e| format!("cannot list {}: {e}", path.display()))?;
        if e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "md") {
            files.push(e.into_path());
        }
    }
    Ok(files)
}

fn quoted_matches(q: &Quoted, actual: &LegacyValue, tolerance: f64) -> bool {
    match (q, actual) {
        (
            Quoted::Number {
                value, half_unit, ..
            },
            a,
        ) => a.as_f64().is_some_and(|a| {
            let slack = half_unit.max(tolerance) + 1e-12 * a.abs().max(value.abs());
            (a - value).abs() <= slack
        }),
        (Quoted::Word(w), LegacyValue::String(s)) => w == s,
        (Quoted::Word(w), LegacyValue::Bool(true)) => w == "True" || w == "true",
        (Quoted::Word(w), LegacyValue::Bool(false)) => w == "False" || w == "false",
        (Quoted::Word(w), LegacyValue::Null) => w == "None" || w == "null",
        _ => false,
    }
}

/// Checks the registry at `registry_path`: every claim's evidence against verified runs under `results_root`, release
/// claims against their gate runs, and every claim tag in the registry's documents against the evidence values.
pub fn check_registry(
    registry_path: &Path,
    results_root: &Path,
    trust: &TrustPolicy,
) -> ClaimsReport {
    let mut report = ClaimsReport {
        registry: registry_path.to_path_buf(),
        registry_error: None,
        claims: Vec::new(),
        documents_checked: 0,
        spans_checked: 0,
        document_findings: Vec::new(),
    };
    let reg = match registry::load(registry_path) {
        Ok(r) => r,
        Err(e) => {
            report.registry_error = Some(e.to_string());
            return report;
        }
    };
    let mut runs = Runs {
        results_root,
        trust,
        cache: HashMap::new(),
    };
    // Values each claim's evidence actually holds, with its tolerance, for the document check.
    let mut values: HashMap<&str, Vec<(LegacyValue, f64)>> = HashMap::new();
    for claim in &reg.claims {
        let mut evidence = Vec::new();
        for ev in &claim.evidence {
            let (result, actual) = check_evidence(&mut runs, ev);
            if let Some(a) = actual {
                values
                    .entry(claim.id.as_str())
                    .or_default()
                    .push((a, ev.tolerance.unwrap_or(0.0)));
            }
            evidence.push(result);
        }
        let mut outcome = if evidence.iter().any(|e| e.outcome == Outcome::Error) {
            Outcome::Error
        } else if evidence.iter().any(|e| e.outcome == Outcome::Fail) {
            Outcome::Fail
        } else {
            Outcome::Pass
        };
        let mut messages = Vec::new();
        if let Some(gate_run) = &claim.gate {
            let gate_outcome = check_gate(&mut runs, claim, gate_run, &mut messages);
            outcome = match (outcome, gate_outcome) {
                (Outcome::Error, _) | (_, Outcome::Error) => Outcome::Error,
                (Outcome::Fail, _) | (_, Outcome::Fail) => Outcome::Fail,
                _ => Outcome::Pass,
            };
        }
        outcome = combine(
            outcome,
            super::about::check_about(&mut runs, claim, &mut messages),
        );
        report.claims.push(ClaimResult {
            id: claim.id.clone(),
            level: claim.level.as_str(),
            outcome,
            evidence,
            messages,
        });
    }

    let base = registry_path.parent().unwrap_or(Path::new("."));
    for entry in &reg.documents {
        let files = match markdown_files(base, entry) {
            Ok(f) => f,
            Err(message) => {
                report.document_findings.push(DocumentFinding {
                    path: base.join(entry),
                    line: 0,
                    claim_id: None,
                    message,
                });
                continue;
            }
        };
        for file in files {
            report.documents_checked += 1;
            check_document(&file, &reg, &values, &mut report);
        }
    }
    report
}

fn check_document(
    file: &Path,
    reg: &registry::Registry,
    values: &HashMap<&str, Vec<(LegacyValue, f64)>>,
    report: &mut ClaimsReport,
) {
    let finding = |line, claim_id: Option<&str>, message: String| DocumentFinding {
        path: file.to_path_buf(),
        line,
        claim_id: claim_id.map(str::to_string),
        message,
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            report
                .document_findings
                .push(finding(0, None, format!("cannot read: {e}")));
            return;
        }
    };
    let spans = match tags::scan(&text) {
        Ok(s) => s,
        Err(e) => {
            report
                .document_findings
                .push(finding(e.line, None, e.message));
            return;
        }
    };
    for span in spans {
        report.spans_checked += 1;
        if !reg.claims.iter().any(|c| c.id == span.claim_id) {
            report.document_findings.push(finding(
                span.line,
                Some(&span.claim_id),
                format!(
                    "claim tag names `{}`, which the registry does not define",
                    span.claim_id
                ),
            ));
            continue;
        }
        let held = values
            .get(span.claim_id.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if span.values.is_empty() {
            report.document_findings.push(finding(
                span.line,
                Some(&span.claim_id),
                "claim span quotes no number or backticked value; tag the quoted figures".into(),
            ));
        }
        for q in &span.values {
            if !held
                .iter()
                .any(|(a, tol)| quoted_matches(&q.quoted, a, *tol))
            {
                let shown = match &q.quoted {
                    Quoted::Number { text, .. } => text.clone(),
                    Quoted::Word(w) => format!("`{w}`"),
                };
                let evidence: Vec<String> = held
                    .iter()
                    .map(|(a, _)| crate::legacy::pyrepr::py_repr(a))
                    .collect();
                report.document_findings.push(finding(
                    q.line,
                    Some(&span.claim_id),
                    format!(
                        "quotes {shown} under claim `{}`, but its evidence holds [{}]",
                        span.claim_id,
                        evidence.join(", ")
                    ),
                ));
            }
        }
    }
}
