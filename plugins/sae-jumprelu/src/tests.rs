//! JumpReLU on the engine: whole-loss gradient checks, the threshold's pseudo-gradient against its closed form,
//! determinism, the thresholds moving, synthetic recovery.

use husai_kernels::adam::AdamConfig;
use husai_kernels::engine::{
    EngineConfig, FamilyTrainer, Grads, InitConfig, ModelParts, Sae, Workspace, loss_and_grads,
};
use husai_kernels::rng::SplitMix64;
use husai_kernels::synth::{SynthConfig, generate};
use husai_kernels::testing::assert_recovers;

use crate::family::{JumpRelu, ThresholdParam};
use crate::jump::Sparsity;

fn random(n: usize, lo: f32, hi: f32, rng: &mut SplitMix64) -> Vec<f32> {
    (0..n).map(|_| lo + (hi - lo) * rng.uniform_f32()).collect()
}

const D_IN: usize = 4;
const D_SAE: usize = 6;
const ROWS: usize = 5;

fn tiny_parts() -> ModelParts {
    tiny_parts_for(ThresholdParam::Log)
}

/// The tiny case with θ in (0.1, 0.5) stored as `param` trains it.
fn tiny_parts_for(param: ThresholdParam) -> ModelParts {
    let mut rng = SplitMix64::new(21);
    ModelParts {
        d_in: D_IN,
        d_sae: D_SAE,
        w_enc: random(D_IN * D_SAE, -0.8, 0.8, &mut rng),
        b_enc: random(D_SAE, -0.3, 0.3, &mut rng),
        w_dec: random(D_SAE * D_IN, -0.8, 0.8, &mut rng),
        b_dec: random(D_IN, -0.2, 0.2, &mut rng),
        family: vec![(
            param.param_name().into(),
            random(D_SAE, 0.1f32.ln(), 0.5f32.ln(), &mut rng)
                .into_iter()
                .map(|t| match param {
                    ThresholdParam::Log => t,
                    ThresholdParam::Direct => t.exp(),
                })
                .collect(),
        )],
    }
}

fn tiny_x() -> Vec<f32> {
    random(ROWS * D_IN, -1.0, 1.0, &mut SplitMix64::new(22))
}

fn family(sparsity: Sparsity) -> JumpRelu {
    JumpRelu {
        sparsity,
        bandwidth: 0.3,
        init_threshold: 0.2,
        param: ThresholdParam::Log,
        lambda: 0.3,
        warmup_steps: 0,
        controller: None,
    }
}

/// The loss, its gradients, and the code's (latent, value) pairs (which latents fire and which are slots).
fn loss_and_grad(f: &JumpRelu, parts: &ModelParts, x: &[f32]) -> (f64, Grads, Vec<(u32, bool)>) {
    let model = Sae::from_parts(f, parts.clone()).unwrap();
    let mut ws = Workspace::default();
    let mut grads = Grads {
        tensors: vec![
            vec![0.0; parts.w_enc.len()],
            vec![0.0; D_SAE],
            vec![0.0; parts.w_dec.len()],
            vec![0.0; D_IN],
            vec![0.0; D_SAE],
        ],
    };
    let loss = loss_and_grads(&model, f, 0, x, None, &mut ws, &mut grads, None).unwrap();
    let c = ws.code();
    let pattern = c
        .idx
        .iter()
        .zip(&c.val)
        .map(|(&j, &v)| (j, v != 0.0))
        .collect();
    (loss.total(), grads, pattern)
}

/// Central differences of the whole loss (MSE + penalty) against the analytic gradient of `W_enc`, `b_enc`,
/// `W_dec`, `b_dec`. The loss is piecewise smooth in those (it jumps where a pre-activation crosses θ), so
/// coordinates whose ±h perturbation changes the code's pattern are skipped; at least 80 % are checked.
#[test]
fn the_whole_loss_gradient_matches_finite_differences() {
    for sparsity in [Sparsity::Step, Sparsity::Tanh { scale: 4.0 }] {
        let f = family(sparsity);
        let (parts, x) = (tiny_parts(), tiny_x());
        let (_, g, pattern) = loss_and_grad(&f, &parts, &x);
        assert!(
            pattern.iter().any(|p| p.1) && pattern.iter().any(|p| !p.1),
            "{pattern:?}"
        );
        let h = 1e-3f32;
        let (mut checked, mut total) = (0, 0);
        for tensor in 0..4 {
            let len = [parts.w_enc.len(), D_SAE, parts.w_dec.len(), D_IN][tensor];
            for e in 0..len {
                total += 1;
                let at = |delta: f32| {
                    let mut p = parts.clone();
                    let v = match tensor {
                        0 => &mut p.w_enc,
                        1 => &mut p.b_enc,
                        2 => &mut p.w_dec,
                        _ => &mut p.b_dec,
                    };
                    v[e] += delta;
                    loss_and_grad(&f, &p, &x)
                };
                let ((up, _, p_up), (dn, _, p_dn)) = (at(h), at(-h));
                if p_up != pattern || p_dn != pattern {
                    continue;
                }
                checked += 1;
                let fd = (up - dn) / (2.0 * f64::from(h));
                let analytic = match tensor {
                    0 => g.tensors[0][(e % D_SAE) * D_IN + e / D_SAE],
                    t => g.tensors[t][e],
                };
                assert!(
                    (fd - f64::from(analytic)).abs() < 2e-3 + 2e-3 * fd.abs(),
                    "{sparsity:?} tensor {tensor} entry {e}: finite difference {fd}, analytic {analytic}"
                );
            }
        }
        assert!(
            checked * 10 >= total * 8,
            "{sparsity:?}: only {checked} of {total} checked"
        );
    }
}

/// The engine's gradient of the threshold parameter against the closed form of the straight-through estimator
/// (eqs. 11-12 of Rajamanoharan et al. 2024), recomputed here in f64 from the parameters:
/// `∂L/∂θ_j = Σ_rows K((h - θ_j)/ε) · [(-θ_j/ε) · ∂L/∂z_j - (λ/B)(1/ε)·1{step}]`, where `∂L/∂z_j` is
/// `(2/B)⟨x̂ - x, W_dec,j⟩` plus, for tanh, `(λ/B) c ‖W_dec,j‖ sech²(c z_j ‖W_dec,j‖)`; for `t = log θ` the chain
/// rule through θ = e^t multiplies it by θ_j.
#[test]
fn the_threshold_gradient_is_the_closed_form_straight_through_estimate() {
    for (param, sparsity) in [ThresholdParam::Log, ThresholdParam::Direct]
        .into_iter()
        .flat_map(|p| [(p, Sparsity::Step), (p, Sparsity::Tanh { scale: 4.0 })])
    {
        let f = JumpRelu {
            param,
            ..family(sparsity)
        };
        let (p, x) = (tiny_parts_for(param), tiny_x());
        let (_, g, _) = loss_and_grad(&f, &p, &x);
        let theta: Vec<f64> = param
            .thresholds(&p.family[0].1)
            .iter()
            .map(|&t| f64::from(t))
            .collect();
        let (eps, lambda, b) = (f64::from(f.bandwidth), f.lambda, ROWS as f64);
        let norm: Vec<f64> = (0..D_SAE)
            .map(|j| {
                (0..D_IN)
                    .map(|i| f64::from(p.w_dec[j * D_IN + i]).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .collect();
        let mut want = [0f64; D_SAE];
        let mut in_band = 0;
        for r in 0..ROWS {
            let xc: Vec<f64> = (0..D_IN)
                .map(|i| f64::from(x[r * D_IN + i] - p.b_dec[i]))
                .collect();
            let h: Vec<f64> = (0..D_SAE)
                .map(|j| {
                    f64::from(p.b_enc[j])
                        + (0..D_IN)
                            .map(|i| xc[i] * f64::from(p.w_enc[i * D_SAE + j]))
                            .sum::<f64>()
                })
                .collect();
            let z: Vec<f64> = (0..D_SAE)
                .map(|j| if h[j] > theta[j] { h[j] } else { 0.0 })
                .collect();
            let e: Vec<f64> = (0..D_IN)
                .map(|i| {
                    f64::from(p.b_dec[i]) - f64::from(x[r * D_IN + i])
                        + (0..D_SAE)
                            .map(|j| z[j] * f64::from(p.w_dec[j * D_IN + i]))
                            .sum::<f64>()
                })
                .collect();
            for j in 0..D_SAE {
                if (h[j] - theta[j]).abs() >= eps / 2.0 {
                    continue;
                }
                in_band += 1;
                let mut g_z = 2.0 / b
                    * (0..D_IN)
                        .map(|i| e[i] * f64::from(p.w_dec[j * D_IN + i]))
                        .sum::<f64>();
                let mut direct = 0.0;
                match sparsity {
                    Sparsity::Step => direct = -(lambda / b) / eps,
                    Sparsity::Tanh { scale } => {
                        let u = (scale * z[j] * norm[j]).tanh();
                        g_z += lambda / b * scale * norm[j] * (1.0 - u * u);
                    }
                }
                let chain = match param {
                    ThresholdParam::Log => theta[j],
                    ThresholdParam::Direct => 1.0,
                };
                want[j] += chain * (g_z * (-theta[j] / eps) + direct);
            }
        }
        assert!(
            in_band >= 3,
            "the tiny case must exercise the kernel ({in_band} entries in the band)"
        );
        for (j, (&got, &w)) in g.tensors[4].iter().zip(&want).enumerate() {
            let got = f64::from(got);
            assert!(
                (got - w).abs() < 1e-4 * w.abs().max(1.0),
                "{param:?} {sparsity:?} latent {j}: engine {got}, closed form {w}"
            );
        }
        assert!(want.iter().any(|&w| w != 0.0));
    }
}

fn engine(d_sae: usize, batch: usize, seed: u64, threads: usize, lr: f32) -> EngineConfig {
    engine_with_norm(d_sae, batch, seed, threads, lr, 0.1)
}

fn engine_with_norm(
    d_sae: usize,
    batch: usize,
    seed: u64,
    threads: usize,
    lr: f32,
    dec_norm: f32,
) -> EngineConfig {
    EngineConfig {
        batch,
        seed,
        threads,
        adam: AdamConfig {
            lr,
            ..AdamConfig::default()
        },
        init: InitConfig {
            dec_norm,
            enc_scale: 1.0,
        },
        ..EngineConfig::new(d_sae)
    }
}

fn train(
    cfg: EngineConfig,
    f: JumpRelu,
    x: &[f32],
    d_in: usize,
    steps: usize,
) -> FamilyTrainer<JumpRelu> {
    let mut t = FamilyTrainer::new(cfg.clone(), f, d_in, false).unwrap();
    let rows = x.len() / d_in;
    for s in 0..steps {
        let start = husai_kernels::batch_start(s as u64, cfg.batch, rows);
        t.step(&x[start * d_in..(start + cfg.batch) * d_in])
            .unwrap();
    }
    t
}

fn weight_bytes(t: &FamilyTrainer<JumpRelu>) -> Vec<u8> {
    let p = t.model().to_parts();
    [p.w_enc, p.b_enc, p.w_dec, p.b_dec, p.family[0].1.clone()]
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

fn small_data() -> Vec<f32> {
    generate(&SynthConfig {
        rows: 2048,
        d_in: 32,
        n_features: 96,
        l0: 3,
        coef_min: 0.5,
        coef_max: 1.5,
        seed: 4,
    })
    .unwrap()
    .x
}

/// For both threshold parameterisations and both penalties (the slot-wise hooks sum fixed chunks in a fixed order).
#[test]
fn the_same_seed_gives_byte_identical_weights_for_any_thread_count() {
    let x = small_data();
    for param in [ThresholdParam::Direct, ThresholdParam::Log] {
        for sparsity in [Sparsity::Step, Sparsity::Tanh { scale: 4.0 }] {
            let f = JumpRelu {
                lambda: 0.01,
                init_threshold: 0.01,
                bandwidth: 0.05,
                param,
                ..family(sparsity)
            };
            let a = train(engine(128, 256, 9, 1, 1e-3), f, &x, 32, 20);
            let b = train(engine(128, 256, 9, 3, 1e-3), f, &x, 32, 20);
            let c = train(engine(128, 256, 10, 2, 1e-3), f, &x, 32, 20);
            assert!(
                a.last_code().slots() > 8192,
                "more than one slot chunk per step"
            );
            assert_eq!(weight_bytes(&a), weight_bytes(&b), "{param:?} {sparsity:?}");
            assert_ne!(
                weight_bytes(&a),
                weight_bytes(&c),
                "another seed, other weights"
            );
        }
    }
}

/// The thresholds receive a gradient and move away from their initial value (upstream HUSAI's JumpReLU never
/// moved them), and the L0 penalty pulls the L0 down.
#[test]
fn the_thresholds_move_during_training() {
    let x = small_data();
    for sparsity in [Sparsity::Step, Sparsity::Tanh { scale: 4.0 }] {
        let f = JumpRelu {
            lambda: 0.05,
            init_threshold: 0.01,
            bandwidth: 0.05,
            ..family(sparsity)
        };
        let t = train(engine(128, 256, 3, 2, 1e-3), f, &x, 32, 60);
        let theta = ThresholdParam::Log.thresholds(&t.model().family_params()[0]);
        let moved = theta.iter().filter(|&&v| (v - 0.01).abs() > 1e-4).count();
        let max = theta.iter().cloned().fold(0f32, f32::max);
        assert!(
            moved * 2 > theta.len(),
            "{sparsity:?}: only {moved} of {} thresholds moved",
            theta.len()
        );
        assert!(max > 0.0105, "{sparsity:?}: the largest threshold is {max}");
    }
}

/// Synthetic recovery: 512 features in superposition in 128 dimensions, 4 active per row (the TopK test's data).
/// Config that achieves it: d_sae 1024, batch 1024, 300 steps, Adam lr 4e-3, the tanh penalty (c = 4) with λ =
/// RECOVERY_L0, ε 0.05, θ initialised at 0.01, decoder rows at norm 0.1, seed 0, for both threshold
/// parameterisations (measured: all 512 recovered either way; FVU 0.050, L0 3.65 on the first 8192 rows with θ
/// trained directly, FVU 0.060, L0 5.52 as log θ). With the step penalty and log θ the thresholds climb too slowly
/// at Adam's bounded pace (≤ lr per step in log θ): at θ₀ 0.01 the L0 stayed near 590; at θ₀ 0.2 (decoder norm 1,
/// ε 0.1, λ 0.1) it reached L0 8.3 but recovered only 59 %.
#[test]
fn recovers_90_percent_of_512_superposed_features() {
    let data = generate(&SynthConfig {
        rows: 32_768,
        d_in: 128,
        n_features: 512,
        l0: 4,
        coef_min: 0.5,
        coef_max: 1.5,
        seed: 1,
    })
    .unwrap();
    for param in [ThresholdParam::Direct, ThresholdParam::Log] {
        let f = JumpRelu {
            lambda: RECOVERY_L0,
            init_threshold: 0.01,
            bandwidth: 0.05,
            param,
            ..family(Sparsity::Tanh { scale: 4.0 })
        };
        let t = train(engine(1024, 1024, 0, 2, 4e-3), f, &data.x, 128, 300);
        assert_recovers(&t, &data, 128, &format!("jumprelu ({param:?})"));
    }
}

/// λ of the recovery test.
const RECOVERY_L0: f64 = 0.1;

/// The MiniLM bank's rows (float32 `.npy`, version 1 header), read whole.
fn minilm() -> (Vec<f32>, usize) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/minilm_l3_resid_dev.npy"
    );
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(
        header.contains("'<f4'") && header.contains("(32768, 384)"),
        "{header}"
    );
    let x = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (x, 384)
}

/// Target-L0 mode on the MiniLM bank reaches held-out L0 32 within ±10 %: d_sae 1536, batch 1024, 300 steps, lr
/// 1e-3, seed 7, trained on rows 0..29491 (the plugins' default split), L0 on rows 29491..32768, the plugin's
/// defaults (controller gain 0.05, starting λ 1, gradient clip 1, θ trained directly) with the tanh penalty.
/// Measured: held-out L0 32.11, FVU 0.172 (seed 7; with θ = exp(t) it was 32.44 and 0.186); about 5 s in release
/// on 2 cores.
///
/// With the default `step` penalty the target is out of reach in 300 steps at lr 1e-3: the step's L0 term reaches
/// only θ, which Adam moves by at most about lr per step (direct θ, the default) or by a factor of about e^lr per
/// step (`threshold_param = "log"`, at most e^0.3 ≈ 1.35 from its 0.01 start), while L0 32 with the step alone
/// needs the pre-activations' scale. Measured: L0 1176 (log θ, λ at the controller's ceiling); 1248 and 1345 with a
/// direct θ at fixed λ 0.2 and 0.05. The tanh penalty also reaches the pre-activations and the decoder.
#[test]
fn target_l0_32_is_reached_on_held_out_minilm_rows_with_the_tanh_penalty() {
    let (x, d_in) = minilm();
    let cut = 29_491;
    let cfg = crate::config::JumpConfig::from_json(&serde_json::json!({
        "d_sae": 1536, "seed": 7, "steps": 300, "batch": 1024, "target_l0": 32, "sparsity": "tanh"
    }))
    .unwrap();
    let mut e = cfg.engine_config();
    e.threads = 2;
    let t = train(e, cfg.family(), &x[..cut * d_in], d_in, 300);
    let m = t.evaluate(&x[cut * d_in..]).unwrap();
    eprintln!(
        "jumprelu target-L0 32 (tanh) on MiniLM: held-out l0 {:.2}, fvu {:.4}",
        m.l0, m.reconstruction.fvu
    );
    assert!((m.l0 - 32.0).abs() <= 3.2, "held-out L0 {}", m.l0);
    assert!(m.reconstruction.fvu < 0.3, "fvu {}", m.reconstruction.fvu);
}
