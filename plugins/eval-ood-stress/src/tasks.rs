//! The offline probing tasks (reference §5.2's analogue of upstream's sae-probes datasets): binary tasks defined on
//! the ground-truth features of a `data synth` run, probed in distribution and under covariate shift.
//!
//! Task `t` asks whether feature `f_t` is active in a row. Its rows follow the synth run's own law (each row the sum
//! of `l0` distinct unit features with coefficients uniform in `[coef_min, coef_max)`), except that the label
//! decides `f_t`: a positive row (probability 1/2) has `f_t` among its `l0` features, a negative row does not. The
//! probes are fitted on `train_rows` such rows. An **ID** task is tested on `test_rows` more rows of that law; an
//! **OOD** task is tested on rows under covariate shift, `p(x)` changed and the labelling rule kept: each row
//! carries `shift_extra` more background features and every coefficient is `shift_scale` times larger. Which tasks
//! are ID and which OOD is a seeded random half split, so the strata differ only by the shift.

use husai_kernels::rng::SplitMix64;

/// The generating law of a `data synth` run (its `generator.json` config and `dictionary.npy`).
#[derive(Debug, Clone)]
pub struct Law {
    /// `[n_features, d_in]`, unit rows.
    pub dictionary: Vec<f32>,
    pub n_features: usize,
    pub d_in: usize,
    pub l0: usize,
    pub coef_min: f64,
    pub coef_max: f64,
}

/// The covariate shift of OOD test rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    /// Extra background features per row.
    pub extra: usize,
    /// Factor on every coefficient.
    pub scale: f64,
}

/// One task's rows: `[n, d_in]` and labels.
#[derive(Debug, Clone)]
pub struct Rows {
    pub x: Vec<f64>,
    pub y: Vec<bool>,
}

impl Law {
    /// `n` rows of the task on `feature`, under `shift` when given.
    pub fn rows(&self, feature: usize, n: usize, shift: Option<Shift>, g: &mut SplitMix64) -> Rows {
        let d = self.d_in;
        let (extra, scale) = shift.map_or((0, 1.0), |s| (s.extra, s.scale));
        let background_cap = self.n_features - 1;
        let mut x = vec![0f64; n * d];
        let mut y = Vec::with_capacity(n);
        let mut chosen: Vec<usize> = Vec::new();
        for row in x.chunks_exact_mut(d) {
            let positive = g.below(2) == 1;
            y.push(positive);
            let want = (self.l0 - usize::from(positive) + extra).min(background_cap);
            chosen.clear();
            while chosen.len() < want {
                let f = g.below(self.n_features as u64) as usize;
                if f != feature && !chosen.contains(&f) {
                    chosen.push(f);
                }
            }
            if positive {
                chosen.push(feature);
            }
            for &f in &chosen {
                let c = scale * (self.coef_min + (self.coef_max - self.coef_min) * g.uniform_f64());
                let atom = &self.dictionary[f * d..(f + 1) * d];
                row.iter_mut()
                    .zip(atom)
                    .for_each(|(o, &a)| *o += c * a as f64);
            }
        }
        Rows { x, y }
    }
}

/// `count` distinct features of `n_features`, and a random half of them (rounded down) marked OOD, from `g`.
pub fn choose_tasks(n_features: usize, count: usize, g: &mut SplitMix64) -> Vec<(usize, bool)> {
    let mut pool: Vec<usize> = (0..n_features).collect();
    for i in 0..count {
        let j = i + g.below((n_features - i) as u64) as usize;
        pool.swap(i, j);
    }
    let features = &pool[..count];
    let mut order: Vec<usize> = (0..count).collect();
    for i in (1..count).rev() {
        let j = g.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let mut ood = vec![false; count];
    for &i in &order[..count / 2] {
        ood[i] = true;
    }
    features.iter().copied().zip(ood).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn law() -> Law {
        let mut g = SplitMix64::new(1);
        let (n_features, d_in) = (20, 8);
        let mut dictionary: Vec<f32> = (0..n_features * d_in).map(|_| g.normal() as f32).collect();
        for r in dictionary.chunks_exact_mut(d_in) {
            let n = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            r.iter_mut().for_each(|v| *v /= n);
        }
        Law {
            dictionary,
            n_features,
            d_in,
            l0: 3,
            coef_min: 0.5,
            coef_max: 1.5,
        }
    }

    #[test]
    fn positives_carry_the_feature_and_the_shift_makes_rows_denser_and_louder() {
        let law = law();
        let mut g = SplitMix64::new(2);
        let plain = law.rows(4, 2000, None, &mut g);
        let shifted = law.rows(
            4,
            2000,
            Some(Shift {
                extra: 2,
                scale: 1.5,
            }),
            &mut g,
        );
        let share = plain.y.iter().filter(|&&v| v).count() as f64 / 2000.0;
        assert!((share - 0.5).abs() < 0.05, "{share}");
        let proj = |r: &Rows, positive: bool| {
            let atom = &law.dictionary[4 * 8..5 * 8];
            let v: Vec<f64> =
                r.x.chunks_exact(8)
                    .zip(&r.y)
                    .filter(|(_, y)| **y == positive)
                    .map(|(x, _)| x.iter().zip(atom).map(|(a, &b)| a * b as f64).sum())
                    .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(proj(&plain, true) - proj(&plain, false) > 0.8);
        let norm2 = |r: &Rows| r.x.iter().map(|v| v * v).sum::<f64>() / r.y.len() as f64;
        assert!(
            norm2(&shifted) > 2.0 * norm2(&plain),
            "{} vs {}",
            norm2(&shifted),
            norm2(&plain)
        );
    }

    #[test]
    fn tasks_are_distinct_features_half_of_them_ood_and_seeded() {
        let t = choose_tasks(20, 10, &mut SplitMix64::new(5));
        assert_eq!(t, choose_tasks(20, 10, &mut SplitMix64::new(5)));
        let mut f: Vec<usize> = t.iter().map(|x| x.0).collect();
        f.sort_unstable();
        f.dedup();
        assert_eq!(f.len(), 10);
        assert_eq!(t.iter().filter(|x| x.1).count(), 5);
    }
}
