//! Measures the sgemm throughput of husai-kernels' GEMM (the `gemm` crate behind
//! `husai_kernels::gemm::matmul`) on a large square product, and compares it with the machine's
//! theoretical f32 peak.
//!
//! Peak = cores x clock x FLOP/cycle. The clock is the `cpu MHz` that /proc/cpuinfo reports
//! (under KVM this is the nominal TSC clock; turbo may run higher, which this ignores). FLOP/cycle
//! defaults to 32: AMD Zen 4 (EPYC 9004, family 25 model 17) has two 256-bit FMA pipes per core
//! (AVX-512 is executed double-pumped on them), i.e. 2 x 8 lanes x 2 FLOP per FMA. Override with
//! `--flop-per-cycle` on other CPUs.
//!
//! ```text
//! cargo run --release -p husai-kernels --example gemm_peak -- [--n 4096] [--threads 2] [--flop-per-cycle 32]
//! ```

use std::time::Instant;

use husai_kernels::gemm::{MatMut, MatRef, matmul};

fn cpuinfo() -> (usize, f64) {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cores = text.lines().filter(|l| l.starts_with("processor")).count();
    let mhz = text
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN);
    (cores, mhz)
}

fn main() {
    let mut n = 4096usize;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut fpc = 32.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let v = args.next().unwrap_or_default();
        match flag.as_str() {
            "--n" => n = v.parse().expect("--n takes an integer"),
            "--threads" => threads = v.parse().expect("--threads takes an integer"),
            "--flop-per-cycle" => fpc = v.parse().expect("--flop-per-cycle takes a number"),
            other => panic!("unknown flag {other}"),
        }
    }
    let mut rng = husai_kernels::rng::SplitMix64::new(1);
    let a: Vec<f32> = (0..n * n).map(|_| rng.uniform_f32() - 0.5).collect();
    let b: Vec<f32> = (0..n * n).map(|_| rng.uniform_f32() - 0.5).collect();
    let mut c = vec![0f32; n * n];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let mut times = Vec::new();
    for _ in 0..6 {
        let t = Instant::now();
        pool.install(|| {
            matmul(
                MatMut::row_major("c", &mut c, n, n).unwrap(),
                MatRef::row_major("a", &a, n, n).unwrap(),
                MatRef::row_major("b", &b, n, n).unwrap(),
                false,
            )
            .unwrap()
        });
        times.push(t.elapsed().as_secs_f64());
    }
    times.remove(0); // first run: page faults and packing-buffer allocation
    times.sort_by(f64::total_cmp);
    let flops = 2.0 * (n as f64).powi(3);
    let (best, median) = (flops / times[0] / 1e9, flops / times[times.len() / 2] / 1e9);
    let (cores, mhz) = cpuinfo();
    let peak = cores.min(threads) as f64 * mhz * 1e6 * fpc / 1e9;
    println!(
        "{{\"n\": {n}, \"threads\": {threads}, \"gflops_best\": {best:.1}, \"gflops_median\": {median:.1}, \"cores_used\": {}, \"cpu_mhz\": {mhz}, \"flop_per_cycle\": {fpc}, \"peak_gflops\": {peak:.1}, \"fraction_of_peak_best\": {:.3}, \"fraction_of_peak_median\": {:.3}}}",
        cores.min(threads),
        best / peak,
        median / peak
    );
}
