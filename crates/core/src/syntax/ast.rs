//! The untyped syntax tree of a `.cpt` file: items, blocks, fields and expressions, all spanned.
//!
//! The tree is generic on purpose: which block kinds and fields exist is the checker's business,
//! so the parser stays small and every recipe, even a wrong one, gets a full tree.

use crate::source::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A whole file: its items in order, plus its comments for the formatter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
    pub comments: Vec<Comment>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Comment {
    /// The text after `#`, without the line break.
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Import(Import),
    Block(Block),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Import(import) => import.span,
            Item::Block(block) => block.span,
        }
    }
}

/// `import "std/schedules"` or `import "shared.cpt"`.
#[derive(Clone, Debug, PartialEq)]
pub struct Import {
    pub path: String,
    pub path_span: Span,
    pub span: Span,
}

/// `[template] kind [name] [extends base] { entries }`, at top level or nested.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// A template only serves as a base for `extends`; it is not a stage by itself.
    pub template: Option<Span>,
    pub kind: Ident,
    pub name: Option<Ident>,
    pub base: Option<Ident>,
    pub entries: Vec<Entry>,
    pub span: Span,
}

impl Block {
    /// The span to point at when talking about the block as a whole: its header.
    pub fn header_span(&self) -> Span {
        let end = self.base.as_ref().or(self.name.as_ref()).unwrap_or(&self.kind).span;
        self.kind.span.to(end)
    }

    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        self.entries.iter().filter_map(|entry| match entry {
            Entry::Field(field) => Some(field),
            Entry::Block(_) => None,
        })
    }

    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.entries.iter().filter_map(|entry| match entry {
            Entry::Block(block) => Some(block),
            Entry::Field(_) => None,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Field(Field),
    Block(Block),
}

impl Entry {
    pub fn span(&self) -> Span {
        match self {
            Entry::Field(field) => field.span,
            Entry::Block(block) => block.span,
        }
    }
}

/// `key = value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub key: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Number(Number),
    Str(String),
    Bool(bool),
    /// `name` or `name.field`: a reference or an enumerated word such as `cosine`.
    Path(Vec<Ident>),
    List(Vec<Expr>),
    /// `from -> to`, for ramps and windows.
    Range(Box<Expr>, Box<Expr>),
    /// `run at point`: a point of a training run, for forks (`from = cpt at 80%`).
    At(Box<Expr>, Box<Expr>),
    /// Stands in for an expression that failed to parse, so checking can go on.
    Error,
}

/// A number as written: value after scaling (`8k` is 8000, `5%` is 0.05), and its unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Number {
    pub value: f64,
    /// The literal as written, without the unit word, kept so `fmt` never rewrites numbers.
    pub text: String,
    pub unit: Unit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    None,
    Percent,
    Tokens,
    Steps,
    Docs,
    Seqs,
    Bytes,
}

impl Unit {
    /// Unit words, as written after a number.
    pub const WORDS: [(&'static str, Unit); 5] = [
        ("tokens", Unit::Tokens),
        ("steps", Unit::Steps),
        ("docs", Unit::Docs),
        ("seqs", Unit::Seqs),
        ("bytes", Unit::Bytes),
    ];

    pub fn word(self) -> &'static str {
        match self {
            Unit::None => "",
            Unit::Percent => "%",
            Unit::Tokens => "tokens",
            Unit::Steps => "steps",
            Unit::Docs => "docs",
            Unit::Seqs => "seqs",
            Unit::Bytes => "bytes",
        }
    }
}
