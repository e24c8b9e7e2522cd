//! Grouping seed rows into candidates and aggregating their metrics (reference §2.5).
//!
//! Parity groups by `condition_id` without its `_seedN` suffix and counts rows; strict groups by that condition
//! *and* the producing run's configuration hash, and counts distinct seeds (W9).

use std::collections::BTreeMap;

use crate::stats::{self, BootstrapSpec};

use super::rows::{MetricKey, Metrics, Row, SourceKind};
use super::score::Score;
use super::{LcbMethod, Mode, SelectError, UncertaintyMode};

/// Per-metric statistics of a group. All fields are `None` when no seed has the metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricStats {
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub ci95_low: Option<f64>,
    pub ci95_high: Option<f64>,
    pub n: usize,
}

/// One candidate of the final population: a group of seeds, or a single row in seed-level mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Parity: the condition (group id, or the row's condition id). Strict: `condition@<config hash prefix>`.
    pub id: String,
    /// The condition without its seed suffix (grouped mode), or the row's condition id (seed-level mode).
    pub condition: String,
    pub config_sha256: String,
    /// Row indices of the members, in population order (deduplicated in strict mode).
    pub members: Vec<usize>,
    /// Row index of the representative seed.
    pub representative: usize,
    /// Sorted distinct row sources.
    pub sources: Vec<SourceKind>,
    /// Metric values the score and ranking use: the group's LCB or mean per metric (grouped) or the row's own.
    pub metrics: Metrics,
    /// Per-metric statistics, in [`MetricKey::AGGREGATION_ORDER`], for a group; `None` for a single seed row
    /// (seed-level mode).
    pub stats: Option<[MetricStats; 4]>,
}

impl Candidate {
    /// Whether this candidate is a group of seeds (grouped mode) rather than one row.
    pub fn is_group(&self) -> bool {
        self.stats.is_some()
    }

    /// What the candidate's evidence is (upstream's deltas, or a husai run's), which decides when it is complete
    /// and which Pareto axes it has.
    pub fn evidence(&self) -> super::score::Evidence {
        super::score::Evidence::of_sources(&self.sources)
    }
}

/// A group dropped for having too few seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedGroup {
    pub group_id: String,
    pub config_sha256: String,
    pub seed_count: usize,
    pub condition_ids: Vec<String>,
    pub sources: Vec<SourceKind>,
}

/// A row that repeated a seed already in its group with identical metrics, and was counted once.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateRow {
    pub group_id: String,
    pub seed: i64,
    pub kept_row: usize,
    pub duplicate_row: usize,
}

/// What grouping kept and dropped, recorded with every grouped selection.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupingDiagnostics {
    pub total_groups: usize,
    pub min_seeds_per_group: usize,
    pub kept: Vec<usize>,
    pub dropped: Vec<DroppedGroup>,
    pub duplicates: Vec<DuplicateRow>,
}

/// `condition_id` with a trailing `_seed<digits>` removed (upstream's `re.sub(r"_seed\d+$", "", …)`).
pub fn strip_seed_suffix(condition_id: &str) -> &str {
    if let Some(at) = condition_id.rfind("_seed") {
        let digits = &condition_id[at + "_seed".len()..];
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return &condition_id[..at];
        }
    }
    condition_id
}

fn sorted_sources(rows: &[Row], members: &[usize]) -> Vec<SourceKind> {
    let mut sources: Vec<SourceKind> = members.iter().map(|&i| rows[i].source).collect();
    sources.sort_by_key(|s| s.as_str());
    sources.dedup();
    sources
}

/// Seed-level mode: every eligible row is its own candidate.
pub fn seed_level(rows: &[Row], eligible: &[usize], mode: Mode) -> Vec<Candidate> {
    eligible
        .iter()
        .map(|&i| {
            let row = &rows[i];
            Candidate {
                id: candidate_id(mode, &row.condition_id, &row.config_sha256),
                condition: row.condition_id.clone(),
                config_sha256: row.config_sha256.clone(),
                members: vec![i],
                representative: i,
                sources: vec![row.source],
                metrics: match mode {
                    Mode::Parity => row.metrics,
                    Mode::Strict => row.metrics.finite_only(),
                },
                stats: None,
            }
        })
        .collect()
}

fn candidate_id(mode: Mode, condition: &str, config_sha256: &str) -> String {
    match mode {
        Mode::Parity => condition.to_string(),
        Mode::Strict => format!(
            "{condition}@{}",
            &config_sha256[..config_sha256.len().min(12)]
        ),
    }
}

/// Settings that shape grouping.
#[derive(Debug, Clone, Copy)]
pub struct GroupSettings {
    pub mode: Mode,
    pub uncertainty: UncertaintyMode,
    pub lcb_method: LcbMethod,
    pub confidence: f64,
    /// Effective minimum (rows in parity, distinct seeds in strict).
    pub min_seeds: usize,
}

/// Groups the eligible rows. `seed_scores[k]` is the seed-level score of `eligible[k]`.
pub fn group(
    rows: &[Row],
    eligible: &[usize],
    seed_scores: &[Score],
    settings: GroupSettings,
) -> Result<(Vec<Candidate>, GroupingDiagnostics), SelectError> {
    let score_of: BTreeMap<usize, f64> = eligible
        .iter()
        .zip(seed_scores)
        .map(|(&i, s)| (i, s.joint))
        .collect();
    // Groups in first-appearance order.
    let mut order: Vec<(String, String)> = Vec::new();
    let mut members: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for &i in eligible {
        let row = &rows[i];
        let condition = strip_seed_suffix(&row.condition_id).to_string();
        let config = match settings.mode {
            Mode::Parity => String::new(),
            Mode::Strict => row.config_sha256.clone(),
        };
        let key = (condition, config);
        members
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key.clone());
                Vec::new()
            })
            .push(i);
    }
    let mut duplicates = Vec::new();
    let mut candidates = Vec::new();
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for key in &order {
        let mut group_rows = members[key].clone();
        if settings.mode == Mode::Strict {
            group_rows = dedupe_seeds(rows, &key.0, group_rows, &mut duplicates)?;
        }
        if group_rows.len() < settings.min_seeds {
            let mut condition_ids: Vec<String> = group_rows
                .iter()
                .map(|&i| rows[i].condition_id.clone())
                .collect();
            condition_ids.sort();
            dropped.push(DroppedGroup {
                group_id: key.0.clone(),
                config_sha256: rows[group_rows[0]].config_sha256.clone(),
                seed_count: group_rows.len(),
                condition_ids,
                sources: sorted_sources(rows, &group_rows),
            });
            continue;
        }
        let representative = pick_representative(rows, &group_rows, &score_of, settings.mode);
        let mut metrics = match settings.mode {
            Mode::Parity => rows[representative].metrics,
            Mode::Strict => rows[representative].metrics.finite_only(),
        };
        let mut stats_out = [MetricStats {
            mean: None,
            std: None,
            ci95_low: None,
            ci95_high: None,
            n: 0,
        }; 4];
        for (slot, key_metric) in MetricKey::AGGREGATION_ORDER.iter().enumerate() {
            let values: Vec<f64> = group_rows
                .iter()
                .filter_map(|&i| rows[i].metrics.get(*key_metric))
                .filter(|v| match settings.mode {
                    Mode::Parity => !v.is_nan(),
                    Mode::Strict => v.is_finite(),
                })
                .collect();
            let s = aggregate(&values, settings)?;
            let value = match settings.uncertainty {
                UncertaintyMode::Lcb => s.ci95_low,
                UncertaintyMode::Point => s.mean,
            };
            metrics.set(*key_metric, value);
            stats_out[slot] = s;
        }
        kept.push(candidates.len());
        candidates.push(Candidate {
            id: candidate_id(settings.mode, &key.0, &rows[representative].config_sha256),
            condition: key.0.clone(),
            config_sha256: rows[representative].config_sha256.clone(),
            sources: sorted_sources(rows, &group_rows),
            members: group_rows,
            representative,
            metrics,
            stats: Some(stats_out),
        });
    }
    Ok((
        candidates,
        GroupingDiagnostics {
            total_groups: order.len(),
            min_seeds_per_group: settings.min_seeds,
            kept,
            dropped,
            duplicates,
        },
    ))
}

/// Strict mode: one row per seed. A repeated seed with identical metrics is counted once and recorded; a repeated
/// seed with different metrics is an error, because nothing says which measurement is right.
fn dedupe_seeds(
    rows: &[Row],
    group_id: &str,
    members: Vec<usize>,
    duplicates: &mut Vec<DuplicateRow>,
) -> Result<Vec<usize>, SelectError> {
    let mut by_seed: BTreeMap<i64, usize> = BTreeMap::new();
    let mut kept = Vec::new();
    for i in members {
        // Strict mode filters seedless rows out before grouping (`FilterReason::NoSeed`); should one get here,
        // it is kept as its own member rather than merged with some other seed.
        let Some(seed) = rows[i].seed else {
            kept.push(i);
            continue;
        };
        match by_seed.get(&seed) {
            None => {
                by_seed.insert(seed, i);
                kept.push(i);
            }
            Some(&first) => {
                let (a, b) = (&rows[first].metrics, &rows[i].metrics);
                let same =
                    MetricKey::AGGREGATION_ORDER
                        .iter()
                        .all(|k| match (a.get(*k), b.get(*k)) {
                            (None, None) => true,
                            (Some(x), Some(y)) => x.to_bits() == y.to_bits(),
                            _ => false,
                        });
                if !same {
                    let field = MetricKey::AGGREGATION_ORDER
                        .iter()
                        .find(|k| a.get(**k).map(f64::to_bits) != b.get(**k).map(f64::to_bits))
                        .map_or("metrics", |k| k.as_str());
                    return Err(SelectError::ConflictingDuplicateSeed {
                        group: group_id.to_string(),
                        seed,
                        field: field.to_string(),
                        first: format!(
                            "{} row {}",
                            rows[first].source_results, rows[first].row_index
                        ),
                        second: format!("{} row {}", rows[i].source_results, rows[i].row_index),
                    });
                }
                duplicates.push(DuplicateRow {
                    group_id: group_id.to_string(),
                    seed,
                    kept_row: first,
                    duplicate_row: i,
                });
            }
        }
    }
    Ok(kept)
}

/// Parity: the first member with the highest seed-level score (Python's `max`). Strict: the highest score, ties to
/// the lowest seed, so the choice does not depend on input order.
fn pick_representative(
    rows: &[Row],
    members: &[usize],
    score_of: &BTreeMap<usize, f64>,
    mode: Mode,
) -> usize {
    let mut best = members[0];
    for &i in &members[1..] {
        let (s, b) = (score_of[&i], score_of[&best]);
        let better = match mode {
            Mode::Parity => s > b,
            Mode::Strict => s > b || (s == b && rows[i].seed < rows[best].seed),
        };
        if better {
            best = i;
        }
    }
    best
}

fn aggregate(values: &[f64], settings: GroupSettings) -> Result<MetricStats, SelectError> {
    let n = values.len();
    if n == 0 {
        return Ok(MetricStats {
            mean: None,
            std: None,
            ci95_low: None,
            ci95_high: None,
            n: 0,
        });
    }
    match settings.mode {
        Mode::Parity => {
            // A non-finite value reaching here (upstream filters NaN, not infinities) makes the sums
            // meaningless; upstream's statistics module would raise.
            let interval = stats::z196_interval_parity(values)?;
            let std = if n > 1 {
                stats::sample_sd(values)?
            } else {
                0.0
            };
            Ok(MetricStats {
                mean: Some(interval.estimate),
                std: Some(std),
                ci95_low: Some(interval.low),
                ci95_high: Some(interval.high),
                n,
            })
        }
        Mode::Strict => {
            let mean = stats::mean(values)?;
            if n < 2 {
                // One seed says nothing about seed-to-seed spread: no interval.
                return Ok(MetricStats {
                    mean: Some(mean),
                    std: None,
                    ci95_low: None,
                    ci95_high: None,
                    n,
                });
            }
            let std = stats::sample_sd(values)?;
            let interval = match settings.lcb_method {
                LcbMethod::StudentT => stats::t_interval(values, settings.confidence)?,
                LcbMethod::Bootstrap(spec) => bootstrap(values, settings.confidence, spec)?,
            };
            Ok(MetricStats {
                mean: Some(mean),
                std: Some(std),
                ci95_low: Some(interval.low),
                ci95_high: Some(interval.high),
                n,
            })
        }
    }
}

fn bootstrap(
    values: &[f64],
    confidence: f64,
    spec: BootstrapSpec,
) -> Result<stats::Interval, SelectError> {
    Ok(stats::seed_bootstrap_t_mean(values, confidence, spec)?)
}

#[cfg(test)]
mod tests {
    use super::strip_seed_suffix;

    #[test]
    fn seed_suffix_is_stripped_only_at_the_end() {
        assert_eq!(strip_seed_suffix("topk_seed42"), "topk");
        assert_eq!(
            strip_seed_suffix("tok10000_layer0_dsae1024_seed123"),
            "tok10000_layer0_dsae1024"
        );
        assert_eq!(
            strip_seed_suffix("assignv3_lambda0.05"),
            "assignv3_lambda0.05"
        );
        assert_eq!(strip_seed_suffix("x_seedna"), "x_seedna");
        assert_eq!(strip_seed_suffix("a_seed1_b"), "a_seed1_b");
    }
}
