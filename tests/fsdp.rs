//! The FSDP engine (`engine = fsdp`: torchrun + FSDP2 over transformers, gloo on CPU) against
//! the built-in one on the same recipe: tiny random models made by transformers, the real
//! GPT-2 tokenizer, slices of real corpora, new vocabulary rows at their own LR and a frozen
//! layer. Also two "nodes" on one machine, a killed run resumed, and the published folder
//! reloaded by transformers.

mod cli_support;
mod py_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs tests/python/fsdp_ref.py's subcommand (served: one import per test binary) and parses
/// the JSON line it prints.
fn python(args: &[&str]) -> Value {
    py_support::call("fsdp_ref", args)
}

/// A project: the fixture recipe for both engines (`builtin.cpt`, `fsdp.cpt`), a tiny random
/// model of `kind`, GPT-2's tokenizer and the first 300 documents of two real corpora.
fn project(kind: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    fill(dir.path(), kind);
    dir
}

fn fill(root: &Path, kind: &str) {
    let recipe = std::fs::read_to_string(repo().join("tests/fixtures/fsdp/recipe.cpt")).expect("fixture");
    for engine in ["builtin", "fsdp"] {
        std::fs::write(root.join(format!("{engine}.cpt")), recipe.replace("ENGINE", engine)).expect("recipe");
    }
    let hf = root.join("hf");
    python(&["make", kind, hf.to_str().unwrap(), "7"]);
    std::fs::copy(repo().join("data/tokenizers/gpt2/tokenizer.json"), hf.join("tokenizer.json")).expect("tokenizer");
    for (corpus, file) in [("web", "austen"), ("law", "hpo"), ("qa", "hpo_qa")] {
        let text = std::fs::read_to_string(repo().join(format!("data/corpora/{file}.jsonl"))).expect("corpus");
        let head: String = text.lines().take(300).map(|l| format!("{l}\n")).collect();
        std::fs::write(root.join(format!("{corpus}.jsonl")), head).expect("write corpus");
    }
}

/// A project of `kind` trained by the built-in engine, then by FSDP on 2 processes (the store
/// `.cptc`), and that run's stderr.
fn train_both(root: &Path, kind: &str) -> String {
    fill(root, kind);
    run_ok(root, &["run", "builtin.cpt"]);
    run_ok(root, &["run", "fsdp.cpt", "--nproc-per-node", "2"])
}

/// The Llama project trained by both engines, shared by the tests that compare with its FSDP
/// run (each launch is many seconds of CI), in the target's temporary folder.
fn llama() -> &'static (PathBuf, String) {
    static TRAINED: std::sync::OnceLock<(PathBuf, String)> = std::sync::OnceLock::new();
    TRAINED.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fsdp-llama");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("folder");
        let stderr = train_both(&root, "llama");
        (root, stderr)
    })
}

fn cptc(root: &Path, args: &[&str]) -> Output {
    cli_support::cptc(args).current_dir(root).env("COLUMNS", "1000").env("CPTC_THREADS", "1").output().expect("cptc")
}

fn run_ok(root: &Path, args: &[&str]) -> String {
    let out = cptc(root, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "cptc {args:?}:\n{stderr}");
    stderr
}

/// The artifact folder of `stage` in `recipe`, from the plan's keys.
fn artifact(root: &Path, store: &str, recipe: &str, stage: &str) -> PathBuf {
    let out = cptc(root, &["plan", recipe, "--store", store, "--format", "json"]);
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan json");
    let s = plan["stages"].as_array().unwrap().iter().find(|s| s["id"] == stage).expect("stage in plan");
    let key = s["key"].as_str().expect("key");
    let kind = s["kind"].as_str().unwrap();
    let artifacts = root.join(store).join("v1/artifacts");
    std::fs::read_dir(&artifacts)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{kind}-v")))
        .map(|e| e.path().join(key))
        .find(|p| p.is_dir())
        .expect("published artifact")
}

fn losses(train: &Path) -> Vec<f64> {
    std::fs::read_to_string(train.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "train")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect()
}

/// Step -> set -> bits per byte.
fn evals(train: &Path) -> BTreeMap<u64, BTreeMap<String, f64>> {
    let evals: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(train.join("evals.json")).unwrap()).unwrap();
    evals
        .iter()
        .map(|e| {
            let sets = e["sets"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v["bpb"].as_f64().unwrap()));
            (e["step"].as_u64().unwrap(), sets.collect())
        })
        .collect()
}

fn weights(model: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(model.join("model.safetensors")).expect("model.safetensors");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            (name, values)
        })
        .collect()
}

fn max_abs_diff(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>) -> f64 {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "the same tensors");
    a.iter().flat_map(|(n, x)| x.iter().zip(&b[n]).map(|(x, y)| f64::from((x - y).abs()))).fold(0.0, f64::max)
}

/// How many values differ by more than `tol`, of how many.
fn count_over(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>, tol: f64) -> (usize, usize) {
    let over =
        a.iter().flat_map(|(n, x)| x.iter().zip(&b[n])).filter(|(x, y)| f64::from((*x - *y).abs()) > tol).count();
    (over, a.values().map(Vec::len).sum())
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-12)
}

/// The published model, reloaded by transformers, measures the last evaluation's nats on the
/// held-out windows of `set` (cut by cptc's own function).
fn reloads_with_the_engines_last_evaluation(root: &Path, train: &Path, set: &str, tokenized: &Path) {
    let (windows, _) = cptc::backend::heldout::heldout_windows(tokenized, 64, 2000).expect("windows");
    let file = root.join(format!("{set}.windows"));
    std::fs::write(&file, cptc::backend::heldout::windows_bytes(&windows)).unwrap();
    let reference = python(&["heldout", train.join("model").to_str().unwrap(), file.to_str().unwrap(), "64"]);
    let all: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(train.join("evals.json")).unwrap()).unwrap();
    let last = &all.last().unwrap()["sets"][set];
    assert_eq!(reference["tokens"].as_u64(), last["tokens"].as_u64(), "{set}: the same targets");
    let (theirs, ours) = (reference["nats"].as_f64().unwrap(), last["nats"].as_f64().unwrap());
    assert!(rel(theirs, ours) < 1e-5, "{set}: transformers {theirs} nats, the engine's evaluation {ours}");
}

/// Builtin vs FSDP on 2 processes: loss per step, final weights, held-out evaluations; and
/// transformers reloads the FSDP output with the engine's own final evaluation.
fn parity(kind: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (root, stderr) = match kind {
        "llama" => (llama().0.as_path(), llama().1.clone()),
        _ => (dir.path(), train_both(dir.path(), kind)),
    };
    // The model stage checks the architecture only for the builtin engine: its key differs,
    // its output does not, so nothing between it and the training runs again.
    assert!(stderr.contains("ran 3 stages, 12 cached"), "only model, train and report ran again:\n{stderr}");
    let builtin = artifact(root, ".cptc", "builtin.cpt", "train:t");
    let fsdp = artifact(root, ".cptc", "fsdp.cpt", "train:t");

    let (a, b) = (losses(&builtin), losses(&fsdp));
    assert_eq!(a.len(), 8, "8 steps");
    assert_eq!(a.len(), b.len());
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(rel(*x, *y) < 1e-5, "{kind} step {}: builtin loss {x}, fsdp {y}", step + 1);
    }
    let (wa, wb) = (weights(&builtin.join("model")), weights(&fsdp.join("model")));
    // Within 1e-5, but for a few values Adam normalises from gradients near zero that two ranks
    // sum in another order than one process (measured: 4 embedding rows of Qwen2, <= 6e-5).
    let diff = max_abs_diff(&wa, &wb);
    let (over, total) = count_over(&wa, &wb, 1e-5);
    assert!(
        diff < 1e-4 && over * 10_000 <= total,
        "{kind}: weights differ by up to {diff}, {over} of {total} by over 1e-5"
    );
    let (ea, eb) = (evals(&builtin), evals(&fsdp));
    assert_eq!(ea.keys().collect::<Vec<_>>(), vec![&0, &4, &8], "step 0, 50% and the end");
    assert_eq!(ea.keys().collect::<Vec<_>>(), eb.keys().collect::<Vec<_>>());
    for (step, sets) in &ea {
        for (set, bpb) in sets {
            let other = eb[step][set];
            assert!(rel(*bpb, other) < 1e-5, "{kind} {set} at step {step}: builtin {bpb} bpb, fsdp {other}");
        }
    }
    // The frozen layer stayed as it was; new rows moved (read from the resized start).
    let start = weights(&artifact(root, ".cptc", "fsdp.cpt", "resize:base@law_words").join("model"));
    let frozen = "model.layers.0.mlp.down_proj.weight";
    assert_eq!(start[frozen], wb[frozen], "{kind}: layer 0 is frozen");
    assert_ne!(start["model.layers.1.mlp.down_proj.weight"], wb["model.layers.1.mlp.down_proj.weight"]);

    let tokenized = artifact(root, ".cptc", "fsdp.cpt", "tokenize:law@law_words");
    reloads_with_the_engines_last_evaluation(root, &fsdp, "law", &tokenized);
    // The answers-only set: transformers counts the targets the mask leaves, and agrees.
    let tokenized = artifact(root, ".cptc", "fsdp.cpt", "tokenize:qa@law_words");
    reloads_with_the_engines_last_evaluation(root, &fsdp, "qa", &tokenized);
    let mix = artifact(root, ".cptc", "fsdp.cpt", "mix:t");
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(mix.join("stats.json")).unwrap()).unwrap();
    let (targets, tokens) = (stats["targets"].as_u64().unwrap(), stats["tokens"].as_u64().unwrap());
    assert!(
        targets < tokens - stats["sequences"].as_u64().unwrap(),
        "{kind}: prompts are trained on by neither engine"
    );
}

#[test]
fn fsdp_trains_a_tied_llama_as_the_builtin_engine_does() {
    parity("llama");
}

#[test]
fn fsdp_trains_an_untied_qwen2_with_biases_as_the_builtin_engine_does() {
    parity("qwen2");
}

/// Long-context training past the base's 32 positions with YaRN: both engines train the same
/// way, save the scaling into the config, and transformers reloads each with the engine's own
/// last evaluation (its logits use the saved YaRN).
#[test]
fn long_context_yarn_is_trained_and_saved_alike_by_both_engines() {
    let dir = project("llama32");
    let root = dir.path();
    for engine in ["builtin", "fsdp"] {
        let path = root.join(format!("{engine}.cpt"));
        let recipe = std::fs::read_to_string(&path).unwrap();
        let block = "  long_context {\n    rope = yarn\n    factor = 2\n  }\n\n  group new_rows {";
        std::fs::write(&path, recipe.replace("  group new_rows {", block)).unwrap();
    }
    run_ok(root, &["run", "builtin.cpt", "--only", "train:t"]);
    run_ok(root, &["run", "fsdp.cpt", "--only", "train:t", "--nproc-per-node", "2"]);
    let builtin = artifact(root, ".cptc", "builtin.cpt", "train:t");
    let fsdp = artifact(root, ".cptc", "fsdp.cpt", "train:t");
    for (x, y) in losses(&builtin).iter().zip(&losses(&fsdp)) {
        assert!(rel(*x, *y) < 1e-5, "builtin loss {x}, fsdp {y}");
    }
    let tokenized = artifact(root, ".cptc", "fsdp.cpt", "tokenize:law@law_words");
    for train in [&builtin, &fsdp] {
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(train.join("model/config.json")).unwrap()).unwrap();
        let rope = &config["rope_parameters"];
        assert_eq!(rope["rope_type"], "yarn", "{config}");
        assert_eq!(rope["factor"].as_f64(), Some(2.0), "{config}");
        assert_eq!(rope["original_max_position_embeddings"].as_u64(), Some(32), "{config}");
        assert_eq!(config["max_position_embeddings"].as_u64(), Some(64), "{config}");
        reloads_with_the_engines_last_evaluation(root, train, "law", &tokenized);
    }
}

/// Gemma 2 (soft-capping, sandwich norms, `1 + w` norms, scaled embeddings, GELU, sliding
/// window on alternate layers): the two engines train it alike too.
#[test]
fn fsdp_trains_gemma2_as_the_builtin_engine_does() {
    parity("gemma2");
}

/// Qwen3 trains on this path, saves and reloads.
#[test]
fn fsdp_trains_qwen3_and_transformers_reloads_it() {
    let dir = project("qwen3");
    let root = dir.path();
    run_ok(root, &["run", "fsdp.cpt", "--only", "train:t", "--nproc-per-node", "2"]);
    let fsdp = artifact(root, ".cptc", "fsdp.cpt", "train:t");
    let losses = losses(&fsdp);
    assert_eq!(losses.len(), 8, "qwen3");
    assert!(losses.iter().all(|l| l.is_finite()), "qwen3: {losses:?}");
    let tokenized = artifact(root, ".cptc", "fsdp.cpt", "tokenize:web@law_words");
    reloads_with_the_engines_last_evaluation(root, &fsdp, "web", &tokenized);
}

/// Two launches with `--nnodes 2` (one process each, c10d rendezvous on localhost), each with
/// its own store as two machines would have, give what one launch of 2 processes gives.
#[test]
fn two_nodes_train_as_one_node_with_two_processes() {
    let one = weights(&artifact(&llama().0, ".cptc", "fsdp.cpt", "train:t").join("model"));
    let dir = project("llama");
    let root = dir.path();
    // Each node prepares its own data (the same keys, the same bytes).
    run_ok(root, &["run", "fsdp.cpt", "--only", "mix:t", "--store", "node0"]);
    run_ok(root, &["run", "fsdp.cpt", "--only", "mix:t", "--store", "node1"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("127.0.0.1:{port}");
    let nodes: Vec<std::process::Child> = (0..2)
        .map(|rank| {
            let store = format!("node{rank}");
            let rank = rank.to_string();
            let args =
                ["run", "fsdp.cpt", "--only", "train:t", "--store", &store, "--nnodes", "2", "--node-rank", &rank];
            cli_support::cptc(&args)
                .args(["--rdzv-endpoint", &endpoint])
                .current_dir(root)
                .env("CPTC_THREADS", "1")
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("cptc")
        })
        .collect();
    for (rank, node) in nodes.into_iter().enumerate() {
        let out = node.wait_with_output().unwrap();
        assert!(out.status.success(), "node {rank}:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    for store in ["node0", "node1"] {
        let two = weights(&artifact(root, store, "fsdp.cpt", "train:t").join("model"));
        let diff = max_abs_diff(&one, &two);
        assert!(diff < 1e-6, "{store}: 2 nodes x 1 differ from 1 node x 2 by up to {diff}");
    }
}

/// `cptc run` killed (SIGKILL) after a checkpoint: its torchrun dies with it, a rerun resumes
/// from the checkpoint and ends with the weights of an uninterrupted run.
#[test]
fn a_killed_fsdp_run_resumes_to_the_weights_of_an_uninterrupted_one() {
    let whole = weights(&artifact(&llama().0, ".cptc", "fsdp.cpt", "train:t").join("model"));
    let dir = project("llama");
    let root = dir.path();

    let args = ["run", "fsdp.cpt", "--only", "train:t", "--nproc-per-node", "2", "--store", "killed"];
    run_ok(root, &["run", "fsdp.cpt", "--only", "mix:t", "--store", "killed"]);
    let mut child = cli_support::cptc(&args)
        .args(["--checkpoint-minutes", "0"])
        .current_dir(root)
        .env("CPTC_THREADS", "1")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cptc");
    let resume = root.join("killed/v1/resume");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let checkpointed = || {
        walk(&resume)
            .iter()
            .any(|p| p.ends_with("checkpoints/step-00000003") || p.ends_with("checkpoints/step-00000004"))
    };
    while !checkpointed() {
        assert!(std::time::Instant::now() < deadline, "no checkpoint within 5 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it was killed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stderr = run_ok(root, &args);
    assert!(stderr.contains("resuming at step"), "{stderr}");
    let resumed = weights(&artifact(root, "killed", "fsdp.cpt", "train:t").join("model"));
    let diff = max_abs_diff(&whole, &resumed);
    assert!(diff == 0.0, "the resumed run differs from the uninterrupted one by up to {diff}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// `cptc plan` shows the engine, the topology (from flags or a cluster file) and the training
/// state per device; a topology that cannot launch is refused before anything runs.
#[test]
fn plan_shows_the_topology_and_refuses_one_that_cannot_launch() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let recipe = std::fs::read_to_string(repo().join("tests/fixtures/fsdp/recipe.cpt")).unwrap();
    std::fs::write(root.join("fsdp.cpt"), recipe.replace("ENGINE", "fsdp")).unwrap();
    std::fs::create_dir_all(root.join("hf")).unwrap();
    std::fs::copy(repo().join("tests/fixtures/exec/hf/config.json"), root.join("hf/config.json")).unwrap();
    for corpus in ["web", "law"] {
        std::fs::write(root.join(format!("{corpus}.jsonl")), "{\"text\": \"a\"}\n").unwrap();
    }
    std::fs::write(root.join("qa.jsonl"), "{\"question\": \"a\", \"answer\": \"b\"}\n").unwrap();
    std::fs::write(
        root.join("cluster.yaml"),
        "nproc-per-node: 8\nnnodes: 2\nnode-rank: 1\nrdzv-endpoint: 10.0.0.1:29500\n",
    )
    .unwrap();
    for args in [
        vec!["plan", "fsdp.cpt", "--cluster", "cluster.yaml"],
        vec!["plan", "fsdp.cpt", "--nproc-per-node", "8", "--nnodes", "2", "--rdzv-endpoint", "10.0.0.1:29500"],
    ] {
        let out = cptc(root, &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("fp32 on cpu, fsdp engine over 2 nodes x 8 processes (torchrun)"), "{stdout}");
        assert!(stdout.contains("of training state per device"), "{stdout}");
        assert!(stdout.contains("TFLOP/s on each of 16 devices"), "{stdout}");
    }
    std::fs::write(root.join("typo.yaml"), "nproc_per_node: 8\n").unwrap();
    for (args, says) in [
        (vec!["--nnodes", "2"], "2 nodes need a rendezvous endpoint"),
        (vec!["--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "h:1"], "`node-rank` 2 is not below `nnodes` 2"),
        (vec!["--rdzv-endpoint", "nowhere"], "the rendezvous endpoint `nowhere` is not HOST:PORT"),
        (vec!["--cluster", "typo.yaml"], "unknown field `nproc_per_node`"),
    ] {
        let out = cptc(root, &[&["run", "fsdp.cpt"], args.as_slice()].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!root.join(".cptc/v1/artifacts").exists(), "{args:?}: nothing ran");
    }
}

/// A Python without torch is the machine's fault (exit 3), named, with the fix; a model whose
/// weights are NaN is the input's (exit 1), caught at the baseline evaluation. Neither publishes.
#[test]
fn fsdp_failures_name_their_cause_and_tier_and_publish_nothing() {
    let dir = project("llama");
    let root = dir.path();
    let bare = root.join("bare-python");
    // `-S`: no site packages, so no torch even where the system Python has one.
    std::fs::write(&bare, "#!/bin/sh\nexec python3 -S \"$@\"\n").unwrap();
    std::fs::set_permissions(&bare, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = cli_support::cptc(&["run", "fsdp.cpt", "--only", "train:t"])
        .current_dir(root)
        .env("COLUMNS", "1000")
        .env("CPTC_PYTHON", &bare)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cptc::fsdp::python") && stderr.contains("has no torch"), "{stderr}");
    assert!(stderr.contains("scripts/setup.sh"), "{stderr}");
    assert!(stderr.contains("failed: train:t"), "{stderr}");

    // The final norm poisoned, as an overflow would.
    let path = root.join("hf/model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let offsets = &header["model.norm.weight"]["data_offsets"];
    let (a, b) = (offsets[0].as_u64().unwrap() as usize, offsets[1].as_u64().unwrap() as usize);
    for chunk in bytes[8 + n + a..8 + n + b].chunks_exact_mut(4) {
        chunk.copy_from_slice(&f32::NAN.to_le_bytes());
    }
    std::fs::write(&path, bytes).unwrap();
    let out = cptc(root, &["run", "fsdp.cpt", "--only", "train:t", "--nproc-per-node", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("at step 0 is NaN"), "{stderr}");
    assert!(
        !root
            .join(".cptc/v1/artifacts")
            .read_dir()
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("train-")),
        "nothing published: {stderr}"
    );
}
