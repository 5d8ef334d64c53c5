//! The report stage: gathers what the recipe's stages measured (evaluations, training curves,
//! mixtures as drawn, vocabulary gains, fitted laws) into [`ReportData`] and writes
//! `report.html`, `summary.txt` and `report.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Input, StageCtx, StageFailure, StageId, StageKind, read_json, write_json};
use crate::backend::eval::EvalResult;
use crate::report::{
    EvalPoint, EvalReport, LawReport, ReportData, SetMetrics, SftStart, ShareWindow, StepPoint, TrainReport,
    VocabReport,
};

/// v2: the post-SFT probe.
pub const VERSION: u64 = 2;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    pub format: ReportFormat,
    /// The recipe's file name, for the title.
    pub recipe: String,
    /// Each eval stage (by name): the model it measures and whether that model was trained
    /// here (the "after" of gain and forgetting).
    pub evals: BTreeMap<String, EvalInfo>,
    /// Each SFT phase (a train whose mixture is all `sft`): the model it started from, and
    /// whether that was trained here. Absent from the key when none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sft: BTreeMap<String, EvalInfo>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    Html,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalInfo {
    pub model: String,
    pub trained: bool,
}

fn read_text(path: &Path) -> Result<String, StageFailure> {
    Ok(fs_err::read_to_string(path)?)
}

/// A line of a train's `metrics.jsonl`.
#[derive(Deserialize)]
struct Record {
    kind: String,
    step: u64,
    #[serde(default)]
    tokens: u64,
    #[serde(default)]
    loss: f64,
    #[serde(default)]
    lr: f64,
    #[serde(default)]
    tokens_per_s: Option<f64>,
}

#[derive(Deserialize)]
struct Window {
    start: u64,
    sequences: u64,
    realized: BTreeMap<String, f64>,
    target: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
struct MixStats {
    seq_len: u64,
    windows: Vec<Window>,
}

fn train_report(name: &str, dir: &Path, values: &Value, mix: Option<&Path>) -> Result<TrainReport, StageFailure> {
    let get = |k: &str| values.get(k).and_then(Value::as_u64).unwrap_or(0);
    let tokens_per_step = get("tokens_per_step");
    let mut curve = Vec::new();
    let mut speeds = Vec::new();
    let log = read_text(&dir.join("metrics.jsonl"))?;
    for (i, line) in log.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let r: Record = serde_json::from_str(line)
            .map_err(|e| StageFailure::internal(format!("{}:{}: {e}", dir.join("metrics.jsonl").display(), i + 1)))?;
        if r.kind == "train" {
            speeds.extend(r.tokens_per_s.filter(|v| v.is_finite()));
            curve.push(StepPoint { step: r.step, tokens: r.tokens, loss: r.loss, lr: r.lr });
        }
    }
    let mut evals = Vec::new();
    let recorded: Vec<Value> = read_json(&dir.join("evals.json"))?;
    for e in &recorded {
        let step = e.get("step").and_then(Value::as_u64).unwrap_or(0);
        for (set, m) in e.get("sets").and_then(Value::as_object).into_iter().flatten() {
            let m: EvalResult = serde_json::from_value(m.clone())?;
            let bpb = m.bpb.unwrap_or(f64::NAN);
            evals.push(EvalPoint { step, tokens: step * tokens_per_step, set: set.clone(), loss: m.loss, bpb });
        }
    }
    let mut windows = Vec::new();
    let mut phases = Vec::new();
    if let Some(mix) = mix {
        // Mix artifacts before the ledger have none.
        if mix.join("ledger.json").is_file() {
            phases = super::mix::Ledger::read(mix)?.phases;
        }
        let stats: MixStats = read_json(&mix.join("stats.json"))?;
        for w in stats.windows {
            windows.push(ShareWindow {
                start: w.start * stats.seq_len,
                end: (w.start + w.sequences) * stats.seq_len,
                realized: w.realized,
                target: w.target,
            });
        }
    }
    let roles = values
        .get("roles")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    Ok(TrainReport {
        name: name.to_owned(),
        params: get("params"),
        tokens: get("tokens"),
        steps: get("steps"),
        tokens_per_step,
        tokens_per_s: (!speeds.is_empty()).then(|| speeds.iter().sum::<f64>() / speeds.len() as f64),
        domain_share: values.get("domain_share").and_then(Value::as_f64),
        roles,
        curve,
        evals,
        windows,
        phases,
        forked_at: values.get("forked_at").and_then(Value::as_u64),
        sft_from: None,
    })
}

/// Reads every reported stage's artifact into the report's terms.
fn gather(p: &Params, ctx: &StageCtx<'_>) -> Result<ReportData, StageFailure> {
    let mut data = ReportData { recipe: p.recipe.clone(), ..ReportData::default() };
    let reported: Vec<(&StageId, &Path, &crate::store::Meta)> = ctx
        .inputs_where(|i| match i {
            Input::Reported(id) => Some(id),
            _ => None,
        })
        .collect();
    let mix_of = |name: &str| {
        reported.iter().find(|(id, _, _)| id.kind == StageKind::Mix && id.name == name).map(|(_, dir, _)| *dir)
    };
    for &(id, dir, meta) in &reported {
        let name = id.name.as_str();
        match id.kind {
            StageKind::Train => {
                let mut t = train_report(name, dir, &meta.values, mix_of(name))?;
                t.sft_from = p.sft.get(name).map(|i| SftStart { model: i.model.clone(), trained: i.trained });
                data.trains.push(t);
            }
            StageKind::Eval => {
                let sets: BTreeMap<String, EvalResult> = read_json(&dir.join("eval.json"))?;
                let info = p.evals.get(name);
                data.evals.push(EvalReport {
                    name: name.to_owned(),
                    model: info.map(|i| i.model.clone()).unwrap_or_default(),
                    trained: info.is_some_and(|i| i.trained),
                    sets: sets
                        .into_iter()
                        .map(|(set, m)| SetMetrics {
                            set,
                            loss: m.loss,
                            ppl: m.ppl,
                            bpb: m.bpb.unwrap_or(f64::NAN),
                            tokens: m.tokens,
                            bytes: m.bytes,
                            unencodable_bytes: m.unencodable_bytes,
                        })
                        .collect(),
                });
            }
            StageKind::Vocab => {
                let mut report: Value = read_json(&dir.join("report.json"))?;
                if let Some(obj) = report.as_object_mut() {
                    obj.insert("name".into(), json!(name));
                }
                data.vocabs.push(serde_json::from_value::<VocabReport>(report)?);
            }
            StageKind::Fit => data.laws.push(LawReport {
                stage: id.to_string(),
                text: read_text(&dir.join("law.txt"))?,
                ratio: None,
                svgs: vec![read_text(&dir.join("law.svg"))?],
            }),
            StageKind::Choose => {
                let mut svgs = vec![read_text(&dir.join("domain.svg"))?];
                if dir.join("general.svg").is_file() {
                    svgs.push(read_text(&dir.join("general.svg"))?);
                }
                data.laws.push(LawReport {
                    stage: id.to_string(),
                    text: read_text(&dir.join("choice.txt"))?,
                    ratio: meta.values.get("ratio").and_then(Value::as_f64),
                    svgs,
                });
            }
            _ => {}
        }
    }
    // Base models first: they are the "before".
    data.evals.sort_by_key(|e| e.trained);
    Ok(data)
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let data = gather(p, ctx)?;
    let summary = data.summary();
    fs_err::write(ctx.out.join("report.html"), data.html())?;
    fs_err::write(ctx.out.join("summary.txt"), &summary)?;
    write_json(&ctx.out.join("report.json"), &data)?;
    Ok(json!({ "trains": data.trains.len(), "evals": data.evals.len() }))
}
