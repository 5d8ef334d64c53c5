//! Llama specifics: hyper-parameters from `llama.*` metadata, llama.cpp → Hugging Face tensor
//! names and shapes, the Q/K row (un)permutation, and `config.json` / `generation_config.json`.

use serde_json::{Value as Json, json};

use super::OutDtype;
use super::error::ConvertError;
use super::gguf::{Gguf, Value};

/// Model hyper-parameters read from the GGUF metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaHparams {
    pub hidden_size: u64,
    pub intermediate_size: u64,
    pub num_hidden_layers: u64,
    pub num_attention_heads: u64,
    pub num_key_value_heads: u64,
    pub head_dim: u64,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    pub max_position_embeddings: u64,
    pub vocab_size: u64,
}

impl LlamaHparams {
    /// Reads `llama.*` keys; `vocab_size` falls back to the token list when `llama.vocab_size` is
    /// absent (older exports).
    pub fn from_gguf(g: &Gguf<'_>, n_tokens: usize) -> Result<Self, ConvertError> {
        let arch = req(g, "general.architecture")?;
        let arch = arch.as_str().ok_or_else(|| type_err("general.architecture", "a string", arch))?;
        if arch != "llama" {
            return Err(ConvertError::UnsupportedArchitecture { arch: arch.to_owned() });
        }
        let hidden_size = req_u64(g, "llama.embedding_length")?;
        let num_attention_heads = req_u64(g, "llama.attention.head_count")?;
        let num_key_value_heads = match g.get("llama.attention.head_count_kv") {
            Some(v) => v.as_u64().ok_or_else(|| type_err("llama.attention.head_count_kv", "an unsigned integer", v))?,
            None => num_attention_heads,
        };
        if num_attention_heads == 0 || num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(ConvertError::hparams(format!(
                "{num_attention_heads} attention heads cannot be shared by {num_key_value_heads} key/value heads"
            )));
        }
        let head_dim = match g.get("llama.attention.key_length") {
            Some(v) => v.as_u64().ok_or_else(|| type_err("llama.attention.key_length", "an unsigned integer", v))?,
            None => hidden_size / num_attention_heads,
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(ConvertError::hparams(format!(
                "head dimension {head_dim} must be even and positive for rotary embeddings"
            )));
        }
        let rope_theta = match g.get("llama.rope.freq_base") {
            Some(v) => v.as_f64().ok_or_else(|| type_err("llama.rope.freq_base", "a float", v))?,
            None => 10_000.0,
        };
        let eps_key = "llama.attention.layer_norm_rms_epsilon";
        let eps = req(g, eps_key)?;
        let rms_norm_eps = eps.as_f64().ok_or_else(|| type_err(eps_key, "a float", eps))?;
        let vocab_size = match g.get("llama.vocab_size") {
            Some(v) => v.as_u64().ok_or_else(|| type_err("llama.vocab_size", "an unsigned integer", v))?,
            None => n_tokens as u64,
        };
        Ok(Self {
            hidden_size,
            intermediate_size: req_u64(g, "llama.feed_forward_length")?,
            num_hidden_layers: req_u64(g, "llama.block_count")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rope_theta,
            rms_norm_eps,
            max_position_embeddings: req_u64(g, "llama.context_length")?,
            vocab_size,
        })
    }
}

pub(crate) fn req<'g>(g: &'g Gguf<'_>, key: &str) -> Result<&'g Value, ConvertError> {
    g.get(key).ok_or_else(|| ConvertError::MissingMetadata { key: key.to_owned() })
}

fn req_u64(g: &Gguf<'_>, key: &str) -> Result<u64, ConvertError> {
    let v = req(g, key)?;
    v.as_u64().ok_or_else(|| type_err(key, "an unsigned integer", v))
}

pub(crate) fn type_err(key: &str, expected: &'static str, v: &Value) -> ConvertError {
    ConvertError::MetadataType { key: key.to_owned(), expected, found: v.type_name().to_owned() }
}

/// Which llama.cpp row permutation a tensor carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permutation {
    None,
    /// Q projection, permuted per attention head.
    Query,
    /// K projection, permuted per key/value head.
    Key,
}

/// A llama.cpp tensor name translated to Hugging Face.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HfTensor {
    pub name: String,
    pub permutation: Permutation,
}

/// Maps a llama.cpp tensor name (`blk.3.attn_q.weight`) to its HF Llama name
/// (`model.layers.3.self_attn.q_proj.weight`); `None` for tensors Llama does not have.
pub fn hf_name(gguf_name: &str) -> Option<HfTensor> {
    let plain = |n: &str| Some(HfTensor { name: n.to_owned(), permutation: Permutation::None });
    match gguf_name {
        "token_embd.weight" => return plain("model.embed_tokens.weight"),
        "output_norm.weight" => return plain("model.norm.weight"),
        "output.weight" => return plain("lm_head.weight"),
        _ => {}
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, leaf) = rest.split_once('.')?;
    // Reject "01" or "+1": the HF name must round-trip to exactly this layer index.
    let idx: u64 = layer.parse().ok().filter(|i: &u64| i.to_string() == layer)?;
    let (hf_leaf, permutation) = match leaf {
        "attn_q.weight" => ("self_attn.q_proj.weight", Permutation::Query),
        "attn_k.weight" => ("self_attn.k_proj.weight", Permutation::Key),
        "attn_v.weight" => ("self_attn.v_proj.weight", Permutation::None),
        "attn_output.weight" => ("self_attn.o_proj.weight", Permutation::None),
        "ffn_gate.weight" => ("mlp.gate_proj.weight", Permutation::None),
        "ffn_up.weight" => ("mlp.up_proj.weight", Permutation::None),
        "ffn_down.weight" => ("mlp.down_proj.weight", Permutation::None),
        "attn_norm.weight" => ("input_layernorm.weight", Permutation::None),
        "ffn_norm.weight" => ("post_attention_layernorm.weight", Permutation::None),
        _ => return None,
    };
    Some(HfTensor { name: format!("model.layers.{idx}.{hf_leaf}"), permutation })
}

/// The HF shape every expected tensor must have, given the hyper-parameters.
pub fn expected_shapes(h: &LlamaHparams, tied: bool) -> Vec<(String, Vec<u64>)> {
    let q_rows = h.num_attention_heads * h.head_dim;
    let kv_rows = h.num_key_value_heads * h.head_dim;
    let mut out = vec![
        ("model.embed_tokens.weight".to_owned(), vec![h.vocab_size, h.hidden_size]),
        ("model.norm.weight".to_owned(), vec![h.hidden_size]),
    ];
    if !tied {
        out.push(("lm_head.weight".to_owned(), vec![h.vocab_size, h.hidden_size]));
    }
    for i in 0..h.num_hidden_layers {
        let p = format!("model.layers.{i}");
        out.extend([
            (format!("{p}.self_attn.q_proj.weight"), vec![q_rows, h.hidden_size]),
            (format!("{p}.self_attn.k_proj.weight"), vec![kv_rows, h.hidden_size]),
            (format!("{p}.self_attn.v_proj.weight"), vec![kv_rows, h.hidden_size]),
            (format!("{p}.self_attn.o_proj.weight"), vec![h.hidden_size, q_rows]),
            (format!("{p}.mlp.gate_proj.weight"), vec![h.intermediate_size, h.hidden_size]),
            (format!("{p}.mlp.up_proj.weight"), vec![h.intermediate_size, h.hidden_size]),
            (format!("{p}.mlp.down_proj.weight"), vec![h.hidden_size, h.intermediate_size]),
            (format!("{p}.input_layernorm.weight"), vec![h.hidden_size]),
            (format!("{p}.post_attention_layernorm.weight"), vec![h.hidden_size]),
        ]);
    }
    out
}

/// Applies llama.cpp's `permute(w, n_head)` from `convert_hf_to_gguf.py` to a row-major
/// `rows x cols` matrix: within each head, the rows `[first half | second half]` become
/// interleaved pairs (`reshape(n_head, 2, half, cols).swapaxes(1, 2)`).
///
/// Only needed by tests (to check that [`unpermute_rows`] inverts it); `None` when the rows do
/// not split into `n_head` heads of even size or `data` is not `rows x cols`.
pub fn permute_rows(data: &[f32], rows: usize, cols: usize, n_head: usize) -> Option<Vec<f32>> {
    reorder_rows(data, rows, cols, n_head, |half, i, j| (j * half + i, 2 * i + j))
}

/// Undoes llama.cpp's Q/K permutation: GGUF row `2*i + j` of a head goes back to HF row
/// `j*half + i` (`j` in 0..2, `i` in 0..half, `half = head_dim / 2`). Pass the attention head
/// count for Q and the key/value head count for K.
pub fn unpermute_rows(data: &[f32], rows: usize, cols: usize, n_head: usize) -> Option<Vec<f32>> {
    reorder_rows(data, rows, cols, n_head, |half, i, j| (2 * i + j, j * half + i))
}

/// Copies rows so that, per head, destination row `map(..).1` receives source row `map(..).0`.
fn reorder_rows(
    data: &[f32],
    rows: usize,
    cols: usize,
    n_head: usize,
    map: impl Fn(usize, usize, usize) -> (usize, usize),
) -> Option<Vec<f32>> {
    if n_head == 0 || !rows.is_multiple_of(2 * n_head) || rows.checked_mul(cols)? != data.len() {
        return None;
    }
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    let mut out = vec![0f32; data.len()];
    for h in 0..n_head {
        for i in 0..half {
            for j in 0..2 {
                let (src, dst) = map(half, i, j);
                let src = (h * head_dim + src) * cols;
                let dst = (h * head_dim + dst) * cols;
                out.get_mut(dst..dst + cols)?.copy_from_slice(data.get(src..src + cols)?);
            }
        }
    }
    Some(out)
}

/// Token ids that config.json and generation_config.json repeat.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialIds {
    pub bos: Option<u64>,
    pub eos: Option<u64>,
    pub pad: Option<u64>,
}

/// `config.json` for `LlamaForCausalLM`.
pub fn config_json(h: &LlamaHparams, ids: &SpecialIds, tied: bool, dtype: OutDtype) -> Json {
    json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": h.hidden_size,
        "intermediate_size": h.intermediate_size,
        "num_hidden_layers": h.num_hidden_layers,
        "num_attention_heads": h.num_attention_heads,
        "num_key_value_heads": h.num_key_value_heads,
        "head_dim": h.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": h.max_position_embeddings,
        "rms_norm_eps": h.rms_norm_eps,
        "rope_theta": h.rope_theta,
        "rope_scaling": null,
        "attention_bias": false,
        "attention_dropout": 0.0,
        "mlp_bias": false,
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "use_cache": true,
        "vocab_size": h.vocab_size,
        "tie_word_embeddings": tied,
        "bos_token_id": ids.bos,
        "eos_token_id": ids.eos,
        "pad_token_id": ids.pad,
        "torch_dtype": dtype.torch_name(),
    })
}

/// `generation_config.json`: only the special ids, so `generate()` stops at the right token.
pub fn generation_config_json(ids: &SpecialIds) -> Json {
    json!({
        "bos_token_id": ids.bos,
        "eos_token_id": ids.eos,
        "pad_token_id": ids.pad,
    })
}
