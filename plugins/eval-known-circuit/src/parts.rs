//! The three parts of the known-circuit eval, each a trained value against random controls of the same shape.
//!
//! - [`embedding`]: the top-K folded-frequency share of the toy model's token embedding (corrected formula,
//!   `husai_kernels::fourier`) against Gaussian embeddings of the same shape. The share is scale-free, so the
//!   Gaussian is the init law up to scale.
//! - [`alignment`]: how much of each SAE decoder direction lies in the model-space Fourier subspace, the span of
//!   Eᵀcos_k, Eᵀsin_k over the model's key frequencies (reference §3.6 K4: the SAEs are trained on the embedding's own
//!   coordinates, h = E[a] + E[b]). Score: the mean over latents of ‖Π ŵ_j‖, the norm of the projection of the unit
//!   decoder row; random decoders are Gaussian of the same shape.
//! - [`planted`]: the share of a known dictionary's features that an SAE's decoder recovers (best cosine above a
//!   threshold), against Gaussian decoders of the same shape.

use husai_kernels::fourier;
use husai_kernels::rng::SplitMix64;
use husai_kernels::synth;

/// `n` rows of `d` standard normal values.
pub fn gaussian(rows: usize, d: usize, rng: &mut SplitMix64) -> Vec<f32> {
    (0..rows * d).map(|_| rng.normal() as f32).collect()
}

/// The corrected top-`k` share of one embedding, and its key frequencies.
pub fn embedding_share(
    embed: &[f32],
    p: usize,
    d: usize,
    k: usize,
) -> Result<(f64, Vec<usize>), String> {
    let energy = fourier::folded_energy(embed, p, d).map_err(|e| e.to_string())?;
    Ok(fourier::top_share(&energy, k))
}

/// Shares of `draws` Gaussian embeddings [p, d] (corrected, and upstream's formula when `parity`).
pub fn random_embeddings(
    p: usize,
    d: usize,
    k: usize,
    draws: usize,
    seed: u64,
    parity: bool,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let mut rng = SplitMix64::stream(seed, 11);
    let mut corrected = Vec::with_capacity(draws);
    let mut upstream = Vec::new();
    for _ in 0..draws {
        let e = gaussian(p, d, &mut rng);
        corrected.push(embedding_share(&e, p, d, k)?.0);
        if parity {
            upstream.push(upstream_share(&e, p, d)?);
        }
    }
    Ok((corrected, upstream))
}

/// Upstream's "R²" with its defaults (top 10 raw indices, first 5 used).
pub fn upstream_share(embed: &[f32], p: usize, d: usize) -> Result<f64, String> {
    fourier::upstream_r2(embed, p, d, 10, 5)
        .map(|(r2, _)| r2)
        .map_err(|e| e.to_string())
}

/// An orthonormal basis (rows, each of length d) of the span of Eᵀb for the token-basis columns b of the key
/// frequencies: modified Gram–Schmidt, dropping directions of relative norm ≤ 1e-9.
pub fn model_space_basis(embed: &[f32], p: usize, d: usize, keys: &[usize]) -> Vec<Vec<f64>> {
    let tb = fourier::token_basis(p, keys);
    let cols = 2 * keys.len();
    let mut out: Vec<Vec<f64>> = Vec::new();
    for c in 0..cols {
        let mut v = vec![0.0; d];
        for n in 0..p {
            let b = tb[n * cols + c];
            for j in 0..d {
                v[j] += f64::from(embed[n * d + j]) * b;
            }
        }
        let before = norm(&v);
        for q in &out {
            let dot: f64 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
            for j in 0..d {
                v[j] -= dot * q[j];
            }
        }
        let after = norm(&v);
        if before > 0.0 && after > 1e-9 * before {
            out.push(v.iter().map(|x| x / after).collect());
        }
    }
    out
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Mean over the rows of `w_dec` ([rows, d]) of the norm of the unit row's projection onto `basis`. Zero rows count 0.
pub fn alignment(w_dec: &[f32], d: usize, basis: &[Vec<f64>]) -> f64 {
    let rows = w_dec.len() / d;
    let mut sum = 0.0;
    for r in w_dec.chunks_exact(d) {
        let r: Vec<f64> = r.iter().map(|&x| f64::from(x)).collect();
        let n = norm(&r);
        if n == 0.0 {
            continue;
        }
        let proj: f64 = basis
            .iter()
            .map(|q| {
                let dot: f64 = q.iter().zip(&r).map(|(a, b)| a * b).sum::<f64>() / n;
                dot * dot
            })
            .sum();
        sum += proj.sqrt();
    }
    sum / rows as f64
}

/// Alignments of `draws` Gaussian decoders [rows, d].
pub fn random_alignments(
    rows: usize,
    d: usize,
    basis: &[Vec<f64>],
    draws: usize,
    seed: u64,
) -> Vec<f64> {
    let mut rng = SplitMix64::stream(seed, 12);
    (0..draws)
        .map(|_| alignment(&gaussian(rows, d, &mut rng), d, basis))
        .collect()
}

/// Recovered fraction and mean best cosine of a decoder against a known dictionary.
pub fn planted(
    dictionary: &[f32],
    w_dec: &[f32],
    d: usize,
    threshold: f32,
) -> Result<(f64, f64), String> {
    let r = synth::recovery(dictionary, w_dec, d, threshold).map_err(|e| e.to_string())?;
    Ok((r.recovered_fraction, r.mean_best_cosine))
}

/// Recovery of `draws` Gaussian decoders [rows, d] against the dictionary.
pub fn random_planted(
    dictionary: &[f32],
    rows: usize,
    d: usize,
    threshold: f32,
    draws: usize,
    seed: u64,
) -> Result<Vec<(f64, f64)>, String> {
    let mut rng = SplitMix64::stream(seed, 13);
    (0..draws)
        .map(|_| planted(dictionary, &gaussian(rows, d, &mut rng), d, threshold))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_space_basis_is_orthonormal_with_d_rows_per_direction() {
        // Reference §3.7: p = 11, a random [11, 7] embedding, frequencies 1..3.
        let mut rng = SplitMix64::new(4);
        let e = gaussian(11, 7, &mut rng);
        let b = model_space_basis(&e, 11, 7, &[1, 2, 3]);
        assert!(!b.is_empty() && b.len() <= 6);
        for (i, q) in b.iter().enumerate() {
            assert_eq!(q.len(), 7);
            for (j, r) in b.iter().enumerate() {
                let dot: f64 = q.iter().zip(r).map(|(a, b)| a * b).sum();
                assert!((dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn a_decoder_inside_the_subspace_aligns_fully_and_a_random_one_by_its_dimension() {
        let mut rng = SplitMix64::new(5);
        let (p, d) = (113, 128);
        let e = gaussian(p, d, &mut rng);
        let basis = model_space_basis(&e, p, d, &[3, 9, 20, 33, 50]);
        assert_eq!(basis.len(), 10);
        let inside: Vec<f32> = basis
            .iter()
            .flat_map(|q| q.iter().map(|&x| (2.0 * x) as f32))
            .collect();
        assert!((alignment(&inside, d, &basis) - 1.0).abs() < 1e-6);
        // A random unit vector in 128 dimensions has E‖Πx‖² = 10/128 onto a 10-dimensional subspace.
        let r = random_alignments(128, d, &basis, 20, 1);
        let m = r.iter().sum::<f64>() / r.len() as f64;
        assert!((m - (10.0f64 / 128.0).sqrt()).abs() < 0.02, "{m}");
    }

    #[test]
    fn random_decoders_recover_nothing_of_a_planted_dictionary_and_the_dictionary_recovers_itself()
    {
        let mut rng = SplitMix64::new(6);
        let dict = gaussian(16, 64, &mut rng);
        assert_eq!(planted(&dict, &dict, 64, 0.9).unwrap().0, 1.0);
        let r = random_planted(&dict, 32, 64, 0.9, 10, 2).unwrap();
        assert!(r.iter().all(|&(f, c)| f == 0.0 && c < 0.6));
    }
}
