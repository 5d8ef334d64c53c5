//! The ingest stage: a corpus' files read once, as a stream, into a per-document index
//! (`docs.index`: where each document is and its normalized hash, no text) and a report of
//! what was skipped and where. No copy of the text lands in the store: later stages read the
//! source files again, through the same [`Source`].

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};

use super::{StageCtx, StageFailure, write_json};
use crate::data;
use crate::recipe::{Corpus, Format, Heldout, Origin, TextSource};

/// v2: streamed into `docs.index` (normalized hashes); the text is no longer copied.
pub const VERSION: u64 = 2;

/// How to read a corpus' files: what ingest, tokenize and vocab share. The files themselves are
/// the stage's external files (their content digests are in its key).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Source {
    /// The corpus's name: reports and statistics carry it, so it is part of the key.
    pub corpus: String,
    pub format: Format,
    pub text: TextSource,
    pub strict: bool,
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
            strict: self.strict,
            max_epochs: crate::recipe::DEFAULT_MAX_EPOCHS,
            origin: Origin::default(),
        }
    }

    pub fn options(&self) -> data::ingest::IngestOptions {
        data::ingest::IngestOptions { strict: self.strict, ..Default::default() }
    }
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let corpus = p.corpus(ctx.files);
    ctx.progress.set_message(format!("reading {} files", corpus.files.len()));
    let mut index = data::index::IndexWriter::create(&ctx.out.join("docs.index"))?;
    let report = data::ingest::visit_batches(&corpus, &p.options(), BATCH_BYTES, |batch| {
        let hashes: Vec<[u8; 32]> = batch.par_iter().map(|d| data::split::doc_hash(&d.text)).collect();
        for (d, hash) in batch.iter().zip(hashes) {
            index.push(&data::index::DocEntry { file: d.file, record: d.line, bytes: d.text.len() as u64, hash })?;
        }
        Ok(())
    })?;
    index.finish()?;
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
