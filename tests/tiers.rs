//! Exit codes by tier through the binary: a bad setting is the user's input (exit 1), named,
//! with the stages that did and did not run; never a panic (exit 101).

mod cli_support;

use std::path::Path;

fn material(rel: &str) -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    assert!(path.is_file(), "{} is missing: run `scripts/setup.sh` first", path.display());
    path
}

#[test]
fn a_bad_thread_count_is_an_input_error_naming_it() {
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

    for threads in ["0", "-3", "many"] {
        let out = cli_support::cptc(&["run", "recipe.cpt"])
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
