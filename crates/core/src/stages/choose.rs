//! The choose stage: the ratio chosen from fitted laws (usage 1: least domain loss within a
//! general-loss budget; usage 2: a fixed number of domain tokens), which later stages read as
//! `choose.ratio`.

use serde::Serialize;
use serde_json::{Value, json};

use super::fit::read_fit;
use super::{Input, StageCtx, StageFailure, write_json};
use crate::law::{self, ChooseInput, PlotOptions, Target};
use crate::recipe::Objective;

/// v2: the search stays within the fitted ratios (r_max).
pub const VERSION: u64 = 2;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    pub objective: Objective,
    /// Token budget D at which the law is evaluated (usage 1).
    pub tokens: Option<u64>,
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let (domain_dir, _) = ctx.input(&Input::DomainLaw)?;
    let (domain, _) = read_fit(domain_dir)?;
    let general = match ctx.optional(&Input::GeneralLaw) {
        Some((dir, _)) => Some(read_fit(dir)?),
        None => None,
    };
    // The model size the sweep ran (the largest, when several were fitted).
    let n = domain.n_fixed.unwrap_or(domain.n_range.max);
    // The base general loss of that model: the T% budget is relative to it, never to another size's.
    let general_base = general.as_ref().and_then(|(_, base)| base.iter().find(|b| b.n == n)).map(|b| b.loss);
    let target = Target::from_recipe(p.objective, p.tokens, general_base)?;
    let input = ChooseInput { n, target, r_min: None, r_max: None, plateau_drop: 0.01 };
    let result = law::choose(&domain, general.as_ref().map(|(g, _)| g), &input)?;
    write_json(&ctx.out.join("choice.json"), &result)?;
    fs_err::write(ctx.out.join("choice.txt"), law::show_choice(&result))?;
    let tolerance = match target {
        Target::MaxGeneralIncrease { tolerance, general_base_loss, .. } => Some(general_base_loss * (1.0 + tolerance)),
        Target::DomainTokens { .. } => None,
    };
    let options =
        PlotOptions { title: "domain loss".into(), chosen_ratio: Some(result.ratio), ..PlotOptions::default() };
    fs_err::write(ctx.out.join("domain.svg"), law::ratio_plot_svg(&domain, &options))?;
    if let Some((g, _)) = &general {
        let options = PlotOptions {
            title: "general loss".into(),
            complement: true,
            chosen_ratio: Some(result.ratio),
            tolerance_loss: tolerance,
            ..PlotOptions::default()
        };
        fs_err::write(ctx.out.join("general.svg"), law::ratio_plot_svg(g, &options))?;
    }
    Ok(json!({ "ratio": result.ratio, "domain_loss": result.domain_loss, "general_loss": result.general_loss }))
}
