//! Rebuilds a Hugging Face `tokenizer.json` (byte-level BPE) and `tokenizer_config.json` from the
//! `tokenizer.ggml.*` metadata of a GGUF file.

use std::collections::HashSet;

use serde_json::{Map, Value as Json, json};

use super::error::ConvertError;
use super::gguf::{Gguf, Value};
use super::llama::{SpecialIds, req, type_err};

/// llama.cpp's `llama_token_type`: control tokens become HF special added tokens, user-defined
/// ones plain added tokens (so they are matched before BPE, like llama.cpp does).
const TOKEN_TYPE_USER_DEFINED: u64 = 4;
const TOKEN_TYPE_CONTROL: u64 = 3;

/// The vocabulary read from GGUF metadata.
#[derive(Clone, Debug)]
pub struct GgufVocab {
    pub tokens: Vec<String>,
    pub merges: Vec<(String, String)>,
    /// `tokenizer.ggml.token_type`, one per token (1 = normal when absent).
    pub token_types: Vec<u64>,
    pub pre: String,
    pub ids: SpecialIds,
    pub unk: Option<u64>,
    pub chat_template: Option<String>,
}

impl GgufVocab {
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Self, ConvertError> {
        let model = req(g, "tokenizer.ggml.model")?;
        let model = model.as_str().ok_or_else(|| type_err("tokenizer.ggml.model", "a string", model))?;
        if model != "gpt2" {
            return Err(ConvertError::tokenizer(format!(
                "tokenizer.ggml.model is `{model}`, not the byte-level BPE `gpt2`"
            )));
        }
        let tokens = string_array(g, "tokenizer.ggml.tokens")?;
        if tokens.is_empty() {
            return Err(ConvertError::tokenizer("tokenizer.ggml.tokens is empty"));
        }
        let mut seen = HashSet::with_capacity(tokens.len());
        for (id, t) in tokens.iter().enumerate() {
            if !seen.insert(t.as_str()) {
                return Err(ConvertError::tokenizer(format!("token {t:?} (id {id}) appears twice in the vocabulary")));
            }
        }
        let merges = string_array(g, "tokenizer.ggml.merges")?
            .into_iter()
            .enumerate()
            .map(|(i, m)| match m.split_once(' ') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(' ') => Ok((a.to_owned(), b.to_owned())),
                _ => Err(ConvertError::tokenizer(format!("merge {i} ({m:?}) is not two tokens separated by a space"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let token_types = match g.get("tokenizer.ggml.token_type") {
            None => vec![1; tokens.len()],
            Some(v) => {
                let arr =
                    v.as_array().ok_or_else(|| type_err("tokenizer.ggml.token_type", "an array of integers", v))?;
                let types: Vec<u64> = arr
                    .iter()
                    .map(|x| x.as_u64().ok_or_else(|| type_err("tokenizer.ggml.token_type", "an array of integers", x)))
                    .collect::<Result<_, _>>()?;
                if types.len() != tokens.len() {
                    return Err(ConvertError::tokenizer(format!(
                        "{} token types for {} tokens",
                        types.len(),
                        tokens.len()
                    )));
                }
                types
            }
        };
        let pre = match g.get("tokenizer.ggml.pre") {
            None => "default".to_owned(),
            Some(v) => v.as_str().ok_or_else(|| type_err("tokenizer.ggml.pre", "a string", v))?.to_owned(),
        };
        let id = |key: &str| -> Result<Option<u64>, ConvertError> {
            match g.get(key) {
                None => Ok(None),
                Some(v) => {
                    let id = v.as_u64().ok_or_else(|| type_err(key, "an unsigned integer", v))?;
                    if id >= tokens.len() as u64 {
                        return Err(ConvertError::tokenizer(format!(
                            "{key} is {id}, outside the vocabulary of {}",
                            tokens.len()
                        )));
                    }
                    Ok(Some(id))
                }
            }
        };
        let ids = SpecialIds {
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
        };
        let unk = id("tokenizer.ggml.unknown_token_id")?;
        let chat_template = match g.get("tokenizer.chat_template") {
            None => None,
            Some(v) => Some(v.as_str().ok_or_else(|| type_err("tokenizer.chat_template", "a string", v))?.to_owned()),
        };
        Ok(Self { tokens, merges, token_types, pre, ids, unk, chat_template })
    }

    fn token(&self, id: Option<u64>) -> Option<&str> {
        id.and_then(|i| usize::try_from(i).ok()).and_then(|i| self.tokens.get(i)).map(String::as_str)
    }

    pub fn n_special(&self) -> usize {
        self.token_types.iter().filter(|&&t| t == TOKEN_TYPE_CONTROL).count()
    }
}

fn string_array(g: &Gguf<'_>, key: &str) -> Result<Vec<String>, ConvertError> {
    let v = req(g, key)?;
    let arr = v.as_array().ok_or_else(|| type_err(key, "an array of strings", v))?;
    arr.iter()
        .map(|x| match x {
            Value::Str(s) => Ok(s.clone()),
            other => Err(type_err(key, "an array of strings", other)),
        })
        .collect()
}

/// The pre-tokenizer for llama.cpp's `tokenizer.ggml.pre` value.
fn pre_tokenizer(pre: &str) -> Result<Json, ConvertError> {
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    match pre {
        // llama.cpp gives these three the same split: each digit alone, then the GPT-2 regex;
        // this is also the Sequence in HF's own SmolLM2 / StarCoder tokenizer.json.
        "smollm" | "starcoder" | "refact" => Ok(json!({
            "type": "Sequence",
            "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level],
        })),
        "gpt-2" | "gpt2" => Ok(byte_level),
        other => Err(ConvertError::tokenizer(format!(
            "pre-tokenizer `{other}` is not supported (known: smollm, starcoder, refact, gpt-2)"
        ))),
    }
}

/// The HF `tokenizer.json` document.
pub fn tokenizer_json(v: &GgufVocab) -> Result<Json, ConvertError> {
    let mut vocab = Map::with_capacity(v.tokens.len());
    for (id, t) in v.tokens.iter().enumerate() {
        vocab.insert(t.clone(), json!(id));
    }
    let added: Vec<Json> = v
        .tokens
        .iter()
        .zip(&v.token_types)
        .enumerate()
        .filter(|(_, (_, ty))| **ty == TOKEN_TYPE_CONTROL || **ty == TOKEN_TYPE_USER_DEFINED)
        .map(|(id, (t, ty))| {
            json!({
                "id": id,
                "content": t,
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": *ty == TOKEN_TYPE_CONTROL,
            })
        })
        .collect();
    let merges: Vec<Json> = v.merges.iter().map(|(a, b)| json!([a, b])).collect();
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer(&v.pre)?,
        // Offsets only; kept as in HF's byte-level tokenizers so offsets match theirs.
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE",
            "dropout": null,
            // No unk: a byte symbol missing from the vocabulary is dropped rather than turned into
            // `<|endoftext|>`, which would split a training document.
            "unk_token": null,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": false,
            "vocab": vocab,
            "merges": merges,
        },
    }))
}

/// The HF `tokenizer_config.json` document.
pub fn tokenizer_config_json(v: &GgufVocab, model_max_length: u64) -> Json {
    let mut cfg = Map::new();
    cfg.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
    cfg.insert("model_max_length".into(), json!(model_max_length));
    cfg.insert("clean_up_tokenization_spaces".into(), json!(false));
    for (key, id) in
        [("bos_token", v.ids.bos), ("eos_token", v.ids.eos), ("pad_token", v.ids.pad), ("unk_token", v.unk)]
    {
        if let Some(t) = v.token(id) {
            cfg.insert(key.into(), json!(t));
        }
    }
    if let Some(t) = &v.chat_template {
        cfg.insert("chat_template".into(), json!(t));
    }
    Json::Object(cfg)
}

/// Loads the written file with the `tokenizers` crate, the engine cptc itself tokenizes with, and
/// checks that every id survived.
pub(crate) fn verify(path: &std::path::Path, v: &GgufVocab) -> Result<(), ConvertError> {
    let tok = tokenizers::Tokenizer::from_file(path)
        .map_err(|e| ConvertError::tokenizer(format!("the written tokenizer.json does not load: {e}")))?;
    let n = tok.get_vocab_size(true);
    if n != v.tokens.len() {
        return Err(ConvertError::tokenizer(format!(
            "the written tokenizer.json has {n} tokens, the GGUF {}",
            v.tokens.len()
        )));
    }
    Ok(())
}
