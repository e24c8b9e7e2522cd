//! husai's statistics, one definition of each: the mean, the sample standard deviation, Student-t quantiles,
//! confidence intervals over seeds, seed-level bootstraps, PWMCC and the Mann–Whitney U test.
//!
//! The crate has no husai dependencies, so that core (select, gate, claims; re-exported as `husai_core::stats`) and
//! evaluation plugins (re-exported as `husai_kernels::stats`) compute every statistic with the same code.
//!
//! Requirements that shape it:
//!
//! * **Parity with upstream HUSAI.** Upstream computed group means with `statistics.fmean`
//!   (an exactly rounded `math.fsum` divided by n) and standard deviations with Python 3.11's
//!   `statistics.stdev` (the sum of squared deviations in exact rational arithmetic, then a
//!   correctly rounded square root). A naive sum and variance reproduce only 51 of 60 recorded
//!   bounds bit for bit, so [`fsum`] ports Shewchuk's algorithm as CPython implements it and
//!   [`sample_sd`] computes the variance exactly with big integers. Every float is a dyadic
//!   rational, so this is exact, not an approximation.
//! * **Sound small-sample bounds.** Upstream used `mean - 1.96·sd/√n` even for n = 2, where the
//!   97.5% Student-t quantile is 4.30, not 1.96. [`student_t_quantile`] and [`t_interval`] give
//!   the correct width. The percentile bootstrap of a mean undercovers badly at small n (about 50 %,
//!   74 % and 84 % for a nominal 95 % at n = 2, 3, 5; `tests/suite/coverage.rs`), so the bootstrap offered
//!   for a mean over seeds is the studentized one, [`seed_bootstrap_t_mean`], from
//!   [`MIN_BOOTSTRAP_T_SEEDS`] seeds up, where its simulated coverage is close to nominal.
//! * **Resample seeds, not pairs.** A pairwise statistic over seeds (PWMCC between every two
//!   models) has n(n−1)/2 values that share seeds and are not independent; upstream bootstrapped
//!   them as if they were. [`PairwiseMatrix`] and [`pairwise_seed_bootstrap`] resample the seeds
//!   and recompute the pairwise mean, and [`pairwise_difference_bootstrap`] bounds the difference
//!   between two such means (trained vs random models, say) directly.
//!
//! The bootstrap uses [`SplitMix64`], a fully specified generator, so that a recorded seed
//! reproduces a recorded interval on every platform. Seeds are at most [`MAX_SEED`] = 2^53 − 1,
//! so that a signed manifest (canonical JSON, IEEE doubles) records them exactly.

pub mod normal;
pub mod pwmcc;
pub mod rank;

pub use normal::{normal_cdf, normal_upper_tail};
pub use pwmcc::{Dictionary, chance_normalised, pwmcc};
pub use rank::{MannWhitney, mann_whitney_greater};

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{ToPrimitive, Zero};
use thiserror::Error;

/// What went wrong in a statistical computation. Messages say which precondition failed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StatsError {
    #[error("{what} needs at least {needed} value(s), got {got}")]
    TooFewValues {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    #[error(
        "{what} got a non-finite value ({value}); drop or report NaN/infinite metrics before aggregating"
    )]
    NonFinite { what: &'static str, value: f64 },
    #[error("confidence level must lie strictly between 0 and 1, got {0}")]
    BadConfidence(f64),
    #[error("degrees of freedom must be positive and finite, got {0}")]
    BadDegreesOfFreedom(f64),
    #[error("bootstrap needs at least one resample")]
    NoResamples,
    #[error("pairwise statistics: {0}")]
    BadPairs(String),
    #[error("a paired comparison needs the same seeds on both sides, got {left} and {right} seeds")]
    UnpairedSizes { left: usize, right: usize },
    #[error("{0}")]
    BadShape(String),
    #[error(
        "bootstrap seed {0} is above 2^53 - 1 = 9007199254740991, the largest seed a signed manifest records exactly"
    )]
    SeedTooLarge(u64),
}

/// The largest bootstrap seed: signed manifests are canonical JSON, whose numbers are IEEE doubles, exact for
/// integers up to 2^53 − 1 only.
pub const MAX_SEED: u64 = (1 << 53) - 1;

fn check_finite(what: &'static str, values: &[f64]) -> Result<(), StatsError> {
    match values.iter().find(|v| !v.is_finite()) {
        Some(&value) => Err(StatsError::NonFinite { what, value }),
        None => Ok(()),
    }
}

fn check_confidence(confidence: f64) -> Result<(), StatsError> {
    if confidence > 0.0 && confidence < 1.0 {
        Ok(())
    } else {
        Err(StatsError::BadConfidence(confidence))
    }
}

/// The correctly rounded sum of `values`, as CPython's `math.fsum` computes it: Shewchuk's
/// non-overlapping partials, then a final half-even correction across partials.
///
/// Non-finite inputs follow IEEE addition of the specials: any NaN, or both infinities, gives
/// NaN; otherwise an infinity wins. (CPython raises on `inf + -inf` and on intermediate
/// overflow; callers here aggregate finite metrics only, see [`check_finite`].)
pub fn fsum(values: &[f64]) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    let mut special = 0.0_f64;
    let mut saw_special = false;
    for &value in values {
        if !value.is_finite() {
            special += value;
            saw_special = true;
            continue;
        }
        let mut x = value;
        let mut kept = 0;
        for i in 0..partials.len() {
            let mut y = partials[i];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        partials.truncate(kept);
        if x != 0.0 {
            if !x.is_finite() {
                // Intermediate overflow of finite summands: the true sum is out of range.
                special += x;
                saw_special = true;
                partials.clear();
            } else {
                partials.push(x);
            }
        }
    }
    if saw_special {
        return special;
    }
    let mut n = partials.len();
    if n == 0 {
        return 0.0;
    }
    n -= 1;
    let mut hi = partials[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = partials[n];
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    // Round half-even across partials: if the discarded tail has the same sign as the
    // rounding error, the sum lies past the half-way point and must round away.
    if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        let yr = x - hi;
        if y == yr {
            hi = x;
        }
    }
    hi
}

/// Arithmetic mean, `fsum(values) / n` (Python's `statistics.fmean`).
pub fn mean(values: &[f64]) -> Result<f64, StatsError> {
    if values.is_empty() {
        return Err(StatsError::TooFewValues {
            what: "mean",
            needed: 1,
            got: 0,
        });
    }
    check_finite("mean", values)?;
    Ok(fsum(values) / values.len() as f64)
}

/// Splits a finite, non-zero float into `(negative, mantissa, exponent)` with
/// `|x| = mantissa · 2^exponent` exactly.
fn decompose(x: f64) -> (bool, u64, i64) {
    let bits = x.to_bits();
    let negative = bits >> 63 == 1;
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let fraction = bits & ((1u64 << 52) - 1);
    if biased == 0 {
        (negative, fraction, -1074)
    } else {
        (negative, fraction | (1u64 << 52), biased - 1075)
    }
}

/// `x · 2^e` without intermediate overflow or underflow of the scale factor.
fn ldexp(mut x: f64, mut e: i64) -> f64 {
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e as i32)
}

/// Sample standard deviation (denominator n − 1), correctly rounded from the exact variance,
/// which is what Python 3.11+ `statistics.stdev` returns.
///
/// With every value written as `m_i · 2^e` over a common exponent, the exact variance is
/// `(n·Σm_i² − (Σm_i)²) / (n(n−1)) · 4^e`, an integer ratio. Its square root is taken to
/// about 55 significant bits with a sticky "inexact" bit (round-to-odd), so the final
/// conversion to f64 rounds correctly. (A result in the subnormal range, below 2.2e-308, is
/// scaled after rounding and may then differ from Python by one unit in the last place.)
pub fn sample_sd(values: &[f64]) -> Result<f64, StatsError> {
    let n = values.len();
    if n < 2 {
        return Err(StatsError::TooFewValues {
            what: "sample standard deviation",
            needed: 2,
            got: n,
        });
    }
    check_finite("sample standard deviation", values)?;
    let parts: Vec<(bool, u64, i64)> = values
        .iter()
        .filter(|v| **v != 0.0)
        .map(|v| decompose(*v))
        .collect();
    let Some(e_min) = parts.iter().map(|p| p.2).min() else {
        return Ok(0.0);
    };
    let mut sum = BigInt::zero();
    let mut sum_sq = BigUint::zero();
    for &(negative, mantissa, exponent) in &parts {
        let scaled = BigUint::from(mantissa) << ((exponent - e_min) as u64);
        sum_sq += &scaled * &scaled;
        let sign = if negative { Sign::Minus } else { Sign::Plus };
        sum += BigInt::from_biguint(sign, scaled);
    }
    let sum_abs = sum.magnitude();
    let numerator = BigUint::from(n as u64) * sum_sq - sum_abs * sum_abs;
    if numerator.is_zero() {
        return Ok(0.0);
    }
    let denominator = BigUint::from(n as u64) * BigUint::from(n as u64 - 1);
    // Scale by 4^k so that numerator/denominator has about 110 bits; its integer square
    // root then has about 55 bits, two more than an f64 mantissa.
    let magnitude_bits = numerator.bits() as i64 - denominator.bits() as i64;
    let k = (110 - magnitude_bits).div_euclid(2) + 1;
    let (num, den) = if k >= 0 {
        (numerator << (2 * k as u64), denominator)
    } else {
        (numerator, denominator << (2 * (-k) as u64))
    };
    let quotient = &num / &den;
    let exact_division = (&num % &den).is_zero();
    let root = quotient.sqrt();
    let exact = exact_division && &root * &root == quotient;
    let root = root
        .to_u64()
        .expect("a square root of a ~112-bit integer fits in 64 bits");
    let rounded_to_odd = root | u64::from(!exact);
    Ok(ldexp(rounded_to_odd as f64, e_min - k))
}

/// ln Γ(x) for x > 0 (Lanczos approximation, g = 7, 9 terms; relative error below 1e-15).
fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut acc = COEFFICIENTS[0];
    for (i, c) in COEFFICIENTS.iter().enumerate().skip(1) {
        acc += c / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + acc.ln()
}

/// Continued fraction for the regularized incomplete beta function (modified Lentz).
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=10_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// Regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 ≤ x ≤ 1.
fn regularized_incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    // The continued fraction converges fast for x < (a+1)/(a+b+2); use symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_continued_fraction(b, a, 1.0 - x) / b
    }
}

/// Upper tail probability P(T > t) of Student's t with `df` degrees of freedom, for t ≥ 0.
fn student_t_upper_tail(t: f64, df: f64) -> f64 {
    0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
}

/// The `p` quantile of Student's t distribution with `df` degrees of freedom, for
/// 0.5 ≤ p < 1 (the quantiles confidence bounds need). Found by bisection on the CDF, which
/// is monotone; against closed forms (df 1, 2, 3, 9) the result agrees to about 1e-15 relative.
pub fn student_t_quantile(p: f64, df: f64) -> Result<f64, StatsError> {
    if !(df > 0.0 && df.is_finite()) {
        return Err(StatsError::BadDegreesOfFreedom(df));
    }
    if !(0.5..1.0).contains(&p) {
        return Err(StatsError::BadConfidence(p));
    }
    if p == 0.5 {
        return Ok(0.0);
    }
    let tail = 1.0 - p;
    let mut lo = 0.0_f64;
    let mut hi = 2.0_f64;
    while student_t_upper_tail(hi, df) > tail {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if student_t_upper_tail(mid, df) > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(0.5 * (lo + hi))
}

/// A two-sided confidence interval around a point estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The point estimate (the sample mean for every interval built here).
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    /// Number of values (distinct seeds) behind the interval.
    pub n: usize,
}

/// Summary statistics of one metric over seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub mean: f64,
    /// Sample standard deviation; 0 for a single value.
    pub sd: f64,
    pub n: usize,
}

/// Mean and sample standard deviation (0 when n = 1).
pub fn summarize(values: &[f64]) -> Result<Summary, StatsError> {
    let mean = mean(values)?;
    let sd = if values.len() > 1 {
        sample_sd(values)?
    } else {
        0.0
    };
    Ok(Summary {
        mean,
        sd,
        n: values.len(),
    })
}

/// Student-t confidence interval for the mean: `mean ± t_{(1+c)/2, n−1} · sd / √n`.
/// Needs n ≥ 2: one seed says nothing about seed-to-seed variation.
pub fn t_interval(values: &[f64], confidence: f64) -> Result<Interval, StatsError> {
    check_confidence(confidence)?;
    if values.len() < 2 {
        return Err(StatsError::TooFewValues {
            what: "Student-t interval",
            needed: 2,
            got: values.len(),
        });
    }
    let s = summarize(values)?;
    let t = student_t_quantile(0.5 + confidence / 2.0, (s.n - 1) as f64)?;
    let half = t * s.sd / (s.n as f64).sqrt();
    Ok(Interval {
        estimate: s.mean,
        low: s.mean - half,
        high: s.mean + half,
        n: s.n,
    })
}

/// Upstream HUSAI's interval, kept for `--parity`: `mean ± 1.96 · sd / √n` whatever n is,
/// and zero width for n = 1. Evaluated in upstream's order, `(1.96 · sd) / √n`, so the
/// result matches the recorded artifacts bit for bit.
pub fn z196_interval_parity(values: &[f64]) -> Result<Interval, StatsError> {
    let s = summarize(values)?;
    let half = if s.n > 1 {
        1.96 * s.sd / (s.n as f64).sqrt()
    } else {
        0.0
    };
    Ok(Interval {
        estimate: s.mean,
        low: s.mean - half,
        high: s.mean + half,
        n: s.n,
    })
}

/// SplitMix64 (Steele, Lea & Flood 2014; the seeding generator of the xoshiro family):
/// `state += 0x9E3779B97F4A7C15`, then the output is `state` passed through two xor-shift
/// multiplies. Tiny, fully specified, and statistically sound for resampling indices.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..bound` (bound > 0) without modulo bias: Lemire's
    /// multiply-and-reject method.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "SplitMix64::below needs a positive bound");
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }
}

/// Bootstrap settings: number of resamples and the generator seed, both recorded with any
/// interval they produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootstrapSpec {
    pub resamples: u32,
    pub seed: u64,
}

impl BootstrapSpec {
    /// At least one resample, and a seed a signed manifest can record ([`MAX_SEED`]).
    pub fn check(self) -> Result<(), StatsError> {
        if self.resamples == 0 {
            return Err(StatsError::NoResamples);
        }
        if self.seed > MAX_SEED {
            return Err(StatsError::SeedTooLarge(self.seed));
        }
        Ok(())
    }
}

impl Default for BootstrapSpec {
    fn default() -> Self {
        Self {
            resamples: 10_000,
            // "HUSAIB" in ASCII: 47 bits, inside MAX_SEED. (The earlier "HUSAIBST" was 63 bits, which a signed
            // manifest cannot record, so the default made `select --lcb-method bootstrap` fail.)
            seed: 0x4855_5341_4942,
        }
    }
}

/// The `q` quantile of sorted data by linear interpolation between order statistics
/// (Hyndman & Fan type 7, numpy's default): position `q · (len − 1)`.
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let weight = position - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * weight
}

fn percentile_interval(estimate: f64, n: usize, mut stats: Vec<f64>, confidence: f64) -> Interval {
    stats.sort_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    Interval {
        estimate,
        low: quantile_sorted(&stats, alpha / 2.0),
        high: quantile_sorted(&stats, 1.0 - alpha / 2.0),
        n,
    }
}

/// Percentile bootstrap interval for the mean over seeds. Each value is one seed's metric;
/// a resample draws `n` seeds with replacement. Needs n ≥ 2.
///
/// Not offered by the selector or the gate: at small n it undercovers (simulated 95 % intervals cover the mean
/// about 50 %, 74 % and 84 % of the time at n = 2, 3, 5; `tests/suite/coverage.rs`), because the spread of resampled
/// means is narrower than the sampling spread of the mean by a factor √((n−1)/n) and ignores the t tail. Use
/// [`seed_bootstrap_t_mean`] or [`t_interval`].
pub fn seed_bootstrap_mean(
    values: &[f64],
    confidence: f64,
    spec: BootstrapSpec,
) -> Result<Interval, StatsError> {
    check_confidence(confidence)?;
    if values.len() < 2 {
        return Err(StatsError::TooFewValues {
            what: "seed bootstrap",
            needed: 2,
            got: values.len(),
        });
    }
    spec.check()?;
    let estimate = mean(values)?;
    let mut rng = SplitMix64::new(spec.seed);
    let n = values.len();
    let mut draw = vec![0.0; n];
    let stats = (0..spec.resamples)
        .map(|_| {
            for slot in draw.iter_mut() {
                *slot = values[rng.below(n as u64) as usize];
            }
            fsum(&draw) / n as f64
        })
        .collect();
    Ok(percentile_interval(estimate, n, stats, confidence))
}

/// The fewest seeds [`seed_bootstrap_t_mean`] accepts. From 5 seeds up its simulated coverage is close to nominal
/// (`tests/suite/coverage.rs`); below, a resample that repeats one seed has no spread and a studentized statistic of
/// ±∞, and such resamples are frequent enough (1 in 9 at n = 3) to make the interval unbounded.
pub const MIN_BOOTSTRAP_T_SEEDS: usize = 5;

/// The `q` quantile of sorted data that may hold infinities (a studentized resample with no spread): as
/// [`quantile_sorted`], but an interpolation between two equal or infinite neighbours returns the neighbour.
fn quantile_sorted_extended(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let (below, above) = (position.floor() as usize, position.ceil() as usize);
    let (lo, hi) = (sorted[below], sorted[above]);
    if lo == hi || !lo.is_finite() || !hi.is_finite() {
        return if position - below as f64 > 0.5 {
            hi
        } else {
            lo
        };
    }
    lo + (hi - lo) * (position - below as f64)
}

/// Studentized (bootstrap-t) interval for the mean over seeds (Efron & Tibshirani 1993, §12.5): each resample of
/// `n` seeds with replacement gives `t* = (mean* − mean) / (sd*/√n)`, and the interval is
/// `[mean − t*_{1−α/2} · sd/√n, mean − t*_{α/2} · sd/√n]`. Unlike the percentile interval it widens for the heavier
/// tail of a small-sample mean, which is what makes its coverage close to nominal from [`MIN_BOOTSTRAP_T_SEEDS`]
/// seeds up. A resample of one repeated seed has no spread; its t* is ±∞ (or 0 if it equals the mean), and it
/// stays in the distribution so that the interval is not made optimistic by dropping it.
pub fn seed_bootstrap_t_mean(
    values: &[f64],
    confidence: f64,
    spec: BootstrapSpec,
) -> Result<Interval, StatsError> {
    check_confidence(confidence)?;
    if values.len() < MIN_BOOTSTRAP_T_SEEDS {
        return Err(StatsError::TooFewValues {
            what: "studentized seed bootstrap (below 5 seeds its coverage is not close to nominal; use the Student-t interval)",
            needed: MIN_BOOTSTRAP_T_SEEDS,
            got: values.len(),
        });
    }
    spec.check()?;
    let s = summarize(values)?;
    let n = values.len();
    let root_n = (n as f64).sqrt();
    let se = s.sd / root_n;
    let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if s.sd <= 64.0 * f64::EPSILON * scale {
        // Every seed gave the same value up to rounding (a paired difference x + d − x differs from d in its
        // last bits): no spread to resample, and studentizing rounding noise would give infinite bounds.
        return Ok(Interval {
            estimate: s.mean,
            low: s.mean,
            high: s.mean,
            n,
        });
    }
    let mut rng = SplitMix64::new(spec.seed);
    let mut draw = vec![0.0; n];
    let mut stats: Vec<f64> = (0..spec.resamples)
        .map(|_| {
            for slot in draw.iter_mut() {
                *slot = values[rng.below(n as u64) as usize];
            }
            let m = fsum(&draw) / n as f64;
            let centred = m - s.mean;
            let sd = plain_sd(&draw, m);
            if sd > 0.0 {
                centred / (sd / root_n)
            } else if centred == 0.0 {
                0.0
            } else {
                centred.signum() * f64::INFINITY
            }
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    let t_low = quantile_sorted_extended(&stats, alpha / 2.0);
    let t_high = quantile_sorted_extended(&stats, 1.0 - alpha / 2.0);
    Ok(Interval {
        estimate: s.mean,
        low: s.mean - t_high * se,
        high: s.mean - t_low * se,
        n,
    })
}

/// Studentized (bootstrap-t) interval of `mean(a) − mean(b)` for two independent samples: seeds of a trained
/// model on one side, draws of a random null on the other. Each resample draws each side with replacement and gives
/// `t* = (D* − D) / √(sd_a*²/n_a + sd_b*²/n_b)`; the interval is `[D − t*₁₋α/₂ · se, D − t*α/₂ · se]`. Needs
/// [`MIN_BOOTSTRAP_T_SEEDS`] values on side `a` (the percentile bootstrap this replaces covers about 84 % at 5 seeds)
/// and two on side `b`; coverage is simulated in `tests/suite/coverage.rs`. When neither side has any spread the
/// interval is the point.
pub fn two_sample_bootstrap_t(
    a: &[f64],
    b: &[f64],
    confidence: f64,
    spec: BootstrapSpec,
) -> Result<Interval, StatsError> {
    check_bootstrap(confidence, spec)?;
    if a.len() < MIN_BOOTSTRAP_T_SEEDS {
        return Err(StatsError::TooFewValues {
            what: "studentized two-sample bootstrap (seeds of the first sample)",
            needed: MIN_BOOTSTRAP_T_SEEDS,
            got: a.len(),
        });
    }
    if b.len() < 2 {
        return Err(StatsError::TooFewValues {
            what: "studentized two-sample bootstrap (values of the second sample)",
            needed: 2,
            got: b.len(),
        });
    }
    let (a_mean, a_se) = mean_and_se(a);
    let (b_mean, b_se) = mean_and_se(b);
    let estimate = a_mean - b_mean;
    let se = (a_se * a_se + b_se * b_se).sqrt();
    let scale = a.iter().chain(b).fold(0.0f64, |m, v| m.max(v.abs()));
    if se <= 64.0 * f64::EPSILON * scale {
        return Ok(Interval {
            estimate,
            low: estimate,
            high: estimate,
            n: a.len(),
        });
    }
    let mut rng = SplitMix64::new(spec.seed);
    let (mut draw_a, mut draw_b) = (vec![0.0; a.len()], vec![0.0; b.len()]);
    let stats: Vec<f64> = (0..spec.resamples)
        .map(|_| {
            for slot in draw_a.iter_mut() {
                *slot = a[rng.below(a.len() as u64) as usize];
            }
            for slot in draw_b.iter_mut() {
                *slot = b[rng.below(b.len() as u64) as usize];
            }
            let (am, ase) = mean_and_se(&draw_a);
            let (bm, bse) = mean_and_se(&draw_b);
            t_statistic(am - bm - estimate, (ase * ase + bse * bse).sqrt())
        })
        .collect();
    Ok(studentized_interval(
        estimate,
        se,
        stats,
        confidence,
        a.len(),
    ))
}

/// The sample standard deviation by the two-pass formula, for resamples (the exact [`sample_sd`] is for reported
/// figures; a resample's spread only has to be accurate, not bit-identical to Python).
fn plain_sd(values: &[f64], mean: f64) -> f64 {
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (ss / (values.len() - 1) as f64).sqrt()
}

/// Bound on the mean difference `a − b` between two methods measured on the same seeds.
/// `pairs[i] = (a_i, b_i)` for seed i. A resample draws seeds (whole pairs) with replacement,
/// so the seed-to-seed correlation between the methods is kept, and the interval is on the
/// difference itself rather than on two separate bounds. Studentized ([`seed_bootstrap_t_mean`]), so it needs
/// [`MIN_BOOTSTRAP_T_SEEDS`] shared seeds.
pub fn paired_bootstrap_difference(
    pairs: &[(f64, f64)],
    confidence: f64,
    spec: BootstrapSpec,
) -> Result<Interval, StatsError> {
    let differences: Vec<f64> = pairs.iter().map(|(a, b)| a - b).collect();
    seed_bootstrap_t_mean(&differences, confidence, spec)
}

/// Paired Student-t interval for the mean difference `a − b` over shared seeds.
pub fn paired_t_difference(pairs: &[(f64, f64)], confidence: f64) -> Result<Interval, StatsError> {
    let differences: Vec<f64> = pairs.iter().map(|(a, b)| a - b).collect();
    t_interval(&differences, confidence)
}

/// A symmetric matrix of pairwise statistics between `n` seeds (the diagonal is unused): for
/// example PWMCC between the dictionaries of every two seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct PairwiseMatrix {
    n: usize,
    /// Row-major `n × n`, symmetric.
    values: Vec<f64>,
}

impl PairwiseMatrix {
    /// Builds the matrix from `(i, j, value)` triples: every unordered pair of distinct seeds in
    /// `0..n` exactly once, finite values only. Needs n ≥ 3, because resampling the seeds of a
    /// single pair can only ever reproduce that pair.
    pub fn from_pairs(n: usize, pairs: &[(usize, usize, f64)]) -> Result<Self, StatsError> {
        if n < 3 {
            return Err(StatsError::TooFewValues {
                what: "pairwise seed bootstrap (seeds)",
                needed: 3,
                got: n,
            });
        }
        let mut values = vec![f64::NAN; n * n];
        for &(i, j, v) in pairs {
            if i >= n || j >= n || i == j {
                return Err(StatsError::BadPairs(format!(
                    "pair ({i}, {j}) is not two distinct seeds among 0..{n}"
                )));
            }
            if !v.is_finite() {
                return Err(StatsError::NonFinite {
                    what: "pairwise statistic",
                    value: v,
                });
            }
            if !values[i * n + j].is_nan() {
                return Err(StatsError::BadPairs(format!(
                    "pair ({i}, {j}) is given twice"
                )));
            }
            values[i * n + j] = v;
            values[j * n + i] = v;
        }
        let expected = n * (n - 1) / 2;
        if pairs.len() != expected {
            return Err(StatsError::BadPairs(format!(
                "{n} seeds need all {expected} pairs, got {}",
                pairs.len()
            )));
        }
        Ok(PairwiseMatrix { n, values })
    }

    pub fn seeds(&self) -> usize {
        self.n
    }

    fn at(&self, i: usize, j: usize) -> f64 {
        self.values[i * self.n + j]
    }

    /// The mean over all pairs of distinct seeds.
    pub fn mean(&self) -> f64 {
        let all: Vec<usize> = (0..self.n).collect();
        self.mean_over(&all)
    }

    /// The mean over pairs of draws that are different seeds (a seed drawn twice is not compared
    /// with itself). NaN when every draw is the same seed, which [`Self::draw`] never returns.
    fn mean_over(&self, draw: &[usize]) -> f64 {
        let mut terms = Vec::with_capacity(draw.len() * draw.len() / 2);
        for (a, &i) in draw.iter().enumerate() {
            for &j in &draw[a + 1..] {
                if i != j {
                    terms.push(self.at(i, j));
                }
            }
        }
        if terms.is_empty() {
            f64::NAN
        } else {
            fsum(&terms) / terms.len() as f64
        }
    }

    /// A bootstrap draw of `n` seeds with at least two distinct seeds (a draw of one seed repeated
    /// has no pairs and is redrawn, so every resample yields a statistic).
    fn draw(&self, rng: &mut SplitMix64, out: &mut [usize]) {
        loop {
            for slot in out.iter_mut() {
                *slot = rng.below(self.n as u64) as usize;
            }
            if out.iter().any(|&s| s != out[0]) {
                return;
            }
        }
    }

    /// A bootstrap draw with at least three distinct seeds, so that leaving any one draw out still leaves a pair
    /// of distinct seeds (the jackknife of [`Self::jackknife_se`]).
    fn draw_three(&self, rng: &mut SplitMix64, out: &mut [usize]) {
        loop {
            for slot in out.iter_mut() {
                *slot = rng.below(self.n as u64) as usize;
            }
            let first = out[0];
            if let Some(&second) = out.iter().find(|&&s| s != first)
                && out.iter().any(|&s| s != first && s != second)
            {
                return;
            }
        }
    }

    /// The leave-one-draw-out pairwise means over `draw`, in O(k²): with `S` and `C` the sum and count over pairs
    /// of distinct drawn seeds, and `r_i`, `c_i` those of the pairs draw i takes part in, leaving draw i out gives
    /// `(S − r_i) / (C − c_i)`.
    fn leave_one_out(&self, draw: &[usize], out: &mut Vec<f64>) {
        let k = draw.len();
        let (mut row_sum, mut row_count) = (vec![0.0; k], vec![0usize; k]);
        for (x, &i) in draw.iter().enumerate() {
            for (y, &j) in draw.iter().enumerate().skip(x + 1) {
                if i != j {
                    let v = self.at(i, j);
                    row_sum[x] += v;
                    row_sum[y] += v;
                    row_count[x] += 1;
                    row_count[y] += 1;
                }
            }
        }
        let total: f64 = row_sum.iter().sum::<f64>() / 2.0;
        let count: usize = row_count.iter().sum::<usize>() / 2;
        out.clear();
        out.extend((0..k).map(|x| (total - row_sum[x]) / (count - row_count[x]) as f64));
    }

    /// The jackknife standard error of the pairwise mean over `draw` (Arvesen 1969, the jackknife of a
    /// U-statistic): `√((k−1)/k · Σ (θ₍ᵢ₎ − θ̄)²)` over the leave-one-draw-out means.
    fn jackknife_se(&self, draw: &[usize], scratch: &mut Vec<f64>) -> f64 {
        self.leave_one_out(draw, scratch);
        jackknife(scratch)
    }
}

/// `√((k−1)/k · Σ (θ₍ᵢ₎ − θ̄)²)` over leave-one-out estimates.
fn jackknife(leave_out: &[f64]) -> f64 {
    let k = leave_out.len() as f64;
    let centre = leave_out.iter().sum::<f64>() / k;
    let ss: f64 = leave_out.iter().map(|t| (t - centre) * (t - centre)).sum();
    ((k - 1.0) / k * ss).sqrt()
}

/// The fewest seeds per side [`pairwise_difference_bootstrap_t`] accepts. Simulated coverage of its 95 % interval
/// (`tests/suite/coverage.rs`, seed-effect model, against 21 random seeds): 0.95 at 8 and 12 trained seeds, but 0.91 at
/// 5, so it starts at 8, which is also the number of SAE seeds the `random_model` gate asks for.
pub const MIN_PAIRWISE_T_SEEDS: usize = 8;

fn check_bootstrap(confidence: f64, spec: BootstrapSpec) -> Result<(), StatsError> {
    check_confidence(confidence)?;
    spec.check()
}

/// Percentile bootstrap interval for the mean pairwise statistic, resampling seeds: each
/// resample draws `n` seeds with replacement and averages the statistic over pairs of distinct
/// drawn seeds.
pub fn pairwise_seed_bootstrap(
    matrix: &PairwiseMatrix,
    confidence: f64,
    spec: BootstrapSpec,
) -> Result<Interval, StatsError> {
    check_bootstrap(confidence, spec)?;
    let mut rng = SplitMix64::new(spec.seed);
    let mut draw = vec![0; matrix.n];
    let stats = (0..spec.resamples)
        .map(|_| {
            matrix.draw(&mut rng, &mut draw);
            matrix.mean_over(&draw)
        })
        .collect();
    Ok(percentile_interval(
        matrix.mean(),
        matrix.n,
        stats,
        confidence,
    ))
}

/// Studentized (bootstrap-t) interval for `mean(a) − mean(b)` of two pairwise statistics over seeds, resampling
/// seeds (not pairs) on each side as `design` says. The standard error of each side's pairwise mean is the
/// jackknife over seeds ([`PairwiseMatrix`]), computed again inside every resample, and
/// `t* = (D* − D) / se*`, with `se*² = se_a*² + se_b*²` for independent seeds (for paired seeds, the jackknife of
/// the difference itself). This is the interval the `random_model` gate reads: the percentile version
/// ([`pairwise_difference_bootstrap`]) covers only about 89 % for a nominal 95 % with 8 seeds against 21
/// (`tests/suite/coverage.rs`), this one close to 95 %. Needs [`MIN_PAIRWISE_T_SEEDS`] seeds per side.
pub fn pairwise_difference_bootstrap_t(
    a: &PairwiseMatrix,
    b: &PairwiseMatrix,
    design: SeedDesign,
    confidence: f64,
    spec: BootstrapSpec,
) -> Result<Interval, StatsError> {
    check_bootstrap(confidence, spec)?;
    for m in [a, b] {
        if m.n < MIN_PAIRWISE_T_SEEDS {
            return Err(StatsError::TooFewValues {
                what: "studentized pairwise seed bootstrap (seeds per side)",
                needed: MIN_PAIRWISE_T_SEEDS,
                got: m.n,
            });
        }
    }
    if design == SeedDesign::Paired && a.n != b.n {
        return Err(StatsError::UnpairedSizes {
            left: a.n,
            right: b.n,
        });
    }
    let all_a: Vec<usize> = (0..a.n).collect();
    let all_b: Vec<usize> = (0..b.n).collect();
    let mut scratch = Vec::new();
    let se_of = |draw_a: &[usize], draw_b: &[usize], scratch: &mut Vec<f64>| match design {
        SeedDesign::Independent => {
            let (sa, sb) = (
                a.jackknife_se(draw_a, scratch),
                b.jackknife_se(draw_b, scratch),
            );
            (sa * sa + sb * sb).sqrt()
        }
        SeedDesign::Paired => paired_jackknife_se(a, b, draw_a, scratch),
    };
    let estimate = a.mean() - b.mean();
    let se = se_of(&all_a, &all_b, &mut scratch);
    if se == 0.0 {
        return Ok(Interval {
            estimate,
            low: estimate,
            high: estimate,
            n: a.n.min(b.n),
        });
    }
    let mut rng = SplitMix64::new(spec.seed);
    let (mut draw_a, mut draw_b) = (vec![0; a.n], vec![0; b.n]);
    let stats: Vec<f64> = (0..spec.resamples)
        .map(|_| {
            a.draw_three(&mut rng, &mut draw_a);
            match design {
                SeedDesign::Paired => draw_b.copy_from_slice(&draw_a),
                SeedDesign::Independent => b.draw_three(&mut rng, &mut draw_b),
            }
            let centred = a.mean_over(&draw_a) - b.mean_over(&draw_b) - estimate;
            let se_star = se_of(&draw_a, &draw_b, &mut scratch);
            t_statistic(centred, se_star)
        })
        .collect();
    Ok(studentized_interval(
        estimate,
        se,
        stats,
        confidence,
        a.n.min(b.n),
    ))
}

/// A resample's studentized statistic `centred / se*`; a resample with no spread gives 0 when it sits on the
/// estimate and ±∞ otherwise (it still counts towards the quantiles).
fn t_statistic(centred: f64, se_star: f64) -> f64 {
    if se_star > 0.0 {
        centred / se_star
    } else if centred == 0.0 {
        0.0
    } else {
        centred.signum() * f64::INFINITY
    }
}

/// The bootstrap-t interval `[D − t*₁₋α/₂ · se, D − t*α/₂ · se]` from the resamples' statistics.
fn studentized_interval(
    estimate: f64,
    se: f64,
    mut stats: Vec<f64>,
    confidence: f64,
    n: usize,
) -> Interval {
    stats.sort_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    let t_low = quantile_sorted_extended(&stats, alpha / 2.0);
    let t_high = quantile_sorted_extended(&stats, 1.0 - alpha / 2.0);
    Interval {
        estimate,
        low: estimate - t_high * se,
        high: estimate - t_low * se,
        n,
    }
}

/// Mean and `sd/√m` (the jackknife standard error of a mean) of independent values.
fn mean_and_se(values: &[f64]) -> (f64, f64) {
    let m = values.len() as f64;
    let mean = fsum(values) / m;
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, (ss / (m - 1.0)).sqrt() / m.sqrt())
}

/// The studentized seed-level interval of `a.mean() − mean(values)`, where `a` holds a statistic between every two
/// of its seeds and `values` are independent draws of the same statistic (e.g. PWMCC of disjoint pairs of random
/// dictionaries). Each side is resampled by its own independent unit: `a` by seeds with replacement (pairs of
/// distinct drawn seeds, jackknife standard error, as [`pairwise_difference_bootstrap_t`]), `values` by values with
/// replacement (standard error `sd/√m`). Bootstrap-t: `t* = (D* − D) / √(se_a*² + se_v*²)`, interval
/// `[D − t*₁₋α/₂ · se, D − t*α/₂ · se]`. Needs [`MIN_PAIRWISE_T_SEEDS`] seeds in `a` and two values; its coverage is
/// checked by `tests/suite/coverage.rs`.
pub fn pairwise_vs_values_bootstrap_t(
    a: &PairwiseMatrix,
    values: &[f64],
    confidence: f64,
    spec: BootstrapSpec,
) -> Result<Interval, StatsError> {
    check_bootstrap(confidence, spec)?;
    if a.n < MIN_PAIRWISE_T_SEEDS {
        return Err(StatsError::TooFewValues {
            what: "studentized pairwise seed bootstrap (seeds of the pairwise side)",
            needed: MIN_PAIRWISE_T_SEEDS,
            got: a.n,
        });
    }
    if values.len() < 2 {
        return Err(StatsError::TooFewValues {
            what: "studentized pairwise seed bootstrap (independent values)",
            needed: 2,
            got: values.len(),
        });
    }
    let all: Vec<usize> = (0..a.n).collect();
    let mut scratch = Vec::new();
    let (v_mean, v_se) = mean_and_se(values);
    let estimate = a.mean() - v_mean;
    let a_se = a.jackknife_se(&all, &mut scratch);
    let se = (a_se * a_se + v_se * v_se).sqrt();
    if se == 0.0 {
        return Ok(Interval {
            estimate,
            low: estimate,
            high: estimate,
            n: a.n,
        });
    }
    let mut rng = SplitMix64::new(spec.seed);
    let mut draw = vec![0; a.n];
    let mut resampled = vec![0.0; values.len()];
    let stats: Vec<f64> = (0..spec.resamples)
        .map(|_| {
            a.draw_three(&mut rng, &mut draw);
            for slot in resampled.iter_mut() {
                *slot = values[rng.below(values.len() as u64) as usize];
            }
            let (vm, vse) = mean_and_se(&resampled);
            let ase = a.jackknife_se(&draw, &mut scratch);
            let centred = a.mean_over(&draw) - vm - estimate;
            let se_star = (ase * ase + vse * vse).sqrt();
            t_statistic(centred, se_star)
        })
        .collect();
    Ok(studentized_interval(estimate, se, stats, confidence, a.n))
}

/// Jackknife standard error of `mean_a − mean_b` over one shared draw of seeds (the paired design).
fn paired_jackknife_se(
    a: &PairwiseMatrix,
    b: &PairwiseMatrix,
    draw: &[usize],
    scratch: &mut Vec<f64>,
) -> f64 {
    let mut other = Vec::with_capacity(draw.len());
    a.leave_one_out(draw, scratch);
    b.leave_one_out(draw, &mut other);
    for (x, y) in scratch.iter_mut().zip(&other) {
        *x -= y;
    }
    jackknife(scratch)
}

/// How the seeds of two pairwise statistics relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedDesign {
    /// Seed i on one side is seed i on the other (for example the same training seeds with and
    /// without a treatment): one draw of seeds serves both sides.
    Paired,
    /// Unrelated seed sets (for example trained models vs freshly initialised random ones):
    /// each side's seeds are drawn independently.
    Independent,
}

/// Percentile bootstrap interval for `mean(a) − mean(b)` of two pairwise statistics, resampling
/// seeds (not pairs) on each side as `design` says. This bounds the difference itself, which is
/// what a "better than random" claim needs, instead of subtracting one side's upper bound from
/// the other's lower bound.
pub fn pairwise_difference_bootstrap(
    a: &PairwiseMatrix,
    b: &PairwiseMatrix,
    design: SeedDesign,
    confidence: f64,
    spec: BootstrapSpec,
) -> Result<Interval, StatsError> {
    check_bootstrap(confidence, spec)?;
    if design == SeedDesign::Paired && a.n != b.n {
        return Err(StatsError::UnpairedSizes {
            left: a.n,
            right: b.n,
        });
    }
    let mut rng = SplitMix64::new(spec.seed);
    let (mut draw_a, mut draw_b) = (vec![0; a.n], vec![0; b.n]);
    let stats = (0..spec.resamples)
        .map(|_| {
            a.draw(&mut rng, &mut draw_a);
            match design {
                SeedDesign::Paired => draw_b.copy_from_slice(&draw_a),
                SeedDesign::Independent => b.draw(&mut rng, &mut draw_b),
            }
            a.mean_over(&draw_a) - b.mean_over(&draw_b)
        })
        .collect();
    Ok(percentile_interval(
        a.mean() - b.mean(),
        a.n.min(b.n),
        stats,
        confidence,
    ))
}
