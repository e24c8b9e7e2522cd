//! Throughput of `husai_core::digest` over a directory tree.
//!
//! ```text
//! cargo run --release -p husai-core --example digest_bench -- DIR [--shard-size BYTES] [--runs N] [--mmap] [--plain]
//! ```
//!
//! Hashes every regular file under DIR (recursively) `runs` times (default 5) after one warm-up
//! pass that also pulls the tree into the page cache, and prints each run's GB/s (10^9 bytes per
//! second of wall time) and CPU-seconds per GB (user+sys of all threads; on a busy machine the
//! wall figure suffers, the CPU figure much less), then the medians. `--plain` uses plain sha256 for every file (one core per
//! file), `--mmap` memory-maps items instead of reading them. Compare with `sha256sum` and
//! `openssl dgst -sha256` on the same tree in the same session.
//!
//! `digest_bench --raw` instead measures one core hashing a 256 MiB in-memory buffer with `sha2`,
//! the ceiling for one thread (compare `openssl speed -evp sha256 -bytes 1048576`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use husai_core::digest::{DEFAULT_SHARD_SIZE, DigestMethod, IoMode, digest_files_with};

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--raw") {
        raw_sha256();
        return ExitCode::SUCCESS;
    }
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut shard_size = DEFAULT_SHARD_SIZE;
    let mut runs = 5usize;
    let mut io_mode = IoMode::Read;
    let mut plain = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--shard-size" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) if v > 0 => shard_size = v,
                _ => return usage("--shard-size needs a positive integer"),
            },
            "--runs" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) if v > 0 => runs = v,
                _ => return usage("--runs needs a positive integer"),
            },
            "--mmap" => io_mode = IoMode::Mmap,
            "--plain" => plain = true,
            _ if dir.is_none() && !a.starts_with("--") => dir = Some(PathBuf::from(a)),
            _ => return usage(&format!("unexpected argument {a:?}")),
        }
    }
    let Some(dir) = dir else {
        return usage("missing DIR");
    };

    let mut paths = Vec::new();
    for entry in walkdir::WalkDir::new(&dir).sort_by_file_name() {
        match entry {
            Ok(e) if e.file_type().is_file() => paths.push(e.into_path()),
            Ok(_) => {}
            Err(e) => {
                eprintln!("digest_bench: cannot walk {}: {e}", dir.display());
                return ExitCode::from(2);
            }
        }
    }
    let method = if plain {
        DigestMethod::Sha256
    } else {
        DigestMethod::Sha256Sharded { shard_size }
    };

    let mut total = 0u64;
    let mut rates = Vec::with_capacity(runs);
    let mut cpu_per_gb = Vec::with_capacity(runs);
    for run in 0..=runs {
        let cpu_start = process_cpu_seconds();
        let start = Instant::now();
        let results = digest_files_with(&paths, method, io_mode, &|_| {});
        let secs = start.elapsed().as_secs_f64();
        let mut bytes = 0u64;
        for (p, r) in paths.iter().zip(&results) {
            match r {
                Ok(d) => bytes += d.size,
                Err(e) => {
                    eprintln!("digest_bench: {}: {e}", p.display());
                    return ExitCode::from(2);
                }
            }
        }
        total = bytes;
        if run == 0 {
            continue; // warm-up
        }
        let gbps = bytes as f64 / secs / 1e9;
        let cpu = match (cpu_start, process_cpu_seconds()) {
            (Some(a), Some(b)) => {
                let per_gb = (b - a) / (bytes as f64 / 1e9);
                cpu_per_gb.push(per_gb);
                format!(", {:.2} CPU-s ({per_gb:.3} CPU-s/GB)", b - a)
            }
            _ => String::new(),
        };
        println!("run {run}: {bytes} bytes in {secs:.3} s = {gbps:.3} GB/s{cpu}");
        rates.push(gbps);
    }
    rates.sort_by(f64::total_cmp);
    cpu_per_gb.sort_by(f64::total_cmp);
    if let Some(c) = cpu_per_gb.get(cpu_per_gb.len() / 2) {
        println!("median {c:.3} CPU-seconds per GB (user+sys, all threads)");
    }
    println!(
        "median {:.3} GB/s, best {:.3} GB/s over {} files, {total} bytes ({:?}, io {:?}, {} rayon threads)",
        rates[rates.len() / 2],
        rates[rates.len() - 1],
        paths.len(),
        method,
        io_mode,
        rayon::current_num_threads()
    );
    ExitCode::SUCCESS
}

/// User plus system CPU time of this process so far, from `/proc/self/stat` (Linux; fields 14
/// and 15, in clock ticks of 1/100 s, the value Linux uses on every mainstream architecture).
/// `None` elsewhere. It lets a run on a busy machine still report what the hashing cost.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; the fields after its ')' are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn raw_sha256() {
    use sha2::{Digest as _, Sha256};
    let buf: Vec<u8> = (0..256u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let mut rates = Vec::new();
    let cpu_start = process_cpu_seconds();
    for _ in 0..5 {
        let start = Instant::now();
        let d = Sha256::digest(&buf);
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(d);
        rates.push(buf.len() as f64 / secs / 1e9);
    }
    let cpu = match (cpu_start, process_cpu_seconds()) {
        (Some(a), Some(b)) => format!(
            "; {:.3} GB per CPU-second",
            5.0 * buf.len() as f64 / 1e9 / (b - a)
        ),
        _ => String::new(),
    };
    rates.sort_by(f64::total_cmp);
    println!(
        "sha2 in memory, one core: median {:.3} GB/s wall (runs {rates:.3?}){cpu}",
        rates[2]
    );
}

fn usage(msg: &str) -> ExitCode {
    eprintln!(
        "digest_bench: {msg}\nusage: digest_bench DIR [--shard-size BYTES] [--runs N] [--mmap] [--plain]"
    );
    ExitCode::from(2)
}
