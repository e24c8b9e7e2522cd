//! The router: which layer of a row the shared SAE encodes, and how it learns.
//!
//! As in RouteSAE (Shi et al. 2025, "Route Sparse Autoencoder to Interpret Large Language Models", §3, and its
//! public code's `RouteSAE` with `aggre = "sum"`, `routing = "hard"`): the router reads the sum of the row's layer
//! activations, `v = Σ_l s_l x_l`, computes `p = softmax(W_router v)` (no bias) and routes the row to
//! `l* = argmax p`; the SAE encodes `s_l* x_l*`. Every layer is first scaled by one constant,
//! `s_l = sqrt(d / mean_r ||x_l,r||^2)` over the training rows, so every layer reaches the SAE at the same mean
//! squared norm (MiniLM's last layer has a third of the others' norm).
//!
//! How it learns. The gradient reaches the router only through the routing weight `p_r = p_l*(r)` of each row,
//! as in the paper, but through a term of its own rather than through the SAE's input: the router minimises the
//! routing-weighted relative error of the batch,
//!
//! ```text
//! L_router = Σ_r p_r e_r / Σ_r p_r,     e_r = ||x_hat_r - x_r||^2 / ||x_r||^2   (the SAE's, held fixed)
//! ∂L_router/∂p_r = (e_r - L_router) / Σ_r p_r
//! ```
//!
//! so a row whose chosen layer the SAE explains worse than the batch does lowers that layer's probability (and
//! moves towards another), and a row explained better raises it. The paper instead feeds the SAE `p_r x_l*` and
//! lets the reconstruction loss reach `p_r`; with its loss relative to the input's norm, that ratio is invariant
//! to the scale `p_r` except through the SAE's biases, so the router gets almost no signal; with an absolute loss
//! the signal is `∝ p_r^2 · error`, which every row minimises by making `p` uniform, the collapse to entropy
//! `ln L` that upstream's routed SAE showed. `bench/routesae_torch.py --router paper` trains the paper's form
//! for comparison.

use rayon::prelude::*;

use husai_kernels::rng::SplitMix64;

/// Rows per parallel task: fixed, so sums never depend on the thread count.
const ROWS_PER_TASK: usize = 64;

/// The generator stream of the router's initial weights (the SAE's own draws use the run seed's other streams).
const INIT_STREAM: u64 = 0x726f_7574_6572; // "router"

/// Router weights and the per-layer scales.
#[derive(Debug, Clone, PartialEq)]
pub struct Router {
    /// Layers routed over, `L`.
    pub n_layers: usize,
    /// Width of each layer, `d`.
    pub d: usize,
    /// `W_router`, `[L, d]` row-major.
    pub w: Vec<f32>,
    /// `s_l`, `[L]`.
    pub scale: Vec<f32>,
}

/// One batch routed (buffers reused across steps).
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// Rows routed.
    pub rows: usize,
    /// Router inputs `v = Σ_l s_l x_l`, `[rows, d]`.
    pub v: Vec<f32>,
    /// Routing probabilities, `[rows, L]`.
    pub p: Vec<f32>,
    /// The chosen layer of each row.
    pub layer: Vec<u32>,
    /// What the SAE encodes, `s_l* x_l*`, `[rows, d]`.
    pub routed: Vec<f32>,
}

impl Routing {
    /// The chosen layer's probability of row `r`.
    pub fn weight(&self, r: usize, n_layers: usize) -> f32 {
        self.p[r * n_layers + self.layer[r] as usize]
    }
}

impl Router {
    /// Fresh weights uniform in `±1/sqrt(d)` (PyTorch's `nn.Linear` default, as the paper's code), scales 1.
    pub fn init(n_layers: usize, d: usize, seed: u64) -> Router {
        let mut g = SplitMix64::stream(seed, INIT_STREAM);
        let bound = 1.0 / (d as f32).sqrt();
        let w = (0..n_layers * d)
            .map(|_| (2.0 * g.uniform_f32() - 1.0) * bound)
            .collect();
        Router {
            n_layers,
            d,
            w,
            scale: vec![1.0; n_layers],
        }
    }

    /// Sets each layer's scale from `x` (`[rows, L * d]`, the training rows): `sqrt(d / mean ||x_l||^2)`, or 1
    /// for a layer that is zero on every row.
    pub fn fit_scale(&mut self, x: &[f32]) {
        let (n_layers, d) = (self.n_layers, self.d);
        let rows = x.len() / (n_layers * d);
        let sums: Vec<Vec<f64>> = x
            .par_chunks(ROWS_PER_TASK * n_layers * d)
            .map(|chunk| {
                let mut s = vec![0f64; n_layers];
                for row in chunk.chunks_exact(n_layers * d) {
                    for (l, layer) in row.chunks_exact(d).enumerate() {
                        s[l] += layer.iter().map(|&v| v as f64 * v as f64).sum::<f64>();
                    }
                }
                s
            })
            .collect();
        for l in 0..n_layers {
            let mean = sums.iter().map(|s| s[l]).sum::<f64>() / rows.max(1) as f64;
            self.scale[l] = if mean > 0.0 {
                (d as f64 / mean).sqrt() as f32
            } else {
                1.0
            };
        }
    }

    /// Routes the rows of `x` (`[rows, L * d]`) into `out`.
    pub fn route(&self, x: &[f32], out: &mut Routing) {
        let (n_layers, d) = (self.n_layers, self.d);
        let rows = x.len() / (n_layers * d);
        out.rows = rows;
        out.v.resize(rows * d, 0.0);
        out.p.resize(rows * n_layers, 0.0);
        out.layer.resize(rows, 0);
        out.routed.resize(rows * d, 0.0);
        x.par_chunks(ROWS_PER_TASK * n_layers * d)
            .zip(out.v.par_chunks_mut(ROWS_PER_TASK * d))
            .zip(out.p.par_chunks_mut(ROWS_PER_TASK * n_layers))
            .zip(out.layer.par_chunks_mut(ROWS_PER_TASK))
            .zip(out.routed.par_chunks_mut(ROWS_PER_TASK * d))
            .for_each(|((((xc, vc), pc), lc), rc)| {
                for (i, row) in xc.chunks_exact(n_layers * d).enumerate() {
                    let v = &mut vc[i * d..(i + 1) * d];
                    v.fill(0.0);
                    for (l, layer) in row.chunks_exact(d).enumerate() {
                        let s = self.scale[l];
                        v.iter_mut().zip(layer).for_each(|(a, &b)| *a += s * b);
                    }
                    let p = &mut pc[i * n_layers..(i + 1) * n_layers];
                    for (l, pl) in p.iter_mut().enumerate() {
                        *pl = dot(&self.w[l * d..(l + 1) * d], v);
                    }
                    let best = softmax_argmax(p);
                    lc[i] = best as u32;
                    let s = self.scale[best];
                    rc[i * d..(i + 1) * d]
                        .iter_mut()
                        .zip(&row[best * d..(best + 1) * d])
                        .for_each(|(o, &b)| *o = s * b);
                }
            });
    }

    /// The router loss `Σ_r p_r e_r / Σ_r p_r` of a routed batch with the rows' relative errors `e`, and its
    /// gradient with respect to `W_router` written into `grad` (`[L, d]`).
    pub fn loss_and_grad(&self, routing: &Routing, e: &[f64], grad: &mut [f32]) -> f64 {
        let (n_layers, d, rows) = (self.n_layers, self.d, routing.rows);
        let weights: Vec<f64> = (0..rows)
            .map(|r| routing.weight(r, n_layers) as f64)
            .collect();
        let total: f64 = weights.iter().sum();
        let loss = weights.iter().zip(e).map(|(w, e)| w * e).sum::<f64>() / total;
        // ∂L/∂logit_j of row r = g_r p_r (δ_{j l*} - p_j), with g_r = (e_r - L) / Σ p.
        let partials: Vec<Vec<f64>> = (0..rows.div_ceil(ROWS_PER_TASK))
            .into_par_iter()
            .map(|c| {
                let mut acc = vec![0f64; n_layers * d];
                for r in c * ROWS_PER_TASK..((c + 1) * ROWS_PER_TASK).min(rows) {
                    let g = (e[r] - loss) / total * weights[r];
                    let chosen = routing.layer[r] as usize;
                    let v = &routing.v[r * d..(r + 1) * d];
                    for j in 0..n_layers {
                        let pj = routing.p[r * n_layers + j] as f64;
                        let dl = g * (f64::from(u8::from(j == chosen)) - pj);
                        if dl != 0.0 {
                            acc[j * d..(j + 1) * d]
                                .iter_mut()
                                .zip(v)
                                .for_each(|(a, &b)| *a += dl * b as f64);
                        }
                    }
                }
                acc
            })
            .collect();
        grad.fill(0.0);
        let mut sum = vec![0f64; n_layers * d];
        for part in &partials {
            sum.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        }
        grad.iter_mut().zip(&sum).for_each(|(g, &s)| *g = s as f32);
        loss
    }
}

/// `p` ← softmax(`p`) in place (max-subtracted); the index of the largest logit (the first on ties).
fn softmax_argmax(p: &mut [f32]) -> usize {
    let (mut best, mut max) = (0, f32::NEG_INFINITY);
    for (j, &v) in p.iter().enumerate() {
        if v > max {
            (best, max) = (j, v);
        }
    }
    let mut z = 0f32;
    for v in p.iter_mut() {
        *v = (*v - max).exp();
        z += *v;
    }
    p.iter_mut().for_each(|v| *v /= z);
    best
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Entropy (nats) of one row's routing probabilities.
pub fn entropy(p: &[f32]) -> f64 {
    -p.iter()
        .filter(|&&v| v > 0.0)
        .map(|&v| v as f64 * (v as f64).ln())
        .sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, n_layers: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut g = SplitMix64::new(seed);
        (0..n * n_layers * d).map(|_| g.normal() as f32).collect()
    }

    fn loss_at(router: &Router, x: &[f32], e_of: &dyn Fn(&Routing) -> Vec<f64>) -> f64 {
        let mut r = Routing::default();
        router.route(x, &mut r);
        let e = e_of(&r);
        let mut g = vec![0.0; router.w.len()];
        router.loss_and_grad(&r, &e, &mut g)
    }

    #[test]
    fn the_gradient_matches_finite_differences_with_the_routes_held() {
        let (n_layers, d, n) = (3, 5, 40);
        let x = rows(n, n_layers, d, 1);
        let mut router = Router::init(n_layers, d, 2);
        router.w.iter_mut().for_each(|w| *w *= 4.0); // confident enough that small steps keep every argmax
        router.fit_scale(&x);
        let mut base = Routing::default();
        router.route(&x, &mut base);
        // Errors fixed per row (the SAE's are held fixed too).
        let e: Vec<f64> = (0..n).map(|r| 0.1 + (r % 7) as f64 * 0.05).collect();
        let mut grad = vec![0.0; router.w.len()];
        router.loss_and_grad(&base, &e, &mut grad);
        let layers = base.layer.clone();
        let e_of = |r: &Routing| {
            assert_eq!(
                r.layer, layers,
                "a finite-difference step changed a route; use a smaller step"
            );
            e.clone()
        };
        let h = 1e-3f32;
        let mut worst = 0f64;
        for (i, &g) in grad.iter().enumerate() {
            let (mut up, mut down) = (router.clone(), router.clone());
            up.w[i] += h;
            down.w[i] -= h;
            let fd = (loss_at(&up, &x, &e_of) - loss_at(&down, &x, &e_of)) / (2.0 * h as f64);
            let diff = (fd - g as f64).abs() / (fd.abs() + g.abs() as f64 + 1e-6);
            worst = worst.max(diff);
        }
        assert!(worst < 2e-2, "worst relative difference {worst}");
    }

    #[test]
    fn routing_picks_the_largest_logit_scales_the_layer_and_probabilities_sum_to_one() {
        let (n_layers, d) = (3, 4);
        let mut router = Router::init(n_layers, d, 0);
        router.w = vec![0.0; n_layers * d];
        router.w[2 * d] = 1.0; // layer 2's logit reads column 0 of the summed input
        router.scale = vec![1.0, 2.0, 0.5];
        let x: Vec<f32> = (0..n_layers * d).map(|i| i as f32).collect();
        let mut r = Routing::default();
        router.route(&x, &mut r);
        assert_eq!(r.layer, vec![2]);
        let v0 = 0.0 + 2.0 * 4.0 + 0.5 * 8.0;
        assert_eq!(r.v[0], v0);
        assert_eq!(r.routed, vec![4.0, 4.5, 5.0, 5.5]);
        assert!((r.p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(r.p[2] > r.p[0] && r.p[0] == r.p[1]);
    }

    #[test]
    fn scales_bring_every_layer_to_mean_squared_norm_d_and_results_do_not_depend_on_threads() {
        let (n_layers, d, n) = (4, 8, 300);
        let mut x = rows(n, n_layers, d, 5);
        for row in x.chunks_exact_mut(n_layers * d) {
            row[3 * d..].iter_mut().for_each(|v| *v *= 0.2);
        }
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut router = Router::init(n_layers, d, 3);
                router.fit_scale(&x);
                let mut r = Routing::default();
                router.route(&x, &mut r);
                let e: Vec<f64> = (0..n).map(|i| (i % 5) as f64 / 5.0).collect();
                let mut g = vec![0.0; router.w.len()];
                let loss = router.loss_and_grad(&r, &e, &mut g);
                (router.scale.clone(), r.routed.clone(), g, loss)
            })
        };
        let (scale, routed, g, loss) = run(1);
        assert_eq!((scale.clone(), routed, g, loss), run(3));
        let mut r = Routing::default();
        let router = Router {
            scale,
            ..Router::init(n_layers, d, 3)
        };
        router.route(&x, &mut r);
        for l in 0..n_layers {
            let ms: f64 = x
                .chunks_exact(n_layers * d)
                .map(|row| {
                    row[l * d..(l + 1) * d]
                        .iter()
                        .map(|&v| (v * router.scale[l]) as f64 * (v * router.scale[l]) as f64)
                        .sum::<f64>()
                })
                .sum::<f64>()
                / n as f64;
            assert!((ms - d as f64).abs() < 1e-3 * d as f64, "layer {l}: {ms}");
        }
    }

    #[test]
    fn entropy_is_ln_l_for_uniform_and_zero_for_one_hot() {
        assert!((entropy(&[0.25; 4]) - 4f64.ln()).abs() < 1e-9);
        assert_eq!(entropy(&[1.0, 0.0, 0.0]), 0.0);
    }
}
