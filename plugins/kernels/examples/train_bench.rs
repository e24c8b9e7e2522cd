//! Benchmark: train a TopK SAE with husai-kernels on a float32 `.npy` matrix and print one JSON
//! line shaped like the PyTorch peer's (`/work/shared/bench/torch_sae_reference.py`), so the two
//! can be compared field by field.
//!
//! Same protocol as the peer: `--steps N` timed steps after one untimed warm-up step (so N + 1
//! optimiser steps in all), sequential batches `i = (step * batch) % (rows - batch + 1)`, Adam
//! with lr 1e-3 and default betas, FVU and L0 on the first min(rows, 16384) rows.
//!
//! ```text
//! cargo run --release -p husai-kernels --example train_bench -- \
//!     --npy acts.npy --d-sae 4096 --k 32 --batch 4096 --steps 30 [--threads 2] [--seed 0] [--lr 1e-3]
//! ```

use std::process::ExitCode;

use husai_kernels::TrainConfig;
use husai_kernels::adam::AdamConfig;

struct Args {
    npy: String,
    d_sae: usize,
    k: usize,
    batch: usize,
    steps: usize,
    lr: f32,
    seed: u64,
    threads: usize,
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

/// Reads a 2-D little-endian float32 C-order `.npy` file (format versions 1-3).
fn read_npy_f32(path: &str) -> Result<(Vec<f32>, usize, usize), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: cannot read: {e}"))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format!("{path}: not a .npy file (bad magic)"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("{path}: unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + hlen)
        .ok_or_else(|| format!("{path}: truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| format!("{path}: header is not UTF-8"))?;
    let field = |key: &str| -> Result<&str, String> {
        let at = header
            .find(key)
            .ok_or_else(|| format!("{path}: header lacks {key}"))?;
        Ok(header[at + key.len()..].trim_start_matches([':', ' ', '\'']))
    };
    if !field("'descr'")?.starts_with("<f4") {
        return Err(format!(
            "{path}: dtype must be little-endian float32 ('<f4'); header: {header}"
        ));
    }
    if !field("'fortran_order'")?.starts_with("False") {
        return Err(format!("{path}: must be C order (fortran_order False)"));
    }
    let shape = field("'shape'")?;
    let inner = shape
        .trim_start_matches('(')
        .split(')')
        .next()
        .unwrap_or("");
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{path}: bad shape {inner}"))?;
    let [rows, cols] = dims[..] else {
        return Err(format!("{path}: need a 2-D array, shape is ({inner})"));
    };
    let data = &bytes[start + hlen..];
    if data.len() != rows * cols * 4 {
        return Err(format!(
            "{path}: {} data bytes but shape ({rows}, {cols}) needs {}",
            data.len(),
            rows * cols * 4
        ));
    }
    Ok((
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        rows,
        cols,
    ))
}

fn run() -> Result<(), String> {
    let a = parse_args()?;
    let (x, rows, d_in) = read_npy_f32(&a.npy)?;
    let cfg = TrainConfig {
        batch: a.batch,
        steps: a.steps + 1,
        seed: a.seed,
        threads: a.threads,
        adam: AdamConfig {
            lr: a.lr,
            ..Default::default()
        },
        ..TrainConfig::new(a.d_sae, a.k)
    };
    let out = husai_kernels::train(&cfg, &x, d_in, &mut |_, _, _| {}).map_err(|e| e.to_string())?;
    let seconds = (a.steps * a.batch) as f64 / out.rows_per_s;
    println!(
        "{{\"impl\": \"husai-kernels-{}\", \"device\": \"cpu\", \"threads\": {}, \"arch\": \"topk\", \"d_in\": {d_in}, \"d_sae\": {}, \"k\": {}, \"batch\": {}, \"steps\": {}, \"seconds\": {:.4}, \"rows_per_s\": {:.1}, \"fvu\": {:.5}, \"l0\": {:.2}, \"rows\": {rows}, \"final_loss\": {:.5}}}",
        env!("CARGO_PKG_VERSION"),
        a.threads,
        a.d_sae,
        a.k,
        a.batch,
        a.steps,
        seconds,
        out.rows_per_s,
        out.metrics.reconstruction.fvu,
        out.metrics.l0,
        out.loss_curve.last().map_or(f64::NAN, |l| l.total()),
    );
    Ok(())
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
