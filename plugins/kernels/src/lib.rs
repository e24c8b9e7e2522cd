//! `husai-kernels`: the CPU maths behind husai's sparse-autoencoder training.
//!
//! This crate is deliberately free of I/O policy: callers hand it activation rows as `&[f32]`
//! slices (row-major) and get back plain Rust values. Everything here is deterministic for a fixed
//! seed and thread count.

pub mod activations;
