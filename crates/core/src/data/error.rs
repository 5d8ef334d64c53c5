//! Errors of the data pipeline, each with a stable `cptc::data::*` code and a hint for the user.

use std::path::PathBuf;

use miette::Diagnostic;
use thiserror::Error;

/// Everything that can go wrong while ingesting, splitting, tokenizing, sampling or packing.
///
/// Bad input always ends here (never in a panic). Record-level problems name the file and the
/// 1-based line (jsonl, text) or row (parquet) so that a user can look at the spot.
#[derive(Debug, Error, Diagnostic)]
pub enum DataError {
    #[error("cannot {action} `{}`", path.display())]
    #[diagnostic(
        code(cptc::data::io),
        help("check that the path exists, is readable (or its folder writable) and the disk has room")
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot decompress `{}` ({codec}) past line {line}", path.display())]
    #[diagnostic(
        code(cptc::data::decompress),
        help(
            "the file is damaged or cut short there: download or compress it again (`gzip -t` / `zstd -t` test a file)"
        )
    )]
    Decompress {
        codec: &'static str,
        path: PathBuf,
        /// Lines read whole before the failure.
        line: u64,
        #[source]
        source: std::io::Error,
    },

    #[error("`{}` is {what}: cptc cannot read it as {format}", path.display())]
    #[diagnostic(code(cptc::data::unsupported_file))]
    UnsupportedFile {
        path: PathBuf,
        /// What its first bytes say it is: `xz-compressed`, `a tar archive, gzip-compressed`...
        what: String,
        /// The corpus' format as the recipe gives it: `jsonl`, `text`.
        format: &'static str,
        #[help]
        help: String,
    },

    #[error("{}:{line}: {reason}", file.display())]
    #[diagnostic(
        code(cptc::data::bad_record),
        help("fix or remove the record; without strict mode bad records are skipped, counted and reported")
    )]
    BadRecord { file: PathBuf, line: u64, reason: String },

    #[error("corpus `{corpus}` has no usable document ({files} files read, {skipped} records skipped{reasons})")]
    #[diagnostic(
        code(cptc::data::empty_corpus),
        help("{first}check the corpus' file patterns and its `text` field or template")
    )]
    EmptyCorpus {
        corpus: String,
        files: usize,
        skipped: u64,
        /// `: 1,204 missing field, 3 invalid JSON`, the commonest first; empty when none.
        reasons: String,
        /// `the first skipped record: a.jsonl:1: missing field ...; `, or empty.
        first: String,
    },

    #[error("cannot read parquet file `{}`: {message}", path.display())]
    #[diagnostic(
        code(cptc::data::parquet),
        help(
            "cptc reads flat parquet files with string columns (the Hugging Face datasets layout); re-export nested or binary columns as strings"
        )
    )]
    Parquet { path: PathBuf, message: String },

    #[error("cannot load tokenizer `{}`: {message}", path.display())]
    #[diagnostic(code(cptc::data::tokenizer), help("pass a Hugging Face `tokenizer.json` (tokenizers 0.2x format)"))]
    Tokenizer { path: PathBuf, message: String },

    #[error("tokenizing document {doc} of corpus `{corpus}` failed: {message}")]
    #[diagnostic(
        code(cptc::data::encode),
        help("the tokenizer refused this text; check the tokenizer file and the document")
    )]
    Encode { corpus: String, doc: u64, message: String },

    #[error(
        "the fast tokenizer engine and the reference disagree on document {doc} of corpus `{corpus}` (first at token {position}), tokenizer `{}`",
        tokenizer.display()
    )]
    #[diagnostic(
        code(cptc::data::engine_mismatch),
        help(
            "cptc tokenizes such a corpus again with the reference engine (tokenizers 0.23); please report the tokenizer and document"
        )
    )]
    EngineMismatch { corpus: String, doc: u64, position: u64, tokenizer: PathBuf },

    #[error("token id {id} does not fit the shard's {dtype} tokens (vocabulary of {vocab})")]
    #[diagnostic(
        code(cptc::data::token_out_of_range),
        help("the vocabulary size given to the shard writer must exceed every id, EOS included")
    )]
    TokenOutOfRange { id: u32, dtype: &'static str, vocab: u64 },

    #[error("`{}` is not a valid Megatron shard: {reason}", path.display())]
    #[diagnostic(
        code(cptc::data::bad_shard),
        help("the shard is damaged or not an MMIDIDX version-1 file; delete it so the tokenize stage writes it again")
    )]
    BadShard { path: PathBuf, reason: String },

    #[error("held-out setting is invalid: {reason}")]
    #[diagnostic(
        code(cptc::data::bad_split),
        help("use a fraction in [0, 1) or a document count smaller than the corpus")
    )]
    BadSplit { reason: String },

    #[error("mixture `{mixture}` cannot be sampled: {reason}")]
    #[diagnostic(
        code(cptc::data::bad_mixture),
        help(
            "every part needs a positive share and corpora with tokens; each corpus must be tokenized before sampling"
        )
    )]
    BadMixture { mixture: String, reason: String },

    #[error("corpus `{corpus}` ran out of data after {sequences} sequences and the mixture does not repeat")]
    #[diagnostic(
        code(cptc::data::source_exhausted),
        help(
            "add data, lower the training tokens or the corpus' share, or allow repetition in the mixture (`repeat = true`)"
        )
    )]
    SourceExhausted { corpus: String, sequences: u64 },

    #[error("sampler state does not match this mixture: {reason}")]
    #[diagnostic(
        code(cptc::data::bad_state),
        help("resume with the same mixture, corpora and settings as the run that saved the state")
    )]
    BadState { reason: String },

    #[error("packing settings are invalid: {reason}")]
    #[diagnostic(code(cptc::data::bad_packing), help("the sequence length must be at least 1 and at most 2^31 tokens"))]
    BadPacking { reason: String },

    #[error("corpus `{corpus}` has no tokens to pack: a whole epoch of it added nothing")]
    #[diagnostic(
        code(cptc::data::nothing_to_pack),
        help(
            "it is empty, or (long context) all its documents are shorter than `short_below` and none was kept: raise `keep_short` or lower `short_below`"
        )
    )]
    NothingToPack { corpus: String },
}

impl DataError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { action, path: path.into(), source }
    }
}
