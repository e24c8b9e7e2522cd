//! Fourier structure of a token embedding over Z_p, the known circuit of modular addition (Nanda et al. 2023,
//! "Progress measures for grokking via mechanistic interpretability", ICLR): after grokking the embedding
//! concentrates on a few key frequencies k, i.e. on the directions cos(2πkn/p), sin(2πkn/p) over tokens n.
//!
//! - [`folded_energy`] and [`top_share`]: the corrected measure (reference upstream-stress-evals.md §3.6 K2). The
//!   embedding is centred over tokens, each frequency is folded with its conjugate (k and p−k are one real
//!   frequency), DC is excluded, and the share of the top K frequencies is Σ_{k∈K} E_k / Σ_{k≠0} E_k, which by
//!   Parseval equals the R² of projecting the centred embedding onto the orthonormal cos/sin basis of K.
//! - [`upstream_r2`]: upstream HUSAI's formula, kept for parity only. It ranks raw DFT indices by mean |F| (so k and
//!   p−k both appear), builds cos/sin columns for each, and takes R² = 1 − ‖C − BBᵀC‖²/‖C‖²; for a conjugate pair
//!   BBᵀ = 2P_k, which is not a projector, so a complete pair contributes exactly 0.
//! - [`token_basis`]: the orthonormal token-space cos/sin basis of a set of folded frequencies.
//!
//! Everything is f64 and O(p²·d), which is small for the moduli used here (p ≈ 100).

use crate::error::KernelError;

fn check(embed: &[f32], p: usize, d: usize) -> Result<(), KernelError> {
    crate::error::check_len("embedding", embed.len(), p, d)?;
    if p < 3 || p.is_multiple_of(2) {
        return Err(KernelError::Mismatch {
            what: "fourier".into(),
            detail: format!("the modulus p = {p} must be odd and at least 3"),
        });
    }
    Ok(())
}

/// The number of folded non-DC frequencies of an odd modulus p: k = 1..=(p−1)/2.
pub fn folded_count(p: usize) -> usize {
    (p - 1) / 2
}

/// |F_{k,·}|² summed over columns for every raw frequency k = 0..p of `x` ([p, d] row-major, f64).
fn raw_power(x: &[f64], p: usize, d: usize) -> Vec<f64> {
    let tau = std::f64::consts::TAU;
    (0..p)
        .map(|k| {
            let (mut re, mut im) = (vec![0.0; d], vec![0.0; d]);
            for n in 0..p {
                let phase = tau * ((k * n) % p) as f64 / p as f64;
                let (s, c) = phase.sin_cos();
                for j in 0..d {
                    re[j] += x[n * d + j] * c;
                    im[j] -= x[n * d + j] * s;
                }
            }
            re.iter().zip(&im).map(|(a, b)| a * a + b * b).sum()
        })
        .collect()
}

fn centred(embed: &[f32], p: usize, d: usize) -> Vec<f64> {
    let mut x: Vec<f64> = embed.iter().map(|&v| f64::from(v)).collect();
    for j in 0..d {
        let mean = (0..p).map(|n| x[n * d + j]).sum::<f64>() / p as f64;
        for n in 0..p {
            x[n * d + j] -= mean;
        }
    }
    x
}

/// Folded energies E_k = Σ_d (|F_{k,d}|² + |F_{p−k,d}|²) of the centred embedding, for k = 1..=(p−1)/2 (index k−1).
pub fn folded_energy(embed: &[f32], p: usize, d: usize) -> Result<Vec<f64>, KernelError> {
    check(embed, p, d)?;
    let power = raw_power(&centred(embed, p, d), p, d);
    Ok((1..=folded_count(p))
        .map(|k| power[k] + power[p - k])
        .collect())
}

/// The top `count` folded frequencies by energy (largest first; ties to the lower k) and their share of the non-DC
/// energy. A constant embedding has no non-DC energy; its share is 0.
pub fn top_share(energy: &[f64], count: usize) -> (f64, Vec<usize>) {
    let mut order: Vec<usize> = (0..energy.len()).collect();
    order.sort_by(|&a, &b| energy[b].total_cmp(&energy[a]).then(a.cmp(&b)));
    order.truncate(count.min(energy.len()));
    let total: f64 = energy.iter().sum();
    let top: f64 = order.iter().map(|&i| energy[i]).sum();
    let share = if total > 0.0 { top / total } else { 0.0 };
    (share, order.into_iter().map(|i| i + 1).collect())
}

/// Orthonormal token-space basis [p, 2·|freqs|] (row-major) of cos(2πkn/p)/‖·‖, sin(2πkn/p)/‖·‖ for each folded
/// frequency k in `freqs` (each in 1..=(p−1)/2; distinct folded frequencies give orthogonal columns).
pub fn token_basis(p: usize, freqs: &[usize]) -> Vec<f64> {
    let tau = std::f64::consts::TAU;
    let cols = 2 * freqs.len();
    let norm = (2.0 / p as f64).sqrt();
    let mut b = vec![0.0; p * cols];
    for (i, &k) in freqs.iter().enumerate() {
        for n in 0..p {
            let phase = tau * ((k * n) % p) as f64 / p as f64;
            b[n * cols + 2 * i] = phase.cos() * norm;
            b[n * cols + 2 * i + 1] = phase.sin() * norm;
        }
    }
    b
}

/// Upstream HUSAI's "R²" (parity only; see the module docs): raw DFT indices 0..p ranked by the mean over columns of
/// |F| of the uncentred embedding, the first `min(count, top_k)` of the top `top_k` used, one cos and one sin column
/// per index, each normalised (a zero column stays zero), R² = 1 − ‖C − BBᵀC‖²/‖C‖² on the centred embedding.
/// Returns the R² and the ranked raw indices.
pub fn upstream_r2(
    embed: &[f32],
    p: usize,
    d: usize,
    top_k: usize,
    count: usize,
) -> Result<(f64, Vec<usize>), KernelError> {
    check(embed, p, d)?;
    let tau = std::f64::consts::TAU;
    let raw: Vec<f64> = embed.iter().map(|&v| f64::from(v)).collect();
    // score(k) = mean_d |F_{k,d}|
    let score: Vec<f64> = (0..p)
        .map(|k| {
            let mut s = 0.0;
            for j in 0..d {
                let (mut re, mut im) = (0.0, 0.0);
                for n in 0..p {
                    let phase = tau * ((k * n) % p) as f64 / p as f64;
                    re += raw[n * d + j] * phase.cos();
                    im -= raw[n * d + j] * phase.sin();
                }
                s += (re * re + im * im).sqrt();
            }
            s / d as f64
        })
        .collect();
    let mut ranked: Vec<usize> = (0..p).collect();
    ranked.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
    ranked.truncate(top_k.min(p));
    let used = &ranked[..count.min(top_k).max(1).min(ranked.len())];
    let cols = 2 * used.len();
    let mut basis = vec![0.0; p * cols];
    for (i, &k) in used.iter().enumerate() {
        for (c, f) in [(2 * i, f64::cos as fn(f64) -> f64), (2 * i + 1, f64::sin)] {
            let col: Vec<f64> = (0..p)
                .map(|n| f(tau * ((k * n) % p) as f64 / p as f64))
                .collect();
            let norm = col.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            for n in 0..p {
                basis[n * cols + c] = col[n] / norm;
            }
        }
    }
    let c = centred(embed, p, d);
    // Ĉ = B (Bᵀ C)
    let mut btc = vec![0.0; cols * d];
    for n in 0..p {
        for i in 0..cols {
            let bni = basis[n * cols + i];
            for j in 0..d {
                btc[i * d + j] += bni * c[n * d + j];
            }
        }
    }
    let (mut resid, mut total) = (0.0, 0.0);
    for n in 0..p {
        for j in 0..d {
            let hat: f64 = (0..cols)
                .map(|i| basis[n * cols + i] * btc[i * d + j])
                .sum();
            let v = c[n * d + j];
            resid += (v - hat) * (v - hat);
            total += v * v;
        }
    }
    let r2 = if total > 0.0 {
        1.0 - resid / total
    } else {
        0.0
    };
    Ok((r2, ranked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn gaussian(p: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        (0..p * d).map(|_| rng.normal() as f32).collect()
    }

    /// An embedding whose energy is `share` in folded frequencies `keys` (equal parts) and the rest in Gaussian
    /// noise spread over all frequencies.
    fn planted(p: usize, d: usize, keys: &[usize], share: f64, seed: u64) -> Vec<f32> {
        let basis = token_basis(p, keys);
        let cols = 2 * keys.len();
        let mut rng = SplitMix64::new(seed);
        let coef: Vec<f64> = (0..cols * d).map(|_| rng.normal()).collect();
        let mut signal = vec![0.0; p * d];
        for n in 0..p {
            for i in 0..cols {
                for j in 0..d {
                    signal[n * d + j] += basis[n * cols + i] * coef[i * d + j];
                }
            }
        }
        let noise: Vec<f64> = centred(&gaussian(p, d, seed + 1), p, d);
        // Remove the key frequencies from the noise so the planted share is exact.
        let mut btn = vec![0.0; cols * d];
        for n in 0..p {
            for i in 0..cols {
                for j in 0..d {
                    btn[i * d + j] += basis[n * cols + i] * noise[n * d + j];
                }
            }
        }
        let mut noise_off = noise.clone();
        for n in 0..p {
            for j in 0..d {
                noise_off[n * d + j] -= (0..cols)
                    .map(|i| basis[n * cols + i] * btn[i * d + j])
                    .sum::<f64>();
            }
        }
        let es: f64 = signal.iter().map(|v| v * v).sum();
        let en: f64 = noise_off.iter().map(|v| v * v).sum();
        let a = (share / es).sqrt();
        let b = ((1.0 - share) / en).sqrt();
        signal
            .iter()
            .zip(&noise_off)
            .map(|(s, n)| (a * s + b * n) as f32)
            .collect()
    }

    #[test]
    fn the_folded_share_equals_the_projection_r2_and_is_exact_on_a_planted_embedding() {
        let (p, d) = (113, 128);
        let e = planted(p, d, &[4, 17, 30, 41, 52], 0.947, 3);
        let (share, freqs) = top_share(&folded_energy(&e, p, d).unwrap(), 5);
        assert!((share - 0.947).abs() < 1e-4, "{share}");
        let mut f = freqs.clone();
        f.sort();
        assert_eq!(f, [4, 17, 30, 41, 52]);
        // Upstream's formula gets it wrong (reference §3.6 K2: about 0.19).
        let (r2, _) = upstream_r2(&e, p, d, 10, 5).unwrap();
        assert!((0.1..0.3).contains(&r2), "{r2}");
    }

    #[test]
    fn random_gaussian_embeddings_give_the_reference_values() {
        let (p, d) = (113, 128);
        let mut corrected = Vec::new();
        let mut upstream = Vec::new();
        for seed in 0..8 {
            let e = gaussian(p, d, seed);
            corrected.push(top_share(&folded_energy(&e, p, d).unwrap(), 5).0);
            upstream.push(upstream_r2(&e, p, d, 10, 5).unwrap().0);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        // Reference §7: upstream 0.020 ± 0.001; corrected ≈ 0.103.
        assert!((mean(&upstream) - 0.020).abs() < 0.0015, "{upstream:?}");
        assert!((mean(&corrected) - 0.103).abs() < 0.006, "{corrected:?}");
    }

    #[test]
    fn parseval_folded_energies_sum_to_p_times_the_centred_energy() {
        let (p, d) = (11, 7);
        let e = gaussian(p, d, 9);
        let total: f64 = folded_energy(&e, p, d).unwrap().iter().sum();
        let direct: f64 = centred(&e, p, d).iter().map(|v| v * v).sum();
        assert!((total - p as f64 * direct).abs() < 1e-9 * total);
        assert!(folded_energy(&e, 10, 7).is_err());
        assert!(folded_energy(&e[1..], p, d).is_err());
    }

    #[test]
    fn the_token_basis_is_orthonormal() {
        let (p, freqs) = (11, [1, 2, 3]);
        let b = token_basis(p, &freqs);
        let cols = 6;
        for i in 0..cols {
            for j in 0..cols {
                let dot: f64 = (0..p).map(|n| b[n * cols + i] * b[n * cols + j]).sum();
                assert!((dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }
}
