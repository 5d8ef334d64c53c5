//! The ingest stage: corpus files read into normalised documents (`docs.jsonl`) and a report
//! of what was skipped and where.

use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use super::{StageCtx, StageFailure, write_json};
use crate::data;
use crate::recipe::{Corpus, Format, Heldout, Origin, TextSource};

pub const VERSION: u64 = 1;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    /// The corpus's name: its report carries it, so it is part of the key.
    pub corpus: String,
    pub format: Format,
    pub text: TextSource,
    pub strict: bool,
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    let corpus = Corpus {
        name: p.corpus.clone(),
        patterns: Vec::new(),
        files: ctx.files.to_vec(),
        format: p.format,
        text: p.text.clone(),
        heldout: Heldout::Fraction(0.0),
        strict: p.strict,
        origin: Origin::default(),
    };
    let options = data::ingest::IngestOptions { strict: p.strict, ..Default::default() };
    ctx.progress.set_message(format!("reading {} files", corpus.files.len()));
    let ingested = data::ingest::read_corpus(&corpus, &options)?;
    let skipped = &ingested.report.skipped;
    if skipped.total() > 0 {
        let first = ingested.report.issues.first().map_or_else(String::new, |i| {
            let name = i.file.file_name().map_or_else(|| i.file.display().to_string(), |n| n.to_string_lossy().into());
            format!("; the first: {name}:{}: {}", i.line, i.detail)
        });
        ctx.notice(&format!("skipped {} records{}{first}", skipped.total(), skipped.reasons()));
    }
    data::texts::write_texts(&ctx.out.join("docs.jsonl"), ingested.docs.iter().map(|d| d.text.as_str()))?;
    // Paths in the report are made relative to nothing machine-specific: file names only.
    let mut report = serde_json::to_value(&ingested.report).map_err(|e| StageFailure::internal(e.to_string()))?;
    if let Some(issues) = report.get_mut("issues").and_then(Value::as_array_mut) {
        for issue in issues {
            if let Some(file) = issue.get_mut("file") {
                let name =
                    file.as_str().and_then(|f| Path::new(f).file_name()).map(|n| n.to_string_lossy().into_owned());
                *file = json!(name);
            }
        }
    }
    write_json(&ctx.out.join("report.json"), &report)?;
    Ok(json!({
        "documents": ingested.report.documents,
        "bytes": ingested.report.bytes,
        "skipped": ingested.report.skipped.total(),
    }))
}
