//! A verified run's outputs in another tool's layout (`husai-audit export`).
//!
//! An export reads a run only after it verifies, and only files its statement signs; the copy it writes is a plain
//! directory, not a run: whoever loads it trusts the run it names, not the copy.

pub mod safetensors;
pub mod sparsify;

pub use sparsify::{ExportError, SparsifyExport, export_sparsify};
