//! Vocabulary expansion's refusals, rendered as users see them (insta snapshots), and the
//! padded-embedding case end to end: GPT-2's tokenizer over an embedding padded to 50,304 rows.

mod vocab_common;

use std::fs;
use std::path::Path;

use cptc::recipe::{EmbedInit, Selection};
use cptc::vocab::{self, VocabError};
use miette::{GraphicalReportHandler, GraphicalTheme};
use safetensors::tensor::{Dtype, TensorView};

use vocab_common::{corpora, corpus};

fn render(e: &VocabError) -> String {
    let mut s = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(80)
        .render_report(&mut s, e)
        .unwrap();
    s
}

// Integration tests run in the crate root, so relative paths keep the snapshots portable.
const GPT2: &str = "data/tokenizers/gpt2/tokenizer.json";
const QWEN3: &str = "data/tokenizers/qwen3/tokenizer.json";
const MISTRAL: &str = "data/tokenizers/mistral/tokenizer.json";

#[test]
fn missing_tokenizer() {
    let texts = corpus("zh_poetry", 10_000, 0).train;
    let err = vocab::train_candidates(Path::new("no/such/tokenizer.json"), &texts, 1000, 2).unwrap_err();
    assert!(matches!(err, VocabError::Io { .. }));
    insta::assert_snapshot!("vocab_missing_tokenizer", render(&err));
}

#[test]
fn sentencepiece_style_tokenizer_is_refused() {
    let texts = corpus("zh_poetry", 10_000, 0).train;
    let err = vocab::train_candidates(Path::new(MISTRAL), &texts, 1000, 2).unwrap_err();
    assert!(matches!(err, VocabError::UnsupportedTokenizer { .. }));
    insta::assert_snapshot!("vocab_unsupported_tokenizer", render(&err));
}

#[test]
fn size_below_the_byte_alphabet() {
    let texts = corpus("zh_poetry", 10_000, 0).train;
    let err = vocab::train_candidates(Path::new(GPT2), &texts, 200, 2).unwrap_err();
    insta::assert_snapshot!("vocab_size_too_small", render(&err));
}

#[test]
fn no_training_text() {
    let texts: Vec<String> = Vec::new();
    let err = vocab::train_candidates(Path::new(GPT2), &texts, 1000, 2).unwrap_err();
    insta::assert_snapshot!("vocab_empty_corpus", render(&err));
}

#[test]
fn another_tokenizer_is_not_an_extension() {
    let dir = tempfile::tempdir().unwrap();
    let err = vocab::resize_embeddings(
        dir.path(),
        &dir.path().join("out"),
        Path::new(GPT2),
        Path::new(QWEN3),
        EmbedInit::MeanOfPieces,
        0,
    )
    .unwrap_err();
    assert!(matches!(err, VocabError::NotAnExtension { .. }));
    insta::assert_snapshot!("vocab_not_an_extension", render(&err));
}

/// A model shaped like nanoGPT's GPT-2: 50,257 tokens, embedding padded to 50,304 rows. New ids
/// right after the tokenizer would land on padding rows; `first_id` moves them past the padding.
#[test]
fn padded_embedding_needs_first_id() {
    const ROWS: usize = 50_304;
    const DIM: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("gpt2-padded");
    fs::create_dir(&model).unwrap();
    // Deterministic, distinct rows: row i is i + d / 8.
    let embed: Vec<f32> = (0..ROWS * DIM).map(|k| (k / DIM) as f32 + (k % DIM) as f32 / 8.0).collect();
    let bytes: Vec<u8> = embed.iter().flat_map(|x| x.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, vec![ROWS, DIM], &bytes).unwrap();
    let tensors = [("model.embed_tokens.weight", view)];
    safetensors::serialize_to_file(tensors, None, &model.join("model.safetensors")).unwrap();
    fs::write(model.join("config.json"), r#"{"vocab_size": 50304}"#).unwrap();

    let zh = corpora(&["zh_poetry"], 200_000, 0);
    let base = Path::new(GPT2);
    let candidates = vocab::train_candidates(base, &zh.train, 1_000, 3).unwrap();
    // Training is deterministic: the same text gives the same candidates in the same order.
    let again = vocab::train_candidates(base, &zh.train, 1_000, 3).unwrap();
    assert_eq!(candidates.tokens, again.tokens);
    let expansion = vocab::select(base, &candidates, &zh.train, Selection::TopK(100)).unwrap();
    assert_eq!(expansion.tokens.len(), 100);

    let right_after = dir.path().join("right_after.json");
    let merged = vocab::merge(base, &expansion, &right_after, None).unwrap();
    assert_eq!(merged.first_id, 50_257);
    let err = vocab::resize_embeddings(&model, &dir.path().join("out"), base, &right_after, EmbedInit::MeanOfPieces, 0)
        .unwrap_err();
    assert!(matches!(err, VocabError::IdInsideEmbedding { id: 50_257, .. }));
    assert!(!dir.path().join("out").exists());
    let text = render(&err).replace(&*dir.path().to_string_lossy(), "[TMP]");
    insta::assert_snapshot!("vocab_id_inside_embedding", text);

    let past_padding = dir.path().join("past_padding.json");
    let rows = vocab::embedding_rows(&model).unwrap();
    assert_eq!(rows as usize, ROWS);
    let merged = vocab::merge(base, &expansion, &past_padding, Some(rows)).unwrap();
    assert_eq!(merged.first_id as usize, ROWS);
    let out = dir.path().join("out");
    let r = vocab::resize_embeddings(&model, &out, base, &past_padding, EmbedInit::MeanOfPieces, 0).unwrap();
    assert_eq!((r.old_rows, r.new_rows), (ROWS, ROWS + 100));
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["vocab_size"], ROWS + 100);
    // Mean of pieces on rows i + d/8: the mean of the piece ids, plus d/8.
    let grown = fs::read(out.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&grown).unwrap();
    let t = st.tensor("model.embed_tokens.weight").unwrap();
    assert!(t.data()[..bytes.len()] == bytes[..]);
    let tok = tokenizers::Tokenizer::from_file(base).unwrap();
    for (k, new) in expansion.tokens.iter().enumerate() {
        let pieces = tokenizers::Model::tokenize(tok.get_model(), &new.token).unwrap();
        let mean = pieces.iter().map(|p| f64::from(p.id)).sum::<f64>() / pieces.len() as f64;
        let row = (ROWS + k) * DIM * 4;
        let first = f32::from_le_bytes(t.data()[row..row + 4].try_into().unwrap());
        assert!((f64::from(first) - mean).abs() < 1e-2, "{first} vs {mean}");
    }
}
