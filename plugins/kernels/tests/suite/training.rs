//! End-to-end training tests through the public API: feature recovery on synthetic data,
//! byte-identical determinism, and input validation.

use husai_kernels::adam::AdamConfig;
use husai_kernels::synth::{SynthConfig, SynthData, generate, recovery};
use husai_kernels::{AuxKConfig, TrainConfig, TrainOutcome, train};

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

fn run(cfg: &TrainConfig, x: &[f32], d_in: usize) -> TrainOutcome {
    train(cfg, x, d_in, &mut |_, _, _| {}).unwrap()
}

fn weight_bytes(out: &TrainOutcome) -> Vec<u8> {
    let p = out.model.to_parts();
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
    let cfg = TrainConfig {
        batch: 1024,
        steps: 300,
        seed: 0,
        threads: 2,
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
        ..TrainConfig::new(1024, 8)
    };
    let out = run(&cfg, &data.x, 128);
    let rec = recovery(&data.dictionary, out.model.w_dec(), 128, 0.9).unwrap();
    assert!(
        rec.recovered_fraction >= 0.9,
        "recovered {:.3} of the true features at cosine > 0.9",
        rec.recovered_fraction
    );
    assert!(
        out.metrics.reconstruction.fvu < 0.1,
        "fvu {}",
        out.metrics.reconstruction.fvu
    );
    assert!(
        out.metrics.l0 > 7.9 && out.metrics.l0 <= 8.0,
        "l0 {}",
        out.metrics.l0
    );
    // The untrained model recovers almost nothing: the score measures learning, not luck.
    let init = husai_kernels::TopKSae::init(128, 1024, 8, 0).unwrap();
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
    let cfg = TrainConfig {
        batch: 256,
        steps: 40,
        seed: 7,
        threads: 2,
        // Dead after 2 idle steps so AuxK is active for most steps; b_dec from the geometric median
        // (a parallel reduction) so its determinism is covered too.
        aux_k: Some(AuxKConfig {
            k_aux: 16,
            coeff: 1.0 / 32.0,
        }),
        dead_window: 2,
        b_dec_init: husai_kernels::bdec::BDecInit::GeometricMedian,
        ..TrainConfig::new(512, 8)
    };
    let a = run(&cfg, &data.x, 128);
    let b = run(&cfg, &data.x, 128);
    assert!(
        a.loss_curve.iter().any(|l| l.aux_loss > 0.0),
        "AuxK never engaged"
    );
    assert_eq!(weight_bytes(&a), weight_bytes(&b));
    assert_eq!(a.loss_curve, b.loss_curve);
    let one = run(
        &TrainConfig {
            threads: 1,
            ..cfg.clone()
        },
        &data.x,
        128,
    );
    let three = run(
        &TrainConfig {
            threads: 3,
            ..cfg.clone()
        },
        &data.x,
        128,
    );
    assert_eq!(weight_bytes(&a), weight_bytes(&one));
    assert_eq!(weight_bytes(&a), weight_bytes(&three));
    let other = run(&TrainConfig { seed: 8, ..cfg }, &data.x, 128);
    assert_ne!(weight_bytes(&a), weight_bytes(&other));
}

#[test]
fn progress_reports_every_step_and_loss_falls() {
    let data = synth_512_in_128(2048);
    let cfg = TrainConfig {
        batch: 512,
        steps: 30,
        threads: 2,
        adam: AdamConfig {
            lr: 4e-3,
            ..Default::default()
        },
        ..TrainConfig::new(256, 8)
    };
    let mut seen = Vec::new();
    let out = train(&cfg, &data.x, 128, &mut |s, n, l| seen.push((s, n, l))).unwrap();
    assert_eq!(seen.len(), 30);
    assert_eq!((seen[0].0, seen[29].0, seen[29].1), (1, 30, 30));
    assert_eq!(seen[29].2, out.loss_curve[29].total());
    assert!(
        out.loss_curve[29].mse_loss < 0.8 * out.loss_curve[0].mse_loss,
        "{:?}",
        (out.loss_curve[0], out.loss_curve[29])
    );
    assert!(out.rows_per_s > 0.0 && out.wall_s > 0.0);
    assert_eq!(out.snapshot.steps_done, 30);
    assert_eq!(out.metrics.rows, 2048);
}

#[test]
fn bad_inputs_are_rejected_with_actionable_messages() {
    let cfg = TrainConfig {
        batch: 4,
        steps: 2,
        threads: 1,
        ..TrainConfig::new(8, 2)
    };
    let err = |cfg: &TrainConfig, x: &[f32], d: usize| {
        train(cfg, x, d, &mut |_, _, _| {}).unwrap_err().to_string()
    };
    assert_eq!(
        err(&cfg, &[0.0; 10], 3),
        "data: expected 9 f32 values ([3, 3] row-major) but got 10; pass a buffer of exactly that length"
    );
    assert_eq!(
        err(&cfg, &[0.0; 9], 3),
        "data has 3 rows but one batch needs 4; lower `batch` or supply more rows"
    );
    let mut x = vec![0.5f32; 15];
    x[7] = f32::INFINITY;
    assert_eq!(
        err(&cfg, &x, 3),
        "data: non-finite value inf at row 2, column 1; clean or drop that row before training"
    );
    assert_eq!(
        err(
            &TrainConfig {
                k: 9,
                ..cfg.clone()
            },
            &[0.0; 15],
            3
        ),
        "config field `k` = 9 is invalid: must be in 1..=8 (d_sae)"
    );
    assert_eq!(
        err(
            &TrainConfig {
                threads: 0,
                ..cfg.clone()
            },
            &[0.0; 15],
            3
        ),
        "config field `threads` = 0 is invalid: must be >= 1"
    );
    let aux = Some(AuxKConfig {
        k_aux: 2,
        coeff: -1.0,
    });
    assert_eq!(
        err(
            &TrainConfig {
                aux_k: aux,
                ..cfg.clone()
            },
            &[0.0; 15],
            3
        ),
        "config field `aux_k.coeff` = -1 is invalid: must be a finite number >= 0"
    );
    assert_eq!(
        err(&cfg, &[], 0),
        "config field `d_in` = 0 is invalid: must be >= 1"
    );
}

#[test]
fn config_round_trips_through_json_and_rejects_unknown_fields() {
    let cfg = TrainConfig {
        aux_k: Some(AuxKConfig {
            k_aux: 256,
            coeff: 0.03125,
        }),
        ..TrainConfig::new(4096, 32)
    };
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), cfg);
    let e = serde_json::from_str::<TrainConfig>(
        r#"{"d_sae":8,"k":2,"batch":4,"steps":1,"seed":0,"threads":1,"lr":0.1}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown field `lr`"), "{e}");
}

#[test]
fn auxk_term_is_minimised_by_its_gradients_on_a_fixed_dead_set() {
    use husai_kernels::adam::Adam;
    use husai_kernels::sae::{Grads, SaeAdamState, Workspace};
    // Half of the latents declared dead, one fixed batch, AuxK weighted 1 so its gradient is not
    // swamped on latents that also fire in the main top-k. Before training, the dead latents'
    // reconstruction e_hat is worse than predicting zero (||e_hat - e||^2 / ||e||^2 > 1); after
    // Adam steps on main + AuxK they explain a real part of the live latents' residual e.
    let data = synth_512_in_128(1024);
    let mut model = husai_kernels::TopKSae::init(128, 256, 4, 0).unwrap();
    let dead: Vec<bool> = (0..256).map(|j| j % 2 == 1).collect();
    let aux = husai_kernels::AuxArgs {
        dead: &dead,
        k_aux: 32,
        coeff: 1.0,
    };
    let mut adam = Adam::new(AdamConfig {
        lr: 2e-3,
        ..Default::default()
    })
    .unwrap();
    let (mut ws, mut grads, mut state) = (
        Workspace::default(),
        Grads::zeros(128, 256),
        SaeAdamState::zeros(128, 256),
    );
    let mut curve = Vec::new();
    for _ in 0..60 {
        let loss = model
            .loss_and_grads(&data.x, Some(aux), &mut ws, &mut grads)
            .unwrap();
        curve.push(loss);
        adam.begin_step();
        model.apply_adam(&adam, &grads, &mut state).unwrap();
    }
    // With coeff 1, aux_loss / mse_loss = ||e_hat - e||^2 / ||e||^2 summed over the batch.
    let unexplained = |l: &husai_kernels::BatchLoss| l.aux_loss / l.mse_loss;
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
fn a_run_continued_from_its_snapshot_is_bit_identical_to_one_run() {
    use husai_kernels::state::TrainerState;
    use husai_kernels::{TopKSae, Trainer, batch_start, checkpoint};
    let data = synth_512_in_128(4096);
    let cfg = TrainConfig {
        batch: 128,
        steps: 30,
        seed: 3,
        threads: 2,
        aux_k: Some(AuxKConfig {
            k_aux: 16,
            coeff: 1.0 / 32.0,
        }),
        dead_window: 2,
        ..TrainConfig::new(1024, 2)
    };
    let step_to = |t: &mut Trainer, n: u64| {
        while t.steps_done() < n {
            let i = batch_start(t.steps_done(), 128, 4096);
            t.step(&data.x[i * 128..(i + 128) * 128]).unwrap();
        }
    };
    let mut straight = Trainer::new(cfg.clone(), 128).unwrap();
    step_to(&mut straight, 30);

    // 20 steps, then through the files a run writes (checkpoint + trainer state), then 10 more.
    let mut first = Trainer::new(cfg.clone(), 128).unwrap();
    step_to(&mut first, 20);
    assert!(
        first.train_dead_fraction() > 0.0,
        "AuxK must be live across the cut"
    );
    let dir = tempfile::tempdir().unwrap();
    checkpoint::write(dir.path(), &first.model().to_parts()).unwrap();
    let state = TrainerState {
        family: "topk".into(),
        snapshot: first.snapshot(),
        cursor: batch_start(20, 128, 4096) as u64,
        rng_state: 0,
        config: "{}".into(),
        d_in: 128,
    };
    let bytes = state.to_bytes();
    let model = TopKSae::from_parts(checkpoint::read(dir.path()).unwrap()).unwrap();
    let back = TrainerState::from_bytes(dir.path(), &bytes, 128, 1024).unwrap();
    let mut resumed = Trainer::from_snapshot(cfg.clone(), model, back.snapshot).unwrap();
    step_to(&mut resumed, 30);
    assert_eq!(resumed.model(), straight.model());
    assert_eq!(resumed.snapshot(), straight.snapshot());
    assert_eq!(
        checkpoint::safetensors_bytes(&resumed.model().to_parts()).unwrap(),
        checkpoint::safetensors_bytes(&straight.model().to_parts()).unwrap()
    );

    // Without the optimiser state (a warm start) the continuation differs: the state matters.
    let model = TopKSae::from_parts(checkpoint::read(dir.path()).unwrap()).unwrap();
    let mut warm = Trainer::from_snapshot(
        cfg.clone(),
        model,
        husai_kernels::TrainerSnapshot {
            steps_done: 20,
            adam: husai_kernels::sae::SaeAdamState::zeros(128, 1024),
            steps_since_fired: vec![0; 1024],
        },
    )
    .unwrap();
    step_to(&mut warm, 30);
    assert_ne!(warm.model(), straight.model());

    // A snapshot of another shape is refused by name.
    let bigger = TrainConfig {
        d_sae: 2048,
        ..cfg.clone()
    };
    let model = TopKSae::from_parts(checkpoint::read(dir.path()).unwrap()).unwrap();
    let err = Trainer::from_snapshot(bigger, model, first.snapshot())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the resumed checkpoint has d_sae 1024 and k 2"),
        "{err}"
    );
}
