//! The GPU half of issue #13's checks that exist so far, for a session that has a device (bench/cuda_device_check.sh
//! runs it; it needs `--features cuda` and builds nothing on the device):
//!
//!   bench/cuda_device_pack.sh           # here: builds this (and the rest) into target/cuda-carry, stripped
//!   target/cuda-carry/cuda_check        # on the device (carry ["target/cuda-carry"]; target/release is GBs)
//!
//! 1. the probe: device, compute capability, driver;
//! 2. every kernel source compiled by the device's own NVRTC for its architecture, loaded into the driver, and every
//!    listed kernel found;
//! 3. kernels against the CPU code, on seeded random data: `topk_rows` against `topk::select_row` (same latents,
//!    slots and bits, with ties), `sparse_decode` against b_dec + Σ z W_dec in slot order (same bits), `adam_step`
//!    against `adam::Adam` (same bits), `topk_rows` twice (byte-identical), and `topk_rows` under AuxK's rule
//!    (signed values, a dead-latent mask, NaN and -0 in the data) against engine.rs aux_row's rule.
//!
//! One JSON line per check on stdout; exit status 0 when every check passed, 1 when one failed, 2 when there is no
//! usable device (with the probe's reason).

use std::process::ExitCode;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::Ptx;
use husai_kernels::adam::{Adam, AdamConfig, Moments};
use husai_kernels::cuda::{Probe, SOURCES, compile, probe};
use husai_kernels::rng::SplitMix64;
use husai_kernels::topk::select_row;
use serde_json::json;

type Checked = Result<serde_json::Value, String>;
/// A batch's top-k code as the GPU wrote it: indices, values, counts per row.
type GpuCode = (Vec<u32>, Vec<f32>, Vec<i32>);

fn main() -> ExitCode {
    let dev = match probe() {
        Probe::Available(d) => d,
        Probe::Unavailable(why) => {
            println!("{}", json!({"check": "probe", "ok": false, "why": why}));
            return ExitCode::from(2);
        }
    };
    println!(
        "{}",
        json!({"check": "probe", "ok": true, "device": dev.name, "compute_capability": format!("{}.{}",
            dev.compute_capability.0, dev.compute_capability.1), "driver_version": dev.driver_version})
    );
    let arch: &'static str = Box::leak(
        format!(
            "sm_{}{}",
            dev.compute_capability.0, dev.compute_capability.1
        )
        .into(),
    );
    let ctx = match CudaContext::new(0) {
        Ok(c) => c,
        Err(e) => {
            println!(
                "{}",
                json!({"check": "context", "ok": false, "why": format!("{e:?}")})
            );
            return ExitCode::from(1);
        }
    };
    let stream = ctx.default_stream();
    let mut failed = false;
    let mut report = |name: &str, r: Checked| {
        let line = match r {
            Ok(mut v) => {
                v["check"] = json!(name);
                v["ok"] = json!(true);
                v
            }
            Err(why) => {
                failed = true;
                json!({"check": name, "ok": false, "why": why})
            }
        };
        println!("{line}");
    };
    let mut modules = std::collections::BTreeMap::new();
    for (file, source, kernels) in SOURCES {
        let r = (|| -> Checked {
            let ptx = compile(file, source, arch)?;
            let module = ctx
                .load_module(Ptx::from_src(ptx))
                .map_err(|e| format!("load: {e:?}"))?;
            for k in kernels {
                module.load_function(k).map_err(|e| format!("{k}: {e:?}"))?;
            }
            modules.insert(file, module);
            Ok(json!({"file": file, "arch": arch, "kernels": kernels.len()}))
        })();
        report("compile_and_load", r);
    }
    let (Some(topk), Some(sparse), Some(optim)) = (
        modules.get("topk.cu"),
        modules.get("sparse.cu"),
        modules.get("optim.cu"),
    ) else {
        return ExitCode::from(1);
    };
    report(
        "topk_rows_vs_cpu",
        topk_vs_cpu(&stream, topk, 512, 2048, 64),
    );
    report(
        "topk_rows_vs_cpu_k_above_positives",
        topk_vs_cpu(&stream, topk, 64, 96, 200),
    );
    report("topk_rows_auxk_vs_cpu", auxk_vs_cpu(&stream, topk));
    report("sparse_decode_vs_cpu", decode_vs_cpu(&stream, sparse));
    report("adam_step_vs_cpu", adam_vs_cpu(&stream, optim));
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn err(e: impl std::fmt::Debug) -> String {
    format!("{e:?}")
}

/// Coarse values (many ties, many non-positive) so that the tie rule is exercised.
fn coarse(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.below(64) as f32 - 28.0) * 0.0625)
        .collect()
}

/// `topk_rows` on the GPU: `bias` and `allowed` null when `None`; `signed` selects AuxK's rule (any sign).
#[allow(clippy::too_many_arguments)]
fn topk_on_gpu(
    stream: &Arc<CudaStream>,
    module: &Arc<cudarc::driver::CudaModule>,
    pre: &[f32],
    bias: Option<&[f32]>,
    allowed: Option<&[u8]>,
    signed: bool,
    rows: usize,
    m: usize,
    k: usize,
) -> Result<GpuCode, String> {
    let f = module.load_function("topk_rows").map_err(err)?;
    let d_pre = stream.clone_htod(pre).map_err(err)?;
    let d_bias = bias
        .map(|b| stream.clone_htod(b))
        .transpose()
        .map_err(err)?;
    let d_allowed = allowed
        .map(|a| stream.clone_htod(a))
        .transpose()
        .map_err(err)?;
    let mut d_idx = stream.alloc_zeros::<u32>(rows * k).map_err(err)?;
    let mut d_val = stream.alloc_zeros::<f32>(rows * k).map_err(err)?;
    let mut d_nnz = stream.alloc_zeros::<i32>(rows).map_err(err)?;
    // signed_keys 0: TopK's rule (strictly positive values only); 1 is AuxK's.
    let (null, signed_keys, m_i, k_i) = (0u64, i32::from(signed), m as i32, k as i32);
    let cfg = LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut b = stream.launch_builder(&f);
    b.arg(&d_pre);
    match &d_bias {
        Some(x) => b.arg(x),
        None => b.arg(&null),
    };
    match &d_allowed {
        Some(x) => b.arg(x),
        None => b.arg(&null),
    };
    b.arg(&signed_keys).arg(&m_i).arg(&k_i);
    b.arg(&mut d_idx).arg(&mut d_val).arg(&mut d_nnz);
    // SAFETY: the arguments match topk_rows's signature (a null pointer for an absent bias or mask), buffers are
    // rows * k / rows / m long.
    unsafe { b.launch(cfg) }.map_err(err)?;
    Ok((
        stream.clone_dtoh(&d_idx).map_err(err)?,
        stream.clone_dtoh(&d_val).map_err(err)?,
        stream.clone_dtoh(&d_nnz).map_err(err)?,
    ))
}

/// AuxK's rule on the CPU (engine.rs aux_row): among the allowed latents, the `k` largest raw values of any sign,
/// NaN never, largest first, ties to the lower index.
fn aux_row_reference(pre: &[f32], allowed: &[u8], k: usize) -> Vec<(u32, f32)> {
    let mut c: Vec<(u32, f32)> = (0..pre.len())
        .filter(|&j| allowed[j] != 0 && !pre[j].is_nan())
        .map(|j| (j as u32, pre[j]))
        .collect();
    // Stable: equal values keep increasing index order.
    c.sort_by(|a, b| b.1.partial_cmp(&a.1).expect("no NaN"));
    c.truncate(k);
    c
}

fn auxk_vs_cpu(stream: &Arc<CudaStream>, module: &Arc<cudarc::driver::CudaModule>) -> Checked {
    let (rows, m, k) = (256usize, 2048usize, 32usize);
    let mut rng = SplitMix64::new(29);
    let mut pre = coarse(&mut rng, rows * m);
    for v in pre.iter_mut().step_by(97) {
        *v = f32::NAN;
    }
    for v in pre.iter_mut().skip(5).step_by(89) {
        *v = -0.0;
    }
    // About a third of the latents dead.
    let allowed: Vec<u8> = (0..m).map(|_| u8::from(rng.below(3) == 0)).collect();
    let (idx, val, nnz) =
        topk_on_gpu(stream, module, &pre, None, Some(&allowed), true, rows, m, k)?;
    for r in 0..rows {
        let want = aux_row_reference(&pre[r * m..(r + 1) * m], &allowed, k);
        let g = nnz[r] as usize;
        let got: Vec<(u32, u32)> = (0..g)
            .map(|s| (idx[r * k + s], val[r * k + s].to_bits()))
            .collect();
        let want_bits: Vec<(u32, u32)> = want.iter().map(|&(j, v)| (j, v.to_bits())).collect();
        if got != want_bits {
            return Err(format!(
                "row {r}: cpu {:?}, gpu {:?}",
                &want_bits[..want_bits.len().min(6)],
                &got[..got.len().min(6)]
            ));
        }
    }
    Ok(json!({"rows": rows, "m": m, "k": k, "dead": allowed.iter().filter(|&&a| a != 0).count()}))
}

fn topk_vs_cpu(
    stream: &Arc<CudaStream>,
    module: &Arc<cudarc::driver::CudaModule>,
    rows: usize,
    m: usize,
    k: usize,
) -> Checked {
    let mut rng = SplitMix64::new(13);
    let pre = coarse(&mut rng, rows * m);
    let bias = coarse(&mut rng, m);
    let kk = k.min(256);
    let (idx, val, nnz) = topk_on_gpu(stream, module, &pre, Some(&bias), None, false, rows, m, kk)?;
    let again = topk_on_gpu(stream, module, &pre, Some(&bias), None, false, rows, m, kk)?;
    if again != (idx.clone(), val.clone(), nnz.clone()) {
        return Err("two launches on the same input differ".into());
    }
    for r in 0..rows {
        let (mut ci, mut cv) = (vec![0u32; kk], vec![0f32; kk]);
        let n = select_row(&pre[r * m..(r + 1) * m], &bias, None, kk, &mut ci, &mut cv);
        let g = nnz[r] as usize;
        let same = n == g
            && ci[..n] == idx[r * kk..r * kk + n]
            && cv[..n]
                .iter()
                .zip(&val[r * kk..r * kk + n])
                .all(|(a, b)| a.to_bits() == b.to_bits());
        if !same {
            return Err(format!(
                "row {r}: cpu {n} latents {:?}, gpu {g} latents {:?}",
                &ci[..n.min(8)],
                &idx[r * kk..r * kk + g.min(8)]
            ));
        }
    }
    Ok(json!({"rows": rows, "m": m, "k": kk, "deterministic": true}))
}

fn decode_vs_cpu(stream: &Arc<CudaStream>, module: &Arc<cudarc::driver::CudaModule>) -> Checked {
    let (rows, m, k, d) = (256usize, 1024usize, 32usize, 384usize);
    let mut rng = SplitMix64::new(17);
    let w: Vec<f32> = (0..m * d).map(|_| rng.normal() as f32).collect();
    let b: Vec<f32> = (0..d).map(|_| rng.normal() as f32).collect();
    let idx: Vec<u32> = (0..rows * k).map(|_| rng.below(m as u64) as u32).collect();
    let val: Vec<f32> = (0..rows * k).map(|_| rng.uniform_f32()).collect();
    let nnz: Vec<i32> = (0..rows).map(|r| (k - r % 5) as i32).collect();
    let f = module.load_function("sparse_decode").map_err(err)?;
    let (d_idx, d_val, d_nnz) = (
        stream.clone_htod(&idx).map_err(err)?,
        stream.clone_htod(&val).map_err(err)?,
        stream.clone_htod(&nnz).map_err(err)?,
    );
    let (d_w, d_b) = (
        stream.clone_htod(&w).map_err(err)?,
        stream.clone_htod(&b).map_err(err)?,
    );
    let mut d_out = stream.alloc_zeros::<f32>(rows * d).map_err(err)?;
    let (k_i, d_i) = (k as i32, d as i32);
    let cfg = LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (128, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut l = stream.launch_builder(&f);
    l.arg(&d_idx)
        .arg(&d_val)
        .arg(&d_nnz)
        .arg(&k_i)
        .arg(&d_w)
        .arg(&d_b)
        .arg(&d_i)
        .arg(&mut d_out);
    // SAFETY: the arguments match sparse_decode's signature and the buffers' lengths.
    unsafe { l.launch(cfg) }.map_err(err)?;
    let got = stream.clone_dtoh(&d_out).map_err(err)?;
    for r in 0..rows {
        let mut want = b.clone();
        for s in 0..nnz[r] as usize {
            let (j, z) = (idx[r * k + s] as usize, val[r * k + s]);
            husai_kernels::simd::axpy(&mut want, z, &w[j * d..(j + 1) * d]);
        }
        if want
            .iter()
            .zip(&got[r * d..(r + 1) * d])
            .any(|(a, b)| a.to_bits() != b.to_bits())
        {
            return Err(format!(
                "row {r}: the GPU's sums differ from the CPU's bits"
            ));
        }
    }
    Ok(json!({"rows": rows, "m": m, "k": k, "d": d, "bits": "identical"}))
}

fn adam_vs_cpu(stream: &Arc<CudaStream>, module: &Arc<cudarc::driver::CudaModule>) -> Checked {
    let n = 100_003usize;
    let mut rng = SplitMix64::new(19);
    let mut p: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    let grads: Vec<Vec<f32>> = (0..3)
        .map(|_| (0..n).map(|_| rng.normal() as f32).collect())
        .collect();
    let cfg = AdamConfig::default();
    let f = module.load_function("adam_step").map_err(err)?;
    let mut d_p = stream.clone_htod(&p).map_err(err)?;
    let mut d_m = stream.alloc_zeros::<f32>(n).map_err(err)?;
    let mut d_v = stream.alloc_zeros::<f32>(n).map_err(err)?;
    let mut adam = Adam::new(cfg).map_err(err)?;
    let mut moments = Moments::zeros(n);
    for (t, g) in grads.iter().enumerate() {
        adam.begin_step();
        adam.update(&mut p, g, &mut moments).map_err(err)?;
        let t = t as i32 + 1;
        let bc1 = 1.0 - (cfg.beta1 as f64).powi(t);
        let bc2 = 1.0 - (cfg.beta2 as f64).powi(t);
        let (step_size, bc2_sqrt) = ((cfg.lr as f64 / bc1) as f32, bc2.sqrt() as f32);
        let (w1, w2, n_i) = (1.0 - cfg.beta1, 1.0 - cfg.beta2, n as i64);
        let d_g = stream.clone_htod(g).map_err(err)?;
        let launch = LaunchConfig {
            grid_dim: (256, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = stream.launch_builder(&f);
        l.arg(&mut d_p)
            .arg(&d_g)
            .arg(&mut d_m)
            .arg(&mut d_v)
            .arg(&n_i);
        l.arg(&step_size)
            .arg(&bc2_sqrt)
            .arg(&cfg.beta2)
            .arg(&w1)
            .arg(&w2)
            .arg(&cfg.eps);
        // SAFETY: the arguments match adam_step's signature and the buffers hold n values.
        unsafe { l.launch(launch) }.map_err(err)?;
    }
    let got = stream.clone_dtoh(&d_p).map_err(err)?;
    let differ = p
        .iter()
        .zip(&got)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    if differ > 0 {
        return Err(format!(
            "{differ} of {n} parameters differ from the CPU's bits after 3 steps"
        ));
    }
    Ok(json!({"n": n, "steps": 3, "bits": "identical"}))
}
