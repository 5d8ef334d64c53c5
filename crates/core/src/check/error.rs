//! Checking errors: names, kinds, fields, types and units, sums, cycles, files. Codes are
//! `cptc::check::*` and stable: tests snapshot them and users search for them.

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;

#[derive(Clone, Debug, Error, Diagnostic, PartialEq)]
pub enum CheckError {
    #[error("unknown block kind `{kind}`")]
    #[diagnostic(code(cptc::check::unknown_kind))]
    UnknownKind {
        kind: String,
        #[label("not a kind of block")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    #[error("{kind} blocks need a name")]
    #[diagnostic(
        code(cptc::check::missing_name),
        help("write `{kind} NAME {{ ... }}`; other blocks refer to it by NAME")
    )]
    MissingName {
        kind: String,
        #[label("this {kind} has no name")]
        span: SourceSpan,
    },

    #[error("`{name}` is defined twice")]
    #[diagnostic(code(cptc::check::duplicate_name))]
    DuplicateName {
        name: String,
        #[label("defined again here")]
        span: SourceSpan,
        #[label("first defined here")]
        first: Option<SourceSpan>,
        #[help]
        help: Option<String>,
    },

    #[error("unknown field `{field}` in {kind}")]
    #[diagnostic(code(cptc::check::unknown_field))]
    UnknownField {
        field: String,
        kind: String,
        #[label("unknown field")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    #[error("field `{field}` is given twice")]
    #[diagnostic(code(cptc::check::duplicate_field), help("keep one of them"))]
    DuplicateField {
        field: String,
        #[label("given again here")]
        span: SourceSpan,
        #[label("first given here")]
        first: SourceSpan,
    },

    #[error("{kind} `{name}` is missing the field `{field}`")]
    #[diagnostic(code(cptc::check::missing_field))]
    MissingField {
        kind: String,
        name: String,
        field: String,
        #[label("needs `{field}`")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    #[error("`{field}` expects {expected}, found {found}")]
    #[diagnostic(code(cptc::check::type_mismatch))]
    TypeMismatch {
        field: String,
        expected: String,
        found: String,
        #[label("{found}")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("unknown {what} `{word}`")]
    #[diagnostic(code(cptc::check::unknown_value))]
    UnknownValue {
        what: String,
        word: String,
        #[label("not a valid {what}")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    #[error("{message}")]
    #[diagnostic(code(cptc::check::out_of_range))]
    OutOfRange {
        message: String,
        #[label("{label}")]
        span: SourceSpan,
        label: String,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(code(cptc::check::fork))]
    Fork {
        message: String,
        #[label("{label}")]
        span: SourceSpan,
        label: String,
        #[help]
        help: Option<String>,
    },

    #[error("no {expected} named `{name}`")]
    #[diagnostic(code(cptc::check::unknown_name))]
    UnknownName {
        name: String,
        expected: String,
        #[label("not defined")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    #[error("`{name}` is a {found}, but {expected} is expected here")]
    #[diagnostic(code(cptc::check::wrong_kind))]
    WrongKind {
        name: String,
        expected: String,
        found: String,
        #[label("a {found}")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("`{name}` has no output `{field}`")]
    #[diagnostic(code(cptc::check::unknown_output))]
    UnknownOutput {
        name: String,
        field: String,
        #[label("unknown output")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    #[error("cyclic definition: {cycle}")]
    #[diagnostic(code(cptc::check::cycle), help("{help}"))]
    Cycle {
        cycle: String,
        #[label("this reference closes the cycle")]
        span: SourceSpan,
        help: String,
    },

    #[error("the shares of mixture `{mixture}` sum to {sum}, not 100%")]
    #[diagnostic(code(cptc::check::shares_sum))]
    SharesSum {
        mixture: String,
        sum: String,
        #[label("shares: {parts}")]
        span: SourceSpan,
        parts: String,
        #[help]
        help: String,
    },

    #[error("{message}")]
    #[diagnostic(code(cptc::check::conflict))]
    Conflict {
        message: String,
        #[label("{label}")]
        span: SourceSpan,
        label: String,
        #[label("conflicts with this")]
        other: Option<SourceSpan>,
        #[help]
        help: Option<String>,
    },

    #[error("{what} `{pattern}` matches no file")]
    #[diagnostic(code(cptc::check::no_match))]
    NoMatch {
        what: &'static str,
        pattern: String,
        #[label("looked for {resolved}")]
        span: SourceSpan,
        resolved: String,
        #[help]
        help: Option<String>,
    },

    #[error("pattern `{pattern}` reaches a symlink cycle: `{link}` leads back to `{target}`")]
    #[diagnostic(
        code(cptc::check::symlink_cycle),
        help("cptc does not follow a link into a folder that contains it: remove the link, or narrow the pattern")
    )]
    SymlinkCycle {
        pattern: String,
        #[label("walks into the cycle")]
        span: SourceSpan,
        link: String,
        target: String,
    },

    #[error("pattern `{pattern}` reaches `{link}`, a symlink to `{target}`, which leads nowhere")]
    #[diagnostic(
        code(cptc::check::broken_link),
        help(
            "a folder half synced or a disk not mounted would silently shrink the corpus: fix the link, or remove it"
        )
    )]
    BrokenLink {
        pattern: String,
        #[label("reaches the broken link")]
        span: SourceSpan,
        link: String,
        target: String,
    },

    #[error("pattern `{pattern}` matches a path that is not UTF-8: `{name}`")]
    #[diagnostic(
        code(cptc::check::file_name),
        help("recipes, reports and the store name files in UTF-8: rename it (`convmv` converts a folder's names)")
    )]
    FileName {
        pattern: String,
        #[label("matches it")]
        span: SourceSpan,
        /// The path, its bytes that are not UTF-8 shown as U+FFFD.
        name: String,
    },

    #[error("cannot import `{path}`: {reason}")]
    #[diagnostic(code(cptc::check::import))]
    Import {
        path: String,
        reason: String,
        #[label("imported here")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("cannot read `{path}`: {reason}")]
    #[diagnostic(code(cptc::check::read), help("check the path and its permissions"))]
    Read { path: String, reason: String },

    #[error("{message}")]
    #[diagnostic(code(cptc::check::loss_on))]
    LossOn {
        message: String,
        #[label("{label}")]
        span: SourceSpan,
        label: String,
        #[help]
        help: String,
    },

    #[error("invalid template: {reason}")]
    #[diagnostic(
        code(cptc::check::template),
        help(
            "a template names record fields in braces, e.g. \"{{question}}\\n{{answer}}\"; write \\{{ for a literal brace"
        )
    )]
    Template {
        reason: String,
        #[label("{reason}")]
        span: SourceSpan,
    },
}
