//! Release-candidate selection: from seed-level evaluation rows to one selected candidate, with the Pareto front,
//! the ranked table and the reasons (reference §2).
//!
//! The pipeline is a chain of pure functions over rows: [`rows::extract_rows`] → filter → seed-level
//! [`score::score`] → [`group::group`] (or [`group::seed_level`]) → score again over the candidates →
//! Pareto flags → [`score::rank`]. [`select`] runs it; [`output`] renders the JSON, Markdown and SVG.
//!
//! Two modes share that chain. `Parity` reproduces upstream's `select_release_candidate.py` (HEAD, 8911793)
//! exactly on upstream's files; `Strict`, the default, applies the fixes of reference §6. Every difference:
//!
//! | aspect | parity (upstream) | strict (ours) | why |
//! |---|---|---|---|
//! | group key | `condition_id` minus `_seed\d+` | that condition **and** the producing run's config hash ([`config_fingerprint`]) | W9: five routed sweep configs pooled as one `routed_topk` |
//! | seed count | rows in the group | distinct seeds; a repeated seed with identical metrics counts once (recorded), with different metrics is an error | W9: 15 rows / 3 seeds shrank the CI |
//! | interval | `mean ± 1.96·sd/√n`, zero width at n = 1 | Student-t `mean ± t(0.975, n−1)·sd/√n` (or a seed bootstrap, `LcbMethod::Bootstrap`); no interval below 2 seeds | W10: z = 1.96 at n = 2 is 6.5× too narrow |
//! | minimum seeds | `max(1, v)` rows | `v` distinct seeds, and at least 2 in LCB mode | W10 |
//! | Pareto front | a candidate missing a delta (or NaN) is always on it | only candidates with both deltas finite | W13 |
//! | missing metrics | kept unless `--require-both-external` | dropped unless `allow_incomplete`; then ranked, never on the front | W13 |
//! | NaN / ±inf metrics | NaN skipped in aggregates, ±inf kept | non-finite = absent | W21 |
//! | SAEBench delta | `summary.best_minus_llm_auc or best_minus_llm_auc` (an exact 0.0 falls through) | the summary field when present, 0.0 included | W3 |
//! | representative | first row with the highest seed-level score | highest score, ties to the lowest seed | W15 |
//! | tie-break | stable sort: full ties keep input order (frontier → scaling → assignment) | explicit final keys: condition, then config hash, ascending | W15 |
//! | CE-Bench baseline at another hook | pooled as if comparable | row dropped with reason `cebench_baseline_mismatch` | W14: layer-1 SAEs against a layer-0 baseline |
//! | NaN in JSON we write | bare `NaN` tokens | `null` (both modes; DESIGN.md) | W21 |
//! | records without a string `checkpoint` / `selected_checkpoint` | skipped silently | skipped (both modes), and strict `selection.json` lists them in `skipped_records` | W17: say what was not evaluated |
//! | relative input paths | anchored at upstream's project root | as given, relative to the current directory; strict rows cite `campaign/run_id/subject` | W22 |
//! | row floors | per seed row, when the metric is present | the same (both modes) | — |
//! | seedless rows | grouped under their condition | dropped with reason `no_seed` (a seed cannot be counted) | W9 |
//! | row sources | by flag (`--frontier-results` ⇒ `frontier`) | by detected producer (routed, matryoshka, …) | reports say what a row is |
//! | booleans / strings in metric fields | would be numbers / absent | read error naming the field (both modes; no upstream file has one) | W3 |
//! | output | upstream's five files, identity and group metrics mixed under one `metrics` key | `selection.json` with separate `representative` and `group_metrics` blocks, normalisation ranges, weights, tie-break and rationale | W11, W12 |
//! | husai's own runs (`--run`, `--eval-run`) | not an input | one row per verified `ok` train run ([`husai`]): condition = the trainer plugin (family), group key family + config hash without seed, train EV = 1 − held-out FVU, SAEBench delta = its ood-stress eval's mean ID gap at `gate_k` (the offline analogue of SAEBench's sparse-probing `best_minus_llm_auc`), CE-Bench not applicable (complete without it; on the front by the SAEBench axis it shares with others, [`score::Evidence`]); diverged and interrupted runs listed in `skipped_records` | upstream's evidence was loose files; these are signed runs read through their digests |
//!
//! Both modes write inside a signed run; only the file layout differs.

pub mod group;
pub mod husai;
pub mod inputs;
pub mod output;
pub mod record;
pub mod rows;
pub mod score;
pub mod svg;

use serde_json::Value;
use thiserror::Error;

use crate::legacy::ReadError;
use crate::legacy::json::LegacyValue;
use crate::stats::{BootstrapSpec, StatsError};

pub use group::{Candidate, GroupingDiagnostics, MetricStats};
pub use inputs::{InputRole, load_input, load_input_bytes};
pub use rows::{InputContent, LoadedInput, MetricKey, Metrics, Row, SourceKind};
pub use score::{Evidence, Normalization, Range, Score, Weights};

/// Which semantics to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Strict,
    Parity,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Strict => "strict",
            Mode::Parity => "parity",
        }
    }
}

/// Which group statistic ranks a grouped candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UncertaintyMode {
    /// The mean over seeds.
    Point,
    /// The lower confidence bound of the mean.
    Lcb,
}

impl UncertaintyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            UncertaintyMode::Point => "point",
            UncertaintyMode::Lcb => "lcb",
        }
    }
}

/// How strict mode computes a group's confidence bounds (parity always uses upstream's z = 1.96).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LcbMethod {
    /// `mean ± t_{(1+c)/2, n−1} · sd / √n`.
    StudentT,
    /// Studentized (bootstrap-t) interval over seeds ([`crate::stats::seed_bootstrap_t_mean`]), from
    /// [`crate::stats::MIN_BOOTSTRAP_T_SEEDS`] seeds per group up. (The percentile bootstrap is not offered: it
    /// undercovers at small n, `stats/tests/suite/coverage.rs`.)
    Bootstrap(BootstrapSpec),
}

impl LcbMethod {
    pub fn describe(self) -> String {
        match self {
            LcbMethod::StudentT => "student-t".to_string(),
            LcbMethod::Bootstrap(spec) => format!(
                "seed-bootstrap (studentized bootstrap-t, {} resamples, SplitMix64 seed {})",
                spec.resamples, spec.seed
            ),
        }
    }
}

/// Selector settings. [`SelectConfig::parity_defaults`] and [`SelectConfig::strict_defaults`] give each mode's
/// defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectConfig {
    pub mode: Mode,
    pub group_by_condition: bool,
    pub uncertainty: UncertaintyMode,
    /// Strict mode only.
    pub lcb_method: LcbMethod,
    /// Two-sided confidence level of strict intervals (parity: fixed z = 1.96).
    pub confidence: f64,
    /// As given; parity uses `max(1, v)` rows, strict `v` distinct seeds.
    pub min_seeds_per_group: i64,
    pub min_saebench_delta: f64,
    pub min_cebench_delta: f64,
    /// Parity: upstream's `--require-both-external`. Strict: the negation of `allow_incomplete`.
    pub require_both_external: bool,
    pub weights: Weights,
}

impl SelectConfig {
    pub fn parity_defaults() -> Self {
        SelectConfig {
            mode: Mode::Parity,
            group_by_condition: true,
            uncertainty: UncertaintyMode::Lcb,
            lcb_method: LcbMethod::StudentT,
            confidence: 0.95,
            min_seeds_per_group: 3,
            min_saebench_delta: -1e9,
            min_cebench_delta: -1e9,
            require_both_external: false,
            weights: Weights::default(),
        }
    }

    pub fn strict_defaults() -> Self {
        SelectConfig {
            mode: Mode::Strict,
            require_both_external: true,
            ..Self::parity_defaults()
        }
    }

    /// The minimum group size actually applied.
    pub fn effective_min_seeds(&self) -> usize {
        self.min_seeds_per_group.max(1) as usize
    }

    fn validate(&self) -> Result<(), SelectError> {
        let w = self.weights;
        for (name, value) in [
            ("weight-saebench", w.saebench),
            ("weight-cebench", w.cebench_delta),
            ("weight-train-ev", w.train_ev),
            ("min-saebench-delta", self.min_saebench_delta),
            ("min-cebench-delta", self.min_cebench_delta),
        ] {
            if !value.is_finite() {
                return Err(SelectError::InvalidConfig(format!(
                    "--{name} must be a finite number, got {value}"
                )));
            }
        }
        if self.mode == Mode::Strict {
            if self.min_seeds_per_group < 1 {
                return Err(SelectError::InvalidConfig(format!(
                    "--min-seeds-per-group must be at least 1 in strict mode, got {}",
                    self.min_seeds_per_group
                )));
            }
            if self.group_by_condition
                && self.uncertainty == UncertaintyMode::Lcb
                && self.min_seeds_per_group < 2
            {
                return Err(SelectError::InvalidConfig(format!(
                    "a lower confidence bound needs at least 2 distinct seeds per group, but --min-seeds-per-group is {}; raise it (3 or more is better) or use --uncertainty-mode point",
                    self.min_seeds_per_group
                )));
            }
            if !(self.confidence > 0.0 && self.confidence < 1.0) {
                return Err(SelectError::InvalidConfig(format!(
                    "--confidence must lie strictly between 0 and 1, got {}",
                    self.confidence
                )));
            }
            if let LcbMethod::Bootstrap(spec) = self.lcb_method {
                let min = crate::stats::MIN_BOOTSTRAP_T_SEEDS;
                if self.group_by_condition
                    && self.uncertainty == UncertaintyMode::Lcb
                    && self.effective_min_seeds() < min
                {
                    return Err(SelectError::InvalidConfig(format!(
                        "--lcb-method bootstrap needs at least {min} seeds per group (below that its coverage is not close to nominal), but --min-seeds-per-group is {}; raise it or use --lcb-method student-t",
                        self.min_seeds_per_group
                    )));
                }
                spec.check()?;
            }
        }
        Ok(())
    }
}

/// Why selection failed. Nothing is written when selection fails.
#[derive(Debug, Error)]
pub enum SelectError {
    #[error(
        "no selector inputs: give at least one --frontier-results, --scaling-results or --assignment-results file, or (strict mode) --input files or husai train runs (--run)"
    )]
    NoInputs,
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{0}")]
    InvalidConfig(String),
    #[error(
        "{input} records[{row}]: checkpoint path `{checkpoint}` has fewer than three parent directories, so the run directory (and the external summaries under it) cannot be derived"
    )]
    BadCheckpointPath {
        input: String,
        row: usize,
        checkpoint: String,
    },
    #[error(
        "no candidate rows left after filtering ({total} rows: {reasons}); relax the floors, or fix the failed evaluations"
    )]
    NoEligibleRows { total: usize, reasons: String },
    #[error(
        "no condition group has at least {min_seeds} seed(s) ({total_groups} group(s) before the cut); add seeds or lower --min-seeds-per-group"
    )]
    NoGroups {
        min_seeds: usize,
        total_groups: usize,
    },
    #[error(
        "group `{group}` has seed {seed} twice with different `{field}` ({first} vs {second}); one of the runs is stale or mislabelled: remove one input or re-run that seed"
    )]
    ConflictingDuplicateSeed {
        group: String,
        seed: i64,
        field: String,
        first: String,
        second: String,
    },
    #[error("statistics failed: {0}")]
    Stats(#[from] StatsError),
    #[error("cannot hash the configuration of {input}: {message}")]
    ConfigHash { input: String, message: String },
}

/// Per-run configuration keys left out of the grouping fingerprint: they differ between runs of the same
/// configuration (run ids, output locations, which seeds a run happened to train), so leaving them in would keep
/// two runs of one configuration with different seeds from pooling. Everything else, including an assignment
/// run's reference seed (`seed_ref`, which changes what is measured), stays in.
pub const VOLATILE_CONFIG_KEYS: [&str; 5] = [
    "run_id",
    "output_dir",
    "seeds",
    "train_seeds",
    "timestamp_utc",
];

/// The grouping fingerprint of a producer's top-level `config`: lowercase hex SHA-256 of its RFC 8785 canonical
/// JSON, without [`VOLATILE_CONFIG_KEYS`] at the top level. Non-finite numbers (which canonical JSON cannot hold)
/// are replaced by null first, as in everything we write.
pub fn config_fingerprint(config: &LegacyValue, input: &str) -> Result<String, SelectError> {
    json_config_fingerprint(&config.to_json(), input)
}

/// [`config_fingerprint`] of a configuration that is JSON already (a husai run's recorded config).
pub fn json_config_fingerprint(config: &Value, input: &str) -> Result<String, SelectError> {
    let mut json = config.clone();
    if let Value::Object(map) = &mut json {
        for key in VOLATILE_CONFIG_KEYS {
            map.remove(key);
        }
    }
    crate::canonical::canonical_sha256_hex(&json).map_err(|e| SelectError::ConfigHash {
        input: input.to_string(),
        message: e.to_string(),
    })
}

/// Why a row did not enter the population.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterReason {
    /// A return code that is present and not 0.
    ExternalEvalFailed,
    /// A delta is missing (or, in strict mode, not finite) while both are required.
    MissingMetric,
    BelowSaebenchFloor,
    BelowCebenchFloor,
    /// Strict grouped mode: the row has no seed to count.
    NoSeed,
    /// Strict mode: the CE-Bench delta was measured against a baseline at another hook.
    CebenchBaselineMismatch,
}

impl FilterReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FilterReason::ExternalEvalFailed => "external_eval_failed",
            FilterReason::MissingMetric => "missing_metric",
            FilterReason::BelowSaebenchFloor => "below_saebench_floor",
            FilterReason::BelowCebenchFloor => "below_cebench_floor",
            FilterReason::NoSeed => "no_seed",
            FilterReason::CebenchBaselineMismatch => "cebench_baseline_mismatch",
        }
    }
}

/// The full result of a selection.
#[derive(Debug, Clone)]
pub struct Selection {
    pub config: SelectConfig,
    /// Every extracted row.
    pub rows: Vec<Row>,
    /// Rows filtered out, with the reason.
    pub filtered: Vec<(usize, FilterReason)>,
    /// Rows that passed the filter, in population order.
    pub eligible: Vec<usize>,
    /// Seed-level scores of `eligible` (same order) and their normalisation.
    pub seed_scores: Vec<Score>,
    pub seed_normalization: Normalization,
    /// The final population.
    pub candidates: Vec<Candidate>,
    /// Scores of `candidates` (same order) and their normalisation.
    pub scores: Vec<Score>,
    pub normalization: Normalization,
    pub is_pareto: Vec<bool>,
    /// Candidate indices, best first. `ranked[0]` is the selection.
    pub ranked: Vec<usize>,
    pub diagnostics: Option<GroupingDiagnostics>,
    /// Input records that yield no row at all (no checkpoint path), which upstream skipped without a word.
    pub skipped: Vec<SkippedRecord>,
}

/// An input record that is not a candidate row, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRecord {
    pub source_results: String,
    pub row_index: usize,
    pub reason: String,
}

fn skipped_records(inputs: &[LoadedInput]) -> Vec<SkippedRecord> {
    let mut out = Vec::new();
    for input in inputs {
        match &input.content {
            InputContent::External(results) => {
                out.extend(results.skipped.iter().map(|s| SkippedRecord {
                    source_results: input.display.clone(),
                    row_index: s.index,
                    reason: s.reason.clone(),
                }))
            }
            InputContent::Assignment(results) => {
                out.extend(results.skipped.iter().map(|&index| SkippedRecord {
                    source_results: input.display.clone(),
                    row_index: index,
                    reason: "`selected_checkpoint` is missing or not a string".to_string(),
                }))
            }
            InputContent::Husai(run) => {
                out.extend(run.skipped.iter().map(|reason| SkippedRecord {
                    source_results: input.display.clone(),
                    row_index: 0,
                    reason: reason.clone(),
                }))
            }
        }
    }
    out
}

impl Selection {
    pub fn selected(&self) -> &Candidate {
        &self.candidates[self.ranked[0]]
    }

    pub fn pareto_count(&self) -> usize {
        self.is_pareto.iter().filter(|p| **p).count()
    }

    /// Seed-level score of row `row`, when it was eligible.
    pub fn seed_score(&self, row: usize) -> Option<&Score> {
        self.eligible
            .iter()
            .position(|&i| i == row)
            .map(|k| &self.seed_scores[k])
    }
}

fn filter_reason(row: &Row, config: &SelectConfig) -> Option<FilterReason> {
    let m = match config.mode {
        Mode::Parity => row.metrics,
        Mode::Strict => row.metrics.finite_only(),
    };
    if config.mode == Mode::Strict
        && row.cebench_baseline_mismatch
        && m.cebench_interp_delta_vs_baseline.is_some()
    {
        return Some(FilterReason::CebenchBaselineMismatch);
    }
    let (sae, ce) = (m.saebench_delta, m.cebench_interp_delta_vs_baseline);
    // Upstream rows need both deltas; a husai row its SAEBench analogue and train EV (CE-Bench does not apply).
    if config.require_both_external
        && score::Evidence::of_source(row.source)
            .required()
            .iter()
            .any(|k| m.get(*k).is_none())
    {
        return Some(FilterReason::MissingMetric);
    }
    // Python: `v < floor` is False for NaN, so NaN passes the floor.
    if matches!(sae, Some(v) if v < config.min_saebench_delta) {
        return Some(FilterReason::BelowSaebenchFloor);
    }
    if matches!(ce, Some(v) if v < config.min_cebench_delta) {
        return Some(FilterReason::BelowCebenchFloor);
    }
    if [row.saebench_returncode, row.cebench_returncode]
        .iter()
        .any(|rc| matches!(rc, Some(code) if *code != 0))
    {
        return Some(FilterReason::ExternalEvalFailed);
    }
    if config.mode == Mode::Strict && config.group_by_condition && row.seed.is_none() {
        return Some(FilterReason::NoSeed);
    }
    None
}

/// Runs the selection over parsed inputs (in processing order).
pub fn select(inputs: &[LoadedInput], config: &SelectConfig) -> Result<Selection, SelectError> {
    if inputs.is_empty() {
        return Err(SelectError::NoInputs);
    }
    config.validate()?;
    if config.mode == Mode::Parity && inputs.iter().any(|i| i.source == SourceKind::Husai) {
        return Err(SelectError::InvalidConfig(
            "husai train runs (--run) are strict-mode inputs; upstream's selector (--parity) has no such input"
                .to_string(),
        ));
    }
    let skipped = skipped_records(inputs);
    let rows = rows::extract_rows(inputs, config.mode)?;
    let mut filtered = Vec::new();
    let mut eligible = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        match filter_reason(row, config) {
            Some(reason) => filtered.push((i, reason)),
            None => eligible.push(i),
        }
    }
    if eligible.is_empty() {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for (_, reason) in &filtered {
            match counts.iter_mut().find(|(name, _)| *name == reason.as_str()) {
                Some(entry) => entry.1 += 1,
                None => counts.push((reason.as_str(), 1)),
            }
        }
        let reasons = counts
            .iter()
            .map(|(name, n)| format!("{n} {name}"))
            .collect::<Vec<_>>()
            .join(", ");
        let skipped_note = match skipped.first() {
            None => String::new(),
            Some(first) => format!(
                "{} input record(s) skipped, e.g. {}: {}",
                skipped.len(),
                first.source_results,
                first.reason
            ),
        };
        return Err(SelectError::NoEligibleRows {
            total: rows.len(),
            reasons: match (reasons.is_empty(), skipped_note.is_empty()) {
                (true, true) => "the inputs have no records".to_string(),
                (true, false) => skipped_note,
                (false, true) => reasons,
                (false, false) => format!("{reasons}; {skipped_note}"),
            },
        });
    }
    let seed_metrics: Vec<Metrics> = eligible
        .iter()
        .map(|&i| match config.mode {
            Mode::Parity => rows[i].metrics,
            Mode::Strict => rows[i].metrics.finite_only(),
        })
        .collect();
    let (seed_scores, seed_normalization) = score::score(&seed_metrics, config.weights);
    let (candidates, diagnostics) = if config.group_by_condition {
        let settings = group::GroupSettings {
            mode: config.mode,
            uncertainty: config.uncertainty,
            lcb_method: config.lcb_method,
            confidence: config.confidence,
            min_seeds: config.effective_min_seeds(),
        };
        let (candidates, diagnostics) = group::group(&rows, &eligible, &seed_scores, settings)?;
        if candidates.is_empty() {
            return Err(SelectError::NoGroups {
                min_seeds: settings.min_seeds,
                total_groups: diagnostics.total_groups,
            });
        }
        (candidates, Some(diagnostics))
    } else {
        (group::seed_level(&rows, &eligible, config.mode), None)
    };
    let (scores, normalization) = if config.group_by_condition {
        let metrics: Vec<Metrics> = candidates.iter().map(|c| c.metrics).collect();
        score::score(&metrics, config.weights)
    } else {
        (seed_scores.clone(), seed_normalization)
    };
    let metrics: Vec<Metrics> = candidates.iter().map(|c| c.metrics).collect();
    let is_pareto = match config.mode {
        Mode::Parity => score::pareto_parity(&metrics),
        Mode::Strict => {
            let evidence: Vec<score::Evidence> =
                candidates.iter().map(Candidate::evidence).collect();
            score::pareto_strict(&metrics, &evidence)
        }
    };
    let keys: Vec<score::RankKey> = candidates
        .iter()
        .zip(&scores)
        .zip(&is_pareto)
        .map(|((c, s), p)| score::RankKey {
            is_pareto: *p,
            joint_score: s.joint,
            saebench_delta: c.metrics.saebench_delta,
            cebench_delta: c.metrics.cebench_interp_delta_vs_baseline,
            identity: match config.mode {
                Mode::Parity => (String::new(), String::new()),
                Mode::Strict => (c.condition.clone(), c.config_sha256.clone()),
            },
        })
        .collect();
    let ranked = score::rank(&keys);
    Ok(Selection {
        config: config.clone(),
        rows,
        filtered,
        eligible,
        seed_scores,
        seed_normalization,
        candidates,
        scores,
        normalization,
        is_pareto,
        ranked,
        diagnostics,
        skipped,
    })
}
