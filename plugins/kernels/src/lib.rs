//! `husai-kernels`: the CPU maths behind husai's sparse-autoencoder training.
//!
//! This crate is deliberately free of I/O policy: callers hand it activation rows as `&[f32]`
//! slices (row-major) and get back plain Rust values. Everything here is deterministic: the same
//! seed gives bit-identical weights, whatever the thread count.
//!
//! Modules, one concept each:
//! - [`gemm`]: dense f32 matrix multiply (wrapper over the `gemm` crate).
//! - [`topk`]: per-row top-k after ReLU and the sparse code it yields.
//! - [`adam`]: Adam with PyTorch semantics.
//! - [`sae`]: the TopK SAE (init, encode, sparse decode, sparse gradients, AuxK).
//! - [`train`]: the training loop, dead-latent tracking and timing.
//! - [`metrics`]: the single definition of MSE, FVU, L0 and dead fraction.
//! - [`synth`]: synthetic activations from a known sparse dictionary, and feature recovery.
//! - [`rng`]: the deterministic PRNG everything above draws from.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod activations;
pub mod adam;
pub mod checkpoint;
pub mod error;
pub mod gemm;
pub mod metrics;
pub mod rng;
pub mod sae;
mod simd;
pub mod synth;
pub mod topk;
pub mod train;

pub use error::KernelError;
pub use sae::{AuxArgs, BatchLoss, EvalMetrics, SaeParts, TopKSae};
pub use train::{AuxKConfig, TrainConfig, TrainOutcome, Trainer, train};
