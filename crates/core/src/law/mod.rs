//! The D-CPT scaling law: fitting, choosing the mixture ratio, plots.
//!
//! `L(N, D, r) = E + A/N^alpha + B*r^eta/D^beta + C/(r+eps)^gamma` (Que et al. 2024), one law per
//! (domain, loss kind); `r` is the share of the corpus whose loss is modelled. See
//! /work/shared/DOMAIN.md section 1 for the law and its three usages.
//!
//! ```text
//! fit(&FitInput { points, huber_delta })          -> FitResult { params, r2, huber, residuals, loo_errors, warnings, n_fixed, .. }
//! FitResult::predict(n, d, r)                     -> Prediction { loss, warnings }
//! choose(&domain_fit, Some(&general_fit), &ChooseInput { n, target, r_min, r_max, plateau_drop })
//!                                                 -> ChooseResult { ratio, domain_loss, general_loss, constraint_binds, plateau_tokens, .. }
//! ratio_plot_svg(&fit, &PlotOptions)              -> SVG text;  show(&fit) -> text for `cptc law show`
//! ```
//!
//! Fitting (Chinchilla practice): minimise the sum of Huber(delta, ln L_pred - ln L_obs) with
//! L-BFGS from a grid of starts and keep the best. With one model size A/N^alpha cannot be told
//! apart from E, so A = 0 and `FitResult::n_fixed` says so. Everything here is deterministic and
//! every bad input is a [`LawError`].

pub mod choose;
pub mod error;
pub mod fit;
mod lbfgs;
pub mod model;
pub mod plot;
pub mod show;
pub mod warning;

use serde::{Deserialize, Serialize};

pub use choose::{ChooseInput, ChooseResult, Target, choose};
pub use error::LawError;
pub use fit::{FitOptions, FitResult, LooError, Prediction, Residual, Span, fit, fit_with};
pub use model::{Params, Problem};
pub use plot::{PlotOptions, ratio_plot_svg};
pub use show::{show, show_choice};
pub use warning::LawWarning;

/// Huber delta used when a recipe does not set one (Chinchilla's value, on log-loss residuals).
pub const DEFAULT_HUBER_DELTA: f64 = 1e-3;

/// One evaluation: a model of `n` parameters after `d` training tokens at ratio `r` had `loss`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub n: f64,
    pub d: f64,
    pub r: f64,
    pub loss: f64,
}

/// What a fit stage reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitInput {
    pub points: Vec<Point>,
    #[serde(default = "default_delta")]
    pub huber_delta: f64,
}

fn default_delta() -> f64 {
    DEFAULT_HUBER_DELTA
}
