//! The ingest stage: a corpus' files read once, as a stream, into a per-document index
//! (`docs.index`: where each document is and its normalized hash, no text) and a report of
//! what was skipped and where. No copy of the text lands in the store: later stages read the
//! source files again, through the same [`Source`]. Each file's index is a part; for a corpus
//! split by a fraction, the corpus' one-pass tokenize stage files those parts as it tokenizes,
//! and this stage, ordered after it (`Graph::after`), only assembles them.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};

use super::per_file::FileParts;
use super::{StageCtx, StageFailure, read_json, write_json};
use crate::data;
use crate::data::ingest::IngestReport;
use crate::graph::{Digest, KeyWriter};
use crate::recipe::{Corpus, Format, Heldout, Origin, TextSource};

/// v2: streamed into `docs.index` (normalized hashes); the text is no longer copied.
/// v3: assembled from per-file parts (`parts.json`).
/// v4: `docs.index` lists the parts' indexes (hard links), not a copy of them.
pub const VERSION: u64 = 4;
/// The per-file parts' own version, in their keys: v4 changed only how they are assembled.
const PART_VERSION: u64 = 3;

/// How to read a corpus' files: what ingest, tokenize and vocab share. The files themselves are
/// the stage's external files (their content digests are in its key).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Source {
    /// The corpus's name: reports and statistics carry it, so it is part of the key.
    pub corpus: String,
    pub format: Format,
    pub text: TextSource,
    pub strict: bool,
    /// The field whose value decides each document's held-out side (its hash in the index);
    /// absent from keys when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_by: Option<String>,
}

pub type Params = Source;

/// Text batched for parallel work while a corpus streams: bounds memory to a few of these.
pub const BATCH_BYTES: usize = 8 << 20;

impl Source {
    /// The corpus over `files`, for [`data::ingest::visit_batches`].
    pub fn corpus(&self, files: &[PathBuf]) -> Corpus {
        Corpus {
            name: self.corpus.clone(),
            patterns: Vec::new(),
            files: files.to_vec(),
            format: self.format,
            text: self.text.clone(),
            heldout: Heldout::Fraction(0.0),
            split_by: self.split_by.clone(),
            strict: self.strict,
            max_epochs: crate::recipe::DEFAULT_MAX_EPOCHS,
            origin: Origin::default(),
        }
    }

    pub fn options(&self) -> data::ingest::IngestOptions {
        data::ingest::IngestOptions { strict: self.strict, split_by: self.split_by.clone(), ..Default::default() }
    }
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let corpus = p.corpus(ctx.files);
    let opts = p.options();
    let parts = ctx.parts.ok_or_else(|| StageFailure::internal("the ingest stage runs without the store's parts"))?;
    // Each file's index and report is a part keyed by the file's content: a corpus with a file
    // appended reads that file only.
    let done = std::sync::atomic::AtomicUsize::new(0);
    let FileParts { names, dirs, built, repeats } = super::per_file::get_or_build_parts(
        parts,
        PART_SPACE,
        ctx.digests,
        |_, digest| Ok(part_key(p, &opts, digest)),
        |i, _, dir| {
            build_part(p, &opts, &corpus.files[i], dir)?;
            // Kept only while the file is still the one its key names.
            ctx.unchanged(i)
        },
        |_| {
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            ctx.progress.set_message(format!("file {n} of {}", corpus.files.len()));
        },
    )?;
    // The corpus' index: the parts' indexes in file order, listed (each is hard-linked from
    // its part, not copied; the reader gives each record its part's position as its file).
    u32::try_from(dirs.len()).map_err(|_| StageFailure::internal("more than 2^32 files"))?;
    let index_dir = ctx.out.join(INDEX_DIR);
    std::fs::create_dir_all(&index_dir).map_err(|e| StageFailure::of(data::DataError::io("create", &index_dir, e)))?;
    let mut listed = Vec::with_capacity(dirs.len());
    for (i, dir) in dirs.iter().enumerate() {
        let name = format!("{INDEX_DIR}/{i:05}.index");
        parts.link(dir, &[(PART_INDEX, ctx.out.join(&name))])?;
        listed.push(name);
    }
    let report = corpus_report(
        &corpus,
        dirs.iter().map(PathBuf::as_path).zip(corpus.files.iter().map(PathBuf::as_path)),
        &opts,
    )?;
    report.check_not_empty(&corpus)?;
    data::parts_list::write(&ctx.out.join(INDEX), &listed)?;
    write_json(&ctx.out.join(crate::store::parts::PARTS_LIST), &names)?;
    // Nothing read is no news: after a one-pass tokenize stage, finding every part is the point.
    if 0 < built && built < corpus.files.len() {
        let rest = super::per_file::not_built(corpus.files.len(), built, repeats);
        ctx.notice(&format!("read {built} of {} files; {rest}", corpus.files.len()));
    }
    let skipped = &report.skipped;
    if skipped.total() > 0 {
        let first = report.issues.first().map_or_else(String::new, |i| {
            let name = i.file.file_name().map_or_else(|| i.file.display().to_string(), |n| n.to_string_lossy().into());
            format!("; the first: {name}:{}: {}", i.line, i.detail)
        });
        ctx.notice(&format!("skipped {} records{}{first}", skipped.total(), skipped.reasons()));
    }
    // Paths in the report are made relative to nothing machine-specific: file names only.
    let mut value = serde_json::to_value(&report).map_err(|e| StageFailure::internal(e.to_string()))?;
    if let Some(issues) = value.get_mut("issues").and_then(Value::as_array_mut) {
        for issue in issues {
            if let Some(file) = issue.get_mut("file") {
                let name =
                    file.as_str().and_then(|f| Path::new(f).file_name()).map(|n| n.to_string_lossy().into_owned());
                *file = json!(name);
            }
        }
    }
    write_json(&ctx.out.join("report.json"), &value)?;
    Ok(json!({ "documents": report.documents, "bytes": report.bytes, "skipped": report.skipped.total() }))
}

/// The report of `corpus` read whole: its files' part reports (`parts`: each part's folder
/// and its file, in file order) with each issue naming its file.
pub(super) fn corpus_report<'a>(
    corpus: &Corpus,
    parts: impl IntoIterator<Item = (&'a Path, &'a Path)>,
    opts: &data::ingest::IngestOptions,
) -> Result<IngestReport, StageFailure> {
    let mut report = IngestReport { corpus: corpus.name.clone(), files: corpus.files.len(), ..Default::default() };
    for (dir, path) in parts {
        let mut one: IngestReport = read_json(&dir.join(PART_REPORT))?;
        for issue in &mut one.issues {
            path.clone_into(&mut issue.file);
        }
        report.absorb(path, one, opts.max_issues_listed);
    }
    Ok(report)
}

/// The parts' space in the store.
pub(super) const PART_SPACE: &str = "ingest";
/// A part's files: the file's documents (`file` 0) and its report.
pub(super) const PART_INDEX: &str = "docs.index";
/// The corpus' index in the artifact (`docs.index.parts`, see [`data::index`]), and the folder
/// of the parts' indexes it lists.
pub const INDEX: &str = "docs.index";
const INDEX_DIR: &str = "index";
pub(super) const PART_REPORT: &str = "report.json";

/// What one file's part is made from: the file's content and how it is read (not the corpus'
/// name: a file shared by two corpora is read once).
pub(super) fn part_key(p: &Params, opts: &data::ingest::IngestOptions, file: &Digest) -> Digest {
    let mut w = KeyWriter::new();
    w.str("ingest part");
    w.u64(PART_VERSION);
    w.digest(file);
    w.str(&serde_json::to_string(&(p.format, &p.text)).unwrap_or_default());
    w.bool(opts.strict);
    w.u64(opts.max_record_bytes as u64);
    w.u64(opts.max_issues_listed as u64);
    // The split field decides the hashes the index holds; none leaves older keys as they were.
    if let Some(field) = &opts.split_by {
        w.str("split_by");
        w.str(field);
    }
    w.finish()
}

/// One file read into its index and report.
fn build_part(p: &Params, opts: &data::ingest::IngestOptions, path: &Path, dir: &Path) -> Result<(), StageFailure> {
    let mut index = data::index::IndexWriter::create(&dir.join(PART_INDEX))?;
    let report = data::ingest::visit_file_batches(path, 0, p.format, &p.text, opts, BATCH_BYTES, |batch| {
        let hashes: Vec<[u8; 32]> = batch.par_iter().map(data::split::document_hash).collect();
        for (d, hash) in batch.iter().zip(hashes) {
            index.push(&data::index::DocEntry { file: 0, record: d.line, bytes: d.text.len() as u64, hash })?;
        }
        Ok(())
    })?;
    index.finish()?;
    write_json(&dir.join(PART_REPORT), &report)
}
