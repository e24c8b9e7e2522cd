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
//! - [`sae`]: the TopK SAE (init, encode, sparse decode, sparse gradients, AuxK).
//! - [`train`]: the training loop, dead-latent tracking, timing and the exact-resume snapshot.
//! - [`inference`]: encoding with a saved checkpoint of any family by its inference rule (read from `cfg.json`).
//! - [`bdec`]: decoder-bias initialisation (zeros, mean, geometric median).
//! - [`trainer`]: the family-agnostic half of a trainer plugin (common config, inputs and held-out rows,
//!   metric stream, divergence and interruption, summary and result JSON).
//! - [`state`]: `trainer_state.safetensors`, what exact resume needs beside the checkpoint.
//! - [`metrics`]: the single definition of MSE, FVU, L0 and dead fraction.
//! - [`synth`]: synthetic activations from a known sparse dictionary, and feature recovery.
//! - [`rng`]: the deterministic PRNG everything above draws from.
//! - [`stats`]: the statistics (re-exported `husai-stats`), for eval plugins.
//!
//! Training on a row-major matrix (here synthetic; a memory-mapped file works the same):
//!
//! ```
//! use husai_kernels::synth::{SynthConfig, generate, recovery};
//! use husai_kernels::{TrainConfig, train};
//!
//! let data = generate(&SynthConfig {
//!     rows: 2048, d_in: 32, n_features: 64, l0: 3, coef_min: 0.5, coef_max: 1.5, seed: 1,
//! })?;
//! let cfg = TrainConfig { batch: 256, steps: 20, threads: 1, ..TrainConfig::new(128, 4) };
//! let out = train(&cfg, &data.x, 32, &mut |_step, _steps, _loss| {})?;
//! assert_eq!(out.loss_curve.len(), 20);
//! assert!(out.metrics.reconstruction.fvu < 1.0 && out.metrics.l0 <= 4.0);
//! let rec = recovery(&data.dictionary, out.model.w_dec(), 32, 0.9)?;
//! assert!((0.0..=1.0).contains(&rec.recovered_fraction));
//! # Ok::<(), husai_kernels::KernelError>(())
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod activations;
pub mod adam;
pub mod bdec;
pub mod checkpoint;
pub mod engine;
pub mod error;
pub mod families;
pub mod family;
pub mod fourier;
pub mod gemm;
pub mod inference;
pub mod metrics;
pub mod rng;
pub mod sae;
mod simd;
pub mod state;
/// The statistics core uses (crate `husai-stats`: intervals, seed-level bootstrap, PWMCC, Mann-Whitney U), so that
/// an eval plugin computes each statistic with the one definition the selector and the gate use.
pub use husai_stats as stats;
pub mod synth;
pub mod topk;
pub mod train;
pub mod trainer;

pub use error::KernelError;
pub use sae::{AuxArgs, BatchLoss, EvalMetrics, SaeParts, TopKSae};
pub use train::{
    AuxKConfig, TrainConfig, TrainOutcome, Trainer, TrainerSnapshot, batch_start, train,
};
