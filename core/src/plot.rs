//! Training curves: the `metrics.jsonl` streams (docs/trainer-contract.md §4) of one or several verified train
//! runs, drawn on shared axes so that runs can be compared by eye.
//!
//! Each run is verified against the trust policy, its `metrics.jsonl` must be one of its signed subjects, and the
//! bytes read must hash to the signed digest, so the curves are exactly what the run signed. Every line is validated
//! against `schemas/metrics-line.v1.json`; a bad line is an error naming the run, the line number and the field.
//!
//! The plot has one panel per quantity (each loss term, L0, dead fraction, and held-out FVU when any run evaluated
//! held-out rows), one above the other on one step axis, and a legend naming the runs. Null figures (non-finite
//! values) break a curve instead of being drawn. The SVG is hand-written with fixed number formatting, so the same
//! streams always give the same bytes (the golden-file test relies on it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::digest::sha256_hex;
use crate::manifest::RunStatus;
use crate::svg::{escape, format_tick, padded, ticks};
use crate::trust::TrustPolicy;
use crate::verify::{self, RunVerifyError};

/// The metric stream's file name in a train run.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The schema every line of it satisfies.
pub const METRICS_LINE_SCHEMA: &str = "metrics-line.v1";

/// Held-out figures on a line where an evaluation ran.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EvalFigures {
    pub mse: Option<f64>,
    pub fvu: Option<f64>,
    pub l0: Option<f64>,
}

/// One line of `metrics.jsonl`; `None` is a null (non-finite) figure.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MetricLine {
    pub step: u64,
    pub elapsed_s: Option<f64>,
    pub rows_per_s: Option<f64>,
    pub lr: Option<f64>,
    pub loss: BTreeMap<String, Option<f64>>,
    pub mse: Option<f64>,
    pub l0: Option<f64>,
    pub dead_fraction: Option<f64>,
    #[serde(default)]
    pub eval: Option<EvalFigures>,
}

/// The metric stream of one run, as plotted.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMetrics {
    /// How the legend names the run (`campaign/run_id` for a verified run).
    pub label: String,
    pub status: RunStatus,
    pub lines: Vec<MetricLine>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("no runs to plot; name one or more train run directories")]
    NoRuns,
    #[error(
        "{} is not a run directory or inside one (no husai.dsse.json above it); plot takes signed train runs",
        path.display()
    )]
    NotARun { path: PathBuf },
    #[error("{source}")]
    Unverified {
        #[source]
        source: Box<RunVerifyError>,
    },
    #[error("run {run} is given twice; name each run once")]
    Duplicate { run: String },
    #[error(
        "run {run} ({}, kind {kind}) has no {METRICS_FILE} among its signed outputs; only train runs stream metrics \
         (docs/trainer-contract.md §4)",
        dir.display()
    )]
    NoMetrics {
        run: String,
        dir: PathBuf,
        kind: String,
    },
    #[error(
        "run {run}: {METRICS_FILE} is signed with a sharded digest only (a file over the shard size), which plot does not read"
    )]
    NoSha256 { run: String },
    #[error(
        "run {run}: {}: the bytes read hash to {actual}, but the run signed {expected}; the file changed after signing",
        path.display()
    )]
    DigestMismatch {
        run: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("run {run}: cannot read {}: {source}", path.display())]
    Io {
        run: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "run {run}: {} line {line}: {detail} (each line must match schemas/{METRICS_LINE_SCHEMA}.json)",
        path.display()
    )]
    BadLine {
        run: String,
        path: PathBuf,
        /// 1-based.
        line: usize,
        detail: String,
    },
    #[error("run {run}: {} holds no metric lines", path.display())]
    Empty { run: String, path: PathBuf },
}

impl PlotError {
    /// Whether this is a verification failure (a run that does not verify), as opposed to bad or missing data.
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            PlotError::Unverified { .. } | PlotError::DigestMismatch { .. }
        )
    }
}

/// Parses and validates a metric stream. `run` and `path` name it in errors. Blank lines are skipped; steps must
/// increase from line to line.
pub fn parse_metrics(run: &str, path: &Path, bytes: &[u8]) -> Result<Vec<MetricLine>, PlotError> {
    let bad = |line: usize, detail: String| PlotError::BadLine {
        run: run.to_owned(),
        path: path.to_owned(),
        line,
        detail,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        bad(line, "not UTF-8".to_owned())
    })?;
    let mut lines: Vec<MetricLine> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| bad(n, format!("not a JSON object: {e}")))?;
        crate::schema::validate(METRICS_LINE_SCHEMA, &value).map_err(|e| {
            let fields: Vec<String> = e.violations.iter().map(|v| name_field(v)).collect();
            bad(n, fields.join("; "))
        })?;
        let line: MetricLine = serde_json::from_value(value)
            .map_err(|e| bad(n, format!("does not read as a metric line: {e}")))?;
        if let Some(prev) = lines.last().map(|l| l.step).filter(|p| line.step <= *p) {
            return Err(bad(
                n,
                format!(
                    "field step: {} does not follow step {prev} of the line before; steps must increase",
                    line.step
                ),
            ));
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return Err(PlotError::Empty {
            run: run.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(lines)
}

/// A schema violation (`<pointer>: <message>`) phrased with the field it concerns.
fn name_field(violation: &str) -> String {
    match violation.split_once(": ") {
        Some(("/", message)) => message.to_owned(),
        Some((pointer, message)) => {
            format!(
                "field {}: {message}",
                pointer.trim_start_matches('/').replace('/', ".")
            )
        }
        None => violation.to_owned(),
    }
}

/// Verifies the run at `dir` (a run directory or a file inside one) and reads its signed metric stream.
pub fn load_run(dir: &Path, trust: &TrustPolicy) -> Result<RunMetrics, PlotError> {
    let (run_dir, _) = verify::enclosing_run(dir).ok_or_else(|| PlotError::NotARun {
        path: dir.to_owned(),
    })?;
    let run = verify::load_verified_run(&run_dir, trust).map_err(|e| PlotError::Unverified {
        source: Box::new(e),
    })?;
    let m = &run.manifest;
    let label = format!("{}/{}", m.campaign, m.run_id);
    let subject = run
        .subject(METRICS_FILE)
        .ok_or_else(|| PlotError::NoMetrics {
            run: label.clone(),
            dir: run_dir.clone(),
            kind: m.kind.to_string(),
        })?;
    let expected = subject
        .digest
        .get("sha256")
        .ok_or_else(|| PlotError::NoSha256 { run: label.clone() })?;
    let path = run_dir.join(METRICS_FILE);
    let bytes = std::fs::read(&path).map_err(|source| PlotError::Io {
        run: label.clone(),
        path: path.clone(),
        source,
    })?;
    let actual = sha256_hex(&bytes);
    if &actual != expected {
        return Err(PlotError::DigestMismatch {
            run: label,
            path,
            expected: expected.clone(),
            actual,
        });
    }
    let lines = parse_metrics(&label, &path, &bytes)?;
    Ok(RunMetrics {
        label,
        status: m.status,
        lines,
    })
}

/// Verifies every run, reads their streams and renders the plot.
pub fn plot_runs(dirs: &[PathBuf], trust: &TrustPolicy) -> Result<String, PlotError> {
    if dirs.is_empty() {
        return Err(PlotError::NoRuns);
    }
    let mut runs: Vec<RunMetrics> = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let run = load_run(dir, trust)?;
        if runs.iter().any(|r| r.label == run.label) {
            return Err(PlotError::Duplicate { run: run.label });
        }
        runs.push(run);
    }
    Ok(render_svg(&runs))
}

/// What one panel shows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Quantity {
    Loss(String),
    L0,
    DeadFraction,
    HeldOutFvu,
}

impl Quantity {
    fn title(&self) -> String {
        match self {
            Quantity::Loss(term) => format!("loss: {term} (per element)"),
            Quantity::L0 => "L0 (mean non-zero latents per row)".to_owned(),
            Quantity::DeadFraction => {
                "dead fraction (not fired in the last dead_window steps)".to_owned()
            }
            Quantity::HeldOutFvu => "held-out FVU (fraction of variance unexplained)".to_owned(),
        }
    }

    /// The value on `line`: `None` when the line does not carry the quantity (a line without held-out
    /// evaluation), `Some(None)` when it carries a null.
    fn value(&self, line: &MetricLine) -> Option<Option<f64>> {
        match self {
            Quantity::Loss(term) => Some(line.loss.get(term).copied().flatten()),
            Quantity::L0 => Some(line.l0),
            Quantity::DeadFraction => Some(line.dead_fraction),
            Quantity::HeldOutFvu => line.eval.as_ref().map(|e| e.fvu),
        }
    }

    /// Sparse quantities get a marker at every point.
    fn marked(&self) -> bool {
        matches!(self, Quantity::HeldOutFvu)
    }
}

/// The panels for these runs: each loss term any run reports (by name), L0, dead fraction, and held-out FVU when any
/// run has a held-out line.
fn quantities(runs: &[RunMetrics]) -> Vec<Quantity> {
    let terms: BTreeSet<&String> = runs
        .iter()
        .flat_map(|r| r.lines.iter().flat_map(|l| l.loss.keys()))
        .collect();
    let mut out: Vec<Quantity> = terms
        .into_iter()
        .map(|t| Quantity::Loss(t.clone()))
        .collect();
    out.push(Quantity::L0);
    out.push(Quantity::DeadFraction);
    if runs
        .iter()
        .any(|r| r.lines.iter().any(|l| l.eval.is_some()))
    {
        out.push(Quantity::HeldOutFvu);
    }
    out
}

/// Colour-blind-safe qualitative colours (ColorBrewer Dark2); runs past the eighth are dashed.
const PALETTE: [&str; 8] = [
    "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
];

const WIDTH: f64 = 760.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 24.0;
const LEGEND_TOP: f64 = 44.0;
const LEGEND_ROW: f64 = 16.0;
const PANEL_H: f64 = 140.0;
/// Space above each panel, for its title.
const PANEL_GAP: f64 = 34.0;
const BOTTOM: f64 = 52.0;

/// Renders the curves of `runs` (at least one).
pub fn render_svg(runs: &[RunMetrics]) -> String {
    let panels = quantities(runs);
    let plot_w = WIDTH - LEFT - RIGHT;
    let first_top = LEGEND_TOP + LEGEND_ROW * runs.len() as f64 + PANEL_GAP;
    let height = first_top + (PANEL_H + PANEL_GAP) * panels.len() as f64 - PANEL_GAP + BOTTOM;
    let steps = runs
        .iter()
        .flat_map(|r| r.lines.iter().map(|l| l.step as f64));
    let (x_lo, x_hi) = match (steps.clone().reduce(f64::min), steps.reduce(f64::max)) {
        (Some(lo), Some(hi)) if hi > lo => (lo, hi),
        (Some(lo), _) => padded(lo, lo),
        _ => (0.0, 1.0),
    };
    let px = |x: f64| LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w;
    let (x_ticks, x_dec) = ticks(x_lo, x_hi);

    let mut out = String::new();
    out.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.0}\" viewBox=\"0 0 {WIDTH} {height:.0}\" font-family=\"sans-serif\" font-size=\"12\">\n"
    ));
    let runs_word = if runs.len() == 1 { "run" } else { "runs" };
    out.push_str(&format!(
        "<title>Training curves of {} {runs_word} by step</title>\n",
        runs.len()
    ));
    out.push_str(&format!(
        "<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height:.0}\" fill=\"#ffffff\"/>\n"
    ));
    out.push_str(&format!(
        "<text x=\"{:.1}\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">Training curves ({} {runs_word})</text>\n",
        LEFT + plot_w / 2.0,
        runs.len()
    ));

    // Legend: one row per run, with what it holds.
    for (i, run) in runs.iter().enumerate() {
        let y = LEGEND_TOP + LEGEND_ROW * i as f64;
        let nulls = null_count(run, &panels);
        let first = run.lines.first().map_or(0, |l| l.step);
        let last = run.lines.last().map_or(0, |l| l.step);
        let mut note = format!("{} lines, steps {first}–{last}", run.lines.len());
        if run.status != RunStatus::Ok {
            note.push_str(&format!(", status {}", run.status));
        }
        if nulls > 0 {
            note.push_str(&format!(", {nulls} null figures not drawn"));
        }
        out.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" stroke-width=\"2.5\"{}/><text x=\"{:.1}\" y=\"{:.1}\">{} <tspan fill=\"#666666\" font-size=\"10\">({})</tspan></text>\n",
            LEFT + 24.0,
            PALETTE[i % PALETTE.len()],
            dash(i),
            LEFT + 32.0,
            y + 4.0,
            escape(&run.label),
            escape(&note)
        ));
    }

    for (p, quantity) in panels.iter().enumerate() {
        let top = first_top + (PANEL_H + PANEL_GAP) * p as f64;
        let bottom_panel = p + 1 == panels.len();
        out.push_str(&format!(
            "<text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"13\">{}</text>\n",
            top - 8.0,
            escape(&quantity.title())
        ));
        out.push_str(&format!(
            "<rect x=\"{LEFT}\" y=\"{top:.1}\" width=\"{plot_w}\" height=\"{PANEL_H}\" fill=\"none\" stroke=\"#444444\"/>\n"
        ));
        for &t in &x_ticks {
            let x = px(t);
            out.push_str(&format!(
                "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#dddddd\"/>\n",
                top + PANEL_H
            ));
            if bottom_panel {
                out.push_str(&format!(
                    "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                    top + PANEL_H + 16.0,
                    format_tick(t, x_dec)
                ));
            }
        }
        let values: Vec<f64> = runs
            .iter()
            .flat_map(|r| r.lines.iter().filter_map(|l| quantity.value(l).flatten()))
            .filter(|v| v.is_finite())
            .collect();
        let (Some(lo), Some(hi)) = (
            values.iter().copied().reduce(f64::min),
            values.iter().copied().reduce(f64::max),
        ) else {
            out.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#666666\">no finite values</text>\n",
                LEFT + plot_w / 2.0,
                top + PANEL_H / 2.0
            ));
            continue;
        };
        let (y_lo, y_hi) = padded(lo, hi);
        let py = |y: f64| top + PANEL_H - (y - y_lo) / (y_hi - y_lo) * PANEL_H;
        crate::svg::y_grid(&mut out, LEFT, plot_w, y_lo, y_hi, &py);
        for (i, run) in runs.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            for segment in segments(run, quantity) {
                let points: Vec<(f64, f64)> = segment
                    .iter()
                    .map(|&(s, v)| (px(s as f64), py(v)))
                    .collect();
                if points.len() > 1 {
                    let mut d = format!("M {:.1} {:.1}", points[0].0, points[0].1);
                    for (x, y) in &points[1..] {
                        d.push_str(&format!(" L {x:.1} {y:.1}"));
                    }
                    out.push_str(&format!(
                        "<path d=\"{d}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"{}/>\n",
                        dash(i)
                    ));
                }
                if points.len() == 1 || quantity.marked() {
                    for (x, y) in points {
                        out.push_str(&format!(
                            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\" fill=\"{colour}\"/>\n"
                        ));
                    }
                }
            }
        }
    }
    out.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">step</text>\n",
        LEFT + plot_w / 2.0,
        height - 14.0
    ));
    out.push_str("</svg>\n");
    out
}

/// The runs past the palette's length are told apart by a dash pattern.
fn dash(run_index: usize) -> &'static str {
    if run_index < PALETTE.len() {
        ""
    } else {
        " stroke-dasharray=\"6 3\""
    }
}

/// The stretches of `quantity` in `run` without a null, as (step, value) points.
fn segments(run: &RunMetrics, quantity: &Quantity) -> Vec<Vec<(u64, f64)>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for line in &run.lines {
        match quantity.value(line) {
            None => {}
            Some(Some(v)) if v.is_finite() => current.push((line.step, v)),
            Some(_) if !current.is_empty() => out.push(std::mem::take(&mut current)),
            Some(_) => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Null figures of `run` among the plotted quantities.
fn null_count(run: &RunMetrics, panels: &[Quantity]) -> usize {
    panels
        .iter()
        .map(|q| {
            run.lines
                .iter()
                .filter(|l| matches!(q.value(l), Some(None)))
                .count()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(step: u64, mse: Option<f64>) -> String {
        let mse = mse.map_or("null".to_owned(), |v| v.to_string());
        format!(
            r#"{{"step":{step},"elapsed_s":1.0,"rows_per_s":10.0,"lr":0.001,"loss":{{"mse":{mse}}},"mse":{mse},"l0":4.0,"dead_fraction":0.0}}"#
        )
    }

    #[test]
    fn nulls_break_a_curve() {
        let text = [
            line(1, Some(0.5)),
            line(2, None),
            line(3, Some(0.2)),
            line(4, Some(0.1)),
        ]
        .join("\n");
        let lines = parse_metrics("r", Path::new("m.jsonl"), text.as_bytes()).unwrap();
        let run = RunMetrics {
            label: "r".into(),
            status: RunStatus::Ok,
            lines,
        };
        let q = Quantity::Loss("mse".into());
        assert_eq!(
            segments(&run, &q),
            vec![vec![(1, 0.5)], vec![(3, 0.2), (4, 0.1)]]
        );
        assert_eq!(null_count(&run, &quantities(std::slice::from_ref(&run))), 1);
    }

    #[test]
    fn steps_must_increase_and_lines_must_be_json() {
        let text = [line(2, Some(0.5)), line(2, Some(0.4))].join("\n");
        let msg = parse_metrics("c/r", Path::new("m.jsonl"), text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("run c/r: m.jsonl line 2: field step: 2 does not follow step 2"),
            "{msg}"
        );
        let msg = parse_metrics("c/r", Path::new("m.jsonl"), b"\n{\"step\": 1,\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("run c/r: m.jsonl line 2: not a JSON object"),
            "{msg}"
        );
        let msg = parse_metrics("c/r", Path::new("m.jsonl"), b"\n\n")
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "run c/r: m.jsonl holds no metric lines");
        let msg = parse_metrics("c/r", Path::new("m.jsonl"), b"{}\n\xff\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("run c/r: m.jsonl line 2: not UTF-8"),
            "{msg}"
        );
    }

    #[test]
    fn violations_are_phrased_by_field() {
        assert_eq!(
            name_field("/loss/mse: \"x\" is not of types \"null\", \"number\""),
            "field loss.mse: \"x\" is not of types \"null\", \"number\""
        );
        assert_eq!(
            name_field("/: \"l0\" is a required property"),
            "\"l0\" is a required property"
        );
    }
}
