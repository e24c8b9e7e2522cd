//! Every CUDA kernel source compiles with NVRTC for sm_80 (A100) and sm_90 (H100/H200), on a machine without a GPU
//! (issue #13). NVRTC is a plain shared library: scripts/nvrtc_venv.sh installs the PyPI wheel
//! nvidia-cuda-nvrtc-cu12 into target/nvrtc-venv and prints the directory holding libnvrtc.so.12, which goes on
//! LD_LIBRARY_PATH for this test (the loader reads it at process start). .ci/run does exactly that:
//!
//!   LD_LIBRARY_PATH=$(scripts/nvrtc_venv.sh) cargo test --release -p husai-kernels --features cuda --test nvrtc_compile
//!
//! Where libnvrtc cannot be loaded the test says so and passes, except under CI (`CI` set), where it fails: CI must
//! compile the kernels.
#![cfg(feature = "cuda")]

use husai_kernels::cuda::{SOURCES, compile, nvrtc_version};

#[test]
fn every_kernel_source_compiles_for_sm_80_and_sm_90() {
    let version = match nvrtc_version() {
        Ok(v) => v,
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {why}");
            return;
        }
        Err(why) => panic!("CI must compile the CUDA kernels: {why}"),
    };
    eprintln!("NVRTC {}.{}", version.0, version.1);
    let mut failures = Vec::new();
    for arch in ["sm_80", "sm_90"] {
        for (file, source, kernels) in SOURCES {
            match compile(file, source, arch) {
                Ok(ptx) => {
                    // Each kernel is an entry point of the PTX, with its C name (extern "C": unmangled).
                    for k in kernels {
                        assert!(
                            ptx.contains(&format!(".entry {k}(")),
                            "{file} for {arch}: no entry {k}"
                        );
                    }
                    let target = format!(".target {arch}");
                    assert!(ptx.contains(&target), "{file}: PTX is not for {arch}");
                }
                Err(log) => failures.push(log),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "NVRTC errors:\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn a_compile_error_reports_nvrtcs_log() {
    if nvrtc_version().is_err() {
        return; // the test above says why, and fails under CI
    }
    let e = compile(
        "broken.cu",
        "extern \"C\" __global__ void f() { undefined_name = 1; }",
        "sm_90",
    )
    .unwrap_err();
    assert!(e.starts_with("broken.cu for sm_90:"), "{e}");
    assert!(e.contains("undefined_name"), "{e}");
}

#[test]
fn a_warning_is_an_error() {
    if nvrtc_version().is_err() {
        return; // the first test says why, and fails under CI
    }
    let e = compile(
        "warns.cu",
        "extern \"C\" __global__ void f(float* p) { int unused_here; p[0] = 1.0f; }",
        "sm_80",
    )
    .unwrap_err();
    assert!(e.starts_with("warns.cu for sm_80:"), "{e}");
    assert!(e.contains("warnings are errors"), "{e}");
    assert!(e.contains("unused_here"), "{e}");
}
