//! The CUDA backend's pieces that exist so far (issue #13): the kernel sources, their NVRTC compilation, and the
//! probe for a usable device. No family trains on the GPU yet: [`crate::backend`] refuses `device = cuda` with a
//! message saying so, and `auto` falls back to the CPU.
//!
//! Nothing here links against CUDA. With the cargo feature `cuda`, cudarc loads `libcuda.so` and `libnvrtc.so` at
//! run time (`dynamic-loading`), only when asked, and a machine without them gets an error instead of a crash: the
//! probes check that the library can be loaded before any call (cudarc panics on a missing library otherwise).
//! NVRTC needs no GPU: the PyPI wheel `nvidia-cuda-nvrtc-cu12` ships `libnvrtc.so.12` and compiles the sources to
//! PTX on any Linux machine (scripts/nvrtc_venv.sh; tests/nvrtc_compile.rs compiles every source for sm_80 and sm_90).

/// Every kernel source (file name, text) and the `extern "C"` kernels it defines.
pub const SOURCES: [(&str, &str, &[&str]); 6] = [
    (
        "topk.cu",
        include_str!("kernels/topk.cu"),
        &[
            "topk_rows",
            "batch_topk_histogram",
            "batch_topk_row_ties",
            "exclusive_scan_u32",
            "batch_topk_mask",
        ],
    ),
    (
        "sparse.cu",
        include_str!("kernels/sparse.cu"),
        &[
            "sparse_decode",
            "csr_count",
            "csr_chunk_offsets",
            "csr_fill",
            "latent_gradients",
            "slot_dots",
            "column_sums",
        ],
    ),
    (
        "jumprelu.cu",
        include_str!("kernels/jumprelu.cu"),
        &[
            "jumprelu_forward",
            "jumprelu_backward_pre",
            "jumprelu_backward_threshold",
        ],
    ),
    (
        "optim.cu",
        include_str!("kernels/optim.cu"),
        &[
            "adam_step",
            "square_sums",
            "scale_in_place",
            "unit_rows",
            "project_out_rows",
        ],
    ),
    (
        "auxk.cu",
        include_str!("kernels/auxk.cu"),
        &["dead_latent_mask", "auxk_residual"],
    ),
    (
        "metrics.cu",
        include_str!("kernels/metrics.cu"),
        &["residual_rows", "column_moments", "l0_and_fired"],
    ),
];

/// What a probe found: a usable device, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A device the driver can use.
    Available(DeviceInfo),
    /// Why there is none.
    Unavailable(String),
}

/// The device a run would use, as a manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The driver's device number.
    pub ordinal: i32,
    /// The driver's name for it (e.g. "NVIDIA H200").
    pub name: String,
    /// (major, minor).
    pub compute_capability: (i32, i32),
    /// As `cuDriverGetVersion` reports it: 1000 × major + 10 × minor.
    pub driver_version: i32,
}

/// Looks for device 0 through the driver library. Never panics: a missing library, a failing `cuInit` or no
/// device is an [`Probe::Unavailable`] saying which.
#[cfg(feature = "cuda")]
pub fn probe() -> Probe {
    use cudarc::driver::{result, sys};
    // SAFETY: only dlopen()s candidate names (libcuda.so, libcuda.so.1, ...) and drops what it opened.
    if !unsafe { sys::is_culib_present() } {
        return Probe::Unavailable(
            "libcuda.so could not be loaded (no NVIDIA driver on this machine, or it is not on the loader's path)"
                .into(),
        );
    }
    if let Err(e) = result::init() {
        return Probe::Unavailable(format!("cuInit failed: {e:?}"));
    }
    match result::device::get_count() {
        Ok(0) => return Probe::Unavailable("the driver reports no CUDA device".into()),
        Err(e) => return Probe::Unavailable(format!("cuDeviceGetCount failed: {e:?}")),
        Ok(_) => {}
    }
    let info = (|| -> Result<DeviceInfo, String> {
        let dev = result::device::get(0).map_err(|e| format!("cuDeviceGet(0) failed: {e:?}"))?;
        let name =
            result::device::get_name(dev).map_err(|e| format!("cuDeviceGetName failed: {e:?}"))?;
        let attr = |a| {
            // SAFETY: `dev` is a device handle the driver just returned.
            unsafe { result::device::get_attribute(dev, a) }
                .map_err(|e| format!("cuDeviceGetAttribute: {e:?}"))
        };
        let major = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let mut driver_version = 0;
        // SAFETY: writes one int through a valid pointer.
        unsafe { sys::cuDriverGetVersion(&mut driver_version) }
            .result()
            .map_err(|e| format!("cuDriverGetVersion failed: {e:?}"))?;
        Ok(DeviceInfo {
            ordinal: 0,
            name,
            compute_capability: (major, minor),
            driver_version,
        })
    })();
    match info {
        Ok(i) => Probe::Available(i),
        Err(why) => Probe::Unavailable(why),
    }
}

/// cuBLAS's version (major, minor, patch), or why it cannot be loaded. Needs no device.
#[cfg(feature = "cuda")]
pub fn cublas_version() -> Result<(i32, i32, i32), String> {
    use cudarc::cublas::sys;
    // SAFETY: only dlopen()s candidate names (libcublas.so, libcublas.so.12, ...) and drops what it opened.
    if !unsafe { sys::is_culib_present() } {
        return Err("libcublas.so could not be loaded".into());
    }
    let get = |t| {
        let mut v = 0;
        // SAFETY: writes one int through a valid pointer; needs no handle.
        unsafe { sys::cublasGetProperty(t, &mut v) }
            .result()
            .map(|()| v)
            .map_err(|e| format!("cublasGetProperty failed: {e:?}"))
    };
    Ok((
        get(sys::libraryPropertyType::MAJOR_VERSION)?,
        get(sys::libraryPropertyType::MINOR_VERSION)?,
        get(sys::libraryPropertyType::PATCH_LEVEL)?,
    ))
}

/// Without the `cuda` feature there is no cuBLAS.
#[cfg(not(feature = "cuda"))]
pub fn cublas_version() -> Result<(i32, i32, i32), String> {
    Err("this build has no CUDA backend".into())
}

/// Without the `cuda` feature there is no NVRTC.
#[cfg(not(feature = "cuda"))]
pub fn nvrtc_version() -> Result<(i32, i32), String> {
    Err("this build has no CUDA backend".into())
}

/// The `environment` object a trainer's result carries when it trained on `dev` (trainer contract §5), which the
/// host copies into the run manifest's `environment`: the device's name, `backend` "cuda", the driver's CUDA
/// version, the compute capability, the CUDA runtime pieces husai uses (there is no libcudart: NVRTC, which compiles
/// the kernels, and cuBLAS, null where a library cannot be loaded) and whether TF32 was allowed. A CPU run's result
/// has no such object and its manifest none of the CUDA fields.
pub fn environment(dev: &DeviceInfo, tf32: bool) -> serde_json::Value {
    serde_json::json!({
        "device": dev.name,
        "backend": "cuda",
        "cuda_driver": format!("{}.{}", dev.driver_version / 1000, dev.driver_version % 1000 / 10),
        "compute_capability": format!("{}.{}", dev.compute_capability.0, dev.compute_capability.1),
        "cuda_runtime": nvrtc_version().ok().map(|(a, b)| format!("nvrtc {a}.{b}")),
        "cublas": cublas_version().ok().map(|(a, b, c)| format!("{a}.{b}.{c}")),
        "tf32": tf32,
    })
}

/// Without the `cuda` feature there is nothing to probe.
#[cfg(not(feature = "cuda"))]
pub fn probe() -> Probe {
    Probe::Unavailable(
        "this build has no CUDA backend (husai-kernels was built without its `cuda` cargo feature)"
            .into(),
    )
}

/// The NVRTC library's version, or why it cannot be loaded.
#[cfg(feature = "cuda")]
pub fn nvrtc_version() -> Result<(i32, i32), String> {
    use cudarc::nvrtc::sys;
    // SAFETY: only dlopen()s candidate names and drops what it opened.
    if !unsafe { sys::is_culib_present() } {
        return Err(
            "libnvrtc.so could not be loaded; scripts/nvrtc_venv.sh installs the PyPI wheel \
                    nvidia-cuda-nvrtc-cu12 and prints the directory to put on LD_LIBRARY_PATH"
                .into(),
        );
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: writes two ints through valid pointers.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| format!("nvrtcVersion failed: {e:?}"))?;
    Ok((major, minor))
}

/// NVRTC's options for every kernel source: IEEE division and square root, no flush-to-zero, no fused
/// multiply-add contraction (the CPU engine's arithmetic, so that CPU and GPU runs can be compared within the parity
/// bounds of issue #13), C++17, and every warning enabled in the log.
pub const NVRTC_OPTIONS: [&str; 5] = [
    "--std=c++17",
    "--ftz=false",
    "--prec-div=true",
    "--prec-sqrt=true",
    "--fmad=false",
];

/// Compiles one source to PTX for `arch` (e.g. `"sm_90"`). A compile error, and a warning in NVRTC's log on a
/// successful compile, is an `Err` carrying the log ("`name` for `arch`:" and NVRTC's text): warnings are errors.
#[cfg(feature = "cuda")]
pub fn compile(name: &str, source: &str, arch: &str) -> Result<String, String> {
    use cudarc::nvrtc::result;
    use std::ffi::{CStr, CString};
    nvrtc_version()?;
    let fail = |what: String| format!("{name} for {arch}:\n{what}");
    let src = CString::new(source).map_err(|_| fail("the source holds a NUL byte".into()))?;
    let cname = CString::new(name).map_err(|_| fail("the name holds a NUL byte".into()))?;
    let prog = result::create_program(&src, Some(&cname))
        .map_err(|e| fail(format!("nvrtcCreateProgram failed: {e:?}")))?;
    let mut options: Vec<String> = NVRTC_OPTIONS.iter().map(|o| o.to_string()).collect();
    options.push(format!("--gpu-architecture={arch}"));
    // SAFETY: `prog` was created above and is destroyed once, at the end; `src` and `cname` outlive it.
    let compiled = unsafe { result::compile_program(prog, &options) };
    // SAFETY: as above.
    let log = unsafe { result::get_program_log(prog) }
        .map(|raw| {
            // SAFETY: NVRTC's log is NUL-terminated.
            unsafe { CStr::from_ptr(raw.as_ptr()) }
                .to_string_lossy()
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let ptx = match compiled {
        Err(e) => Err(fail(format!("{e:?}\n{log}"))),
        Ok(()) if log.to_lowercase().contains("warning") => {
            Err(fail(format!("warnings are errors here:\n{log}")))
        }
        // SAFETY: as above; compiled.
        Ok(()) => unsafe { result::get_ptx(prog) }
            .map(|raw| {
                // SAFETY: NVRTC's PTX is NUL-terminated.
                unsafe { CStr::from_ptr(raw.as_ptr()) }
                    .to_string_lossy()
                    .into_owned()
            })
            .map_err(|e| fail(format!("nvrtcGetPTX failed: {e:?}"))),
    };
    // SAFETY: created above, destroyed once.
    let _ = unsafe { result::destroy_program(prog) };
    ptx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_kernel_is_defined_in_its_source() {
        for (file, text, kernels) in SOURCES {
            for k in kernels {
                assert!(
                    text.contains(&format!("__global__ void {k}(")),
                    "{file} does not define {k}"
                );
            }
            let defined = text.matches("__global__ void ").count();
            assert_eq!(
                defined,
                kernels.len(),
                "{file}: list every kernel it defines"
            );
        }
    }

    #[test]
    fn the_environment_names_the_device_and_versions() {
        let dev = DeviceInfo {
            ordinal: 0,
            name: "NVIDIA H200".into(),
            compute_capability: (9, 0),
            driver_version: 12080,
        };
        let e = environment(&dev, true);
        assert_eq!(e["device"], "NVIDIA H200");
        assert_eq!(e["backend"], "cuda");
        assert_eq!(e["cuda_driver"], "12.8");
        assert_eq!(e["compute_capability"], "9.0");
        assert_eq!(e["tf32"], true);
        // Without the libraries (this machine, or a build without the feature) the versions are null.
        if nvrtc_version().is_err() {
            assert!(e["cuda_runtime"].is_null());
        }
        if cublas_version().is_err() {
            assert!(e["cublas"].is_null());
        }
    }

    /// With the backend the probe loads the driver at run time: on a machine without one (this one, CI) it says
    /// that libcuda.so could not be loaded, and it never panics; on a GPU machine it names the device.
    #[cfg(feature = "cuda")]
    #[test]
    fn the_probe_names_what_is_missing_or_the_device() {
        match probe() {
            Probe::Available(dev) => {
                assert!(!dev.name.is_empty());
                assert!(dev.compute_capability.0 >= 3, "{dev:?}");
                eprintln!("probe: {dev:?}");
            }
            Probe::Unavailable(why) => {
                let known = [
                    "libcuda.so could not be loaded (no NVIDIA driver on this machine",
                    "cuInit failed",
                    "the driver reports no CUDA device",
                ];
                assert!(known.iter().any(|k| why.starts_with(k)), "{why}");
                eprintln!("probe: {why}");
            }
        }
        let r = crate::backend::resolve(
            "sae-topk",
            crate::backend::DeviceChoice::Auto,
            &probe(),
            false,
        )
        .unwrap();
        assert_eq!(r.backend, crate::backend::Backend::Cpu);
        assert!(
            r.note.starts_with("device = auto: training on the CPU ("),
            "{}",
            r.note
        );
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn without_the_feature_the_probe_says_so() {
        let Probe::Unavailable(why) = probe() else {
            panic!("no backend, no device")
        };
        assert!(why.contains("without its `cuda` cargo feature"), "{why}");
    }
}
