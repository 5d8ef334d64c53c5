//! The D-CPT law, its unconstrained parameterisation and the Huber-on-log objective with its gradient.
//!
//! The optimiser works on `theta` (9 reals, any value): E, A, B, C are `exp` of theirs (positive),
//! the exponents and epsilon are `lo + (hi - lo) * sigmoid(t)` (bounded). N and D are divided by
//! the geometric mean of the data, so `ln A` and `alpha` are not tied together by `ln N ~ 20`
//! (that correlation makes the problem badly conditioned); `Params` are in the original units.

use serde::{Deserialize, Serialize};

use super::Point;
use super::error::LawError;

/// Number of parameters of the law, and the length of `theta`.
pub const N_PARAMS: usize = 9;

/// Indices into `theta` (and the gradient).
pub(crate) const I_E: usize = 0;
pub(crate) const I_A: usize = 1;
pub(crate) const I_ALPHA: usize = 2;
pub(crate) const I_B: usize = 3;
pub(crate) const I_BETA: usize = 4;
pub(crate) const I_C: usize = 5;
pub(crate) const I_GAMMA: usize = 6;
pub(crate) const I_ETA: usize = 7;
pub(crate) const I_EPS: usize = 8;

/// Fitted law `L(N, D, r) = E + A/N^alpha + B*r^eta/D^beta + C/(r+eps)^gamma`, original units.
///
/// `r` is the share of the corpus whose loss is modelled: the domain share for a domain-loss
/// law, the general share (1 - domain share) for a general-loss law.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub e: f64,
    pub a: f64,
    pub alpha: f64,
    pub b: f64,
    pub beta: f64,
    pub c: f64,
    pub gamma: f64,
    pub eta: f64,
    pub eps: f64,
}

impl Params {
    /// The predicted loss; no range checks (see `FitResult::predict` for those).
    pub fn loss(&self, n: f64, d: f64, r: f64) -> f64 {
        // Written with exp/ln so that N^alpha with N ~ 1e9 never overflows on the way.
        let ta = if self.a > 0.0 { (self.a.ln() - self.alpha * n.ln()).exp() } else { 0.0 };
        let tb =
            if r > 0.0 && self.b > 0.0 { (self.b.ln() + self.eta * r.ln() - self.beta * d.ln()).exp() } else { 0.0 };
        let tc = if self.c > 0.0 { (self.c.ln() - self.gamma * (r + self.eps).ln()).exp() } else { 0.0 };
        self.e + ta + tb + tc
    }

    /// The parameters as (name, value) pairs, in the law's order.
    pub fn named(&self) -> [(&'static str, f64); N_PARAMS] {
        [
            ("E", self.e),
            ("A", self.a),
            ("alpha", self.alpha),
            ("B", self.b),
            ("beta", self.beta),
            ("C", self.c),
            ("gamma", self.gamma),
            ("eta", self.eta),
            ("eps", self.eps),
        ]
    }
}

/// Search intervals of the bounded parameters (open intervals: the sigmoid never reaches the ends).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    pub alpha: [f64; 2],
    pub beta: [f64; 2],
    pub gamma: [f64; 2],
    pub eta: [f64; 2],
    pub eps: [f64; 2],
}

impl Default for Bounds {
    fn default() -> Self {
        // Wide enough for every published fit of Chinchilla-type laws; eps in (0, 1) keeps the
        // C term finite at r = 0 without letting it become a constant (that is E's job).
        Self { alpha: [0.0, 2.0], beta: [0.0, 2.0], gamma: [0.0, 3.0], eta: [0.0, 3.0], eps: [0.0, 1.0] }
    }
}

impl Bounds {
    pub(crate) fn named(&self) -> [(&'static str, usize, [f64; 2]); 5] {
        [
            ("alpha", I_ALPHA, self.alpha),
            ("beta", I_BETA, self.beta),
            ("gamma", I_GAMMA, self.gamma),
            ("eta", I_ETA, self.eta),
            ("eps", I_EPS, self.eps),
        ]
    }
}

fn sigmoid(t: f64) -> f64 {
    // Both branches avoid exp overflow for large |t|.
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let z = t.exp();
        z / (1.0 + z)
    }
}

/// Bounded value and its derivative with respect to `t`.
pub(crate) fn bounded(t: f64, [lo, hi]: [f64; 2]) -> (f64, f64) {
    let s = sigmoid(t);
    (lo + (hi - lo) * s, (hi - lo) * s * (1.0 - s))
}

/// Inverse of [`bounded`] (the value is clamped inside the interval first).
pub(crate) fn unbounded(v: f64, [lo, hi]: [f64; 2]) -> f64 {
    let w = hi - lo;
    let s = ((v - lo) / w).clamp(1e-9, 1.0 - 1e-9);
    (s / (1.0 - s)).ln()
}

/// Huber loss and its derivative.
pub(crate) fn huber(x: f64, delta: f64) -> (f64, f64) {
    if x.abs() <= delta { (0.5 * x * x, x) } else { (delta * (x.abs() - 0.5 * delta), delta * x.signum()) }
}

/// One point, prepared for the objective (logs precomputed once).
#[derive(Clone, Copy, Debug)]
struct Prepared {
    ln_n: f64,
    ln_d: f64,
    r: f64,
    /// None for r = 0, where the B term vanishes (its ln r would be -inf).
    ln_r: Option<f64>,
    ln_y: f64,
}

/// A fitting problem: the points, the normalisation, which terms are free, and the starting grid.
///
/// Serialisable so that a reference implementation (tests/python/law_fit_scipy.py) can replay
/// exactly the same objective from exactly the same starts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Problem {
    pub points: Vec<Point>,
    pub huber_delta: f64,
    /// N and D are divided by these (geometric means of the data) inside `theta`.
    pub n_ref: f64,
    pub d_ref: f64,
    /// One model size: the A term is dropped (A = 0) and `theta[1..3]` stay where they start.
    pub fixed_n: bool,
    pub bounds: Bounds,
    /// Starting points in `theta` space.
    pub starts: Vec<[f64; N_PARAMS]>,
    #[serde(skip)]
    prepared: Vec<Prepared>,
}

impl Problem {
    /// Checks the points and builds the problem with its Chinchilla-style grid of starts.
    pub fn new(points: &[Point], huber_delta: f64) -> Result<Self, LawError> {
        if !(huber_delta.is_finite() && huber_delta > 0.0) {
            return Err(LawError::BadDelta { delta: huber_delta });
        }
        if points.is_empty() {
            return Err(LawError::NoPoints);
        }
        for (index, p) in points.iter().enumerate() {
            let bad = |reason| LawError::BadPoint { index, n: p.n, d: p.d, r: p.r, loss: p.loss, reason };
            if !(p.n.is_finite() && p.n > 0.0) {
                return Err(bad("N is not a finite positive number"));
            }
            if !(p.d.is_finite() && p.d > 0.0) {
                return Err(bad("D is not a finite positive number"));
            }
            if !(p.loss.is_finite() && p.loss > 0.0) {
                return Err(bad("the loss is not a finite positive number"));
            }
            if !(p.r.is_finite() && (0.0..=1.0).contains(&p.r)) {
                return Err(bad("the ratio is not in [0, 1]"));
            }
        }
        let ratios = distinct(points.iter().map(|p| p.r));
        if ratios.len() < 2 {
            return Err(LawError::TooFewRatios { ratios: ratios.len() });
        }
        let fixed_n = distinct(points.iter().map(|p| p.n)).len() == 1;
        let free = if fixed_n { N_PARAMS - 2 } else { N_PARAMS };
        if points.len() < free {
            return Err(LawError::TooFewPoints { points: points.len(), params: free });
        }
        let k = points.len() as f64;
        let n_ref = (points.iter().map(|p| p.n.ln()).sum::<f64>() / k).exp();
        let d_ref = (points.iter().map(|p| p.d.ln()).sum::<f64>() / k).exp();
        let bounds = Bounds::default();
        let mut problem = Self {
            points: points.to_vec(),
            huber_delta,
            n_ref,
            d_ref,
            fixed_n,
            bounds,
            starts: Vec::new(),
            prepared: Vec::new(),
        };
        problem.prepare();
        problem.starts = problem.grid();
        Ok(problem)
    }

    /// Recomputes the per-point logs (needed after deserialising).
    pub fn prepare(&mut self) {
        let (ln_nr, ln_dr) = (self.n_ref.ln(), self.d_ref.ln());
        self.prepared = self
            .points
            .iter()
            .map(|p| Prepared {
                ln_n: p.n.ln() - ln_nr,
                ln_d: p.d.ln() - ln_dr,
                r: p.r,
                ln_r: (p.r > 0.0).then(|| p.r.ln()),
                ln_y: p.loss.ln(),
            })
            .collect();
    }

    /// The grid of starts: the exponents and epsilon on a small grid, E at two fractions of the
    /// smallest loss, and A, B, C set so that each term carries an equal share of the mean loss
    /// above E at the centre of the data. Scale-free, so the same grid serves any loss level.
    fn grid(&self) -> Vec<[f64; N_PARAMS]> {
        let ys: Vec<f64> = self.points.iter().map(|p| p.loss).collect();
        let y_min = ys.iter().copied().fold(f64::INFINITY, f64::min);
        let y_mean = ys.iter().sum::<f64>() / ys.len() as f64;
        let r_bar = self.points.iter().map(|p| p.r).sum::<f64>() / ys.len() as f64;
        let terms = if self.fixed_n { 2.0 } else { 3.0 };
        let alphas: &[f64] = if self.fixed_n { &[0.5] } else { &[0.3, 0.7] };
        let b = self.bounds;
        let mut out = Vec::new();
        for e_frac in [0.5, 0.9] {
            let e0 = e_frac * y_min;
            let share = ((y_mean - e0) / terms).max(1e-6 * y_mean);
            for &alpha in alphas {
                for beta in [0.2, 0.6] {
                    for gamma in [0.2, 0.8] {
                        for eta in [0.3, 1.0] {
                            for eps in [0.02, 0.2] {
                                out.push([
                                    e0.ln(),
                                    if self.fixed_n { 0.0 } else { share.ln() },
                                    unbounded(alpha, b.alpha),
                                    share.ln() - eta * r_bar.max(1e-3).ln(),
                                    unbounded(beta, b.beta),
                                    share.ln() + gamma * (r_bar + eps).ln(),
                                    unbounded(gamma, b.gamma),
                                    unbounded(eta, b.eta),
                                    unbounded(eps, b.eps),
                                ]);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The law's parameters, in the original units, for a `theta`.
    pub fn params(&self, th: &[f64; N_PARAMS]) -> Params {
        let b = self.bounds;
        let alpha = bounded(th[I_ALPHA], b.alpha).0;
        let beta = bounded(th[I_BETA], b.beta).0;
        Params {
            e: th[I_E].exp(),
            // A/N^alpha = A'/(N/n_ref)^alpha, so A = A' * n_ref^alpha (same for B with D).
            a: if self.fixed_n { 0.0 } else { (th[I_A] + alpha * self.n_ref.ln()).exp() },
            alpha: if self.fixed_n { 0.0 } else { alpha },
            b: (th[I_B] + beta * self.d_ref.ln()).exp(),
            beta,
            c: th[I_C].exp(),
            gamma: bounded(th[I_GAMMA], b.gamma).0,
            eta: bounded(th[I_ETA], b.eta).0,
            eps: bounded(th[I_EPS], b.eps).0,
        }
    }

    /// Sum of Huber(delta, ln L_pred - ln L_obs) and its gradient with respect to `theta`.
    ///
    /// Returns +inf (gradient zero) where the prediction is not finite, so that line searches
    /// treat such steps as too long.
    pub fn objective(&self, th: &[f64; N_PARAMS], g: &mut [f64; N_PARAMS]) -> f64 {
        if self.prepared.len() != self.points.len() {
            // A deserialised problem that nobody prepared: say so through the value, not a panic.
            g.fill(0.0);
            return f64::INFINITY;
        }
        let bd = self.bounds;
        let e = th[I_E].exp();
        let (alpha, d_alpha) = bounded(th[I_ALPHA], bd.alpha);
        let (beta, d_beta) = bounded(th[I_BETA], bd.beta);
        let (gamma, d_gamma) = bounded(th[I_GAMMA], bd.gamma);
        let (eta, d_eta) = bounded(th[I_ETA], bd.eta);
        let (eps, d_eps) = bounded(th[I_EPS], bd.eps);
        let mut acc = [0.0; N_PARAMS];
        let mut f = 0.0;
        for p in &self.prepared {
            let ta = if self.fixed_n { 0.0 } else { (th[I_A] - alpha * p.ln_n).exp() };
            let tb = p.ln_r.map_or(0.0, |lr| (th[I_B] + eta * lr - beta * p.ln_d).exp());
            let ln_re = (p.r + eps).ln();
            let tc = (th[I_C] - gamma * ln_re).exp();
            let l = e + ta + tb + tc;
            let (h, dh) = huber(l.ln() - p.ln_y, self.huber_delta);
            f += h;
            let w = dh / l;
            acc[I_E] += w * e;
            acc[I_A] += w * ta;
            acc[I_ALPHA] -= w * p.ln_n * ta * d_alpha;
            acc[I_B] += w * tb;
            acc[I_BETA] -= w * p.ln_d * tb * d_beta;
            acc[I_ETA] += w * p.ln_r.map_or(0.0, |lr| lr * tb) * d_eta;
            acc[I_C] += w * tc;
            acc[I_GAMMA] -= w * ln_re * tc * d_gamma;
            acc[I_EPS] -= w * gamma * tc / (p.r + eps) * d_eps;
        }
        if !f.is_finite() || acc.iter().any(|v| !v.is_finite()) {
            g.fill(0.0);
            return f64::INFINITY;
        }
        *g = acc;
        f
    }
}

/// Distinct values, sorted (exact comparison: sweep grids repeat values exactly).
pub(crate) fn distinct(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}
