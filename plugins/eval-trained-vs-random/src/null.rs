//! The random null: decoders drawn with the trainers' own initialisation, compared in disjoint pairs.
//!
//! **Init law.** Every husai trainer starts `W_dec` the same way (`husai_kernels::engine::Sae::init`): each entry
//! uniform in ±1/√d_in from `SplitMix64::new(seed)`, then each row scaled to a fixed norm (`dec_init_norm`: 1, or
//! SAELens's 0.1). PWMCC is a mean of absolute cosines, so the row norm does not matter, but the direction law does:
//! a row uniform in a cube and then normalised is not uniform on the sphere (it leans towards the cube's
//! diagonals), so an isotropic Gaussian null would be a slightly different baseline from the dictionaries the SAEs
//! started from. [`init_decoder`] is that initialisation, line for line; a unit test checks it bit for bit against
//! `engine::Sae::init`, so a change to the trainers' init shows up here.
//!
//! **Pairing.** Draw `2i` is compared with draw `2i + 1` only ([`random_pairs`]): `n` draws give `n / 2` PWMCC
//! values that share no draw, so they are independent and identically distributed, and the random side of the
//! seed-level interval resamples them as independent values ([`crate::interval`]). All pairs of 200 draws would
//! cost 19 900 PWMCCs of `d_sae² · d_in` each (and hold 200 decoders in memory); a ring would give `n` values, but
//! neighbours share a draw, and resampling them as independent would understate the spread. Disjoint pairs cost
//! `n / 2` PWMCCs, need two decoders in memory at a time, and make the resampling exact.

use husai_kernels::rng::SplitMix64;
use husai_kernels::stats::{self, Dictionary, StatsError};

/// What the summary records as the random decoders' law (`random.init`).
pub const INIT_LAW: &str = "kaiming_uniform";
/// What the summary records as the pairing of the random draws (`random.pairing`).
pub const PAIRING: &str = "disjoint";

/// The trainers' initial decoder for `seed`: `[d_sae, d_in]` row-major, entries uniform in ±1/√d_in, rows of unit
/// norm. A copy of the `W_dec` lines of `husai_kernels::engine::Sae::init` (with `dec_norm` 1; a row scale does
/// not change PWMCC), kept here because the engine draws it only as part of a whole model (encoder, family
/// parameters); a kernels function returning the initial decoder alone would let this call it instead.
pub fn init_decoder(d_in: usize, d_sae: usize, seed: u64) -> Vec<f32> {
    let bound = 1.0 / (d_in as f32).sqrt();
    let mut rng = SplitMix64::new(seed);
    let mut w: Vec<f32> = (0..d_sae * d_in)
        .map(|_| (2.0 * rng.uniform_f32() - 1.0) * bound)
        .collect();
    for row in w.chunks_exact_mut(d_in) {
        // The norm in f64 and `v / n`, as the trainers' `normalize_rows`, so the rows are bit-identical.
        let n = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt() as f32;
        if n > 0.0 {
            for v in row.iter_mut() {
                *v /= n;
            }
        }
    }
    w
}

/// The init seed of random draw `i` under `random_seed`: a SplitMix64 sub-stream, so draws are independent of
/// each other and of the small seeds (0, 1, 2, ...) SAE runs are usually trained with.
pub fn draw_seed(random_seed: u64, i: usize) -> u64 {
    SplitMix64::stream(random_seed, i as u64).next_u64()
}

/// PWMCC of each disjoint pair of random decoders: `draws / 2` values, pair `i` being draws `2i` and `2i + 1`.
/// `on_pair` is called after each (for progress).
pub fn random_pairs(
    d_sae: usize,
    d_in: usize,
    draws: usize,
    random_seed: u64,
    on_pair: &mut dyn FnMut(usize),
) -> Result<Vec<f64>, StatsError> {
    (0..draws / 2)
        .map(|i| {
            let a = init_decoder(d_in, d_sae, draw_seed(random_seed, 2 * i));
            let b = init_decoder(d_in, d_sae, draw_seed(random_seed, 2 * i + 1));
            let v = stats::pwmcc(
                &Dictionary::new(&a, d_sae, d_in)?,
                &Dictionary::new(&b, d_sae, d_in)?,
            )?;
            on_pair(i);
            Ok(v)
        })
        .collect()
}
