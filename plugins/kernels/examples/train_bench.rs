//! Benchmark: train an SAE of family `--family` (`topk`, `batchtopk`) on the shared engine with husai-kernels on a float32 `.npy` matrix through the same path
//! as the `sae-topk` plugin (`husai_kernels::trainer::drive`: the metric stream, divergence checks,
//! AuxK with the plugin's defaults) and print one JSON line shaped like the PyTorch peer's
//! (`/work/shared/bench/torch_sae_reference.py`), so the two can be compared field by field.
//!
//! Same protocol as the peer: `--steps N` timed steps after one untimed warm-up step (so N + 1
//! optimiser steps in all), sequential batches `i = (step * batch) % (rows - batch + 1)`, Adam
//! with lr 1e-3 and default betas. FVU and L0 are measured on the first min(rows, 16384) rows
//! (in-sample, as the peer does), or on all rows of `--eval-npy FILE` (held-out).
//!
//! The line also reports `stream_s`, the seconds spent building and writing `metrics.jsonl` lines
//! and progress text (to a temporary file), and `stream_frac = stream_s / wall_s`: the metric
//! stream's share of step time.
//!
//! ```text
//! cargo run --release -p husai-kernels --example train_bench -- \
//!     --npy acts.npy --d-sae 4096 --k 32 --batch 4096 --steps 30 [--threads 2] [--seed 0] [--lr 1e-3] \
//!     [--eval-npy held_out.npy] [--log-every 10] [--aux-coeff 0.03125] [--dead-window 1000] \
//!     [--family topk|batchtopk] [--dec-init-norm 1] [--enc-init-scale 1] [--grad-clip 0 (off)]
//! ```
//!
//! For BatchTopK the line's `l0` is the inference rule's (the estimated threshold), `l0_train_rule` the
//! training rule's, `threshold` the estimate.

use std::process::ExitCode;

use std::collections::BTreeMap;
use std::path::PathBuf;

use husai_kernels::AuxKConfig;
use husai_kernels::adam::AdamConfig;
use husai_kernels::bdec::BDecInit;
use husai_kernels::engine::{EngineConfig, FamilyTrainer, InitConfig};
use husai_kernels::families::{BatchTopK, DEFAULT_THRESHOLD_LR, TopK};
use husai_kernels::family::Family;
use husai_kernels::trainer::DriveOutcome;
use husai_kernels::trainer::config::CommonDefaults;
use husai_kernels::trainer::{CommonConfig, Dataset, Digests, MetricStream, Plan, Silent, drive};

struct Args {
    npy: String,
    d_sae: usize,
    k: usize,
    batch: usize,
    steps: usize,
    lr: f32,
    seed: u64,
    threads: usize,
    eval_npy: Option<String>,
    log_every: u64,
    aux_coeff: f32,
    dead_window: u64,
    family: String,
    dec_init_norm: f32,
    enc_init_scale: f32,
    grad_clip: f32,
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
        aux_coeff: 1.0 / 32.0,
        dead_window: 1000,
        family: "topk".into(),
        dec_init_norm: 1.0,
        enc_init_scale: 1.0,
        grad_clip: 0.0,
    };
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
            "--aux-coeff" => a.aux_coeff = num(&flag, value()?)?,
            "--dead-window" => a.dead_window = num(&flag, value()?)?,
            "--family" => a.family = value()?,
            "--dec-init-norm" => a.dec_init_norm = num(&flag, value()?)?,
            "--enc-init-scale" => a.enc_init_scale = num(&flag, value()?)?,
            "--grad-clip" => a.grad_clip = num(&flag, value()?)?,
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
    Ok(a)
}

fn run() -> Result<(), String> {
    let a = parse_args()?;
    let npy = PathBuf::from(&a.npy);
    let eval_path = a.eval_npy.as_ref().map_or(npy.clone(), PathBuf::from);
    let inputs = BTreeMap::from([
        ("activations".to_string(), npy),
        ("eval_activations".to_string(), eval_path),
    ]);
    let defaults = CommonDefaults {
        batch: a.batch,
        lr: a.lr as f64,
        b_dec_init: BDecInit::Zeros,
        b_dec_init_why: "",
    };
    let common = serde_json::json!({
        "d_sae": a.d_sae, "seed": a.seed, "steps": a.steps + 1, "eval": {"data": true},
        "log_every": a.log_every.max(1), "dead_window": a.dead_window,
    });
    let cfg = CommonConfig::parse(common.as_object().cloned().unwrap_or_default(), &defaults)
        .map_err(|e| e.to_string())?;
    let mut data =
        Dataset::load(&inputs, &cfg, None, &mut Digests::new()).map_err(|e| e.to_string())?;
    let (rows, d_in) = (data.train_len(), data.d_in);
    let eval_source = if a.eval_npy.is_none() {
        // The peer's protocol: metrics on the first min(rows, 16384) training rows.
        let n = rows.min(16_384);
        data.eval = data.train[..n * d_in].to_vec();
        format!("first {n} training rows")
    } else {
        format!("{} held-out rows", data.eval.len() / d_in)
    };
    let mut ec = EngineConfig::new(a.d_sae);
    ec.batch = a.batch;
    ec.seed = a.seed;
    ec.threads = a.threads;
    ec.adam = AdamConfig {
        lr: a.lr,
        ..Default::default()
    };
    ec.aux_k = (a.aux_coeff > 0.0).then_some(AuxKConfig {
        k_aux: (d_in / 2).clamp(1, a.d_sae),
        coeff: a.aux_coeff,
    });
    ec.dead_window = a.dead_window;
    ec.init = InitConfig {
        dec_norm: a.dec_init_norm,
        enc_scale: a.enc_init_scale,
    };
    ec.grad_clip = (a.grad_clip > 0.0).then_some(a.grad_clip);
    let stream_path =
        std::env::temp_dir().join(format!("husai-train-bench-{}.jsonl", std::process::id()));
    let mut stream = MetricStream::create(&stream_path).map_err(|e| e.to_string())?;
    let plan = Plan {
        total_steps: (a.steps + 1) as u64,
        batch: a.batch,
        lr: a.lr as f64,
        eval_every: 0,
        // `--log-every 0` turns the stream off (no line but the last).
        log_every: if a.log_every == 0 {
            u64::MAX
        } else {
            a.log_every
        },
        fvu_ceiling: f64::INFINITY,
    };
    let (out, extra) = match a.family.as_str() {
        "topk" => {
            let t = FamilyTrainer::new(ec, TopK::new(a.k, a.d_sae), d_in, false)
                .map_err(|e| e.to_string())?;
            (train(t, &data, &plan, &mut stream)?, String::new())
        }
        "batchtopk" => {
            let t = FamilyTrainer::new(ec, BatchTopK::new(a.k, DEFAULT_THRESHOLD_LR), d_in, true)
                .map_err(|e| e.to_string())?;
            let o = train(t, &data, &plan, &mut stream)?;
            let fig = |n: &str| {
                o.eval
                    .figures
                    .iter()
                    .find(|(k, _)| k == n)
                    .map_or(f64::NAN, |f| f.1)
            };
            let extra = format!(
                ", \"l0_train_rule\": {:.2}, \"threshold\": {:.6}",
                fig("l0_train_rule"),
                fig("threshold")
            );
            (o, extra)
        }
        other => return Err(format!("--family {other}: expected topk or batchtopk")),
    };
    drop(stream);
    let _ = std::fs::remove_file(&stream_path);
    let seconds = (a.steps * a.batch) as f64 / out.rows_per_s;
    println!(
        "{{\"impl\": \"husai-kernels-{}\", \"device\": \"cpu\", \"threads\": {}, \"arch\": \"{}\", \"d_in\": {d_in}, \"d_sae\": {}, \"k\": {}, \"batch\": {}, \"steps\": {}, \"seconds\": {:.4}, \"rows_per_s\": {:.1}, \"fvu\": {:.5}, \"l0\": {:.2}, \"dead_fraction\": {:.5}, \"train_dead_fraction\": {:.5}, \"rows\": {rows}, \"eval_source\": \"{eval_source}\", \"status\": \"{}\", \"log_every\": {}, \"aux_coeff\": {}, \"dead_window\": {}, \"wall_s\": {:.4}, \"stream_s\": {:.6}, \"stream_frac\": {:.6}, \"dec_init_norm\": {}, \"enc_init_scale\": {}, \"grad_clip\": {}{extra}}}",
        env!("CARGO_PKG_VERSION"),
        a.threads,
        a.family,
        a.d_sae,
        a.k,
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
        a.aux_coeff,
        a.dead_window,
        out.wall_s,
        out.stream_s,
        out.stream_s / out.wall_s,
        a.dec_init_norm,
        a.enc_init_scale,
        a.grad_clip,
    );
    Ok(())
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
