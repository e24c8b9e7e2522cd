//! Statistics that claims cite, computed by husai from signed upstream evidence (not copied from it).
//!
//! [`lambda_difference`] reads an upstream assignment-consistency results file (`run_assignment_consistency_v2.py`:
//! one `results[]` record per λ, each with the trained decoders' `trained_pairwise_pwmcc_values` over the seeds in
//! `per_seed_metrics`) and bounds the difference of the mean pairwise PWMCC between two λ values with
//! [`crate::stats::pairwise_difference_bootstrap`] in the [`SeedDesign::Paired`] design: one bootstrap draw of seeds
//! serves both λ values (the same seeds were trained at every λ), seeds are resampled rather than pairs, and the
//! interval is on the difference itself.
//!
//! Upstream's own headline figure for this run, `acceptance.best_delta_lcb`, is something else: trained versus
//! random decoders at the selected λ, as a difference of two separately bootstrapped bounds, for the best of all λ
//! values tried. The result written here records that figure next to its own so a reader sees both.
//!
//! Pairs are ordered as upstream's `itertools.combinations` over the seeds in `per_seed_metrics` order (sorted
//! ascending upstream: reference `upstream-sae-training.md` §3.3); the reader checks that order and the pair count.

use std::path::Path;

use serde_json::{Value, json};

use crate::keys::SigningKey;
use crate::legacy::json::{self, LegacyValue};
use crate::manifest::{ManifestDraft, RunKind, ToolInfo};
use crate::stats::{self, BootstrapSpec, PairwiseMatrix, SeedDesign, StatsError};
use crate::store::{CommittedRun, RunStore};
use crate::trust::TrustPolicy;

/// The file name of the result [`LambdaDifference::to_json`] is written to in a signed run.
pub const LAMBDA_DIFFERENCE_JSON: &str = "lambda_difference.json";

/// Why the statistic could not be computed; every message names the field and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ClaimStatsError {
    #[error(
        "the results file has no {0}; expected an upstream assignment-consistency results.json"
    )]
    Missing(String),
    #[error("{pointer}: {message}")]
    Bad { pointer: String, message: String },
    #[error(
        "no results[] record has lambda_consistency {lambda}; the file holds lambda values [{}]",
        available.iter().map(f64::to_string).collect::<Vec<_>>().join(", ")
    )]
    NoSuchLambda { lambda: f64, available: Vec<f64> },
    #[error(
        "lambda {treatment} and lambda {control} were not trained on the same seeds ({left:?} vs {right:?}); a paired difference needs the same seeds"
    )]
    Unpaired {
        treatment: f64,
        control: f64,
        left: Vec<i64>,
        right: Vec<i64>,
    },
    #[error("treatment and control are both lambda {0}; name two different lambda values")]
    SameLambda(f64),
    #[error("{0}")]
    Stats(#[from] StatsError),
    #[error(transparent)]
    Input(#[from] crate::inputs::InputError),
    #[error(transparent)]
    Json(#[from] crate::legacy::json::LegacyJsonError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn bad(pointer: String, message: impl Into<String>) -> ClaimStatsError {
    ClaimStatsError::Bad {
        pointer,
        message: message.into(),
    }
}

/// One λ record's trained pairwise values, with the seeds they were computed over.
#[derive(Debug, Clone, PartialEq)]
pub struct LambdaRecord {
    pub lambda: f64,
    /// Index of the record in `results[]`.
    pub index: usize,
    pub seeds: Vec<i64>,
    /// `(i, j, value)` in combinations order over `seeds`.
    pub pairs: Vec<(usize, usize, f64)>,
    /// Upstream's `delta_pwmcc_ci_low_conservative` (trained vs random), when recorded.
    pub trained_vs_random_lcb: Option<f64>,
}

/// Reads every `results[]` record of an upstream assignment-consistency results file.
pub fn lambda_records(doc: &LegacyValue) -> Result<Vec<LambdaRecord>, ClaimStatsError> {
    let records = doc
        .get("results")
        .ok_or_else(|| ClaimStatsError::Missing("/results".into()))?
        .as_array()
        .ok_or_else(|| bad("/results".into(), "is not an array"))?;
    records
        .iter()
        .enumerate()
        .map(|(index, r)| read_record(r, index))
        .collect()
}

fn read_record(r: &LegacyValue, index: usize) -> Result<LambdaRecord, ClaimStatsError> {
    let at = |key: &str| format!("/results/{index}/{key}");
    let lambda = r
        .get("lambda_consistency")
        .ok_or_else(|| ClaimStatsError::Missing(at("lambda_consistency")))?
        .as_f64()
        .filter(|l| l.is_finite())
        .ok_or_else(|| bad(at("lambda_consistency"), "is not a finite number"))?;
    let per_seed = r
        .get("per_seed_metrics")
        .ok_or_else(|| ClaimStatsError::Missing(at("per_seed_metrics")))?
        .as_array()
        .ok_or_else(|| bad(at("per_seed_metrics"), "is not an array"))?;
    let seeds = per_seed
        .iter()
        .enumerate()
        .map(|(i, m)| match m.get("seed") {
            Some(LegacyValue::Int(s)) => Ok(*s),
            _ => Err(bad(
                at(&format!("per_seed_metrics/{i}/seed")),
                "is missing or not an integer",
            )),
        })
        .collect::<Result<Vec<i64>, _>>()?;
    if seeds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad(
            at("per_seed_metrics"),
            format!(
                "seeds {seeds:?} are not distinct and ascending; upstream pairs them with itertools.combinations over sorted seeds, so the pair order cannot be recovered"
            ),
        ));
    }
    let values = r
        .get("trained_pairwise_pwmcc_values")
        .ok_or_else(|| ClaimStatsError::Missing(at("trained_pairwise_pwmcc_values")))?
        .as_array()
        .ok_or_else(|| bad(at("trained_pairwise_pwmcc_values"), "is not an array"))?;
    let n = seeds.len();
    if values.len() != n * n.saturating_sub(1) / 2 {
        return Err(bad(
            at("trained_pairwise_pwmcc_values"),
            format!(
                "holds {} values, but {n} seeds have {} pairs",
                values.len(),
                n * n.saturating_sub(1) / 2
            ),
        ));
    }
    let mut pairs = Vec::with_capacity(values.len());
    let mut k = 0;
    for i in 0..n {
        for j in i + 1..n {
            let v = values[k]
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    bad(
                        at(&format!("trained_pairwise_pwmcc_values/{k}")),
                        format!(
                            "is {}, not a finite number",
                            crate::legacy::describe(&values[k])
                        ),
                    )
                })?;
            pairs.push((i, j, v));
            k += 1;
        }
    }
    Ok(LambdaRecord {
        lambda,
        index,
        seeds,
        pairs,
        trained_vs_random_lcb: r
            .get("delta_pwmcc_ci_low_conservative")
            .and_then(LegacyValue::as_f64),
    })
}

/// One pair of seeds, its value at both λ and their difference.
#[derive(Debug, Clone, PartialEq)]
pub struct PairDifference {
    pub seeds: (i64, i64),
    pub treatment: f64,
    pub control: f64,
}

/// The mean over a subset of pairs (those with or without the reference seed).
#[derive(Debug, Clone, PartialEq)]
pub struct PairSubset {
    pub count: usize,
    pub treatment_min: f64,
    pub treatment_max: f64,
    pub mean_difference: f64,
}

/// The paired seed-level bootstrap of `mean pairwise PWMCC(treatment λ) − mean pairwise PWMCC(control λ)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LambdaDifference {
    pub treatment: LambdaRecord,
    pub control: LambdaRecord,
    pub confidence: f64,
    pub spec: BootstrapSpec,
    pub interval: stats::Interval,
    pub pairs: Vec<PairDifference>,
    /// Upstream's reference seed (`config.seed_ref`), when recorded, and the pairs with and without it.
    pub reference_seed: Option<i64>,
    pub with_reference: Option<PairSubset>,
    pub without_reference: Option<PairSubset>,
    /// Every λ the file holds, with upstream's trained-vs-random conservative LCB for it.
    pub lambdas: Vec<(f64, Option<f64>)>,
    /// Identity of the SAEs the file describes, copied from its `config` (d_sae, k, layer, modulus).
    pub model: Vec<(String, LegacyValue)>,
}

fn subset(pairs: &[PairDifference], keep: impl Fn(&PairDifference) -> bool) -> Option<PairSubset> {
    let chosen: Vec<&PairDifference> = pairs.iter().filter(|p| keep(p)).collect();
    if chosen.is_empty() {
        return None;
    }
    let diffs: Vec<f64> = chosen.iter().map(|p| p.treatment - p.control).collect();
    Some(PairSubset {
        count: chosen.len(),
        treatment_min: chosen
            .iter()
            .map(|p| p.treatment)
            .fold(f64::INFINITY, f64::min),
        treatment_max: chosen
            .iter()
            .map(|p| p.treatment)
            .fold(f64::NEG_INFINITY, f64::max),
        mean_difference: stats::fsum(&diffs) / diffs.len() as f64,
    })
}

fn find(records: &[LambdaRecord], lambda: f64) -> Result<&LambdaRecord, ClaimStatsError> {
    records
        .iter()
        .find(|r| r.lambda == lambda)
        .ok_or_else(|| ClaimStatsError::NoSuchLambda {
            lambda,
            available: records.iter().map(|r| r.lambda).collect(),
        })
}

/// Bounds `mean(treatment) − mean(control)` of the trained pairwise PWMCC of two λ records, resampling seeds in the
/// paired design (module docs).
pub fn lambda_difference(
    doc: &LegacyValue,
    treatment: f64,
    control: f64,
    confidence: f64,
    spec: BootstrapSpec,
) -> Result<LambdaDifference, ClaimStatsError> {
    if treatment == control {
        return Err(ClaimStatsError::SameLambda(treatment));
    }
    let records = lambda_records(doc)?;
    let t = find(&records, treatment)?.clone();
    let c = find(&records, control)?.clone();
    if t.seeds != c.seeds {
        return Err(ClaimStatsError::Unpaired {
            treatment,
            control,
            left: t.seeds,
            right: c.seeds,
        });
    }
    let n = t.seeds.len();
    let a = PairwiseMatrix::from_pairs(n, &t.pairs)?;
    let b = PairwiseMatrix::from_pairs(n, &c.pairs)?;
    let interval =
        stats::pairwise_difference_bootstrap(&a, &b, SeedDesign::Paired, confidence, spec)?;
    let pairs: Vec<PairDifference> = t
        .pairs
        .iter()
        .zip(&c.pairs)
        .map(|(&(i, j, tv), &(_, _, cv))| PairDifference {
            seeds: (t.seeds[i], t.seeds[j]),
            treatment: tv,
            control: cv,
        })
        .collect();
    let config = doc.get("config");
    let reference_seed = match config.and_then(|c| c.get("seed_ref")) {
        Some(LegacyValue::Int(s)) => Some(*s),
        _ => None,
    };
    let (with_reference, without_reference) = match reference_seed {
        Some(s) => (
            subset(&pairs, |p| p.seeds.0 == s || p.seeds.1 == s),
            subset(&pairs, |p| p.seeds.0 != s && p.seeds.1 != s),
        ),
        None => (None, None),
    };
    let model = ["d_sae", "k", "layer", "modulus"]
        .iter()
        .filter_map(|k| {
            config
                .and_then(|c| c.get(k))
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect();
    Ok(LambdaDifference {
        lambdas: records
            .iter()
            .map(|r| (r.lambda, r.trained_vs_random_lcb))
            .collect(),
        treatment: t,
        control: c,
        confidence,
        spec,
        interval,
        pairs,
        reference_seed,
        with_reference,
        without_reference,
        model,
    })
}

fn subset_json(s: &Option<PairSubset>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({
            "count": s.count,
            "treatment_min": s.treatment_min,
            "treatment_max": s.treatment_max,
            "mean_difference": s.mean_difference,
        }),
    }
}

impl LambdaDifference {
    /// The result as written to [`LAMBDA_DIFFERENCE_JSON`] (all numbers finite: the inputs were checked).
    pub fn to_json(&self) -> Value {
        let best = self
            .lambdas
            .iter()
            .filter_map(|(l, lcb)| lcb.map(|v| (*l, v)))
            .max_by(|x, y| x.1.total_cmp(&y.1));
        json!({
            "statistic": "mean trained pairwise PWMCC at the treatment lambda minus at the control lambda",
            "method": "paired seed-level percentile bootstrap (husai_core::stats::pairwise_difference_bootstrap, SeedDesign::Paired): one draw of seeds serves both lambda values; pairs of distinct drawn seeds are averaged",
            "model": Value::Object(self.model.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            "treatment_lambda": self.treatment.lambda,
            "control_lambda": self.control.lambda,
            "seeds": self.treatment.seeds,
            "difference": {
                "estimate": self.interval.estimate,
                "ci_low": self.interval.low,
                "ci_high": self.interval.high,
                "confidence": self.confidence,
                "seeds": self.interval.n,
                "resamples": self.spec.resamples,
                "bootstrap_seed": self.spec.seed.to_string(),
                "generator": "SplitMix64",
            },
            "reference_seed": self.reference_seed,
            "pairs_with_reference_seed": subset_json(&self.with_reference),
            "pairs_without_reference_seed": subset_json(&self.without_reference),
            "pairs": self.pairs.iter().map(|p| json!({
                "seeds": [p.seeds.0, p.seeds.1],
                "treatment": p.treatment,
                "control": p.control,
                "difference": p.treatment - p.control,
            })).collect::<Vec<_>>(),
            "upstream_trained_vs_random_lcb": {
                "what": "upstream's delta_pwmcc_ci_low_conservative per lambda: trained-vs-random, a difference of two separate bootstrap bounds over pairs, not a lambda-vs-lambda difference",
                "lambdas_evaluated": self.lambdas.len(),
                "by_lambda": self.lambdas.iter().map(|(l, lcb)| json!({"lambda": l, "lcb": lcb})).collect::<Vec<_>>(),
                "best_lambda": best.map(|b| b.0),
                "best_lcb": best.map(|b| b.1),
                "control_lcb": self.control.trained_vs_random_lcb,
            },
        })
    }
}

/// What [`record_lambda_difference`] computes and where it writes.
#[derive(Debug, Clone, Copy)]
pub struct LambdaDifferenceRequest<'a> {
    /// An upstream assignment-consistency results.json that is a signed output of a verified run.
    pub input: &'a Path,
    pub treatment: f64,
    pub control: f64,
    pub confidence: f64,
    pub spec: BootstrapSpec,
    pub campaign: &'a str,
}

/// Reads `req.input` from its verified run (strict: signed inputs only), computes [`lambda_difference`] and publishes
/// [`LAMBDA_DIFFERENCE_JSON`] as a signed run of kind `eval` whose manifest records the input by its run (the
/// provenance link verify follows) and the statistic's settings as its config.
pub fn record_lambda_difference(
    store: &RunStore,
    trust: &TrustPolicy,
    key: &SigningKey,
    tool: ToolInfo,
    req: LambdaDifferenceRequest,
) -> Result<(LambdaDifference, CommittedRun), ClaimStatsError> {
    crate::store::check_campaign(req.campaign)?;
    let (run, input) = crate::inputs::resolve_signed_file(req.input, trust)?;
    let subject = input
        .run
        .as_ref()
        .map(|r| r.subject.clone())
        .unwrap_or_default();
    let bytes = std::fs::read(run.dir.join(&subject)).map_err(|source| ClaimStatsError::Io {
        action: "read",
        path: run.dir.join(&subject),
        source,
    })?;
    if input.digest.get("sha256") != Some(&crate::digest::sha256_hex(&bytes)) {
        return Err(bad(
            req.input.display().to_string(),
            "changed after verification; verify the run again",
        ));
    }
    let doc = json::parse_bytes(&bytes).map_err(|e| e.with_path(req.input))?;
    let result = lambda_difference(&doc, req.treatment, req.control, req.confidence, req.spec)?;
    let staged = store.stage(req.campaign, RunKind::Eval)?;
    let out = staged.dir().join(LAMBDA_DIFFERENCE_JSON);
    let mut text = serde_json::to_string_pretty(&result.to_json())
        .expect("a JSON value built from finite numbers serialises");
    text.push('\n');
    std::fs::write(&out, text).map_err(|source| ClaimStatsError::Io {
        action: "write",
        path: out,
        source,
    })?;
    let mut draft = ManifestDraft::new(tool);
    draft.inputs.push(input);
    draft.config = Some(json!({
        "statistic": "lambda_difference",
        "treatment_lambda": req.treatment,
        "control_lambda": req.control,
        "confidence": req.confidence,
        "resamples": req.spec.resamples,
        "bootstrap_seed": req.spec.seed.to_string(),
    }));
    draft.extra = json!({"claims_stats": {
        "estimate": result.interval.estimate,
        "ci_low": result.interval.low,
        "ci_high": result.interval.high,
    }});
    let committed = staged.commit(draft, key, &|_| {})?;
    Ok((result, committed))
}
