//! A file made of per-file parts, as a stage assembles it without copying them: `<path>.parts`
//! lists the parts, one per line, relative to `path`'s folder (shards and document indexes).

use std::path::{Path, PathBuf};

use super::error::DataError;

/// The list that makes `of` a file of parts.
pub fn path(of: &Path) -> PathBuf {
    let mut s = of.as_os_str().to_os_string();
    s.push(".parts");
    PathBuf::from(s)
}

/// Writes `<of>.parts` listing `parts` (relative to `of`'s folder), in order.
pub fn write(of: &Path, parts: &[String]) -> Result<(), DataError> {
    let list = path(of);
    let mut text = parts.join("\n");
    text.push('\n');
    std::fs::write(&list, text).map_err(|e| DataError::io("write", &list, e))
}

/// The parts `<of>.parts` lists, each as listed and as a path; `None` where `of` has no list.
pub fn read(of: &Path) -> Result<Option<Vec<(String, PathBuf)>>, DataError> {
    let list = path(of);
    if !list.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&list).map_err(|e| DataError::io("read", &list, e))?;
    let folder = of.parent().unwrap_or(Path::new("."));
    let parts = text.lines().map(str::trim).filter(|l| !l.is_empty());
    Ok(Some(parts.map(|l| (l.to_string(), folder.join(l))).collect()))
}
