//! The one error type of `husai-kernels`.
//!
//! Every variant names the offending argument or field and says what would fix it, so a caller
//! (a CLI, a plugin) can print the message as-is.

use thiserror::Error;

/// Errors from the kernels: bad shapes, bad configuration values and bad input data.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum KernelError {
    /// A buffer does not have the length its stated shape needs.
    #[error(
        "{what}: expected {expected} f32 values ({shape}) but got {got}; pass a buffer of exactly that length"
    )]
    Shape {
        /// Which buffer, e.g. `"data"` or `"W_dec"`.
        what: String,
        /// Human-readable shape, e.g. `"[1024, 512] row-major"`.
        shape: String,
        /// Number of elements the shape needs.
        expected: usize,
        /// Number of elements given.
        got: usize,
    },
    /// Two operands that must agree on a dimension do not.
    #[error("{what}: dimension mismatch ({detail})")]
    Mismatch {
        /// The operation, e.g. `"matmul"`.
        what: String,
        /// Both dimensions and which operands they come from.
        detail: String,
    },
    /// A configuration value is out of its allowed range.
    #[error("config field `{field}` = {value} is invalid: {reason}")]
    Config {
        /// The field name as it appears in the config struct / JSON.
        field: &'static str,
        /// The rejected value, printed.
        value: String,
        /// What is allowed.
        reason: String,
    },
    /// Input data holds a NaN or infinity, which would poison every parameter through Adam.
    #[error(
        "{what}: non-finite value {value} at row {row}, column {col}; clean or drop that row before training"
    )]
    NonFinite {
        /// Which buffer.
        what: String,
        /// Row (0-based) of the first bad value.
        row: usize,
        /// Column (0-based) of the first bad value.
        col: usize,
        /// The value itself (NaN, inf or -inf).
        value: f32,
    },
    /// The data has fewer rows than one batch needs.
    #[error("data has {rows} rows but one batch needs {batch}; lower `batch` or supply more rows")]
    TooFewRows {
        /// Rows available.
        rows: usize,
        /// Batch size requested.
        batch: usize,
    },
    /// The rayon thread pool could not be built.
    #[error("could not start a pool of {threads} threads: {reason}")]
    ThreadPool {
        /// Requested thread count.
        threads: usize,
        /// The OS / rayon error.
        reason: String,
    },
}

/// Checks that `buf` holds exactly `rows * cols` values.
pub(crate) fn check_len(
    what: &str,
    buf_len: usize,
    rows: usize,
    cols: usize,
) -> Result<(), KernelError> {
    let expected = rows
        .checked_mul(cols)
        .ok_or_else(|| KernelError::Mismatch {
            what: what.to_string(),
            detail: format!("{rows} x {cols} overflows usize"),
        })?;
    if buf_len != expected {
        return Err(KernelError::Shape {
            what: what.to_string(),
            shape: format!("[{rows}, {cols}] row-major"),
            expected,
            got: buf_len,
        });
    }
    Ok(())
}

/// Returns the first non-finite value of a row-major matrix as an error naming its row and column.
pub(crate) fn check_finite(what: &str, data: &[f32], cols: usize) -> Result<(), KernelError> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(KernelError::NonFinite {
            what: what.to_string(),
            row: i / cols.max(1),
            col: i % cols.max(1),
            value: data[i],
        }),
    }
}
