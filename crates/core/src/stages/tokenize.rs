//! The tokenize stage: a corpus streamed from its source files straight into Megatron shards
//! (`train`, `heldout`), each document put on its side by its hash, with statistics and each
//! held-out piece's byte count (evaluation divides by them, less the held-out bytes the
//! vocabulary cannot encode, `heldout.unencodable.json`).
//!
//! Two paths. Under a held-out fraction ([`Params::fraction`]) the stage reads the files in one
//! pass: it hashes each document, decides its side, and files each file's index as the ingest
//! stage's part (that stage only assembles them). Otherwise the split stage's rule decides,
//! over the hashes the ingest stage indexed, read in step with the files.
//!
//! Work is per file: each file's shards are a part in the store (`store::parts`), keyed by the
//! file's content, the tokenizer and the split's decisions for that file's documents, so a
//! corpus with a file appended tokenizes that file only. Each side's shard in the artifact is
//! the list of its parts' pairs (`train.parts`, hard links, no copy; `data::shard` reads them
//! as one). Memory holds a few batches of text whatever the corpus' size; nothing but tokens
//! lands in the store, and per training document its [`DocKey`] (`train.hashes`): the mix stage
//! skips a document another corpus holds out, so this stage depends on its own corpus only.

use std::io::Write as _;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ingest::{BATCH_BYTES, Source};
use super::per_file::FileParts;
use super::{Input, StageCtx, StageFailure, model_dir, read_json, split, tokenizer_path, write_json};
use crate::data;
use crate::data::split::{DocKey, SplitRule};
use crate::data::tokenize::{Encoder, ShardStream, TokenizeOptions};
use crate::graph::key::hash_file;
use crate::graph::{Digest, KeyWriter};

/// v2: per-document byte counts of each side, for bits per byte.
/// v3: a tokenizer.json's truncation and padding ignored; dtype from the largest id.
/// v4: held-out bytes the vocabulary cannot encode, per document (written only when any).
/// v5: streamed from the source files; `train.hashes`.
/// v6: per-file parts (hashes read from the corpus' index), each side's shard a list of them.
pub const VERSION: u64 = 6;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    /// How to read the corpus' files (the stage's external files).
    #[serde(flatten)]
    pub source: Source,
    /// End every document with the tokenizer's EOS token.
    pub eos: bool,
    /// A held-out fraction: the stage reads the corpus' files alone, in one pass. It hashes
    /// each document itself, puts it on its side by this fraction, and files each file's index
    /// as the ingest stage's part, which that stage (running after this one) then only
    /// assembles. `None`: the split stage's rule over the ingest stage's index (a held-out
    /// count needs every hash first; a tokenizer trained on the split comes after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let (tok_dir, _) = ctx.input(&Input::Tokenizer)?;
    let parts = ctx.parts.ok_or_else(|| StageFailure::internal("the tokenize stage runs without the store's parts"))?;
    let tok_path = tokenizer_path(tok_dir)?;
    let tokenizer = data::tokenize::load_tokenizer(&tok_path)?;
    let eos = if p.eos { Some(eos_id(tok_dir, &tokenizer)?) } else { None };
    let options = TokenizeOptions { eos, masked: p.source.text.masked(), ..Default::default() };
    let tok_digest = hash_file(&tok_path).map_err(|e| StageFailure::of(data::DataError::io("read", &tok_path, e)))?;
    // Where each document's side comes from: the corpus' index and split, or this pass.
    let sides = match p.fraction {
        Some(f) => Sides::Hashed { rule: SplitRule::fraction(f)?, fraction: f },
        None => {
            let (docs_dir, _) = ctx.input(&Input::Docs)?;
            let (split_dir, _) = ctx.input(&Input::Split)?;
            let rule = split::decision(split_dir)?.rule;
            let index = docs_dir.join(super::ingest::INDEX);
            let spans = file_spans(&index, &rule, ctx.files.len())?;
            Sides::Indexed { index, rule, spans }
        }
    };
    let total_bytes: u64 = ctx.files.iter().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum();
    ctx.progress.set_length(total_bytes);
    // File `i` (content `digest`) to tokenize, and its part's key.
    let part = |i: usize, digest: Digest| -> Result<(Digest, Part<'_>), StageFailure> {
        let path = ctx.files.get(i).ok_or_else(|| StageFailure::internal("a file past the stage's files"))?;
        Ok(match &sides {
            Sides::Indexed { index, rule, spans } => {
                let span = spans.get(i).ok_or_else(|| StageFailure::internal("a file without its span"))?;
                let key = part_key(p, eos, &tok_digest, &digest, Some(span), None);
                (key, Part { path, hashes: HashSource::Index { index, span, rule } })
            }
            Sides::Hashed { rule, fraction } => {
                let key = part_key(p, eos, &tok_digest, &digest, None, Some(*fraction));
                (key, Part { path, hashes: HashSource::Compute { rule, digest } })
            }
        })
    };
    let done_bytes = std::sync::atomic::AtomicU64::new(0);
    let FileParts { names, dirs, built, repeats } = super::per_file::get_or_build_parts(
        parts,
        PART_SPACE,
        ctx.digests,
        |i, digest| Ok(part(i, *digest)?.0),
        |i, _, dir| {
            let (_, file) = part(i, ctx.file_digest(i)?)?;
            build_part(p, &file, &tokenizer, &options, parts, dir, &|| ctx.unchanged(i))
        },
        |i| {
            let len = ctx.files.get(i).and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
            let done = done_bytes.fetch_add(len, std::sync::atomic::Ordering::Relaxed) + len;
            ctx.progress.set_position(done.min(total_bytes));
        },
    )?;
    let stats = assemble(&p.source.corpus, parts, &dirs, ctx.out)?;
    let documents = ["/train/documents", "/heldout/documents"].map(|at| stats.pointer(at).and_then(Value::as_u64));
    if p.fraction.is_some() && documents.iter().flatten().sum::<u64>() == 0 {
        check_not_empty(p, ctx, parts)?;
    }
    write_json(&ctx.out.join(crate::store::parts::PARTS_LIST), &names)?;
    if built < dirs.len() {
        let rest = super::per_file::not_built(dirs.len(), built, repeats);
        ctx.notice(&format!("tokenized {built} of {} files; {rest}", dirs.len()));
    }
    Ok(stats)
}

/// Where the documents' sides come from.
enum Sides {
    /// The split stage's rule over the ingest stage's index, with each file's documents in it.
    Indexed { index: std::path::PathBuf, rule: SplitRule, spans: Vec<Span> },
    /// A held-out fraction: each document hashed as it is read.
    Hashed { rule: SplitRule, fraction: f64 },
}

/// Per training document (in shard order), its [`DocKey`].
pub const TRAIN_HASHES: &str = "train.hashes";

/// Calls `each` with the position and [`DocKey`] of every training document of a tokenize
/// artifact, in shard order, and returns how many there were. Streamed: at 16 bytes a document,
/// the keys of a 20 GB corpus are 400 MB, and its readers need only what a key decides.
pub fn visit_train_keys(dir: &Path, mut each: impl FnMut(usize, &DocKey)) -> Result<usize, StageFailure> {
    let path = dir.join(TRAIN_HASHES);
    let io = |e| data::DataError::io("read", &path, e);
    let mut file = std::fs::File::open(&path).map_err(|e| StageFailure::of(io(e)))?;
    // A trailing partial key is not a document.
    let count = (file.metadata().map_err(|e| StageFailure::of(io(e)))?.len() / 16) as usize;
    let mut n = 0;
    data::shard::each_value::<16>(&mut file, count, io, |key| {
        each(n, &key);
        n += 1;
        Ok(())
    })
    .map_err(StageFailure::of)?;
    Ok(count)
}

/// The parts' space in the store, and a part's files besides its two shards.
const PART_SPACE: &str = "tokenize";
const PART_STATS: &str = "part.json";

/// One file's documents in the corpus' index.
struct Span {
    /// Its first document's position in the index, and how many it has.
    first: u64,
    docs: u64,
    /// Which of them the split holds out (a digest of their positions in the file): under a
    /// held-out count, appending a file can move the split's threshold, and then only the files
    /// whose decisions changed are tokenized again.
    heldout: Digest,
}

/// Each file's [`Span`], from one pass over the index.
fn file_spans(index: &Path, rule: &SplitRule, files: usize) -> Result<Vec<Span>, StageFailure> {
    let mut spans: Vec<(Span, KeyWriter)> = Vec::with_capacity(files);
    for _ in 0..files {
        spans.push((Span { first: 0, docs: 0, heldout: Digest::of_bytes(b"") }, KeyWriter::new()));
    }
    for (n, d) in data::index::IndexReader::open(index)?.enumerate() {
        let d = d?;
        let Some((span, held)) = spans.get_mut(d.file as usize) else {
            return Err(StageFailure::internal(format!("{}: file {} of {files}", index.display(), d.file)));
        };
        if span.docs == 0 {
            span.first = n as u64;
        }
        if rule.is_heldout(&d.hash) {
            held.u64(span.docs);
        }
        span.docs += 1;
    }
    Ok(spans
        .into_iter()
        .map(|(mut span, held)| {
            span.heldout = held.finish();
            span
        })
        .collect())
}

/// What one file's part is made from: the file's content, how it is read, the tokenizer, the
/// end-of-document id and the split's decisions for its documents (from the index: `span`;
/// or this pass's own hashes: `fraction`).
fn part_key(
    p: &Params,
    eos: Option<u32>,
    tokenizer: &Digest,
    file: &Digest,
    span: Option<&Span>,
    fraction: Option<f64>,
) -> Digest {
    let mut w = KeyWriter::new();
    w.str("tokenize part");
    w.u64(VERSION);
    w.digest(file);
    w.str(&serde_json::to_string(&(p.source.format, &p.source.text, p.source.strict)).unwrap_or_default());
    // `train.hashes` holds the index's hashes, which the split field decides.
    if let Some(field) = &p.source.split_by {
        w.str("split_by");
        w.str(field);
    }
    w.digest(tokenizer);
    w.u64(eos.map_or(u64::MAX, u64::from));
    if let Some(span) = span {
        w.u64(span.docs);
        w.digest(&span.heldout);
    }
    if let Some(f) = fraction {
        w.str("fraction");
        w.u64(f.to_bits());
    }
    w.finish()
}

/// A file to tokenize: where it is, and where its documents' hashes come from.
struct Part<'a> {
    path: &'a Path,
    hashes: HashSource<'a>,
}

/// Where a file's documents' hashes come from, and the rule that reads them.
enum HashSource<'a> {
    /// The corpus' index (`span`: the file's documents in it), read in step with the file.
    Index { index: &'a Path, span: &'a Span, rule: &'a SplitRule },
    /// Hashed as the file is read (`digest`: the file's content, for the ingest part's key).
    Compute { rule: &'a SplitRule, digest: Digest },
}

impl HashSource<'_> {
    fn rule(&self) -> &SplitRule {
        match self {
            HashSource::Index { rule, .. } | HashSource::Compute { rule, .. } => rule,
        }
    }
}

/// What a part records besides its shards.
#[derive(Serialize, Deserialize)]
struct PartStats {
    train: data::tokenize::CorpusStats,
    heldout: data::tokenize::CorpusStats,
    /// Per held-out piece: its bytes, and the bytes of it no token covers.
    heldout_bytes: Vec<u64>,
    unencodable: Vec<u64>,
}

/// One file tokenized into `dir`: `train` and `heldout` shards, `train.hashes`, `part.json`.
/// A file hashed here also gets its ingest part (index and report), unless the store has it.
/// Nothing is kept unless `unchanged` says the file is still the one its key names.
fn build_part(
    p: &Params,
    file: &Part<'_>,
    tok: &Encoder,
    options: &TokenizeOptions,
    parts: &crate::store::Parts,
    dir: &Path,
    unchanged: &dyn Fn() -> Result<(), StageFailure>,
) -> Result<(), StageFailure> {
    let ingest_part = match &file.hashes {
        HashSource::Compute { digest, .. } => {
            let key = ingest_part_key(p, digest);
            match parts.get(super::ingest::PART_SPACE, &key) {
                Some(_) => None,
                None => Some((parts.scratch(super::ingest::PART_SPACE, &key)?, key)),
            }
        }
        HashSource::Index { .. } => None,
    };
    let index_dir = ingest_part.as_ref().map(|(tmp, _)| tmp.as_path());
    let streamed = match stream_file(p, file, tok, options, dir, index_dir) {
        // The fast engine disagreed with the reference on a checked document: the ids are
        // always the reference's, so the file is encoded again by it.
        Err(e @ data::DataError::EngineMismatch { .. }) => {
            stream_file(p, file, &tok.reference_copy(e.to_string()), options, dir, index_dir)
        }
        other => other,
    };
    let (stats, report) = match streamed.map_err(StageFailure::from).and_then(|done| unchanged().map(|()| done)) {
        Ok(done) => done,
        Err(e) => {
            if let Some((tmp, _)) = &ingest_part {
                let _ = std::fs::remove_dir_all(tmp);
            }
            return Err(e);
        }
    };
    write_json(&dir.join(PART_STATS), &stats)?;
    if let Some((tmp, key)) = ingest_part {
        write_json(&tmp.join(super::ingest::PART_REPORT), &report)?;
        parts.publish(super::ingest::PART_SPACE, &key, &tmp)?;
    }
    Ok(())
}

/// How the ingest stage reads this corpus: its text without the loss marks.
fn ingest_source(p: &Params) -> Source {
    Source { text: p.source.text.unmarked(), ..p.source.clone() }
}

/// The key of the ingest part a file hashed here gets: the one the ingest stage looks for.
fn ingest_part_key(p: &Params, file: &Digest) -> Digest {
    let source = ingest_source(p);
    super::ingest::part_key(&source, &source.options(), file)
}

/// Under a held-out fraction this stage reads the files first, before the ingest stage that
/// refuses a corpus without a usable document: it refuses one too, with the same report, rather
/// than keep an empty artifact.
fn check_not_empty(p: &Params, ctx: &StageCtx<'_>, parts: &crate::store::Parts) -> Result<(), StageFailure> {
    let source = ingest_source(p);
    let corpus = source.corpus(ctx.files);
    // A file whose tokenize part was cached may have lost its ingest part to `cptc cache gc`:
    // the report then counts the others' records.
    let mut found: Vec<(std::path::PathBuf, &Path)> = Vec::new();
    for (i, file) in ctx.files.iter().enumerate() {
        if let Some(dir) = parts.get(super::ingest::PART_SPACE, &ingest_part_key(p, &ctx.file_digest(i)?)) {
            found.push((dir, file.as_path()));
        }
    }
    let report =
        super::ingest::corpus_report(&corpus, found.iter().map(|(d, f)| (d.as_path(), *f)), &source.options())?;
    report.check_not_empty(&corpus)?;
    Ok(())
}

/// One pass over a file, each document sent to its side by its hash: read from the index in
/// lockstep (no document is hashed again), or computed here and, with `index_dir`, written as
/// the file's index there. Returns the part's statistics and the file's ingest report.
fn stream_file(
    p: &Params,
    file: &Part<'_>,
    tok: &Encoder,
    options: &TokenizeOptions,
    dir: &Path,
    index_dir: Option<&Path>,
) -> Result<(PartStats, data::ingest::IngestReport), data::DataError> {
    let missing = tok.unencodable_bytes();
    let name = &p.source.corpus;
    let mut train = ShardStream::create(tok, name, &dir.join("train"), options)?;
    let mut heldout = ShardStream::create(tok, name, &dir.join("heldout"), options)?;
    let (mut heldout_bytes, mut unencodable) = (Vec::new(), Vec::new());
    let keys_path = dir.join(TRAIN_HASHES);
    let io = |e| data::DataError::io("write", &keys_path, e);
    let mut keys = std::io::BufWriter::new(std::fs::File::create(&keys_path).map_err(io)?);
    let mut index = match &file.hashes {
        HashSource::Index { index, span, .. } => {
            Some(data::index::IndexReader::open_at(index, span.first)?.take(span.docs as usize))
        }
        HashSource::Compute { .. } => None,
    };
    let mut written = match index_dir {
        Some(d) => Some(data::index::IndexWriter::create(&d.join(super::ingest::PART_INDEX))?),
        None => None,
    };
    let rule = file.hashes.rule();
    let changed = || data::DataError::BadState {
        reason: format!("{} changed since it was indexed: run again", file.path.display()),
    };
    // Held-out pieces wait until a batch's worth has gathered: they are a small share.
    let mut held: Vec<(String, Option<data::ingest::Marks>)> = Vec::new();
    let mut held_len = 0;
    let opts = p.source.options();
    let report =
        data::ingest::visit_file_batches(file.path, 0, p.source.format, &p.source.text, &opts, BATCH_BYTES, |batch| {
            let hashes: Vec<[u8; 32]> = match &mut index {
                Some(index) => batch
                    .iter()
                    .map(|d| {
                        let entry = index.next().ok_or_else(changed)??;
                        if entry.record != d.line || entry.bytes != d.text.len() as u64 {
                            return Err(changed());
                        }
                        Ok(entry.hash)
                    })
                    .collect::<Result<_, data::DataError>>()?,
                None => {
                    let hashes: Vec<[u8; 32]> = batch.par_iter().map(data::split::document_hash).collect();
                    if let Some(w) = &mut written {
                        for (d, &hash) in batch.iter().zip(&hashes) {
                            w.push(&data::index::DocEntry {
                                file: 0,
                                record: d.line,
                                bytes: d.text.len() as u64,
                                hash,
                            })?;
                        }
                    }
                    hashes
                }
            };
            let mut to_train: Vec<(&str, Option<&[std::ops::Range<usize>]>)> = Vec::with_capacity(batch.len());
            for (d, hash) in batch.iter().zip(&hashes) {
                if !rule.is_heldout(hash) {
                    to_train.push((&d.text, d.marks.as_deref()));
                    keys.write_all(&data::split::doc_key(hash)).map_err(io)?;
                } else if let Some(marks) = &d.marks {
                    // A marked document (an SFT record: short) is held out whole; bits per byte
                    // count the bytes of its targets only.
                    let marked = marks.iter().map(|m| &d.text[m.clone()]);
                    heldout_bytes.push(marked.clone().map(|t| t.len() as u64).sum());
                    if let Some(m) = &missing {
                        unencodable.push(marked.flat_map(str::bytes).filter(|&b| m[usize::from(b)]).count() as u64);
                    }
                    held_len += d.text.len();
                    held.push((d.text.clone(), Some(marks.clone())));
                } else {
                    for piece in data::split::pieces(&d.text, data::split::MAX_HELDOUT_PIECE_BYTES) {
                        heldout_bytes.push(piece.len() as u64);
                        if let Some(m) = &missing {
                            unencodable.push(piece.bytes().filter(|&b| m[usize::from(b)]).count() as u64);
                        }
                        held_len += piece.len();
                        held.push((piece.to_string(), None));
                    }
                }
            }
            train.push(&to_train)?;
            if held_len >= BATCH_BYTES {
                heldout.push(&held)?;
                held.clear();
                held_len = 0;
            }
            Ok(())
        })?;
    if index.as_mut().is_some_and(|i| i.next().is_some()) {
        return Err(changed());
    }
    if let Some(w) = written {
        w.finish()?;
    }
    heldout.push(&held)?;
    keys.flush().map_err(io)?;
    let (train, heldout) = (train.finish()?, heldout.finish()?);
    Ok((PartStats { train, heldout, heldout_bytes, unencodable }, report))
}

/// The corpus' artifact from its files' parts, in file order: each side's shard lists the
/// parts' shards (hard-linked, not copied), `train.hashes` and the held-out byte counts are
/// concatenated, and the statistics summed.
fn assemble(
    corpus: &str,
    parts: &crate::store::Parts,
    dirs: &[std::path::PathBuf],
    out: &Path,
) -> Result<Value, StageFailure> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |e| StageFailure::of(data::DataError::io(what, &path, e))
    };
    let keys_path = out.join(TRAIN_HASHES);
    let mut keys = std::io::BufWriter::new(std::fs::File::create(&keys_path).map_err(io("create", &keys_path))?);
    let (mut heldout_bytes, mut unencodable) = (Vec::new(), Vec::new());
    let mut sides: Vec<Option<data::tokenize::CorpusStats>> = vec![None, None];
    for side in ["train", "heldout"] {
        std::fs::create_dir_all(out.join(side)).map_err(io("create", &out.join(side)))?;
    }
    let mut listed: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for (k, dir) in dirs.iter().enumerate() {
        let part: PartStats = read_json(&dir.join(PART_STATS))?;
        for (s, side) in ["train", "heldout"].into_iter().enumerate() {
            let name = format!("{side}/{k:05}");
            let (bin, idx, mask) = (format!("{side}.bin"), format!("{side}.idx"), format!("{side}.mask"));
            let mut files =
                vec![(bin.as_str(), out.join(format!("{name}.bin"))), (&idx, out.join(format!("{name}.idx")))];
            if dir.join(&mask).is_file() {
                files.push((&mask, out.join(format!("{name}.mask"))));
            }
            parts.link(dir, &files)?;
            listed[s].push(name);
            let stats = if s == 0 { &part.train } else { &part.heldout };
            merge_stats(&mut sides[s], stats);
        }
        let hashes = dir.join(TRAIN_HASHES);
        let mut from = std::fs::File::open(&hashes).map_err(io("open", &hashes))?;
        std::io::copy(&mut from, &mut keys).map_err(io("copy", &hashes))?;
        heldout_bytes.extend(part.heldout_bytes);
        // Every part counts per piece, or (a complete vocabulary: one tokenizer for all) none.
        unencodable.extend(part.unencodable);
    }
    keys.flush().map_err(io("write", &keys_path))?;
    for (s, side) in ["train", "heldout"].into_iter().enumerate() {
        data::parts_list::write(&out.join(side), &listed[s])?;
    }
    write_json(&out.join("heldout.doc_bytes.json"), &heldout_bytes)?;
    let mut stats = serde_json::Map::new();
    for (s, side) in ["train", "heldout"].into_iter().enumerate() {
        let Some(mut side_stats) = sides[s].take() else {
            return Err(StageFailure::internal(format!("corpus {corpus} has no files")));
        };
        side_stats.corpus = corpus.to_string();
        let mut value = serde_json::to_value(&side_stats).map_err(|e| StageFailure::internal(e.to_string()))?;
        if let Value::Object(map) = &mut value {
            // The shard is the list of its parts' pairs.
            map.remove("bin");
            map.remove("idx");
            map.insert("shard".to_string(), json!(format!("{side}.parts")));
            map.insert("parts".to_string(), json!(dirs.len()));
        }
        stats.insert(side.to_string(), value);
    }
    // Bits per byte leave out what no token covers: counted per held-out piece, and written
    // only when there is any, so a complete vocabulary's artifact is unchanged.
    let total: u64 = unencodable.iter().sum();
    if total > 0 {
        if unencodable.len() != heldout_bytes.len() {
            return Err(StageFailure::internal(format!(
                "corpus {corpus}: {} unencodable counts for {} held-out pieces",
                unencodable.len(),
                heldout_bytes.len()
            )));
        }
        write_json(&out.join("heldout.unencodable.json"), &unencodable)?;
        if let Some(Value::Object(map)) = stats.get_mut("heldout") {
            map.insert("unencodable_bytes".to_string(), json!(total));
        }
    }
    write_json(&out.join("stats.json"), &stats)?;
    Ok(Value::Object(stats))
}

/// Adds a part's statistics of one side to the corpus'.
fn merge_stats(into: &mut Option<data::tokenize::CorpusStats>, part: &data::tokenize::CorpusStats) {
    let Some(total) = into else {
        *into = Some(part.clone());
        return;
    };
    total.documents += part.documents;
    total.bytes += part.bytes;
    total.tokens += part.tokens;
    if let (Some(t), Some(p)) = (&mut total.targets, part.targets) {
        *t += p;
    }
    total.tokens_per_byte = if total.bytes == 0 { 0.0 } else { total.tokens as f64 / total.bytes as f64 };
    let engine = &mut total.engine;
    engine.fast_documents += part.engine.fast_documents;
    engine.reference_documents += part.engine.reference_documents;
    engine.checked_documents += part.engine.checked_documents;
    // A file the reference encoded alone (the engines disagreed) names the reference and why.
    if part.engine.info != engine.info && part.engine.fast_documents == 0 && part.engine.reference_documents > 0 {
        engine.info.clone_from(&part.engine.info);
    }
}

/// The id that ends every document in the shards: one of the usual EOS tokens of the tokenizer,
/// else the model's `eos_token_id`. Documents run together without one, so none is an error.
fn eos_id(tok_dir: &Path, tokenizer: &data::tokenize::Encoder) -> Result<u32, StageFailure> {
    if let Some(id) = data::tokenize::eos_token(tokenizer.reference()) {
        return Ok(id);
    }
    let config = model_dir(tok_dir).ok().map(|d| d.join("config.json"));
    let from_config =
        config.as_ref().and_then(|c| read_json::<Value>(c).ok()).and_then(|c| data::tokenize::eos_from_config(&c));
    from_config.ok_or_else(|| {
        StageFailure::input(
            format!(
                "{}: no end-of-document token: none of {} is in it, and {} gives no `eos_token_id`",
                tokenizer.path().display(),
                data::tokenize::EOS_TOKENS.join(", "),
                config.map_or("no config.json".to_string(), |c| c.display().to_string()),
            ),
            Some(
                "documents are separated by an EOS token in the shards; give the model's config.json an `eos_token_id`"
                    .into(),
            ),
        )
    })
}
