//! Bytes a byte-level vocabulary cannot encode: found from the tokenizer, counted per held-out
//! document, left out of bits per byte and warned about, on real tokenizers and real text.

mod cli_support;

use std::path::{Path, PathBuf};

use cptc::data::tokenize::{byte_chars, unencodable_bytes};
use tokenizers::Tokenizer;

fn material(rel: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    assert!(path.is_file(), "{} is missing: run `scripts/setup.sh` first", path.display());
    path
}

/// GPT-2's tokenizer without the byte 0xE4 (`ä` in its alphabet): every token spelled with it
/// and every merge using it removed, as a vocabulary that never saw the byte would be.
fn gpt2_without_byte_e4() -> serde_json::Value {
    let text = std::fs::read_to_string(material("data/tokenizers/gpt2/tokenizer.json")).expect("tokenizer");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let model = &mut json["model"];
    model["vocab"].as_object_mut().expect("vocab").retain(|token, _| !token.contains('ä'));
    model["merges"].as_array_mut().expect("merges").retain(|m| !m.to_string().contains('ä'));
    json
}

#[test]
fn the_byte_alphabet_is_the_pre_tokenizers() {
    let ours: std::collections::HashSet<char> = byte_chars().into_iter().collect();
    let theirs: std::collections::HashSet<char> =
        tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet().into_iter().collect();
    assert_eq!(ours, theirs);
    assert_eq!(byte_chars()[0xE4], 'ä');
    assert_eq!(byte_chars()[b' ' as usize], 'Ġ');
}

#[test]
fn complete_and_byte_fallback_vocabularies_encode_every_byte() {
    for name in ["gpt2", "qwen3", "mistral"] {
        let tok = Tokenizer::from_file(material(&format!("data/tokenizers/{name}/tokenizer.json"))).expect("load");
        assert_eq!(unencodable_bytes(&tok).map(|m| m.iter().filter(|&&x| x).count()), None, "{name}");
    }
    let tok: Tokenizer = gpt2_without_byte_e4().to_string().parse().expect("a tokenizer");
    let missing = unencodable_bytes(&tok).expect("a missing byte");
    let which: Vec<usize> = (0..256).filter(|&b| missing[b]).collect();
    assert_eq!(which, vec![0xE4]);
    // The model drops it: a character starting with that byte leaves no token for it.
    let ids = tok.encode("一", false).expect("encode").get_ids().to_vec(); // U+4E00 is E4 B8 80
    let decoded = tok.decode(&ids, false).expect("decode");
    assert!(!decoded.contains('一'), "{decoded:?}");
}

#[test]
fn evaluation_leaves_unencodable_bytes_out_of_bits_per_byte_and_says_so() {
    use cptc_torch::backend::{Llama, LlamaConfig, SaveDtype};
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("hf")).expect("mkdir");
    std::fs::write(root.join("hf/tokenizer.json"), gpt2_without_byte_e4().to_string()).expect("tokenizer");
    let config = serde_json::json!({
        "model_type": "llama", "vocab_size": 50257, "hidden_size": 16, "intermediate_size": 32,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 256,
    });
    let model =
        Llama::random(LlamaConfig::from_value(config, Path::new("<tiny>")).expect("config"), 3, tch::Device::Cpu)
            .expect("model");
    model.save(&root.join("hf"), SaveDtype::F32, Some(&root.join("hf"))).expect("save");
    // Real classical Chinese: many characters start with the byte 0xE4.
    let text = std::fs::read_to_string(material("data/corpora/zh_poetry.jsonl")).expect("corpus");
    let head: String = text.lines().take(200).map(|l| format!("{l}\n")).collect();
    std::fs::write(root.join("poetry.jsonl"), head).expect("write corpus");
    let recipe = "model base {\n  hf = \"hf\"\n}\n\ncorpus poetry {\n  files = \"poetry.jsonl\"\n  heldout = 5 docs\n}\n\n\
                  eval before {\n  model = base\n  sets = [poetry]\n  bytes = 4000 bytes\n}\n";
    std::fs::write(root.join("recipe.cpt"), recipe).expect("recipe");

    let out = cli_support::cptc(&["run", "recipe.cpt"])
        .current_dir(root)
        .env("COLUMNS", "1000")
        .env("CPTC_THREADS", "1")
        .output()
        .expect("cptc run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("of the held-out text have no token in this vocabulary; bits per byte leave them out"),
        "{stderr}"
    );
    assert!(stdout.contains("warning: eval before:") && stdout.contains("of `poetry` have no token"), "{stdout}");
    // Five poems are fewer bytes than asked: said, as a short evaluation is noisier.
    assert!(stderr.contains("bytes of held-out text, fewer than the 4000 asked"), "{stderr}");

    // The counts add up to the text evaluated: the held-out documents chosen, byte for byte.
    let artifacts = root.join(".cptc/v1/artifacts");
    let find = |kind: &str| {
        std::fs::read_dir(&artifacts)
            .expect("artifacts")
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().starts_with(&format!("{kind}-v")))
            .and_then(|k| std::fs::read_dir(k.path()).expect("kind").filter_map(Result::ok).next())
            .expect("an artifact")
            .path()
    };
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json")
    };
    let tokenized = find("tokenize");
    let doc_bytes: Vec<u64> =
        serde_json::from_value(read(tokenized.join("heldout.doc_bytes.json"))).expect("doc bytes");
    let per_doc: Vec<u64> =
        serde_json::from_value(read(tokenized.join("heldout.unencodable.json"))).expect("unencodable");
    let result = &read(find("eval").join("eval.json"))["poetry"];
    let (bytes, unencodable) =
        (result["bytes"].as_u64().expect("bytes"), result["unencodable_bytes"].as_u64().expect("count"));
    assert!(unencodable > 0);
    // The documents chosen: the first ones up to 4,000 bytes of text (here all five).
    let (mut total, mut missing) = (0, 0);
    for (b, m) in doc_bytes.iter().zip(&per_doc) {
        if total >= 4000 {
            break;
        }
        total += b;
        missing += m;
    }
    assert_eq!(doc_bytes.len(), 5);
    assert_eq!((bytes, unencodable), (total - missing, missing));
    let nats = result["nats"].as_f64().expect("nats");
    let bpb = result["bpb"].as_f64().expect("bpb");
    assert!((bpb - nats / (std::f64::consts::LN_2 * bytes as f64)).abs() < 1e-12, "{result}");
}
