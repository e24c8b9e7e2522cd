//! End-to-end TopK training on the engine through the public API: feature recovery on synthetic data,
//! byte-identical determinism, the AuxK term, exact continuation through the files a run writes, and input
//! validation. (Ported from the pre-engine TopK trainer's tests; the engine reproduces that trainer's weights bit
//! for bit, see `golden`, so the figures these tests were tuned on still hold.)

use husai_kernels::adam::{Adam, AdamConfig, Moments};
use husai_kernels::bdec::BDecInit;
use husai_kernels::engine::{
    EngineConfig, FamilyTrainer, Grads, InitConfig, Sae, StepLoss, Workspace, loss_and_grads,
};
use husai_kernels::families::TopK;
use husai_kernels::state::FamilyTrainerState;
use husai_kernels::synth::{SynthConfig, SynthData, generate, recovery};
use husai_kernels::{AuxKConfig, batch_start, checkpoint};

/// 512 true features in superposition in 128 dimensions, exactly 4 active per row.
fn synth_512_in_128(rows: usize) -> SynthData {
    generate(&SynthConfig {
        rows,
        d_in: 128,
        n_features: 512,
        l0: 4,
        coef_min: 0.5,
        coef_max: 1.5,
        seed: 1,
    })
    .unwrap()
}

/// The engine config the old TopK trainer ran with (unit decoder rows, `W_enc = W_decᵀ`, no clipping), 2 threads.
fn engine(d_sae: usize, batch: usize, seed: u64) -> EngineConfig {
    EngineConfig {
        batch,
        seed,
        threads: 2,
        init: InitConfig {
            dec_norm: 1.0,
            enc_scale: 1.0,
        },
        grad_clip: None,
        ..EngineConfig::new(d_sae)
    }
}

/// `steps` steps of the reference schedule ([`batch_start`]) over `x`, b_dec set by the config first; returns
/// the trainer and the loss of every step.
fn train(
    cfg: &EngineConfig,
    k: usize,
    x: &[f32],
    d_in: usize,
    steps: u64,
) -> (FamilyTrainer<TopK>, Vec<StepLoss>) {
    let mut t = FamilyTrainer::new(cfg.clone(), TopK::new(k, cfg.d_sae), d_in, false).unwrap();
    t.init_b_dec(x).unwrap();
    let curve = step_to(&mut t, x, d_in, steps);
    (t, curve)
}

fn step_to(t: &mut FamilyTrainer<TopK>, x: &[f32], d_in: usize, n: u64) -> Vec<StepLoss> {
    let (batch, rows) = (t.config().batch, x.len() / d_in);
    let mut curve = Vec::new();
    while t.steps_done() < n {
        let i = batch_start(t.steps_done(), batch, rows);
        curve.push(t.step(&x[i * d_in..(i + batch) * d_in]).unwrap());
    }
    curve
}

fn weight_bytes(t: &FamilyTrainer<TopK>) -> Vec<u8> {
    let p = t.model().to_parts();
    [p.w_enc, p.b_enc, p.w_dec, p.b_dec]
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

#[test]
fn recovers_90_percent_of_512_superposed_features() {
    let data = synth_512_in_128(32_768);
    // A 2x over-complete SAE with k = 2 * L0, AuxK on; 300 steps of 1024 rows (9+ epochs).
    let cfg = EngineConfig {
        adam: AdamConfig {
            lr: 4e-3,
            ..Default::default()
        },
        aux_k: Some(AuxKConfig {
            k_aux: 64,
            coeff: 1.0 / 32.0,
        }),
        // ~20,000 rows without firing (20 steps of 1024) counts as dead.
        dead_window: 20,
        ..engine(1024, 1024, 0)
    };
    let (t, _) = train(&cfg, 8, &data.x, 128, 300);
    let rec = recovery(&data.dictionary, t.model().w_dec(), 128, 0.9).unwrap();
    assert!(
        rec.recovered_fraction >= 0.9,
        "recovered {:.3} of the true features at cosine > 0.9",
        rec.recovered_fraction
    );
    // On the first 16384 rows (what the old trainer evaluated on).
    let m = t.evaluate(&data.x[..16_384 * 128]).unwrap();
    assert!(m.reconstruction.fvu < 0.1, "fvu {}", m.reconstruction.fvu);
    assert!(m.l0 > 7.9 && m.l0 <= 8.0, "l0 {}", m.l0);
    // The untrained model recovers almost nothing: the score measures learning, not luck.
    let init = Sae::init(&TopK::new(8, 1024), 128, 1024, 0, cfg.init).unwrap();
    assert!(
        recovery(&data.dictionary, init.w_dec(), 128, 0.9)
            .unwrap()
            .recovered_fraction
            < 0.05
    );
}

#[test]
fn same_seed_gives_byte_identical_weights_for_any_thread_count() {
    let data = synth_512_in_128(4096);
    let cfg = EngineConfig {
        // Dead after 2 idle steps so AuxK is active for most steps; b_dec from the geometric median
        // (a parallel reduction) so its determinism is covered too.
        aux_k: Some(AuxKConfig {
            k_aux: 16,
            coeff: 1.0 / 32.0,
        }),
        dead_window: 2,
        b_dec_init: BDecInit::GeometricMedian,
        ..engine(512, 256, 7)
    };
    let run = |cfg: &EngineConfig| train(cfg, 8, &data.x, 128, 40);
    let (a, a_curve) = run(&cfg);
    let (b, b_curve) = run(&cfg);
    assert!(
        a_curve.iter().any(|l| l.aux_loss > 0.0),
        "AuxK never engaged"
    );
    assert_eq!(weight_bytes(&a), weight_bytes(&b));
    assert_eq!(a_curve, b_curve);
    for threads in [1, 3] {
        let (t, _) = run(&EngineConfig {
            threads,
            ..cfg.clone()
        });
        assert_eq!(weight_bytes(&a), weight_bytes(&t), "{threads} threads");
    }
    let (other, _) = run(&EngineConfig { seed: 8, ..cfg });
    assert_ne!(weight_bytes(&a), weight_bytes(&other));
}

#[test]
fn the_loss_falls() {
    let data = synth_512_in_128(2048);
    let cfg = EngineConfig {
        adam: AdamConfig {
            lr: 4e-3,
            ..Default::default()
        },
        ..engine(256, 512, 0)
    };
    let (t, curve) = train(&cfg, 8, &data.x, 128, 30);
    assert_eq!((curve.len(), t.steps_done()), (30, 30));
    assert!(
        curve[29].mse_loss < 0.8 * curve[0].mse_loss,
        "{:?}",
        (&curve[0], &curve[29])
    );
    assert_eq!(t.evaluate(&data.x).unwrap().rows, 2048);
}

#[test]
fn bad_inputs_are_rejected_with_actionable_messages() {
    let cfg = engine(8, 4, 0);
    let step_err = |x: &[f32], d_in: usize| {
        let mut t = FamilyTrainer::new(cfg.clone(), TopK::new(2, 8), d_in, false).unwrap();
        t.step(x).unwrap_err().to_string()
    };
    assert_eq!(
        step_err(&[0.0; 10], 3),
        "batch: expected 9 f32 values ([3, 3] row-major) but got 10; pass a buffer of exactly that length"
    );
    // Non-finite rows are refused where banks are read (`activations::open`, tested there), not per step.
    let new_err = |cfg: EngineConfig, d_in: usize| {
        FamilyTrainer::new(cfg, TopK::new(2, 8), d_in, false)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        new_err(
            EngineConfig {
                threads: 0,
                ..cfg.clone()
            },
            3
        ),
        "config field `threads` = 0 is invalid: must be >= 1"
    );
    assert_eq!(
        new_err(
            EngineConfig {
                aux_k: Some(AuxKConfig {
                    k_aux: 2,
                    coeff: -1.0,
                }),
                ..cfg.clone()
            },
            3
        ),
        "config field `aux_k.coeff` = -1 is invalid: must be a finite number >= 0"
    );
    assert_eq!(
        new_err(cfg.clone(), 0),
        "config field `d_in` = 0 is invalid: must be >= 1"
    );
}

#[test]
fn config_round_trips_through_json_and_rejects_unknown_fields() {
    let cfg = EngineConfig {
        aux_k: Some(AuxKConfig {
            k_aux: 256,
            coeff: 0.03125,
        }),
        ..engine(4096, 4096, 0)
    };
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<EngineConfig>(&json).unwrap(), cfg);
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["lr"] = serde_json::json!(0.1);
    let e = serde_json::from_value::<EngineConfig>(v).unwrap_err();
    assert!(e.to_string().contains("unknown field `lr`"), "{e}");
}

#[test]
fn auxk_term_is_minimised_by_its_gradients_on_a_fixed_dead_set() {
    // Half of the latents declared dead, one fixed batch, AuxK weighted 1 so its gradient is not
    // swamped on latents that also fire in the main top-k. Before training, the dead latents'
    // reconstruction e_hat is worse than predicting zero (||e_hat - e||^2 / ||e||^2 > 1); after
    // Adam steps on main + AuxK they explain a real part of the live latents' residual e.
    let data = synth_512_in_128(1024);
    let f = TopK::new(4, 256);
    let mut model = Sae::init(&f, 128, 256, 0, engine(256, 1024, 0).init).unwrap();
    let dead: Vec<bool> = (0..256).map(|j| j % 2 == 1).collect();
    let aux = AuxKConfig {
        k_aux: 32,
        coeff: 1.0,
    };
    let mut adam = Adam::new(AdamConfig {
        lr: 2e-3,
        ..Default::default()
    })
    .unwrap();
    let mut ws = Workspace::default();
    let sizes = [256 * 128, 256, 256 * 128, 128];
    let mut grads = Grads {
        tensors: sizes.iter().map(|&n| vec![0.0; n]).collect(),
    };
    let mut moments: Vec<Moments> = sizes.iter().map(|&n| Moments::zeros(n)).collect();
    let mut curve = Vec::new();
    for step in 0..60 {
        let loss = loss_and_grads(
            &model,
            &f,
            step,
            &data.x,
            Some((&dead, aux)),
            &mut ws,
            &mut grads,
            None,
        )
        .unwrap();
        curve.push(loss);
        adam.begin_step();
        for ((p, g), m) in model
            .params_mut()
            .into_iter()
            .zip(&grads.tensors)
            .zip(&mut moments)
        {
            adam.update(p, g, m).unwrap();
        }
    }
    // With coeff 1, aux_loss / mse_loss = ||e_hat - e||^2 / ||e||^2 summed over the batch.
    let unexplained = |l: &StepLoss| l.aux_loss / l.mse_loss;
    let (first, last) = (unexplained(&curve[0]), unexplained(&curve[59]));
    assert!(
        first > 1.0,
        "untrained dead latents should not predict the residual: {first}"
    );
    assert!(
        last < 0.7,
        "AuxK left {last} of the residual unexplained (from {first})"
    );
    assert!(curve[59].mse_loss < curve[0].mse_loss);
}

#[test]
fn a_run_continued_from_its_files_is_bit_identical_to_one_run() {
    let data = synth_512_in_128(4096);
    let (d_in, d_sae) = (128, 1024);
    let cfg = EngineConfig {
        aux_k: Some(AuxKConfig {
            k_aux: 16,
            coeff: 1.0 / 32.0,
        }),
        dead_window: 2,
        ..engine(d_sae, 128, 3)
    };
    let f = || TopK::new(2, d_sae);
    let (straight, _) = train(&cfg, 2, &data.x, d_in, 30);

    // 20 steps, then through the files a run writes (checkpoint + trainer state), then 10 more.
    let (first, _) = train(&cfg, 2, &data.x, d_in, 20);
    assert!(
        first.train_dead_fraction() > 0.0,
        "AuxK must be live across the cut"
    );
    let dir = tempfile::tempdir().unwrap();
    checkpoint::write_family(dir.path(), &f(), &first.model().to_parts()).unwrap();
    let state = FamilyTrainerState {
        family: "topk".into(),
        snapshot: first.snapshot(),
        family_params: vec![],
        cursor: batch_start(20, 128, 4096) as u64,
        rng_state: 0,
        config: "{}".into(),
        d_in,
    };
    let bytes = state.to_bytes();
    let read_model = || {
        let parts = checkpoint::read_family_bytes(
            dir.path(),
            &f(),
            &std::fs::read(dir.path().join(checkpoint::CONFIG_FILE)).unwrap(),
            &std::fs::read(dir.path().join(checkpoint::WEIGHTS_FILE)).unwrap(),
        )
        .unwrap();
        Sae::from_parts(&f(), parts).unwrap()
    };
    let back = FamilyTrainerState::from_bytes(dir.path(), &bytes, d_in, d_sae, &[], &[]).unwrap();
    assert_eq!(back, state);
    let mut resumed =
        FamilyTrainer::from_snapshot(cfg.clone(), f(), read_model(), back.snapshot, false).unwrap();
    step_to(&mut resumed, &data.x, d_in, 30);
    assert_eq!(resumed.model(), straight.model());
    assert_eq!(resumed.snapshot(), straight.snapshot());

    // Without the optimiser state (a warm start) the continuation differs: the state matters.
    let mut cold = first.snapshot();
    for m in &mut cold.moments {
        *m = Moments::zeros(m.m.len());
    }
    cold.steps_since_fired = vec![0; d_sae];
    let mut warm =
        FamilyTrainer::from_snapshot(cfg.clone(), f(), read_model(), cold, false).unwrap();
    step_to(&mut warm, &data.x, d_in, 30);
    assert_ne!(warm.model(), straight.model());

    // A snapshot of another shape is refused by name.
    let bigger = EngineConfig {
        d_sae: 2048,
        ..cfg.clone()
    };
    let err = FamilyTrainer::from_snapshot(bigger, f(), read_model(), first.snapshot(), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the resumed checkpoint has d_sae 1024"),
        "{err}"
    );
}
