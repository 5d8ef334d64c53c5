//! The hf_model stage: a user's Hugging Face folder as an artifact of its own.
//!
//! The artifact records no path of this machine and outlives the folder moving; the files'
//! content is already part of the key (the stage's files). Weights are hard-linked (copied
//! across file systems), small files copied, so an editor rewriting `config.json` in place
//! cannot change a published artifact. Symlinks (the Hugging Face cache is made of them) are
//! followed.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::{StageCtx, StageFailure};

/// v2: the folder's files linked into the artifact, not its path recorded.
/// v3: a config the engine cannot load, or a tokenizer with ids past its `vocab_size`, is
/// refused here, naming the user's files.
pub const VERSION: u64 = 3;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    /// The built-in engine reads this model (an eval, a builtin train): its architecture is
    /// checked here. Only FSDP trainings read it: any architecture transformers has is fine.
    #[serde(skip_serializing_if = "is_true")]
    pub builtin: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    const LINK_FROM: u64 = 16 << 20;
    let model = ctx.out.join("model");
    fs_err::create_dir_all(&model)?;
    for file in ctx.files {
        let Some(name) = file.file_name() else { continue };
        let real = fs_err::canonicalize(file)?;
        let big = std::fs::metadata(&real).is_ok_and(|m| m.len() >= LINK_FROM);
        let to = model.join(name);
        if !(big && std::fs::hard_link(&real, &to).is_ok()) {
            fs_err::copy(&real, &to)?;
        }
    }
    if !model.join("config.json").is_file() {
        return Err(StageFailure::input(
            format!(
                "{} has no config.json",
                ctx.files.first().and_then(|f| f.parent()).unwrap_or(Path::new("?")).display()
            ),
            Some("a `model` block's `hf` must be a Hugging Face model folder (config.json, model.safetensors, tokenizer.json)".into()),
        ));
    }
    check_model(ctx.files, &model, p.builtin)?;
    Ok(Value::Null)
}

/// The config must be one the engine loads, and every id the tokenizer can give must have an
/// embedding row: a tokenizer from another model would otherwise tokenize and cache fine and
/// fail (or read garbage rows) only in training. Names the user's files, not the artifact's.
fn check_model(files: &[std::path::PathBuf], model: &Path, builtin: bool) -> Result<(), StageFailure> {
    let user = |name: &str| {
        files.iter().find(|f| f.file_name().is_some_and(|n| n == name)).map_or_else(|| model.join(name), Clone::clone)
    };
    let config: Value = super::read_json(&model.join("config.json"))?;
    // The engine reads this config at every train and eval: refused here, an error names the
    // user's file (not the store's copy) before anything is built on it.
    if let Err(e) = crate::backend::LlamaConfig::from_value(config.clone(), &user("config.json"))
        && builtin
    {
        return Err(match e {
            crate::backend::BackendError::Unsupported { feature } => StageFailure::input(
                format!(
                    "{} describes a model the built-in engine does not support: {feature}",
                    user("config.json").display()
                ),
                Some(
                    "it implements Llama, Mistral, Qwen2, Qwen3, OLMo 2, Gemma 2 and Gemma 3 (text) decoders (sliding windows too) with default, Llama 3, linear, dynamic or YaRN RoPE; \
                     `engine = fsdp` trains any architecture transformers has (its evaluation then runs during training)"
                        .into(),
                ),
            ),
            other => StageFailure::of(other),
        });
    }
    let tokenizer_path = model.join("tokenizer.json");
    if !tokenizer_path.is_file() {
        return Ok(()); // a model to train says so itself (train needs its tokenizer)
    }
    let Some(vocab_size) = config.get("vocab_size").and_then(Value::as_u64) else {
        return Err(StageFailure::input(
            format!("{} has no `vocab_size`", user("config.json").display()),
            Some("a Hugging Face model config gives its embedding rows as `vocab_size`".into()),
        ));
    };
    // Loaded with both engines, as the tokenize stages after this one load it: they then
    // find it loaded (`Encoder::shared`).
    let tokenizer = crate::data::tokenize::load_tokenizer(&tokenizer_path).map_err(|e| {
        let reason = match e {
            crate::data::DataError::Tokenizer { message, .. } => message,
            other => other.to_string(),
        };
        StageFailure::input(format!("cannot read the tokenizer {}: {reason}", user("tokenizer.json").display()), None)
    })?;
    let Some((token, max_id)) = tokenizer.reference().get_vocab(true).into_iter().max_by_key(|(_, id)| *id) else {
        return Ok(());
    };
    if u64::from(max_id) >= vocab_size {
        return Err(StageFailure::input(
            format!(
                "the tokenizer {} gives ids up to {max_id} (`{token}`), but {} has only {vocab_size} embedding rows (`vocab_size`)",
                user("tokenizer.json").display(),
                user("config.json").display()
            ),
            Some("the tokenizer belongs to another model: use the one the weights were trained with".into()),
        ));
    }
    Ok(())
}
