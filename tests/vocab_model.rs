//! Embedding resize on the real SmolLM2 model: old rows bit-identical, new rows initialised as
//! asked (mean of pieces, mean of all, seeded normal), the untied head handled, and
//! `transformers` loads the result.

mod vocab_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use cptc::recipe::{EmbedInit, Selection};
use cptc::vocab;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tokenizers::Model as _;

use vocab_common::{corpora, python, repo, smollm2_dir};

const BASE_ROWS: usize = 49_152;
const DIM: usize = 576;

/// A small expansion of SmolLM2 on Chinese poetry and news (a few hundred tokens), written to
/// `dir/tokenizer.json`.
fn expanded_tokenizer(dir: &Path) -> PathBuf {
    let base = smollm2_dir().join("tokenizer.json");
    let zh = corpora(&["zh_poetry", "zh_news"], 300_000, 0);
    let candidates = vocab::train_candidates(&base, &zh.train, 1_500, 3).unwrap();
    let expansion = vocab::select(&base, &candidates, &zh.train, Selection::TopK(400)).unwrap();
    let out = dir.join("tokenizer.json");
    let merged = vocab::merge(&base, &expansion, &out, None).unwrap();
    assert_eq!(merged.first_id as usize, BASE_ROWS);
    assert!(merged.n_added > 300, "{merged:?}");
    out
}

fn f32s(view: &TensorView<'_>) -> Vec<f32> {
    assert_eq!(view.dtype(), Dtype::F32);
    view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The new tokens (byte-level form) by id, and their base piece ids.
fn new_tokens(base: &Path, new: &Path) -> Vec<(usize, Vec<u32>)> {
    let base = tokenizers::Tokenizer::from_file(base).unwrap();
    let new = tokenizers::Tokenizer::from_file(new).unwrap();
    let base_vocab = base.get_vocab(true);
    let mut out: Vec<(usize, Vec<u32>)> = new
        .get_vocab(false)
        .into_iter()
        .filter(|(t, _)| !base_vocab.contains_key(t))
        .map(|(t, id)| {
            let pieces = base.get_model().tokenize(&t).unwrap();
            (id as usize, pieces.iter().map(|p| p.id).collect())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn resize_keeps_old_rows_and_transformers_loads_it() {
    let model = smollm2_dir();
    let base_tok = model.join("tokenizer.json");
    let dir = tempfile::tempdir().unwrap();
    let new_tok = expanded_tokenizer(dir.path());
    let out = dir.path().join("resized");

    let resized = vocab::resize_embeddings(&model, &out, &base_tok, &new_tok, EmbedInit::MeanOfPieces, 0).unwrap();
    eprintln!("{resized:?}");
    let new = new_tokens(&base_tok, &new_tok);
    assert_eq!(resized.old_rows, BASE_ROWS);
    assert_eq!(resized.new_rows, BASE_ROWS + new.len());
    assert_eq!(resized.resized, ["model.embed_tokens.weight"]);
    assert_eq!(resized.n_without_pieces, 0);

    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["vocab_size"], resized.new_rows);
    assert_eq!(config["tie_word_embeddings"], true);
    assert_eq!(fs::read(out.join("tokenizer.json")).unwrap(), fs::read(&new_tok).unwrap());
    assert!(out.join("generation_config.json").exists());

    // Scoped: two copies of the weights are 1 GB.
    {
        let before_bytes = fs::read(model.join("model.safetensors")).unwrap();
        let after_bytes = fs::read(out.join("model.safetensors")).unwrap();
        let before = SafeTensors::deserialize(&before_bytes).unwrap();
        let after = SafeTensors::deserialize(&after_bytes).unwrap();
        assert_eq!(before.len(), after.len());
        for (name, view) in before.tensors() {
            let grown = after.tensor(&name).unwrap();
            if name == "model.embed_tokens.weight" {
                assert_eq!(grown.shape(), [resized.new_rows, DIM]);
                let old_len = view.data().len();
                assert!(grown.data()[..old_len] == *view.data(), "old embedding rows changed");
            } else {
                assert_eq!(grown.shape(), view.shape(), "{name}");
                assert!(grown.data() == view.data(), "{name} changed");
            }
        }
        // Each new row is the mean of its base pieces' rows.
        let old = f32s(&before.tensor("model.embed_tokens.weight").unwrap());
        let grown = f32s(&after.tensor("model.embed_tokens.weight").unwrap());
        for (id, pieces) in &new {
            assert!(pieces.len() >= 2);
            for d in 0..DIM {
                let mean =
                    pieces.iter().map(|&p| f64::from(old[p as usize * DIM + d])).sum::<f64>() / pieces.len() as f64;
                let got = f64::from(grown[id * DIM + d]);
                assert!((got - mean).abs() < 1e-6, "token {id} dim {d}: {got} vs {mean}");
            }
        }
    }

    // The output exists now: a second run refuses to overwrite it.
    let again = vocab::resize_embeddings(&model, &out, &base_tok, &new_tok, EmbedInit::MeanOfAll, 0);
    assert!(matches!(again, Err(vocab::VocabError::OutputExists { .. })));

    check_with_transformers(&model, &out);
}

fn check_with_transformers(base: &Path, resized: &Path) {
    let zh = corpora(&["zh_news"], 0, 20_000);
    let en = corpora(&["austen"], 0, 20_000);
    let texts = serde_json::json!({"english": en.held_out[0], "chinese": zh.held_out.concat()});
    let texts_path = resized.with_file_name("texts.json");
    fs::write(&texts_path, texts.to_string()).unwrap();
    let run = Command::new(python())
        .arg(repo().join("tests/python/vocab_check_model.py"))
        .arg(base)
        .arg(resized)
        .arg(&texts_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "vocab_check_model.py failed:\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap();
    eprintln!("vocab_check_model.py: {line}");
    let f: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(f["rows_before"], BASE_ROWS);
    assert_eq!(f["rows_after"], f["config_vocab_size"]);
    assert_eq!(f["rows_after"], f["len_tokenizer"]);
    assert_eq!(f["tied"], true);
    assert_eq!(f["old_rows_identical"], true);
    assert!(f["n_new_checked"].as_u64().unwrap() > 300);
    assert!(f["mean_of_pieces_max_err"].as_f64().unwrap() < 1e-6, "{line}");
    // Old tokens see the same network: their logits cannot move.
    assert!(f["english_logits_max_diff"].as_f64().unwrap() < 1e-3, "{line}");
    let loss = f["chinese_loss"].as_f64().unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{line}");
    assert!(f["chinese_new_tokens"].as_u64().unwrap() > 20, "{line}");
}

/// Mean of all rows and the seeded normal, on an untied bf16 model cut down to its embedding and
/// head (enough for the resize, which touches nothing else).
#[test]
fn untied_bf16_head_mean_of_all_and_random() {
    let model = smollm2_dir();
    let base_tok = model.join("tokenizer.json");
    let dir = tempfile::tempdir().unwrap();
    let new_tok = expanded_tokenizer(dir.path());

    let bytes = fs::read(model.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let embed = f32s(&st.tensor("model.embed_tokens.weight").unwrap());
    // A head unlike the embedding, so a mix-up between them shows.
    let head: Vec<f32> = embed.iter().map(|x| -2.0 * x + 0.01).collect();
    let bf16 = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect() };
    let (embed_b, head_b) = (bf16(&embed), bf16(&head));
    drop(st);
    let untied = dir.path().join("untied");
    fs::create_dir(&untied).unwrap();
    let views = [
        ("model.embed_tokens.weight", TensorView::new(Dtype::BF16, vec![BASE_ROWS, DIM], &embed_b).unwrap()),
        ("lm_head.weight", TensorView::new(Dtype::BF16, vec![BASE_ROWS, DIM], &head_b).unwrap()),
    ];
    safetensors::serialize_to_file(views, None, &untied.join("model.safetensors")).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    config["tie_word_embeddings"] = false.into();
    fs::write(untied.join("config.json"), config.to_string()).unwrap();

    let decode = |data: &[u8]| -> Vec<f32> {
        data.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
    };
    let run = |init: EmbedInit, seed: u64, name: &str| {
        let out = dir.path().join(name);
        let r = vocab::resize_embeddings(&untied, &out, &base_tok, &new_tok, init, seed).unwrap();
        assert_eq!(r.resized, ["model.embed_tokens.weight", "lm_head.weight"]);
        let bytes = fs::read(out.join("model.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut rows = Vec::new();
        for (name, old) in [("model.embed_tokens.weight", &embed_b), ("lm_head.weight", &head_b)] {
            let t = st.tensor(name).unwrap();
            assert_eq!(t.dtype(), Dtype::BF16);
            assert_eq!(t.shape(), [r.new_rows, DIM]);
            assert!(t.data()[..old.len()] == old[..], "old rows of {name} changed");
            rows.push(decode(&t.data()[old.len()..]));
        }
        (r, rows)
    };

    // Mean of all: every new row is the column mean of its own matrix.
    let (r, rows) = run(EmbedInit::MeanOfAll, 0, "mean_all");
    let n_new = r.new_rows - BASE_ROWS;
    for (matrix, new_rows) in [(&embed_b, &rows[0]), (&head_b, &rows[1])] {
        let old = decode(matrix);
        for d in 0..DIM {
            let mean = (0..BASE_ROWS).map(|i| f64::from(old[i * DIM + d])).sum::<f64>() / BASE_ROWS as f64;
            for k in 0..n_new {
                let got = f64::from(new_rows[k * DIM + d]);
                assert!((got - mean).abs() <= 1e-2 * mean.abs().max(1e-3), "dim {d}");
            }
        }
    }

    // Random: the same seed gives the same rows, another seed others; the spread is the rows'.
    let (_, a) = run(EmbedInit::Random, 7, "random_a");
    let (_, b) = run(EmbedInit::Random, 7, "random_b");
    let (_, c) = run(EmbedInit::Random, 8, "random_c");
    assert_eq!(a, b);
    assert_ne!(a[0], c[0]);
    let std = |v: &[f32]| {
        let n = v.len() as f64;
        let m = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        (v.iter().map(|&x| (f64::from(x) - m).powi(2)).sum::<f64>() / n).sqrt()
    };
    for (new_rows, old) in [(&a[0], &embed_b), (&a[1], &head_b)] {
        let (s_new, s_old) = (std(new_rows), std(&decode(old)));
        assert!((s_new / s_old - 1.0).abs() < 0.05, "std {s_new} vs the rows' {s_old}");
    }
}
