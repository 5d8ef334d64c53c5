//! Choosing the ratio (usages 1 and 2) on laws with known optima, the token plateau, the SVG
//! plot (snapshot) and the text rendering.

use cptc::law::{
    self, ChooseInput, FitResult, LawError, LawWarning, Params, PlotOptions, Point, Residual, Span, Target,
};
use cptc::recipe::Objective;
use miette::Diagnostic;

/// A fit result for hand-written parameters, as if fitted on `points` (losses taken from the law).
fn fit_of(params: Params, ns: &[f64], ds: &[f64], rs: &[f64]) -> FitResult {
    let mut residuals = Vec::new();
    for &n in ns {
        for &d in ds {
            for &r in rs {
                let loss = params.loss(n, d, r);
                residuals.push(Residual { point: Point { n, d, r, loss }, predicted: loss, log_residual: 0.0 });
            }
        }
    }
    let span = |v: &[f64]| Span {
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        max: v.iter().copied().fold(0.0, f64::max),
    };
    FitResult {
        params,
        r2: Some(1.0),
        huber: 0.0,
        huber_delta: 1e-3,
        residuals,
        loo_errors: Vec::new(),
        warnings: Vec::new(),
        n_fixed: (ns.len() == 1).then(|| ns[0]),
        n_range: span(ns),
        d_range: span(ds),
        r_range: span(rs),
        starts: 0,
        converged_starts: 0,
    }
}

const N: f64 = 1.8e9;
const RS: [f64; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];
const DS: [f64; 4] = [1e9, 2e9, 5e9, 1e10];

/// Domain law with eps = 0, so the optima have closed forms.
fn domain() -> Params {
    Params { e: 1.5, a: 0.0, alpha: 0.0, b: 200.0, beta: 0.3, c: 0.2, gamma: 0.5, eta: 0.5, eps: 0.0 }
}

/// General law in the general share r_g: falls as r_g grows (more replay, less forgetting).
fn general() -> Params {
    Params { e: 2.0, a: 0.0, alpha: 0.0, b: 0.0, beta: 0.3, c: 0.3, gamma: 0.7, eta: 0.5, eps: 0.05 }
}

fn input(target: Target) -> ChooseInput {
    ChooseInput { n: N, target, r_min: Some(0.05), r_max: Some(1.0), plateau_drop: 0.01 }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn usage_2_finds_the_closed_form_optimum() {
    let p = domain();
    let fit = fit_of(p, &[N], &DS, &RS);
    let d_dom: f64 = 5e9;
    // L = E + B D_dom^-beta r^(eta+beta) + C r^-gamma: zero derivative at
    // r^(eta+beta+gamma) = gamma C / ((eta+beta) B D_dom^-beta).
    let k = p.b * d_dom.powf(-p.beta);
    let expected = (p.gamma * p.c / ((p.eta + p.beta) * k)).powf(1.0 / (p.eta + p.beta + p.gamma));
    let c = law::choose(&fit, None, &input(Target::DomainTokens { domain_tokens: d_dom })).unwrap();
    eprintln!("{}", law::show_choice(&c));
    assert!(close(c.ratio, expected, 1e-6), "chosen {} expected {expected}", c.ratio);
    assert!(close(c.tokens, d_dom / c.ratio, 1.0));
    assert!(!c.constraint_binds);
    assert_eq!(c.general_loss, None);
    assert!(close(c.domain_loss, p.loss(N, d_dom / expected, expected), 1e-9));
    // D = D_dom / r* ~ 8e9 lies inside the fitted budgets.
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    // Few domain tokens push D below the fitted range: the result says so.
    let c = law::choose(&fit, None, &input(Target::DomainTokens { domain_tokens: 1e8 })).unwrap();
    assert!(c.warnings.iter().any(|w| matches!(w, LawWarning::DOutsideFit { .. })), "{:?}", c.warnings);
}

#[test]
fn usage_1_interior_optimum_when_the_tolerance_is_loose() {
    let p = domain();
    let (dfit, gfit) = (fit_of(p, &[N], &DS, &RS), fit_of(general(), &[N], &DS, &RS));
    let d: f64 = 1e9;
    let k = p.b * d.powf(-p.beta);
    let expected = (p.gamma * p.c / (p.eta * k)).powf(1.0 / (p.eta + p.gamma));
    let target = Target::MaxGeneralIncrease { tolerance: 0.5, tokens: d, general_base_loss: 2.4 };
    let c = law::choose(&dfit, Some(&gfit), &input(target)).unwrap();
    assert!(close(c.ratio, expected, 1e-6), "chosen {} expected {expected}", c.ratio);
    assert!(!c.constraint_binds);
    assert!(close(c.unconstrained_ratio, c.ratio, 1e-12));
    let g = general().loss(N, d, 1.0 - c.ratio);
    assert!(close(c.general_loss.unwrap(), g, 1e-12));
    assert!(close(c.general_increase.unwrap(), (g - 2.4) / 2.4, 1e-12));
}

#[test]
fn usage_1_binding_tolerance_lands_on_the_boundary() {
    // Domain loss falls all the way to r = 1, so only the tolerance stops it.
    let dp = Params { b: 0.0, eps: 0.05, ..domain() };
    let gp = general();
    let (dfit, gfit) = (fit_of(dp, &[N], &DS, &RS), fit_of(gp, &[N], &DS, &RS));
    let (l_g0, t) = (2.4, 0.03);
    // C_g / (1 - r + eps_g)^gamma_g = L_g0 (1 + T) - E_g.
    let expected = 1.0 + gp.eps - (gp.c / (l_g0 * (1.0 + t) - gp.e)).powf(1.0 / gp.gamma);
    let target = Target::MaxGeneralIncrease { tolerance: t, tokens: 1e10, general_base_loss: l_g0 };
    let c = law::choose(&dfit, Some(&gfit), &input(target)).unwrap();
    eprintln!("{}", law::show_choice(&c));
    assert!(c.constraint_binds);
    assert!(close(c.ratio, expected, 1e-9), "chosen {} expected {expected}", c.ratio);
    assert!(close(c.unconstrained_ratio, 1.0, 1e-9));
    let inc = c.general_increase.unwrap();
    assert!(inc <= t && inc > t - 1e-9, "increase {inc}");
    assert!(law::show_choice(&c).contains("the tolerance binds"));

    // A tolerance no ratio meets is an error naming the best achievable increase.
    let target = Target::MaxGeneralIncrease { tolerance: -0.5, tokens: 1e10, general_base_loss: l_g0 };
    let e = law::choose(&dfit, Some(&gfit), &input(target)).unwrap_err();
    assert!(matches!(e, LawError::Infeasible { .. }), "{e:?}");
    assert_eq!(e.code().unwrap().to_string(), "cptc::law::infeasible");
}

#[test]
fn plateau_is_where_doubling_d_gains_less_than_the_drop() {
    let p = domain();
    let fit = fit_of(p, &[N], &DS, &RS);
    let drop = 0.01;
    let d = law::choose::plateau(&fit, 0.6, drop).unwrap();
    let gain = p.loss(N, d, 0.6) - p.loss(N, 2.0 * d, 0.6);
    assert!(close(gain, drop, 1e-12), "gain {gain} at D = {d}");
    assert!(p.loss(N, 2.0 * d, 0.6) - p.loss(N, 4.0 * d, 0.6) < drop);
    // No B term: D does not matter.
    assert_eq!(law::choose::plateau(&fit_of(Params { b: 0.0, ..p }, &[N], &DS, &RS), 0.6, drop), None);
}

#[test]
fn bad_choose_inputs_are_coded_errors() {
    let fit = fit_of(domain(), &[N], &DS, &RS);
    let code = |e: LawError| e.code().unwrap().to_string();
    let usage1 = Target::MaxGeneralIncrease { tolerance: 0.03, tokens: 1e10, general_base_loss: 2.4 };
    assert_eq!(code(law::choose(&fit, None, &input(usage1)).unwrap_err()), "cptc::law::missing_general_fit");
    let usage2 = Target::DomainTokens { domain_tokens: 5e9 };
    for bad in [
        ChooseInput { r_min: Some(0.0), ..input(usage2) },
        ChooseInput { r_min: Some(f64::NAN), ..input(usage2) },
        ChooseInput { n: -1.0, ..input(usage2) },
        ChooseInput { plateau_drop: 0.0, ..input(usage2) },
        input(Target::DomainTokens { domain_tokens: f64::INFINITY }),
    ] {
        assert_eq!(code(law::choose(&fit, None, &bad).unwrap_err()), "cptc::law::bad_choice", "{bad:?}");
    }
    let no_base = Target::from_recipe(Objective::MaxGeneralIncrease(0.03), Some(10_000_000_000), None);
    assert_eq!(code(no_base.unwrap_err()), "cptc::law::bad_choice");
    assert_eq!(
        Target::from_recipe(Objective::MaxGeneralIncrease(0.03), Some(10_000_000_000), Some(2.86)).unwrap(),
        Target::MaxGeneralIncrease { tolerance: 0.03, tokens: 1e10, general_base_loss: 2.86 }
    );
    assert_eq!(
        Target::from_recipe(Objective::DomainTokens(5_000_000_000), None, None).unwrap(),
        Target::DomainTokens { domain_tokens: 5e9 }
    );
    // r_min defaults to the smallest positive fitted ratio.
    let c = law::choose(&fit, None, &ChooseInput { r_min: None, ..input(usage2) }).unwrap();
    assert_eq!(c.r_min, 0.1);
    // r_max defaults to the largest fitted ratio: the law is not trusted beyond the sweep, and
    // an optimum at the edge says so.
    let c = law::choose(&fit, None, &ChooseInput { r_max: None, ..input(usage2) }).unwrap();
    let largest = fit.residuals.iter().map(|r| r.point.r).fold(0.0, f64::max);
    assert_eq!(c.r_max, largest);
    assert!(c.ratio <= largest);
    let at_edge = c.warnings.iter().any(|w| matches!(w, law::LawWarning::RatioAtSearchEdge { .. }));
    assert_eq!(at_edge, c.ratio == largest || c.ratio == c.r_min, "{:?}", c.warnings);
    // The result is a JSON artifact.
    let back: law::ChooseResult = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back.constraint_binds, c.constraint_binds);
    assert!(close(back.ratio, c.ratio, 1e-15));
}

#[test]
fn small_plot_snapshot() {
    // A general-loss law that also falls with D, drawn over the domain ratio (x = 1 - r_g).
    let fit = fit_of(Params { b: 40.0, ..general() }, &[N], &[1e9, 1e10], &[0.2, 0.5, 0.8]);
    let opts = PlotOptions {
        title: "general loss <chem> & replay".into(),
        complement: true,
        chosen_ratio: Some(0.527),
        tolerance_loss: Some(2.472),
        width: 480,
        height: 300,
        ..PlotOptions::default()
    };
    let svg = law::ratio_plot_svg(&fit, &opts);
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    assert!(svg.contains("&lt;chem&gt; &amp; replay"));
    assert_eq!(svg, law::ratio_plot_svg(&fit, &opts), "deterministic");
    insta::assert_snapshot!("small_plot", svg);
}

#[test]
fn show_renders_parameters_and_quality() {
    let mut fit = fit_of(domain(), &[N], &DS, &RS);
    fit.warnings.push(LawWarning::SingleModelSize { n: N });
    fit.loo_errors.push(law::LooError { ratio: 0.5, points: 4, mean_rel_error: 0.004, max_rel_error: 0.006 });
    insta::assert_snapshot!("show_text", law::show(&fit));
}
