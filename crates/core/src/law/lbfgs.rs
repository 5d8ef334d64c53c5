//! A small L-BFGS minimiser with a strong-Wolfe line search (Nocedal & Wright, algorithms 7.4, 3.5, 3.6).
//!
//! Deterministic, allocation-light, and tolerant of objectives that return +inf or NaN (treated as
//! "step too long"), which the law's objective does when a trial point overflows.

use std::collections::VecDeque;

/// Stopping rules and sizes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// Number of (s, y) pairs kept.
    pub memory: usize,
    pub max_iter: usize,
    /// Stop when one iteration lowers f by less than `ftol * max(|f|, tiny)`.
    pub ftol: f64,
    /// Stop when the largest gradient component is at most `gtol`.
    pub gtol: f64,
    /// Largest change of any coordinate at the first trial step (the objective's scale is unknown).
    pub first_step: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self { memory: 10, max_iter: 2000, ftol: 1e-12, gtol: 1e-14, first_step: 0.5 }
    }
}

/// Result of one minimisation.
#[derive(Clone, Debug)]
pub(crate) struct Outcome<const K: usize> {
    pub x: [f64; K],
    pub f: f64,
    pub iterations: usize,
    /// True when a tolerance was met (false: iteration limit or line search could not progress).
    pub converged: bool,
}

fn dot<const K: usize>(a: &[f64; K], b: &[f64; K]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn inf_norm<const K: usize>(a: &[f64; K]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Minimises `f` (which writes its gradient into the second argument) from `x0`.
pub(crate) fn minimize<const K: usize>(
    mut f: impl FnMut(&[f64; K], &mut [f64; K]) -> f64,
    x0: [f64; K],
    opts: &Options,
) -> Outcome<K> {
    let mut eval = |x: &[f64; K], g: &mut [f64; K]| {
        let v = f(x, g);
        // NaN would break every comparison below; +inf reads as "too far".
        if v.is_nan() { f64::INFINITY } else { v }
    };
    let mut x = x0;
    let mut g = [0.0; K];
    let mut fx = eval(&x, &mut g);
    let mut out = Outcome { x, f: fx, iterations: 0, converged: false };
    if !fx.is_finite() {
        return out;
    }
    let mut hist: VecDeque<([f64; K], [f64; K], f64)> = VecDeque::with_capacity(opts.memory);
    let mut retried = false;
    for it in 0..opts.max_iter {
        out.iterations = it;
        if inf_norm(&g) <= opts.gtol {
            out.converged = true;
            break;
        }
        let mut d = direction(&g, &hist);
        let mut slope = dot(&g, &d);
        if slope.is_nan() || slope >= 0.0 {
            // Not a descent direction (bad curvature pairs): restart from steepest descent.
            hist.clear();
            d = g.map(|v| -v);
            slope = dot(&g, &d);
        }
        let a0 = if hist.is_empty() { (opts.first_step / inf_norm(&d)).min(1e12) } else { 1.0 };
        match line_search(&mut eval, &x, fx, &d, slope, a0) {
            Some((a, f_new, g_new)) => {
                let mut s = [0.0; K];
                let mut y = [0.0; K];
                let mut x_new = x;
                for i in 0..K {
                    x_new[i] = x[i] + a * d[i];
                    s[i] = x_new[i] - x[i];
                    y[i] = g_new[i] - g[i];
                }
                let sy = dot(&s, &y);
                if sy > 1e-300 {
                    if hist.len() == opts.memory {
                        hist.pop_front();
                    }
                    hist.push_back((s, y, 1.0 / sy));
                }
                let decrease = fx - f_new;
                x = x_new;
                fx = f_new;
                g = g_new;
                retried = false;
                if decrease <= opts.ftol * fx.abs().max(1e-300) {
                    out.converged = true;
                    break;
                }
            }
            None if !retried && !hist.is_empty() => {
                // The quasi-Newton model is stale: drop it and try steepest descent once.
                hist.clear();
                retried = true;
            }
            None => {
                // No step lowers f any more: as good as it gets at this precision.
                out.converged = true;
                break;
            }
        }
    }
    out.x = x;
    out.f = fx;
    out
}

/// The two-loop recursion: `-H g` with H the L-BFGS inverse-Hessian approximation.
fn direction<const K: usize>(g: &[f64; K], hist: &VecDeque<([f64; K], [f64; K], f64)>) -> [f64; K] {
    let mut q = *g;
    let mut alphas = Vec::with_capacity(hist.len());
    for (s, y, rho) in hist.iter().rev() {
        let a = rho * dot(s, &q);
        for i in 0..K {
            q[i] -= a * y[i];
        }
        alphas.push(a);
    }
    if let Some((s, y, _)) = hist.back() {
        let gamma = dot(s, y) / dot(y, y);
        if gamma.is_finite() && gamma > 0.0 {
            q = q.map(|v| v * gamma);
        }
    }
    for ((s, y, rho), a) in hist.iter().zip(alphas.into_iter().rev()) {
        let b = rho * dot(y, &q);
        for i in 0..K {
            q[i] += (a - b) * s[i];
        }
    }
    q.map(|v| -v)
}

const C1: f64 = 1e-4;
const C2: f64 = 0.9;

/// Finds a step satisfying the strong Wolfe conditions along `d` (algorithm 3.5), or None.
fn line_search<const K: usize>(
    eval: &mut impl FnMut(&[f64; K], &mut [f64; K]) -> f64,
    x: &[f64; K],
    f0: f64,
    d: &[f64; K],
    slope0: f64,
    a_init: f64,
) -> Option<(f64, f64, [f64; K])> {
    let mut phi = |a: f64| {
        let mut xt = *x;
        for i in 0..K {
            xt[i] += a * d[i];
        }
        let mut g = [0.0; K];
        let v = eval(&xt, &mut g);
        (v, dot(&g, d), g)
    };
    let mut prev = (0.0, f0, slope0);
    let mut best: Option<(f64, f64, [f64; K])> = None;
    let mut a = a_init;
    for i in 0..40 {
        let (fa, da, ga) = phi(a);
        if fa > f0 + C1 * a * slope0 || (i > 0 && fa >= prev.1) {
            return zoom(&mut phi, f0, slope0, prev, (a, fa, da), best);
        }
        if fa < f0 {
            best = Some((a, fa, ga));
        }
        if da.abs() <= -C2 * slope0 {
            return Some((a, fa, ga));
        }
        if da >= 0.0 {
            return zoom(&mut phi, f0, slope0, (a, fa, da), prev, best);
        }
        prev = (a, fa, da);
        a *= 2.0;
    }
    best
}

/// Narrows `[lo, hi]` (lo: lowest f seen, sufficient decrease holds) to a strong-Wolfe step (algorithm 3.6).
fn zoom<const K: usize>(
    phi: &mut impl FnMut(f64) -> (f64, f64, [f64; K]),
    f0: f64,
    slope0: f64,
    mut lo: (f64, f64, f64),
    mut hi: (f64, f64, f64),
    mut best: Option<(f64, f64, [f64; K])>,
) -> Option<(f64, f64, [f64; K])> {
    for _ in 0..60 {
        let (a_lo, a_hi) = (lo.0, hi.0);
        let w = a_hi - a_lo;
        if w.abs() <= 1e-16 * a_lo.abs().max(a_hi.abs()) {
            break;
        }
        // Quadratic through (lo: f, f') and (hi: f) when hi's value is usable; safeguarded bisection otherwise.
        let mut a = a_lo + 0.5 * w;
        if hi.1.is_finite() {
            let denom = 2.0 * (hi.1 - lo.1 - lo.2 * w);
            if denom.abs() > 0.0 {
                let q = a_lo - lo.2 * w * w / denom;
                let (m, n) = (a_lo.min(a_hi), a_lo.max(a_hi));
                if q.is_finite() && q > m + 0.1 * (n - m) && q < n - 0.1 * (n - m) {
                    a = q;
                }
            }
        }
        let (fa, da, ga) = phi(a);
        if fa > f0 + C1 * a * slope0 || fa >= lo.1 {
            hi = (a, fa, da);
        } else {
            if best.as_ref().is_none_or(|b| fa < b.1) {
                best = Some((a, fa, ga));
            }
            if da.abs() <= -C2 * slope0 {
                return Some((a, fa, ga));
            }
            if da * (hi.0 - lo.0) >= 0.0 {
                hi = lo;
            }
            lo = (a, fa, da);
        }
    }
    // Wolfe not met within the budget: a step with sufficient decrease is still progress.
    best.filter(|b| b.1 < f0)
}
