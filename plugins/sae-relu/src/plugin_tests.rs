//! The plugin's `run`, in process: outputs in SAELens's `standard` layout, same-seed bytes, exact resume, and bad
//! configs refused with the key named and nothing written.

use husai_kernels::testing::{Work, metrics, state_bytes, tensor_shapes};
use serde_json::{Value, json};
fn json_keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn small(steps: u64) -> Value {
    json!({"d_sae": 64, "seed": 5, "steps": steps, "batch": 64, "l1_coeff": 0.3, "l1_warmup_steps": 5,
           "log_every": 5})
}

#[test]
fn a_run_writes_a_standard_checkpoint_with_the_same_bytes_for_the_same_seed() {
    let w = Work::synthetic(super::run, 1000);
    let (a, b) = (w.out("a"), w.out("b"));
    let r = w.go(small(20), &[("activations", &w.bank)], &a);
    w.go(small(20), &[("activations", &w.bank)], &b);
    assert_eq!(state_bytes(&a), state_bytes(&b));
    assert_eq!(r["status"], "ok", "{r}");
    let cfg: Value = serde_json::from_slice(&std::fs::read(a.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(cfg["architecture"], "standard");
    assert_eq!(
        (cfg["d_in"].clone(), cfg["d_sae"].clone()),
        (json!(32), json!(64))
    );
    assert_eq!(cfg["apply_b_dec_to_input"], true);
    let names: Vec<String> = tensor_shapes(&a.join("sae_weights.safetensors"))
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(names, ["W_enc", "b_enc", "W_dec", "b_dec"]);
    let m = metrics(&a);
    assert!(m["eval"]["l0"].as_f64().unwrap() > 0.0, "{m}");
    assert!(json_keys(&m).contains(&"train".to_string()), "{m}");
    let mut c = small(20);
    c["seed"] = json!(6);
    let other = w.out("c");
    w.go(c, &[("activations", &w.bank)], &other);
    assert_ne!(
        state_bytes(&a)[1],
        state_bytes(&other)[1],
        "another seed, other weights"
    );
}

#[test]
fn a_resumed_run_gives_the_bytes_of_one_uninterrupted_run() {
    let w = Work::synthetic(super::run, 1000);
    let (whole, first, second) = (w.out("whole"), w.out("first"), w.out("second"));
    w.go(small(30), &[("activations", &w.bank)], &whole);
    w.go(small(12), &[("activations", &w.bank)], &first);
    w.go(
        small(30),
        &[("activations", &w.bank), ("resume", &first)],
        &second,
    );
    assert_eq!(state_bytes(&whole), state_bytes(&second));
}

#[test]
fn bad_configs_name_the_key_and_write_nothing() {
    let w = Work::synthetic(super::run, 200);
    let mut c = small(5);
    c["l1_coeff"] = json!(-0.1);
    assert_eq!(
        w.bad_config(c).message,
        "sae-relu config key `l1_coeff` = -0.1 is invalid: must be a finite number >= 0"
    );
    let mut c = small(5);
    c["k"] = json!(4);
    assert!(
        w.bad_config(c)
            .message
            .starts_with("sae-relu config key `k` is not a sae-relu config key")
    );
    let mut c = small(5);
    c["penalty"] = json!("l0");
    assert!(
        w.bad_config(c)
            .message
            .starts_with("sae-relu config key `penalty` = \"l0\" is invalid")
    );
}

#[test]
fn the_unit_norm_variant_keeps_decoder_rows_at_unit_norm() {
    let w = Work::synthetic(super::run, 1000);
    let out = w.out("unit");
    let mut c = small(10);
    c["penalty"] = json!("unit_norm");
    w.go(c, &[("activations", &w.bank)], &out);
    let parts = husai_kernels::checkpoint::read_family_bytes(
        &out,
        &crate::Relu {
            lambda: 0.3,
            warmup_steps: 5,
            weighting: crate::penalty::Weighting::UnitNorm,
        },
        &std::fs::read(out.join("cfg.json")).unwrap(),
        &std::fs::read(out.join("sae_weights.safetensors")).unwrap(),
    )
    .unwrap();
    for row in parts.w_dec.chunks_exact(32) {
        let n: f64 = row
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        assert!((n - 1.0).abs() < 1e-5, "row norm {n}");
    }
}
