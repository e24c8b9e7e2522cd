//! Throughput of the transcoder-stress fits, for bench/transcoder_vs_torch.sh (issue #14).
//!
//!   RAYON_NUM_THREADS=2 cargo run --release -p husai-eval-transcoder-stress --example fit_bench -- \
//!       --x resid_pre.npy --y mlp_out.npy [--d-sae 256] [--k 32] [--epochs 5] [--lr 1e-3] [--batch 512] [--seed 0]
//!
//! Loads x and y (`[rows, d]` .npy or .safetensors), divides each by its RMS over the training rows (as data.rs
//! does), holds out the last 20 % of rows (round(0.2 · rows), as data.rs's `held_out_fraction` 0.2; no shuffle, so
//! the PyTorch peer can take the same rows), and runs `fit::fit` twice: the transcoder (x → y) and the SAE (x → x).
//! One JSON line per method: rows_per_s = rows_seen / wall_s, both from `Fitted` (wall_s covers initialisation and
//! every step, not the held-out scoring), and the held-out FVU. Threads: rayon's global pool (RAYON_NUM_THREADS).

use std::path::{Path, PathBuf};
use std::process::exit;

use husai_eval_transcoder_stress::fit::{FitConfig, Rows, fit};
use husai_kernels::activations::{OpenOptions, open};
use serde_json::json;

struct Args {
    x: PathBuf,
    y: PathBuf,
    cfg: FitConfig,
    seed: u64,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "fit_bench: {msg}\nusage: fit_bench --x X.npy --y Y.npy [--d-sae 256] [--k 32] [--epochs 5] [--lr 1e-3] \
         [--batch 512] [--seed 0]"
    );
    exit(2)
}

fn parse() -> Args {
    let (mut x, mut y) = (None, None);
    let mut cfg = FitConfig {
        d_sae: 256,
        k: 32,
        epochs: 5,
        lr: 1e-3,
        batch: 512,
    };
    let mut seed = 0u64;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        fn num<T: std::str::FromStr>(flag: &str, v: &str) -> T {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: cannot parse {v:?}")))
        }
        match flag.as_str() {
            "--x" => x = Some(PathBuf::from(value)),
            "--y" => y = Some(PathBuf::from(value)),
            "--d-sae" => cfg.d_sae = num(&flag, &value),
            "--k" => cfg.k = num(&flag, &value),
            "--epochs" => cfg.epochs = num(&flag, &value),
            "--lr" => cfg.lr = num(&flag, &value),
            "--batch" => cfg.batch = num(&flag, &value),
            "--seed" => seed = num(&flag, &value),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    if cfg.batch == 0 || cfg.d_sae == 0 {
        usage("--batch and --d-sae must be positive");
    }
    Args {
        x: x.unwrap_or_else(|| usage("--x is required")),
        y: y.unwrap_or_else(|| usage("--y is required")),
        cfg,
        seed,
    }
}

fn load(path: &Path) -> (Vec<f32>, usize, usize) {
    let a = open(path, &OpenOptions::default()).unwrap_or_else(|e| {
        eprintln!("fit_bench: {}: {e}", path.display());
        exit(1)
    });
    (a.data().to_vec(), a.info().rows, a.info().d_in)
}

/// Divides `m` by the RMS of its first `train` rows' elements (f64, as data.rs).
fn scale(m: &mut [f32], d: usize, train: usize) {
    let ss: f64 = m[..train * d].iter().map(|&v| v as f64 * v as f64).sum();
    let rms = (ss / (train * d) as f64).sqrt();
    assert!(rms > 0.0 && rms.is_finite(), "training RMS {rms}");
    let inv = (1.0 / rms) as f32;
    m.iter_mut().for_each(|v| *v *= inv);
}

fn main() {
    let a = parse();
    let (mut x, rows, d_in) = load(&a.x);
    let (mut y, y_rows, d_out) = load(&a.y);
    if y_rows != rows {
        eprintln!("fit_bench: x has {rows} rows, y has {y_rows}");
        exit(1);
    }
    let held = ((rows as f64) * 0.2).round() as usize;
    let n = rows - held;
    if held < 2 || n < 2 {
        eprintln!("fit_bench: {rows} rows are too few to split");
        exit(1);
    }
    scale(&mut x, d_in, n);
    scale(&mut y, d_out, n);
    let threads = rayon::current_num_threads();
    for (method, t, d_t) in [("transcoder", &y, d_out), ("sae", &x, d_in)] {
        let train = Rows {
            x: &x[..n * d_in],
            t: &t[..n * d_t],
            d_in,
            d_out: d_t,
        };
        let held_out = Rows {
            x: &x[n * d_in..],
            t: &t[n * d_t..],
            d_in,
            d_out: d_t,
        };
        let f = fit(train, held_out, a.cfg, a.seed).unwrap_or_else(|e| {
            eprintln!("fit_bench: {method}: {e}");
            exit(1)
        });
        println!(
            "{}",
            json!({
                "impl": "husai", "method": method, "rows_per_s": f.rows_seen as f64 / f.wall_s,
                "wall_s": f.wall_s, "fvu": f.fvu, "steps": f.steps, "rows_seen": f.rows_seen,
                "final_loss": f.final_loss, "threads": threads, "train_rows": n, "held_rows": held,
                "d_in": d_in, "d_out": d_t, "d_sae": a.cfg.d_sae, "k": a.cfg.k, "epochs": a.cfg.epochs,
                "batch": a.cfg.batch, "lr": a.cfg.lr, "seed": a.seed,
            })
        );
    }
}
