//! Synthetic activations from a known sparse dictionary (features in superposition), and the
//! feature-recovery score of a learned decoder against it.
//!
//! Generation: `n_features` directions drawn i.i.d. standard normal in `d_in` dimensions and
//! scaled to unit norm (with `n_features > d_in` they are in superposition). Each row is the sum
//! of exactly `l0` *distinct* features, chosen uniformly, with coefficients uniform in
//! `[coef_min, coef_max)`. Rows are generated in fixed chunks, each from its own random stream,
//! so the matrix is identical for any thread count.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{KernelError, check_len};
use crate::gemm::{MatMut, MatRef, matmul};
use crate::rng::SplitMix64;

/// Rows per independent random stream (and per parallel task).
const SYNTH_CHUNK: usize = 1024;

/// How to generate a synthetic activation matrix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthConfig {
    /// Rows to generate.
    pub rows: usize,
    /// Width of each row.
    pub d_in: usize,
    /// Number of ground-truth features.
    pub n_features: usize,
    /// Features active per row (exactly this many, distinct).
    pub l0: usize,
    /// Smallest coefficient (inclusive).
    pub coef_min: f32,
    /// Largest coefficient (exclusive).
    pub coef_max: f32,
    /// Seed of the whole draw.
    pub seed: u64,
}

/// A synthetic activation matrix and the dictionary that generated it.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthData {
    /// Activations, `[rows, d_in]` row-major.
    pub x: Vec<f32>,
    /// Ground-truth features, `[n_features, d_in]` row-major, unit-norm rows.
    pub dictionary: Vec<f32>,
    /// The configuration used.
    pub config: SynthConfig,
}

impl SynthConfig {
    /// Checks every field; errors name the field.
    pub fn validate(&self) -> Result<(), KernelError> {
        let bad = |field: &'static str, value: String, reason: String| {
            Err(KernelError::Config {
                field,
                value,
                reason,
            })
        };
        if self.d_in == 0 {
            return bad("d_in", "0".into(), "must be >= 1".into());
        }
        if self.n_features == 0 || self.n_features > u32::MAX as usize {
            return bad(
                "n_features",
                self.n_features.to_string(),
                "must be in 1..=2^32-1".into(),
            );
        }
        if self.l0 == 0 || self.l0 > self.n_features {
            return bad(
                "l0",
                self.l0.to_string(),
                format!("must be in 1..={} (n_features)", self.n_features),
            );
        }
        if !(self.coef_min.is_finite()
            && self.coef_max.is_finite()
            && self.coef_min <= self.coef_max)
        {
            return bad(
                "coef_min",
                format!("{}..{}", self.coef_min, self.coef_max),
                "coef_min and coef_max must be finite with coef_min <= coef_max".into(),
            );
        }
        if self.rows.checked_mul(self.d_in).is_none()
            || self.n_features.checked_mul(self.d_in).is_none()
        {
            return bad(
                "rows",
                self.rows.to_string(),
                "rows * d_in overflows memory addressing".into(),
            );
        }
        Ok(())
    }
}

/// Generates the matrix described by `config` (on the current rayon pool).
pub fn generate(config: &SynthConfig) -> Result<SynthData, KernelError> {
    generate_rows(config, None).map(|(data, _)| data)
}

/// A second view of the same sparse codes: `y = s·V` for the rows `x = s·U` of [`generate`], with its own
/// dictionary `V` (`[n_features, d_out]`, unit rows, drawn from `target_seed`). The synthetic ground truth of a
/// transcoder: a sparse code that maps x to y exists, and its decoder is `V`.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthTarget {
    /// Targets, `[rows, d_out]` row-major.
    pub y: Vec<f32>,
    /// The target dictionary `V`, `[n_features, d_out]`, unit-norm rows.
    pub dictionary: Vec<f32>,
    /// Width of each target row.
    pub d_out: usize,
    /// Seed of `V`'s draw.
    pub target_seed: u64,
}

/// [`generate`] and, from the same draw of codes, the target `y = s·V` of [`SynthTarget`]. `x` and `U` are
/// bit-identical to [`generate`]'s (the target draws from streams of its own), so a signed `data synth` run's
/// activations can be paired with a target afterwards, from its recorded config.
pub fn generate_with_target(
    config: &SynthConfig,
    d_out: usize,
    target_seed: u64,
) -> Result<(SynthData, SynthTarget), KernelError> {
    if d_out == 0 || config.rows.checked_mul(d_out).is_none() {
        return Err(KernelError::Config {
            field: "d_out",
            value: d_out.to_string(),
            reason: "must be >= 1 and rows * d_out must fit in memory addressing".into(),
        });
    }
    let (data, target) = generate_rows(config, Some((d_out, target_seed)))?;
    Ok((data, target.expect("a target was asked for")))
}

/// `n` unit rows of width `d`, each i.i.d. standard normal scaled to unit norm, from `rng`.
fn unit_normal_rows(rng: &mut SplitMix64, n: usize, d: usize) -> Vec<f32> {
    let mut m: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
    for row in m.chunks_exact_mut(d) {
        let norm = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt() as f32;
        for v in row.iter_mut() {
            *v /= norm;
        }
    }
    m
}

fn generate_rows(
    config: &SynthConfig,
    target: Option<(usize, u64)>,
) -> Result<(SynthData, Option<SynthTarget>), KernelError> {
    config.validate()?;
    let SynthConfig {
        rows,
        d_in,
        n_features,
        l0,
        coef_min,
        coef_max,
        seed,
    } = *config;
    // Stream 0 draws the dictionary; streams 1.. draw the row chunks. The target dictionary has a generator of
    // its own, so pairing leaves x and U as they were.
    let dictionary = unit_normal_rows(&mut SplitMix64::stream(seed, 0), n_features, d_in);
    let d_out = target.map_or(0, |(d, _)| d);
    let v = target.map_or_else(Vec::new, |(d, ts)| {
        unit_normal_rows(&mut SplitMix64::new(ts), n_features, d)
    });
    let mut x = vec![0f32; rows * d_in];
    let mut y = vec![0f32; rows * d_out];
    let (dict, v) = (&dictionary, &v);
    // With no target, y is empty and its chunks are empty too; zip would then stop at once, so pair x's chunks
    // with y's through an index instead.
    let y_chunks: Vec<&mut [f32]> = if d_out == 0 {
        Vec::new()
    } else {
        y.chunks_mut(SYNTH_CHUNK * d_out).collect()
    };
    let mut y_chunks: Vec<Option<&mut [f32]>> = y_chunks.into_iter().map(Some).collect();
    y_chunks.resize_with(rows.div_ceil(SYNTH_CHUNK), || None);
    x.par_chunks_mut(SYNTH_CHUNK * d_in)
        .zip(y_chunks.par_iter_mut())
        .enumerate()
        .for_each(|(c, (block, y_block))| {
            let mut rng = SplitMix64::stream(seed, 1 + c as u64);
            let mut chosen: Vec<u32> = Vec::with_capacity(l0);
            for (r, row) in block.chunks_exact_mut(d_in).enumerate() {
                chosen.clear();
                while chosen.len() < l0 {
                    let f = rng.below(n_features as u64) as u32;
                    if !chosen.contains(&f) {
                        chosen.push(f);
                    }
                }
                for &f in &chosen {
                    let a = coef_min + (coef_max - coef_min) * rng.uniform_f32();
                    let f = f as usize;
                    for (o, &u) in row.iter_mut().zip(&dict[f * d_in..(f + 1) * d_in]) {
                        *o += a * u;
                    }
                    if let Some(yb) = y_block.as_deref_mut() {
                        let out = &mut yb[r * d_out..(r + 1) * d_out];
                        for (o, &w) in out.iter_mut().zip(&v[f * d_out..(f + 1) * d_out]) {
                            *o += a * w;
                        }
                    }
                }
            }
        });
    let target = target.map(|(d_out, target_seed)| SynthTarget {
        y,
        dictionary: v.clone(),
        d_out,
        target_seed,
    });
    Ok((
        SynthData {
            x,
            dictionary,
            config: *config,
        },
        target,
    ))
}

/// How well a learned dictionary recovers the true one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// Share of true features whose best cosine with any learned row exceeds the threshold.
    pub recovered_fraction: f64,
    /// Mean over true features of the best cosine.
    pub mean_best_cosine: f64,
    /// The best cosine of every true feature, in dictionary order.
    pub best_cosine: Vec<f32>,
    /// The threshold used.
    pub threshold: f32,
}

fn unit_rows(m: &[f32], d: usize) -> Vec<f32> {
    let mut out = m.to_vec();
    for row in out.chunks_exact_mut(d) {
        let n = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt() as f32;
        if n > 0.0 {
            for v in row.iter_mut() {
                *v /= n;
            }
        }
    }
    out
}

/// For each true feature (row of `true_dict`, `[n_true, d_in]`), its best cosine similarity with
/// any row of `learned` (`[n_learned, d_in]`, e.g. a decoder); a feature counts as recovered when
/// that cosine is strictly above `threshold`. Rows of norm 0 have cosine 0 with everything.
pub fn recovery(
    true_dict: &[f32],
    learned: &[f32],
    d_in: usize,
    threshold: f32,
) -> Result<Recovery, KernelError> {
    if d_in == 0 {
        return Err(KernelError::Config {
            field: "d_in",
            value: "0".into(),
            reason: "must be >= 1".into(),
        });
    }
    let n_true = true_dict.len() / d_in;
    let n_learned = learned.len() / d_in;
    check_len("true dictionary", true_dict.len(), n_true, d_in)?;
    check_len("learned dictionary", learned.len(), n_learned, d_in)?;
    let t = unit_rows(true_dict, d_in);
    let l = unit_rows(learned, d_in);
    let mut best = vec![f32::NEG_INFINITY; n_true];
    // Blocks of true features bound the [block, n_learned] cosine matrix.
    const BLOCK: usize = 1024;
    let mut cos = Vec::new();
    for (b, tb) in t.chunks(BLOCK * d_in).enumerate() {
        let rows = tb.len() / d_in;
        cos.clear();
        cos.resize(rows * n_learned, 0.0);
        matmul(
            MatMut::row_major("cosines", &mut cos, rows, n_learned)?,
            MatRef::row_major("true dictionary", tb, rows, d_in)?,
            MatRef::row_major("learned dictionary", &l, n_learned, d_in)?.t(),
            false,
        )?;
        for (i, row) in cos.chunks_exact(n_learned.max(1)).enumerate().take(rows) {
            best[b * BLOCK + i] = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        }
    }
    if n_learned == 0 {
        best.fill(0.0);
    }
    let recovered = best.iter().filter(|&&c| c > threshold).count();
    Ok(Recovery {
        recovered_fraction: recovered as f64 / n_true as f64,
        mean_best_cosine: best.iter().map(|&c| c as f64).sum::<f64>() / n_true as f64,
        best_cosine: best,
        threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SynthConfig {
        SynthConfig {
            rows: 3000,
            d_in: 16,
            n_features: 40,
            l0: 3,
            coef_min: 0.5,
            coef_max: 1.5,
            seed: 5,
        }
    }

    #[test]
    fn rows_are_sums_of_l0_unit_features_and_generation_is_deterministic() {
        let a = generate(&cfg()).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| generate(&cfg()).unwrap());
        assert_eq!(a, b);
        for row in a.dictionary.chunks_exact(16) {
            let n: f32 = row.iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-5);
        }
        // E||row||^2 = l0 * E[a^2] + cross terms with mean ~0 (random directions): about 3.25.
        let mean_sq: f64 =
            a.x.chunks_exact(16)
                .map(|r| r.iter().map(|&v| v as f64 * v as f64).sum::<f64>())
                .sum::<f64>()
                / 3000.0;
        assert!((mean_sq - 3.25).abs() < 0.3, "{mean_sq}");
        let other = generate(&SynthConfig { seed: 6, ..cfg() }).unwrap();
        assert_ne!(a.x, other.x);
    }

    #[test]
    fn a_paired_target_shares_the_codes_and_leaves_x_as_generate_makes_it() {
        let c = cfg();
        let plain = generate(&c).unwrap();
        let (data, t) = generate_with_target(&c, 5, 11).unwrap();
        assert_eq!(data, plain);
        assert_eq!(
            (t.y.len(), t.dictionary.len()),
            (c.rows * 5, c.n_features * 5)
        );
        // With one feature per row, x = a·U_f and y = a·V_f: the same feature and coefficient on both sides.
        let one = SynthConfig { l0: 1, ..c };
        let (data, t) = generate_with_target(&one, 5, 11).unwrap();
        let (d, dout) = (one.d_in, 5);
        for r in 0..one.rows {
            let xr = &data.x[r * d..(r + 1) * d];
            let dot =
                |f: usize| -> f32 { (0..d).map(|j| xr[j] * data.dictionary[f * d + j]).sum() };
            let f = (0..one.n_features)
                .max_by(|&p, &q| dot(p).abs().total_cmp(&dot(q).abs()))
                .unwrap();
            let a = dot(f);
            assert!(
                (one.coef_min..one.coef_max + 1e-5).contains(&a),
                "row {r}: {a}"
            );
            for j in 0..dout {
                let want = a * t.dictionary[f * dout + j];
                assert!((t.y[r * dout + j] - want).abs() < 1e-5, "row {r}");
            }
        }
        // Deterministic; another target seed changes V and y but not x.
        let (again, t2) = generate_with_target(&c, 5, 11).unwrap();
        assert_eq!(again, plain);
        assert_eq!(t2, generate_with_target(&c, 5, 11).unwrap().1);
        let (x3, t3) = generate_with_target(&c, 5, 12).unwrap();
        assert_eq!(x3, plain);
        assert_ne!(t3.y, t2.y);
        let e = generate_with_target(&c, 0, 1).unwrap_err();
        assert!(e.to_string().contains("d_out"), "{e}");
    }

    #[test]
    fn recovery_scores_the_true_dictionary_as_perfect_and_noise_as_poor() {
        let a = generate(&cfg()).unwrap();
        let r = recovery(&a.dictionary, &a.dictionary, 16, 0.9).unwrap();
        assert_eq!(r.recovered_fraction, 1.0);
        assert!((r.mean_best_cosine - 1.0).abs() < 1e-5);
        // Half of the features, scaled: scale does not matter, the other half is missed unless
        // a near-duplicate direction happens to exist.
        let half: Vec<f32> = a.dictionary[..20 * 16].iter().map(|v| v * 3.0).collect();
        let r = recovery(&a.dictionary, &half, 16, 0.99).unwrap();
        assert!(
            (r.recovered_fraction - 0.5).abs() < 1e-9,
            "{}",
            r.recovered_fraction
        );
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let e = generate(&SynthConfig { l0: 41, ..cfg() }).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config field `l0` = 41 is invalid: must be in 1..=40 (n_features)"
        );
        let e = recovery(&[0.0; 5], &[0.0; 4], 2, 0.9).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("true dictionary: expected 4 f32 values"),
            "{e}"
        );
    }
}
