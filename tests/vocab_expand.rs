//! Acceptance of vocabulary expansion on real data: SmolLM2's tokenizer expanded on Chinese text
//! (news, reviews, man pages, poetry) halves the tokens of held-out Chinese text, leaves English
//! within 0.5%, and Python's `tokenizers`/`transformers` encode exactly as cptc does.

mod vocab_common;

use std::process::Command;
use std::time::Instant;

use cptc::recipe::Selection;
use cptc::vocab;

use vocab_common::{corpora, python, repo, smollm2_tokenizer};

const CHINESE: [&str; 4] = ["zh_news", "zh_reviews", "zh_man", "zh_poetry"];
const ENGLISH: [&str; 3] = ["austen", "mobydick", "pydocs"];
/// Training text per Chinese corpus (3 MB in all): enough for the 2-core test machines.
const TRAIN_BYTES: usize = 750_000;
const HELD_OUT_BYTES: usize = 250_000;
const SIZE: usize = 16_000;
const KEEP: u64 = 12_000;
const MIN_FREQUENCY: u64 = 3;

#[test]
fn smollm2_expanded_on_chinese_halves_chinese_tokens() {
    let base = smollm2_tokenizer();
    let zh = corpora(&CHINESE, TRAIN_BYTES, HELD_OUT_BYTES);
    let en = corpora(&ENGLISH, 0, HELD_OUT_BYTES);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tokenizer.json");

    let t = Instant::now();
    let candidates = vocab::train_candidates(&base, &zh.train, SIZE, MIN_FREQUENCY).unwrap();
    let t_train = t.elapsed();
    let t = Instant::now();
    let expansion = vocab::select(&base, &candidates, &zh.train, Selection::TopK(KEEP)).unwrap();
    let t_select = t.elapsed();
    let merged = vocab::merge(&base, &expansion, &out, None).unwrap();
    let t = Instant::now();
    let report = vocab::report(&base, &out, &zh.held_out, &en.held_out, 12).unwrap();
    let t_report = t.elapsed();
    eprintln!(
        "candidates {} (trained {}, {} in base), planned {}, kept {}; train {:.1}s select {:.1}s report {:.1}s",
        candidates.tokens.len(),
        candidates.trained_size,
        candidates.n_in_base,
        expansion.n_planned,
        expansion.tokens.len(),
        t_train.as_secs_f64(),
        t_select.as_secs_f64(),
        t_report.as_secs_f64()
    );
    eprintln!("domain train tokens: base {}, all planned {}", expansion.base_tokens, expansion.all_planned_tokens);
    eprintln!("{report}");
    eprintln!("{}", serde_json::to_string(&report).unwrap());

    assert_eq!(merged.first_id, 49_152);
    assert_eq!(report.n_added, expansion.tokens.len());
    assert!(report.n_added as u64 <= KEEP);
    assert!(
        report.domain.change <= -0.5,
        "Chinese tokens changed by {:+.2}%, not -50% or better",
        report.domain.change * 100.0
    );
    assert!(
        report.general.tokens_per_byte_after <= report.general.tokens_per_byte_before * 1.005
            && report.general.tokens_per_byte_after >= report.general.tokens_per_byte_before * 0.995,
        "English tokens per byte changed by {:+.3}%",
        report.general.change * 100.0
    );

    check_with_python(&out, 49_152, &zh.held_out, &en.held_out, 1000);

    // A gain threshold keeps fewer tokens, each saving at least that share of the base tokens
    // unless a kept token is built from it.
    let threshold = 1e-4;
    let by_gain = vocab::select(&base, &candidates, &zh.train, Selection::MinGain(threshold)).unwrap();
    eprintln!("min_gain {threshold}: {} tokens", by_gain.tokens.len());
    assert!(by_gain.tokens.len() > 100 && by_gain.tokens.len() < expansion.tokens.len());
    for t in &by_gain.tokens {
        let needed = by_gain.tokens.iter().any(|u| u.left == t.token || u.right == t.token);
        assert!(t.gain >= threshold || needed, "{t:?}");
    }
}

/// Qwen3 puts 26 added tokens after its 151,643 BPE ids: new tokens must come after those, and
/// Python must still encode as cptc does.
#[test]
fn qwen3_new_ids_follow_its_added_tokens() {
    let base = repo().join("data/tokenizers/qwen3/tokenizer.json");
    let zh = corpora(&["zh_poetry", "zh_man"], 300_000, 60_000);
    let en = corpora(&["austen", "pydocs"], 0, 60_000);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tokenizer.json");
    let candidates = vocab::train_candidates(&base, &zh.train, 3_000, 3).unwrap();
    let expansion = vocab::select(&base, &candidates, &zh.train, Selection::TopK(500)).unwrap();
    let merged = vocab::merge(&base, &expansion, &out, None).unwrap();
    assert_eq!(merged.first_id, 151_669);
    assert_eq!(merged.vocab_size, 151_669 + expansion.tokens.len());
    let report = vocab::report(&base, &out, &zh.held_out, &en.held_out, 5).unwrap();
    eprintln!("{report}");
    assert!(report.domain.change < -0.02, "{report}");
    assert!(report.general.change.abs() < 0.005, "{report}");
    check_with_python(&out, 151_669, &zh.held_out, &en.held_out, 50);
}

/// Encodes held-out texts with cptc's tokenizer and has Python's `tokenizers` and
/// `transformers` encode them too: the ids must be the same.
fn check_with_python(
    tokenizer_json: &std::path::Path,
    first_new_id: u32,
    zh: &[String],
    en: &[String],
    min_new_used: u64,
) {
    let tok = tokenizers::Tokenizer::from_file(tokenizer_json).unwrap();
    // Every other held-out document, whole: enough text to exercise thousands of new tokens.
    let texts: Vec<&String> = zh.iter().step_by(2).chain(en.iter().step_by(4)).collect();
    let samples: Vec<serde_json::Value> = texts
        .iter()
        .map(|text| {
            let ids = tok.encode(text.as_str(), false).unwrap().get_ids().to_vec();
            serde_json::json!({"text": text, "ids": ids})
        })
        .collect();
    let samples_path = tokenizer_json.with_file_name("samples.json");
    let payload = serde_json::json!({"base_vocab_size": first_new_id, "samples": samples});
    std::fs::write(&samples_path, payload.to_string()).unwrap();
    let run = Command::new(python())
        .arg(repo().join("tests/python/vocab_check_tokenizer.py"))
        .arg(tokenizer_json)
        .arg(&samples_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "vocab_check_tokenizer.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap();
    eprintln!("vocab_check_tokenizer.py: {line}");
    let figures: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(figures["n_samples"], samples.len());
    assert_eq!(figures["mismatch_tokenizers"], 0, "{line}");
    assert_eq!(figures["mismatch_transformers"], 0, "{line}");
    assert_eq!(figures["roundtrip_fail"], 0, "{line}");
    assert_eq!(figures["new_added_as_special"], 0, "{line}");
    assert!(figures["n_new_used"].as_u64().unwrap() > min_new_used, "{line}");
    assert_eq!(figures["len_transformers"], figures["vocab_size_tokenizers"], "{line}");
}
