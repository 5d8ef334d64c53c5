//! Text renderings of a fit and of a choice, for `cptc law show` and logs.

use std::fmt::Write as _;

use super::choose::ChooseResult;
use super::fit::FitResult;
use super::model::distinct;

/// Parameters, fit quality, leave-one-ratio-out errors and warnings of a fit, as aligned text.
pub fn show(fit: &FitResult) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "L(N, D, r) = E + A/N^alpha + B*r^eta/D^beta + C/(r+eps)^gamma");
    for (name, value) in fit.params.named() {
        let note = match (name, fit.n_fixed) {
            ("A" | "alpha", Some(n)) => format!("  (fixed: one model size N = {n:.4e}; the N term is folded into E)"),
            _ => String::new(),
        };
        let _ = writeln!(s, "  {name:<6} {:>14}{note}", num(value));
    }
    let points = fit.residuals.len();
    let ns = distinct(fit.residuals.iter().map(|r| r.point.n)).len();
    let ds = distinct(fit.residuals.iter().map(|r| r.point.d)).len();
    let rs = distinct(fit.residuals.iter().map(|r| r.point.r)).len();
    let plural = |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
    let _ = writeln!(
        s,
        "fit: {points} points ({}, {}, {})",
        plural(ns, "model size", "model sizes"),
        plural(ds, "token budget", "token budgets"),
        plural(rs, "ratio", "ratios")
    );
    let _ = writeln!(
        s,
        "  N in [{:.4e}, {:.4e}]  D in [{:.4e}, {:.4e}]  r in [{:.4}, {:.4}]",
        fit.n_range.min, fit.n_range.max, fit.d_range.min, fit.d_range.max, fit.r_range.min, fit.r_range.max
    );
    let r2 = fit.r2.map_or_else(|| "n/a".to_string(), |v| format!("{v:.5}"));
    let max_res = fit.residuals.iter().map(|r| r.log_residual.abs()).fold(0.0, f64::max);
    let rel: Vec<f64> = fit.residuals.iter().map(|r| (r.predicted - r.point.loss).abs() / r.point.loss).collect();
    let mean_rel = if rel.is_empty() { 0.0 } else { rel.iter().sum::<f64>() / rel.len() as f64 };
    let _ = writeln!(
        s,
        "  R^2 {r2}  Huber(delta={}) {:.4e}  max |log residual| {max_res:.5}  mean rel. error {:.3}%",
        fit.huber_delta,
        fit.huber,
        100.0 * mean_rel
    );
    let _ = writeln!(s, "  starts {} ({} converged)", fit.starts, fit.converged_starts);
    if !fit.loo_errors.is_empty() {
        let _ = writeln!(s, "leave-one-ratio-out (relative error on the held-out ratio's points):");
        for e in &fit.loo_errors {
            let _ = writeln!(
                s,
                "  r = {:<8.4} {:>3} points  mean {:>7.3}%  max {:>7.3}%",
                e.ratio,
                e.points,
                100.0 * e.mean_rel_error,
                100.0 * e.max_rel_error
            );
        }
    }
    if !fit.warnings.is_empty() {
        let _ = writeln!(s, "warnings:");
        for w in &fit.warnings {
            let _ = writeln!(s, "  - {w}");
        }
    }
    s
}

/// Plain decimals for ordinary magnitudes, scientific notation for the rest (B can be ~1e3..1e6).
fn num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if (1e-3..1e6).contains(&v.abs()) {
        format!("{v:.6}")
    } else {
        format!("{v:.6e}")
    }
}

/// The chosen ratio and the predictions behind it, as text.
pub fn show_choice(c: &ChooseResult) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "chosen domain ratio r* = {:.4}  (searched [{:.4}, {:.4}])", c.ratio, c.r_min, c.r_max);
    let _ = writeln!(s, "  tokens D = {:.4e}  predicted domain loss {:.5}", c.tokens, c.domain_loss);
    if let (Some(g), Some(inc)) = (c.general_loss, c.general_increase) {
        let binds = if c.constraint_binds { "binds" } else { "does not bind" };
        let _ = writeln!(s, "  predicted general loss {g:.5} ({:+.3}% over base); the tolerance {binds}", 100.0 * inc);
        let _ = writeln!(s, "  unconstrained optimum r = {:.4}", c.unconstrained_ratio);
    }
    match c.plateau_tokens {
        Some(d) => {
            let _ =
                writeln!(s, "  plateau: beyond D = {d:.4e} doubling D lowers the domain loss by < {}", c.plateau_drop);
        }
        None => {
            let _ = writeln!(s, "  plateau: the domain loss does not depend on D at r*");
        }
    }
    for w in &c.warnings {
        let _ = writeln!(s, "  warning: {w}");
    }
    s
}
