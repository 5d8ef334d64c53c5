//! The checker's window on the outside: file reads and glob expansion, behind a trait so the
//! checking logic itself stays free of direct IO.

use std::path::{Path, PathBuf};

pub trait World {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    /// Files matching `pattern`, sorted; `Err` for a malformed pattern.
    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String>;
    /// A stable identity for a file, to load each import once.
    fn canonical(&self, path: &Path) -> PathBuf;
    /// Whether `path` is a file (following symlinks).
    fn is_file(&self, path: &Path) -> bool;
    /// The files directly in `dir`, sorted.
    fn list_files(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>>;
}

/// The real file system.
pub struct RealWorld;

impl World for RealWorld {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String> {
        let paths = glob::glob(pattern).map_err(|e| e.msg.to_string())?;
        let mut files: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
        files.sort();
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
