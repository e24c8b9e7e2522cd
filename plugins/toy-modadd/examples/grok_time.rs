//! Time to grok of the toy model (bench/toy_grok.sh runs it next to the PyTorch eager version): trains with the
//! plugin's defaults (or `--p P --d D --width W --steps N --seed S --threads T`) and prints one JSON line with the
//! wall time to the first held-out accuracy ≥ 0.99, the total time, and the final figures.

use std::time::Instant;

use husai_kernels::fourier;
use husai_toy_modadd::model::{self, GROKKED, ToyConfig};
use husai_toy_modadd::step;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let mut cfg = ToyConfig::new(get("--seed").unwrap_or(0));
    if let Some(v) = get("--p") {
        cfg.p = v as usize;
    }
    if let Some(v) = get("--d") {
        cfg.d_model = v as usize;
    }
    if let Some(v) = get("--width") {
        cfg.width = v as usize;
    }
    if let Some(v) = get("--steps") {
        cfg.steps = v as usize;
    }
    if let Some(v) = get("--eval-every") {
        cfg.eval_every = v as usize;
    }
    let stop_at_grok = args.iter().any(|a| a == "--stop-at-grok");
    let threads = get("--threads").unwrap_or(0) as usize;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let start = Instant::now();
    let mut grok_s = None;
    let t = model::train(&cfg, &pool, &mut |c| {
        if grok_s.is_none() && c.test_acc >= GROKKED {
            grok_s = Some(start.elapsed().as_secs_f64());
        }
        !(stop_at_grok && grok_s.is_some())
    })
    .expect("training");
    let total = start.elapsed().as_secs_f64();
    let energy = fourier::folded_energy(&t.model.embed, cfg.p, cfg.d_model).expect("energy");
    let (share, keys) = fourier::top_share(&energy, 5);
    let last = t.curve.last().expect("a curve point");
    println!(
        "{}",
        serde_json::json!({
            "impl": "husai-rust", "p": cfg.p, "d": cfg.d_model, "width": cfg.width,
            "threads": pool.current_num_threads(), "grok_step": t.grok_step, "grok_seconds": grok_s,
            "total_seconds": total, "steps": t.steps_done, "test_acc": last.test_acc,
            "top5_share": share, "key_frequencies": keys, "train_pairs": t.split.train.len(),
            "train_rows": step::Rows::new(&t.split.train, cfg.p, cfg.leaky_parity).len(),
        })
    );
}
