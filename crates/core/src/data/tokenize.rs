//! Parallel tokenization (tokenizers + rayon) of documents into one Megatron shard per corpus
//! side, with per-corpus statistics.
//!
//! Documents are cut into batches of about `batch_bytes` of text, encoded in parallel by the
//! [`Encoder`] (the fast engine where it loads, with a sample checked against the reference)
//! and written in input order, one batch while the next is encoded; the shard is identical
//! whatever the thread count.

use std::ops::Range;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

pub use super::encoder::Encoder;
use super::encoder::{EngineInfo, Ids, Route};
use super::error::DataError;
use super::shard::{ShardSummary, ShardWriter};

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
    /// Of the documents the fast engine encodes, the first 4 and those whose index in the corpus
    /// is a multiple of `check_every` are also encoded by the reference (the first 4 KB of a long
    /// one, by both engines) and compared; 0 checks none, 1 all.
    pub check_every: u64,
    /// Write a loss mask beside the shard (documents pushed with their [`Marks`]).
    pub masked: bool,
}

impl Default for TokenizeOptions {
    fn default() -> Self {
        TokenizeOptions { eos: None, add_special_tokens: false, batch_bytes: 8 << 20, check_every: 1024, masked: false }
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
    /// Fast-engine documents cross-checked against the reference (a long one by its first 4 KB)
    /// and found identical.
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
    /// Tokens that are training targets, in a corpus whose template marks `loss_on` fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<u64>,
    pub eos: Option<u32>,
    pub dtype: String,
    pub vocab_size: u64,
    pub bin: PathBuf,
    pub idx: PathBuf,
    #[serde(default)]
    pub engine: EngineStats,
}

/// Loads a Hugging Face `tokenizer.json` with both engines (see [`Encoder`]), once per process
/// for each content ([`Encoder::shared`]).
pub fn load_tokenizer(path: &Path) -> Result<Encoder, DataError> {
    Encoder::shared(path)
}

/// End-of-document tokens of common tokenizers, in the order tried: `<|endoftext|>` (GPT-2, Qwen,
/// SmolLM), `</s>` (Llama 2, Mistral), `<|end_of_text|>` (Llama 3), `<eos>` (Gemma).
pub const EOS_TOKENS: [&str; 4] = ["<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>"];

/// Bytes a byte-level BPE vocabulary cannot encode: a BPE without an unknown token or byte
/// fallback drops a character it lacks, so those bytes reach no token, and counting them in
/// bits per byte would make the loss look smaller than it is (SmolLM2 lacks 8 byte values).
/// `None` when every byte is encoded (other tokenizers, or a complete byte alphabet).
pub fn unencodable_bytes(tok: &Tokenizer) -> Option<[bool; 256]> {
    use tokenizers::Model as _;
    // The model's fields are read, not serialized: serializing a 151k vocabulary and its
    // merges took 0.2 s of every tokenize stage for Qwen3's tokenizer.
    let tokenizers::ModelWrapper::BPE(bpe) = tok.get_model() else { return None };
    if bpe.unk_token.is_some() || bpe.byte_fallback {
        return None;
    }
    let pre = serde_json::to_value(tok.get_pre_tokenizer()?).ok()?;
    if !mentions_type(&pre, "ByteLevel") {
        return None;
    }
    let mut missing = [false; 256];
    for (b, c) in byte_chars().iter().enumerate() {
        // The model's own vocabulary: an added token is matched before the pre-tokenizer, so
        // it never stands for a byte.
        missing[b] = bpe.token_to_id(c.encode_utf8(&mut [0; 4])).is_none();
    }
    missing.contains(&true).then_some(missing)
}

/// Whether a serialized component (or one nested in a `Sequence`) has `"type": ty`.
fn mentions_type(v: &serde_json::Value, ty: &str) -> bool {
    match v {
        serde_json::Value::Object(m) => {
            m.get("type").is_some_and(|t| t == ty) || m.values().any(|x| mentions_type(x, ty))
        }
        serde_json::Value::Array(a) => a.iter().any(|x| mentions_type(x, ty)),
        _ => false,
    }
}

/// The character the byte-level pre-tokenizer writes for each byte (GPT-2's `bytes_to_unicode`,
/// which `tokenizers` keeps private): printable Latin-1 bytes stand for themselves, the other
/// 68 take the code points from 256 on, in byte order.
pub fn byte_chars() -> [char; 256] {
    let keeps = |b: u32| (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    let mut out = ['\0'; 256];
    let mut next = 256u32;
    for (b, slot) in out.iter_mut().enumerate() {
        let b = b as u32;
        let code = if keeps(b) {
            b
        } else {
            next += 1;
            next - 1
        };
        *slot = char::from_u32(code).unwrap_or('\u{FFFD}');
    }
    out
}

/// The id of the first of [`EOS_TOKENS`] that `tok` has.
pub fn eos_token(tok: &Tokenizer) -> Option<u32> {
    EOS_TOKENS.iter().find_map(|t| tok.token_to_id(t))
}

/// A model's `eos_token_id` from its Hugging Face `config.json` (the first, when a list).
pub fn eos_from_config(config: &serde_json::Value) -> Option<u32> {
    let v = config.get("eos_token_id")?;
    let id = v.as_u64().or_else(|| v.as_array()?.first()?.as_u64())?;
    u32::try_from(id).ok()
}

/// Vocabulary size used to choose the shard dtype: the largest id + 1 (added tokens included),
/// so ids past a gap (new tokens placed after spare embedding rows) still fit.
pub fn vocab_size(tok: &Tokenizer) -> u64 {
    u64::from(super::encoder::id_bound(tok)).max(tok.get_vocab_size(true) as u64)
}

/// One shard being written: batches of encoded documents are appended in order, then
/// [`finish`](Self::finish) renames the shard into place.
struct ShardTokenizer<'t> {
    tok: &'t Encoder,
    corpus: String,
    opts: TokenizeOptions,
    writer: ShardWriter,
    documents: u64,
    bytes: u64,
    vocab: u64,
    engine: EngineStats,
}

impl<'t> ShardTokenizer<'t> {
    fn new(tok: &'t Encoder, corpus: &str, out_prefix: &Path, opts: TokenizeOptions) -> Result<Self, DataError> {
        let vocab = tok.vocab_size().max(opts.eos.map_or(0, |e| u64::from(e) + 1));
        let writer = if opts.masked {
            ShardWriter::create_masked(out_prefix, vocab)?
        } else {
            ShardWriter::create(out_prefix, vocab)?
        };
        Ok(ShardTokenizer {
            tok,
            corpus: corpus.to_string(),
            opts,
            writer,
            documents: 0,
            bytes: 0,
            vocab,
            engine: EngineStats { info: Some(tok.info()), ..EngineStats::default() },
        })
    }

    /// Writes encoded documents (the next ones of the shard) and counts them.
    fn append(&mut self, encoded: EncodedBatch) -> Result<(), DataError> {
        for run in encoded {
            let mut start = 0;
            for enc in run.docs {
                let doc = self.documents;
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
                let ids = &run.ids[start..enc.end];
                match &run.mask {
                    Some(mask) => self.writer.add_masked(ids, &mask[start..enc.end])?,
                    None => self.writer.add_document(ids)?,
                }
                start = enc.end;
                self.documents += 1;
                self.bytes += enc.bytes as u64;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<CorpusStats, DataError> {
        let ShardSummary { bin, idx, dtype, documents, tokens, targets } = self.writer.finish()?;
        Ok(CorpusStats {
            corpus: self.corpus,
            documents,
            bytes: self.bytes,
            tokens,
            tokens_per_byte: if self.bytes == 0 { 0.0 } else { tokens as f64 / self.bytes as f64 },
            targets,
            eos: self.opts.eos,
            dtype: dtype.name().to_string(),
            vocab_size: self.vocab,
            bin,
            idx,
            engine: self.engine,
        })
    }
}

/// A document to tokenize: its text and, in a masked shard, the byte ranges that are targets.
pub trait DocText: Sync {
    fn text(&self) -> &str;
    fn marks(&self) -> Option<&[Range<usize>]> {
        None
    }
}

impl DocText for &str {
    fn text(&self) -> &str {
        self
    }
}

impl DocText for String {
    fn text(&self) -> &str {
        self
    }
}

impl DocText for (&str, Option<&[Range<usize>]>) {
    fn text(&self) -> &str {
        self.0
    }
    fn marks(&self) -> Option<&[Range<usize>]> {
        self.1
    }
}

impl DocText for (String, Option<Vec<Range<usize>>>) {
    fn text(&self) -> &str {
        &self.0
    }
    fn marks(&self) -> Option<&[Range<usize>]> {
        self.1.as_deref()
    }
}

/// A document's text cut at its marks: (segment, is a target), empty segments left out.
/// Unmarked text is one segment, every token a target.
pub fn segments<'t>(text: &'t str, marks: Option<&[Range<usize>]>) -> Vec<(&'t str, bool)> {
    let Some(marks) = marks else { return vec![(text, true)] };
    let mut out = Vec::with_capacity(2 * marks.len() + 1);
    let mut at = 0;
    for m in marks {
        let (start, end) = (m.start.clamp(at, text.len()), m.end.clamp(at, text.len()));
        out.push((&text[at..start], false));
        out.push((&text[start..end], true));
        at = end;
    }
    out.push((&text[at..], false));
    out.retain(|(t, _)| !t.is_empty());
    out
}

/// Encodes `docs` (the shard's documents from index `first` on) in parallel; EOS appended.
///
/// A marked document is encoded segment by segment (prompt, then response: the usual SFT
/// tokenization), so no token straddles a target's boundary; each token's mask is its segment's,
/// and the EOS that ends the document is a target (the model learns where a response ends).
///
/// Documents are encoded [`RUN_DOCS`] at a time into one buffer: a buffer per document cost
/// more in the allocator than the whole write of the shard.
fn encode_docs<D: DocText>(tok: &Encoder, opts: &TokenizeOptions, docs: &[D], first: u64) -> EncodedBatch {
    let (add, eos, every) = (opts.add_special_tokens, opts.eos, opts.check_every);
    docs.par_chunks(RUN_DOCS)
        .enumerate()
        .map(|(c, run)| {
            let text_bytes: usize = run.iter().map(|d| d.text().len()).sum();
            let mut out = EncodedRun {
                ids: Ids::with_capacity(text_bytes / 3 + 2 * run.len()),
                mask: opts.masked.then(Vec::new),
                docs: Vec::with_capacity(run.len()),
            };
            for (i, d) in run.iter().enumerate() {
                let start = out.ids.len();
                let encoded =
                    encode_one(tok, d, opts.masked, add, eos, first + (c * RUN_DOCS + i) as u64, every, &mut out);
                if encoded.is_err() {
                    // Nothing of a failed document stays: the writer stops at its error.
                    out.ids.truncate(start);
                    if let Some(m) = &mut out.mask {
                        m.truncate(start);
                    }
                }
                out.docs.push(encoded);
            }
            out
        })
        .collect()
}

/// Documents encoded back to back per buffer (a parallel task's share of a batch).
const RUN_DOCS: usize = 64;

/// One document onto the end of `out` (its ids, and its mask in a masked shard).
#[allow(clippy::too_many_arguments)]
fn encode_one<D: DocText>(
    tok: &Encoder,
    d: &D,
    masked: bool,
    add: bool,
    eos: Option<u32>,
    index: u64,
    every: u64,
    out: &mut EncodedRun,
) -> Result<Encoded, String> {
    let t = d.text();
    let start = out.ids.len();
    let ids = &mut out.ids;
    let Some(marks) = d.marks().filter(|_| masked) else {
        // In a masked shard too: the writer counts every token of it a target.
        let (route, checked, mismatch) = tok.encode_checked(t, add, index, every, ids)?;
        ids.extend(eos);
        if let Some(m) = &mut out.mask {
            m.resize(ids.len(), 1);
        }
        return Ok(Encoded { end: ids.len(), bytes: t.len(), route, checked, mismatch });
    };
    let mask = out.mask.get_or_insert_with(Vec::new);
    let (mut route, mut checked, mut mismatch) = (Route::Fast, false, None);
    for (k, (segment, target)) in segments(t, Some(marks)).into_iter().enumerate() {
        let before = ids.len();
        let (r, c, m) = tok.encode_checked(segment, add && k == 0, index, every, ids)?;
        if r == Route::Reference {
            route = r;
        }
        checked |= c;
        mismatch = mismatch.or(m.map(|m| before - start + m));
        mask.resize(ids.len(), u8::from(target));
    }
    if let Some(e) = eos {
        ids.push(e);
        mask.push(1);
    }
    Ok(Encoded { end: ids.len(), bytes: t.len(), route, checked, mismatch })
}

/// A batch's documents, encoded, in order: runs of them sharing a buffer.
type EncodedBatch = Vec<EncodedRun>;

/// Documents encoded into one buffer: their ids back to back, each one's end (or the engine's
/// message), and in a masked shard each id's mask.
struct EncodedRun {
    ids: Ids,
    mask: Option<Vec<u8>>,
    docs: Vec<Result<Encoded, String>>,
}

/// How one document of a run was made.
struct Encoded {
    /// Where its ids end in the run's buffer (they start where the previous document's end).
    end: usize,
    /// UTF-8 bytes of the document's text.
    bytes: usize,
    route: Route,
    checked: bool,
    /// Where the fast engine's ids first differ from the reference's, when checked and different.
    mismatch: Option<usize>,
}

/// A shard written from documents that arrive in batches (a corpus streamed from its files):
/// each batch is encoded in parallel while the one before it is written, so memory holds two
/// batches, whatever the corpus' size.
pub struct ShardStream<'t> {
    st: ShardTokenizer<'t>,
    pending: Option<EncodedBatch>,
    /// Index in the shard of the next document pushed.
    next: u64,
}

impl<'t> ShardStream<'t> {
    /// Starts `<out_prefix>.bin/.idx` for `corpus`.
    pub fn create(
        tok: &'t Encoder,
        corpus: &str,
        out_prefix: &Path,
        opts: &TokenizeOptions,
    ) -> Result<Self, DataError> {
        Ok(ShardStream { st: ShardTokenizer::new(tok, corpus, out_prefix, opts.clone())?, pending: None, next: 0 })
    }

    /// The next documents of the shard, in order.
    pub fn push<D: DocText>(&mut self, docs: &[D]) -> Result<(), DataError> {
        if docs.is_empty() {
            return Ok(());
        }
        let (tok, first) = (self.st.tok, self.next);
        let opts = self.st.opts.clone();
        let (st, pending) = (&mut self.st, self.pending.take());
        let (encoded, written) =
            rayon::join(|| encode_docs(tok, &opts, docs, first), || pending.map_or(Ok(()), |e| st.append(e)));
        written?;
        self.pending = Some(encoded);
        self.next += docs.len() as u64;
        Ok(())
    }

    /// Writes what is pending and renames the shard into place.
    pub fn finish(mut self) -> Result<CorpusStats, DataError> {
        if let Some(e) = self.pending.take() {
            self.st.append(e)?;
        }
        self.st.finish()
    }
}

/// Tokenizes `docs` into `<out_prefix>.bin/.idx`, one sequence per document.
///
/// Should a checked document come out differently from the two engines, the corpus is
/// tokenized again by the reference alone (the shard is rewritten, the stats say why): the ids
/// are always the reference's. The stats' engine then names the reference and the reason: a
/// caller tokenizing more text with `tok` should switch to [`Encoder::reference_copy`] too.
pub fn tokenize_corpus<S: DocText>(
    tok: &Encoder,
    corpus: &str,
    docs: &[S],
    out_prefix: &Path,
    opts: &TokenizeOptions,
) -> Result<CorpusStats, DataError> {
    let run = |tok: &Encoder| {
        let mut stream = ShardStream::create(tok, corpus, out_prefix, opts)?;
        // Batches of about `batch_bytes`, borrowed from `docs` (no copy of the text).
        let mut start = 0;
        while start < docs.len() {
            let mut end = start;
            let mut bytes = 0;
            // At least one document per batch, whatever `batch_bytes` says.
            while end < docs.len() && (end == start || bytes < opts.batch_bytes) {
                bytes += docs[end].text().len();
                end += 1;
            }
            stream.push(&docs[start..end])?;
            start = end;
        }
        stream.finish()
    };
    match run(tok) {
        Err(e @ DataError::EngineMismatch { .. }) => run(&tok.reference_copy(e.to_string())),
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
