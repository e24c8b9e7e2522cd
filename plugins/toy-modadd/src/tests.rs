//! The toy model groks with no answer leak (issue #11: held-out accuracy ≥ 0.99 and a top-5 folded-frequency share of
//! 0.8–0.9 against about 0.10 at init, p = 113), the leaky parity setup only copies, and the outputs have the
//! documented names and shapes.

use super::*;
use husai_kernels::activations::{self, OpenOptions};
use model::{ToyModel, train};

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().build().unwrap()
}

#[test]
fn the_default_model_groks_and_its_embedding_becomes_fourier_sparse() {
    let cfg = ToyConfig::new(0);
    let t = train(&cfg, &pool(), &mut |_| true).unwrap();
    let last = t.curve.last().unwrap();
    assert!(last.test_acc >= 0.99, "held-out accuracy {}", last.test_acc);
    assert!(t.grok_step.is_some());
    let share = |e: &[f32]| {
        fourier::top_share(&fourier::folded_energy(e, cfg.p, cfg.d_model).unwrap(), 5).0
    };
    let (trained, init) = (share(&t.model.embed), share(&t.init_embed));
    assert!(
        (0.8..=0.9).contains(&trained),
        "trained top-5 share {trained}"
    );
    assert!((0.08..=0.13).contains(&init), "init top-5 share {init}");
}

#[test]
fn the_leaky_parity_setup_only_has_to_copy_the_answer() {
    // With c as an input the held-out pairs are solved long before the honest model gets anywhere.
    let small = |leaky| ToyConfig {
        p: 59,
        d_model: 64,
        width: 256,
        steps: 150,
        eval_every: 150,
        leaky_parity: leaky,
        ..ToyConfig::new(1)
    };
    let leaky = train(&small(true), &pool(), &mut |_| true).unwrap();
    let honest = train(&small(false), &pool(), &mut |_| true).unwrap();
    let (l, h) = (
        leaky.curve.last().unwrap().test_acc,
        honest.curve.last().unwrap().test_acc,
    );
    assert!(l >= 0.99, "leaky held-out accuracy {l}");
    assert!(h < 0.5, "honest held-out accuracy {h} at 150 steps");
}

#[test]
fn outputs_have_the_documented_names_and_shapes() {
    let cfg = ToyConfig {
        p: 7,
        d_model: 4,
        width: 6,
        steps: 3,
        eval_every: 1,
        ..ToyConfig::new(2)
    };
    let t = train(&cfg, &pool(), &mut |_| true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let summary = write_outputs(dir.path(), &cfg, &t).unwrap();
    assert_eq!(summary["train_pairs"], 15);
    assert_eq!(summary["steps_done"], 3);
    let open = |f: &str, tensor: Option<&str>| {
        activations::open(
            &dir.path().join(f),
            &OpenOptions {
                tensor: tensor.map(str::to_owned),
                min_rows: 1,
                expected_d_in: None,
                rows: None,
            },
        )
        .unwrap()
    };
    let embed = open(WEIGHTS, Some("embed"));
    assert_eq!(embed.info().shape(), [7, 4]);
    assert_eq!(embed.data(), &t.model.embed[..]);
    assert_eq!(open(WEIGHTS, Some("mlp.w_in")).info().shape(), [6, 4]);
    assert_eq!(open(WEIGHTS, Some("unembed")).info().shape(), [4, 7]);
    let resid = open(RESID_PRE, None);
    assert_eq!(resid.info().shape(), [49, 4]);
    // Row a·p + b is E[a] + E[b].
    let (a, b) = (3, 5);
    for j in 0..4 {
        let want = t.model.embed[a * 4 + j] + t.model.embed[b * 4 + j];
        assert_eq!(resid.data()[(a * 7 + b) * 4 + j], want);
    }
    let hidden = open(HIDDEN, None);
    assert_eq!(hidden.info().shape(), [49, 6]);
    // Row r of mlp_out.npy is W_out·hidden[r], the MLP's output for that pair.
    let out = open(MLP_OUT, None);
    assert_eq!(out.info().shape(), [49, 4]);
    let r = a * 7 + b;
    for i in 0..4 {
        let want: f32 = (0..6)
            .map(|j| t.model.w_out[i * 6 + j] * hidden.data()[r * 6 + j])
            .sum();
        assert!((out.data()[r * 4 + i] - want).abs() <= 1e-5 * (1.0 + want.abs()));
    }
    let record: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(RECORD)).unwrap()).unwrap();
    assert_eq!(record["curve"].as_array().unwrap().len(), 3);
}

#[test]
fn the_config_refuses_a_modulus_that_is_not_an_odd_prime_and_runaway_decay() {
    for p in [9, 2, 15] {
        let e = parse_config(&json!({"seed": 0, "p": p})).unwrap_err();
        assert!(e.message.contains("must be an odd prime"), "{e}");
    }
    let e = parse_config(&json!({"seed": 0, "lr": 0.5, "weight_decay": 2.0})).unwrap_err();
    assert!(e.message.contains("must be below 1"), "{e}");
    let e = parse_config(&json!({})).unwrap_err();
    assert!(e.message.contains("/seed is required"), "{e}");
    let (cfg, _) = parse_config(&json!({"seed": 4, "leaky_parity": true})).unwrap();
    assert!(cfg.leaky_parity && cfg.p == 113 && cfg.seed == 4);
    assert!(ToyModel::init(&cfg).answer_embed.len() == 113 * 128);
}

/// Training is a function of the config alone: the same seed gives bitwise the same weights and curve on 1 thread
/// and on 3 (the token-table step's row-parallel loops and reductions do not depend on the thread count).
#[test]
fn training_is_bitwise_reproducible_and_independent_of_the_thread_count() {
    let cfg = ToyConfig {
        p: 53,
        d_model: 32,
        width: 256,
        steps: 30,
        eval_every: 10,
        ..ToyConfig::new(4)
    };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        train(&cfg, &pool, &mut |_| true).unwrap()
    };
    let (one, three) = (run(1), run(3));
    assert_eq!(one.model, three.model);
    assert_eq!(one.curve, three.curve);
    assert_ne!(
        one.model.embed, one.init_embed,
        "training moved the embedding"
    );
}
