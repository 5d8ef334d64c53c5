//! The real fit and choose stages inside the executor: sweep points whose evaluations follow
//! a known D-CPT law (train stages stand in, since training is not what is tested here); the
//! fit recovers it, the choice respects the tolerance, and the chosen ratio flows into the
//! final run's mix stage and its key.

use std::path::Path;

use cptc::check::{RealWorld, check};
use cptc::exec::{EventLog, Options, RealRunner, Runner, run};
use cptc::graph::{Stage, StageKind, StageParams, lower};
use cptc::stages::{StageCtx, StageFailure};
use cptc::store::Store;
use serde_json::{Value, json};

/// Loss of the corpus whose share is `r` after `d` tokens (one model size).
fn law(d: f64, r: f64) -> f64 {
    1.8 + 40.0 * r.powf(0.4) / d.powf(0.35) + 0.25 / (r + 0.02).powf(0.5)
}

/// The model sizes of the sweep: runs of model `big` (a sweep over models) have more parameters.
const N_BASE: f64 = 1.35e8;
const N_BIG: f64 = 4e8;

/// The loss at model size `n`: `law` at `N_BASE`, lower for a larger model.
fn law_n(n: f64, d: f64, r: f64) -> f64 {
    law(d, r) + 100.0 / n.powf(0.3) - 100.0 / N_BASE.powf(0.3)
}

struct SweepRunner;

impl Runner for SweepRunner {
    fn run(&self, stage: &Stage, params: &StageParams, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
        let json = params.to_json();
        match stage.kind() {
            StageKind::Fit | StageKind::Choose => RealRunner.run(stage, params, ctx),
            StageKind::Train => {
                let share = json.get("domain_share").and_then(Value::as_f64).unwrap_or(0.5);
                let big = stage.id.name.contains("n=big");
                let n = if big { N_BIG } else { N_BASE };
                // Each model's own starting general loss: the larger starts lower.
                let general_base = if big { 2.5 } else { 2.9 };
                let per_step = 8192.0;
                let mut evals = vec![];
                for step in [0.0f64, 2.0, 4.0, 6.0, 8.0] {
                    let d = (step * per_step).max(1.0);
                    let (domain, general) =
                        if step == 0.0 { (3.2, general_base) } else { (law_n(n, d, share), law_n(n, d, 1.0 - share)) };
                    let set = |loss: f64| json!({ "loss": loss, "nats": loss * 1000.0, "tokens": 1000.0 });
                    evals.push(json!({ "step": step, "sets": { "law": set(domain), "web": set(general) } }));
                }
                std::fs::write(ctx.out.join("evals.json"), Value::Array(evals.clone()).to_string())?;
                Ok(json!({
                    "params": n,
                    "tokens_per_step": per_step,
                    "domain_share": json.get("domain_share"),
                    "roles": json.get("roles"),
                    "evals": evals,
                }))
            }
            _ => {
                // Outputs follow the stage's files too: two different model folders differ.
                // Each one's digest first, as every stage that reads its files.
                for i in 0..ctx.files.len() {
                    ctx.file_digest(i)?;
                }
                let files: Vec<String> =
                    stage.files.iter().map(|f| std::fs::read_to_string(f).unwrap_or_default()).collect();
                std::fs::write(ctx.out.join("out.json"), json!({ "params": json, "files": files }).to_string())?;
                Ok(Value::Null)
            }
        }
    }
}

/// Runs the executor fixture recipe, its sweep over five ratios, with `edit` applied to its text;
/// a second model `big` (folder `hf2`) is defined for sweeps over models.
fn run_sweep(edit: impl Fn(String) -> String) -> (tempfile::TempDir, cptc::exec::Summary) {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exec");
    for name in ["recipe.cpt", "web.jsonl", "law.jsonl"] {
        std::fs::copy(src.join(name), dir.path().join(name)).expect("copy");
    }
    let config: Value = read(&src.join("hf"), "config.json");
    for (hf, layers) in [("hf", None), ("hf2", Some(48))] {
        // `big` differs (more layers): identical folders would be one model, one cache key.
        let mut config = config.clone();
        if let Some(layers) = layers {
            config["num_hidden_layers"] = json!(layers);
        }
        std::fs::create_dir_all(dir.path().join(hf)).expect("mkdir");
        std::fs::write(dir.path().join(hf).join("config.json"), config.to_string()).expect("write");
    }
    // Five ratios give the fit enough to work with.
    let recipe = dir.path().join("recipe.cpt");
    let text = std::fs::read_to_string(&recipe)
        .expect("read")
        .replace("ratio = [20%, 50%, 80%]", "ratio = [10%, 30%, 50%, 70%, 90%]");
    std::fs::write(&recipe, edit(text) + "\nmodel big {\n  hf = \"hf2\"\n}\n").expect("write");
    let recipe = match check(&recipe, &RealWorld) {
        Ok(r) => r,
        Err(f) => panic!("{}", cptc::diag::render(&f.errors, &f.sources, false, 100)),
    };
    let graph = lower(&recipe, &cptc::graph::RealProbe);
    let mut store = Store::open(&dir.path().join(".cptc")).expect("store");
    store.lock().expect("lock");
    let summary = run(&graph, &store, &SweepRunner, &Options::default(), &EventLog::none(), false).expect("run");
    (dir, summary)
}

fn read(dir: &Path, file: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(file)).expect(file)).expect("json")
}

#[test]
fn the_general_budget_is_relative_to_the_chosen_models_own_base() {
    let (_dir, summary) = run_sweep(|t| t.replace("train = probe\n", "train = probe\n  models = [base, big]\n"));
    let fit = read(&summary.artifacts["fit:gl"], "fit.json");
    let bases: Vec<(f64, f64)> = fit["base_losses"]
        .as_array()
        .expect("base losses per model size")
        .iter()
        .map(|b| (b["n"].as_f64().expect("n"), b["loss"].as_f64().expect("loss")))
        .collect();
    assert_eq!(bases.iter().map(|b| b.0).collect::<Vec<_>>(), [N_BASE, N_BIG]);
    assert!((bases[0].1 - 2.9).abs() < 1e-9 && (bases[1].1 - 2.5).abs() < 1e-9, "{bases:?}");
    // The choice is made for the largest model, so its 3% is 3% of that model's 2.5, not of
    // the mean of both sizes' starting losses.
    let choice = read(&summary.artifacts["choose:best"], "choice.json");
    let (general, increase) =
        (choice["general_loss"].as_f64().expect("loss"), choice["general_increase"].as_f64().expect("increase"));
    assert!((increase - (general - 2.5) / 2.5).abs() < 1e-9, "increase {increase} for general loss {general}");
    assert!(increase <= 0.03 + 1e-9, "{increase}");
}

#[test]
fn fit_and_choose_run_on_sweep_evaluations() {
    let (_dir, summary) = run_sweep(|t| t);

    let fit: Value =
        serde_json::from_str(&std::fs::read_to_string(summary.artifacts["fit:dl"].join("fit.json")).expect("fit.json"))
            .expect("json");
    let r2 = fit["fit"]["r2"].as_f64().expect("r2");
    assert!(r2 > 0.99, "domain law R^2 {r2}");
    assert!(summary.artifacts["fit:dl"].join("law.svg").is_file());

    let choice: Value = serde_json::from_str(
        &std::fs::read_to_string(summary.artifacts["choose:best"].join("choice.json")).expect("choice.json"),
    )
    .expect("json");
    let ratio = choice["ratio"].as_f64().expect("ratio");
    assert!((0.1..=1.0).contains(&ratio), "ratio {ratio}");
    let increase = choice["general_increase"].as_f64().expect("usage 1 reports the general increase");
    assert!(increase <= 0.03 + 1e-9, "general loss rises {increase}, above the 3% tolerance");

    let mix = std::fs::read_to_string(summary.artifacts["mix:final"].join("out.json")).expect("mix:final");
    let params: Value = serde_json::from_str(&mix).expect("json");
    assert_eq!(params["params"]["domain_share"].as_f64(), Some(ratio), "the chosen ratio did not reach mix:final");
}
