//! Small helpers shared by the SVG writers (law plots, report charts): round ticks, compact
//! labels, escaping, one palette. Plain text output keeps artifacts byte-identical per input.

/// Colour-blind-safe palette (Okabe-Ito), cycled over series.
pub const PALETTE: [&str; 7] = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];

/// A tick mark below the x axis at pixel `x` (axis at pixel height `axis_y`) with its label.
pub fn x_tick(s: &mut String, x: f64, axis_y: f64, label: &str) {
    use std::fmt::Write as _;
    let _ = writeln!(
        s,
        r##"<line x1="{x:.2}" y1="{axis_y:.2}" x2="{x:.2}" y2="{:.2}" stroke="#444"/><text x="{x:.2}" y="{:.2}" text-anchor="middle">{label}</text>"##,
        axis_y + 5.0,
        axis_y + 18.0,
    );
}

/// About five round tick values inside [lo, hi] (steps of 1, 2 or 5 times a power of ten).
pub fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return Vec::new();
    }
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * mag).find(|&s| s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A tick label with just enough decimals for the axis span.
pub fn tick_label(y: f64, span: f64) -> String {
    let decimals = (-(span / 5.0).log10().floor()).clamp(0.0, 8.0) as usize + 1;
    format!("{y:.decimals$}")
}

/// 1.8e9 -> "1.8B", 5e8 -> "500M": compact labels for model sizes and token counts.
pub fn si(v: f64) -> String {
    let (scaled, unit) = if v >= 1e12 {
        (v / 1e12, "T")
    } else if v >= 1e9 {
        (v / 1e9, "B")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{unit}")
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
