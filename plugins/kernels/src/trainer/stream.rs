//! `metrics.jsonl`: one JSON object per line (trainer contract §4, schema `schemas/metrics-line.v1.json`):
//!
//! ```text
//! {"step", "elapsed_s", "rows_per_s", "lr", "loss": {"<term>": value, ...}, "mse", "l0", "dead_fraction"}
//! ```
//!
//! plus `"eval": {"mse", "fvu", "l0"}` on lines where a held-out evaluation ran. `loss` terms and `mse` are per
//! element (`husai_kernels::metrics`' MSE; `mse` is the batch's reconstruction MSE, equal to `loss.mse`), `l0` the
//! batch's mean non-zero latents per row, `dead_fraction` the training tracker's share of latents not fired in the
//! last `dead_window` steps, `rows_per_s` the rows trained per second since the previous line (or the start of
//! this process), `elapsed_s` the seconds since this process started training. Non-finite numbers are `null`.
//! Each line is flushed as it is written, so `tail -f` follows a run.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::{TrainerError, num};
use crate::metrics::EvalMetrics;

/// One line of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    /// Optimiser steps done (1-based step just taken).
    pub step: u64,
    /// Seconds since training started in this process.
    pub elapsed_s: f64,
    /// Rows per second since the previous line.
    pub rows_per_s: f64,
    /// Learning rate of the step.
    pub lr: f64,
    /// Loss terms, per element, in the family's order.
    pub loss: &'a [(&'static str, f64)],
    /// Batch reconstruction MSE per element.
    pub mse: f64,
    /// Batch L0.
    pub l0: f64,
    /// Training dead fraction.
    pub dead_fraction: f64,
    /// The held-out evaluation of this step, if one ran.
    pub eval: Option<&'a EvalMetrics>,
}

impl Line<'_> {
    /// The line as a JSON object (field order as in the contract).
    pub fn to_json(&self) -> Value {
        let loss: Map<String, Value> = self
            .loss
            .iter()
            .map(|(k, v)| (k.to_string(), num(*v)))
            .collect();
        let mut v = json!({
            "step": self.step,
            "elapsed_s": num(self.elapsed_s),
            "rows_per_s": num(self.rows_per_s),
            "lr": num(self.lr),
            "loss": loss,
            "mse": num(self.mse),
            "l0": num(self.l0),
            "dead_fraction": num(self.dead_fraction),
        });
        if let Some(e) = self.eval {
            v["eval"] = json!({
                "mse": num(e.reconstruction.mse),
                "fvu": num(e.reconstruction.fvu),
                "l0": num(e.l0),
            });
        }
        v
    }
}

/// The stream file, open for appending lines.
#[derive(Debug)]
pub struct MetricStream {
    path: PathBuf,
    out: BufWriter<File>,
}

impl MetricStream {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, TrainerError> {
        let f = File::create(path)
            .map_err(|e| TrainerError::Output(format!("cannot create {}: {e}", path.display())))?;
        Ok(Self {
            path: path.to_owned(),
            out: BufWriter::new(f),
        })
    }

    /// Appends already-serialised lines verbatim (a resumed run's earlier stream), each followed by a newline.
    pub fn append_raw<'a>(
        &mut self,
        lines: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), TrainerError> {
        for l in lines {
            self.write_bytes(l.as_bytes())?;
        }
        self.flush()
    }

    /// Writes one line and flushes it.
    pub fn write(&mut self, line: &Line<'_>) -> Result<(), TrainerError> {
        let text = serde_json::to_string(&line.to_json()).expect("JSON values serialise");
        self.write_bytes(text.as_bytes())?;
        self.flush()
    }

    fn write_bytes(&mut self, b: &[u8]) -> Result<(), TrainerError> {
        self.out
            .write_all(b)
            .and_then(|_| self.out.write_all(b"\n"))
            .map_err(|e| TrainerError::Output(format!("cannot write {}: {e}", self.path.display())))
    }

    fn flush(&mut self) -> Result<(), TrainerError> {
        self.out
            .flush()
            .map_err(|e| TrainerError::Output(format!("cannot write {}: {e}", self.path.display())))
    }
}

/// A short number for progress text: 4 significant digits, scientific below 0.001.
pub fn short(v: f64) -> String {
    if !v.is_finite() {
        return "nan".into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        let digits = (3 - a.log10().floor().max(-3.0) as i32).clamp(1, 6) as usize;
        format!("{v:.digits$}")
    }
}

/// The progress message for a line: the same quantities and units as the stream and the summary, e.g.
/// `mse 0.01230 aux 1.200e-4 l0 32.0 dead 4.1% eval fvu 0.1810`.
pub fn progress_text(line: &Line<'_>) -> String {
    let mut s = format!("mse {}", short(line.mse));
    for (name, v) in line.loss {
        if *name != "mse" {
            s.push_str(&format!(" {name} {}", short(*v)));
        }
    }
    s.push_str(&format!(
        " l0 {:.1} dead {:.1}%",
        line.l0,
        100.0 * line.dead_fraction
    ));
    if let Some(e) = line.eval {
        s.push_str(&format!(" eval fvu {}", short(e.reconstruction.fvu)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers_and_progress_text() {
        assert_eq!(short(0.0123), "0.01230");
        assert_eq!(short(0.181), "0.1810");
        assert_eq!(short(3.25), "3.250");
        assert_eq!(short(1.2e-4), "1.200e-4");
        assert_eq!(short(f64::NAN), "nan");
        let line = Line {
            step: 3,
            elapsed_s: 1.0,
            rows_per_s: 10.0,
            lr: 1e-3,
            loss: &[("mse", 0.0123), ("aux", 1.2e-4)],
            mse: 0.0123,
            l0: 32.0,
            dead_fraction: 0.041,
            eval: None,
        };
        assert_eq!(
            progress_text(&line),
            "mse 0.01230 aux 1.200e-4 l0 32.0 dead 4.1%"
        );
    }
}
