//! Fitting the law: multi-start L-BFGS on the Huber-on-log objective, fit quality, leave-one-ratio-out.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::error::LawError;
use super::lbfgs::{self, Options};
use super::model::{N_PARAMS, Params, Problem, distinct};
use super::warning::LawWarning;
use super::{FitInput, Point};

/// One point's observed and predicted loss.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Residual {
    pub point: Point,
    pub predicted: f64,
    /// `ln(predicted) - ln(observed)`: the quantity the Huber objective sees.
    pub log_residual: f64,
}

/// Leave-one-ratio-out: the law refitted without `ratio`, predicting that ratio's points.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LooError {
    pub ratio: f64,
    pub points: usize,
    /// Mean and largest of |predicted - observed| / observed.
    pub mean_rel_error: f64,
    pub max_rel_error: f64,
}

/// Smallest and largest value of a fitted variable.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub min: f64,
    pub max: f64,
}

impl Span {
    fn of(values: impl Iterator<Item = f64>) -> Self {
        values.fold(Self { min: f64::INFINITY, max: f64::NEG_INFINITY }, |s, v| Self {
            min: s.min.min(v),
            max: s.max.max(v),
        })
    }
}

/// A fitted law with its quality figures; stored by the executor as a JSON artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitResult {
    pub params: Params,
    /// R^2 of the predicted losses (not logs); None when all observed losses are equal.
    pub r2: Option<f64>,
    /// The minimised objective: sum over points of Huber(delta, ln L_pred - ln L_obs).
    pub huber: f64,
    pub huber_delta: f64,
    pub residuals: Vec<Residual>,
    pub loo_errors: Vec<LooError>,
    pub warnings: Vec<LawWarning>,
    /// Some(N) when the points have one model size N: A = 0 (the N term is folded into E).
    pub n_fixed: Option<f64>,
    pub n_range: Span,
    pub d_range: Span,
    pub r_range: Span,
    /// Starts of the multi-start search, and how many met a tolerance.
    pub starts: usize,
    pub converged_starts: usize,
}

/// A prediction and the warnings that qualify it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub loss: f64,
    pub warnings: Vec<LawWarning>,
}

/// Knobs of [`fit_with`]; [`fit`] uses the defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitOptions {
    /// Run leave-one-ratio-out (one refit per ratio).
    pub leave_one_ratio_out: bool,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self { leave_one_ratio_out: true }
    }
}

/// Fits the law to `input` with leave-one-ratio-out errors.
pub fn fit(input: &FitInput) -> Result<FitResult, LawError> {
    fit_with(input, &FitOptions::default())
}

/// Fits the law to `input`.
pub fn fit_with(input: &FitInput, opts: &FitOptions) -> Result<FitResult, LawError> {
    let problem = Problem::new(&input.points, input.huber_delta)?;
    let best = solve(&problem)?;
    let params = problem.params(&best.theta);
    let points = &input.points;

    let residuals: Vec<Residual> = points
        .iter()
        .map(|&p| {
            let predicted = params.loss(p.n, p.d, p.r);
            Residual { point: p, predicted, log_residual: predicted.ln() - p.loss.ln() }
        })
        .collect();
    let mean = points.iter().map(|p| p.loss).sum::<f64>() / points.len() as f64;
    let ss_tot: f64 = points.iter().map(|p| (p.loss - mean).powi(2)).sum();
    let ss_res: f64 = residuals.iter().map(|r| (r.predicted - r.point.loss).powi(2)).sum();
    let r2 = (ss_tot > 0.0).then(|| 1.0 - ss_res / ss_tot);

    let mut warnings = Vec::new();
    let n_fixed = problem.fixed_n.then(|| points[0].n);
    if let Some(n) = n_fixed {
        warnings.push(LawWarning::SingleModelSize { n });
    }
    let ds = distinct(points.iter().map(|p| p.d));
    if ds.len() == 1 {
        warnings.push(LawWarning::SingleTokenBudget { d: ds[0] });
    }
    for (name, i, [lower, upper]) in problem.bounds.named() {
        if name == "alpha" && problem.fixed_n {
            continue;
        }
        let value = super::model::bounded(best.theta[i], [lower, upper]).0;
        if (value - lower) < 0.01 * (upper - lower) || (upper - value) < 0.01 * (upper - lower) {
            warnings.push(LawWarning::ParamAtBound { name: name.to_string(), value, lower, upper });
        }
    }

    let loo_errors = if opts.leave_one_ratio_out { leave_one_ratio_out(input, &mut warnings) } else { Vec::new() };

    Ok(FitResult {
        params,
        r2,
        huber: best.f,
        huber_delta: input.huber_delta,
        residuals,
        loo_errors,
        warnings,
        n_fixed,
        n_range: Span::of(points.iter().map(|p| p.n)),
        d_range: Span::of(points.iter().map(|p| p.d)),
        r_range: Span::of(points.iter().map(|p| p.r)),
        starts: problem.starts.len(),
        converged_starts: best.converged,
    })
}

/// Best start of a multi-start search.
#[derive(Clone, Debug)]
pub struct Solved {
    pub theta: [f64; N_PARAMS],
    pub f: f64,
    /// Index of the winning start in `Problem::starts`.
    pub start: usize,
    pub converged: usize,
}

/// Runs L-BFGS from every start of `problem` and keeps the lowest objective.
///
/// Starts run in parallel but each is sequential and the winner is picked by (objective,
/// start index), so the result does not depend on the thread count.
pub fn solve(problem: &Problem) -> Result<Solved, LawError> {
    let opts = Options::default();
    let outcomes: Vec<_> = problem
        .starts
        .par_iter()
        .map(|&x0| lbfgs::minimize(|x: &[f64; N_PARAMS], g: &mut [f64; N_PARAMS]| problem.objective(x, g), x0, &opts))
        .collect();
    let converged = outcomes.iter().filter(|o| o.converged).count();
    outcomes
        .into_iter()
        .enumerate()
        .filter(|(_, o)| o.f.is_finite())
        .min_by(|(i, a), (j, b)| a.f.total_cmp(&b.f).then(i.cmp(j)))
        .map(|(start, o)| Solved { theta: o.x, f: o.f, start, converged })
        .ok_or(LawError::FitFailed)
}

fn leave_one_ratio_out(input: &FitInput, warnings: &mut Vec<LawWarning>) -> Vec<LooError> {
    let ratios = distinct(input.points.iter().map(|p| p.r));
    if ratios.len() < 3 {
        warnings.push(LawWarning::LooSkipped {
            ratio: None,
            reason: format!("{} ratios: a refit without one would have fewer than 2", ratios.len()),
        });
        return Vec::new();
    }
    let runs: Vec<(f64, Result<LooError, LawError>)> = ratios
        .par_iter()
        .map(|&ratio| {
            let (held, kept): (Vec<Point>, Vec<Point>) = input.points.iter().partition(|p| p.r == ratio);
            let result = Problem::new(&kept, input.huber_delta).and_then(|pb| {
                let params = pb.params(&solve(&pb)?.theta);
                let errs: Vec<f64> =
                    held.iter().map(|p| (params.loss(p.n, p.d, p.r) - p.loss).abs() / p.loss).collect();
                Ok(LooError {
                    ratio,
                    points: held.len(),
                    mean_rel_error: errs.iter().sum::<f64>() / errs.len() as f64,
                    max_rel_error: errs.iter().copied().fold(0.0, f64::max),
                })
            });
            (ratio, result)
        })
        .collect();
    let mut out = Vec::new();
    for (ratio, run) in runs {
        match run {
            Ok(e) => out.push(e),
            Err(e) => warnings.push(LawWarning::LooSkipped { ratio: Some(ratio), reason: e.to_string() }),
        }
    }
    out
}

impl FitResult {
    /// Predicted loss at (N, D, r), with warnings where that is outside what was fitted.
    pub fn predict(&self, n: f64, d: f64, r: f64) -> Result<Prediction, LawError> {
        if !(n.is_finite() && n > 0.0) {
            return Err(LawError::BadQuery { n, d, r, reason: "N is not a finite positive number" });
        }
        if !(d.is_finite() && d > 0.0) {
            return Err(LawError::BadQuery { n, d, r, reason: "D is not a finite positive number" });
        }
        if !(r.is_finite() && (0.0..=1.0).contains(&r)) {
            return Err(LawError::BadQuery { n, d, r, reason: "the ratio is not in [0, 1]" });
        }
        Ok(Prediction { loss: self.params.loss(n, d, r), warnings: self.range_warnings(n, d, r) })
    }

    /// Warnings for a query outside the fitted N or D range or below the smallest fitted ratio.
    pub fn range_warnings(&self, n: f64, d: f64, r: f64) -> Vec<LawWarning> {
        // A relative slack so that round-off on a fitted value does not warn.
        let outside = |v: f64, s: &Span| v < s.min * (1.0 - 1e-9) || v > s.max * (1.0 + 1e-9);
        let mut w = Vec::new();
        if outside(n, &self.n_range) {
            w.push(LawWarning::NOutsideFit { n, min: self.n_range.min, max: self.n_range.max });
        }
        if outside(d, &self.d_range) {
            w.push(LawWarning::DOutsideFit { d, min: self.d_range.min, max: self.d_range.max });
        }
        if r < self.r_range.min - 1e-12 {
            w.push(LawWarning::RatioBelowFit { r, min: self.r_range.min });
        }
        w
    }
}
