//! Errors of the backend (this half and `cptc-torch`), each with a stable `cptc::backend::*` code and a hint.

use std::path::PathBuf;

use miette::Diagnostic;
use thiserror::Error;

/// Everything that can go wrong while loading, training, evaluating or saving a model.
///
/// Bad input (a checkpoint that does not match its config, a token id past the vocabulary, a
/// loss that turns NaN) always ends here, never in a panic.
#[derive(Debug, Error, Diagnostic)]
pub enum BackendError {
    #[error("cannot {action} `{}`", path.display())]
    #[diagnostic(
        code(cptc::backend::io),
        help("check that the path exists, is readable (or its parent writable) and the disk has room")
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("libtorch failed while {context}: {source}")]
    #[diagnostic(code(cptc::backend::torch))]
    Torch {
        context: String,
        /// Out of memory or failing in CUDA: the machine's fault, not the input's. Decided
        /// where the libtorch error is caught (`cptc-torch`), the only place that sees its type.
        environment: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    #[error("invalid model config `{}`: {reason}", path.display())]
    #[diagnostic(
        code(cptc::backend::config),
        help("the backend reads a Hugging Face `config.json` of a Llama-family model")
    )]
    Config { path: PathBuf, reason: String },

    #[error("unsupported model: {feature}")]
    #[diagnostic(
        code(cptc::backend::unsupported),
        help(
            "the backend implements Llama, Mistral, Qwen2 and Qwen3 decoders (sliding windows too) with default, Llama 3 or linear RoPE"
        )
    )]
    Unsupported { feature: String },

    #[error("device unavailable: {reason}")]
    #[diagnostic(
        code(cptc::backend::device),
        help("CUDA needs libtorch_cuda linked (build.rs does it when the libtorch folder has it) and a visible GPU")
    )]
    Device { reason: String },

    #[error("tensor `{name}` is missing from the checkpoint in `{}`", dir.display())]
    #[diagnostic(
        code(cptc::backend::missing_tensor),
        help("the safetensors files do not match config.json (wrong architecture or a partial copy?)")
    )]
    MissingTensor { name: String, dir: PathBuf },

    #[error("the checkpoint in `{}` has tensor `{name}` that a {model_type} model does not use", dir.display())]
    #[diagnostic(code(cptc::backend::unexpected_tensor), help("the safetensors files do not match config.json"))]
    UnexpectedTensor { name: String, model_type: String, dir: PathBuf },

    #[error("tensor `{name}` has shape {found:?}, the config implies {expected:?}")]
    #[diagnostic(code(cptc::backend::shape_mismatch), help("the safetensors files do not match config.json"))]
    ShapeMismatch { name: String, expected: Vec<i64>, found: Vec<i64> },

    #[error("tensor `{name}` has element type {dtype}, which the backend cannot load")]
    #[diagnostic(code(cptc::backend::unsupported_dtype), help("save the checkpoint in float32, float16 or bfloat16"))]
    UnsupportedDtype { name: String, dtype: String },

    #[error("cannot read safetensors file `{}`: {reason}", path.display())]
    #[diagnostic(code(cptc::backend::safetensors), help("the file is corrupt or not a safetensors file"))]
    Safetensors { path: PathBuf, reason: String },

    #[error("bad training example {index}: {reason}")]
    #[diagnostic(
        code(cptc::backend::bad_example),
        help(
            "the data pipeline must yield seq_len+1 token ids (or input/target pairs of one length) below the vocabulary size"
        )
    )]
    BadExample { index: u64, reason: String },

    #[error("the data source failed")]
    #[diagnostic(code(cptc::backend::data))]
    Data {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    #[error("invalid training settings: {reason}")]
    #[diagnostic(code(cptc::backend::train_config))]
    TrainConfig { reason: String },

    #[error("parameter groups: {reason}")]
    #[diagnostic(
        code(cptc::backend::param_groups),
        help("groups apply in order; a later group overrides an earlier one on the parameters both select")
    )]
    ParamGroups { reason: String },

    #[error("the {what} became {value} at step {step}; training stopped before updating the weights")]
    #[diagnostic(
        code(cptc::backend::non_finite),
        help("{}", non_finite_help(last_checkpoint.as_ref()))
    )]
    NonFinite {
        what: &'static str,
        value: f64,
        step: u64,
        /// The newest checkpoint written before the failure, left untouched.
        last_checkpoint: Option<PathBuf>,
    },

    #[error(
        "training diverged: the loss stayed above {ratio} x the first step's ({first:.4}) from step {since} to step {step} (now {loss:.4})"
    )]
    #[diagnostic(code(cptc::backend::diverged), help("{}", non_finite_help(last_checkpoint.as_ref())))]
    Diverged {
        ratio: f64,
        first: f64,
        since: u64,
        step: u64,
        loss: f64,
        /// The newest checkpoint written before the failure, left untouched.
        last_checkpoint: Option<PathBuf>,
    },

    #[error("invalid training checkpoint `{}`: {reason}", path.display())]
    #[diagnostic(
        code(cptc::backend::checkpoint),
        help("resume from a directory written by `Trainer::save_checkpoint`")
    )]
    Checkpoint { path: PathBuf, reason: String },

    #[error("the hook `{hook}` failed")]
    #[diagnostic(code(cptc::backend::hook))]
    Hook {
        hook: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

fn non_finite_help(last: Option<&PathBuf>) -> String {
    let lower = "lower the peak LR, lengthen the warmup or tighten grad_clip (a training that is meant to \
                 climb first can raise `divergence_ratio` / `divergence_steps`)";
    match last {
        Some(p) => format!("the last good checkpoint is `{}`; {lower}", p.display()),
        None => format!("no checkpoint was written before the failure; {lower}"),
    }
}

impl BackendError {
    /// Whether the machine, not the input, is at fault: no usable device, or libtorch out of
    /// memory or failing in CUDA.
    pub fn is_environment(&self) -> bool {
        match self {
            Self::Device { .. } => true,
            Self::Torch { environment, .. } => *environment,
            _ => false,
        }
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { action, path: path.into(), source }
    }

    pub fn train_config(reason: impl Into<String>) -> Self {
        Self::TrainConfig { reason: reason.into() }
    }

    pub fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Checkpoint { path: path.into(), reason: reason.into() }
    }
}

/// Whether `e` (one link of a cause chain) is the backend failing for the machine's sake.
pub fn is_environment_error(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<BackendError>().is_some_and(BackendError::is_environment)
}

/// Shorthand used across the backend.
pub type Result<T, E = BackendError> = std::result::Result<T, E>;
