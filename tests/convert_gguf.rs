//! Tests of `cptc::convert`: dequantization, the Q/K un-permutation, malformed GGUF files
//! (snapshotted diagnostics), a tiny synthetic model end to end, and the real SmolLM2 GGUF
//! checked against `transformers` by `tests/python/check_import.py`.

use std::path::{Path, PathBuf};
use std::process::Command;

use cptc::convert::{
    ConvertError, GgmlType, OutDtype, convert_gguf, dequantize, import_gguf, parse_gguf, permute_rows, unpermute_rows,
    write_model_dir,
};
use half::{bf16, f16};
use miette::{GraphicalReportHandler, GraphicalTheme};

// ---------------------------------------------------------------- GGUF builder

/// ggml type ids used below.
const T_F32: u32 = 0;
const T_Q5_K: u32 = 13;

/// Writes GGUF bytes by hand so each test controls every field (including wrong ones).
struct Builder {
    magic: [u8; 4],
    version: u32,
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    data: Vec<u8>,
}

const ALIGN: usize = 32;

impl Builder {
    fn new() -> Self {
        Self { magic: *b"GGUF", version: 3, kv: Vec::new(), n_kv: 0, infos: Vec::new(), n_tensors: 0, data: Vec::new() }
    }

    fn key(&mut self, key: &str, ty: u32) {
        push_str(&mut self.kv, key);
        self.kv.extend(ty.to_le_bytes());
        self.n_kv += 1;
    }
    fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        self.key(key, 8);
        push_str(&mut self.kv, v);
        self
    }
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.key(key, 4);
        self.kv.extend(v.to_le_bytes());
        self
    }
    fn kv_f32(&mut self, key: &str, v: f32) -> &mut Self {
        self.key(key, 6);
        self.kv.extend(v.to_le_bytes());
        self
    }
    fn kv_strs(&mut self, key: &str, v: &[&str]) -> &mut Self {
        self.key(key, 9);
        self.kv.extend(8u32.to_le_bytes());
        self.kv.extend((v.len() as u64).to_le_bytes());
        for s in v {
            push_str(&mut self.kv, s);
        }
        self
    }
    fn kv_i32s(&mut self, key: &str, v: &[i32]) -> &mut Self {
        self.key(key, 9);
        self.kv.extend(5u32.to_le_bytes());
        self.kv.extend((v.len() as u64).to_le_bytes());
        for x in v {
            self.kv.extend(x.to_le_bytes());
        }
        self
    }

    /// Adds a tensor; `dims` in ggml order (columns first).
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, bytes: &[u8]) -> &mut Self {
        while !self.data.len().is_multiple_of(ALIGN) {
            self.data.push(0);
        }
        push_str(&mut self.infos, name);
        self.infos.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend(d.to_le_bytes());
        }
        self.infos.extend(ty.to_le_bytes());
        self.infos.extend((self.data.len() as u64).to_le_bytes());
        self.data.extend(bytes);
        self.n_tensors += 1;
        self
    }

    fn f32_tensor(&mut self, name: &str, dims: &[u64], values: &[f32]) -> &mut Self {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, T_F32, &bytes)
    }

    fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(self.magic);
        out.extend(self.version.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        out.extend(&self.infos);
        while !out.len().is_multiple_of(ALIGN) {
            out.push(0);
        }
        out.extend(&self.data);
        out
    }
}

fn push_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend((s.len() as u64).to_le_bytes());
    buf.extend(s.as_bytes());
}

/// A one-layer Llama: hidden 8, 2 heads of 4, 1 KV head, FFN 16, 8-token byte-level vocabulary.
/// Every weight value encodes its GGUF row (`row * 100 + col`) so layouts can be checked.
fn tiny_model() -> Builder {
    let (hidden, ffn, vocab, kv_rows) = (8u64, 16u64, 8u64, 4u64);
    let mut b = Builder::new();
    b.kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", 1)
        .kv_u32("llama.context_length", 64)
        .kv_u32("llama.embedding_length", hidden as u32)
        .kv_u32("llama.feed_forward_length", ffn as u32)
        .kv_u32("llama.attention.head_count", 2)
        .kv_u32("llama.attention.head_count_kv", 1)
        .kv_f32("llama.rope.freq_base", 100000.0)
        .kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        .kv_u32("llama.vocab_size", vocab as u32)
        .kv_str("tokenizer.ggml.model", "gpt2")
        .kv_str("tokenizer.ggml.pre", "smollm")
        .kv_strs("tokenizer.ggml.tokens", &["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "Ġ", "ab", "Ġa"])
        .kv_i32s("tokenizer.ggml.token_type", &[3, 3, 3, 1, 1, 1, 1, 1])
        .kv_strs("tokenizer.ggml.merges", &["a b", "Ġ a"])
        .kv_u32("tokenizer.ggml.bos_token_id", 1)
        .kv_u32("tokenizer.ggml.eos_token_id", 2)
        .kv_u32("tokenizer.ggml.padding_token_id", 2)
        .kv_str("tokenizer.chat_template", "{{ messages }}");
    let m = |rows: u64, cols: u64| -> Vec<f32> {
        (0..rows).flat_map(|r| (0..cols).map(move |c| (r * 100 + c) as f32)).collect()
    };
    b.f32_tensor("token_embd.weight", &[hidden, vocab], &m(vocab, hidden))
        .f32_tensor("output_norm.weight", &[hidden], &m(1, hidden))
        .f32_tensor("blk.0.attn_norm.weight", &[hidden], &m(1, hidden))
        .f32_tensor("blk.0.ffn_norm.weight", &[hidden], &m(1, hidden))
        .f32_tensor("blk.0.attn_q.weight", &[hidden, hidden], &m(hidden, hidden))
        .f32_tensor("blk.0.attn_k.weight", &[hidden, kv_rows], &m(kv_rows, hidden))
        .f32_tensor("blk.0.attn_v.weight", &[hidden, kv_rows], &m(kv_rows, hidden))
        .f32_tensor("blk.0.attn_output.weight", &[hidden, hidden], &m(hidden, hidden))
        .f32_tensor("blk.0.ffn_gate.weight", &[hidden, ffn], &m(ffn, hidden))
        .f32_tensor("blk.0.ffn_up.weight", &[hidden, ffn], &m(ffn, hidden))
        .f32_tensor("blk.0.ffn_down.weight", &[ffn, hidden], &m(hidden, ffn));
    b
}

fn render(e: &ConvertError) -> String {
    let mut s = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(80)
        .render_report(&mut s, e)
        .unwrap();
    s
}

fn parse_err(bytes: &[u8]) -> ConvertError {
    parse_gguf(bytes).expect_err("the file should be refused")
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

// ---------------------------------------------------------------- dequantization

#[test]
fn q8_0_block_is_scale_times_int8() {
    let mut block = f16::from_f32(0.5).to_le_bytes().to_vec();
    block.extend((-16i8..16).map(|q| q as u8));
    let got = dequantize(GgmlType::Q8_0, &block).unwrap();
    let want: Vec<f32> = (-16..16).map(|q| 0.5 * q as f32).collect();
    assert_eq!(got, want);
}

#[test]
fn q4_0_low_nibbles_are_first_half() {
    // byte k: low nibble k (element k), high nibble 15-k (element 16+k); x = d * (q - 8).
    let mut block = f16::from_f32(2.0).to_le_bytes().to_vec();
    block.extend((0u8..16).map(|k| k | ((15 - k) << 4)));
    let got = dequantize(GgmlType::Q4_0, &block).unwrap();
    let mut want: Vec<f32> = (0..16).map(|k| 2.0 * (k as f32 - 8.0)).collect();
    want.extend((0..16).map(|k| 2.0 * ((15 - k) as f32 - 8.0)));
    assert_eq!(got, want);
    assert_eq!((got[0], got[15], got[16], got[31]), (-16.0, 14.0, 14.0, -16.0));
}

#[test]
fn q4_1_block_is_scale_times_nibble_plus_min() {
    let mut block = f16::from_f32(0.25).to_le_bytes().to_vec();
    block.extend(f16::from_f32(-1.0).to_le_bytes());
    block.extend((0u8..16).map(|k| k | ((15 - k) << 4)));
    let got = dequantize(GgmlType::Q4_1, &block).unwrap();
    let mut want: Vec<f32> = (0..16).map(|k| 0.25 * k as f32 - 1.0).collect();
    want.extend((0..16).map(|k| 0.25 * (15 - k) as f32 - 1.0));
    assert_eq!(got, want);
    assert_eq!((got[0], got[15], got[16]), (-1.0, 2.75, 2.75));
}

#[test]
fn float_types_and_several_blocks() {
    let vals = [1.5f32, -2.25, 0.0, 65504.0];
    let f32_bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(dequantize(GgmlType::F32, &f32_bytes).unwrap(), vals);
    let f16_bytes: Vec<u8> = vals.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect();
    assert_eq!(dequantize(GgmlType::F16, &f16_bytes).unwrap(), vals);
    let bf16_bytes: Vec<u8> =
        [1.5f32, -2.25, 0.0, 3.0e38].iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect();
    let got = dequantize(GgmlType::Bf16, &bf16_bytes).unwrap();
    assert_eq!(&got[..3], &[1.5, -2.25, 0.0]);
    assert_eq!(got[3], bf16::from_f32(3.0e38).to_f32());

    // 3000 Q8_0 blocks: crosses the parallel chunking boundary; block b has scale b % 1000
    // (exact in f16).
    let mut data = Vec::new();
    for b in 0..3000u32 {
        data.extend(f16::from_f32((b % 1000) as f32).to_le_bytes());
        data.extend([1u8; 32]);
    }
    let got = dequantize(GgmlType::Q8_0, &data).unwrap();
    assert_eq!(got.len(), 3000 * 32);
    assert!(got.chunks(32).enumerate().all(|(b, c)| c.iter().all(|&x| x == (b % 1000) as f32)));
    // A partial block is refused, not read past.
    assert!(dequantize(GgmlType::Q4_1, &data[..19]).is_none());
}

// ---------------------------------------------------------------- Q/K permutation

#[test]
fn unpermute_hand_checked_4x2() {
    // One head of 4 rows: llama.cpp interleaves the halves [r0 r1 | r2 r3] into r0 r2 r1 r3, so
    // GGUF rows g0 g1 g2 g3 are HF rows g0 g2 g1 g3.
    let gguf = [0.0, 0.1, 1.0, 1.1, 2.0, 2.1, 3.0, 3.1];
    let hf = unpermute_rows(&gguf, 4, 2, 1).unwrap();
    assert_eq!(hf, vec![0.0, 0.1, 2.0, 2.1, 1.0, 1.1, 3.0, 3.1]);
    // Head dim 6: GGUF a0 b0 a1 b1 a2 b2 → HF a0 a1 a2 b0 b1 b2.
    let hf6 = unpermute_rows(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 6, 1, 1).unwrap();
    assert_eq!(hf6, vec![0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
    // Two heads permute independently.
    let hf2 = unpermute_rows(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], 8, 1, 2).unwrap();
    assert_eq!(hf2, vec![0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
}

#[test]
fn permute_then_unpermute_is_identity() {
    for (rows, cols, heads) in [(24, 5, 3), (24, 5, 1), (576, 3, 9), (192, 2, 3)] {
        let m: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let p = permute_rows(&m, rows, cols, heads).unwrap();
        assert_ne!(p, m, "{rows}x{cols}/{heads} should move rows");
        assert_eq!(unpermute_rows(&p, rows, cols, heads).unwrap(), m);
        assert_eq!(permute_rows(&unpermute_rows(&m, rows, cols, heads).unwrap(), rows, cols, heads).unwrap(), m);
    }
    // Rows that do not split into heads of even size, and wrong lengths, are refused.
    assert!(unpermute_rows(&[0.0; 6], 6, 1, 2).is_none());
    assert!(unpermute_rows(&[0.0; 7], 4, 2, 1).is_none());
    assert!(unpermute_rows(&[0.0; 8], 4, 2, 0).is_none());
}

// ---------------------------------------------------------------- malformed input

#[test]
fn bad_magic() {
    let mut b = tiny_model();
    b.magic = *b"GGML";
    insta::assert_snapshot!("bad_magic", render(&parse_err(&b.build())));
}

#[test]
fn unsupported_version() {
    let mut b = tiny_model();
    b.version = 2;
    insta::assert_snapshot!("unsupported_version", render(&parse_err(&b.build())));
}

#[test]
fn truncated_header() {
    let bytes = tiny_model().build();
    insta::assert_snapshot!("truncated_header", render(&parse_err(&bytes[..12])));
}

#[test]
fn truncated_tensor_data() {
    let bytes = tiny_model().build();
    let err = parse_err(&bytes[..bytes.len() - 100]);
    insta::assert_snapshot!("truncated_tensor_data", render(&err));
}

#[test]
fn absurd_tensor_count() {
    let mut b = tiny_model();
    b.n_tensors = 1 << 60;
    insta::assert_snapshot!("absurd_tensor_count", render(&parse_err(&b.build())));
}

#[test]
fn absurd_string_length() {
    let mut bytes = Builder::new().kv_str("general.architecture", "llama").build();
    // The key's length field sits right after the 24-byte header.
    bytes[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
    insta::assert_snapshot!("absurd_string_length", render(&parse_err(&bytes)));
}

#[test]
fn absurd_array_length() {
    let mut b = Builder::new();
    b.key("tokenizer.ggml.tokens", 9);
    b.kv.extend(8u32.to_le_bytes());
    b.kv.extend(u64::MAX.to_le_bytes());
    insta::assert_snapshot!("absurd_array_length", render(&parse_err(&b.build())));
}

#[test]
fn unsupported_tensor_type() {
    let mut b = tiny_model();
    b.tensor("blk.0.ffn_extra.weight", &[256], T_Q5_K, &[0; 176]);
    insta::assert_snapshot!("unsupported_tensor_type", render(&parse_err(&b.build())));
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = tiny_model().build();
    assert!(parse_gguf(&bytes).is_ok());
    for len in 0..bytes.len() {
        assert!(parse_gguf(&bytes[..len]).is_err(), "prefix of {len} bytes parsed");
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let bytes = tiny_model().build();
    for pos in 0..bytes.len() {
        for flip in [0xffu8, 0x80, 0x01] {
            let mut b = bytes.clone();
            b[pos] ^= flip;
            if let Ok(g) = parse_gguf(&b) {
                let _ = convert_gguf(&g, OutDtype::F32);
            }
        }
    }
}

// ---------------------------------------------------------------- synthetic model end to end

#[test]
fn tiny_model_converts_to_hf_layout() {
    let bytes = tiny_model().build();
    let g = parse_gguf(&bytes).unwrap();
    let c = convert_gguf(&g, OutDtype::F32).unwrap();
    assert!(c.tied);
    assert_eq!(c.tensors.len(), 11);
    let t = |name: &str| c.tensors.iter().find(|t| t.name == name).unwrap();
    assert_eq!(t("model.embed_tokens.weight").shape, vec![8, 8]);
    assert_eq!(t("model.layers.0.mlp.down_proj.weight").shape, vec![8, 16]);
    assert_eq!(t("model.layers.0.self_attn.k_proj.weight").shape, vec![4, 8]);
    let first_col = |name: &str| -> Vec<f32> {
        let v = f32s(&t(name).data);
        v.chunks(8).map(|r| r[0]).collect()
    };
    // Values are `gguf_row * 100`: K (1 KV head of 4) and Q (2 heads of 4) are un-permuted, V not.
    assert_eq!(first_col("model.layers.0.self_attn.k_proj.weight"), vec![0.0, 200.0, 100.0, 300.0]);
    assert_eq!(
        first_col("model.layers.0.self_attn.q_proj.weight"),
        vec![0.0, 200.0, 100.0, 300.0, 400.0, 600.0, 500.0, 700.0]
    );
    assert_eq!(first_col("model.layers.0.self_attn.v_proj.weight"), vec![0.0, 100.0, 200.0, 300.0]);
    assert_eq!(c.config["num_key_value_heads"], 1);
    assert_eq!(c.config["rms_norm_eps"], 1e-5);
    assert_eq!(c.config["rope_theta"], 100000.0);
    assert_eq!(c.config["tie_word_embeddings"], true);
    assert_eq!(c.tokenizer_config["bos_token"], "<|im_start|>");
    assert_eq!(c.tokenizer_config["chat_template"], "{{ messages }}");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested").join("tiny");
    write_model_dir(&c, &out).unwrap();
    let mut names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(
        names,
        ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    );
    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let enc = tok.encode("ab a<|im_end|>", false).unwrap();
    assert_eq!(enc.get_ids(), &[6, 7, 2]);
    assert_eq!(enc.get_tokens(), &["ab", "Ġa", "<|im_end|>"]);
    let st = std::fs::read(out.join("model.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&st).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");

    // Writing again over a finished model is refused and leaves it intact.
    // (Snapshot with a fixed path: a temp path's length would change the line wrapping.)
    match write_model_dir(&c, &out).unwrap_err() {
        ConvertError::OutExists { path } => assert_eq!(path, out),
        other => panic!("expected OutExists, got {other:?}"),
    }
    let err = ConvertError::OutExists { path: "models/tiny".into() };
    insta::assert_snapshot!("out_exists", render(&err));
    assert!(out.join("model.safetensors").exists());
}

#[test]
fn failed_import_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("bad.gguf");
    let mut bytes = tiny_model().build();
    bytes.truncate(bytes.len() - 4);
    std::fs::write(&gguf, &bytes).unwrap();
    let out = dir.path().join("model");
    assert!(matches!(import_gguf(&gguf, &out, OutDtype::F16), Err(ConvertError::TruncatedTensor { .. })));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "only the input file should remain");

    // A relative path keeps the snapshot independent of where temp dirs live.
    let err = import_gguf(Path::new("no/such/dir/model.gguf"), &out, OutDtype::F16).unwrap_err();
    assert!(matches!(err, ConvertError::Io { .. }));
    insta::assert_snapshot!("io_missing_file", render(&err));
    assert!(!out.exists());
}

// ---------------------------------------------------------------- the real SmolLM2 file

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn require(path: &Path, what: &str) {
    assert!(path.exists(), "{what} is missing at {}: run `scripts/setup.sh` first", path.display());
}

/// Imports the real SmolLM2-135M-Instruct Q4_1 GGUF and checks it with `transformers`: tensor and
/// parameter counts, tokenizer ids equal in Python and Rust, and perplexity on Austen (a run
/// without the Q/K un-permutation scores several times worse, so this guards the layout).
#[test]
fn real_smollm2_import_matches_reference_figures() {
    let gguf = repo().join("data/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    require(&gguf, "the SmolLM2 GGUF");
    let corpus = repo().join("data/corpora/austen.jsonl");
    require(&corpus, "the Austen corpus");
    let python = repo().join(".venv/bin/python");
    require(&python, "the Python venv");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("smollm2");
    let report = import_gguf(&gguf, &out, OutDtype::F32).unwrap();
    eprintln!("import: {report:?}");
    assert_eq!(report.n_tensors, 272);
    assert_eq!(report.n_params, 134_515_008);
    assert_eq!(report.vocab_size, 49_152);
    assert!(report.tied_embeddings);
    assert_eq!(report.n_merges, 48_900);

    let run = Command::new(&python)
        .arg(repo().join("tests/python/check_import.py"))
        .arg(&out)
        .arg("--corpus")
        .arg(&corpus)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "check_import.py failed:\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap();
    eprintln!("check_import.py: {line}");
    let figures: serde_json::Value = serde_json::from_str(line).unwrap();

    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let sample = figures["sample"].as_str().unwrap();
    let rust_ids: Vec<u64> = tok.encode(sample, false).unwrap().get_ids().iter().map(|&i| u64::from(i)).collect();
    let py_ids: Vec<u64> = serde_json::from_value(figures["ids"].clone()).unwrap();
    assert_eq!(rust_ids, py_ids);
    let ids32: Vec<u32> = py_ids.iter().map(|&i| i as u32).collect();
    assert_eq!(tok.decode(&ids32, false).unwrap(), sample, "byte-level round trip");

    // `ppl` pools 4 windows of 256 tokens around the middle of Pride and Prejudice (DATA.md:
    // 38.8 for one window; 41 pooled here). Without the Q/K un-permutation it is about 190.
    let ppl = figures["ppl"].as_f64().unwrap();
    let shuffled = figures["ppl_shuffled"].as_f64().unwrap();
    assert!((25.0..60.0).contains(&ppl), "perplexity {ppl} outside 25..60");
    assert!(shuffled > 3.0 * ppl, "shuffled perplexity {shuffled} not > 3 x {ppl}");
}
