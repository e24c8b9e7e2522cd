//! Artifact-kind detection for upstream evidence files.
//!
//! Upstream artifacts carry no kind field. Most record the command that produced them (`run_metadata.command` or a
//! top-level `command`), and the producing script's file name identifies the kind unambiguously, so that is tried
//! first. Files without a command (selected candidates, queue manifests, CE-Bench metric dumps, the consistency
//! report) are recognised by a structural fingerprint: a set of fields only that kind has. The evidence tree's own
//! file names are not used, because the evidence copies rename files freely (reference §4.1).
//!
//! `schema_version` distinguishes the upstream versions that matter to readers (reference §0): for release policies
//! `v1-legacy` (one external metric, 4 gates), `v2-joint` (external modes, no threshold basis) and `v3-lcb` (LCB
//! basis); for selection summaries `v1` (no grouped metadata), `v2-grouped` (grouped `selection` metadata) and
//! `v3-diagnostics` (`grouping_diagnostics`); `upstream` for every other kind.

use std::path::Path;

use super::json::LegacyValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    Phase4aTrainedVsRandom,
    TranscoderStressSummary,
    TranscoderStressSweep,
    OodStressSummary,
    KnownCircuitClosure,
    ReleasePolicy,
    SaebenchSummary,
    CebenchSummary,
    /// CE-Bench's own metrics dump (`cebench_metrics_summary.json`), not wrapped by HUSAI.
    CebenchMetrics,
    FrontierResults,
    ScalingResults,
    RoutedResults,
    MatryoshkaResults,
    AssignmentV2Results,
    AssignmentV3Results,
    SelectedCandidate,
    SelectionSummary,
    ConsistencyReport,
    /// husai's own strict `selection.json` (`husai-audit select`, schema `selection.v1`).
    HusaiSelection,
    /// Bash/Python queue and follow-up manifests (reference §4.3).
    QueueManifest,
    /// Valid JSON of no recognised kind.
    OtherJson,
    Markdown,
    Csv,
    Text,
    /// A file that is not JSON by extension and not one of the text kinds above.
    Other,
}

impl ArtifactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Phase4aTrainedVsRandom => "phase4a_trained_vs_random",
            ArtifactKind::TranscoderStressSummary => "transcoder_stress_summary",
            ArtifactKind::TranscoderStressSweep => "transcoder_stress_sweep",
            ArtifactKind::OodStressSummary => "ood_stress_summary",
            ArtifactKind::KnownCircuitClosure => "known_circuit_closure",
            ArtifactKind::ReleasePolicy => "release_policy",
            ArtifactKind::SaebenchSummary => "saebench_summary",
            ArtifactKind::CebenchSummary => "cebench_summary",
            ArtifactKind::CebenchMetrics => "cebench_metrics",
            ArtifactKind::FrontierResults => "frontier_results",
            ArtifactKind::ScalingResults => "scaling_results",
            ArtifactKind::RoutedResults => "routed_results",
            ArtifactKind::MatryoshkaResults => "matryoshka_results",
            ArtifactKind::AssignmentV2Results => "assignment_v2_results",
            ArtifactKind::AssignmentV3Results => "assignment_v3_results",
            ArtifactKind::SelectedCandidate => "selected_candidate",
            ArtifactKind::SelectionSummary => "selection_summary",
            ArtifactKind::ConsistencyReport => "consistency_report",
            ArtifactKind::HusaiSelection => "husai_selection",
            ArtifactKind::QueueManifest => "queue_manifest",
            ArtifactKind::OtherJson => "json",
            ArtifactKind::Markdown => "markdown",
            ArtifactKind::Csv => "csv",
            ArtifactKind::Text => "text",
            ArtifactKind::Other => "other",
        }
    }
}

/// A detected kind, its schema version and how it was recognised (recorded in import manifests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedKind {
    pub kind: ArtifactKind,
    pub schema_version: &'static str,
    /// `"producer:<script>.py"` or `"fingerprint"` or `"extension"`.
    pub evidence: String,
}

/// Producer script file name → kind.
const PRODUCERS: &[(&str, ArtifactKind)] = &[
    (
        "run_phase4a_reproduction.py",
        ArtifactKind::Phase4aTrainedVsRandom,
    ),
    (
        "run_transcoder_stress_eval.py",
        ArtifactKind::TranscoderStressSummary,
    ),
    (
        "run_transcoder_stress_sweep.py",
        ArtifactKind::TranscoderStressSweep,
    ),
    ("run_ood_stress_eval.py", ArtifactKind::OodStressSummary),
    (
        "run_known_circuit_recovery_closure.py",
        ArtifactKind::KnownCircuitClosure,
    ),
    (
        "run_stress_gated_release_policy.py",
        ArtifactKind::ReleasePolicy,
    ),
    (
        "run_husai_saebench_custom_eval.py",
        ArtifactKind::SaebenchSummary,
    ),
    (
        "run_husai_cebench_custom_eval.py",
        ArtifactKind::CebenchSummary,
    ),
    (
        "run_architecture_frontier_external.py",
        ArtifactKind::FrontierResults,
    ),
    (
        "run_external_metric_scaling_study.py",
        ArtifactKind::ScalingResults,
    ),
    (
        "run_routed_frontier_external.py",
        ArtifactKind::RoutedResults,
    ),
    (
        "run_matryoshka_frontier_external.py",
        ArtifactKind::MatryoshkaResults,
    ),
    (
        "run_assignment_consistency_v2.py",
        ArtifactKind::AssignmentV2Results,
    ),
    (
        "run_assignment_consistency_v3.py",
        ArtifactKind::AssignmentV3Results,
    ),
    (
        "select_release_candidate.py",
        ArtifactKind::SelectionSummary,
    ),
    (
        "verify_experiment_consistency.py",
        ArtifactKind::ConsistencyReport,
    ),
];

/// Detects the kind of a file. `value` is the parsed JSON when the file parsed; `None` for non-JSON or unparseable
/// files, which are classified by extension only.
pub fn detect_kind(path: &Path, value: Option<&LegacyValue>) -> DetectedKind {
    let Some(value) = value else {
        return by_extension(path);
    };
    let command = value
        .get_path(&["run_metadata", "command"])
        .or_else(|| value.get("command"))
        .and_then(LegacyValue::as_str);
    if let Some(command) = command {
        for word in command.split_whitespace() {
            let script = word.rsplit('/').next().unwrap_or(word);
            if let Some((name, kind)) = PRODUCERS.iter().find(|(name, _)| *name == script) {
                return DetectedKind {
                    kind: *kind,
                    schema_version: schema_version(*kind, value),
                    evidence: format!("producer:{name}"),
                };
            }
        }
    }
    let kind = fingerprint(value);
    DetectedKind {
        kind,
        schema_version: schema_version(kind, value),
        evidence: "fingerprint".to_string(),
    }
}

fn has(value: &LegacyValue, keys: &[&str]) -> bool {
    value.get_path(keys).is_some()
}

fn fingerprint(v: &LegacyValue) -> ArtifactKind {
    if v.as_object().is_none() {
        return ArtifactKind::OtherJson;
    }
    if v.get("mode").and_then(LegacyValue::as_str) == Some("strict")
        && has(v, &["selected", "group_metrics"])
    {
        ArtifactKind::HusaiSelection
    } else if has(v, &["gates", "pass_all"])
        && has(v, &["thresholds"])
        && has(v, &["metrics"])
        && has(v, &["inputs"])
    {
        ArtifactKind::ReleasePolicy
    } else if has(v, &["selected_candidate"]) && has(v, &["ranked_candidates"]) {
        ArtifactKind::SelectionSummary
    } else if has(v, &["source"])
        && has(v, &["condition_id"])
        && has(v, &["metrics"])
        && has(v, &["selection"])
    {
        ArtifactKind::SelectedCandidate
    } else if has(v, &["comparison", "difference"]) && has(v, &["trained"]) && has(v, &["random"]) {
        ArtifactKind::Phase4aTrainedVsRandom
    } else if has(v, &["transcoder", "summary"]) && has(v, &["sae", "summary"]) {
        ArtifactKind::TranscoderStressSummary
    } else if has(v, &["best_condition"]) && has(v, &["gates", "gate_delta_lcb"]) {
        ArtifactKind::TranscoderStressSweep
    } else if has(v, &["id_result"]) && has(v, &["ood_result"]) {
        ArtifactKind::OodStressSummary
    } else if has(v, &["gates", "transformer_r2"]) && has(v, &["gates", "sae_overlap"]) {
        ArtifactKind::KnownCircuitClosure
    } else if has(v, &["checks"]) && has(v, &["overall_pass"]) {
        ArtifactKind::ConsistencyReport
    } else if has(v, &["interpretability_score_mean_max"]) && has(v, &["scores_dump"]) {
        ArtifactKind::CebenchMetrics
    } else if has(v, &["queue_id"]) || has(v, &["release_rc"]) || has(v, &["release_policy_rc"]) {
        ArtifactKind::QueueManifest
    } else {
        ArtifactKind::OtherJson
    }
}

fn schema_version(kind: ArtifactKind, v: &LegacyValue) -> &'static str {
    match kind {
        ArtifactKind::ReleasePolicy => {
            if has(v, &["gates", "external_threshold_basis"]) {
                "v3-lcb"
            } else if has(v, &["gates", "external_mode_used"]) {
                "v2-joint"
            } else {
                "v1-legacy"
            }
        }
        ArtifactKind::SelectionSummary => {
            if has(v, &["grouping_diagnostics"]) {
                "v3-diagnostics"
            } else if has(
                v,
                &[
                    "selected_candidate",
                    "selection",
                    "grouped_from_seed_candidates",
                ],
            ) {
                "v2-grouped"
            } else {
                "v1"
            }
        }
        ArtifactKind::HusaiSelection => match v.get("schema_version").and_then(LegacyValue::as_str)
        {
            Some(version) if version.starts_with("1.") => "v1",
            _ => "unknown",
        },
        _ => "upstream",
    }
}

fn by_extension(path: &Path) -> DetectedKind {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let kind = match ext.as_str() {
        "md" => ArtifactKind::Markdown,
        "csv" => ArtifactKind::Csv,
        "txt" | "log" => ArtifactKind::Text,
        _ => ArtifactKind::Other,
    };
    DetectedKind {
        kind,
        schema_version: "none",
        evidence: "extension".to_string(),
    }
}
