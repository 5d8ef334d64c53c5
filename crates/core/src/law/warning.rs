//! Structured warnings of fits and predictions: kept as data (for JSON artifacts) and rendered as text.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Something the user should know about a fit or a prediction that does not make it wrong outright.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LawWarning {
    /// One model size: `A/N^alpha` is not identifiable, so A = 0 and the term is folded into E.
    SingleModelSize { n: f64 },
    /// One token budget: `B` and `beta` trade off freely, so predictions at other D are guesses.
    SingleTokenBudget { d: f64 },
    /// A fitted exponent ended within 1% of a bound of its search interval.
    ParamAtBound { name: String, value: f64, lower: f64, upper: f64 },
    /// Leave-one-ratio-out was not run for this ratio (or at all, `ratio` = None).
    LooSkipped { ratio: Option<f64>, reason: String },
    /// A prediction at a model size outside the fitted range.
    NOutsideFit { n: f64, min: f64, max: f64 },
    /// A prediction at a token budget outside the fitted range.
    DOutsideFit { d: f64, min: f64, max: f64 },
    /// A prediction at a ratio below the smallest fitted one (where the law is least reliable).
    RatioBelowFit { r: f64, min: f64 },
    /// The chosen ratio is an end of the searched range: the optimum may lie beyond it.
    RatioAtSearchEdge { r: f64, min: f64, max: f64 },
}

impl fmt::Display for LawWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SingleModelSize { n } => {
                write!(f, "one model size (N = {n:.4e}): A/N^alpha is not identifiable and is folded into E (A = 0)")
            }
            Self::SingleTokenBudget { d } => {
                write!(f, "one token budget (D = {d:.4e}): B and beta are not identifiable separately")
            }
            Self::ParamAtBound { name, value, lower, upper } => {
                write!(f, "{name} = {value:.4} is at the edge of its search interval [{lower}, {upper}]")
            }
            Self::LooSkipped { ratio: Some(r), reason } => write!(f, "leave-out of ratio {r} skipped: {reason}"),
            Self::LooSkipped { ratio: None, reason } => write!(f, "leave-one-ratio-out skipped: {reason}"),
            Self::NOutsideFit { n, min, max } => {
                write!(f, "N = {n:.4e} is outside the fitted model sizes [{min:.4e}, {max:.4e}]")
            }
            Self::DOutsideFit { d, min, max } => {
                write!(f, "D = {d:.4e} is outside the fitted token budgets [{min:.4e}, {max:.4e}]")
            }
            Self::RatioBelowFit { r, min } => write!(f, "r = {r:.4} is below the smallest fitted ratio {min:.4}"),
            Self::RatioAtSearchEdge { r, min, max } => write!(
                f,
                "r* = {r:.4} is an end of the searched ratios [{min:.4}, {max:.4}]: the optimum may lie beyond; sweep past it to confirm"
            ),
        }
    }
}
