//! Benchmark: train an SAE of family `--family` (`topk`, `batchtopk`, `relu`, `jumprelu`, `matryoshka`,
//! `hierarchical_topk`) on a float32 `.npy`
//! matrix through the same path as the trainer plugins: the config is built as a run request's `config` and checked
//! by the plugin's own parser (`TopKConfig`, `BatchTopKConfig`, `ReluConfig`, `JumpConfig`), so every default is the
//! plugin's; the family and the engine config come from that config, and `husai_kernels::trainer::drive` runs it
//! (the metric stream, divergence checks). The plugins' config and family sources are compiled into this example
//! (`#[path]` modules below) rather than linked: every plugin crate exports the same plugin-loader symbol, so no
//! binary can link two of them. It prints one JSON line shaped like the PyTorch peer's
//! (`/work/shared/bench/torch_sae_reference.py`), so the two can be compared field by field.
//!
//! Same protocol as the peer: `--steps N` timed steps after one untimed warm-up step (so N + 1
//! optimiser steps in all), sequential batches `i = (step * batch) % (rows - batch + 1)`, Adam
//! with lr 1e-3 and default betas. FVU and L0 are measured on the first min(rows, 16384) rows
//! (in-sample, as the peer does), or on all rows of `--eval-npy FILE` (held-out; `--npy` is then all trained on).
//!
//! The line also reports `stream_s`, the seconds spent building and writing `metrics.jsonl` lines
//! and progress text (to a temporary file), and `stream_frac = stream_s / wall_s`: the metric
//! stream's share of step time.
//!
//! ```text
//! cargo run --release -p husai-kernels --example train_bench -- \
//!     --npy acts.npy --d-sae 4096 --k 32 --batch 4096 --steps 30 [--threads 2] [--seed 0] [--lr 1e-3] \
//!     [--eval-npy held_out.npy] [--log-every 10] [--dead-window 1000] [--family topk|batchtopk|relu|jumprelu] \
//!     [--aux-coeff A] [--dec-init-norm N] [--enc-init-scale S] [--grad-clip C (0: off)] [--set KEY=JSON ...]
//! ```
//!
//! Flags left out keep the plugin's default. `--k` sets `k` for topk and batchtopk (relu and jumprelu have none;
//! jumprelu's target is `--set target_l0=32`); `--dec-init-norm` is `dec_init_norm` (topk, batchtopk) or
//! `decoder_init_norm` (relu, jumprelu); `--enc-init-scale` exists for topk and batchtopk only. `--set KEY=JSON`
//! sets any other key of the family's config, e.g. `--set l1_coeff=5` (relu), `--set sparsity='"tanh"'
//! --set l0_coeff=0.5` (jumprelu); the plugin's parser names a bad key or value.
//!
//! The line's `l0` is the inference rule's; the family's figures follow it (BatchTopK: `l0_train_rule`, the
//! training rule's, and `threshold`, the estimate; JumpReLU: threshold quantiles and `l0_coeff`), then `config`,
//! the effective config.

use std::process::ExitCode;

use std::collections::BTreeMap;
use std::path::PathBuf;

// The plugins' own sources, laid out as their crates expect (`crate::family`, `crate::penalty`, `crate::jump`,
// `crate::target`). Each plugin uses only part of what it defines here.
#[allow(dead_code)]
#[path = "../../sae-batchtopk/src/config.rs"]
mod batchtopk_config;
#[allow(dead_code)]
#[path = "../../sae-hierarchical-topk/src/config.rs"]
mod htopk_config;
#[allow(dead_code)]
#[path = "../../sae-hierarchical-topk/src/family.rs"]
mod htopk_family;
#[allow(dead_code)]
#[path = "../../sae-jumprelu/src/jump.rs"]
mod jump;
#[allow(dead_code)]
#[path = "../../sae-jumprelu/src/config.rs"]
mod jump_config;
#[allow(dead_code)]
#[path = "../../sae-jumprelu/src/family.rs"]
mod jump_family;
#[allow(dead_code)]
#[path = "../../sae-matryoshka/src/config.rs"]
mod matryoshka_config;
#[allow(dead_code)]
#[path = "../../sae-matryoshka/src/family.rs"]
mod matryoshka_family;
#[allow(dead_code)]
#[path = "../../sae-relu/src/penalty.rs"]
mod penalty;
#[allow(dead_code)]
#[path = "../../sae-relu/src/config.rs"]
mod relu_config;
#[allow(dead_code)]
#[path = "../../sae-relu/src/family.rs"]
mod relu_family;
#[allow(dead_code)]
#[path = "../../sae-jumprelu/src/target.rs"]
mod target;
#[allow(dead_code)]
#[path = "../../sae-topk/src/config.rs"]
mod topk_config;
/// `crate::family` as the plugins' configs name their family.
mod family {
    pub use crate::htopk_family::HierarchicalTopK;
    pub use crate::jump_family::{JumpRelu, ThresholdParam};
    pub use crate::matryoshka_family::Matryoshka;
    pub use crate::relu_family::Relu;
}

use husai_kernels::engine::{EngineConfig, FamilyTrainer};
use husai_kernels::family::Family;
use husai_kernels::trainer::DriveOutcome;
use husai_kernels::trainer::{CommonConfig, Dataset, Digests, MetricStream, Plan, Silent, drive};
use serde_json::{Map, Value, json};

struct Args {
    npy: String,
    d_sae: usize,
    k: usize,
    batch: usize,
    steps: usize,
    lr: f64,
    seed: u64,
    threads: usize,
    eval_npy: Option<String>,
    log_every: u64,
    dead_window: u64,
    family: String,
    /// Family keys given by flags (`--aux-coeff`, `--dec-init-norm`, ...) and `--set`.
    keys: Map<String, Value>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        npy: String::new(),
        d_sae: 4096,
        k: 32,
        batch: 4096,
        steps: 50,
        lr: 1e-3,
        seed: 0,
        threads: 0,
        eval_npy: None,
        log_every: 10,
        dead_window: 1000,
        family: "topk".into(),
        keys: Map::new(),
    };
    // Flags that become family keys, resolved once the family is known.
    let (mut dec_init_norm, mut enc_init_scale) = (None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{flag}: `{v}` is not a valid number"))
        }
        match flag.as_str() {
            "--npy" => a.npy = value()?,
            "--d-sae" => a.d_sae = num(&flag, value()?)?,
            "--k" => a.k = num(&flag, value()?)?,
            "--batch" => a.batch = num(&flag, value()?)?,
            "--steps" => a.steps = num(&flag, value()?)?,
            "--lr" => a.lr = num(&flag, value()?)?,
            "--seed" => a.seed = num(&flag, value()?)?,
            "--threads" => a.threads = num(&flag, value()?)?,
            "--eval-npy" => a.eval_npy = Some(value()?),
            "--log-every" => a.log_every = num(&flag, value()?)?,
            "--dead-window" => a.dead_window = num(&flag, value()?)?,
            "--family" => a.family = value()?,
            "--aux-coeff" => {
                let v: f64 = num(&flag, value()?)?;
                a.keys.insert("aux_coeff".into(), json!(v));
            }
            "--dec-init-norm" => dec_init_norm = Some(num::<f64>(&flag, value()?)?),
            "--enc-init-scale" => enc_init_scale = Some(num::<f64>(&flag, value()?)?),
            "--grad-clip" => {
                let v: f64 = num(&flag, value()?)?;
                // 0 is "off", as this tool always spelt it; the plugins spell it null.
                let v = if v == 0.0 { Value::Null } else { json!(v) };
                a.keys.insert("grad_clip".into(), v);
            }
            "--set" => {
                let kv = value()?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("--set {kv}: expected KEY=JSON"))?;
                let v: Value = serde_json::from_str(v)
                    .map_err(|e| format!("--set {kv}: the value is not JSON ({e})"))?;
                a.keys.insert(k.to_string(), v);
            }
            other => {
                return Err(format!(
                    "unknown flag {other}; see the doc comment of examples/train_bench.rs"
                ));
            }
        }
    }
    if a.npy.is_empty() {
        return Err("--npy FILE is required (float32, C order, 2-D)".into());
    }
    if a.threads == 0 {
        a.threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    }
    let top = matches!(
        a.family.as_str(),
        "topk" | "batchtopk" | "matryoshka" | "hierarchical_topk"
    );
    if top {
        a.keys.insert("k".into(), json!(a.k));
    }
    if let Some(n) = dec_init_norm {
        let key = if top {
            "dec_init_norm"
        } else {
            "decoder_init_norm"
        };
        a.keys.insert(key.into(), json!(n));
    }
    if let Some(s) = enc_init_scale {
        if !top {
            return Err(format!(
                "--enc-init-scale: the {} family has no encoder scale (W_enc starts as W_dec^T)",
                a.family
            ));
        }
        a.keys.insert("enc_init_scale".into(), json!(s));
    }
    Ok(a)
}

/// A family's checked config, as the run needs it.
struct Built<F> {
    family: F,
    engine: EngineConfig,
    common: CommonConfig,
    effective: Map<String, Value>,
}

fn config_error(e: impl std::fmt::Display) -> String {
    format!("config: {e}")
}

fn run() -> Result<(), String> {
    let a = parse_args()?;
    let npy = PathBuf::from(&a.npy);
    let eval_path = a.eval_npy.as_ref().map_or(npy.clone(), PathBuf::from);
    let inputs = BTreeMap::from([
        ("activations".to_string(), npy),
        ("eval_activations".to_string(), eval_path),
    ]);
    let mut config = json!({
        "d_sae": a.d_sae, "seed": a.seed, "steps": a.steps + 1, "batch": a.batch, "lr": a.lr,
        "eval": {"data": true}, "log_every": a.log_every.max(1), "dead_window": a.dead_window,
    });
    for (k, v) in &a.keys {
        config[k] = v.clone();
    }
    let plan = Plan {
        total_steps: (a.steps + 1) as u64,
        batch: a.batch,
        lr: a.lr,
        eval_every: 0,
        // `--log-every 0` turns the stream off (no line but the last).
        log_every: if a.log_every == 0 {
            u64::MAX
        } else {
            a.log_every
        },
        fvu_ceiling: f64::INFINITY,
    };
    let (out, train_rule, effective, d_in, rows, eval_source) = match a.family.as_str() {
        "topk" => {
            let c = topk_config::TopKConfig::from_json(&config).map_err(config_error)?;
            let family = husai_kernels::families::TopK::new(c.keys.k, c.common.d_sae);
            bench(&a, &inputs, &plan, false, &|d_in| Built {
                family: family.clone(),
                engine: c.engine_config(d_in),
                common: c.common.clone(),
                effective: c.effective(),
            })?
        }
        "batchtopk" => {
            let c = batchtopk_config::BatchTopKConfig::from_json(&config).map_err(config_error)?;
            bench(&a, &inputs, &plan, true, &|d_in| Built {
                family: husai_kernels::families::BatchTopK::new(c.k, c.threshold_lr),
                engine: c.engine_config(d_in),
                common: c.common.clone(),
                effective: c.effective(),
            })?
        }
        "relu" => {
            let c = relu_config::ReluConfig::from_json(&config).map_err(config_error)?;
            bench(&a, &inputs, &plan, false, &|_| Built {
                family: c.family(),
                engine: c.engine_config(),
                common: c.common.clone(),
                effective: c.effective(),
            })?
        }
        "jumprelu" => {
            let c = jump_config::JumpConfig::from_json(&config).map_err(config_error)?;
            bench(&a, &inputs, &plan, false, &|_| Built {
                family: c.family(),
                engine: c.engine_config(),
                common: c.common.clone(),
                effective: c.effective(),
            })?
        }
        "matryoshka" => {
            let c =
                matryoshka_config::MatryoshkaConfig::from_json(&config).map_err(config_error)?;
            bench(&a, &inputs, &plan, true, &|d_in| Built {
                family: c.family(),
                engine: c.engine_config(d_in),
                common: c.common.clone(),
                effective: c.effective(),
            })?
        }
        "hierarchical_topk" => {
            let c = htopk_config::HierarchicalConfig::from_json(&config).map_err(config_error)?;
            bench(&a, &inputs, &plan, false, &|d_in| Built {
                family: c.family(),
                engine: c.engine_config(d_in),
                common: c.common.clone(),
                effective: c.effective(),
            })?
        }
        other => {
            return Err(format!(
                "--family {other}: expected topk, batchtopk, relu, jumprelu, matryoshka or hierarchical_topk"
            ));
        }
    };
    let _ = train_rule;
    let mut extra = String::new();
    for (name, v) in &out.eval.figures {
        let v = if v.is_finite() { json!(v) } else { Value::Null };
        extra.push_str(&format!(", {}: {v}", json!(name)));
    }
    extra.push_str(&format!(", \"config\": {}", Value::Object(effective)));
    let seconds = (a.steps * a.batch) as f64 / out.rows_per_s;
    println!(
        "{{\"impl\": \"husai-kernels-{}\", \"device\": \"cpu\", \"threads\": {}, \"arch\": \"{}\", \"d_in\": {d_in}, \"d_sae\": {}, \"k\": {}, \"batch\": {}, \"steps\": {}, \"seconds\": {:.4}, \"rows_per_s\": {:.1}, \"fvu\": {:.5}, \"l0\": {:.2}, \"dead_fraction\": {:.5}, \"train_dead_fraction\": {:.5}, \"rows\": {rows}, \"eval_source\": \"{eval_source}\", \"status\": \"{}\", \"log_every\": {}, \"dead_window\": {}, \"wall_s\": {:.4}, \"stream_s\": {:.6}, \"stream_frac\": {:.6}{extra}}}",
        env!("CARGO_PKG_VERSION"),
        a.threads,
        a.family,
        a.d_sae,
        if matches!(
            a.family.as_str(),
            "topk" | "batchtopk" | "matryoshka" | "hierarchical_topk"
        ) {
            a.k.to_string()
        } else {
            "null".into()
        },
        a.batch,
        a.steps,
        seconds,
        out.rows_per_s,
        out.eval.reconstruction.fvu,
        out.eval.l0,
        out.eval.dead_fraction,
        out.train_dead_fraction,
        out.status.as_str(),
        a.log_every,
        a.dead_window,
        out.wall_s,
        out.stream_s,
        out.stream_s / out.wall_s,
    );
    Ok(())
}

type Bench = (DriveOutcome, bool, Map<String, Value>, usize, usize, String);

/// Loads the data, builds the family's run from `build(d_in)` (the plugin's config) and trains it.
fn bench<F: Family>(
    a: &Args,
    inputs: &BTreeMap<String, PathBuf>,
    plan: &Plan,
    train_rule_l0: bool,
    build: &dyn Fn(usize) -> Built<F>,
) -> Result<Bench, String> {
    let probe = build(0);
    let mut data = Dataset::load(inputs, &probe.common, None, &mut Digests::new())
        .map_err(|e| e.to_string())?;
    let (rows, d_in) = (data.train_len(), data.d_in);
    let eval_source = if a.eval_npy.is_none() {
        // The peer's protocol: metrics on the first min(rows, 16384) training rows.
        let n = rows.min(16_384);
        data.eval = data.train[..n * d_in].to_vec();
        format!("first {n} training rows")
    } else {
        format!("{} held-out rows", data.eval.len() / d_in)
    };
    let Built {
        family,
        mut engine,
        effective,
        ..
    } = build(d_in);
    engine.threads = a.threads;
    let t = FamilyTrainer::new(engine, family, d_in, train_rule_l0).map_err(|e| e.to_string())?;
    let stream_path =
        std::env::temp_dir().join(format!("husai-train-bench-{}.jsonl", std::process::id()));
    let mut stream = MetricStream::create(&stream_path).map_err(|e| e.to_string())?;
    let out = train(t, &data, plan, &mut stream);
    drop(stream);
    let _ = std::fs::remove_file(&stream_path);
    Ok((out?, train_rule_l0, effective, d_in, rows, eval_source))
}

fn train<F: Family>(
    mut t: FamilyTrainer<F>,
    data: &Dataset,
    plan: &Plan,
    stream: &mut MetricStream,
) -> Result<DriveOutcome, String> {
    t.init_b_dec(&data.train).map_err(|e| e.to_string())?;
    drive(&mut t, plan, data, stream, &mut Silent).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("train_bench: {e}");
            ExitCode::from(2)
        }
    }
}
