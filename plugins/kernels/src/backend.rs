//! Which backend a trainer runs on: the `device` config key (`auto`, `cpu`, `cuda`) against what the machine and
//! the build offer (issue #13).
//!
//! - `cpu`: the CPU engine, always.
//! - `cuda`: the GPU, or an error naming what is missing (no driver, no device, no CUDA backend in this build, or
//!   no CUDA engine for this family yet). Never a silent fall-back: a researcher who asked for the GPU and got the
//!   CPU would wait hours for a run that should take minutes.
//! - `auto` (the default): the GPU when it is usable, else the CPU, and the choice and its reason are logged.
//!
//! Hashing. `device` is a config key, so the manifest records it and its `config_sha256` (the digest of the whole
//! recorded config) covers it. But it is an execution choice, the same maths on another backend, so it is left out
//! of the configuration that seeds share: `select` groups husai runs by a hash of the config without `seed`,
//! `resume_from` and `device` (husai_core::gate::source::EXECUTION_KEYS), and a resumed run may change it (the
//! resume fingerprint drops it). `tf32` (allow TF32 in the encoder GEMM; off by default) changes the arithmetic on
//! the GPU, so it stays in both: runs with and without it are different configurations. On the CPU it has no
//! effect.

use crate::cuda::Probe;

/// The `device` config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The GPU when usable, else the CPU (logged).
    Auto,
    /// The CPU.
    Cpu,
    /// The GPU or an error.
    Cuda,
}

impl DeviceChoice {
    /// The key's values, in schema order.
    pub const NAMES: [&'static str; 3] = ["auto", "cpu", "cuda"];

    /// The choice a config value names, if it names one.
    pub fn parse(s: &str) -> Option<DeviceChoice> {
        match s {
            "auto" => Some(DeviceChoice::Auto),
            "cpu" => Some(DeviceChoice::Cpu),
            "cuda" => Some(DeviceChoice::Cuda),
            _ => None,
        }
    }

    /// The config value.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// The backend a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The CPU engine.
    Cpu,
    /// The CUDA engine.
    Cuda,
}

/// The backend chosen and the line that explains the choice (for the run's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Where the run trains.
    pub backend: Backend,
    /// Why, in one line.
    pub note: String,
}

/// Chooses the backend for `family` from the `device` key, what the probe found and whether the family has a CUDA
/// engine in this build; `Err` is the message for `device = cuda` when the GPU cannot be used (the text after
/// "config key `device`").
pub fn resolve(
    family: &str,
    choice: DeviceChoice,
    probe: &Probe,
    cuda_engine: bool,
) -> Result<Resolved, String> {
    let cpu = |note: String| {
        Ok(Resolved {
            backend: Backend::Cpu,
            note,
        })
    };
    let unusable = match probe {
        Probe::Unavailable(why) => Some(why.clone()),
        Probe::Available(dev) if !cuda_engine => Some(format!(
            "{} (compute capability {}.{}) was found, but {family} has no CUDA training engine yet",
            dev.name, dev.compute_capability.0, dev.compute_capability.1
        )),
        Probe::Available(_) => None,
    };
    match (choice, unusable) {
        (DeviceChoice::Cpu, _) => cpu("device = cpu: training on the CPU".into()),
        (DeviceChoice::Auto, Some(why)) => {
            cpu(format!("device = auto: training on the CPU ({why})"))
        }
        (DeviceChoice::Cuda, Some(why)) => Err(format!(
            "= cuda, but the GPU cannot be used: {why}; set device = cpu (or auto, which falls back to the CPU and \
             says so)"
        )),
        (DeviceChoice::Auto | DeviceChoice::Cuda, None) => {
            let Probe::Available(dev) = probe else {
                unreachable!("usable means available")
            };
            Ok(Resolved {
                backend: Backend::Cuda,
                note: format!(
                    "device = {}: training on {} (compute capability {}.{}, driver {}.{})",
                    choice.as_str(),
                    dev.name,
                    dev.compute_capability.0,
                    dev.compute_capability.1,
                    dev.driver_version / 1000,
                    dev.driver_version % 1000 / 10
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::DeviceInfo;

    fn h200() -> Probe {
        Probe::Available(DeviceInfo {
            ordinal: 0,
            name: "NVIDIA H200".into(),
            compute_capability: (9, 0),
            driver_version: 12080,
        })
    }

    #[test]
    fn cpu_is_always_the_cpu() {
        for probe in [h200(), Probe::Unavailable("no driver".into())] {
            for engine in [false, true] {
                let r = resolve("sae-topk", DeviceChoice::Cpu, &probe, engine).unwrap();
                assert_eq!(r.backend, Backend::Cpu);
            }
        }
    }

    #[test]
    fn auto_falls_back_to_the_cpu_and_says_why() {
        let none = Probe::Unavailable("libcuda.so could not be loaded".into());
        let r = resolve("sae-topk", DeviceChoice::Auto, &none, true).unwrap();
        assert_eq!(r.backend, Backend::Cpu);
        assert_eq!(
            r.note,
            "device = auto: training on the CPU (libcuda.so could not be loaded)"
        );
        let r = resolve("sae-topk", DeviceChoice::Auto, &h200(), false).unwrap();
        assert_eq!(r.backend, Backend::Cpu);
        assert_eq!(
            r.note,
            "device = auto: training on the CPU (NVIDIA H200 (compute capability 9.0) was found, but sae-topk has \
             no CUDA training engine yet)"
        );
        let r = resolve("sae-topk", DeviceChoice::Auto, &h200(), true).unwrap();
        assert_eq!(r.backend, Backend::Cuda);
        assert_eq!(
            r.note,
            "device = auto: training on NVIDIA H200 (compute capability 9.0, driver 12.8)"
        );
    }

    #[test]
    fn cuda_without_a_usable_gpu_is_an_error_naming_what_is_missing() {
        let none = Probe::Unavailable("the driver reports no CUDA device".into());
        let e = resolve("sae-relu", DeviceChoice::Cuda, &none, true).unwrap_err();
        assert_eq!(
            e,
            "= cuda, but the GPU cannot be used: the driver reports no CUDA device; set device = cpu (or auto, \
             which falls back to the CPU and says so)"
        );
        let e = resolve("sae-relu", DeviceChoice::Cuda, &h200(), false).unwrap_err();
        assert!(
            e.contains("NVIDIA H200 (compute capability 9.0) was found, but sae-relu has no CUDA training engine yet"),
            "{e}"
        );
        let r = resolve("sae-relu", DeviceChoice::Cuda, &h200(), true).unwrap();
        assert_eq!(r.backend, Backend::Cuda);
    }

    #[test]
    fn names_round_trip() {
        for n in DeviceChoice::NAMES {
            assert_eq!(DeviceChoice::parse(n).unwrap().as_str(), n);
        }
        assert_eq!(DeviceChoice::parse("gpu"), None);
    }
}
