//! Forks (`train anneal { from = t at 50% ... }`) on the real path: a tiny random Llama made by
//! transformers, GPT-2's real tokenizer, slices of two real corpora, the built-in engine. A
//! fork with its parent's mixture and schedule ends with its parent's weights; a fork with
//! another mixture continues the parent's data streams and reruns alone when it changes.

mod cli_support;
mod py_support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use cli_support::run_in as cptc;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const RECIPE: &str = "tests/fixtures/forks/recipe.cpt";

/// The fixture recipe, a tiny random Llama and the first 300 documents of two real corpora.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::copy(repo().join(RECIPE), root.join("recipe.cpt")).expect("recipe");
    let hf = root.join("hf");
    py_support::call("fsdp_ref", &["make", "llama", hf.to_str().expect("utf-8"), "7"]);
    std::fs::copy(repo().join("data/tokenizers/gpt2/tokenizer.json"), hf.join("tokenizer.json")).expect("tokenizer");
    for (corpus, file) in [("web", "austen"), ("law", "hpo")] {
        let text = std::fs::read_to_string(repo().join(format!("data/corpora/{file}.jsonl"))).expect("corpus");
        let head: String = text.lines().take(300).map(|l| format!("{l}\n")).collect();
        std::fs::write(root.join(format!("{corpus}.jsonl")), head).expect("write corpus");
    }
    dir
}

/// The artifact folder of `stage`, from the plan's keys.
fn artifact(root: &Path, stage: &str) -> PathBuf {
    cli_support::artifact(root, "recipe.cpt", stage)
}

fn weights(model: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(model.join("model.safetensors")).expect("model.safetensors");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    st.tensors().into_iter().map(|(name, view)| (name, view.data().to_vec())).collect()
}

/// Step -> `field` (`loss`, `lr`) of the train records in a train artifact's metrics.
fn per_step(train: &Path, field: &str) -> BTreeMap<u64, f64> {
    std::fs::read_to_string(train.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .filter(|v| v["kind"] == "train")
        .map(|v| (v["step"].as_u64().expect("step"), v[field].as_f64().expect(field)))
        .collect()
}

/// The token ids of every sequence of a mix artifact, in order.
fn sequences(mix: &Path) -> Vec<Vec<u32>> {
    let shard = cptc::data::shard::ShardReader::open(&mix.join("train")).expect("shard");
    (0..shard.len()).map(|i| shard.read_doc(i).expect("sequence")).collect()
}

/// The documents the first `first` sequences (all, if more) of a mix artifact draw from
/// `corpus`, from its `spans.jsonl`.
fn documents(mix: &Path, corpus: &str, first: usize) -> Vec<u64> {
    std::fs::read_to_string(mix.join("spans.jsonl"))
        .expect("spans.jsonl")
        .lines()
        .take(first)
        .map(|l| serde_json::from_str::<Value>(l).expect("span line"))
        .filter(|v| v["corpus"] == corpus)
        .flat_map(|v| {
            v["spans"].as_array().expect("spans").iter().map(|s| s["doc"].as_u64().expect("doc")).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn forks_start_from_the_parents_state_and_a_changed_fork_reruns_alone() {
    let dir = project();
    let root = dir.path();
    let (code, stdout, stderr) = cptc(root, &["plan", "recipe.cpt"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("keeps its state at step 8 for forks"), "{stdout}");
    assert!(stdout.contains("forked from t at step 8 (its LR on the parent's clock)"), "{stdout}");
    let (code, _, stderr) = cptc(root, &["run", "recipe.cpt"]);
    assert_eq!(code, 0, "{stderr}");
    // Once the mixes ran, the plan shows each train's phases: the parent's part, then its own.
    let (_, stdout, _) = cptc(root, &["plan", "recipe.cpt"]);
    let other_lines: Vec<&str> = stdout.lines().skip_while(|l| !l.contains("train:other")).take(6).collect();
    assert!(
        other_lines.iter().any(|l| l.contains("data read by t: law 384 tokens"))
            && other_lines.iter().any(|l| l.contains("data read by other: law 2.0k tokens")),
        "{stdout}"
    );
    let (parent, same, other) =
        (artifact(root, "train:t"), artifact(root, "train:same"), artifact(root, "train:other"));
    assert!(parent.join("points/step-00000008/optimizer.safetensors").is_file(), "the parent keeps step 8's state");

    // With the parent's own mixture and schedule, the fork's data is the parent's from its
    // point on (4 sequences a step), its losses are the parent's, and so are its final weights.
    let (parent_mix, same_mix) = (sequences(&artifact(root, "mix:t")), sequences(&artifact(root, "mix:same")));
    assert_eq!(parent_mix.len(), 64, "16 steps of 4 sequences");
    assert!(same_mix == parent_mix[32..], "the fork's sequences are the parent's from sequence 32 on");
    let (a, b) = (per_step(&parent, "loss"), per_step(&same, "loss"));
    assert_eq!(b.keys().copied().collect::<Vec<_>>(), (9..=16).collect::<Vec<_>>(), "the fork trains steps 9 to 16");
    for (step, loss) in &b {
        assert!(a[step] == *loss, "step {step}: parent {}, fork {loss}", a[step]);
    }
    assert!(weights(&parent.join("model")) == weights(&same.join("model")), "the fork ends with the parent's weights");
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(same.join("meta.json")).expect("meta")).expect("json");
    assert_eq!(meta["values"]["steps"], 8, "the fork's own steps");
    let evals: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(same.join("evals.json")).expect("evals")).expect("json");
    let steps: Vec<u64> = evals.iter().filter_map(|e| e["step"].as_u64()).collect();
    assert_eq!(steps.first(), Some(&8), "the fork's baseline is its start: {steps:?}");
    assert_eq!(steps.last(), Some(&16), "{steps:?}");

    // The LR of each step: on the parent's clock, the parent's schedule over its 16 steps; on
    // its own (`fresh`, 4 steps), the schedule over those 4.
    let (_, stdout, _) = cptc(root, &["plan", "recipe.cpt", "--format", "json"]);
    let plan: Value = serde_json::from_str(&stdout).expect("plan json");
    let schedule = |stage: &str| -> cptc::recipe::LrSchedule {
        let s = plan["stages"].as_array().expect("stages").iter().find(|s| s["id"] == stage).expect("stage");
        serde_json::from_value(s["params"]["schedule"].clone()).expect("schedule")
    };
    let lr_at = cptc::backend::schedule::lr_at;
    for (step, lr) in per_step(&same, "lr") {
        assert_eq!(lr, lr_at(&schedule("train:same"), step - 1, 16, 256), "same, step {step}");
    }
    let fresh = per_step(&artifact(root, "train:fresh"), "lr");
    assert_eq!(fresh.keys().copied().collect::<Vec<_>>(), (9..=12).collect::<Vec<_>>());
    for (step, lr) in fresh {
        assert_eq!(lr, lr_at(&schedule("train:fresh"), step - 9, 4, 256), "fresh, step {step}");
    }

    // Another mixture: `law` goes on where the parent's stream stood at step 8, so the fork
    // reads none of the documents the parent had read by then (but the one it was inside).
    let other_mix = artifact(root, "mix:other");
    let before: HashSet<u64> = documents(&artifact(root, "mix:t"), "law", 32).into_iter().collect();
    let read: HashSet<u64> = documents(&other_mix, "law", usize::MAX).into_iter().collect();
    assert!(!before.is_empty() && !read.is_empty());
    let again = before.intersection(&read).count();
    assert!(again <= 1, "the fork read {again} documents the parent had read before its point");
    let ledger: Value =
        serde_json::from_str(&std::fs::read_to_string(other_mix.join("ledger.json")).expect("ledger")).expect("json");
    let phases: Vec<&str> =
        ledger["phases"].as_array().expect("phases").iter().filter_map(|p| p["stage"].as_str()).collect();
    assert_eq!(phases, ["t", "other"], "the parent's phase up to the point, then the fork's");
    assert_ne!(weights(&parent.join("model")), weights(&other.join("model")));

    // Changing the fork reruns the fork alone: the parent and its data stay cached.
    let recipe = std::fs::read_to_string(root.join("recipe.cpt")).expect("recipe");
    std::fs::write(
        root.join("recipe.cpt"),
        recipe.replace("  mixture = law_only\n", "  mixture = law_only\n  tokens = 1k tokens\n"),
    )
    .expect("recipe");
    let (code, _, stderr) = cptc(root, &["run", "recipe.cpt"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("ran 3 stages"), "mix:other, train:other and the report: {stderr}");
    let rerun = artifact(root, "train:other");
    assert_ne!(rerun, other);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(rerun.join("meta.json")).expect("meta")).expect("json");
    assert_eq!(meta["values"]["steps"], 4, "1k tokens: 4 steps of its own");
}
