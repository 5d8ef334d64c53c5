//! Shared set-up for the `vocab_*` tests: the SmolLM2 HF directory (imported once from the GGUF
//! and cached under `target/test-models/`) and deterministic train/held-out splits of the corpora.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use cptc::convert::{OutDtype, import_gguf};

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn require(path: &Path, what: &str) {
    assert!(path.exists(), "{what} is missing at {}: run `scripts/setup.sh` first", path.display());
}

pub(crate) fn python() -> PathBuf {
    let python = repo().join(".venv/bin/python");
    require(&python, "the Python venv");
    python
}

/// SmolLM2-135M-Instruct in HF layout (fp32). Imported once; later runs and other test binaries
/// reuse it. Several binaries may race here, so each imports aside and renames into place;
/// within one binary the tests wait for the first import.
pub(crate) fn smollm2_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(import_smollm2).clone()
}

fn import_smollm2() -> PathBuf {
    let dir = repo().join("target/test-models/smollm2-135m-f32");
    if dir.join("model.safetensors").exists() && dir.join("tokenizer.json").exists() {
        return dir;
    }
    let gguf = repo().join("data/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    require(&gguf, "the SmolLM2 GGUF");
    fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    import_gguf(&gguf, &tmp, OutDtype::F32).unwrap();
    if fs::rename(&tmp, &dir).is_err() {
        // Another test binary won the race; its copy is as good as ours.
        let _ = fs::remove_dir_all(&tmp);
    }
    assert!(dir.join("model.safetensors").exists());
    dir
}

pub(crate) fn smollm2_tokenizer() -> PathBuf {
    smollm2_dir().join("tokenizer.json")
}

/// True for the documents of the held-out split: about 1 in 10 (26 of 256 hash values), chosen
/// by a hash of the text so the split never depends on file order or on other documents.
pub(crate) fn is_held_out(text: &str) -> bool {
    blake3::hash(text.as_bytes()).as_bytes()[0] < 26
}

/// The texts of one corpus (`data/corpora/NAME.jsonl`), split; each side is cut, in file order,
/// once it holds `max_bytes`.
pub(crate) struct Split {
    pub(crate) train: Vec<String>,
    pub(crate) held_out: Vec<String>,
}

pub(crate) fn corpus(name: &str, max_train_bytes: usize, max_held_out_bytes: usize) -> Split {
    let path = repo().join(format!("data/corpora/{name}.jsonl"));
    require(&path, "the corpus");
    let text = fs::read_to_string(&path).unwrap();
    let mut split = Split { train: Vec::new(), held_out: Vec::new() };
    let (mut n_train, mut n_held) = (0usize, 0usize);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let doc = record["text"].as_str().unwrap().to_owned();
        if is_held_out(&doc) {
            if n_held < max_held_out_bytes {
                n_held += doc.len();
                split.held_out.push(doc);
            }
        } else if n_train < max_train_bytes {
            n_train += doc.len();
            split.train.push(doc);
        }
    }
    split
}

/// Train and held-out texts of several corpora, each corpus capped as in [`corpus`].
pub(crate) fn corpora(names: &[&str], max_train_bytes: usize, max_held_out_bytes: usize) -> Split {
    let mut all = Split { train: Vec::new(), held_out: Vec::new() };
    for name in names {
        let split = corpus(name, max_train_bytes, max_held_out_bytes);
        all.train.extend(split.train);
        all.held_out.extend(split.held_out);
    }
    all
}
