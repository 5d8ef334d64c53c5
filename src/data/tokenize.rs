//! Parallel tokenization (tokenizers + rayon) of documents into one Megatron shard per corpus
//! side, with per-corpus statistics.
//!
//! Documents are buffered up to `batch_bytes` of text, encoded in parallel with
//! `encode_fast` (no offsets: the cheapest call of the library), then written in input order,
//! so the shard is identical whatever the thread count.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

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
}

impl Default for TokenizeOptions {
    fn default() -> Self {
        TokenizeOptions { eos: None, add_special_tokens: false, batch_bytes: 8 << 20 }
    }
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
}

/// Loads a Hugging Face `tokenizer.json`.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer, DataError> {
    Tokenizer::from_file(path).map_err(|e| DataError::Tokenizer { path: path.to_path_buf(), message: e.to_string() })
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
    tok: &'t Tokenizer,
    corpus: String,
    opts: TokenizeOptions,
    writer: ShardWriter,
    batch: Vec<String>,
    batch_bytes: usize,
    documents: u64,
    bytes: u64,
    vocab: u64,
}

impl<'t> ShardTokenizer<'t> {
    pub fn new(tok: &'t Tokenizer, corpus: &str, out_prefix: &Path, opts: TokenizeOptions) -> Result<Self, DataError> {
        let vocab = vocab_size(tok).max(opts.eos.map_or(0, |e| u64::from(e) + 1));
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
        let (tok, add, eos) = (self.tok, self.opts.add_special_tokens, self.opts.eos);
        let encoded: Vec<Result<Vec<u32>, String>> = batch
            .par_iter()
            .map(|t| {
                let enc = tok.encode_fast(t.as_str(), add).map_err(|e| e.to_string())?;
                let mut ids = Vec::with_capacity(enc.len() + 1);
                ids.extend_from_slice(enc.get_ids());
                ids.extend(eos);
                Ok(ids)
            })
            .collect();
        for (i, (ids, text)) in encoded.into_iter().zip(&batch).enumerate() {
            let ids = ids.map_err(|message| DataError::Encode {
                corpus: self.corpus.clone(),
                doc: first + i as u64,
                message,
            })?;
            self.writer.add_document(&ids)?;
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
        })
    }
}

/// Tokenizes `docs` into `<out_prefix>.bin/.idx`, one sequence per document.
pub fn tokenize_corpus<S: Into<String>>(
    tok: &Tokenizer,
    corpus: &str,
    docs: impl IntoIterator<Item = S>,
    out_prefix: &Path,
    opts: &TokenizeOptions,
) -> Result<CorpusStats, DataError> {
    let mut st = ShardTokenizer::new(tok, corpus, out_prefix, opts.clone())?;
    for d in docs {
        st.push(d.into())?;
    }
    st.finish()
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
