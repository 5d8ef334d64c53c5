//! The document files stages hand each other (`docs.jsonl`, `train.jsonl`, `heldout.jsonl`):
//! one `{"text": ...}` object per line, read in parallel.

use std::borrow::Cow;
use std::io::Write as _;
use std::path::Path;

use rayon::prelude::*;
use serde::Deserialize;

use super::error::DataError;

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
}

/// Reads every line's `text`, in file order. Lines are parsed in parallel: at the fast
/// tokenizer engine's speed, a sequential JSON parse would take a third of the stage.
pub fn read_texts(path: &Path) -> Result<Vec<String>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io("read", path, e))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| DataError::BadRecord {
        file: path.to_path_buf(),
        line: 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() as u64,
        reason: "invalid UTF-8".to_string(),
    })?;
    let lines: Vec<&str> = text.lines().collect();
    lines
        .par_iter()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str::<Record<'_>>(line).map(|r| r.text.into_owned()).map_err(|e| DataError::BadRecord {
                file: path.to_path_buf(),
                line: i as u64 + 1,
                reason: format!("not a {{\"text\": ...}} record: {e}"),
            })
        })
        .collect()
}

/// Writes `texts` as one `{"text": ...}` line each.
pub fn write_texts<'a>(path: &Path, texts: impl IntoIterator<Item = &'a str>) -> Result<(), DataError> {
    let io = |e| DataError::io("write", path, e);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for text in texts {
        serde_json::to_writer(&mut out, &serde_json::json!({ "text": text })).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)
}
