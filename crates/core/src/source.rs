//! Source files, file ids and byte spans shared by every phase's diagnostics.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A byte range in one source file. Offsets are `u32`: recipes are far below 4 GiB, and the
/// parser refuses larger input before building spans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        let clamp = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
        Span { start: clamp(start), end: clamp(end.max(start)) }
    }

    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        miette::SourceSpan::new((span.start as usize).into(), span.len())
    }
}

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// One loaded recipe or stdlib module.
#[derive(Debug)]
pub struct SourceFile {
    pub id: FileId,
    /// Name shown in diagnostics: the path as the user gave it, or `<stdlib/NAME.cpt>`.
    pub name: String,
    /// Real location on disk; `None` for embedded stdlib modules.
    pub path: Option<PathBuf>,
    pub text: Arc<String>,
}

impl SourceFile {
    pub fn dir(&self) -> Option<&Path> {
        self.path.as_deref().and_then(Path::parent)
    }

    pub fn named_source(&self) -> miette::NamedSource<Arc<String>> {
        miette::NamedSource::new(&self.name, self.text.clone())
    }

    /// 1-based line and column of a byte offset, for plain-text messages.
    pub fn line_col(&self, offset: u32) -> (usize, usize) {
        let offset = (offset as usize).min(self.text.len());
        let before = self.text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

/// All files loaded while checking one recipe, indexed by [`FileId`].
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn add(&mut self, name: String, path: Option<PathBuf>, text: String) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).unwrap_or(u32::MAX));
        self.files.push(SourceFile { id, name, path, text: Arc::new(text) });
        id
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        // Ids are only minted by `add`, so every id indexes a file.
        &self.files[id.0 as usize]
    }

    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }
}
