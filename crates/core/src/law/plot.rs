//! SVG plots of loss against mixture ratio: observed points, fitted curves, chosen ratio, tolerance.
//!
//! Written as plain text (no plotting crate) with fixed-precision numbers, so the same inputs give
//! byte-identical files (artifacts are content-addressed, and snapshots stay stable).

use std::fmt::Write as _;

use super::fit::FitResult;
use super::model::distinct;
use crate::svg::{PALETTE, escape, si, tick_label, ticks, x_tick};

/// What to draw besides the fit itself.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotOptions {
    pub title: String,
    /// Draw against `1 - r`: a general-loss law (r = general share) over the domain ratio.
    pub complement: bool,
    pub x_label: String,
    /// Chosen ratio, in x-axis units (a vertical line).
    pub chosen_ratio: Option<f64>,
    /// A horizontal line, e.g. the general-loss tolerance `L_g0 * (1 + T)`.
    pub tolerance_loss: Option<f64>,
    pub width: u32,
    pub height: u32,
}

impl Default for PlotOptions {
    fn default() -> Self {
        Self {
            title: String::new(),
            complement: false,
            x_label: "domain ratio r".into(),
            chosen_ratio: None,
            tolerance_loss: None,
            width: 720,
            height: 440,
        }
    }
}

/// Samples per fitted curve.
const SAMPLES: usize = 101;

/// Loss against ratio, one colour per (N, D) of the fitted points: dots observed, lines fitted.
pub fn ratio_plot_svg(fit: &FitResult, opts: &PlotOptions) -> String {
    let (w, h) = (f64::from(opts.width.max(200)), f64::from(opts.height.max(150)));
    let (left, right, top, bottom) = (64.0, 170.0, 36.0, 48.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let to_x = |r: f64| if opts.complement { 1.0 - r } else { r };

    let ns = distinct(fit.residuals.iter().map(|r| r.point.n));
    let ds = distinct(fit.residuals.iter().map(|r| r.point.d));
    let series: Vec<(f64, f64)> = ns
        .iter()
        .flat_map(|&n| ds.iter().map(move |&d| (n, d)))
        .filter(|&(n, d)| fit.residuals.iter().any(|r| r.point.n == n && r.point.d == d))
        .collect();

    // Y range from what is observed (curves may shoot up near r = 0; they are clipped).
    let mut ys: Vec<f64> =
        fit.residuals.iter().flat_map(|r| [r.point.loss, r.predicted]).filter(|v| v.is_finite()).collect();
    ys.extend(opts.tolerance_loss.filter(|v| v.is_finite()));
    let (mut y0, mut y1) = ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if !(y0.is_finite() && y1.is_finite()) {
        (y0, y1) = (0.0, 1.0);
    }
    let pad = ((y1 - y0) * 0.08).max(1e-6 * y1.abs().max(1.0));
    let (y0, y1) = (y0 - pad, y1 + pad);
    let px = |x: f64| left + x * pw;
    let py = |y: f64| top + (y1 - y) / (y1 - y0) * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(s, r##"<rect width="{w}" height="{h}" fill="white"/>"##);
    let _ = writeln!(
        s,
        r##"<defs><clipPath id="plot"><rect x="{left}" y="{top}" width="{pw}" height="{ph}"/></clipPath></defs>"##
    );
    let _ = writeln!(
        s,
        r##"<text x="{:.2}" y="22" text-anchor="middle" font-size="14">{}</text>"##,
        left + pw / 2.0,
        escape(&opts.title)
    );
    let _ = writeln!(s, r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##);

    for i in 0..=5 {
        let x = f64::from(i) / 5.0;
        x_tick(&mut s, px(x), top + ph, &format!("{x:.1}"));
    }
    for y in ticks(y0, y1) {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.2}" y1="{1:.2}" x2="{2:.2}" y2="{1:.2}" stroke="#444"/><text x="{3:.2}" y="{4:.2}" text-anchor="end">{5}</text>"##,
            left - 5.0,
            py(y),
            left,
            left - 8.0,
            py(y) + 4.0,
            tick_label(y, y1 - y0)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.2}" y="{:.2}" text-anchor="middle">{}</text>"##,
        left + pw / 2.0,
        h - 10.0,
        escape(&opts.x_label)
    );
    let _ = writeln!(
        s,
        r##"<text x="16" y="{0:.2}" text-anchor="middle" transform="rotate(-90 16 {0:.2})">loss</text>"##,
        top + ph / 2.0
    );

    let _ = writeln!(s, r##"<g clip-path="url(#plot)">"##);
    for (k, &(n, d)) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let mut path = String::new();
        for i in 0..SAMPLES {
            let r = i as f64 / (SAMPLES - 1) as f64;
            let y = fit.params.loss(n, d, r);
            if y.is_finite() {
                // Clamp far outside values so the path stays well-formed; the clip hides them.
                let yp = py(y).clamp(-h, 2.0 * h);
                let _ = write!(path, "{}{:.2},{:.2}", if path.is_empty() { "M" } else { " L" }, px(to_x(r)), yp);
            }
        }
        let _ = writeln!(s, r##"<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>"##);
        for res in fit.residuals.iter().filter(|r| r.point.n == n && r.point.d == d) {
            let _ = writeln!(
                s,
                r##"<circle cx="{:.2}" cy="{:.2}" r="3" fill="{colour}"/>"##,
                px(to_x(res.point.r)),
                py(res.point.loss)
            );
        }
    }
    if let Some(t) = opts.tolerance_loss.filter(|v| v.is_finite()) {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.2}" y1="{1:.2}" x2="{2:.2}" y2="{1:.2}" stroke="#C00" stroke-dasharray="6 4"/>"##,
            left,
            py(t),
            left + pw
        );
    }
    if let Some(r) = opts.chosen_ratio.filter(|v| v.is_finite()) {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.2}" y1="{1:.2}" x2="{0:.2}" y2="{2:.2}" stroke="#333" stroke-dasharray="2 3"/>"##,
            px(r),
            top,
            top + ph
        );
    }
    let _ = writeln!(s, "</g>");

    // Legend.
    let lx = left + pw + 14.0;
    let mut ly = top + 8.0;
    for (k, &(n, d)) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let _ = writeln!(
            s,
            r##"<line x1="{lx:.2}" y1="{ly:.2}" x2="{:.2}" y2="{ly:.2}" stroke="{colour}" stroke-width="1.5"/><circle cx="{:.2}" cy="{ly:.2}" r="3" fill="{colour}"/><text x="{:.2}" y="{:.2}">N={} D={}</text>"##,
            lx + 20.0,
            lx + 10.0,
            lx + 26.0,
            ly + 4.0,
            si(n),
            si(d)
        );
        ly += 18.0;
    }
    if let Some(t) = opts.tolerance_loss.filter(|v| v.is_finite()) {
        let _ = writeln!(
            s,
            r##"<line x1="{lx:.2}" y1="{ly:.2}" x2="{:.2}" y2="{ly:.2}" stroke="#C00" stroke-dasharray="6 4"/><text x="{:.2}" y="{:.2}">tolerance {t:.4}</text>"##,
            lx + 20.0,
            lx + 26.0,
            ly + 4.0
        );
        ly += 18.0;
    }
    if let Some(r) = opts.chosen_ratio.filter(|v| v.is_finite()) {
        let _ = writeln!(
            s,
            r##"<line x1="{:.2}" y1="{:.2}" x2="{:.2}" y2="{:.2}" stroke="#333" stroke-dasharray="2 3"/><text x="{:.2}" y="{:.2}">chosen r={r:.3}</text>"##,
            lx + 10.0,
            ly - 7.0,
            lx + 10.0,
            ly + 7.0,
            lx + 26.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}
