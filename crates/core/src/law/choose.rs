//! Choosing the mixture ratio from fitted laws (usages 1 and 2 of D-CPT) and the token plateau.
//!
//! Both usages are a 1-D search over the domain ratio r in [r_min, r_max] (by default the
//! fitted ratios' range: outside it the law extrapolates): a dense grid first (the
//! curves can have several local minima, and the feasible set of usage 1 need not be an
//! interval), then golden-section refinement around the best grid point, or bisection onto the
//! constraint boundary when that is where the optimum lies.

use serde::{Deserialize, Serialize};

use super::error::LawError;
use super::fit::FitResult;
use super::warning::LawWarning;
use crate::recipe::Objective;

/// Grid points of the coarse search.
const GRID: usize = 2001;

/// What to optimise.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// Usage 1: `argmin_r L_d(N, D, r)` s.t. `(L_g(N, D, 1-r) - L_g0) / L_g0 <= tolerance`.
    MaxGeneralIncrease {
        tolerance: f64,
        /// D: total CPT tokens.
        tokens: f64,
        /// L_g0: the base model's general loss, before CPT.
        general_base_loss: f64,
    },
    /// Usage 2: `argmin_r L_d(N, D_dom / r, r)`: all domain tokens used, general data fills up.
    DomainTokens { domain_tokens: f64 },
}

impl Target {
    /// The target a checked `choose` stage asks for; `general_base_loss` is the base model's
    /// measured general loss (needed by usage 1 only).
    pub fn from_recipe(
        objective: Objective,
        tokens: Option<u64>,
        general_base_loss: Option<f64>,
    ) -> Result<Self, LawError> {
        match objective {
            Objective::MaxGeneralIncrease(tolerance) => Ok(Self::MaxGeneralIncrease {
                tolerance,
                tokens: tokens
                    .ok_or_else(|| LawError::BadChoice { reason: "usage 1 needs the token budget `tokens`".into() })?
                    as f64,
                general_base_loss: general_base_loss.ok_or_else(|| LawError::BadChoice {
                    reason: "usage 1 needs the base model's general loss".into(),
                })?,
            }),
            Objective::DomainTokens(d) => Ok(Self::DomainTokens { domain_tokens: d as f64 }),
        }
    }
}

/// What a choose stage reads (besides the fitted laws).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChooseInput {
    /// Model size N at which the laws are evaluated.
    pub n: f64,
    pub target: Target,
    /// Smallest domain ratio searched; default: the smallest positive ratio of the domain fit
    /// (below it the law is extrapolating).
    #[serde(default)]
    pub r_min: Option<f64>,
    /// Largest domain ratio searched; default: the largest fitted domain ratio, and for usage 1
    /// also at most 1 - the smallest fitted general share.
    #[serde(default)]
    pub r_max: Option<f64>,
    /// The plateau is where doubling D lowers the predicted domain loss by less than this (loss units).
    pub plateau_drop: f64,
}

/// The chosen ratio and what the laws predict there; stored as a JSON artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChooseResult {
    /// Chosen domain ratio r*.
    pub ratio: f64,
    /// Total tokens D at r* (usage 2: D_dom / r*).
    pub tokens: f64,
    pub domain_loss: f64,
    /// Usage 1: predicted general loss at r* and its relative increase over L_g0.
    pub general_loss: Option<f64>,
    pub general_increase: Option<f64>,
    /// True when the tolerance decided the ratio (the unconstrained optimum breaks it).
    pub constraint_binds: bool,
    /// Ratio minimising the domain loss alone.
    pub unconstrained_ratio: f64,
    pub r_min: f64,
    pub r_max: f64,
    pub plateau_drop: f64,
    /// Token budget after which doubling D lowers the domain loss at r* by less than `plateau_drop`.
    pub plateau_tokens: Option<f64>,
    /// Range warnings of the laws at the chosen point.
    pub warnings: Vec<LawWarning>,
}

fn check_pos(v: f64, what: &str) -> Result<(), LawError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(LawError::BadChoice { reason: format!("{what} must be finite and positive, not {v}") })
    }
}

fn not_finite() -> LawError {
    LawError::BadChoice { reason: "the fitted law is not finite anywhere on the searched ratios".into() }
}

/// Chooses the domain ratio: usage 1 needs `general`, usage 2 ignores it.
pub fn choose(domain: &FitResult, general: Option<&FitResult>, input: &ChooseInput) -> Result<ChooseResult, LawError> {
    let n = input.n;
    check_pos(n, "N")?;
    check_pos(input.plateau_drop, "the plateau drop")?;
    let r_min = match input.r_min {
        Some(r) => r,
        None => domain.residuals.iter().map(|x| x.point.r).filter(|&r| r > 0.0).fold(1.0, f64::min),
    };
    if !(r_min.is_finite() && r_min > 0.0 && r_min <= 1.0) {
        return Err(LawError::BadChoice { reason: format!("r_min must lie in (0, 1], not {r_min}") });
    }
    let r_max = match input.r_max {
        Some(r) => r,
        None => {
            let general_min = match (general, input.target) {
                (Some(g), Target::MaxGeneralIncrease { .. }) => g.r_range.min,
                _ => 0.0,
            };
            domain.r_range.max.min(1.0 - general_min).max(r_min)
        }
    };
    if !(r_max.is_finite() && r_max >= r_min && r_max <= 1.0) {
        return Err(LawError::BadChoice { reason: format!("r_max must lie in [{r_min}, 1], not {r_max}") });
    }
    let pd = domain.params;
    let grid: Vec<f64> = (0..GRID)
        .map(|i| if i + 1 == GRID { r_max } else { r_min + (r_max - r_min) * i as f64 / (GRID - 1) as f64 })
        .collect();

    let (ratio, tokens, binds, unconstrained, general_loss, general_increase) = match input.target {
        Target::MaxGeneralIncrease { tolerance, tokens, general_base_loss } => {
            let general = general.ok_or(LawError::MissingGeneralFit)?;
            check_pos(tokens, "the token budget")?;
            check_pos(general_base_loss, "the base general loss")?;
            if !tolerance.is_finite() {
                return Err(LawError::BadChoice { reason: format!("the tolerance must be finite, not {tolerance}") });
            }
            let pg = general.params;
            let ld = |r: f64| pd.loss(n, tokens, r);
            let increase = |r: f64| (pg.loss(n, tokens, 1.0 - r) - general_base_loss) / general_base_loss;
            let feasible = |r: f64| increase(r) <= tolerance;
            let unconstrained = argmin(&grid, &ld, |_| true).ok_or_else(not_finite)?;
            let (ratio, binds) = if feasible(unconstrained) {
                (unconstrained, false)
            } else {
                match argmin(&grid, &ld, feasible) {
                    Some(r) => (r, true),
                    None => {
                        let best = argmin(&grid, &increase, |_| true).ok_or_else(not_finite)?;
                        return Err(LawError::Infeasible {
                            tolerance,
                            r_min,
                            r_max,
                            best_increase: increase(best),
                            best_ratio: best,
                        });
                    }
                }
            };
            let g = pg.loss(n, tokens, 1.0 - ratio);
            (ratio, tokens, binds, unconstrained, Some(g), Some((g - general_base_loss) / general_base_loss))
        }
        Target::DomainTokens { domain_tokens } => {
            check_pos(domain_tokens, "the domain token count")?;
            let ld = |r: f64| pd.loss(n, domain_tokens / r, r);
            let ratio = argmin(&grid, &ld, |_| true).ok_or_else(not_finite)?;
            (ratio, domain_tokens / ratio, false, ratio, None, None)
        }
    };

    let mut warnings = domain.range_warnings(n, tokens, ratio);
    // An optimum at the edge of the searched ratios may lie beyond it.
    if (r_max > r_min && (ratio - r_max).abs() <= 1e-9) || (ratio - r_min).abs() <= 1e-12 {
        warnings.push(LawWarning::RatioAtSearchEdge { r: ratio, min: r_min, max: r_max });
    }
    if let (Some(g), Target::MaxGeneralIncrease { .. }) = (general, input.target) {
        for w in g.range_warnings(n, tokens, 1.0 - ratio) {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    Ok(ChooseResult {
        ratio,
        tokens,
        domain_loss: pd.loss(n, tokens, ratio),
        general_loss,
        general_increase,
        constraint_binds: binds,
        unconstrained_ratio: unconstrained,
        r_min,
        r_max,
        plateau_drop: input.plateau_drop,
        plateau_tokens: plateau(domain, ratio, input.plateau_drop),
        warnings,
    })
}

/// Token budget D after which doubling D lowers `L_d(., D, r)` by less than `drop`.
///
/// Only the B term depends on D: L(D) - L(2D) = B r^eta (1 - 2^-beta) / D^beta, which falls
/// below `drop` for D > (B r^eta (1 - 2^-beta) / drop)^(1/beta). None when D does not matter.
pub fn plateau(domain: &FitResult, r: f64, drop: f64) -> Option<f64> {
    let p = domain.params;
    if !(p.b > 0.0 && p.beta > 0.0 && r > 0.0 && drop > 0.0) {
        return None;
    }
    let k = p.b.ln() + p.eta * r.ln() + (1.0 - 2f64.powf(-p.beta)).ln() - drop.ln();
    let d = (k / p.beta).exp();
    d.is_finite().then_some(d)
}

/// Minimiser of `f` over the allowed points of `grid`, refined between the grid neighbours.
fn argmin(grid: &[f64], f: &impl Fn(f64) -> f64, allowed: impl Fn(f64) -> bool) -> Option<f64> {
    let vals: Vec<Option<f64>> = grid.iter().map(|&r| allowed(r).then(|| f(r)).filter(|v| v.is_finite())).collect();
    let (i, fi) = vals
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))?;
    let r = grid[i];
    let mut best = (r, fi);
    for j in [i.checked_sub(1), (i + 1 < grid.len()).then_some(i + 1)].into_iter().flatten() {
        if vals[j].is_none() {
            // The neighbour is not allowed: the optimum may sit on the boundary between them.
            let edge = boundary(grid[i], grid[j], &allowed);
            let fe = f(edge);
            if fe < best.1 {
                best = (edge, fe);
            }
        }
    }
    let lo = i.checked_sub(1).map_or(r, |j| grid[j]);
    let hi = grid.get(i + 1).copied().unwrap_or(r);
    let g = golden(f, lo, hi);
    let fg = f(g);
    if allowed(g) && fg < best.1 {
        best = (g, fg);
    }
    Some(best.0)
}

/// Bisection between an allowed `a` and a disallowed `b`: the allowed point nearest the boundary.
fn boundary(mut a: f64, mut b: f64, allowed: &impl Fn(f64) -> bool) -> f64 {
    for _ in 0..100 {
        let m = 0.5 * (a + b);
        if m == a || m == b {
            break;
        }
        if allowed(m) {
            a = m;
        } else {
            b = m;
        }
    }
    a
}

/// Golden-section search for a minimum of `f` on [lo, hi].
fn golden(f: &impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let inv_phi = (5f64.sqrt() - 1.0) / 2.0;
    let mut x1 = hi - inv_phi * (hi - lo);
    let mut x2 = lo + inv_phi * (hi - lo);
    let (mut f1, mut f2) = (f(x1), f(x2));
    for _ in 0..200 {
        if hi - lo <= 1e-12 * hi.abs().max(1e-300) {
            break;
        }
        if f1 <= f2 {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - inv_phi * (hi - lo);
            f1 = f(x1);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + inv_phi * (hi - lo);
            f2 = f(x2);
        }
    }
    0.5 * (lo + hi)
}
