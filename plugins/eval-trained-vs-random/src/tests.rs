//! The evaluation on dictionaries with a known answer, its settings and inputs (the interval's coverage is simulated in stats/tests/suite/coverage.rs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use husai_kernels::rng::SplitMix64 as Rng;
use husai_kernels::stats::BootstrapSpec;
use husai_plugin_api::{ErrorKind, Plugin, Progress, RunRequest};
use serde_json::{Value, json};

use super::*;

fn run(i: usize, seed: u64, w_dec: Vec<f32>, d_sae: usize, d_in: usize) -> SaeRun {
    SaeRun {
        campaign: "saes".into(),
        run_id: format!("sae-{i}"),
        seed,
        family: "sae-topk".into(),
        configuration: json!({"d_sae": d_sae, "k": 4, "steps": 100}),
        d_sae,
        d_in,
        w_dec,
    }
}

fn quick() -> Settings {
    Settings {
        bootstrap: BootstrapSpec {
            resamples: 2000,
            seed: 5,
        },
        ..Settings::default()
    }
}

fn eval(runs: &[SaeRun], s: &Settings) -> Result<Value, EvalError> {
    evaluate(runs, s, &mut |_, _| {})
}

/// `n` runs whose decoders are the trainers' initial decoders of seeds 500, 501, ...: SAEs that learned nothing
/// shared, drawn from the random null's own law.
fn untrained(n: usize, d_sae: usize, d_in: usize) -> Vec<SaeRun> {
    (0..n)
        .map(|i| {
            let seed = 500 + i as u64;
            run(i, seed, null::init_decoder(d_in, d_sae, seed), d_sae, d_in)
        })
        .collect()
}

/// `n` runs sharing one dictionary plus seed-specific Gaussian noise of scale `noise` (relative to the rows' unit
/// norm, per coordinate 1/√d_in).
fn reproducible(n: usize, noise: f32, d_sae: usize, d_in: usize) -> Vec<SaeRun> {
    let shared = null::init_decoder(d_in, d_sae, 77);
    let scale = noise / (d_in as f32).sqrt();
    (0..n)
        .map(|i| {
            let mut r = Rng::stream(78, i as u64);
            let w = shared
                .iter()
                .map(|a| a + scale * r.normal() as f32)
                .collect();
            run(i, 100 + i as u64, w, d_sae, d_in)
        })
        .collect()
}

#[test]
fn the_random_decoders_are_the_trainers_initial_decoders_bit_for_bit() {
    use husai_kernels::engine::{InitConfig, Sae};
    use husai_kernels::families::TopK;
    for (d_in, d_sae, seed) in [(8, 16, 3), (16, 32, 12345)] {
        let family = TopK::new(2, d_sae);
        let unit = Sae::init(&family, d_in, d_sae, seed, InitConfig::default()).unwrap();
        assert_eq!(null::init_decoder(d_in, d_sae, seed), unit.w_dec());
        // The trainers' other row norm (SAELens's 0.1) gives the same directions: the same PWMCC.
        let small = InitConfig {
            dec_norm: 0.1,
            ..InitConfig::default()
        };
        let scaled = Sae::init(&family, d_in, d_sae, seed, small).unwrap();
        let a = null::init_decoder(d_in, d_sae, seed);
        let pw = stats::pwmcc(
            &Dictionary::new(&a, d_sae, d_in).unwrap(),
            &Dictionary::new(scaled.w_dec(), d_sae, d_in).unwrap(),
        )
        .unwrap();
        assert!((pw - 1.0).abs() < 1e-6, "{pw}");
    }
}

#[test]
fn random_draws_are_compared_in_disjoint_pairs() {
    let mut calls = 0;
    let v = null::random_pairs(16, 8, 200, 9, &mut |_| calls += 1).unwrap();
    assert_eq!((v.len(), calls), (100, 100));
    assert!(v.iter().all(|&x| x > 0.0 && x < 1.0), "{v:?}");
    // Deterministic, and pair 0 is draws 0 and 1 of the seed.
    assert_eq!(v, null::random_pairs(16, 8, 200, 9, &mut |_| {}).unwrap());
    let a = null::init_decoder(8, 16, null::draw_seed(9, 0));
    let b = null::init_decoder(8, 16, null::draw_seed(9, 1));
    let (da, db) = (
        Dictionary::new(&a, 16, 8).unwrap(),
        Dictionary::new(&b, 16, 8).unwrap(),
    );
    assert_eq!(v[0], stats::pwmcc(&da, &db).unwrap());
}

#[test]
fn five_identical_seeds_are_far_above_random_but_have_no_bound() {
    let w = null::init_decoder(16, 32, 1);
    let runs: Vec<SaeRun> = (0..5)
        .map(|i| run(i, i as u64, w.clone(), 32, 16))
        .collect();
    let s = eval(&runs, &quick()).unwrap();
    // 1 up to the f32 rounding of unit rows' cosines.
    let trained = s["trained"]["mean"].as_f64().unwrap();
    assert!((trained - 1.0).abs() < 1e-6, "{trained}");
    let est = s["difference"]["estimate"].as_f64().unwrap();
    let random = s["random"]["mean"].as_f64().unwrap();
    assert!(
        est > 0.3 && (est - (trained - random)).abs() < 1e-12,
        "{est}"
    );
    assert!((s["chance_normalised_effect"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    // 5 seeds: the seed-level bound needs 8, so it is null with the reason, and nothing is concluded.
    assert!(s["difference"]["ci_low"].is_null());
    let reason = s["difference"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("needs at least 8 value(s), got 5"),
        "{reason}"
    );
    assert_eq!(s["conclusion"], "not_evaluated");
    assert_eq!(s["random"]["n_draws"], 200);
    assert_eq!(s["random"]["n_pairs"], 100);
    assert_eq!(s["random"]["init"], "kaiming_uniform");
    assert_eq!(s["random"]["pairing"], "disjoint");
}

#[test]
fn eight_identical_seeds_have_a_lower_bound_well_above_zero() {
    let w = null::init_decoder(16, 32, 1);
    let runs: Vec<SaeRun> = (0..8)
        .map(|i| run(i, i as u64, w.clone(), 32, 16))
        .collect();
    let s = eval(&runs, &quick()).unwrap();
    let low = s["difference"]["ci_low"].as_f64().unwrap();
    assert!(low > 0.3, "{}", s["difference"]);
    assert_eq!(s["conclusion"], "above_random");
}

#[test]
fn reproducible_dictionaries_are_above_random_with_a_seed_level_bound() {
    let runs = reproducible(8, 0.5, 64, 32);
    let s = eval(&runs, &quick()).unwrap();
    assert_eq!(s["schema"], "trained-vs-random.v1");
    assert_eq!(s["trained"]["n_seeds"], 8);
    assert_eq!(s["trained"]["n_pairs"], 28);
    let low = s["difference"]["ci_low"].as_f64().unwrap();
    let est = s["difference"]["estimate"].as_f64().unwrap();
    assert!(low > 0.0 && low < est, "{low} {est}");
    assert!(s["chance_normalised_effect"].as_f64().unwrap() > 0.3);
    assert_eq!(s["conclusion"], "above_random");
    // 28 + 100 values: above the exact limit, so the normal approximation.
    assert_eq!(s["mann_whitney"]["method"], "asymptotic");
    assert!(s["mann_whitney"]["p_value"].as_f64().unwrap() < 1e-6);
    // The covered runs, in the form the strict gate's `covered_runs` reads, with family and configuration.
    let r3 = &s["sae_runs"][3];
    assert_eq!(
        (&r3["campaign"], &r3["run_id"]),
        (&json!("saes"), &json!("sae-3"))
    );
    assert_eq!(r3["family"], "sae-topk");
    assert_eq!(
        r3["configuration"],
        json!({"d_sae": 64, "k": 4, "steps": 100})
    );
    assert_eq!(s["family"], "sae-topk");
}

#[test]
fn saes_of_the_null_law_are_not_above_random() {
    let s = eval(&untrained(8, 64, 32), &quick()).unwrap();
    let low = s["difference"]["ci_low"].as_f64().unwrap();
    let high = s["difference"]["ci_high"].as_f64().unwrap();
    assert!(low < 0.0 && 0.0 < high, "[{low}, {high}] should cover 0");
    assert!(s["chance_normalised_effect"].as_f64().unwrap().abs() < 0.02);
    assert_eq!(s["conclusion"], "not_above_random");
}

#[test]
fn bad_inputs_are_errors_that_say_what_differs() {
    let err = |runs: &[SaeRun]| eval(runs, &quick()).unwrap_err().to_string();
    assert_eq!(
        err(&reproducible(4, 0.5, 32, 16)),
        "trained-vs-random needs at least 5 SAE runs (seeds), got 4; give one --input sae=RUN per seed"
    );
    let mut runs = reproducible(6, 0.5, 32, 16);
    runs[2].seed = runs[1].seed;
    assert!(
        err(&runs).contains("seed 101 appears twice"),
        "{}",
        err(&runs)
    );
    let mut runs = reproducible(6, 0.5, 32, 16);
    runs[4].family = "sae-batchtopk".into();
    assert_eq!(
        err(&runs),
        "SAE run saes/sae-4 is family sae-batchtopk but run saes/sae-0 is family sae-topk; compare seeds of one \
         family and configuration"
    );
    let mut runs = reproducible(6, 0.5, 32, 16);
    runs[3].configuration["k"] = json!(8);
    let e = err(&runs);
    assert!(
        e.contains("saes/sae-3 and run saes/sae-0 are configurations that differ in more than the seed (k: 8 vs 4)"),
        "{e}"
    );
    let mut runs = reproducible(6, 0.5, 32, 16);
    runs[5] = run(5, 999, vec![1.0; 16 * 16], 16, 16);
    runs[5].configuration = runs[0].configuration.clone();
    let e = err(&runs);
    assert!(
        e.contains("saes/sae-5 is 16x16 but run saes/sae-0 is 32x16"),
        "{e}"
    );
}

#[test]
fn settings_default_to_200_draws_and_name_a_bad_key() {
    assert_eq!(
        Settings::from_config(&json!({})).unwrap(),
        Settings::default()
    );
    assert_eq!(Settings::default().random_draws, 200);
    let s = Settings::from_config(
        &json!({"random_draws": 400, "random_seed": 3, "bootstrap": 500,
                                           "bootstrap_seed": 9, "confidence": 0.9}),
    )
    .unwrap();
    assert_eq!(
        s,
        Settings {
            random_draws: 400,
            random_seed: 3,
            bootstrap: BootstrapSpec {
                resamples: 500,
                seed: 9
            },
            confidence: 0.9
        }
    );
    let err = |c: Value| {
        let e = Settings::from_config(&c).unwrap_err();
        assert!(matches!(e, EvalError::Config(_)), "{e:?}");
        PluginError::from(e)
    };
    let e = err(json!({"draws": 300}));
    assert_eq!(e.kind, ErrorKind::InvalidConfig);
    assert_eq!(
        e.message,
        "unknown config key \"draws\"; trained-vs-random reads random_draws, random_seed, bootstrap, \
         bootstrap_seed, confidence"
    );
    assert_eq!(
        err(json!({"random_draws": 21})).message,
        "config key \"random_draws\" is 21: the random null needs at least 200 draws"
    );
    assert!(
        err(json!({"random_draws": 201}))
            .message
            .contains("\"random_draws\" is 201: it must be even"),
    );
    assert!(
        err(json!({"random_draws": "many"}))
            .message
            .contains("\"random_draws\" must be an integer")
    );
    assert_eq!(
        err(json!({"confidence": 1.0})).message,
        "config key \"confidence\" must be a number strictly between 0 and 1, got 1.0"
    );
    assert_eq!(
        err(json!({"bootstrap": 10})).message,
        "config key \"bootstrap\" must be an integer from 100 to 1000000, got 10"
    );
    assert!(
        err(json!({"bootstrap_seed": 9007199254740992u64}))
            .message
            .contains("\"bootstrap_seed\" must be an integer from 0 to 9007199254740991")
    );
    assert!(err(json!([1])).message.contains("must be an object"));
}

#[test]
fn the_schema_defaults_are_the_settings_defaults() {
    let sch = schema();
    let p = &sch["properties"];
    let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
    assert_eq!(keys, KEYS);
    let defaults: serde_json::Map<String, Value> = p
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["default"].clone()))
        .collect();
    assert_eq!(
        Settings::from_config(&Value::Object(defaults)).unwrap(),
        Settings::default()
    );
}

/// Writes a signed-looking train run: `husai.dsse.json` whose payload's predicate is a manifest, and a checkpoint.
fn sae_dir(
    root: &Path,
    name: &str,
    manifest: Value,
    w_dec: &[f32],
    d_sae: usize,
    d_in: usize,
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let parts = husai_kernels::SaeParts {
        d_in,
        d_sae,
        k: 2,
        w_enc: vec![0.0; d_in * d_sae],
        b_enc: vec![0.0; d_sae],
        w_dec: w_dec.to_vec(),
        b_dec: vec![0.0; d_in],
    };
    husai_kernels::checkpoint::write(&dir, &parts).unwrap();
    let statement =
        json!({"_type": "https://in-toto.io/Statement/v1", "subject": [], "predicate": manifest});
    let payload = base64::engine::general_purpose::STANDARD.encode(statement.to_string());
    let envelope = json!({"payload": payload, "payloadType": "application/vnd.in-toto+json", "signatures": []});
    std::fs::write(dir.join(inputs::ENVELOPE), envelope.to_string()).unwrap();
    dir
}

fn train_manifest(run_id: &str, plugin: &str, seed: u64, k: u64) -> Value {
    json!({"run_id": run_id, "campaign": "toy", "kind": "train", "plugin": {"name": plugin, "version": "0"},
           "config": {"d_sae": 16, "k": k, "steps": 40, "seed": seed, "resume_from": null}, "seeds": [seed]})
}

#[test]
fn a_run_is_read_from_its_manifest_and_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let w = null::init_decoder(8, 16, 3);
    let dir = sae_dir(
        root.path(),
        "r",
        train_manifest("r-1", "sae-batchtopk", 4, 2),
        &w,
        16,
        8,
    );
    let r = read_sae_run(&dir).unwrap();
    assert_eq!(
        (r.campaign.as_str(), r.run_id.as_str(), r.seed),
        ("toy", "r-1", 4)
    );
    assert_eq!(r.family, "sae-batchtopk");
    // As the gate's read_train_run: the config without seed and resume_from.
    assert_eq!(r.configuration, json!({"d_sae": 16, "k": 2, "steps": 40}));
    assert_eq!((r.d_sae, r.d_in), (16, 8));
    assert_eq!(r.w_dec, w);

    let mut m = train_manifest("r-2", "sae-topk", 4, 2);
    m["kind"] = json!("data");
    let dir = sae_dir(root.path(), "d", m, &w, 16, 8);
    let e = read_sae_run(&dir).unwrap_err().to_string();
    assert!(
        e.contains("run toy/r-2 is a \"data\" run; trained-vs-random reads SAE train runs"),
        "{e}"
    );

    let dir = root.path().join("plain");
    std::fs::create_dir_all(&dir).unwrap();
    let e = read_sae_run(&dir).unwrap_err().to_string();
    assert!(
        e.contains("cannot read husai.dsse.json") && e.contains("is it a signed run?"),
        "{e}"
    );

    let dir = sae_dir(
        root.path(),
        "c",
        train_manifest("r-3", "sae-topk", 4, 2),
        &w,
        16,
        8,
    );
    std::fs::write(dir.join("cfg.json"), r#"{"d_sae": 32, "d_in": 8}"#).unwrap();
    let e = read_sae_run(&dir).unwrap_err().to_string();
    assert!(
        e.contains("W_dec is [16, 8] but cfg.json says d_sae Some(32)"),
        "{e}"
    );
}

#[test]
fn the_plugin_reads_sae_inputs_and_writes_its_summary() {
    let root = tempfile::tempdir().unwrap();
    let mut inputs = BTreeMap::new();
    for i in 0..5 {
        let w = null::init_decoder(8, 16, 40 + i);
        let dir = sae_dir(
            root.path(),
            &format!("s{i}"),
            train_manifest(&format!("r-{i}"), "sae-topk", i, 2),
            &w,
            16,
            8,
        );
        inputs.insert(format!("sae/{i}"), dir);
    }
    let out = root.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let request = |config: Value, inputs: BTreeMap<String, PathBuf>| RunRequest {
        config,
        inputs,
        output_dir: out.clone(),
    };
    let res = TrainedVsRandom::run(
        &request(json!({"bootstrap": 200}), inputs.clone()),
        &mut Progress::discard(),
    )
    .unwrap();
    assert_eq!(res, json!({"outputs": [SUMMARY], "summary": SUMMARY}));
    let s: Value = serde_json::from_slice(&std::fs::read(out.join(SUMMARY)).unwrap()).unwrap();
    assert_eq!(s["sae_runs"][2]["run_id"], "r-2");
    assert_eq!(s["trained"]["seeds"], json!([0, 1, 2, 3, 4]));

    let e = TrainedVsRandom::run(
        &request(json!({"random_draws": 10}), inputs.clone()),
        &mut Progress::discard(),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidConfig);
    let mut wrong = inputs.clone();
    wrong.insert("model/0".into(), root.path().join("s0"));
    let e = TrainedVsRandom::run(&request(json!({}), wrong), &mut Progress::discard()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert_eq!(
        e.message,
        "input role \"model\" (model/0) is not one this eval reads; give each SAE run as --input sae=RUN"
    );
    let mut four = inputs.clone();
    four.remove("sae/4");
    let e = TrainedVsRandom::run(&request(json!({}), four), &mut Progress::discard()).unwrap_err();
    assert!(
        e.message
            .contains("needs at least 5 SAE runs (seeds), got 4"),
        "{e}"
    );
}

#[test]
fn sae_inputs_keep_the_command_line_order() {
    let inputs: BTreeMap<String, PathBuf> = ["sae/10", "sae/2", "sae/0"]
        .iter()
        .map(|k| (k.to_string(), PathBuf::from(k.replace('/', "-"))))
        .collect();
    assert_eq!(
        sae_inputs(&inputs).unwrap(),
        [
            PathBuf::from("sae-0"),
            PathBuf::from("sae-2"),
            PathBuf::from("sae-10")
        ]
    );
}
