//! Parallel tokenization (tokenizers + rayon) of documents into one Megatron shard per corpus
//! side, with per-corpus statistics.
//!
//! Documents are buffered up to `batch_bytes` of text, encoded in parallel by the
//! [`Encoder`] (the fast engine where it loads, with a sample checked against the reference),
//! then written in input order, so the shard is identical whatever the thread count.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

pub use super::encoder::Encoder;
use super::encoder::{EngineInfo, Route};
use super::error::DataError;
use super::shard::{ShardSummary, ShardWriter, TokenDtype};

/// How to tokenize.
#[derive(Clone, Debug)]
pub struct TokenizeOptions {
    /// Appended after every document; `None` joins documents without a separator.
    pub eos: Option<u32>,
    /// Let the tokenizer's post-processor add its special tokens (BOS...). Off for pretraining
    /// text, where documents are separated by `eos` instead.
    pub add_special_tokens: bool,
    /// Text buffered per parallel batch; bounds memory (about 5x this while encoding).
    pub batch_bytes: usize,
    /// Every `check_every`-th document (the first included) that the fast engine encodes is also
    /// encoded by the reference and compared; 0 checks none, 1 checks all.
    pub check_every: u64,
}

impl Default for TokenizeOptions {
    fn default() -> Self {
        TokenizeOptions { eos: None, add_special_tokens: false, batch_bytes: 8 << 20, check_every: 256 }
    }
}

/// Which engine encoded a corpus side, and how much of it each route took.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStats {
    #[serde(flatten)]
    pub info: Option<EngineInfo>,
    /// Documents encoded by the fast engine alone.
    pub fast_documents: u64,
    /// Documents encoded by the reference (all of them without a fast engine).
    pub reference_documents: u64,
    /// Fast-engine documents also encoded by the reference and found identical.
    pub checked_documents: u64,
}

/// Per-corpus (per side) statistics, written as JSON next to the shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorpusStats {
    pub corpus: String,
    pub documents: u64,
    /// UTF-8 bytes of text.
    pub bytes: u64,
    /// Tokens written, EOS included.
    pub tokens: u64,
    pub tokens_per_byte: f64,
    pub eos: Option<u32>,
    pub dtype: String,
    pub vocab_size: u64,
    pub bin: PathBuf,
    pub idx: PathBuf,
    #[serde(default)]
    pub engine: EngineStats,
}

/// Loads a Hugging Face `tokenizer.json` with both engines (see [`Encoder`]).
pub fn load_tokenizer(path: &Path) -> Result<Encoder, DataError> {
    Encoder::load(path)
}

/// The end-of-document token of common tokenizers: `<|endoftext|>` (GPT-2, Qwen, SmolLM), `</s>`
/// (Llama 2, Mistral), `<|end_of_text|>` (Llama 3), `<eos>` (Gemma).
pub fn eos_token(tok: &Tokenizer) -> Option<u32> {
    ["<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>"].iter().find_map(|t| tok.token_to_id(t))
}

/// Vocabulary size used to choose the shard dtype: the larger of the tokenizer's size (added
/// tokens included) and the largest id + 1, so sparse added ids still fit.
pub fn vocab_size(tok: &Tokenizer) -> u64 {
    let n = tok.get_vocab_size(true) as u64;
    let max_added = tok.get_added_tokens_decoder().keys().map(|&k| u64::from(k) + 1).max().unwrap_or(0);
    n.max(max_added)
}

/// Streams documents into one shard: [`push`](Self::push) buffers, [`finish`](Self::finish)
/// flushes and renames the shard into place.
pub struct ShardTokenizer<'t> {
    tok: &'t Encoder,
    corpus: String,
    opts: TokenizeOptions,
    writer: ShardWriter,
    batch: Vec<String>,
    batch_bytes: usize,
    documents: u64,
    bytes: u64,
    vocab: u64,
    engine: EngineStats,
}

impl<'t> ShardTokenizer<'t> {
    pub fn new(tok: &'t Encoder, corpus: &str, out_prefix: &Path, opts: TokenizeOptions) -> Result<Self, DataError> {
        let vocab = vocab_size(tok.reference()).max(opts.eos.map_or(0, |e| u64::from(e) + 1));
        let writer = ShardWriter::create(out_prefix, vocab)?;
        Ok(ShardTokenizer {
            tok,
            corpus: corpus.to_string(),
            opts,
            writer,
            batch: Vec::new(),
            batch_bytes: 0,
            documents: 0,
            bytes: 0,
            vocab,
            engine: EngineStats { info: Some(tok.info()), ..EngineStats::default() },
        })
    }

    pub fn dtype(&self) -> TokenDtype {
        self.writer.dtype()
    }

    pub fn push(&mut self, text: String) -> Result<(), DataError> {
        self.batch_bytes += text.len();
        self.batch.push(text);
        if self.batch_bytes >= self.opts.batch_bytes {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DataError> {
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let first = self.documents;
        let (tok, add, eos, every) = (self.tok, self.opts.add_special_tokens, self.opts.eos, self.opts.check_every);
        let encoded: Vec<Result<Encoded, String>> = batch
            .par_iter()
            .enumerate()
            .map(|(i, t)| {
                let mut ids = Vec::with_capacity(t.len() / 3 + 1);
                let route = tok.encode_into(t, add, &mut ids)?;
                let doc = first + i as u64;
                let checked = route == Route::Fast && every > 0 && doc.is_multiple_of(every);
                let mismatch = if checked {
                    let reference = tok.encode_reference(t, add)?;
                    super::encoder::first_difference(&ids, &reference)
                } else {
                    None
                };
                ids.extend(eos);
                Ok(Encoded { ids, route, checked, mismatch })
            })
            .collect();
        for (i, (enc, text)) in encoded.into_iter().zip(&batch).enumerate() {
            let doc = first + i as u64;
            let enc = enc.map_err(|message| DataError::Encode { corpus: self.corpus.clone(), doc, message })?;
            if let Some(position) = enc.mismatch {
                return Err(DataError::EngineMismatch {
                    corpus: self.corpus.clone(),
                    doc,
                    position: position as u64,
                    tokenizer: self.tok.path().to_path_buf(),
                });
            }
            match enc.route {
                Route::Fast => self.engine.fast_documents += 1,
                Route::Reference => self.engine.reference_documents += 1,
            }
            self.engine.checked_documents += u64::from(enc.checked);
            self.writer.add_document(&enc.ids)?;
            self.documents += 1;
            self.bytes += text.len() as u64;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<CorpusStats, DataError> {
        self.flush()?;
        let ShardSummary { bin, idx, dtype, documents, tokens } = self.writer.finish()?;
        Ok(CorpusStats {
            corpus: self.corpus,
            documents,
            bytes: self.bytes,
            tokens,
            tokens_per_byte: if self.bytes == 0 { 0.0 } else { tokens as f64 / self.bytes as f64 },
            eos: self.opts.eos,
            dtype: dtype.name().to_string(),
            vocab_size: self.vocab,
            bin,
            idx,
            engine: self.engine,
        })
    }
}

/// One document's ids and how they were made.
struct Encoded {
    ids: Vec<u32>,
    route: Route,
    checked: bool,
    /// Where the fast engine's ids first differ from the reference's, when checked and different.
    mismatch: Option<usize>,
}

/// Tokenizes `docs` into `<out_prefix>.bin/.idx`, one sequence per document.
///
/// Should a checked document come out differently from the two engines, the corpus is
/// tokenized again by the reference alone (the shard is rewritten, the stats say why): the ids
/// are always the reference's.
pub fn tokenize_corpus<S: AsRef<str>>(
    tok: &Encoder,
    corpus: &str,
    docs: &[S],
    out_prefix: &Path,
    opts: &TokenizeOptions,
) -> Result<CorpusStats, DataError> {
    let run = |tok: &Encoder| {
        let mut st = ShardTokenizer::new(tok, corpus, out_prefix, opts.clone())?;
        for d in docs {
            st.push(d.as_ref().to_string())?;
        }
        st.finish()
    };
    match run(tok) {
        Err(e @ DataError::EngineMismatch { .. }) => {
            run(&Encoder::reference_only(tok.path())?.without_fast(e.to_string()))
        }
        other => other,
    }
}

/// Writes `value` as pretty JSON, aside then renamed into place.
pub fn write_json<T: Serialize>(value: &T, path: &Path) -> Result<(), DataError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| DataError::io("serialize", path, std::io::Error::other(e)))?;
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text + "\n").map_err(|e| DataError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| DataError::io("rename", &tmp, e))
}
