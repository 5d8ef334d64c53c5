//! Syntax errors: one variant per distinct failure, each with a stable `cptc::parse::*` code.

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;

#[derive(Clone, Debug, Error, Diagnostic, PartialEq)]
pub enum ParseError {
    #[error("the file is not valid UTF-8")]
    #[diagnostic(code(cptc::parse::invalid_utf8), help("recipes are UTF-8 text; re-save the file as UTF-8"))]
    InvalidUtf8 {
        #[label("invalid byte here")]
        span: SourceSpan,
    },

    #[error("the file is too large ({size} bytes)")]
    #[diagnostic(code(cptc::parse::too_large), help("a recipe may be at most {limit} bytes"))]
    TooLarge { size: usize, limit: usize },

    #[error("expected {expected}, found {found}")]
    #[diagnostic(code(cptc::parse::unexpected))]
    Unexpected {
        expected: String,
        found: String,
        #[label("expected {expected}")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("unterminated string")]
    #[diagnostic(
        code(cptc::parse::unterminated_string),
        help("close the string with `\"` on the same line; write `\\n` for a line break")
    )]
    UnterminatedString {
        #[label("string starts here")]
        span: SourceSpan,
    },

    #[error("invalid escape `{escape}` in string")]
    #[diagnostic(
        code(cptc::parse::invalid_escape),
        help("valid escapes are \\n, \\t, \\r, \\\\, \\\", \\{{, \\}} and \\u{{XXXX}}")
    )]
    InvalidEscape {
        escape: String,
        #[label("unknown escape")]
        span: SourceSpan,
    },

    #[error("invalid number `{text}`: {reason}")]
    #[diagnostic(code(cptc::parse::invalid_number), help("numbers look like 42, 3e-4, 0.5, 8k, 200M, 2B or 5%"))]
    InvalidNumber {
        text: String,
        reason: String,
        #[label("{reason}")]
        span: SourceSpan,
    },

    #[error("unknown unit `{word}`")]
    #[diagnostic(code(cptc::parse::unknown_unit))]
    UnknownUnit {
        word: String,
        #[label("not a unit")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    #[error("unclosed {what}")]
    #[diagnostic(code(cptc::parse::unclosed), help("add the missing `{close}`"))]
    Unclosed {
        what: &'static str,
        close: char,
        #[label("opened here")]
        open: SourceSpan,
        #[label("reached here without a closing `{close}`")]
        end: SourceSpan,
    },

    #[error("entries must be on separate lines")]
    #[diagnostic(
        code(cptc::parse::missing_separator),
        help("start a new line, or separate entries on one line with `;`")
    )]
    MissingSeparator {
        #[label("this starts a new entry on the same line")]
        span: SourceSpan,
    },

    #[error("nesting is deeper than {limit} levels")]
    #[diagnostic(code(cptc::parse::too_deep), help("flatten the lists or blocks"))]
    TooDeep {
        limit: usize,
        #[label("too deep here")]
        span: SourceSpan,
    },
}
