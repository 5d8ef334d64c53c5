//! The checker's window on the outside: file reads and glob expansion, behind a trait so the
//! checking logic itself stays free of direct IO.

use std::path::{Path, PathBuf};

pub trait World {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    /// Files matching `pattern` (relative to `base`, a folder whose name is never glob
    /// syntax), sorted, each file once however many spellings reach it; `Err` for a malformed
    /// pattern, a symlink cycle under it (never followed) or a broken link it matches. A
    /// pattern that matches nothing but names a file as written (`part[1].jsonl`) gives it.
    fn glob(&self, base: &Path, pattern: &str) -> Result<Vec<PathBuf>, GlobError>;
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
    /// `link` matches the pattern and leads to `target`, which does not exist.
    Broken { link: PathBuf, target: PathBuf },
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

/// The longest leading folder of `pattern` that holds glob syntax but exists under `base` as
/// spelled, and the rest of the pattern.
fn literal_folder(base: &Path, pattern: &str) -> Option<(PathBuf, String)> {
    let components: Vec<&str> = pattern.split('/').collect();
    (1..components.len()).rev().find_map(|k| {
        let folder = components[..k].join("/");
        let folder = if folder.is_empty() { "/".to_string() } else { folder };
        let path = base.join(&folder);
        (folder.contains(['*', '?', '[', '{']) && path.is_dir()).then(|| (path, components[k..].join("/")))
    })
}

/// The real file system.
pub struct RealWorld;

impl World for RealWorld {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn glob(&self, base: &Path, pattern: &str) -> Result<Vec<PathBuf>, GlobError> {
        let literal = base.join(pattern);
        let broken = |link: PathBuf| {
            let target = std::fs::read_link(&link).unwrap_or_default();
            GlobError::Broken { link, target }
        };
        let (root, depth) = walk_root(pattern);
        if depth == Some(0) {
            // A plain path: itself, spelled as written.
            if literal.is_symlink() && !literal.exists() {
                return Err(broken(literal));
            }
            return Ok(if literal.is_file() { vec![literal] } else { Vec::new() });
        }
        let glob = |pattern: &str| {
            globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| GlobError::Pattern(e.kind().to_string()))
        };
        let matcher = glob(pattern)?;
        // The walk starts at the pattern's leading folder under `base` (an absolute pattern's
        // own); each path it yields is matched as the pattern spells it (`./data/a.jsonl`).
        let base = if Path::new(pattern).is_absolute() { Path::new("") } else { base };
        let walked = base.join(&root);
        let mut walk = walkdir::WalkDir::new(if walked.as_os_str().is_empty() { Path::new(".") } else { &walked })
            // walkdir follows links but notices a link back to an ancestor instead of walking
            // it forever (`glob` read such a file 41 times over).
            .follow_links(true)
            .sort_by_file_name();
        if let Some(depth) = depth {
            walk = walk.max_depth(depth);
        }
        let spelled = |p: &Path| {
            if walked.as_os_str().is_empty() { p.strip_prefix(".").unwrap_or(p).to_path_buf() } else { p.to_path_buf() }
        };
        let as_written = |p: &Path| root.join(p.strip_prefix(&walked).unwrap_or(p));
        // A broken link the pattern matches, or would walk into as a folder (any under `**`):
        // a folder half synced or a disk not mounted, which would shrink the corpus silently.
        let components: Vec<&str> = pattern.split('/').collect();
        let on_the_way = |p: &Path| {
            let k = p.components().count();
            components[..k.min(components.len())].contains(&"**")
                || (k < components.len() && glob(&components[..k].join("/")).is_ok_and(|g| g.is_match(p)))
        };
        let mut files = Vec::new();
        for entry in walk {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => match (e.loop_ancestor(), e.path()) {
                    (Some(target), Some(link)) => {
                        return Err(GlobError::Cycle { link: link.to_path_buf(), target: target.to_path_buf() });
                    }
                    (None, Some(link)) if link.is_symlink() && !link.exists() => {
                        let written = as_written(&spelled(link));
                        if matcher.is_match(&written) || on_the_way(&written) {
                            return Err(broken(spelled(link)));
                        }
                        continue;
                    }
                    // Unreadable folders are skipped, as a shell's glob does.
                    _ => continue,
                },
            };
            let path = spelled(entry.path());
            if entry.file_type().is_file() && matcher.is_match(as_written(&path)) {
                files.push(path);
            }
        }
        if files.is_empty() {
            // A pattern that matches nothing but names a file as written gives it, as a shell
            // leaves such a pattern as the name it spells.
            if literal.is_file() {
                files.push(literal);
            } else if let Some((folder, rest)) = literal_folder(base, pattern) {
                // `/data/set [v2]/*.jsonl`: a folder that exists under the name it spells
                // (tried only when the pattern read as glob syntax matched nothing).
                return self.glob(&folder, &rest);
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
