//! The Pareto plot: SAEBench delta (y) against CE-Bench delta (x) for every candidate that has both, the front
//! highlighted and joined, the selection ringed. Hand-written SVG with fixed number formatting, so the same
//! selection always gives the same bytes (the golden-file test relies on it).

use super::Selection;
use crate::svg::{escape, format_tick, padded, ticks};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

/// Renders the plot. Candidates missing either delta are not drawn (husai runs, which have no CE-Bench delta,
/// never are); the caption says how many.
pub fn pareto_svg(sel: &Selection) -> String {
    let selected = sel.ranked[0];
    let points: Vec<(usize, f64, f64)> = sel
        .candidates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            match (
                c.metrics.cebench_interp_delta_vs_baseline,
                c.metrics.saebench_delta,
            ) {
                (Some(x), Some(y)) if x.is_finite() && y.is_finite() => Some((i, x, y)),
                _ => None,
            }
        })
        .collect();
    let missing = sel.candidates.len() - points.len();
    let basis = if sel.config.group_by_condition {
        match sel.config.uncertainty {
            super::UncertaintyMode::Lcb => "lower confidence bound",
            super::UncertaintyMode::Point => "mean over seeds",
        }
    } else {
        "seed value"
    };
    let mut out = String::new();
    out.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n"
    ));
    out.push_str(&format!(
        "<title>Pareto plot: SAEBench delta vs CE-Bench delta ({basis})</title>\n"
    ));
    out.push_str(&format!(
        "<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#ffffff\"/>\n"
    ));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    out.push_str(&format!(
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#444444\"/>\n"
    ));
    out.push_str(&format!(
        "<text x=\"{:.1}\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">Release candidates ({basis})</text>\n",
        LEFT + plot_w / 2.0
    ));
    out.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">CE-Bench interpretability delta vs baseline</text>\n",
        LEFT + plot_w / 2.0,
        HEIGHT - 16.0
    ));
    out.push_str(&format!(
        "<text x=\"18\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {:.1})\">SAEBench delta (best AUC minus LLM AUC)</text>\n",
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    ));
    if points.is_empty() {
        let husai = sel
            .candidates
            .iter()
            .any(|c| c.evidence() == super::Evidence::Husai);
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0,
            if husai {
                "no candidate has both deltas (CE-Bench does not apply to husai runs)"
            } else {
                "no candidate has both deltas"
            }
        ));
    } else {
        let xs = points.iter().map(|p| p.1);
        let ys = points.iter().map(|p| p.2);
        let (x_lo, x_hi) = padded(
            xs.clone().fold(f64::INFINITY, f64::min),
            xs.fold(f64::NEG_INFINITY, f64::max),
        );
        let (y_lo, y_hi) = padded(
            ys.clone().fold(f64::INFINITY, f64::min),
            ys.fold(f64::NEG_INFINITY, f64::max),
        );
        let px = |x: f64| LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w;
        let py = |y: f64| TOP + plot_h - (y - y_lo) / (y_hi - y_lo) * plot_h;
        let (x_ticks, x_dec) = ticks(x_lo, x_hi);
        for t in x_ticks {
            let x = px(t);
            out.push_str(&format!(
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#dddddd\"/>\n<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                TOP,
                TOP + plot_h,
                TOP + plot_h + 16.0,
                format_tick(t, x_dec)
            ));
        }
        crate::svg::y_grid(&mut out, LEFT, plot_w, y_lo, y_hi, &py);
        // The front as a staircase from the best SAEBench delta down to the best CE-Bench delta.
        let mut front: Vec<&(usize, f64, f64)> =
            points.iter().filter(|p| sel.is_pareto[p.0]).collect();
        front.sort_by(|a, b| a.1.total_cmp(&b.1).then(b.2.total_cmp(&a.2)));
        if front.len() > 1 {
            let mut d = format!("M {:.1} {:.1}", px(front[0].1), py(front[0].2));
            for pair in front.windows(2) {
                d.push_str(&format!(" H {:.1} V {:.1}", px(pair[1].1), py(pair[1].2)));
            }
            out.push_str(&format!(
                "<path d=\"{d}\" fill=\"none\" stroke=\"#d95f02\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>\n"
            ));
        }
        for &(i, x, y) in &points {
            let on_front = sel.is_pareto[i];
            let (fill, radius) = if on_front {
                ("#d95f02", 5.5)
            } else {
                ("#7570b3", 4.0)
            };
            let id = escape(&sel.candidates[i].id);
            out.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{radius}\" fill=\"{fill}\"><title>{id}</title></circle>\n",
                px(x),
                py(y)
            ));
            if on_front || i == selected {
                // Labels of points in the right part of the plot go to their left, so they stay inside the frame.
                let (tx, anchor) = if px(x) > LEFT + plot_w * 0.6 {
                    (px(x) - 8.0, "end")
                } else {
                    (px(x) + 8.0, "start")
                };
                out.push_str(&format!(
                    "<text x=\"{tx:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"{anchor}\">{id}</text>\n",
                    py(y) - 8.0
                ));
            }
            if i == selected {
                out.push_str(&format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"10\" fill=\"none\" stroke=\"#1b9e77\" stroke-width=\"2.5\"/>\n",
                    px(x),
                    py(y)
                ));
            }
        }
    }
    // Legend.
    let lx = WIDTH - RIGHT + 16.0;
    out.push_str(&format!(
        "<circle cx=\"{lx}\" cy=\"{TOP}\" r=\"5.5\" fill=\"#d95f02\"/><text x=\"{}\" y=\"{}\">Pareto front</text>\n",
        lx + 12.0,
        TOP + 4.0
    ));
    out.push_str(&format!(
        "<circle cx=\"{lx}\" cy=\"{}\" r=\"4\" fill=\"#7570b3\"/><text x=\"{}\" y=\"{}\">dominated</text>\n",
        TOP + 22.0,
        lx + 12.0,
        TOP + 26.0
    ));
    out.push_str(&format!(
        "<circle cx=\"{lx}\" cy=\"{}\" r=\"8\" fill=\"none\" stroke=\"#1b9e77\" stroke-width=\"2.5\"/><text x=\"{}\" y=\"{}\">selected</text>\n",
        TOP + 46.0,
        lx + 12.0,
        TOP + 50.0
    ));
    out.push_str(&format!(
        "<text x=\"{lx}\" y=\"{}\" font-size=\"10\">{} plotted, {missing} not plotted</text>\n",
        TOP + 76.0,
        points.len()
    ));
    out.push_str(&format!(
        "<text x=\"{lx}\" y=\"{}\" font-size=\"10\">(missing a delta)</text>\n",
        TOP + 90.0
    ));
    out.push_str("</svg>\n");
    out
}
