//! Line and grouped-bar charts as plain SVG text, for the run report.
//!
//! Fixed-precision numbers and no randomness: the same data give the same bytes, so a report
//! artifact is reproducible and its snapshots stable.

use std::fmt::Write as _;

use crate::svg::{PALETTE, escape, si, tick_label, ticks, x_tick};

/// One line of a [`LineChart`].
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    /// Index into the palette: series that belong together (realized and target share of one
    /// part) share a colour.
    pub colour: usize,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
    pub markers: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Fixed y range (e.g. 0..1 for shares); otherwise from the data.
    pub y_range: Option<(f64, f64)>,
    /// Label y ticks as percentages.
    pub percent: bool,
}

const W: f64 = 720.0;
const H: f64 = 380.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;

fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    (lo.is_finite() && hi.is_finite()).then_some((lo, hi))
}

/// Pads a range so points sit inside the frame, and gives an empty range some height.
fn padded((lo, hi): (f64, f64)) -> (f64, f64) {
    let pad = ((hi - lo) * 0.06).max(1e-6 * hi.abs().max(1.0));
    (lo - pad, hi + pad)
}

fn frame(s: &mut String, title: &str, x_label: &str, y_label: &str) {
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(s, r##"<rect width="{W}" height="{H}" fill="white"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="{:.2}" y="22" text-anchor="middle" font-size="14">{}</text>"##,
        LEFT + pw / 2.0,
        escape(title)
    );
    let _ = writeln!(s, r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="{:.2}" y="{:.2}" text-anchor="middle">{}</text>"##,
        LEFT + pw / 2.0,
        H - 10.0,
        escape(x_label)
    );
    let _ = writeln!(
        s,
        r##"<text x="16" y="{0:.2}" text-anchor="middle" transform="rotate(-90 16 {0:.2})">{1}</text>"##,
        TOP + ph / 2.0,
        escape(y_label)
    );
}

fn y_ticks(s: &mut String, (y0, y1): (f64, f64), percent: bool, py: impl Fn(f64) -> f64) {
    for y in ticks(y0, y1) {
        let label = if percent { format!("{:.0}%", y * 100.0) } else { tick_label(y, y1 - y0) };
        let _ = writeln!(
            s,
            r##"<line x1="{0:.2}" y1="{1:.2}" x2="{2:.2}" y2="{1:.2}" stroke="#ddd"/><text x="{3:.2}" y="{4:.2}" text-anchor="end">{5}</text>"##,
            LEFT,
            py(y),
            W - RIGHT,
            LEFT - 8.0,
            py(y) + 4.0,
            label
        );
    }
}

fn legend_entry(s: &mut String, k: usize, label: &str, colour: &str, dashed: bool) {
    let (lx, ly) = (W - RIGHT + 14.0, TOP + 8.0 + 18.0 * k as f64);
    let dash = if dashed { r##" stroke-dasharray="6 4""## } else { "" };
    let _ = writeln!(
        s,
        r##"<line x1="{lx:.2}" y1="{ly:.2}" x2="{:.2}" y2="{ly:.2}" stroke="{colour}" stroke-width="2"{dash}/><text x="{:.2}" y="{:.2}">{}</text>"##,
        lx + 22.0,
        lx + 28.0,
        ly + 4.0,
        escape(label)
    );
}

impl LineChart {
    /// The chart as an SVG document; an empty chart (no finite point) still renders its frame.
    pub fn svg(&self) -> String {
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let all = || self.series.iter().flat_map(|s| s.points.iter());
        let (x0, x1) =
            finite_range(all().map(|p| p.0)).map_or((0.0, 1.0), |(a, b)| if a == b { (a, a + 1.0) } else { (a, b) });
        let (y0, y1) = self.y_range.unwrap_or_else(|| padded(finite_range(all().map(|p| p.1)).unwrap_or((0.0, 1.0))));
        let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
        let py = |y: f64| TOP + (y1 - y) / (y1 - y0) * ph;

        let mut s = String::new();
        frame(&mut s, &self.title, &self.x_label, &self.y_label);
        y_ticks(&mut s, (y0, y1), self.percent, py);
        for x in ticks(x0, x1) {
            x_tick(&mut s, px(x), TOP + ph, &si(x));
        }
        for (k, series) in self.series.iter().enumerate() {
            let colour = PALETTE[series.colour % PALETTE.len()];
            let mut path = String::new();
            for &(x, y) in series.points.iter().filter(|p| p.0.is_finite() && p.1.is_finite()) {
                let yp = py(y).clamp(-H, 2.0 * H);
                let _ = write!(path, "{}{:.2},{:.2}", if path.is_empty() { "M" } else { " L" }, px(x), yp);
            }
            let dash = if series.dashed { r##" stroke-dasharray="6 4""## } else { "" };
            if !path.is_empty() {
                let _ = writeln!(s, r##"<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.8"{dash}/>"##);
            }
            if series.markers {
                for &(x, y) in series.points.iter().filter(|p| p.0.is_finite() && p.1.is_finite()) {
                    let _ = writeln!(s, r##"<circle cx="{:.2}" cy="{:.2}" r="3" fill="{colour}"/>"##, px(x), py(y));
                }
            }
            legend_entry(&mut s, k, &series.label, colour, series.dashed);
        }
        s.push_str("</svg>\n");
        s
    }
}

/// Bars grouped by category (e.g. one group per held-out set, one bar per evaluation).
#[derive(Clone, Debug, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    /// Names of the bars within every group, in legend order.
    pub bars: Vec<String>,
    /// (group label, one value per bar; NaN where missing).
    pub groups: Vec<(String, Vec<f64>)>,
}

impl BarChart {
    pub fn svg(&self) -> String {
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let y1 = finite_range(self.groups.iter().flat_map(|g| g.1.iter().copied())).map_or(1.0, |(_, hi)| hi.max(0.0));
        let (y0, y1) = (0.0, if y1 > 0.0 { y1 * 1.1 } else { 1.0 });
        let py = |y: f64| TOP + (y1 - y) / (y1 - y0) * ph;
        let mut s = String::new();
        frame(&mut s, &self.title, "", &self.y_label);
        y_ticks(&mut s, (y0, y1), false, py);
        let n_groups = self.groups.len().max(1) as f64;
        let group_w = pw / n_groups;
        let bar_w = (group_w * 0.7) / self.bars.len().max(1) as f64;
        for (g, (label, values)) in self.groups.iter().enumerate() {
            let gx = LEFT + group_w * g as f64 + group_w * 0.15;
            for (b, &v) in values.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                let colour = PALETTE[b % PALETTE.len()];
                let x = gx + bar_w * b as f64;
                let _ = writeln!(
                    s,
                    r##"<rect x="{x:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="{colour}"/><text x="{:.2}" y="{:.2}" text-anchor="middle" font-size="11">{v:.3}</text>"##,
                    py(v),
                    bar_w * 0.92,
                    (py(0.0) - py(v)).max(0.0),
                    x + bar_w * 0.46,
                    py(v) - 4.0
                );
            }
            let _ = writeln!(
                s,
                r##"<text x="{:.2}" y="{:.2}" text-anchor="middle">{}</text>"##,
                LEFT + group_w * (g as f64 + 0.5),
                TOP + ph + 18.0,
                escape(label)
            );
        }
        for (b, name) in self.bars.iter().enumerate() {
            legend_entry(&mut s, b, name, PALETTE[b % PALETTE.len()], false);
        }
        s.push_str("</svg>\n");
        s
    }
}
