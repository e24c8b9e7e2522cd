//! What a release claim may rely on as its gate: a run the release gate itself produced, whose
//! report is strict JSON matching `schemas/gate-report.v1.json`.
//!
//! The run has already passed verification, which includes the trust policy's roles table (only
//! a role allowed to sign `gate` runs can have signed it). On top of that the gate run must say
//! it was made by the gate: kind `gate`, tool `husai-audit`, argv `husai-audit gate ...`, and no
//! wrapped command (which `attest --kind gate -- CMD` would record). A hand-edited report attested
//! with `attest --kind gate` has argv `attest` and is refused.

use serde_json::Value;

use crate::gate::report::GateReport;
use crate::manifest::RunKind;
use crate::verify::VerifiedRun;

/// The tool name the gate records in its manifests.
pub const GATE_TOOL: &str = "husai-audit";
/// The subcommand that makes gate runs.
pub const GATE_SUBCOMMAND: &str = "gate";

/// Checks that `run` was produced by the release gate (see the module docs).
pub fn check_produced_by_gate(run: &VerifiedRun) -> Result<(), String> {
    let m = &run.manifest;
    if m.kind != RunKind::Gate {
        return Err(format!(
            "{}/{} is a run of kind {}, not a gate run",
            m.campaign, m.run_id, m.kind
        ));
    }
    let sub = m.argv.get(1).map(String::as_str);
    if m.tool.name != GATE_TOOL || sub != Some(GATE_SUBCOMMAND) || m.command.is_some() {
        return Err(format!(
            "{}/{} is of kind gate but was not produced by the release gate (tool {:?}, argv {:?}{}); a release claim needs a report made by `{GATE_TOOL} {GATE_SUBCOMMAND}`, not one attested by hand",
            m.campaign,
            m.run_id,
            m.tool.name,
            m.argv,
            if m.command.is_some() {
                ", with a wrapped command"
            } else {
                ""
            }
        ));
    }
    Ok(())
}

/// Parses a gate report: strict JSON (no duplicate keys), valid against `gate-report.v1`.
pub fn parse_gate_report(bytes: &[u8]) -> Result<GateReport, String> {
    let value: Value = crate::untrusted::parse_json(bytes).map_err(|e| e.to_string())?;
    crate::schema::validate("gate-report.v1", &value).map_err(|e| e.to_string())?;
    serde_json::from_value(value).map_err(|e| e.to_string())
}
