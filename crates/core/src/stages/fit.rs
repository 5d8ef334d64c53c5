//! The fit stage: D-CPT law points gathered from a sweep's evaluations, and the law fitted
//! to them (parameters, fit quality, a ratio plot).

use serde::Serialize;
use serde_json::{Value, json};

use super::{Input, StageCtx, StageFailure, read_json, write_json};
use crate::law::{self, FitInput, FitResult, PlotOptions, Point};
use crate::recipe::{LossKind, Role};

/// v2: base losses per model size; a non-finite evaluation fails the fit.
pub const VERSION: u64 = 2;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    pub loss: LossKind,
    pub huber_delta: f64,
}

/// Token-weighted loss over the sets of one role at one evaluation; `None` when no set has the
/// role. A set without a finite loss (JSON writes NaN as null) is an error, not a gap.
fn role_loss(sets: &Value, roles: &Value, role: Role) -> Result<Option<f64>, String> {
    let (mut nats, mut tokens) = (0.0, 0.0);
    for (set, result) in sets.as_object().into_iter().flatten() {
        let set_role: Option<Role> = roles.get(set).and_then(|r| serde_json::from_value(r.clone()).ok());
        if set_role != Some(role) {
            continue;
        }
        let number = |key: &str| result.get(key).and_then(Value::as_f64).filter(|x| x.is_finite());
        let (Some(n), Some(t)) = (number("nats"), number("tokens")) else {
            return Err(format!("held-out set `{set}` has no finite loss (did the run diverge?)"));
        };
        nats += n;
        tokens += t;
    }
    Ok((tokens > 0.0).then(|| nats / tokens))
}

/// The base model's loss (step 0) at one model size.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct BaseLoss {
    pub(super) n: f64,
    pub(super) loss: f64,
}

/// (points, base loss at step 0 per model size, ascending) of one loss kind over the sweep's
/// train stages.
fn points(ctx: &StageCtx<'_>, loss: LossKind) -> Result<(Vec<Point>, Vec<BaseLoss>), StageFailure> {
    let role = if loss == LossKind::Domain { Role::Domain } else { Role::General };
    let mut out = Vec::new();
    let mut base: Vec<(f64, f64, usize)> = Vec::new();
    for (stage, _, meta) in ctx.inputs_where(|i| match i {
        Input::Point(id) => Some(id),
        _ => None,
    }) {
        let v = &meta.values;
        let share =
            v.get("domain_share").and_then(Value::as_f64).ok_or_else(|| format!("{stage} has no domain share"))?;
        let r = if loss == LossKind::Domain { share } else { 1.0 - share };
        let n = v.get("params").and_then(Value::as_f64).ok_or_else(|| format!("{stage} has no parameter count"))?;
        let per_step = v
            .get("tokens_per_step")
            .and_then(Value::as_f64)
            .filter(|&t| t > 0.0)
            .ok_or_else(|| format!("{stage} has no tokens per step"))?;
        let roles = v.get("roles").cloned().unwrap_or(Value::Null);
        for eval in v.get("evals").and_then(Value::as_array).into_iter().flatten() {
            let step = eval.get("step").and_then(Value::as_f64).unwrap_or(0.0);
            let l = role_loss(eval.get("sets").unwrap_or(&Value::Null), &roles, role)
                .map_err(|e| format!("{stage}, evaluation at step {step}: {e}"))?;
            let Some(l) = l else { continue };
            if step == 0.0 {
                match base.iter_mut().find(|b| b.0 == n) {
                    Some(b) => (b.1, b.2) = (b.1 + l, b.2 + 1),
                    None => base.push((n, l, 1)),
                }
            } else {
                out.push(Point { n, d: step * per_step, r, loss: l });
            }
        }
    }
    // Every run of one model starts from the same weights: their step-0 losses agree, and the
    // mean only smooths evaluation noise. Sizes are never mixed.
    let mut base: Vec<BaseLoss> = base.into_iter().map(|(n, sum, k)| BaseLoss { n, loss: sum / k as f64 }).collect();
    base.sort_by(|a, b| a.n.total_cmp(&b.n));
    Ok((out, base))
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let (loss, huber_delta) = (p.loss, p.huber_delta);
    let (points, base_losses) = points(ctx, loss)?;
    // The largest model's, as `choose` uses it.
    let base_loss = base_losses.last().map(|b| b.loss);
    ctx.progress.set_message(format!("fitting the D-CPT law to {} points", points.len()));
    let result = law::fit(&FitInput { points, huber_delta })?;
    let fit_json = json!({ "loss": loss, "base_loss": base_loss, "base_losses": base_losses, "fit": result });
    write_json(&ctx.out.join("fit.json"), &fit_json)?;
    fs_err::write(ctx.out.join("law.txt"), law::show(&result))?;
    let title = format!("{} loss", if loss == LossKind::Domain { "domain" } else { "general" });
    let options = PlotOptions { title, complement: loss == LossKind::General, ..PlotOptions::default() };
    fs_err::write(ctx.out.join("law.svg"), law::ratio_plot_svg(&result, &options))?;
    Ok(json!({ "r2": result.r2, "base_loss": base_loss }))
}

/// A fit stage's law and its base losses per model size.
pub(super) fn read_fit(dir: &std::path::Path) -> Result<(FitResult, Vec<BaseLoss>), StageFailure> {
    let path = dir.join("fit.json");
    let value: Value = read_json(&path)?;
    let fit: FitResult = serde_json::from_value(value.get("fit").cloned().unwrap_or(Value::Null))
        .map_err(|e| StageFailure::internal(format!("{}: {e}", path.display())))?;
    let base = serde_json::from_value(value.get("base_losses").cloned().unwrap_or(Value::Null))
        .map_err(|e| StageFailure::internal(format!("{}: {e}", path.display())))?;
    Ok((fit, base))
}
