//! The checker's window on the outside: file reads and glob expansion, behind a trait so the
//! checking logic itself stays free of direct IO.

use std::path::{Path, PathBuf};

pub trait World {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    /// Files matching `pattern`, sorted, each file once however many spellings reach it;
    /// `Err` for a malformed pattern or a symlink cycle under it (never followed).
    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, GlobError>;
    /// A stable identity for a file, to load each import once.
    fn canonical(&self, path: &Path) -> PathBuf;
    /// Whether `path` is a file (following symlinks).
    fn is_file(&self, path: &Path) -> bool;
    /// The files directly in `dir`, sorted.
    fn list_files(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>>;
}

/// Why a glob found nothing to give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GlobError {
    /// A malformed pattern, with the reason.
    Pattern(String),
    /// `link` leads back to `target`, a folder it is in.
    Cycle { link: PathBuf, target: PathBuf },
}

/// The folder a pattern's walk starts from (its leading components without glob syntax, as
/// written, so the paths the walk yields keep the pattern's spelling) and how deep the walk
/// must go (`None` when `**` can reach any depth; `Some(0)`: no glob syntax, no walk).
fn walk_root(pattern: &str) -> (PathBuf, Option<usize>) {
    let is_glob = |c: &str| c.contains(['*', '?', '[', '{']);
    let components: Vec<&str> = pattern.split('/').collect();
    let literal = components.iter().take_while(|c| !is_glob(c)).count();
    if literal == components.len() {
        return (PathBuf::from(pattern), Some(0)); // no glob syntax: no walk
    }
    let base = components[..literal].join("/");
    let base = if base.is_empty() && pattern.starts_with('/') { "/".to_string() } else { base };
    let rest = &components[literal..];
    let depth = if rest.iter().any(|c| c.contains("**")) { None } else { Some(rest.len()) };
    (PathBuf::from(base), depth)
}

/// The real file system.
pub struct RealWorld;

impl World for RealWorld {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, GlobError> {
        let (base, depth) = walk_root(pattern);
        if depth == Some(0) {
            // A plain path: itself, spelled as written.
            let path = PathBuf::from(pattern);
            return Ok(if path.is_file() { vec![path] } else { Vec::new() });
        }
        let matcher = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| GlobError::Pattern(e.kind().to_string()))?
            .compile_matcher();
        // walkdir follows links but notices a link back to an ancestor instead of walking it
        // forever (`glob` read such a file 41 times over).
        let mut walk = walkdir::WalkDir::new(if base.as_os_str().is_empty() { Path::new(".") } else { &base })
            .follow_links(true)
            .sort_by_file_name();
        if let Some(depth) = depth {
            walk = walk.max_depth(depth);
        }
        let mut files = Vec::new();
        for entry in walk {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => match (e.loop_ancestor(), e.path()) {
                    (Some(target), Some(link)) => {
                        return Err(GlobError::Cycle { link: link.to_path_buf(), target: target.to_path_buf() });
                    }
                    // Unreadable folders are skipped, as a shell's glob does.
                    _ => continue,
                },
            };
            let path = if base.as_os_str().is_empty() {
                entry.path().strip_prefix(".").unwrap_or(entry.path()).to_path_buf()
            } else {
                entry.path().to_path_buf()
            };
            if entry.file_type().is_file() && matcher.is_match(&path) {
                files.push(path);
            }
        }
        files.sort();
        // One file reached by two spellings (a symlink, `a/../a`) is read once: the first spelling.
        let mut seen = std::collections::HashSet::new();
        files.retain(|p| seen.insert(self.canonical(p)));
        Ok(files)
    }

    fn canonical(&self, path: &Path) -> PathBuf {
        path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
    }

    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }

    fn list_files(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(dir)?.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
        files.sort();
        Ok(files)
    }
}
