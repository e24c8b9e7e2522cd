//! The trained-vs-random computation on dictionaries with a known answer.

use husai_eval_trained_vs_random::{Config, SaeRun, evaluate, gaussian_dictionary, read_sae_run};
use husai_kernels::stats::BootstrapSpec;

fn run(i: usize, seed: u64, w_dec: Vec<f32>, d_sae: usize, d_in: usize) -> SaeRun {
    SaeRun {
        campaign: "saes".into(),
        run_id: format!("sae-{i}"),
        seed,
        d_sae,
        d_in,
        w_dec,
    }
}

fn cfg() -> Config {
    Config {
        bootstrap: BootstrapSpec {
            resamples: 2000,
            seed: 5,
        },
        ..Config::default()
    }
}

/// `n` "trained" dictionaries that share one underlying dictionary plus seed-specific noise of scale `noise`.
fn reproducible(n: usize, noise: f32, d_sae: usize, d_in: usize) -> Vec<SaeRun> {
    let shared = gaussian_dictionary(77, 0, d_sae, d_in);
    (0..n)
        .map(|i| {
            let jitter = gaussian_dictionary(78, i as u64, d_sae, d_in);
            let w = shared
                .iter()
                .zip(&jitter)
                .map(|(a, b)| a + noise * b)
                .collect();
            run(i, 100 + i as u64, w, d_sae, d_in)
        })
        .collect()
}

#[test]
fn reproducible_dictionaries_are_above_random_with_a_seed_level_bound() {
    let runs = reproducible(8, 0.5, 64, 32);
    let s = evaluate(&runs, "sae-topk", &cfg()).unwrap();
    assert_eq!(s["schema"], "trained-vs-random.v1");
    assert_eq!(s["trained"]["n_seeds"], 8);
    assert_eq!(s["trained"]["n_pairs"], 28);
    assert_eq!(s["random"]["n_pairs"], 210);
    let low = s["difference"]["ci_low"].as_f64().unwrap();
    let est = s["difference"]["estimate"].as_f64().unwrap();
    assert!(low > 0.0 && low < est, "{low} {est}");
    assert!(s["chance_normalised_effect"].as_f64().unwrap() > 0.3);
    assert_eq!(s["conclusion"], "above_random");
    // 28 + 210 values: above the exact limit (120), so the normal approximation.
    assert_eq!(s["mann_whitney"]["method"], "asymptotic");
    assert!(s["mann_whitney"]["p_value"].as_f64().unwrap() < 1e-6);
    assert_eq!(s["sae_runs"][3]["run_id"], "sae-3");
}

#[test]
fn random_trained_dictionaries_are_not_above_random() {
    // "Trained" SAEs that learned nothing shared: independent Gaussian dictionaries.
    let runs: Vec<SaeRun> = (0..8)
        .map(|i| {
            run(
                i,
                i as u64,
                gaussian_dictionary(5000, i as u64, 64, 32),
                64,
                32,
            )
        })
        .collect();
    let s = evaluate(&runs, "sae-topk", &cfg()).unwrap();
    let low = s["difference"]["ci_low"].as_f64().unwrap();
    let high = s["difference"]["ci_high"].as_f64().unwrap();
    assert!(low < 0.0 && 0.0 < high, "[{low}, {high}] should cover 0");
    assert!(s["chance_normalised_effect"].as_f64().unwrap().abs() < 0.02);
    assert_eq!(s["conclusion"], "not_above_random");
}

#[test]
fn five_seeds_report_no_bound_and_bad_inputs_are_errors() {
    let s = evaluate(&reproducible(5, 0.5, 32, 16), "sae-topk", &cfg()).unwrap();
    assert!(s["difference"]["ci_low"].is_null());
    assert!(
        s["difference"]["reason"]
            .as_str()
            .unwrap()
            .contains("needs at least 8 value(s), got 5")
    );
    assert_eq!(s["conclusion"], "not_evaluated");
    let err = evaluate(&reproducible(4, 0.5, 32, 16), "sae-topk", &cfg()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "trained-vs-random needs at least 5 SAE seeds, got 4"
    );
    let mut runs = reproducible(6, 0.5, 32, 16);
    runs[2].seed = runs[1].seed;
    let err = evaluate(&runs, "sae-topk", &cfg()).unwrap_err();
    assert!(err.to_string().contains("appears twice"), "{err}");
    let mut runs = reproducible(6, 0.5, 32, 16);
    runs[5] = run(5, 999, vec![1.0; 16 * 16], 16, 16);
    let err = evaluate(&runs, "sae-topk", &cfg()).unwrap_err();
    assert!(
        err.to_string().contains("compare SAEs of one shape"),
        "{err}"
    );
    let err = evaluate(
        &reproducible(6, 0.5, 32, 16),
        "sae-topk",
        &Config {
            random_draws: 20,
            ..cfg()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("at least 21"), "{err}");
}

#[test]
fn reads_the_decoder_of_a_written_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // d_in 8, d_sae 16, k 2, seed 3.
    let sae = husai_kernels::TopKSae::init(8, 16, 2, 3).unwrap();
    husai_kernels::checkpoint::write(dir.path(), &sae.to_parts()).unwrap();
    let r = read_sae_run(dir.path(), "saes", "sae-0", 3).unwrap();
    assert_eq!((r.d_sae, r.d_in, r.w_dec.len()), (16, 8, 128));
}
