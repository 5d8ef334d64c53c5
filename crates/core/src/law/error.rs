//! Errors of the law module (fitting, predicting, choosing), each with a stable `cptc::law::*` code.

use miette::Diagnostic;
use thiserror::Error;

/// Everything that can go wrong in `law`: bad inputs end here, never in a panic.
#[derive(Debug, Error, Diagnostic, Clone, PartialEq)]
pub enum LawError {
    #[error("no points to fit")]
    #[diagnostic(code(cptc::law::no_points), help("the sweep produced no evaluations; check that its runs finished"))]
    NoPoints,

    #[error("point {index} (N={n}, D={d}, r={r}, loss={loss}): {reason}")]
    #[diagnostic(
        code(cptc::law::bad_point),
        help("N, D and the loss must be finite and positive; the ratio r must lie in [0, 1]")
    )]
    BadPoint { index: usize, n: f64, d: f64, r: f64, loss: f64, reason: &'static str },

    #[error("Huber delta must be finite and positive, not {delta}")]
    #[diagnostic(code(cptc::law::bad_delta), help("the usual value is 1e-3 (residuals are on log-loss)"))]
    BadDelta { delta: f64 },

    #[error("{points} points cannot determine {params} free parameters")]
    #[diagnostic(
        code(cptc::law::too_few_points),
        help("add ratios, token budgets or evaluation points to the sweep (`eval_at` adds D points cheaply)")
    )]
    TooFewPoints { points: usize, params: usize },

    #[error("the points cover {ratios} distinct ratio(s); the law needs at least 2")]
    #[diagnostic(code(cptc::law::too_few_ratios), help("sweep at least two mixture ratios"))]
    TooFewRatios { ratios: usize },

    #[error("no start of the fit reached a finite objective")]
    #[diagnostic(
        code(cptc::law::fit_failed),
        help("the losses may be inconsistent with the law (e.g. rising with D); inspect the points")
    )]
    FitFailed,

    #[error("cannot predict at N={n}, D={d}, r={r}: {reason}")]
    #[diagnostic(code(cptc::law::bad_query), help("N and D must be finite and positive; r must lie in [0, 1]"))]
    BadQuery { n: f64, d: f64, r: f64, reason: &'static str },

    #[error("invalid choose input: {reason}")]
    #[diagnostic(code(cptc::law::bad_choice))]
    BadChoice { reason: String },

    #[error("usage 1 needs a fitted general-loss law")]
    #[diagnostic(code(cptc::law::missing_general_fit), help("give the choose stage a `general_fit`"))]
    MissingGeneralFit,

    #[error(
        "no ratio in [{r_min}, {r_max}] keeps the general-loss increase within {tolerance}; the smallest predicted increase is {best_increase:.4} at r = {best_ratio:.4}"
    )]
    #[diagnostic(
        code(cptc::law::infeasible),
        help("raise the tolerance, lower the smallest ratio searched, or check the general-loss base value")
    )]
    Infeasible { tolerance: f64, r_min: f64, r_max: f64, best_increase: f64, best_ratio: f64 },
}
