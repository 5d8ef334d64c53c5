//! The fast tokenizer engine (`tokenizers` 1.0.0-rc.3) gives exactly the reference's (0.23) ids:
//! on the real corpora with the real tokenizers (GPT-2, Qwen3, Mistral, SmolLM2 rebuilt from its
//! GGUF, and SmolLM2 expanded by cptc's vocabulary stage), and on edge cases: the bytes SmolLM2's
//! vocabulary lacks, special tokens inside text, empty and whitespace-only documents.
//!
//! CI compares every 4th document of every corpus (about 12 MB of text per tokenizer);
//! `CPTC_ENGINE_EVERY=1 cargo test --release --test data_engine -- --nocapture` compares all of
//! them (the figures in docs/benchmarks.md).

mod vocab_common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use cptc::data::encoder::{Encoder, FAST_ENGINE, Ids, Route, first_difference};
use cptc::data::tokenize::{TokenizeOptions, eos_token, tokenize_corpus};
use cptc::recipe::Selection;
use cptc::vocab;
use rayon::prelude::*;
use tokenizers::{PaddingParams, PaddingStrategy, TruncationParams};
use vocab_common::{corpus, repo, require, smollm2_tokenizer};

const CORPORA: [&str; 9] =
    ["austen", "mobydick", "pydocs", "pycode", "hpo", "zh_poetry", "zh_news", "zh_reviews", "zh_man"];

fn every() -> usize {
    std::env::var("CPTC_ENGINE_EVERY").ok().and_then(|s| s.parse().ok()).unwrap_or(4).max(1)
}

fn texts(name: &str) -> Vec<String> {
    let path = repo().join(format!("data/corpora/{name}.jsonl"));
    require(&path, "the corpus");
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().to_owned())
        .collect()
}

/// SmolLM2's tokenizer expanded on Chinese text by the vocabulary stage's own functions.
fn expanded_smollm2(dir: &Path) -> PathBuf {
    let base = smollm2_tokenizer();
    let mut train = corpus("zh_poetry", 300_000, 0).train;
    train.extend(corpus("zh_news", 300_000, 0).train);
    let candidates = vocab::train_candidates(&base, &train, 3_000, 3).unwrap();
    let expansion = vocab::select(&base, &candidates, &train, Selection::TopK(1_000)).unwrap();
    let out = dir.join("tokenizer.json");
    vocab::merge(&base, &expansion, &out, None).unwrap();
    out
}

/// Compares both engines on `docs`; returns (documents, bytes, documents routed to the
/// reference) and panics at the first difference.
fn compare(enc: &Encoder, what: &str, docs: &[&str]) -> (usize, usize, usize) {
    let routed = docs
        .par_iter()
        .enumerate()
        .map(|(i, text)| {
            let mut fast = Ids::new();
            let route = enc.encode_into(text, false, &mut fast).unwrap();
            let reference = enc.encode_reference(text, false).unwrap();
            if let Some(at) = first_difference(&fast, &reference) {
                let lo = at.saturating_sub(3);
                panic!(
                    "{what}: document {i} differs at token {at}: fast {:?} reference {:?}",
                    &fast[lo..fast.len().min(at + 4)],
                    &reference[lo..reference.len().min(at + 4)]
                );
            }
            usize::from(route == Route::Reference)
        })
        .sum();
    (docs.len(), docs.iter().map(|d| d.len()).sum(), routed)
}

#[test]
fn fast_engine_gives_reference_ids_on_every_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let tokenizers: Vec<(&str, PathBuf)> = vec![
        ("gpt2", repo().join("data/tokenizers/gpt2/tokenizer.json")),
        ("qwen3", repo().join("data/tokenizers/qwen3/tokenizer.json")),
        ("mistral", repo().join("data/tokenizers/mistral/tokenizer.json")),
        ("smollm2", smollm2_tokenizer()),
        ("smollm2+zh", expanded_smollm2(tmp.path())),
    ];
    let all: Vec<(&str, Vec<String>)> = CORPORA.iter().map(|&c| (c, texts(c))).collect();
    let step = every();
    let mut table = String::new();
    let mut total_bytes = 0;
    for (name, path) in &tokenizers {
        let enc = Encoder::load(path).unwrap();
        let info = enc.info();
        assert_eq!(info.engine, FAST_ENGINE, "{name}: {:?}", info.fallback_reason);
        writeln!(table, "{name}: missing bytes {:02X?}", info.missing_bytes).unwrap();
        for (corpus, docs) in &all {
            let sample: Vec<&str> = docs.iter().step_by(step).map(String::as_str).collect();
            let (n, bytes, routed) = compare(&enc, &format!("{name} on {corpus}"), &sample);
            total_bytes += bytes;
            eprintln!(
                "{name:<11} {corpus:<10} {n:>6} documents {bytes:>9} bytes identical, {routed} via the reference"
            );
        }
    }
    eprintln!("{:.1} MB compared, every {step}th document", total_bytes as f64 / 1e6);
    insta::assert_snapshot!(table);
}

#[test]
fn edge_cases_agree_and_missing_bytes_go_to_the_reference() {
    let enc = Encoder::load(&smollm2_tokenizer()).unwrap();
    let info = enc.info();
    assert!(!info.missing_bytes.is_empty(), "SmolLM2's GGUF vocabulary lacks a few control bytes");
    let missing = char::from(info.missing_bytes[0]);
    let cases = [
        String::new(),
        " ".to_string(),
        "\n\n\t  \r\n".to_string(),
        format!("before{missing}after"),
        format!("{missing}"),
        "a<|endoftext|>b <|im_start|>user\nhi<|im_end|>".to_string(),
        "digits 1234567890 and 3.14159".to_string(),
        "emoji 😀🎉 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, combining e\u{301}".to_string(),
        "漢字かなカナ한글 mixed with English".to_string(),
    ];
    for (i, text) in cases.iter().enumerate() {
        let mut fast = Ids::new();
        let route = enc.encode_into(text, false, &mut fast).unwrap();
        assert_eq!(*fast, enc.encode_reference(text, false).unwrap(), "case {i}: {text:?}");
        assert_eq!(route == Route::Reference, text.contains(missing), "case {i} route");
        assert_eq!(enc.check(text, false).unwrap(), None);
    }
}

#[test]
fn shard_stats_record_engine_and_checks() {
    let enc = Encoder::load(&smollm2_tokenizer()).unwrap();
    let mut docs = texts("zh_poetry");
    docs.truncate(300);
    docs.push(format!("a control byte {} in a document", char::from(enc.info().missing_bytes[0])));
    let tmp = tempfile::tempdir().unwrap();
    let opts = TokenizeOptions { eos: eos_token(enc.reference()), check_every: 100, ..Default::default() };
    let st = tokenize_corpus(&enc, "poetry", &docs, &tmp.path().join("p"), &opts).unwrap();
    let e = &st.engine;
    assert_eq!(e.info.as_ref().unwrap().engine, FAST_ENGINE);
    assert_eq!((e.fast_documents, e.reference_documents), (300, 1));
    // Documents 0-3 (the first four), 100 and 200 are checked (300 is the reference's).
    assert_eq!(e.checked_documents, 6);

    // The same corpus through the reference alone gives the same shard, byte for byte.
    let reference = Encoder::reference_only(&smollm2_tokenizer()).unwrap();
    let st2 = tokenize_corpus(&reference, "poetry", &docs, &tmp.path().join("r"), &opts).unwrap();
    assert_eq!(st2.engine.reference_documents, 301);
    assert_eq!(st2.tokens, st.tokens);
    let read = |p: &str| std::fs::read(tmp.path().join(p)).unwrap();
    assert_eq!(read("p.bin"), read("r.bin"));
    assert_eq!(read("p.idx"), read("r.idx"));
}

#[test]
fn a_disagreeing_engine_is_caught_and_the_reference_ids_are_kept() {
    // GPT-2's reference paired with Qwen3's fast engine: the first checked document differs.
    let gpt2 = repo().join("data/tokenizers/gpt2/tokenizer.json");
    let wrong = Encoder::load(&gpt2)
        .unwrap()
        .with_fast_engine_of(&repo().join("data/tokenizers/qwen3/tokenizer.json"))
        .unwrap();
    let docs = texts("hpo")[..50].to_vec();
    let tmp = tempfile::tempdir().unwrap();
    let opts = TokenizeOptions { eos: eos_token(wrong.reference()), ..Default::default() };
    let st = tokenize_corpus(&wrong, "hpo", &docs, &tmp.path().join("w"), &opts).unwrap();
    let info = st.engine.info.as_ref().unwrap();
    assert_eq!(info.engine, cptc::data::encoder::REFERENCE_ENGINE);
    let reason = info.fallback_reason.as_deref().unwrap();
    assert!(reason.contains("disagree on document 0 of corpus `hpo`"), "{reason}");
    assert_eq!(st.engine.reference_documents, 50);

    let right = Encoder::reference_only(&gpt2).unwrap();
    let st2 = tokenize_corpus(&right, "hpo", &docs, &tmp.path().join("r"), &opts).unwrap();
    assert_eq!(st2.tokens, st.tokens);
    let read = |p: &str| std::fs::read(tmp.path().join(p)).unwrap();
    assert_eq!(read("w.bin"), read("r.bin"));
    assert!(!tmp.path().join("w.bin.partial").exists());
}

#[test]
fn a_tokenizer_json_truncation_and_padding_are_ignored() {
    // Saved fine-tunes often carry `truncation` (and `padding`): for model inputs, not corpora.
    let gpt2 = repo().join("data/tokenizers/gpt2/tokenizer.json");
    let mut tok = tokenizers::Tokenizer::from_file(&gpt2).unwrap();
    tok.with_truncation(Some(TruncationParams { max_length: 16, ..Default::default() })).unwrap();
    tok.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::Fixed(4096),
        pad_id: 50_256,
        pad_token: "<|endoftext|>".to_string(),
        ..Default::default()
    }));
    let tmp = tempfile::tempdir().unwrap();
    let configured = tmp.path().join("tokenizer.json");
    tok.save(&configured, false).unwrap();
    assert!(std::fs::read_to_string(&configured).unwrap().contains("\"max_length\":16"));

    let (enc, plain) = (Encoder::load(&configured).unwrap(), Encoder::load(&gpt2).unwrap());
    assert_eq!(enc.info().engine, FAST_ENGINE, "{:?}", enc.info().fallback_reason);
    let docs = texts("hpo")[..50].to_vec();
    let long = docs.iter().find(|d| plain.encode_reference(d, false).unwrap().len() > 16).unwrap();
    let mut fast = Ids::new();
    enc.encode_into(long, false, &mut fast).unwrap();
    assert_eq!(*fast, plain.encode_reference(long, false).unwrap());
    assert_eq!(enc.encode_reference(long, false).unwrap(), *fast);

    let opts = TokenizeOptions { eos: eos_token(plain.reference()), check_every: 1, ..Default::default() };
    let st = tokenize_corpus(&enc, "hpo", &docs, &tmp.path().join("c"), &opts).unwrap();
    let st2 = tokenize_corpus(&plain, "hpo", &docs, &tmp.path().join("p"), &opts).unwrap();
    assert_eq!((st.engine.checked_documents, st.tokens), (50, st2.tokens));
    let read = |p: &str| std::fs::read(tmp.path().join(p)).unwrap();
    assert_eq!(read("c.bin"), read("p.bin"));
}
