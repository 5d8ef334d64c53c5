//! Exit codes by tier through the binary: a bad setting or model folder is the user's input
//! (exit 1), named, with the stages that did and did not run; never a panic (exit 101).

mod cli_support;

use std::path::Path;

use cptc_torch::backend::SaveDtype;

fn material(rel: &str) -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    assert!(path.is_file(), "{} is missing: run `scripts/setup.sh` first", path.display());
    path
}

/// A small project: the keys fixture over the first 50 documents of a real corpus, a tiny
/// random-weight model with GPT-2's tokenizer.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::copy(fixtures.join("keys/recipe.cpt"), root.join("recipe.cpt")).expect("copy recipe");
    std::fs::create_dir_all(root.join("hf")).expect("mkdir");
    std::fs::copy(fixtures.join("exec/hf/config.json"), root.join("hf/config.json")).expect("copy config");
    std::fs::copy(material("data/tokenizers/gpt2/tokenizer.json"), root.join("hf/tokenizer.json")).expect("copy");
    let text = std::fs::read_to_string(material("data/corpora/hpo.jsonl")).expect("corpus");
    let head: String = text.lines().take(50).map(|l| format!("{l}\n")).collect();
    std::fs::write(root.join("corpus.jsonl"), head).expect("write corpus");
    dir
}

/// A real (tiny, random-weight) Llama over GPT-2's vocabulary, `positions` long.
fn tiny_llama(positions: i64) -> cptc_torch::backend::Llama {
    let config = serde_json::json!({
        "model_type": "llama", "vocab_size": 50257, "hidden_size": 16, "intermediate_size": 32,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": positions,
    });
    let config = cptc_torch::backend::LlamaConfig::from_value(config, Path::new("<tiny>")).expect("config");
    cptc_torch::backend::Llama::random(config, 1, cptc_torch::backend::Device::Cpu).expect("model")
}

#[test]
fn a_bad_thread_count_is_an_input_error_naming_it() {
    let dir = project();
    let root = dir.path();
    for threads in ["0", "-3", "many"] {
        let out = cli_support::cptc(&["run", "recipe.cpt"])
            .env("COLUMNS", "1000")
            .current_dir(root)
            .env("CPTC_THREADS", threads)
            .output()
            .expect("cptc run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "CPTC_THREADS={threads}: {stderr}");
        assert!(stderr.contains(&format!("CPTC_THREADS={threads} is not a positive number")), "{stderr}");
        assert!(stderr.contains("failed: eval:both"), "{stderr}");
        assert!(stderr.contains("not started: report"), "{stderr}");
    }
}

#[test]
fn a_tokenizer_past_the_embeddings_is_refused_naming_both_files() {
    let dir = project();
    let root = dir.path();
    let config_path = root.join("hf/config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).expect("config")).expect("json");
    config["vocab_size"] = serde_json::json!(1000);
    std::fs::write(&config_path, config.to_string()).expect("write config");
    let out =
        cli_support::cptc(&["run", "recipe.cpt"]).env("COLUMNS", "1000").current_dir(root).output().expect("cptc run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("hf/tokenizer.json gives ids up to 50256"), "{stderr}");
    assert!(stderr.contains("hf/config.json has only 1000 embedding rows"), "{stderr}");
    // Nothing downstream of the model ran: no tokenization was cached with those ids.
    assert!(stderr.contains("failed: model:"), "{stderr}");
    assert!(
        !root
            .join(".cptc/v1/artifacts")
            .read_dir()
            .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("tokenize-")))),
        "{stderr}"
    );
}

#[test]
fn an_unreadable_tokenizer_is_refused_by_the_model_stage_naming_the_file() {
    let dir = project();
    let root = dir.path();
    std::fs::write(root.join("hf/tokenizer.json"), "{\"model\": ").expect("write tokenizer");
    let out =
        cli_support::cptc(&["run", "recipe.cpt"]).env("COLUMNS", "1000").current_dir(root).output().expect("cptc run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot read the tokenizer"), "{stderr}");
    assert!(stderr.contains("hf/tokenizer.json: EOF while parsing"), "{stderr}");
    assert!(stderr.contains("failed: model:"), "{stderr}");
}

#[test]
fn skipped_records_are_said_on_every_run_not_only_the_first() {
    let dir = project();
    let root = dir.path();
    let mut corpus = std::fs::read_to_string(root.join("corpus.jsonl")).expect("corpus");
    corpus.push_str("{\"txt\": \"a field of another name\"}\nnot json\n");
    std::fs::write(root.join("corpus.jsonl"), corpus).expect("write corpus");
    for run in ["first", "cached"] {
        let out = cli_support::cptc(&["run", "recipe.cpt", "--only", "ingest:first"])
            .env("COLUMNS", "1000")
            .current_dir(root)
            .output()
            .expect("cptc run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{run}: {stderr}");
        assert!(
            stderr.contains("ingest:first: skipped 2 records: 1 missing field, 1 invalid JSON (listed in "),
            "{run}: {stderr}"
        );
        if run == "first" {
            assert!(
                stderr.contains("the first: corpus.jsonl:51: missing field `text` (the record has `txt`)"),
                "{stderr}"
            );
        }
    }
}

#[test]
fn a_model_with_nan_weights_fails_evaluation_naming_set_and_step() {
    let dir = project();
    let root = dir.path();
    // One weight poisoned, as an overflow would.
    let model = tiny_llama(256);
    let (_, weight) = model.parameters().iter().find(|(n, _)| n.contains("q_proj")).expect("q_proj");
    tch::no_grad(|| {
        let _ = weight.shallow_clone().fill_(f64::NAN);
    });
    model.save(&root.join("hf"), SaveDtype::F32, Some(&root.join("hf"))).expect("save");
    let out = cli_support::cptc(&["run", "recipe.cpt"])
        .env("COLUMNS", "1000")
        .env("CPTC_THREADS", "1")
        .current_dir(root)
        .output()
        .expect("cptc run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the held-out loss of `first` at step 0 is NaN"), "{stderr}");
    assert!(stderr.contains("failed: eval:both"), "{stderr}");
}

#[test]
fn a_model_config_the_engine_cannot_load_is_refused_naming_the_users_file() {
    for (edit, expected) in [
        (
            ("model_type", serde_json::json!("gemma2")),
            "hf/config.json describes a model the built-in engine does not support",
        ),
        (("num_attention_heads", serde_json::json!(0)), "invalid model config `hf/config.json`"),
    ] {
        let dir = project();
        let root = dir.path();
        let config_path = root.join("hf/config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&config_path).expect("config")).expect("json");
        config[edit.0] = edit.1;
        std::fs::write(&config_path, config.to_string()).expect("write config");
        let out = cli_support::cptc(&["run", "recipe.cpt"])
            .env("COLUMNS", "1000")
            .current_dir(root)
            .output()
            .expect("cptc run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(stderr.contains("failed: model:base"), "{stderr}");
        assert!(!stderr.contains(".cptc/v1/tmp"), "names the store's copy: {stderr}");
    }
}

#[test]
fn training_past_the_models_positions_needs_a_long_context_block() {
    let dir = project();
    let root = dir.path();
    let model = tiny_llama(64);
    model.save(&root.join("hf"), SaveDtype::F32, Some(&root.join("hf"))).expect("save");
    let recipe = "import \"std/schedules\"\n".to_string()
        + &std::fs::read_to_string(root.join("recipe.cpt")).expect("recipe")
        + "\nmixture m {\n  part general {\n    corpora = [first]\n    share = 100%\n  }\n}\n\n\
           train cpt {\n  model = base\n  mixture = m\n  tokens = 2k tokens\n  seq_len = 128\n  batch = 1k tokens\n  lr = cosine_rewarm\n}\n";
    std::fs::write(root.join("recipe.cpt"), recipe).expect("write recipe");
    let out = cli_support::cptc(&["run", "recipe.cpt", "--only", "train:cpt"])
        .env("COLUMNS", "1000")
        .current_dir(root)
        .output()
        .expect("cptc run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`seq_len` 128 is past the 64 positions the model was trained on"), "{stderr}");
    assert!(stderr.contains("failed: train:cpt"), "{stderr}");
}
