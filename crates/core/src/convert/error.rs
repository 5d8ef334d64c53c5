//! Errors of the GGUF import, each with a stable `cptc::convert::*` code and a hint for the user.

use std::path::PathBuf;

use miette::Diagnostic;
use thiserror::Error;

/// Everything that can go wrong while reading a GGUF file or writing the converted model.
///
/// Malformed input always ends here (never in a panic): offsets are byte positions in the file so
/// that a user can look at the spot with a hex dump.
#[derive(Debug, Error, Diagnostic)]
pub enum ConvertError {
    #[error("cannot {action} `{}`", path.display())]
    #[diagnostic(
        code(cptc::convert::io),
        help("check that the path exists, is readable (or its parent writable) and the disk has room")
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("not a GGUF file: it starts with {found} instead of the magic `GGUF`")]
    #[diagnostic(
        code(cptc::convert::bad_magic),
        help("pass a `.gguf` file as written by llama.cpp (older GGML/GGJT files are not supported)")
    )]
    BadMagic { found: String },

    #[error("GGUF version {version} is not supported (only version 3 is)")]
    #[diagnostic(
        code(cptc::convert::unsupported_version),
        help("re-export the model with a current llama.cpp (`convert_hf_to_gguf.py` writes version 3)")
    )]
    UnsupportedVersion { version: u32 },

    #[error("the file ends while reading {what}: {needed} bytes needed at offset {offset}, {available} left")]
    #[diagnostic(
        code(cptc::convert::truncated),
        help("the file is incomplete (interrupted download or copy?); fetch it again")
    )]
    Truncated { what: String, offset: u64, needed: u64, available: u64 },

    #[error("the file declares {count} {what} at offset {offset}, but only {available} bytes are left")]
    #[diagnostic(
        code(cptc::convert::implausible_count),
        help("the count cannot fit in the rest of the file: the header is corrupt or not GGUF v3")
    )]
    ImplausibleCount { what: &'static str, count: u64, offset: u64, available: u64 },

    #[error("malformed GGUF at offset {offset}: {reason}")]
    #[diagnostic(
        code(cptc::convert::malformed),
        help("the file does not follow the GGUF v3 layout; re-export it with llama.cpp")
    )]
    Malformed { offset: u64, reason: String },

    #[error("tensor `{tensor}` has type {type_name} (ggml type {type_id}), which cptc cannot dequantize")]
    #[diagnostic(
        code(cptc::convert::unsupported_tensor_type),
        help(
            "supported types are F32, F16, BF16, Q8_0, Q4_0 and Q4_1; pick a GGUF export of the model that uses one of them"
        )
    )]
    UnsupportedTensorType { tensor: String, type_name: String, type_id: u32 },

    #[error(
        "tensor `{tensor}` is stored outside the file: bytes {start}..{end} of the data section, which holds {available}"
    )]
    #[diagnostic(
        code(cptc::convert::truncated),
        help("the file is incomplete (interrupted download or copy?); fetch it again")
    )]
    TruncatedTensor { tensor: String, start: u64, end: u64, available: u64 },

    #[error("architecture `{arch}` is not supported (only `llama`)")]
    #[diagnostic(
        code(cptc::convert::unsupported_architecture),
        help("cptc imports Llama-architecture GGUF files (Llama, SmolLM, TinyLlama, ...)")
    )]
    UnsupportedArchitecture { arch: String },

    #[error("metadata key `{key}` is missing")]
    #[diagnostic(
        code(cptc::convert::missing_metadata),
        help(
            "the converter needs it to write config.json or tokenizer.json; re-export the GGUF with a current llama.cpp"
        )
    )]
    MissingMetadata { key: String },

    #[error("metadata key `{key}` holds {found}, expected {expected}")]
    #[diagnostic(
        code(cptc::convert::metadata_type),
        help("the GGUF metadata does not follow llama.cpp's conventions; re-export the file")
    )]
    MetadataType { key: String, expected: &'static str, found: String },

    #[error("metadata is inconsistent: {reason}")]
    #[diagnostic(
        code(cptc::convert::bad_hparams),
        help("the model hyper-parameters in the GGUF metadata contradict each other or the tensors")
    )]
    BadHparams { reason: String },

    #[error("tensor `{tensor}` has no Hugging Face Llama counterpart")]
    #[diagnostic(
        code(cptc::convert::unknown_tensor),
        help("only plain Llama tensors (token_embd, blk.N.attn_*/ffn_*, output_norm, output) can be imported")
    )]
    UnknownTensor { tensor: String },

    #[error("tensor `{tensor}` is missing")]
    #[diagnostic(
        code(cptc::convert::missing_tensor),
        help("every layer needs its attention, MLP and norm weights; the file is incomplete or not a Llama model")
    )]
    MissingTensor { tensor: String },

    #[error("tensor `{tensor}` has shape {found:?}, expected {expected:?} (Hugging Face order)")]
    #[diagnostic(
        code(cptc::convert::shape_mismatch),
        help(
            "the tensor does not match the hyper-parameters in the metadata; the file is corrupt or not a Llama model"
        )
    )]
    ShapeMismatch { tensor: String, expected: Vec<u64>, found: Vec<u64> },

    #[error("cannot rebuild the tokenizer: {reason}")]
    #[diagnostic(
        code(cptc::convert::tokenizer),
        help("only GPT-2-style byte-level BPE vocabularies (`tokenizer.ggml.model = gpt2`) can be rebuilt")
    )]
    Tokenizer { reason: String },

    #[error("output directory `{}` already exists and is not empty", path.display())]
    #[diagnostic(
        code(cptc::convert::out_exists),
        help("remove it or choose another OUT_DIR; cptc never overwrites an existing model")
    )]
    OutExists { path: PathBuf },

    #[error("cannot write `{}`: {reason}", path.display())]
    #[diagnostic(
        code(cptc::convert::write),
        help("this is a bug in cptc's writer if the disk is fine; please report it")
    )]
    Write { path: PathBuf, reason: String },
}

impl ConvertError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { action, path: path.into(), source }
    }

    pub(crate) fn malformed(offset: usize, reason: impl Into<String>) -> Self {
        Self::Malformed { offset: offset as u64, reason: reason.into() }
    }

    pub(crate) fn hparams(reason: impl Into<String>) -> Self {
        Self::BadHparams { reason: reason.into() }
    }

    pub(crate) fn tokenizer(reason: impl Into<String>) -> Self {
        Self::Tokenizer { reason: reason.into() }
    }
}
