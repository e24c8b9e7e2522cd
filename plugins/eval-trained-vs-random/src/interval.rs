//! The seed-level interval of `mean trained PWMCC − mean random PWMCC`.
//!
//! The two sides have different dependence, and each is resampled by its independent unit:
//!
//! * **trained**: PWMCC between every two of `n` SAE seeds. Pairs share seeds (a seed that trained to an unusual
//!   dictionary is unusual in every pair it is in), so the unit is the seed: a resample draws `n` seeds with
//!   replacement and averages the pairs of distinct drawn seeds; its standard error is the jackknife over the drawn
//!   seeds (a U-statistic's jackknife, Arvesen 1969).
//! * **random**: `m` PWMCC values of disjoint pairs of random decoders ([`crate::null`]), independent, so a
//!   resample draws `m` values with replacement; its standard error is `sd/√m` (which is the jackknife of a mean).
//!
//! Studentized (bootstrap-t), as `husai_stats::pairwise_difference_bootstrap_t` with independent seeds: each
//! resample gives `t* = (D* − D) / √(se_t*² + se_r*²)` and the interval is `[D − t*₁₋α/₂ · se, D − t*α/₂ · se]`.
//! `husai_stats` offers that interval only for two all-pairs matrices, and the pairwise mean, draw and jackknife it
//! uses are private there, so their few lines are repeated here ([`Pairwise`], named after the functions they
//! copy); folding this into `husai_stats` as a second design is the better home.

use husai_kernels::stats::{
    BootstrapSpec, Interval, MIN_PAIRWISE_T_SEEDS, SplitMix64, StatsError, fsum,
};

/// PWMCC between every two of `n` seeds, row-major `n × n`, symmetric (the diagonal is unused).
#[derive(Debug, Clone)]
pub struct Pairwise {
    n: usize,
    values: Vec<f64>,
}

impl Pairwise {
    /// From `(i, j, value)` for every `i < j < n` exactly once (checked).
    pub fn from_pairs(n: usize, pairs: &[(usize, usize, f64)]) -> Result<Self, StatsError> {
        // The same checks as `husai_stats::PairwiseMatrix::from_pairs`.
        husai_kernels::stats::PairwiseMatrix::from_pairs(n, pairs)?;
        let mut values = vec![0.0; n * n];
        for &(i, j, v) in pairs {
            values[i * n + j] = v;
            values[j * n + i] = v;
        }
        Ok(Pairwise { n, values })
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

    /// The mean over pairs of draws that are different seeds (`PairwiseMatrix::mean_over`).
    fn mean_over(&self, draw: &[usize]) -> f64 {
        let mut terms = Vec::with_capacity(draw.len() * draw.len() / 2);
        for (a, &i) in draw.iter().enumerate() {
            for &j in &draw[a + 1..] {
                if i != j {
                    terms.push(self.at(i, j));
                }
            }
        }
        fsum(&terms) / terms.len() as f64
    }

    /// A draw of `n` seeds with at least three distinct ones, so that leaving any one draw out still leaves a pair
    /// (`PairwiseMatrix::draw_three`).
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

    /// The jackknife standard error of the pairwise mean over `draw` (`PairwiseMatrix::leave_one_out` and
    /// `jackknife`): leaving draw x out gives `(S − r_x) / (C − c_x)`, with S, C the sum and count over pairs of
    /// distinct drawn seeds and r_x, c_x those of the pairs x is in.
    fn jackknife_se(&self, draw: &[usize], scratch: &mut Vec<f64>) -> f64 {
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
        let total = row_sum.iter().sum::<f64>() / 2.0;
        let count = row_count.iter().sum::<usize>() / 2;
        scratch.clear();
        scratch.extend((0..k).map(|x| (total - row_sum[x]) / (count - row_count[x]) as f64));
        let kf = k as f64;
        let centre = scratch.iter().sum::<f64>() / kf;
        let ss: f64 = scratch.iter().map(|t| (t - centre) * (t - centre)).sum();
        ((kf - 1.0) / kf * ss).sqrt()
    }
}

/// Mean and `sd/√m` of independent values.
fn mean_se(values: &[f64]) -> (f64, f64) {
    let m = values.len() as f64;
    let mean = fsum(values) / m;
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, (ss / (m - 1.0)).sqrt() / m.sqrt())
}

/// The `q` quantile of sorted values that may hold infinities (`husai_stats`' `quantile_sorted_extended`): linear
/// interpolation, except between equal or infinite neighbours, where the nearer one is returned.
fn quantile(sorted: &[f64], q: f64) -> f64 {
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

/// The studentized seed-level interval of `trained.mean() − mean(random)` (module docs). Needs
/// [`MIN_PAIRWISE_T_SEEDS`] trained seeds (below, the interval's simulated coverage is not close to nominal) and
/// two random values.
pub fn difference(
    trained: &Pairwise,
    random: &[f64],
    confidence: f64,
    spec: BootstrapSpec,
) -> Result<Interval, StatsError> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(StatsError::BadConfidence(confidence));
    }
    spec.check()?;
    if trained.n < MIN_PAIRWISE_T_SEEDS {
        return Err(StatsError::TooFewValues {
            what: "studentized pairwise seed bootstrap (trained seeds)",
            needed: MIN_PAIRWISE_T_SEEDS,
            got: trained.n,
        });
    }
    if random.len() < 2 {
        return Err(StatsError::TooFewValues {
            what: "studentized pairwise seed bootstrap (random pairs)",
            needed: 2,
            got: random.len(),
        });
    }
    let all: Vec<usize> = (0..trained.n).collect();
    let mut scratch = Vec::new();
    let (r_mean, r_se) = mean_se(random);
    let estimate = trained.mean() - r_mean;
    let t_se = trained.jackknife_se(&all, &mut scratch);
    let se = (t_se * t_se + r_se * r_se).sqrt();
    let n = trained.n;
    if se == 0.0 {
        return Ok(Interval {
            estimate,
            low: estimate,
            high: estimate,
            n,
        });
    }
    let mut rng = SplitMix64::new(spec.seed);
    let mut draw = vec![0; trained.n];
    let mut resampled = vec![0.0; random.len()];
    let mut stats: Vec<f64> = (0..spec.resamples)
        .map(|_| {
            trained.draw_three(&mut rng, &mut draw);
            for slot in resampled.iter_mut() {
                *slot = random[rng.below(random.len() as u64) as usize];
            }
            let (rm, rse) = mean_se(&resampled);
            let tse = trained.jackknife_se(&draw, &mut scratch);
            let centred = trained.mean_over(&draw) - rm - estimate;
            let se_star = (tse * tse + rse * rse).sqrt();
            if se_star > 0.0 {
                centred / se_star
            } else if centred == 0.0 {
                0.0
            } else {
                centred.signum() * f64::INFINITY
            }
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    let (t_low, t_high) = (
        quantile(&stats, alpha / 2.0),
        quantile(&stats, 1.0 - alpha / 2.0),
    );
    Ok(Interval {
        estimate,
        low: estimate - t_high * se,
        high: estimate - t_low * se,
        n,
    })
}
