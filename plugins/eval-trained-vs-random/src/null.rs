//! The random null: decoders drawn with the trainers' own initialisation, compared in disjoint pairs.
//!
//! **Init law.** Every husai trainer starts `W_dec` the same way (`husai_kernels::engine::Sae::init`): each entry
//! uniform in ±1/√d_in from `SplitMix64::new(seed)`, then each row scaled to a fixed norm (`dec_init_norm`: 1, or
//! SAELens's 0.1). PWMCC is a mean of absolute cosines, so the row norm does not matter, but the direction law does:
//! a row uniform in a cube and then normalised is not uniform on the sphere (it leans towards the cube's
//! diagonals), so an isotropic Gaussian null would be a slightly different baseline from the dictionaries the SAEs
//! started from. [`init_decoder`] calls the trainers' own `engine::initial_decoder`, so a change to their init
//! changes the null with it.
//!
//! **Pairing.** Draw `2i` is compared with draw `2i + 1` only ([`random_pairs`]): `n` draws give `n / 2` PWMCC
//! values that share no draw, so they are independent and identically distributed, and the random side of the
//! seed-level interval resamples them as independent values (`husai_stats::pairwise_vs_values_bootstrap_t`). All pairs of 200 draws would
//! cost 19 900 PWMCCs of `d_sae² · d_in` each (and hold 200 decoders in memory); a ring would give `n` values, but
//! neighbours share a draw, and resampling them as independent would understate the spread. Disjoint pairs cost
//! `n / 2` PWMCCs, need two decoders in memory at a time, and make the resampling exact.

use husai_kernels::rng::SplitMix64;
use husai_kernels::stats::{self, Dictionary, StatsError};

/// What the summary records as the random decoders' law (`random.init`).
pub const INIT_LAW: &str = "kaiming_uniform";
/// What the summary records as the pairing of the random draws (`random.pairing`).
pub const PAIRING: &str = "disjoint";

/// The trainers' initial decoder for `seed` with unit rows (`husai_kernels::engine::initial_decoder`; a row scale
/// does not change PWMCC).
pub fn init_decoder(d_in: usize, d_sae: usize, seed: u64) -> Vec<f32> {
    husai_kernels::engine::initial_decoder(d_in, d_sae, seed, 1.0)
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
