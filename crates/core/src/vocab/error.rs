//! `VocabError`: everything that can go wrong while expanding a vocabulary or resizing embeddings.

use std::path::{Path, PathBuf};

use miette::Diagnostic;
use thiserror::Error;

#[derive(Debug, Error, Diagnostic)]
pub enum VocabError {
    #[error("cannot {action} `{path}`")]
    #[diagnostic(code(cptc::vocab::io), help("check that the path exists and that cptc may read and write there"))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{path}` is not a tokenizer that cptc can read: {message}")]
    #[diagnostic(code(cptc::vocab::bad_tokenizer), help("give the `tokenizer.json` of a Hugging Face model directory"))]
    BadTokenizer { path: PathBuf, message: String },

    #[error("`{path}` is a {kind} tokenizer; vocabulary expansion supports byte-level BPE only")]
    #[diagnostic(
        code(cptc::vocab::unsupported_tokenizer),
        help(
            "expand a model whose tokenizer is a byte-level BPE (GPT-2, SmolLM2, Llama 3, Qwen); \
             SentencePiece-style tokenizers are not supported yet"
        )
    )]
    UnsupportedTokenizer { path: PathBuf, kind: String },

    #[error("no text to train the vocabulary on")]
    #[diagnostic(code(cptc::vocab::empty_corpus), help("`train_on` must name corpora whose training split holds text"))]
    EmptyCorpus,

    #[error("vocabulary size {size} is too small: the byte alphabet alone takes 256 entries")]
    #[diagnostic(code(cptc::vocab::size_too_small), help("ask for a size well above 256, e.g. `size = 8k`"))]
    SizeTooSmall { size: usize },

    #[error("training the BPE failed: {message}")]
    #[diagnostic(code(cptc::vocab::train), help("this is likely a bug in cptc or in `tokenizers`; please report it"))]
    Train { message: String },

    #[error("the expanded tokenizer does not load: {message}")]
    #[diagnostic(
        code(cptc::vocab::merge),
        help("this is a bug in cptc's merge; please report it with the base tokenizer")
    )]
    Merge { message: String },

    #[error("`{new}` does not extend `{base}`: {message}")]
    #[diagnostic(
        code(cptc::vocab::not_an_extension),
        help(
            "the new tokenizer must keep every token of the base at its id and only append \
             tokens; produce it with `vocab::merge` from this base"
        )
    )]
    NotAnExtension { base: PathBuf, new: PathBuf, message: String },

    #[error("model directory `{dir}`: {message}")]
    #[diagnostic(
        code(cptc::vocab::bad_model),
        help("give a Hugging Face model directory with `config.json` and `model.safetensors`")
    )]
    BadModel { dir: PathBuf, message: String },

    #[error("new token id {id} lies inside the embedding matrix of `{dir}`, which has {rows} rows")]
    #[diagnostic(
        code(cptc::vocab::id_inside_embedding),
        help(
            "the model pads its embedding beyond the tokenizer; merge with `first_id` set to the \
             model's `vocab_size` so new tokens get rows of their own"
        )
    )]
    IdInsideEmbedding { dir: PathBuf, id: u32, rows: usize },

    #[error("`{path}` exists already")]
    #[diagnostic(
        code(cptc::vocab::output_exists),
        help("remove it or choose another output path; cptc never overwrites an output")
    )]
    OutputExists { path: PathBuf },
}

impl VocabError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io { action, path: path.to_path_buf(), source }
    }

    pub(crate) fn bad_tokenizer(path: &Path, message: impl Into<String>) -> Self {
        Self::BadTokenizer { path: path.to_path_buf(), message: message.into() }
    }

    pub(crate) fn bad_model(dir: &Path, message: impl Into<String>) -> Self {
        Self::BadModel { dir: dir.to_path_buf(), message: message.into() }
    }
}
