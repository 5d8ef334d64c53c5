//! The fit and choose stages: D-CPT law points gathered from a sweep's evaluations, the fit,
//! and the ratio chosen from the fitted laws, which later stages read as `choose.ratio`.

use serde_json::{Value, json};

use super::stages::{param, read_json, write_json};
use super::{StageCtx, StageFailure};
use crate::check::recipe::{LossKind, Objective, Role};
use crate::law::{self, ChooseInput, FitInput, FitResult, PlotOptions, Point, Target};

/// Token-weighted loss over the sets of one role at one evaluation.
fn role_loss(sets: &Value, roles: &Value, role: Role) -> Option<f64> {
    let (mut nats, mut tokens) = (0.0, 0.0);
    for (set, result) in sets.as_object()? {
        let set_role: Option<Role> = roles.get(set).and_then(|r| serde_json::from_value(r.clone()).ok());
        if set_role != Some(role) {
            continue;
        }
        nats += result.get("nats")?.as_f64()?;
        tokens += result.get("tokens")?.as_f64()?;
    }
    (tokens > 0.0).then(|| nats / tokens)
}

/// (points, base loss at step 0) of one loss kind over the sweep's train stages.
fn points(ctx: &StageCtx<'_>, loss: LossKind) -> Result<(Vec<Point>, Option<f64>), StageFailure> {
    let role = if loss == LossKind::Domain { Role::Domain } else { Role::General };
    let mut out = Vec::new();
    let mut base = Vec::new();
    for (stage, (_, meta)) in ctx.inputs_with("point:") {
        let v = &meta.values;
        let share =
            v.get("domain_share").and_then(Value::as_f64).ok_or_else(|| format!("{stage} has no domain share"))?;
        let r = if loss == LossKind::Domain { share } else { 1.0 - share };
        let n = v.get("params").and_then(Value::as_f64).ok_or_else(|| format!("{stage} has no parameter count"))?;
        let per_step = v.get("tokens_per_step").and_then(Value::as_f64).unwrap_or(0.0);
        let roles = v.get("roles").cloned().unwrap_or(Value::Null);
        for eval in v.get("evals").and_then(Value::as_array).into_iter().flatten() {
            let step = eval.get("step").and_then(Value::as_f64).unwrap_or(0.0);
            let Some(l) = eval.get("sets").and_then(|s| role_loss(s, &roles, role)) else { continue };
            if step == 0.0 {
                base.push(l);
            } else {
                out.push(Point { n, d: step * per_step, r, loss: l });
            }
        }
    }
    let base = (!base.is_empty()).then(|| base.iter().sum::<f64>() / base.len() as f64);
    Ok((out, base))
}

pub(super) fn fit(ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let loss: LossKind = param(ctx, "loss")?;
    let huber_delta: f64 = param(ctx, "huber_delta")?;
    let (points, base_loss) = points(ctx, loss)?;
    ctx.progress.set_message(format!("fitting the D-CPT law to {} points", points.len()));
    let result = law::fit(&FitInput { points, huber_delta }).map_err(|e| StageFailure {
        message: e.to_string(),
        help: miette::Diagnostic::help(&e).map(|h| h.to_string()),
    })?;
    write_json(&ctx.out.join("fit.json"), &json!({ "loss": loss, "base_loss": base_loss, "fit": result }))?;
    std::fs::write(ctx.out.join("law.txt"), law::show(&result))?;
    let title = format!("{} loss", if loss == LossKind::Domain { "domain" } else { "general" });
    let options = PlotOptions { title, complement: loss == LossKind::General, ..PlotOptions::default() };
    std::fs::write(ctx.out.join("law.svg"), law::ratio_plot_svg(&result, &options))?;
    Ok(json!({ "r2": result.r2, "base_loss": base_loss }))
}

fn read_fit(dir: &std::path::Path) -> Result<(FitResult, Option<f64>), StageFailure> {
    let value: Value = read_json(&dir.join("fit.json"))?;
    let fit: FitResult = serde_json::from_value(value.get("fit").cloned().unwrap_or(Value::Null))?;
    Ok((fit, value.get("base_loss").and_then(Value::as_f64)))
}

pub(super) fn choose(ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let objective: Objective = param(ctx, "objective")?;
    let tokens: Option<u64> = param(ctx, "tokens")?;
    let (domain_dir, _) = ctx.input("domain_law")?;
    let (domain, _) = read_fit(domain_dir)?;
    let general = match ctx.inputs.get("general_law") {
        Some((dir, _)) => Some(read_fit(dir)?),
        None => None,
    };
    // The model size the sweep ran (the largest, when several were fitted).
    let n = domain.n_fixed.unwrap_or(domain.n_range.max);
    let general_base = general.as_ref().and_then(|(_, base)| *base);
    let target = Target::from_recipe(objective, tokens, general_base)
        .map_err(|e| StageFailure { message: e.to_string(), help: None })?;
    let input = ChooseInput { n, target, r_min: None, r_max: None, plateau_drop: 0.01 };
    let result = law::choose(&domain, general.as_ref().map(|(g, _)| g), &input)
        .map_err(|e| StageFailure { message: e.to_string(), help: None })?;
    write_json(&ctx.out.join("choice.json"), &result)?;
    std::fs::write(ctx.out.join("choice.txt"), law::show_choice(&result))?;
    let tolerance = match target {
        Target::MaxGeneralIncrease { tolerance, general_base_loss, .. } => Some(general_base_loss * (1.0 + tolerance)),
        Target::DomainTokens { .. } => None,
    };
    let options =
        PlotOptions { title: "domain loss".into(), chosen_ratio: Some(result.ratio), ..PlotOptions::default() };
    std::fs::write(ctx.out.join("domain.svg"), law::ratio_plot_svg(&domain, &options))?;
    if let Some((g, _)) = &general {
        let options = PlotOptions {
            title: "general loss".into(),
            complement: true,
            chosen_ratio: Some(result.ratio),
            tolerance_loss: tolerance,
            ..PlotOptions::default()
        };
        std::fs::write(ctx.out.join("general.svg"), law::ratio_plot_svg(g, &options))?;
    }
    Ok(json!({ "ratio": result.ratio, "domain_loss": result.domain_loss, "general_loss": result.general_loss }))
}
