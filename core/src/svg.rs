//! Helpers for husai's hand-written SVG (the selector's Pareto plot, the metric curves): escaping, round tick
//! positions and fixed number formatting, so the same data always gives the same bytes.

/// Escapes text for SVG element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "Nice" tick positions (1, 2 or 5 × 10^k steps) covering `[lo, hi]`, about five of them.
pub fn ticks(lo: f64, hi: f64) -> (Vec<f64>, usize) {
    let span = hi - lo;
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * magnitude);
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    ((first..=last).map(|k| k as f64 * step).collect(), decimals)
}

/// Pads a range by 8% on each side (and widens a degenerate one) so points do not sit on the frame.
pub fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        let pad = (hi - lo) * 0.08;
        (lo - pad, hi + pad)
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    }
}

/// A tick label with `decimals` places; a negative zero reads as zero.
pub fn format_tick(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    // "-0" and "-0.00" read as noise on an axis.
    if text
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        text.trim_start_matches('-').to_string()
    } else {
        text
    }
}

/// Horizontal grid lines across a plot area starting at `left`, `width` wide, one per tick of `[lo, hi]`, each
/// labelled at the left edge; `py` maps a data value to its SVG y coordinate.
pub fn y_grid(out: &mut String, left: f64, width: f64, lo: f64, hi: f64, py: &dyn Fn(f64) -> f64) {
    let (y_ticks, decimals) = ticks(lo, hi);
    for t in y_ticks {
        let y = py(t);
        out.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#dddddd\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            left + width,
            left - 6.0,
            y + 4.0,
            format_tick(t, decimals)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside() {
        let (t, d) = ticks(-0.083, -0.021);
        assert_eq!(d, 2);
        assert_eq!(t.first().copied(), Some(-0.08));
        assert!(t.iter().all(|v| (-0.083..=-0.021).contains(v)));
        assert_eq!(format_tick(-0.0, 2), "0.00");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b&\"c\""), "a&lt;b&amp;&quot;c&quot;");
    }
}
