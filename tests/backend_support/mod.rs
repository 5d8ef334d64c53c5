//! Shared helpers of the backend tests: the cached SmolLM2 import, the Python reference runner,
//! tiny random configs and tensor comparisons.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[path = "../py_support/mod.rs"]
mod py;

use cptc_torch::backend::{Llama, LlamaConfig};
use serde_json::Value;
use tch::{Kind, Tensor};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One intra-op thread: two collapse on the shared 2-core machines.
pub fn init() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| cptc_torch::backend::set_num_threads(1));
}

/// SmolLM2-135M imported from the GGUF in float32, cached under target/test-models.
pub fn smollm2() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = root().join("target/test-models/smollm2-135m-f32");
        if dir.join("model.safetensors").is_file() {
            return dir;
        }
        let gguf = root().join("data/models/SmolLM2-135M-Instruct.Q4_1.gguf");
        let tmp = root().join(format!("target/test-models/.smollm2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.parent().unwrap()).unwrap();
        cptc::convert::import_gguf(&gguf, &tmp, cptc::convert::OutDtype::F32).unwrap();
        // Another test process may have won the race; either copy is complete.
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        dir
    })
    .clone()
}

/// Runs tests/python/backend_ref.py's subcommand (served: one import per test binary) and
/// parses the JSON line it prints.
pub fn python(args: &[&str]) -> Value {
    py::call("backend_ref", args)
}

/// A small Llama config (GQA 4:2, head_dim 8).
pub fn tiny_config(vocab: i64, tied: bool) -> LlamaConfig {
    let v = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": tied,
        "max_position_embeddings": 256,
    });
    LlamaConfig::from_value(v, Path::new("<tiny>")).unwrap()
}

pub fn tiny_model(vocab: i64, tied: bool, seed: u64) -> Llama {
    Llama::random(tiny_config(vocab, tied), seed, tch::Device::Cpu).unwrap()
}

/// Deterministic token ids (an LCG), `rows` sequences of `len`.
pub fn ids(rows: usize, len: usize, vocab: i64, seed: u64) -> Vec<Vec<i64>> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..rows)
        .map(|_| {
            (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((x >> 33) % vocab as u64) as i64
                })
                .collect()
        })
        .collect()
}

pub fn to_vec(t: &Tensor) -> Vec<f32> {
    let t = t.to_kind(Kind::Float).contiguous().view([-1]);
    Vec::<f32>::try_from(&t).unwrap()
}

/// Reads one tensor from a safetensors file as float32 values and shape.
pub fn read_tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let v = st.tensor(name).unwrap();
    assert_eq!(v.dtype(), safetensors::Dtype::F32, "{name}");
    let data = v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    (v.shape().to_vec(), data)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Bit patterns of every parameter, for bit-identity checks.
pub fn param_bits(model: &Llama) -> Vec<(String, Vec<u32>)> {
    model.parameters().iter().map(|(n, t)| (n.clone(), to_vec(t).iter().map(|x| x.to_bits()).collect())).collect()
}

pub fn write_ids(path: &Path, ids: &[Vec<i64>]) {
    std::fs::write(path, serde_json::to_string(ids).unwrap()).unwrap();
}
