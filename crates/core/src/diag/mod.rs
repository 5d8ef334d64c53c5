//! Diagnostics shared by all phases: an error tied to the file it is about, and rendering.
//!
//! Phase errors carry byte spans but no source text; the file is attached here, at the end,
//! so phases stay pure and one error type serves any file (recipe or stdlib).

use std::fmt;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};
use thiserror::Error;

use crate::check::CheckError;
use crate::source::{FileId, SourceMap};
use crate::syntax::ParseError;

/// An error of any front-end phase.
#[derive(Clone, Debug, Error, Diagnostic, PartialEq)]
pub enum PhaseError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Check(#[from] CheckError),
}

/// An error and the file its spans point into.
#[derive(Clone, Debug, PartialEq)]
pub struct Located {
    pub file: FileId,
    pub error: PhaseError,
}

impl Located {
    pub fn new(file: FileId, error: impl Into<PhaseError>) -> Located {
        Located { file, error: error.into() }
    }

    /// The stable code, such as `cptc::check::unknown_name`.
    pub fn code(&self) -> String {
        self.error.code().map(|c| c.to_string()).unwrap_or_default()
    }
}

/// A diagnostic with its source attached, so miette can draw the snippet.
struct WithSource<'a> {
    error: &'a PhaseError,
    source: NamedSource<std::sync::Arc<String>>,
}

impl fmt::Debug for WithSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.error, f)
    }
}

impl fmt::Display for WithSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.error, f)
    }
}

impl std::error::Error for WithSource<'_> {}

impl Diagnostic for WithSource<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.error.code()
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.error.help()
    }
    fn severity(&self) -> Option<miette::Severity> {
        self.error.severity()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.error.labels()
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }
}

/// Renders errors as text. `color` is for terminals; tests and pipes get plain Unicode.
pub fn render(errors: &[Located], sources: &SourceMap, color: bool, width: usize) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width);
    let mut out = String::new();
    for located in errors {
        let source = sources.get(located.file).named_source();
        let with_source = WithSource { error: &located.error, source };
        if handler.render_report(&mut out, &with_source).is_err() {
            out.push_str(&located.error.to_string());
        }
        out.push('\n');
    }
    out
}

/// A one-line summary, `file:line:col: code: message`, for logs and `--format short`.
pub fn render_short(errors: &[Located], sources: &SourceMap) -> String {
    let mut out = String::new();
    for located in errors {
        let file = sources.get(located.file);
        let offset = located.error.labels().and_then(|mut l| l.next()).map_or(0, |l| l.offset());
        let (line, col) = file.line_col(u32::try_from(offset).unwrap_or(u32::MAX));
        out.push_str(&format!("{}:{line}:{col}: {}: {}\n", file.name, located.code(), located.error));
    }
    out
}

/// What a caught panic said (its `&str` or `String` payload), for the error that replaces it.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string())
}
