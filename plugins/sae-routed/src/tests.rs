//! The plugin's `run`, in process: routing on a planted bank (the right layer per row known) and on the real
//! MiniLM layers (the router must not collapse), the checkpoint layout (SAELens TopK plus the router beside it),
//! thread-count independence, same-seed byte identity, exact resume, and bad configs and banks. (The router's
//! gradient check is a unit test of [`crate::router`]; the SAE's is the engine's.)

use std::path::{Path, PathBuf};

use husai_kernels::synth_layers::{LayeredConfig, LayeredData, generate_layered, layer_bank_bytes};
use husai_kernels::testing::{
    assert_schema_golden, metrics, request, state_bytes, tensor_shapes, unique,
};
use husai_plugin_api::{ErrorKind, PluginError, Progress};
use serde_json::{Value, json};

use super::router::{Router, Routing};
use super::{OUTPUTS, ROUTER_FILE, ROUTER_STATE_FILE, config_schema, run};

/// The real multi-layer bank of `../shared/data` (MiniLM embeddings and layers 1-6, 16384 rows, float16).
const MINILM_LAYERS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/minilm_resid_layers_dev.safetensors"
);

/// A temporary directory holding a planted multi-layer bank.
struct Bank {
    dir: tempfile::TempDir,
    path: PathBuf,
    cfg: LayeredConfig,
    data: LayeredData,
}

const NAMES: [&str; 4] = ["l0", "l1", "l2", "l3"];

impl Bank {
    fn planted(rows: usize, d_in: usize, seed: u64) -> Bank {
        let cfg = LayeredConfig {
            rows,
            layers: 4,
            d_in,
            atoms_per_layer: 64,
            l0: 4,
            seed,
        };
        let data = generate_layered(&cfg).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layers.safetensors");
        std::fs::write(&path, layer_bank_bytes(&NAMES, d_in, &data.x)).unwrap();
        Bank {
            dir,
            path,
            cfg,
            data,
        }
    }

    fn out(&self) -> PathBuf {
        let p = self.dir.path().join(format!("out{}", unique()));
        std::fs::create_dir(&p).unwrap();
        p
    }
}

fn try_run(config: Value, inputs: &[(&str, &Path)], out: &Path) -> Result<Value, PluginError> {
    run(&request(config, inputs, out), &mut Progress::discard())
}

fn go(config: Value, inputs: &[(&str, &Path)], out: &Path) -> Value {
    try_run(config, inputs, out).unwrap()
}

/// Every byte a same-seed or resumed run must reproduce: the SAE, the router and both states.
fn all_bytes(out: &Path) -> Vec<Vec<u8>> {
    let mut v = state_bytes(out);
    for f in [ROUTER_FILE, ROUTER_STATE_FILE] {
        v.push(std::fs::read(out.join(f)).unwrap());
    }
    v
}

fn figure(m: &Value, name: &str) -> f64 {
    m["eval"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("metrics.json eval.{name}: {}", m["eval"]))
}

/// The router a run wrote, read back.
fn router_of(out: &Path, layers: &[&str], d: usize) -> Router {
    let names: Vec<String> = layers.iter().map(|s| s.to_string()).collect();
    crate::router_file::read(out, &names, d, &mut Default::default())
        .unwrap()
        .0
}

#[test]
fn on_a_planted_bank_the_router_sends_over_90_percent_of_held_out_rows_to_their_home_layer() {
    let b = Bank::planted(8192, 64, 1);
    let out = b.out();
    go(
        json!({"d_sae": 256, "k": 4, "seed": 1, "batch": 256, "steps": 600, "eval": {"fraction": 0.2}}),
        &[("activations", &b.path)],
        &out,
    );
    let m = metrics(&out);
    let router = router_of(&out, &NAMES, 64);
    let n_eval = (8192f64 * 0.2).ceil() as usize;
    let first = b.cfg.rows - n_eval;
    let mut r = Routing::default();
    router.route(&b.data.x[first * 4 * 64..], &mut r);
    let hits = r
        .layer
        .iter()
        .zip(&b.data.home[first..])
        .filter(|(a, b)| a == b)
        .count();
    let share = hits as f64 / n_eval as f64;
    let (entropy, max) = (
        figure(&m, "router_entropy"),
        figure(&m, "router_entropy_max"),
    );
    eprintln!(
        "planted: {share:.4} of {n_eval} held-out rows routed home, router entropy {entropy:.3} (ln 4 = {max:.3}), \
         fvu {:.4}",
        figure(&m, "fvu")
    );
    assert!(share >= 0.9, "routed home: {share}");
    assert!(entropy < 0.9 * max, "entropy {entropy}");
    for l in NAMES {
        let s = figure(&m, &format!("share_{l}"));
        assert!((0.15..0.35).contains(&s), "share_{l} = {s}");
    }
}

#[test]
fn on_the_minilm_layers_the_router_does_not_collapse_and_uses_several_layers() {
    let bank = Path::new(MINILM_LAYERS);
    let dir = tempfile::tempdir().unwrap();
    let result = go(
        json!({"d_sae": 1536, "k": 32, "seed": 7, "batch": 1024, "steps": 300, "eval": {"fraction": 0.2}}),
        &[("activations", bank)],
        dir.path(),
    );
    let m = metrics(dir.path());
    let (entropy, max) = (
        figure(&m, "router_entropy"),
        figure(&m, "router_entropy_max"),
    );
    let layers = [
        "embeddings",
        "layer_1",
        "layer_2",
        "layer_3",
        "layer_4",
        "layer_5",
        "layer_6",
    ];
    let shares: Vec<f64> = layers
        .iter()
        .map(|l| figure(&m, &format!("share_{l}")))
        .collect();
    eprintln!(
        "minilm: router entropy {entropy:.4} (ln 7 = {max:.4}), fvu {:.4}, l0 {}, shares {shares:.3?}, per-layer fvu \
         {:.3?}",
        figure(&m, "fvu"),
        figure(&m, "l0"),
        layers
            .iter()
            .map(|l| m["eval"][format!("fvu_{l}")].as_f64().unwrap_or(f64::NAN))
            .collect::<Vec<_>>()
    );
    assert_eq!(result["dataset"]["tensor"], json!(layers.join(",")));
    assert_eq!(result["dataset"]["shape"], json!([16384, 7 * 384]));
    assert!(entropy < 0.9 * max, "router entropy {entropy} >= 0.9 ln 7");
    assert!((max - 7f64.ln()).abs() < 1e-12);
    assert!(
        shares.iter().filter(|&&s| s >= 0.05).count() >= 2,
        "at least two layers take 5 % of rows: {shares:?}"
    );
    assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(figure(&m, "fvu") < 0.3, "fvu {}", figure(&m, "fvu"));
}

#[test]
fn the_sae_is_a_saelens_topk_checkpoint_of_one_layer_and_the_router_sits_beside_it() {
    let b = Bank::planted(2048, 16, 2);
    let out = b.out();
    let result = go(
        json!({"d_sae": 32, "k": 3, "seed": 0, "batch": 128, "steps": 5}),
        &[("activations", &b.path)],
        &out,
    );
    let mut outputs: Vec<&str> = OUTPUTS.to_vec();
    outputs.extend([ROUTER_FILE, ROUTER_STATE_FILE]);
    let listed: Vec<&str> = result["outputs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(listed, outputs, "{result}");
    let cfg: Value = serde_json::from_slice(&std::fs::read(out.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(cfg["architecture"], "topk");
    assert_eq!(
        (cfg["d_in"].clone(), cfg["d_sae"].clone(), cfg["k"].clone()),
        (json!(16), json!(32), json!(3))
    );
    assert_eq!(
        tensor_shapes(&out.join(ROUTER_FILE)),
        vec![
            ("W_router".to_string(), json!([4, 16])),
            ("layer_scale".to_string(), json!([4])),
        ]
    );
    let bytes = std::fs::read(out.join(ROUTER_FILE)).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["format"], "husai-router");
    assert_eq!(meta["layers"], r#"["l0","l1","l2","l3"]"#);
    assert_eq!(
        (meta["aggregation"].as_str(), meta["routing"].as_str()),
        ("sum", "hard")
    );
    // The stream's terms, and the router's scales bring every layer to mean squared norm d.
    let first: Value = serde_json::from_str(
        std::fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        first["loss"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["mse", "aux", "router"]
    );
    let router = router_of(&out, &NAMES, 16);
    let n_train = 2048 - (2048f64 * 0.1).ceil() as usize;
    for l in 0..4 {
        let ms: f64 = b.data.x[..n_train * 64]
            .chunks_exact(64)
            .map(|row| {
                row[l * 16..(l + 1) * 16]
                    .iter()
                    .map(|&v| (v * router.scale[l]) as f64 * (v * router.scale[l]) as f64)
                    .sum::<f64>()
            })
            .sum::<f64>()
            / n_train as f64;
        assert!((ms - 16.0).abs() < 1e-2, "layer {l}: {ms}");
    }
}

#[test]
fn one_and_three_threads_same_seed_runs_and_a_resumed_run_give_identical_bytes() {
    let b = Bank::planted(2048, 16, 3);
    let config = |steps: u64| json!({"d_sae": 32, "k": 3, "seed": 4, "batch": 128, "steps": steps});
    let bank = [("activations", b.path.as_path())];
    let in_pool = |threads: usize, steps: u64, inputs: &[(&str, &Path)]| {
        let out = b.out();
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| go(config(steps), inputs, &out));
        out
    };
    let one = in_pool(1, 20, &bank);
    let three = in_pool(3, 20, &bank);
    assert_eq!(all_bytes(&one), all_bytes(&three), "1 and 3 threads");
    let again = in_pool(3, 20, &bank);
    assert_eq!(all_bytes(&three), all_bytes(&again), "the same seed");
    let half = in_pool(2, 8, &bank);
    let resumed = in_pool(2, 20, &[("activations", &b.path), ("resume", &half)]);
    assert_eq!(all_bytes(&one), all_bytes(&resumed), "resumed at step 8");
    let seed5 = b.out();
    go(
        json!({"d_sae": 32, "k": 3, "seed": 5, "batch": 128, "steps": 20}),
        &bank,
        &seed5,
    );
    assert_ne!(
        all_bytes(&one)[3],
        all_bytes(&seed5)[3],
        "another seed, another router"
    );
}

fn bad(config: Value, inputs: &[(&str, &Path)], out: &Path) -> PluginError {
    let e = try_run(config, inputs, out).unwrap_err();
    assert_eq!(
        std::fs::read_dir(out).unwrap().count(),
        0,
        "nothing written for {e}"
    );
    e
}

#[test]
fn bad_configs_and_banks_are_clear_errors_naming_the_key_or_the_tensor() {
    let b = Bank::planted(512, 8, 4);
    let bank = [("activations", b.path.as_path())];
    let base = |extra: Value| {
        let mut c = json!({"d_sae": 16, "k": 2, "seed": 0, "batch": 64, "steps": 1});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let config_error = |extra: Value| {
        let e = bad(base(extra), &bank, &b.out());
        assert_eq!(e.kind, ErrorKind::InvalidConfig, "{e}");
        e.message
    };
    assert_eq!(
        config_error(json!({"tensor": "l0"})),
        "sae-routed config key `tensor` is not a sae-routed key: a router reads several tensors of a multi-layer \
         bank; name them with layers (a list), or leave layers out to route over every tensor"
    );
    assert_eq!(
        config_error(json!({"layers": ["l0"]})),
        "sae-routed config key `layers` = [\"l0\"] is invalid: routing needs at least 2 layers, 1 given"
    );
    assert_eq!(
        config_error(json!({"layers": ["l0", "l0"]})),
        "sae-routed config key `layers` = [\"l0\",\"l0\"] is invalid: \"l0\" is listed twice"
    );
    assert_eq!(
        config_error(json!({"layers": "l0"})),
        "sae-routed config key `layers` = \"l0\" is invalid: must be a list of tensor names (or null for every tensor)"
    );
    assert_eq!(
        config_error(json!({"router_lr": 0})),
        "sae-routed config key `router_lr` = 0 is invalid: must be a finite number > 0 (or null for lr)"
    );
    assert_eq!(
        config_error(json!({"k": 17})),
        "sae-routed config key `k` = 17 is invalid: must be <= d_sae (16)"
    );

    let input_error = |config: Value, path: &Path| {
        let e = bad(config, &[("activations", path)], &b.out());
        assert_eq!(e.kind, ErrorKind::InvalidInput, "{e}");
        e.message
    };
    let e = input_error(base(json!({"layers": ["l0", "l9"]})), &b.path);
    assert!(
        e.ends_with(r#"has no tensor named "l9"; it holds ["l0", "l1", "l2", "l3"]"#),
        "{e}"
    );
    // Layers of different widths.
    let uneven = b.dir.path().join("uneven.safetensors");
    let tensors = vec![
        ("a".to_string(), "F32", vec![512, 8], vec![0u8; 512 * 8 * 4]),
        ("b".to_string(), "F32", vec![512, 4], vec![0u8; 512 * 4 * 4]),
    ];
    std::fs::write(
        &uneven,
        husai_kernels::checkpoint::encode_safetensors(None, &tensors),
    )
    .unwrap();
    let e = input_error(base(json!({})), &uneven);
    assert!(
        e.contains(r#"layer "b" has shape [512, 4] but layer "a" has [512, 8]; every layer of a multi-layer bank holds the same rows at the same width"#),
        "{e}"
    );
    // One tensor only, and a .npy bank.
    let single = b.dir.path().join("single.safetensors");
    std::fs::write(
        &single,
        husai_kernels::checkpoint::encode_safetensors(None, &tensors[..1]),
    )
    .unwrap();
    let e = input_error(base(json!({})), &single);
    assert!(
        e.ends_with(
            r#"holds 1 layer (["a"]); routing needs at least 2, one [rows, d] tensor each"#
        ),
        "{e}"
    );
    let npy = b.dir.path().join("bank.npy");
    husai_kernels::activations::write_npy_f32(&npy, 512, 8, &b.data.x[..512 * 8]).unwrap();
    let e = input_error(base(json!({})), &npy);
    assert!(
        e.ends_with(
            "a multi-layer bank is a .safetensors file with one [rows, d] tensor per layer"
        ),
        "{e}"
    );
    // Held-out rows from a bank of other layers.
    let other = b.dir.path().join("other.safetensors");
    std::fs::write(
        &other,
        layer_bank_bytes(&["x0", "x1", "x2", "x3"], 8, &b.data.x),
    )
    .unwrap();
    let e = bad(
        base(json!({"eval": {"data": true}})),
        &[("activations", &b.path), ("eval_activations", &other)],
        &b.out(),
    );
    assert!(
        e.message.contains(r#"its layers ["x0", "x1", "x2", "x3"] (width 8) are not the training bank's ["l0", "l1", "l2", "l3"] (width 8)"#),
        "{e}"
    );
    // Resuming a run whose router is missing.
    let half = b.out();
    go(base(json!({})), &bank, &half);
    std::fs::remove_file(half.join(ROUTER_FILE)).unwrap();
    let e = bad(
        base(json!({"steps": 2})),
        &[("activations", &b.path), ("resume", &half)],
        &b.out(),
    );
    assert!(
        e.message.contains("router.safetensors: cannot read it"),
        "{e}"
    );
}

#[test]
fn config_schema_matches_its_golden_file() {
    assert_schema_golden(env!("CARGO_MANIFEST_DIR"), &config_schema());
}

/// One tiny routed step, every input and output, for checking the PyTorch peer against ours
/// (`bench/routesae_torch.py --check plugins/sae-routed/tests/golden/tiny_case.json`): 12 rows of 3 layers of width
/// 5, an SAE of 10 latents with k = 2 (AuxK off: the engine's, as in TopK), every parameter moved off its start.
fn tiny_case() -> Value {
    use husai_kernels::engine::{Grads, InitConfig, Sae, Workspace, loss_and_grads};
    use husai_kernels::families::TopK;
    use husai_kernels::rng::SplitMix64;
    let (n_layers, d, d_sae, k, rows) = (3, 5, 10, 2, 12);
    let family = TopK::new(k, d_sae);
    let mut parts = Sae::init(&family, d, d_sae, 3, InitConfig::default())
        .unwrap()
        .to_parts();
    let mut g = SplitMix64::new(11);
    parts
        .w_enc
        .iter_mut()
        .for_each(|v| *v += 0.3 * (g.uniform_f32() - 0.5));
    parts
        .b_enc
        .iter_mut()
        .for_each(|v| *v = 0.2 * (g.uniform_f32() - 0.3));
    parts
        .b_dec
        .iter_mut()
        .for_each(|v| *v = 0.5 * (g.uniform_f32() - 0.5));
    let model = Sae::from_parts(&family, parts).unwrap();
    let x: Vec<f32> = (0..rows * n_layers * d)
        .map(|_| g.normal() as f32)
        .collect();
    let mut router = Router::init(n_layers, d, 5);
    router.w.iter_mut().for_each(|w| *w *= 3.0);
    router.fit_scale(&x);
    let mut r = Routing::default();
    router.route(&x, &mut r);
    let mut ws = Workspace::default();
    let mut grads = Grads {
        tensors: vec![
            vec![0.0; d_sae * d],
            vec![0.0; d_sae],
            vec![0.0; d_sae * d],
            vec![0.0; d],
        ],
    };
    let loss = loss_and_grads(
        &model, &family, 0, &r.routed, None, &mut ws, &mut grads, None,
    )
    .unwrap();
    let e: Vec<f64> = r
        .routed
        .chunks_exact(d)
        .zip(ws.row_loss())
        .map(|(x, l)| l / x.iter().map(|&v| v as f64 * v as f64).sum::<f64>())
        .collect();
    let mut grad_router = vec![0.0; router.w.len()];
    let router_loss = router.loss_and_grad(&r, &e, &mut grad_router);
    let t = |m: &[f32]| -> Vec<f32> {
        (0..d)
            .flat_map(|i| (0..d_sae).map(move |j| m[j * d + i]))
            .collect()
    };
    json!({
        "layers": n_layers, "d_in": d, "d_sae": d_sae, "k": k, "rows": rows,
        "x": x, "W_router": router.w, "layer_scale": router.scale,
        "W_enc": t(model.w_enc_t()), "b_enc": model.b_enc(), "W_dec": model.w_dec(), "b_dec": model.b_dec(),
        "layer": r.layer, "p": r.p, "mse": loss.mse_loss, "router_loss": router_loss,
        "grads": {"W_router": grad_router, "W_enc": t(&grads.tensors[0]), "b_enc": grads.tensors[1],
                  "W_dec": grads.tensors[2], "b_dec": grads.tensors[3]},
    })
}

#[test]
fn the_tiny_case_for_the_torch_peer_is_current() {
    let v = tiny_case();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tiny_case.json");
    if std::env::var_os("HUSAI_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, serde_json::to_string(&v).unwrap() + "\n").unwrap();
    }
    let golden: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    // Numbers within 1e-5 (relative to each array's largest), routes exactly: another CPU's SIMD path may round
    // the last bits differently.
    fn close(a: &Value, b: &Value, at: &str) {
        match (a, b) {
            (Value::Array(x), Value::Array(y)) => {
                assert_eq!(x.len(), y.len(), "{at}");
                let scale = y
                    .iter()
                    .filter_map(Value::as_f64)
                    .fold(1e-6f64, |m, v| m.max(v.abs()));
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    match (p.as_f64(), q.as_f64()) {
                        (Some(p), Some(q)) => {
                            assert!((p - q).abs() <= 1e-5 * scale, "{at}[{i}]: {p} vs {q}")
                        }
                        _ => close(p, q, &format!("{at}[{i}]")),
                    }
                }
            }
            (Value::Object(x), Value::Object(y)) => {
                assert_eq!(
                    x.keys().collect::<Vec<_>>(),
                    y.keys().collect::<Vec<_>>(),
                    "{at}"
                );
                for (k, p) in x {
                    close(p, &y[k], &format!("{at}.{k}"));
                }
            }
            (p, q) => match (p.as_f64(), q.as_f64()) {
                (Some(p), Some(q)) => assert!(
                    (p - q).abs() <= 1e-5 * q.abs().max(1e-6),
                    "{at}: {p} vs {q}"
                ),
                _ => assert_eq!(p, q, "{at}"),
            },
        }
    }
    close(&v, &golden, "case");
    assert_eq!(v["layer"], golden["layer"], "the routes");
}
