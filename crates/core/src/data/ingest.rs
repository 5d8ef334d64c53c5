//! Ingest: reads a corpus' files (jsonl, plain text, parquet; gzip/zstd sniffed) into documents.
//!
//! Conventions:
//! - **jsonl**: one JSON object per line; blank lines are skipped silently. The text is one
//!   string field or an SFT template over several fields (strings inserted as is, numbers and
//!   booleans in their JSON spelling).
//! - **text**: one document per file (the whole file). Blank-line splitting would cut novels and
//!   manuals into paragraphs, which is rarely what a CPT corpus wants; split files beforehand when
//!   documents are smaller.
//! - **parquet**: the Hugging Face datasets layout (flat, top-level string columns); "line" in
//!   reports is the 1-based row number in the file.
//!
//! Bad records (invalid JSON, a missing or non-text field, invalid UTF-8, a record over the size
//! limit) are skipped, counted and listed with file:line; in strict mode the first one is an
//! error. Empty (all-whitespace) texts are skipped and counted but never an error.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::error::DataError;
use crate::recipe::{Corpus, Format, TemplatePart, TextSource};

/// How to read a corpus.
#[derive(Clone, Debug)]
pub struct IngestOptions {
    /// Fail on the first bad record instead of skipping it.
    pub strict: bool,
    /// Longest record (jsonl line, text file, parquet value) accepted; longer ones are bad
    /// records. Bounds memory on hostile input.
    pub max_record_bytes: usize,
    /// How many issues the report lists in full (all are counted).
    pub max_issues_listed: usize,
    /// The record field whose value places each document (see [`Document::split_key`]).
    pub split_by: Option<String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions { strict: false, max_record_bytes: 64 << 20, max_issues_listed: 100, split_by: None }
    }
}

/// One document and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub text: String,
    /// The byte ranges of `text` whose tokens are training targets (a template's `loss_on`
    /// fields); `None`: all of it.
    pub marks: Option<Marks>,
    /// The value of the corpus' `split_by` field: it, not the text, decides the side.
    pub split_key: Option<String>,
    /// Index into [`Ingested::files`].
    pub file: u32,
    /// 1-based line (jsonl), row (parquet) or 1 (text).
    pub line: u64,
}

/// Byte ranges of a document's text, in order, not overlapping.
pub type Marks = Vec<std::ops::Range<usize>>;

/// A record as read: its text, loss marks and split key.
type Rendered = (String, Option<Marks>, Option<String>);

/// What kind of problem a skipped record had.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueKind {
    InvalidJson,
    MissingField,
    NotText,
    InvalidUtf8,
    TooLong,
    Empty,
}

/// One skipped record.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Issue {
    pub file: PathBuf,
    pub line: u64,
    pub kind: IssueKind,
    pub detail: String,
}

/// Counts of skipped records by kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct SkipCounts {
    pub invalid_json: u64,
    pub missing_field: u64,
    pub not_text: u64,
    pub invalid_utf8: u64,
    pub too_long: u64,
    pub empty: u64,
}

impl SkipCounts {
    fn add(&mut self, kind: IssueKind, n: u64) {
        let slot = match kind {
            IssueKind::InvalidJson => &mut self.invalid_json,
            IssueKind::MissingField => &mut self.missing_field,
            IssueKind::NotText => &mut self.not_text,
            IssueKind::InvalidUtf8 => &mut self.invalid_utf8,
            IssueKind::TooLong => &mut self.too_long,
            IssueKind::Empty => &mut self.empty,
        };
        *slot += n;
    }

    /// `: 1204 missing field, 3 invalid JSON`: the kinds that occurred, the commonest first.
    pub fn reasons(&self) -> String {
        let mut kinds = [
            (self.missing_field, "missing field"),
            (self.not_text, "not text"),
            (self.invalid_json, "invalid JSON"),
            (self.invalid_utf8, "invalid UTF-8"),
            (self.too_long, "too long"),
            (self.empty, "empty"),
        ];
        kinds.sort_by_key(|k| std::cmp::Reverse(k.0));
        let listed: Vec<String> = kinds.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
        if listed.is_empty() { String::new() } else { format!(": {}", listed.join(", ")) }
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &SkipCounts) {
        self.invalid_json += other.invalid_json;
        self.missing_field += other.missing_field;
        self.not_text += other.not_text;
        self.invalid_utf8 += other.invalid_utf8;
        self.too_long += other.too_long;
        self.empty += other.empty;
    }

    /// All skipped records, empty ones included.
    pub fn total(&self) -> u64 {
        self.invalid_json + self.missing_field + self.not_text + self.invalid_utf8 + self.too_long + self.empty
    }
}

/// The ingest report of one corpus (for the run's stats and for users).
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct IngestReport {
    pub corpus: String,
    pub files: usize,
    pub documents: u64,
    /// UTF-8 bytes of the documents kept.
    pub bytes: u64,
    pub skipped: SkipCounts,
    /// The first `max_issues_listed` issues, in file order.
    pub issues: Vec<Issue>,
    /// The names of the files that gave no document though they held records, each skipped:
    /// a whole file lost (the wrong field, the wrong format) that its skip counts hide in a
    /// corpus of hundreds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_document: Vec<String>,
}

/// A whole corpus in memory.
#[derive(Clone, Debug)]
pub struct Ingested {
    pub files: Vec<PathBuf>,
    pub docs: Vec<Document>,
    pub report: IngestReport,
}

/// Reads every file of `corpus` into memory. Errors: unreadable files, strict-mode bad
/// records, and a corpus left without documents ([`DataError::EmptyCorpus`]).
pub fn read_corpus(corpus: &Corpus, opts: &IngestOptions) -> Result<Ingested, DataError> {
    let mut docs = Vec::new();
    let report = visit_corpus(corpus, opts, |d| {
        docs.push(d);
        Ok(())
    })?;
    Ok(Ingested { files: corpus.files.clone(), docs, report })
}

/// Streams the documents of `corpus` to `sink` in file order without holding them all, for
/// corpora larger than memory. Same errors as [`read_corpus`], plus whatever `sink` returns.
pub fn visit_corpus(
    corpus: &Corpus,
    opts: &IngestOptions,
    mut sink: impl FnMut(Document) -> Result<(), DataError>,
) -> Result<IngestReport, DataError> {
    let mut report = IngestReport { corpus: corpus.name.clone(), files: corpus.files.len(), ..Default::default() };
    for (i, path) in corpus.files.iter().enumerate() {
        let file = u32::try_from(i).unwrap_or(u32::MAX);
        let one = visit_file(path, file, corpus.format, &corpus.text, opts, &mut sink)?;
        report.absorb(path, one, opts.max_issues_listed);
    }
    report.check_not_empty(corpus)?;
    Ok(report)
}

/// The documents of one file of a corpus (`file`: its index, as the documents carry it) and
/// that file's report (`corpus` and `files` left empty; no check for an empty file).
pub fn visit_file(
    path: &Path,
    file: u32,
    format: Format,
    text: &TextSource,
    opts: &IngestOptions,
    sink: &mut impl FnMut(Document) -> Result<(), DataError>,
) -> Result<IngestReport, DataError> {
    let mut st = State { opts, report: IngestReport::default() };
    match format {
        Format::Jsonl => read_jsonl(path, file, text, &mut st, sink)?,
        Format::Text => read_text(path, file, &mut st, sink)?,
        Format::Parquet => read_parquet(path, file, text, &mut st, sink)?,
    }
    Ok(st.report)
}

/// [`visit_file`] in batches of about `batch_bytes` of text (at least one document each).
pub fn visit_file_batches(
    path: &Path,
    file: u32,
    format: Format,
    text: &TextSource,
    opts: &IngestOptions,
    batch_bytes: usize,
    mut sink: impl FnMut(Vec<Document>) -> Result<(), DataError>,
) -> Result<IngestReport, DataError> {
    // The file is read and parsed on a thread of its own, up to [`READ_AHEAD`] batches ahead of
    // `sink`: reading lines is serial, and the sink's parallel work (encoding, hashing) would
    // otherwise leave a core idle while it waits for the next batch. Not in a pool of one (a
    // core given a whole file), where nothing runs beside the sink to wait for.
    if rayon::current_num_threads() == 1 {
        let mut batches = Batcher { batch: Vec::new(), bytes: 0, limit: batch_bytes };
        let report = visit_file(path, file, format, text, opts, &mut |d: Document| batches.push(d, &mut sink))?;
        batches.finish(&mut sink)?;
        return Ok(report);
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Document>>(READ_AHEAD);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut batches = Batcher { batch: Vec::new(), bytes: 0, limit: batch_bytes };
            // A closed channel means the sink failed: its error is the one reported.
            let mut send = |b: Vec<Document>| {
                tx.send(b).map_err(|_| DataError::BadState { reason: "the batch's reader stopped".into() })
            };
            let report = visit_file(path, file, format, text, opts, &mut |d: Document| batches.push(d, &mut send))?;
            batches.finish(&mut send)?;
            Ok(report)
        });
        let mut failed = None;
        for batch in &rx {
            if let Err(e) = sink(batch) {
                failed = Some(e);
                break;
            }
        }
        drop(rx);
        let read = reader.join().unwrap_or_else(|_| {
            Err(DataError::BadState { reason: format!("reading {} stopped unexpectedly", path.display()) })
        });
        match failed {
            Some(e) => Err(e),
            None => read,
        }
    })
}

/// Batches a file's reader may have ready before the sink takes them (memory: about this many
/// more batches of text).
const READ_AHEAD: usize = 2;

/// Documents gathered into batches of about `limit` bytes of text.
struct Batcher {
    batch: Vec<Document>,
    bytes: usize,
    limit: usize,
}

impl Batcher {
    fn push(
        &mut self,
        d: Document,
        sink: &mut impl FnMut(Vec<Document>) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        self.bytes += d.text.len();
        self.batch.push(d);
        if self.bytes >= self.limit {
            self.bytes = 0;
            // The next batch starts at this one's size: growing it again would copy it a few times.
            let next = Vec::with_capacity(self.batch.len() + self.batch.len() / 8);
            sink(std::mem::replace(&mut self.batch, next))?;
        }
        Ok(())
    }

    fn finish(self, sink: &mut impl FnMut(Vec<Document>) -> Result<(), DataError>) -> Result<(), DataError> {
        if self.batch.is_empty() { Ok(()) } else { sink(self.batch) }
    }
}

impl IngestReport {
    /// Adds the report of the corpus' next file (`path`); issues listed up to `max_issues_listed`.
    pub fn absorb(&mut self, path: &Path, file: IngestReport, max_issues_listed: usize) {
        if file.documents == 0 && file.skipped.total() > 0 {
            let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
            self.no_document.push(name);
        }
        self.documents += file.documents;
        self.bytes += file.bytes;
        self.skipped.merge(&file.skipped);
        let room = max_issues_listed.saturating_sub(self.issues.len());
        self.issues.extend(file.issues.into_iter().take(room));
    }

    /// [`DataError::EmptyCorpus`] when no document of `corpus` was kept.
    pub fn check_not_empty(&self, corpus: &Corpus) -> Result<(), DataError> {
        if self.documents > 0 {
            return Ok(());
        }
        let first = self.issues.first().map_or_else(String::new, |i| {
            let name = i.file.file_name().map_or_else(|| i.file.display().to_string(), |n| n.to_string_lossy().into());
            format!("the first skipped record: {name}:{}: {}; ", i.line, i.detail)
        });
        Err(DataError::EmptyCorpus {
            corpus: corpus.name.clone(),
            files: corpus.files.len(),
            skipped: self.skipped.total(),
            reasons: self.skipped.reasons(),
            first,
        })
    }
}

/// [`visit_corpus`] in batches of about `batch_bytes` of text (at least one document each), for
/// stages that work on a batch in parallel.
pub fn visit_batches(
    corpus: &Corpus,
    opts: &IngestOptions,
    batch_bytes: usize,
    mut sink: impl FnMut(Vec<Document>) -> Result<(), DataError>,
) -> Result<IngestReport, DataError> {
    let mut batches = Batcher { batch: Vec::new(), bytes: 0, limit: batch_bytes };
    let report = visit_corpus(corpus, opts, |d| batches.push(d, &mut sink))?;
    batches.finish(&mut sink)?;
    Ok(report)
}

struct State<'a> {
    opts: &'a IngestOptions,
    report: IngestReport,
}

impl State<'_> {
    /// Records a bad record, or fails on it in strict mode (empty texts never fail).
    fn issue(&mut self, file: &Path, line: u64, kind: IssueKind, detail: String) -> Result<(), DataError> {
        if self.opts.strict && kind != IssueKind::Empty {
            return Err(DataError::BadRecord { file: file.to_path_buf(), line, reason: detail });
        }
        self.report.skipped.add(kind, 1);
        if self.report.issues.len() < self.opts.max_issues_listed {
            self.report.issues.push(Issue { file: file.to_path_buf(), line, kind, detail });
        }
        Ok(())
    }

    fn keep(
        &mut self,
        file_path: &Path,
        (text, marks, split_key): Rendered,
        file: u32,
        line: u64,
        sink: &mut impl FnMut(Document) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        if text.trim().is_empty() {
            return self.issue(file_path, line, IssueKind::Empty, "empty text".into());
        }
        self.report.documents += 1;
        self.report.bytes += text.len() as u64;
        sink(Document { text, marks, split_key, file, line })
    }
}

/// Opens a file of a corpus in `format` (`jsonl`, `text`), transparently decompressing gzip or
/// zstd (sniffed by magic bytes, so a misnamed file still reads); says which codec, if any.
/// Another compressor's or an archive's file is refused, naming what it is.
fn open_maybe_compressed(
    path: &Path,
    format: &'static str,
) -> Result<(Box<dyn BufRead>, Option<&'static str>), DataError> {
    let f = File::open(path).map_err(|e| DataError::io("open", path, e))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let head = r.fill_buf().map_err(|e| DataError::io("read", path, e))?;
    let refuse = |what: String, help: &str| DataError::UnsupportedFile {
        path: path.to_path_buf(),
        what,
        format,
        help: help.to_string(),
    };
    // A zstd frame, or a skippable frame before one (`pzstd` starts with one).
    let zstd =
        head.starts_with(&ZSTD) || head.get(..4).is_some_and(|m| m[0] & 0xF0 == 0x50 && m[1..] == [0x2A, 0x4D, 0x18]);
    let (mut text, codec): (Box<dyn BufRead>, _) = if head.starts_with(&GZIP) {
        (Box::new(BufReader::with_capacity(1 << 20, GzMembers::new(r))), Some("gzip"))
    } else if zstd {
        let mut d = zstd::stream::read::Decoder::with_buffer(r).map_err(|e| DataError::io("decompress", path, e))?;
        // Any window the format allows: `zstd --long=28..31` (the usual way to compress a large
        // corpus well) writes frames past the library's default limit of 128 MB, which it would
        // refuse as if damaged. The decoder then holds the window the frame names: up to 2 GB
        // for a streamed `--long=31` frame, which records no content size to bound it.
        d.window_log_max(31).map_err(|e| DataError::io("decompress", path, e))?;
        (Box::new(BufReader::with_capacity(1 << 20, d)), Some("zstd"))
    } else if let Some((what, help)) = unsupported(head) {
        return Err(refuse(what.to_string(), help));
    } else {
        (Box::new(r), None)
    };
    let head = text.fill_buf().map_err(|e| read_error(path, codec, 0, e))?;
    // What the compression holds: `.tar.gz` and `.tar.zst` are how corpora are often shipped.
    if let Some(codec) = codec
        && let Some((what, help)) = unsupported(head)
    {
        return Err(refuse(format!("{what}, {codec}-compressed"), help));
    }
    // A UTF-8 byte-order mark (Windows editors write one) is not text: it would break the first
    // JSON line or start the first document.
    let bom = if head.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    // One JSON array of records (`json.dump(records)`) would read as one bad record, or as a
    // bad record per line when indented: the whole file lost, line by line.
    let array = format == "jsonl" && head[bom..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    text.consume(bom);
    if array {
        return Err(refuse(
            "a JSON array".to_string(),
            "a jsonl file holds one JSON object per line: convert it (`jq -c '.[]' f.json > f.jsonl`)",
        ));
    }
    Ok((text, codec))
}

/// The first bytes of a gzip member and of a zstd frame.
const GZIP: [u8; 2] = [0x1f, 0x8b];
const ZSTD: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// What a file is, by its first bytes, when it is neither text nor gzip nor zstd, and what to
/// do: read as text, every line of it would be skipped as invalid, or worse, kept as garbage.
fn unsupported(head: &[u8]) -> Option<(&'static str, &'static str)> {
    const RECOMPRESS: &str = "cptc reads plain, gzip and zstd files: decompress it, or recompress it with zstd (`xz -dc f.jsonl.xz | zstd -o f.jsonl.zst`; `bzip2 -dc`, `lz4 -dc`, `lzip -dc` likewise)";
    const UNPACK: &str =
        "cptc reads a corpus' files one by one: unpack the archive and point the corpus' `files` at what it holds";
    const PARQUET: &str = "set `format = parquet` in the corpus, or give the parquet files a corpus of their own";
    const TWICE: &str = "it was compressed twice: decompress the outer layer (`gzip -dc f.gz > f`, `zstd -d`)";
    const UTF16: &str = "cptc reads UTF-8: convert it (`iconv -f UTF-16 -t UTF-8 f > f.utf8`)";
    // Text that happens to start like one of them stays text: each of these formats puts a
    // NUL byte or bytes that are not UTF-8 near its start; text has neither.
    let start = &head[..head.len().min(4096)];
    let binary = start.contains(&0) || std::str::from_utf8(start).is_err_and(|e| e.error_len().is_some());
    if !binary {
        return None;
    }
    let is = |magic: &[u8]| head.starts_with(magic);
    let at = |i: usize| head.get(i).copied();
    Some(if is(&[0xFF, 0xFE]) || is(&[0xFE, 0xFF]) {
        // Its byte-order mark (Windows' "Unicode" text).
        ("UTF-16 text", UTF16)
    } else if is(&GZIP) {
        // Met only inside a compressed file: at the top, gzip is read.
        ("a gzip file", TWICE)
    } else if is(&ZSTD) {
        ("a zstd file", TWICE)
    } else if is(&[0xFD, b'7', b'z', b'X', b'Z', 0]) {
        ("xz-compressed", RECOMPRESS)
    } else if is(b"BZh") && at(3).is_some_and(|b| (b'1'..=b'9').contains(&b)) {
        ("bzip2-compressed", RECOMPRESS)
    } else if is(&[0x04, 0x22, 0x4D, 0x18]) || is(&[0x02, 0x21, 0x4C, 0x18]) {
        // A frame, or the legacy format of `lz4 -l`.
        ("lz4-compressed", RECOMPRESS)
    } else if is(b"LZIP") && at(4).is_some_and(|v| v <= 1) {
        ("lzip-compressed", RECOMPRESS)
    } else if is(b"PK\x03\x04") || is(b"PK\x05\x06") || is(b"PK\x07\x08") {
        // A member first, an empty archive, a spanned one.
        ("a zip archive", UNPACK)
    } else if is(&[b'7', b'z', 0xBC, 0xAF, 0x27, 0x1C]) {
        ("a 7-Zip archive", UNPACK)
    } else if is(b"PAR1") {
        ("a parquet file", PARQUET)
    } else if head.get(257..263).is_some_and(|m| m == b"ustar\0" || m == b"ustar ") {
        // A tar archive says so in its first member's header: POSIX `ustar\0`, GNU `ustar `.
        ("a tar archive", UNPACK)
    } else {
        return None;
    })
}

/// A read failure past `line` whole lines: the codec's, where the file is compressed. An error
/// the system gave (a disk's EIO, a network mount gone) is the file's read failing, not damaged
/// data: "compress it again" would be the wrong advice. The decoders' own errors carry no OS code.
fn read_error(path: &Path, codec: Option<&'static str>, line: u64, source: std::io::Error) -> DataError {
    match codec {
        Some(codec) if source.raw_os_error().is_none() => {
            DataError::Decompress { codec, path: path.to_path_buf(), line, source }
        }
        _ => DataError::io("read", path, source),
    }
}

/// Gzip members one after another, as `gzip -d` reads them: zero bytes after a member (the
/// padding of tape and block writers) end the stream; anything else must be another member.
struct GzMembers<R: BufRead> {
    member: Option<flate2::bufread::GzDecoder<R>>,
}

impl<R: BufRead> GzMembers<R> {
    fn new(r: R) -> Self {
        GzMembers { member: Some(flate2::bufread::GzDecoder::new(r)) }
    }
}

impl<R: BufRead> std::io::Read for GzMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some(member) = self.member.as_mut() else { return Ok(0) };
            let n = member.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // The member ended (the decoder reads exactly its bytes): what follows it?
            let Some(member) = self.member.take() else { return Ok(0) };
            let mut rest = member.into_inner();
            let head = rest.fill_buf()?;
            if head.is_empty() {
                return Ok(0);
            }
            if head[0] != 0 {
                self.member = Some(flate2::bufread::GzDecoder::new(rest));
                continue;
            }
            loop {
                let zeros = rest.fill_buf()?;
                if zeros.is_empty() {
                    return Ok(0);
                }
                if zeros.iter().any(|&b| b != 0) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "data after the zero padding that ends the last gzip member",
                    ));
                }
                let n = zeros.len();
                rest.consume(n);
            }
        }
    }
}

enum Line {
    Eof,
    Ok,
    /// Over the limit; the rest of the line was consumed and dropped.
    TooLong,
}

/// Reads one line (without its `\n`) onto the end of `buf`, never buffering more than `max`
/// bytes of it (a line over the limit leaves `buf` as it was).
fn read_line_bounded(r: &mut dyn BufRead, buf: &mut Vec<u8>, max: usize) -> std::io::Result<Line> {
    let start = buf.len();
    let mut too_long = false;
    let mut any = false;
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok(if !any {
                Line::Eof
            } else if too_long {
                Line::TooLong
            } else {
                Line::Ok
            });
        }
        any = true;
        let (chunk, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (&avail[..i], Some(i + 1)),
            None => (avail, None),
        };
        if !too_long {
            if buf.len() - start + chunk.len() > max {
                too_long = true;
                buf.truncate(start);
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(avail.len());
        r.consume(used);
        if done.is_some() {
            return Ok(if too_long { Line::TooLong } else { Line::Ok });
        }
    }
}

/// Raw lines buffered before they are parsed in parallel (a sequential JSON parse would be a
/// third of the tokenize stage at the fast engine's speed).
const JSONL_BATCH_BYTES: usize = 4 << 20;

/// What one jsonl line turned out to be.
enum Parsed {
    Blank,
    Issue(IssueKind, String),
    Text(Rendered),
}

fn read_jsonl(
    path: &Path,
    file: u32,
    text: &TextSource,
    st: &mut State<'_>,
    sink: &mut impl FnMut(Document) -> Result<(), DataError>,
) -> Result<(), DataError> {
    use rayon::prelude::*;
    let (mut r, codec) = open_maybe_compressed(path, "jsonl")?;
    let mut line = 0u64;
    let max = st.opts.max_record_bytes;
    // A batch of lines: their bytes back to back, and per line its number and end (None: too long).
    let mut bytes: Vec<u8> = Vec::new();
    let mut lines: Vec<(u64, Option<usize>)> = Vec::new();
    let mut eof = false;
    while !eof {
        bytes.clear();
        lines.clear();
        while bytes.len() < JSONL_BATCH_BYTES {
            let start = bytes.len();
            // One byte more than the limit: a CRLF line's `\r` is not part of its record.
            let got = read_line_bounded(&mut *r, &mut bytes, max.saturating_add(1))
                .map_err(|e| read_error(path, codec, line, e))?;
            line += 1;
            match got {
                Line::Eof => {
                    eof = true;
                    break;
                }
                Line::TooLong => lines.push((line, None)),
                Line::Ok => {
                    if bytes.len() > start && bytes.last() == Some(&b'\r') {
                        bytes.pop();
                    }
                    if bytes.len() - start > max {
                        bytes.truncate(start);
                        lines.push((line, None));
                    } else {
                        lines.push((line, Some(bytes.len())));
                    }
                }
            }
        }
        let mut start = 0;
        let spans: Vec<(u64, Option<(usize, usize)>)> = lines
            .iter()
            .map(|&(n, end)| {
                let span = end.map(|e| (std::mem::replace(&mut start, e), e));
                (n, span)
            })
            .collect();
        let split_by = st.opts.split_by.as_deref();
        let wanted = fields_read(text, split_by);
        let parsed: Vec<Parsed> = spans
            .par_iter()
            .map(|&(_, span)| match span {
                None => Parsed::Issue(IssueKind::TooLong, format!("record longer than {max} bytes")),
                Some((a, b)) => parse_line(&bytes[a..b], text, split_by, &wanted),
            })
            .collect();
        for ((n, _), p) in spans.iter().zip(parsed) {
            match p {
                Parsed::Blank => {}
                Parsed::Issue(kind, detail) => st.issue(path, *n, kind, detail)?,
                Parsed::Text(t) => st.keep(path, t, file, *n, sink)?,
            }
        }
    }
    Ok(())
}

/// `raw` as text: the SIMD validator first (several times std's speed on CJK text); std's only
/// when it fails, to say where.
fn utf8(raw: &[u8]) -> Result<&str, std::str::Utf8Error> {
    simdutf8::basic::from_utf8(raw).or_else(|_| std::str::from_utf8(raw))
}

/// One jsonl line (without its line end) into its text or the reason it is skipped (`wanted`:
/// [`fields_read`] of `text` and `split_by`, worked out once per batch).
fn parse_line(raw: &[u8], text: &TextSource, split_by: Option<&str>, wanted: &[&str]) -> Parsed {
    let s = match utf8(raw) {
        Ok(s) => s,
        Err(e) => {
            let col = e.valid_up_to() + 1;
            return Parsed::Issue(IssueKind::InvalidUtf8, format!("invalid UTF-8 at byte {col}"));
        }
    };
    if s.trim().is_empty() {
        return Parsed::Blank;
    }
    // The common case, one string field, without building the record: other fields are
    // skipped unread. Anything unusual takes the full parse below, which says what is wrong.
    if let TextSource::Field(name) = text
        && split_by.is_none()
        && let Ok(Some(t)) = one_string_field(s, name)
    {
        return Parsed::Text((t, None, None));
    }
    let Record { fields: obj, keys } = match record(s, wanted) {
        Ok(r) => r,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Parsed::Issue(IssueKind::InvalidJson, "expected a JSON object".into());
        }
        Err(e) => {
            // Python's `json.dumps` writes a lone UTF-16 surrogate (text cut in the middle of an
            // emoji) as `\ud83d`: valid JSON no UTF-8 string holds. It reads as U+FFFD, not as
            // a lost document.
            if let Some(fixed) = without_lone_surrogates(s) {
                return parse_line(fixed.as_bytes(), text, split_by, wanted);
            }
            return Parsed::Issue(IssueKind::InvalidJson, format!("invalid JSON: {e}"));
        }
    };
    match render(text, |name| obj.get(name)).and_then(|(t, m)| Ok((t, m, split_key(split_by, |n| obj.get(n))?))) {
        Ok(t) => Parsed::Text(t),
        Err((IssueKind::MissingField, detail)) if detail.starts_with("missing") => {
            // Say what the record does have: the usual cause is a field named otherwise.
            let mut fields: Vec<String> = keys.iter().take(8).map(|k| format!("`{k}`")).collect();
            if keys.len() > 8 {
                fields.push("...".into());
            }
            let has = if fields.is_empty() { "no fields".to_string() } else { fields.join(", ") };
            Parsed::Issue(IssueKind::MissingField, format!("{detail} (the record has {has})"))
        }
        Err((kind, detail)) => Parsed::Issue(kind, detail),
    }
}

/// `line` with each `\uXXXX` escape of a UTF-16 surrogate that is not half of a pair written as
/// `\ufffd`; `None` when it has none.
fn without_lone_surrogates(line: &str) -> Option<String> {
    let bytes = line.as_bytes();
    // The code unit of the `\uXXXX` escape at `i`, if one is there.
    let unit = |i: usize| {
        let hex = bytes.get(i..i + 6).filter(|e| e.starts_with(b"\\u"))?;
        u16::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()
    };
    let (mut out, mut copied, mut i) = (String::new(), 0, 0);
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        match unit(i) {
            Some(0xD800..=0xDBFF) if unit(i + 6).is_some_and(|low| (0xDC00..=0xDFFF).contains(&low)) => i += 12,
            Some(0xD800..=0xDFFF) => {
                out.push_str(&line[copied..i]);
                out.push_str("\\ufffd");
                i += 6;
                copied = i;
            }
            // Any other escape, `\\` included, is two bytes or more that hold no surrogate.
            _ => i += 2,
        }
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&line[copied..]);
    Some(out)
}

/// One value of a parquet column: a string's bytes (checked as UTF-8 when used), or a scalar.
enum Cell {
    Bytes(parquet::data_type::ByteArray),
    Value(Value),
}

/// A flat column's `rows` values in a row group, nulls as `None` (`max_def`: the column's
/// definition level of a present value).
fn read_cells<T: parquet::data_type::DataType>(
    cr: &mut parquet::column::reader::ColumnReaderImpl<T>,
    rows: usize,
    max_def: i16,
    cell: impl Fn(T::T) -> Cell,
) -> Result<Vec<Option<Cell>>, parquet::errors::ParquetError> {
    let mut out: Vec<Option<Cell>> = Vec::with_capacity(rows.min(1 << 20));
    let mut defs: Vec<i16> = Vec::new();
    let mut vals: Vec<T::T> = Vec::new();
    while out.len() < rows {
        defs.clear();
        vals.clear();
        let want = (rows - out.len()).min(4096);
        let (recs, _, _) = cr.read_records(want, Some(&mut defs), None, &mut vals)?;
        if recs == 0 {
            break;
        }
        if max_def == 0 {
            out.extend(vals.drain(..).map(|v| Some(cell(v))));
        } else {
            let mut it = vals.drain(..);
            for &d in defs.iter().take(recs) {
                out.push(if d == max_def { it.next().map(&cell) } else { None });
            }
        }
    }
    Ok(out)
}

/// The fields of a record a corpus reads: its text's (the field, or the template's) and its
/// split's.
fn fields_read<'t>(text: &'t TextSource, split_by: Option<&'t str>) -> Vec<&'t str> {
    let mut names: Vec<&str> = match text {
        TextSource::Field(name) => vec![name.as_str()],
        TextSource::Template(t) => t
            .parts
            .iter()
            .filter_map(|p| match p {
                TemplatePart::Field(n) => Some(n.as_str()),
                TemplatePart::Literal(_) => None,
            })
            .collect(),
    };
    names.extend(split_by);
    names
}

/// A record's fields that a corpus reads, and the names of all of them (distinct, in order;
/// nine at most: enough to say what a record holds).
struct Record {
    fields: std::collections::HashMap<String, Value>,
    keys: Vec<String>,
}

/// The fields `wanted` of the JSON object `line` (the last of each, if repeated), every other
/// value skipped unread as the one-field path skips it: a field no template or split reads
/// never decides whether a record is kept.
fn record(line: &str, wanted: &[&str]) -> Result<Record, serde_json::Error> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

    struct Fields<'w>(&'w [&'w str]);

    impl<'de> Visitor<'de> for Fields<'_> {
        type Value = Record;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Record, A::Error> {
            let mut r = Record { fields: std::collections::HashMap::new(), keys: Vec::new() };
            while let Some(key) = a.next_key::<std::borrow::Cow<'de, str>>()? {
                if self.0.contains(&key.as_ref()) {
                    r.fields.insert(key.to_string(), a.next_value::<Value>()?);
                } else {
                    a.next_value::<IgnoredAny>()?;
                }
                if r.keys.len() < 9 && !r.keys.iter().any(|k| *k == key) {
                    r.keys.push(key.into_owned());
                }
            }
            Ok(r)
        }
    }

    let mut de = serde_json::Deserializer::from_str(line);
    let got = de.deserialize_map(Fields(wanted))?;
    de.end()?;
    Ok(got)
}

/// The string in field `name` of the JSON object `line` (the last, if repeated); `None` when
/// absent or not a string.
fn one_string_field(line: &str, name: &str) -> Result<Option<String>, serde_json::Error> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

    struct Field<'n>(&'n str);
    struct Text;

    impl<'de> Visitor<'de> for Text {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a value")
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            while a.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }

    impl<'de> DeserializeSeed<'de> for Text {
        type Value = Option<String>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Field<'_> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = a.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == self.0 {
                    found = a.next_value_seed(Text)?;
                } else {
                    a.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }

    let mut de = serde_json::Deserializer::from_str(line);
    let got = de.deserialize_map(Field(name))?;
    de.end()?;
    Ok(got)
}

/// The value of the `split_by` field of a record (a string, or a number as written).
fn split_key<'v>(
    split_by: Option<&str>,
    get: impl Fn(&str) -> Option<&'v Value>,
) -> Result<Option<String>, (IssueKind, String)> {
    let Some(name) = split_by else { return Ok(None) };
    match get(name) {
        None | Some(Value::Null) => Err((IssueKind::MissingField, format!("missing field `{name}` (split_by)"))),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
        Some(v) => Err((IssueKind::NotText, format!("field `{name}` (split_by) is {}, not a string", json_kind(v)))),
    }
}

/// The text of one record (one field, or a template over several) and, for a template with
/// `loss_on`, the byte ranges of its marked fields.
fn render<'v>(
    text: &TextSource,
    get: impl Fn(&str) -> Option<&'v Value>,
) -> Result<(String, Option<Marks>), (IssueKind, String)> {
    match text {
        TextSource::Field(name) => Ok((field_text(name, get(name), false)?, None)),
        TextSource::Template(t) => {
            let mut out = String::new();
            let mut marks = (!t.loss_on.is_empty()).then(Vec::new);
            for part in &t.parts {
                match part {
                    TemplatePart::Literal(l) => out.push_str(l),
                    TemplatePart::Field(name) => {
                        let start = out.len();
                        out.push_str(&field_text(name, get(name), true)?);
                        if let Some(m) = &mut marks
                            && t.loss_on.contains(name)
                            && out.len() > start
                        {
                            m.push(start..out.len());
                        }
                    }
                }
            }
            Ok((out, marks))
        }
    }
}

fn field_text(name: &str, v: Option<&Value>, scalars: bool) -> Result<String, (IssueKind, String)> {
    match v {
        None => Err((IssueKind::MissingField, format!("missing field `{name}`"))),
        Some(Value::Null) => Err((IssueKind::MissingField, format!("field `{name}` is null"))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) if scalars => Ok(v.to_string()),
        Some(v) => Err((IssueKind::NotText, format!("field `{name}` is {}, not a string", json_kind(v)))),
    }
}

/// [`field_text`] of a value the caller gives up: a string is moved, not copied.
fn field_text_owned(name: &str, v: Option<Value>) -> Result<String, (IssueKind, String)> {
    match v {
        Some(Value::String(s)) => Ok(s),
        v => field_text(name, v.as_ref(), false),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn read_text(
    path: &Path,
    file: u32,
    st: &mut State<'_>,
    sink: &mut impl FnMut(Document) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let (r, codec) = open_maybe_compressed(path, "text")?;
    let max = st.opts.max_record_bytes;
    let mut bytes = Vec::new();
    // One more byte than allowed tells "exactly at the limit" from "over it".
    r.take(max as u64 + 1).read_to_end(&mut bytes).map_err(|e| read_error(path, codec, 0, e))?;
    if bytes.len() > max {
        return st.issue(path, 1, IssueKind::TooLong, format!("file longer than {max} bytes"));
    }
    match String::from_utf8(bytes) {
        Ok(text) => st.keep(path, (text, None, None), file, 1, sink),
        Err(e) => {
            let ok = e.utf8_error().valid_up_to();
            let before = &e.as_bytes()[..ok];
            let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
            let col = ok - before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1) + 1;
            st.issue(path, line, IssueKind::InvalidUtf8, format!("invalid UTF-8 at byte {col} of the line"))
        }
    }
}

fn read_parquet(
    path: &Path,
    file: u32,
    text: &TextSource,
    st: &mut State<'_>,
    sink: &mut impl FnMut(Document) -> Result<(), DataError>,
) -> Result<(), DataError> {
    use parquet::basic::{ConvertedType, LogicalType, Type as PhysicalType};
    use parquet::column::reader::ColumnReader;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let perr =
        |e: parquet::errors::ParquetError| DataError::Parquet { path: path.to_path_buf(), message: e.to_string() };
    let f = File::open(path).map_err(|e| DataError::io("open", path, e))?;
    let reader = SerializedFileReader::new(f).map_err(perr)?;
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let total_rows = u64::try_from(meta.file_metadata().num_rows()).unwrap_or(0);

    // The fields the text needs, each mapped to a top-level string column (or absent).
    let names = fields_read(text, st.opts.split_by.as_deref());
    let mut cols: Vec<(String, Option<usize>)> = Vec::new();
    for name in names {
        if cols.iter().any(|(n, _)| n == name) {
            continue;
        }
        let idx = schema.columns().iter().position(|c| c.path().parts().len() == 1 && c.name() == name);
        if let Some(i) = idx {
            let c = schema.column(i);
            // Strings, and the scalars a jsonl record's numbers and booleans are (a split key,
            // a template's field: written as JSON writes them).
            // A date, a time or a decimal stored as an integer is no number to write as is.
            let annotation = match c.logical_type_ref() {
                Some(LogicalType::Integer { .. } | LogicalType::String | LogicalType::Json | LogicalType::Enum)
                | None => None,
                Some(other) => Some(format!("{other:?}")),
            };
            let scalar = matches!(
                c.physical_type(),
                PhysicalType::BYTE_ARRAY
                    | PhysicalType::INT32
                    | PhysicalType::INT64
                    | PhysicalType::BOOLEAN
                    | PhysicalType::FLOAT
                    | PhysicalType::DOUBLE
            ) && annotation.is_none()
                && !matches!(
                    c.converted_type(),
                    ConvertedType::DATE
                        | ConvertedType::DECIMAL
                        | ConvertedType::INTERVAL
                        | ConvertedType::TIME_MILLIS
                        | ConvertedType::TIME_MICROS
                        | ConvertedType::TIMESTAMP_MILLIS
                        | ConvertedType::TIMESTAMP_MICROS
                );
            if !scalar || c.max_rep_level() != 0 {
                let kind = annotation.unwrap_or_else(|| match c.converted_type() {
                    ConvertedType::NONE => format!("{:?}", c.physical_type()),
                    converted => format!("{:?} ({converted})", c.physical_type()),
                });
                return Err(DataError::Parquet {
                    path: path.to_path_buf(),
                    message: format!(
                        "column `{name}` is {kind}{}, not a flat string, number or boolean column",
                        if c.max_rep_level() != 0 { " (repeated)" } else { "" }
                    ),
                });
            }
        }
        cols.push((name.to_string(), idx));
    }
    if let Some((missing, _)) = cols.iter().find(|(_, i)| i.is_none()) {
        // A file of no rows skips none, whatever its columns (as an empty jsonl file).
        if total_rows == 0 {
            return Ok(());
        }
        // Every row lacks the field: one listed issue for the file, every row counted.
        let columns: Vec<String> =
            schema.columns().iter().take(8).map(|c| format!("`{}`", c.path().string())).collect();
        let detail = format!("missing field `{missing}` ({total_rows} rows; the columns are {})", columns.join(", "));
        if st.opts.strict {
            return Err(DataError::BadRecord { file: path.to_path_buf(), line: 1, reason: detail });
        }
        st.report.skipped.add(IssueKind::MissingField, total_rows - 1);
        return st.issue(path, 1, IssueKind::MissingField, detail);
    }

    let max = st.opts.max_record_bytes;
    let mut row_base = 0u64;
    for g in 0..reader.num_row_groups() {
        let rg = reader.get_row_group(g).map_err(perr)?;
        let rows = usize::try_from(rg.metadata().num_rows()).unwrap_or(0);
        // Per needed column, the row group's values (None = null).
        let mut values: Vec<Vec<Option<Cell>>> = Vec::with_capacity(cols.len());
        for (_, idx) in &cols {
            let i = idx.unwrap_or(0);
            let max_def = schema.column(i).max_def_level();
            // Unsigned integers are stored in signed ones' bits.
            let unsigned = matches!(
                schema.column(i).converted_type(),
                ConvertedType::UINT_8 | ConvertedType::UINT_16 | ConvertedType::UINT_32 | ConvertedType::UINT_64
            ) || matches!(schema.column(i).logical_type_ref(), Some(LogicalType::Integer(t)) if !t.is_signed);
            let column = match rg.get_column_reader(i).map_err(perr)? {
                ColumnReader::ByteArrayColumnReader(mut cr) => read_cells(&mut cr, rows, max_def, Cell::Bytes),
                ColumnReader::Int32ColumnReader(mut cr) => read_cells(&mut cr, rows, max_def, |v: i32| {
                    Cell::Value(if unsigned { (v as u32).into() } else { v.into() })
                }),
                ColumnReader::Int64ColumnReader(mut cr) => read_cells(&mut cr, rows, max_def, |v: i64| {
                    Cell::Value(if unsigned { (v as u64).into() } else { v.into() })
                }),
                ColumnReader::BoolColumnReader(mut cr) => read_cells(&mut cr, rows, max_def, |v| Cell::Value(v.into())),
                // An f32 as JSON writes it (0.1, not the f64 nearest 0.1f32): its shortest digits.
                ColumnReader::FloatColumnReader(mut cr) => read_cells(&mut cr, rows, max_def, |v: f32| {
                    Cell::Value(v.to_string().parse::<f64>().map_or(Value::Null, Value::from))
                }),
                ColumnReader::DoubleColumnReader(mut cr) => {
                    read_cells(&mut cr, rows, max_def, |v| Cell::Value(v.into()))
                }
                _ => {
                    return Err(DataError::Parquet {
                        path: path.to_path_buf(),
                        message: "unexpected column reader".into(),
                    });
                }
            };
            values.push(column.map_err(perr)?);
        }
        for r in 0..rows {
            let line = row_base + r as u64 + 1;
            let mut fields: Vec<(&str, Value)> = Vec::with_capacity(cols.len());
            let mut bad = None;
            for (c, (name, _)) in cols.iter().enumerate() {
                match values.get_mut(c).and_then(|v| v.get_mut(r)).and_then(Option::take) {
                    None => fields.push((name, Value::Null)),
                    Some(Cell::Value(v)) => fields.push((name, v)),
                    Some(Cell::Bytes(b)) if b.len() > max => {
                        bad = Some((IssueKind::TooLong, format!("field `{name}` longer than {max} bytes")));
                        break;
                    }
                    Some(Cell::Bytes(b)) => match utf8(b.data()) {
                        Ok(s) => fields.push((name, Value::String(s.to_owned()))),
                        Err(e) => {
                            let at = e.valid_up_to() + 1;
                            bad =
                                Some((IssueKind::InvalidUtf8, format!("invalid UTF-8 in field `{name}` at byte {at}")));
                            break;
                        }
                    },
                }
            }
            if let Some((kind, detail)) = bad {
                st.issue(path, line, kind, detail)?;
                continue;
            }
            let get = |n: &str| fields.iter().find(|(k, _)| *k == n).map(|(_, v)| v);
            let got = match (split_key(st.opts.split_by.as_deref(), get), text) {
                (Err(e), _) => Err(e),
                (Ok(key), TextSource::Template(_)) => render(text, get).map(|(t, m)| (t, m, key)),
                // The text is one column's value: moved into the document, not copied.
                (Ok(key), TextSource::Field(name)) => {
                    let v = fields.iter_mut().find(|(k, _)| *k == name.as_str()).map(|(_, v)| v.take());
                    field_text_owned(name, v).map(|t| (t, None, key))
                }
            };
            match got {
                Ok(t) => st.keep(path, t, file, line, sink)?,
                Err((kind, detail)) => st.issue(path, line, kind, detail)?,
            }
        }
        row_base += rows as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lone_surrogate_escapes_are_replaced() {
        let fix = |s: &str| without_lone_surrogates(s);
        assert_eq!(fix(r#"{"text": "cut \ud83d"}"#).as_deref(), Some(r#"{"text": "cut \ufffd"}"#));
        assert_eq!(
            fix(r#"{"text": "\udc00 and \ud83d\ude00"}"#).as_deref(),
            Some(r#"{"text": "\ufffd and \ud83d\ude00"}"#)
        );
        // A pair, an escaped backslash before `ud83d`, other escapes: nothing to replace.
        assert_eq!(fix(r#"{"text": "\ud83d\ude00 \\ud83d \n\u00e9"}"#), None);
        // A high surrogate before another high one: both lone; upper-case hex alike.
        assert_eq!(fix(r#""\ud83d\ud83d""#).as_deref(), Some(r#""\ufffd\ufffd""#));
        assert_eq!(fix(r#""\uD83D\uDE00 \uDC00""#).as_deref(), Some(r#""\uD83D\uDE00 \ufffd""#));
    }

    #[test]
    fn a_system_error_under_a_codec_is_a_read_failure_not_damage() {
        let path = Path::new("corpus/a.jsonl.gz");
        let eio = std::io::Error::from_raw_os_error(5);
        assert!(matches!(read_error(path, Some("gzip"), 7, eio), DataError::Io { action: "read", .. }));
        let bad = std::io::Error::new(std::io::ErrorKind::InvalidInput, "corrupt deflate stream");
        assert!(matches!(read_error(path, Some("gzip"), 7, bad), DataError::Decompress { line: 7, .. }));
        let plain = std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8");
        assert!(matches!(read_error(path, None, 7, plain), DataError::Io { .. }));
    }
}
