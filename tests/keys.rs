//! Honest keys through the real stages: what an artifact says is covered by its key. Two
//! corpora over the same file get artifacts of their own, each naming its own corpus, and one
//! split by a record field gets its own hashes, down to the per-file parts.

mod cli_support;

use std::path::Path;

fn material(rel: &str) -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    assert!(path.is_file(), "{} is missing: run `scripts/setup.sh` first", path.display());
    path
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

#[test]
fn two_corpora_over_the_same_files_keep_their_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::copy(fixtures.join("keys/recipe.cpt"), root.join("recipe.cpt")).expect("copy recipe");
    std::fs::create_dir_all(root.join("hf")).expect("mkdir");
    std::fs::copy(fixtures.join("exec/hf/config.json"), root.join("hf/config.json")).expect("copy config");
    std::fs::copy(material("data/tokenizers/gpt2/tokenizer.json"), root.join("hf/tokenizer.json")).expect("copy");
    // A real corpus, cut to its first 300 documents to keep the test quick.
    let text = std::fs::read_to_string(material("data/corpora/hpo.jsonl")).expect("corpus");
    let head: String = text.lines().take(300).map(|l| format!("{l}\n")).collect();
    std::fs::write(root.join("corpus.jsonl"), head).expect("write corpus");

    let out =
        cli_support::cptc(&["run", "recipe.cpt", "--only", "tokenize:first@base", "--only", "tokenize:second@base"])
            .current_dir(root)
            .output()
            .expect("cptc run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("ran 7 stages"), "one model, two ingests, splits and tokenizations: {stderr}");

    let mut seen = Vec::new();
    for kind in ["ingest", "tokenize"] {
        let kind_dir = std::fs::read_dir(root.join(".cptc/v1/artifacts"))
            .expect("artifacts")
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().starts_with(&format!("{kind}-v")))
            .expect("kind folder")
            .path();
        let mut names = Vec::new();
        let mut hashes = Vec::new();
        for artifact in std::fs::read_dir(kind_dir).expect("list").filter_map(Result::ok) {
            hashes.push(if kind == "ingest" {
                let index = cptc::data::index::IndexReader::open(&artifact.path().join("docs.index")).expect("index");
                index.flat_map(|d| d.expect("record").hash).collect()
            } else {
                std::fs::read(artifact.path().join("train.hashes")).expect("hashes")
            });
            let meta = json(&artifact.path().join("meta.json"));
            let stage = meta["stage"].as_str().expect("stage").to_string();
            let said = if kind == "ingest" {
                json(&artifact.path().join("report.json"))["corpus"].as_str().expect("corpus").to_string()
            } else {
                json(&artifact.path().join("stats.json"))["train"]["corpus"].as_str().expect("corpus").to_string()
            };
            assert!(stage.contains(&said), "{stage} carries the name `{said}`");
            names.push(said);
        }
        names.sort();
        assert_eq!(names, ["first", "second"], "{kind}: one artifact per corpus");
        assert_ne!(hashes[0], hashes[1], "{kind}: split by text and by a field, the documents' hashes differ");
        seen.extend(names);
    }
    assert_eq!(seen.len(), 4);
}
