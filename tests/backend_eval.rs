//! Held-out evaluation: SmolLM2-135M on real English text against transformers' loss, bits
//! per byte from the decoded text, and metric records as JSONL.

mod backend_support;

use backend_support::*;
use cptc_torch::backend::eval::{EvalExample, EvalResult, evaluate};
use cptc_torch::backend::metrics::{JsonlWriter, flops_per_token};
use cptc_torch::backend::train::Example;
use cptc_torch::backend::{Device, Llama};

/// 2 windows of 129 tokens from the middle of Pride and Prejudice, with the UTF-8 length of
/// the text their targets decode to.
fn austen_windows(tok: &tokenizers::Tokenizer) -> Vec<(Vec<u32>, u64)> {
    let corpus = std::fs::read_to_string(root().join("data/corpora/austen.jsonl")).unwrap();
    let text: String = corpus
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["source"].as_str().is_some_and(|s| s.to_lowercase().contains("pride")))
        .filter_map(|r| r["text"].as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("\n\n");
    assert!(text.len() > 100_000, "Pride and Prejudice not found in austen.jsonl");
    let mid = text.len() / 2;
    let start = (mid..).find(|&i| text.is_char_boundary(i)).unwrap();
    let slice = &text[start..start + 6000];
    let ids = tok.encode(slice, false).unwrap().get_ids().to_vec();
    (0..2)
        .map(|w| {
            let win = ids[w * 129..(w + 1) * 129].to_vec();
            let bytes = tok.decode(&win[1..], false).unwrap().len() as u64;
            (win, bytes)
        })
        .collect()
}

#[test]
fn smollm2_loss_ppl_bpb_on_austen_match_transformers() {
    init();
    let dir = smollm2();
    let tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let windows = austen_windows(&tok);
    let model = Llama::load(&dir, Device::Cpu).unwrap();
    let examples: Vec<EvalExample> =
        windows.iter().map(|(w, bytes)| EvalExample { example: Example::from_tokens(w), bytes: *bytes }).collect();
    let r = evaluate(&model, examples.clone(), 2).unwrap();
    assert_eq!(r.tokens, 256);
    let total_bytes: u64 = windows.iter().map(|w| w.1).sum();
    assert_eq!(r.bytes, total_bytes);
    eprintln!("SmolLM2 on Pride and Prejudice: loss {:.4} ppl {:.2} bpb {:.4}", r.loss, r.ppl, r.bpb.unwrap());
    // DATA.md: Austen 32-60 on 256-token windows (the weights are a 4-bit copy).
    assert!((15.0..80.0).contains(&r.ppl), "ppl {}", r.ppl);
    assert!((r.bpb.unwrap() - r.nats / (std::f64::consts::LN_2 * total_bytes as f64)).abs() < 1e-12);

    // transformers' mean loss on the same ids.
    let tmp = tempfile::tempdir().unwrap();
    let ids_path = tmp.path().join("ids.json");
    let rows: Vec<Vec<i64>> = windows.iter().map(|(w, _)| w.iter().map(|&i| i64::from(i)).collect()).collect();
    write_ids(&ids_path, &rows);
    let out = tmp.path().join("logits.safetensors");
    let py = python(&["logits", dir.to_str().unwrap(), ids_path.to_str().unwrap(), out.to_str().unwrap()]);
    let theirs = py["loss"].as_f64().unwrap();
    assert!((r.loss - theirs).abs() < 1e-5, "loss {} vs transformers {theirs}", r.loss);

    // Batching does not change the result beyond float noise.
    let one = evaluate(&model, examples, 1).unwrap();
    assert!((one.loss - r.loss).abs() < 1e-5);
}

#[test]
fn metrics_follow_their_definitions_and_write_jsonl() {
    let r = EvalResult::from_totals(100.0, 50, 40);
    assert_eq!(r.loss, 2.0);
    assert!((r.ppl - 2f64.exp()).abs() < 1e-12);
    assert!((r.bpb.unwrap() - 100.0 / (std::f64::consts::LN_2 * 40.0)).abs() < 1e-12);
    assert_eq!(EvalResult::from_totals(1.0, 1, 0).bpb, None);

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("metrics.jsonl");
    let mut w = JsonlWriter::append(&path).unwrap();
    w.write(&r.record(10, "austen")).unwrap();
    w.write(&r.record(20, "zh_news")).unwrap();
    drop(w);
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["kind"], "eval");
    assert_eq!(lines[1]["set"], "zh_news");
    assert_eq!(lines[1]["step"], 20);

    // SmolLM2 (tied): 6N counts the head once; 12 L d T for attention.
    let cfg = cptc_torch::backend::LlamaConfig::from_file(&smollm2().join("config.json")).unwrap();
    let f = flops_per_token(&cfg, 2048);
    assert_eq!(f, 6.0 * 134_515_008.0 + 12.0 * 30.0 * 576.0 * 2048.0);
}
