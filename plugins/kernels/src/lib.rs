//! `husai-kernels`: the CPU maths behind husai's sparse-autoencoder training.
//!
//! This crate is deliberately free of I/O policy: callers hand it activation rows as `&[f32]`
//! slices (row-major) and get back plain Rust values. Everything here is deterministic: the same
//! seed gives bit-identical weights, whatever the thread count.
//!
//! Modules, one concept each:
//! - [`gemm`]: dense f32 matrix multiply (wrapper over the `gemm` crate).
//! - [`topk`]: per-row top-k after ReLU and the sparse code it yields.
//! - [`adam`]: Adam with PyTorch's update order and bias correction.
//! - [`family`]: the SAE family interface (activation rule, loss terms, inference rule, family parameters).
//! - [`families`]: the TopK and BatchTopK activation rules on the engine.
//! - [`engine`]: the shared SAE engine every family trains on (forward, sparse backward, AuxK, clipping, Adam,
//!   decoder norms, dead latents, evaluation, resume snapshot).
//! - [`train`]: what the training loop of every family shares: the batch schedule, AuxK settings, dead latents.
//! - [`inference`]: encoding with a saved checkpoint of any family by its inference rule (read from `cfg.json`).
//! - [`bdec`]: decoder-bias initialisation (zeros, mean, geometric median).
//! - [`trainer`]: the family-agnostic half of a trainer plugin (common config, inputs and held-out rows,
//!   metric stream, divergence and interruption, summary and result JSON).
//! - [`state`]: `trainer_state.safetensors`, what exact resume needs beside the checkpoint.
//! - [`metrics`]: the single definition of MSE, FVU, L0 and dead fraction, and the evaluation they make up.
//! - [`synth`]: synthetic activations from a known sparse dictionary, and feature recovery.
//! - [`rng`]: the deterministic PRNG everything above draws from.
//! - [`stats`]: the statistics (re-exported `husai-stats`), for eval plugins.
//!
//! Training TopK on a row-major matrix (here synthetic; a memory-mapped file works the same):
//!
//! ```
//! use husai_kernels::batch_start;
//! use husai_kernels::engine::{EngineConfig, FamilyTrainer};
//! use husai_kernels::families::TopK;
//! use husai_kernels::synth::{SynthConfig, generate, recovery};
//!
//! let data = generate(&SynthConfig {
//!     rows: 2048, d_in: 32, n_features: 64, l0: 3, coef_min: 0.5, coef_max: 1.5, seed: 1,
//! })?;
//! let cfg = EngineConfig { batch: 256, threads: 1, ..EngineConfig::new(128) };
//! let mut t = FamilyTrainer::new(cfg, TopK::new(4, 128), 32, false)?;
//! for step in 0..20 {
//!     let i = batch_start(step, 256, 2048);
//!     t.step(&data.x[i * 32..(i + 256) * 32])?;
//! }
//! let m = t.evaluate(&data.x)?;
//! assert!(m.reconstruction.fvu < 1.0 && m.l0 <= 4.0);
//! let rec = recovery(&data.dictionary, t.model().w_dec(), 32, 0.9)?;
//! assert!((0.0..=1.0).contains(&rec.recovered_fraction));
//! # Ok::<(), husai_kernels::KernelError>(())
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod activations;
pub mod adam;
pub mod backend;
pub mod bdec;
pub mod checkpoint;
pub mod cuda;
pub mod engine;
pub mod error;
pub mod families;
pub mod family;
pub mod fourier;
pub mod gemm;
pub mod inference;
pub mod metrics;
pub mod rng;
pub mod simd;
pub mod state;
/// The statistics core uses (crate `husai-stats`: intervals, seed-level bootstrap, PWMCC, Mann-Whitney U), so that
/// an eval plugin computes each statistic with the one definition the selector and the gate use.
pub use husai_stats as stats;
pub mod synth;
pub mod synth_layers;
#[cfg(feature = "testing")]
pub mod testing;
pub mod topk;
pub mod train;
pub mod trainer;

pub use checkpoint::SaeParts;
pub use error::KernelError;
pub use metrics::EvalMetrics;
pub use train::{AuxKConfig, DeadTracker, batch_start};
