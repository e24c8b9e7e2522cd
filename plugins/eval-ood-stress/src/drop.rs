//! The OOD drop and its uncertainty (reference §2.6 O3's fix). With per-task gaps `g_t = AUC_SAE,t − AUC_dense,t`,
//! `drop = mean_{t ∈ ID} g_t − mean_{t ∈ OOD} g_t` (higher: the SAE probe loses more of its standing under shift).
//!
//! - **Interval:** a stratified bootstrap over tasks, ID and OOD tasks each resampled within their stratum, in its
//!   studentized form (`husai_kernels::stats::two_sample_bootstrap_t`; the percentile form undercovers at these
//!   sizes). Fewer than 5 ID tasks: no interval, with the reason.
//! - **Random-split null:** the observed drop against the drops of random ID/OOD relabellings of the same tasks
//!   (strata sizes kept): `p = (1 + #{drop* ≥ drop}) / (1 + draws)`, one-sided. It asks whether the shifted split
//!   is special, the control upstream lacked.

use husai_kernels::stats::{self, BootstrapSpec, Interval, SplitMix64, StatsError};

/// The drop of one probe budget.
#[derive(Debug, Clone, PartialEq)]
pub struct DropStats {
    pub id_mean_gap: f64,
    pub ood_mean_gap: f64,
    pub drop: f64,
    /// `None` with the reason when the interval cannot be computed.
    pub interval: Result<Interval, String>,
    pub permutation_p: f64,
}

fn mean(v: &[f64]) -> f64 {
    stats::fsum(v) / v.len() as f64
}

/// One-sided random-split permutation p of the drop (`draws` relabellings from `seed`).
pub fn permutation_p(id: &[f64], ood: &[f64], draws: u32, seed: u64) -> f64 {
    let observed = mean(id) - mean(ood);
    let mut pooled: Vec<f64> = id.iter().chain(ood).copied().collect();
    let (n_id, n) = (id.len(), pooled.len());
    let mut g = SplitMix64::new(seed);
    let mut at_least = 0u32;
    for _ in 0..draws {
        // A uniform n_id-subset: the first n_id places of a partial Fisher-Yates shuffle.
        for i in 0..n_id {
            let j = i + g.below((n - i) as u64) as usize;
            pooled.swap(i, j);
        }
        let d = mean(&pooled[..n_id]) - mean(&pooled[n_id..]);
        // A relabelling that reproduces the observed split exactly counts, whatever the rounding.
        if d >= observed - 1e-12 * observed.abs().max(1.0) {
            at_least += 1;
        }
    }
    (1.0 + at_least as f64) / (1.0 + draws as f64)
}

/// The drop of `id` and `ood` gaps with its interval at `confidence` and its permutation p.
pub fn drop_stats(
    id: &[f64],
    ood: &[f64],
    confidence: f64,
    bootstrap: BootstrapSpec,
    draws: u32,
    permutation_seed: u64,
) -> Result<DropStats, StatsError> {
    let interval = match stats::two_sample_bootstrap_t(id, ood, confidence, bootstrap) {
        Ok(i) => Ok(i),
        Err(e @ StatsError::TooFewValues { .. }) => Err(e.to_string()),
        Err(e) => return Err(e),
    };
    Ok(DropStats {
        id_mean_gap: mean(id),
        ood_mean_gap: mean(ood),
        drop: mean(id) - mean(ood),
        interval,
        permutation_p: permutation_p(id, ood, draws, permutation_seed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normals(g: &mut husai_kernels::rng::SplitMix64, n: usize, mu: f64, sd: f64) -> Vec<f64> {
        (0..n).map(|_| mu + sd * g.normal()).collect()
    }

    #[test]
    fn under_the_null_the_permutation_p_is_uniform_and_a_real_drop_is_found() {
        let mut g = husai_kernels::rng::SplitMix64::new(7);
        let reps = 400;
        let mut small = 0;
        for r in 0..reps {
            let (id, ood) = (normals(&mut g, 8, 0.0, 1.0), normals(&mut g, 8, 0.0, 1.0));
            if permutation_p(&id, &ood, 199, r) <= 0.05 {
                small += 1;
            }
        }
        let rate = small as f64 / reps as f64;
        assert!((0.025..=0.08).contains(&rate), "null rejection rate {rate}");
        let (id, ood) = (
            normals(&mut g, 8, 0.0, 0.02),
            normals(&mut g, 8, -0.05, 0.02),
        );
        assert!(permutation_p(&id, &ood, 999, 1) < 0.01);
        assert_eq!(
            permutation_p(&[1.0; 5], &[1.0; 5], 99, 2),
            1.0,
            "all ties: every relabelling counts"
        );
    }

    #[test]
    fn the_stratified_bootstrap_interval_covers_close_to_nominal_at_8_and_8_tasks() {
        let mut g = husai_kernels::rng::SplitMix64::new(11);
        let (reps, mut covered) = (300, 0);
        for r in 0..reps {
            let (id, ood) = (
                normals(&mut g, 8, 0.03, 0.02),
                normals(&mut g, 8, 0.01, 0.03),
            );
            let s = drop_stats(
                &id,
                &ood,
                0.95,
                BootstrapSpec {
                    resamples: 999,
                    seed: r + 1,
                },
                9,
                0,
            )
            .unwrap();
            let i = s.interval.unwrap();
            if i.low <= 0.02 && 0.02 <= i.high {
                covered += 1;
            }
        }
        let coverage = covered as f64 / reps as f64;
        assert!((0.91..=0.99).contains(&coverage), "coverage {coverage}");
    }

    #[test]
    fn too_few_id_tasks_give_no_interval_and_say_why() {
        let s = drop_stats(
            &[0.1, 0.2, 0.3],
            &[0.0, 0.1, 0.0],
            0.95,
            BootstrapSpec::default(),
            99,
            0,
        )
        .unwrap();
        assert!((s.drop - (0.2 - 1.0 / 30.0)).abs() < 1e-12);
        let why = s.interval.unwrap_err();
        assert!(why.contains("studentized two-sample bootstrap"), "{why}");
    }
}
