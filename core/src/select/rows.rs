//! Seed-level candidate rows: one row per trained SAE, built from the typed legacy readers (reference §2.2).

use crate::legacy::assignment::AssignmentV3Results;
use crate::legacy::frontier::{ExternalRecord, ExternalResults};

use super::husai::HusaiRun;
use super::{Mode, SelectError};

/// Where a row came from. Upstream tagged rows by the command-line flag that named the file, so routed and
/// matryoshka results passed as `--frontier-results` are `frontier` there; strict mode tags by detected producer.
/// `Husai` rows are husai's own signed train runs (`--run`, [`super::husai`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    Frontier,
    Scaling,
    Routed,
    Matryoshka,
    Assignment,
    Husai,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Frontier => "frontier",
            SourceKind::Scaling => "scaling",
            SourceKind::Routed => "routed",
            SourceKind::Matryoshka => "matryoshka",
            SourceKind::Assignment => "assignment",
            SourceKind::Husai => "husai",
        }
    }
}

/// The four metrics the selector reads, in upstream's key order.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Metrics {
    pub saebench_delta: Option<f64>,
    pub cebench_interp_delta_vs_baseline: Option<f64>,
    pub cebench_interpretability_max: Option<f64>,
    pub train_explained_variance: Option<f64>,
}

/// Metric identifiers, in the order upstream aggregates them (§2.5), which differs from the key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKey {
    SaebenchDelta,
    CebenchDelta,
    TrainExplainedVariance,
    CebenchInterpretabilityMax,
}

impl MetricKey {
    /// Aggregation order.
    pub const AGGREGATION_ORDER: [MetricKey; 4] = [
        MetricKey::SaebenchDelta,
        MetricKey::CebenchDelta,
        MetricKey::TrainExplainedVariance,
        MetricKey::CebenchInterpretabilityMax,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MetricKey::SaebenchDelta => "saebench_delta",
            MetricKey::CebenchDelta => "cebench_interp_delta_vs_baseline",
            MetricKey::TrainExplainedVariance => "train_explained_variance",
            MetricKey::CebenchInterpretabilityMax => "cebench_interpretability_max",
        }
    }
}

impl Metrics {
    pub fn get(&self, key: MetricKey) -> Option<f64> {
        match key {
            MetricKey::SaebenchDelta => self.saebench_delta,
            MetricKey::CebenchDelta => self.cebench_interp_delta_vs_baseline,
            MetricKey::TrainExplainedVariance => self.train_explained_variance,
            MetricKey::CebenchInterpretabilityMax => self.cebench_interpretability_max,
        }
    }

    pub fn set(&mut self, key: MetricKey, value: Option<f64>) {
        match key {
            MetricKey::SaebenchDelta => self.saebench_delta = value,
            MetricKey::CebenchDelta => self.cebench_interp_delta_vs_baseline = value,
            MetricKey::TrainExplainedVariance => self.train_explained_variance = value,
            MetricKey::CebenchInterpretabilityMax => self.cebench_interpretability_max = value,
        }
    }

    /// The same metrics with NaN and infinities turned into "absent" (strict mode: a non-finite value is not a
    /// measurement).
    pub fn finite_only(&self) -> Metrics {
        let keep = |v: Option<f64>| v.filter(|x| x.is_finite());
        Metrics {
            saebench_delta: keep(self.saebench_delta),
            cebench_interp_delta_vs_baseline: keep(self.cebench_interp_delta_vs_baseline),
            cebench_interpretability_max: keep(self.cebench_interpretability_max),
            train_explained_variance: keep(self.train_explained_variance),
        }
    }
}

/// `assignment` block of an assignment row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AssignmentInfo {
    pub lambda_consistency: f64,
    pub internal_lcb: Option<f64>,
    pub ev_drop: Option<f64>,
}

/// One seed-level candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub source: SourceKind,
    /// The input file as recorded (the path given on the command line, or a run-relative path in strict mode).
    pub source_results: String,
    /// Index of the input in processing order.
    pub input_index: usize,
    pub row_index: usize,
    pub condition_id: String,
    pub architecture: String,
    pub seed: Option<i64>,
    pub hook_layer: Option<i64>,
    pub hook_name: Option<String>,
    pub checkpoint: String,
    pub saebench_summary_path: Option<String>,
    pub cebench_summary_path: Option<String>,
    pub metrics: Metrics,
    pub saebench_returncode: Option<i64>,
    pub cebench_returncode: Option<i64>,
    pub assignment: Option<AssignmentInfo>,
    /// Hash of the producing run's configuration without per-run keys (see [`super::config_fingerprint`]).
    pub config_sha256: String,
    /// The CE-Bench delta was measured against a baseline at another hook than the candidate's (the baseline's
    /// `sae_id` differs from the evaluated `hook_name`; reference W14), so it compares unlike things.
    pub cebench_baseline_mismatch: bool,
    /// A husai row's train run and the eval run that measured it (`None` for rows of upstream files).
    pub husai: Option<HusaiRun>,
}

/// A parsed selector input with its role and configuration fingerprint.
#[derive(Debug, Clone)]
pub enum InputContent {
    External(ExternalResults),
    Assignment(AssignmentV3Results),
    /// One husai train run (one seed row, or none when the run is skipped).
    Husai(HusaiRun),
}

#[derive(Debug, Clone)]
pub struct LoadedInput {
    /// Recorded path (`source_results` of its rows).
    pub display: String,
    /// Source tag of the rows (parity: the flag; strict: the detected producer).
    pub source: SourceKind,
    pub content: InputContent,
    pub config_sha256: String,
}

/// `Path(checkpoint).parents[2]`: the producer's run directory. Python's `PurePosixPath` drops empty and `.`
/// components first; a path with fewer than three parents has no run directory.
fn run_dir_of(checkpoint: &str) -> Option<String> {
    let absolute = checkpoint.starts_with('/');
    let parts: Vec<&str> = checkpoint
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    // parents[0] drops one component, parents[2] drops three; for a relative path the last parent is ".".
    if parts.len() < 4 {
        if !absolute && parts.len() == 3 {
            return Some(".".to_string());
        }
        if absolute && parts.len() == 3 {
            return Some("/".to_string());
        }
        return None;
    }
    let kept = parts[..parts.len() - 3].join("/");
    Some(if absolute { format!("/{kept}") } else { kept })
}

fn join(base: &str, rest: &str) -> String {
    match base {
        "." => rest.to_string(),
        "/" => format!("/{rest}"),
        _ => format!("{base}/{rest}"),
    }
}

/// Upstream's `condition_id` for a record without one: `"{architecture or 'unknown'}_seed{seed or 'na'}"`, where
/// Python's `or` also replaces an empty architecture and a seed of 0.
fn fallback_condition_id(architecture: Option<&str>, seed: Option<i64>) -> String {
    let arch = architecture.filter(|a| !a.is_empty()).unwrap_or("unknown");
    match seed {
        Some(s) if s != 0 => format!("{arch}_seed{s}"),
        _ => format!("{arch}_seedna"),
    }
}

fn external_row(
    input: &LoadedInput,
    input_index: usize,
    record: &ExternalRecord,
    mode: Mode,
) -> Result<Row, SelectError> {
    let condition_id = record
        .condition_id
        .clone()
        .unwrap_or_else(|| fallback_condition_id(record.architecture.as_deref(), record.seed));
    let run_dir = run_dir_of(&record.checkpoint).ok_or_else(|| SelectError::BadCheckpointPath {
        input: input.display.clone(),
        row: record.index,
        checkpoint: record.checkpoint.clone(),
    })?;
    let saebench_delta = match mode {
        Mode::Parity => record.saebench_delta_python_or(),
        Mode::Strict => record.saebench_delta(),
    };
    Ok(Row {
        source: input.source,
        source_results: input.display.clone(),
        input_index,
        row_index: record.index,
        saebench_summary_path: Some(join(
            &run_dir,
            &format!("external_eval/{condition_id}/saebench/husai_custom_sae_summary.json"),
        )),
        cebench_summary_path: Some(join(
            &run_dir,
            &format!("external_eval/{condition_id}/cebench/husai_custom_cebench_summary.json"),
        )),
        condition_id,
        architecture: record
            .architecture
            .clone()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "unknown".to_string()),
        seed: record.seed,
        hook_layer: record.hook_layer,
        hook_name: record.hook_name.clone(),
        checkpoint: record.checkpoint.clone(),
        metrics: Metrics {
            saebench_delta,
            cebench_interp_delta_vs_baseline: record.cebench_delta,
            cebench_interpretability_max: record.cebench_interpretability_max,
            train_explained_variance: record.train_explained_variance,
        },
        saebench_returncode: record.saebench_returncode,
        cebench_returncode: record.cebench_returncode,
        assignment: None,
        config_sha256: input.config_sha256.clone(),
        cebench_baseline_mismatch: matches!(
            (&record.cebench_baseline_sae_id, &record.cebench_hook_name),
            (Some(baseline), Some(hook)) if baseline != hook
        ),
        husai: None,
    })
}

/// Python's `repr(float)`, which upstream used inside assignment condition ids (`lambda0.0`, `lambda1e-05`).
fn python_float_repr(x: f64) -> String {
    crate::legacy::pyrepr::float_repr(x)
}

fn assignment_rows(
    input: &LoadedInput,
    input_index: usize,
    results: &AssignmentV3Results,
) -> Vec<Row> {
    results
        .records
        .iter()
        .map(|record| {
            let mut condition_id = format!(
                "assignv3_lambda{}",
                python_float_repr(record.lambda_consistency)
            );
            if let Some(seed) = record.seed.filter(|s| *s != 0) {
                condition_id.push_str(&format!("_seed{seed}"));
            }
            Row {
                source: input.source,
                source_results: input.display.clone(),
                input_index,
                row_index: record.index,
                condition_id,
                architecture: "topk".to_string(),
                seed: record.seed,
                hook_layer: results.hook_layer,
                hook_name: results.hook_name.clone(),
                checkpoint: record.selected_checkpoint.clone(),
                saebench_summary_path: record.saebench_summary_path.clone(),
                cebench_summary_path: record.cebench_summary_path.clone(),
                metrics: Metrics {
                    saebench_delta: record.saebench_delta,
                    cebench_interp_delta_vs_baseline: record.cebench_delta,
                    cebench_interpretability_max: record.cebench_interpretability_max,
                    train_explained_variance: record.explained_variance_mean,
                },
                saebench_returncode: record.saebench_returncode,
                cebench_returncode: record.cebench_returncode,
                assignment: Some(AssignmentInfo {
                    lambda_consistency: record.lambda_consistency,
                    internal_lcb: record.internal_lcb,
                    ev_drop: record.ev_drop,
                }),
                config_sha256: input.config_sha256.clone(),
                // The v3 results do not record the CE-Bench baseline's hook.
                cebench_baseline_mismatch: false,
                husai: None,
            }
        })
        .collect()
}

/// All rows of all inputs, in input order and record order.
pub fn extract_rows(inputs: &[LoadedInput], mode: Mode) -> Result<Vec<Row>, SelectError> {
    let mut rows = Vec::new();
    for (input_index, input) in inputs.iter().enumerate() {
        match &input.content {
            InputContent::External(results) => {
                for record in &results.records {
                    rows.push(external_row(input, input_index, record, mode)?);
                }
            }
            InputContent::Assignment(results) => {
                rows.extend(assignment_rows(input, input_index, results));
            }
            InputContent::Husai(run) => {
                rows.extend(super::husai::husai_row(input, input_index, run));
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dir_matches_python_parents_2() {
        assert_eq!(
            run_dir_of("results/x/run_1/checkpoints/topk_seed42/sae_final.pt").as_deref(),
            Some("results/x/run_1")
        );
        assert_eq!(
            run_dir_of("/abs//run_1/./checkpoints/c/sae.pt").as_deref(),
            Some("/abs/run_1")
        );
        assert_eq!(run_dir_of("checkpoints/c/sae.pt").as_deref(), Some("."));
        assert_eq!(run_dir_of("c/sae.pt"), None);
    }

    #[test]
    fn fallback_condition_follows_python_or() {
        assert_eq!(fallback_condition_id(Some("relu"), Some(42)), "relu_seed42");
        assert_eq!(fallback_condition_id(Some(""), Some(0)), "unknown_seedna");
        assert_eq!(fallback_condition_id(None, None), "unknown_seedna");
    }
}
