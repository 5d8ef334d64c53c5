//! Typed access to a block's fields: each getter names the field it knows, checks the value's
//! type and unit, and reports mistakes; `finish` then flags every field nobody asked for.
//!
//! The getters called for a block kind are that kind's schema: the code is the single source.

use super::CheckError;
use super::resolve::Resolved;
use crate::diag::Located;
use crate::source::{FileId, Span};
use crate::suggest::help_for;
use crate::syntax::ast::{Expr, ExprKind, Field, Ident, Unit};

/// What a number must measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Quantity {
    /// A plain number such as an LR or a multiplier.
    Plain,
    /// A plain non-negative integer such as a seed or a vocabulary size.
    Count,
    /// A fraction in [0, 1], written `5%` or `0.05`.
    Ratio,
    /// A number of tokens: `2B tokens`.
    Tokens,
    /// A length of training: `1%` of the stage, `500 steps` or `10M tokens`.
    Amount,
    /// A held-out size: `5%` of the documents or `200 docs`.
    Heldout,
    /// An amount of text: `64k bytes`.
    Bytes,
}

impl Quantity {
    fn expected(self) -> &'static str {
        match self {
            Quantity::Plain => "a plain number",
            Quantity::Count => "a whole number",
            Quantity::Ratio => "a ratio (`5%` or `0.05`)",
            Quantity::Tokens => "a number of tokens (`20M tokens`)",
            Quantity::Amount => "a length of training (`1%`, `500 steps` or `10M tokens`)",
            Quantity::Heldout => "a held-out size (`5%` or `200 docs`)",
            Quantity::Bytes => "an amount of text (`64k bytes`)",
        }
    }

    fn accepts(self, unit: Unit) -> bool {
        match self {
            Quantity::Plain | Quantity::Count => unit == Unit::None,
            Quantity::Ratio => matches!(unit, Unit::None | Unit::Percent),
            Quantity::Tokens => unit == Unit::Tokens,
            Quantity::Amount => matches!(unit, Unit::Percent | Unit::Steps | Unit::Tokens),
            Quantity::Heldout => matches!(unit, Unit::Percent | Unit::Docs),
            Quantity::Bytes => unit == Unit::Bytes,
        }
    }
}

/// A number that passed its type check.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Num {
    pub(crate) value: f64,
    pub(crate) unit: Unit,
    pub(crate) span: Span,
    pub(crate) file: FileId,
}

/// A dotted reference such as `poems` or `best.ratio`.
#[derive(Clone, Debug)]
pub(crate) struct RefPath {
    pub(crate) parts: Vec<Ident>,
    pub(crate) span: Span,
    pub(crate) file: FileId,
}

impl RefPath {
    pub(crate) fn head(&self) -> &Ident {
        // The parser builds paths from at least one identifier.
        &self.parts[0]
    }

    /// The path as written: `best.ratio`.
    pub(crate) fn dotted(&self) -> String {
        self.parts.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(".")
    }
}

pub(crate) fn describe(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::Number(n) => match n.unit {
            Unit::None => "a plain number".to_string(),
            Unit::Percent => "a percentage".to_string(),
            unit => format!("a number of {}", unit.word()),
        },
        ExprKind::Str(_) => "a string".to_string(),
        ExprKind::Bool(_) => "a boolean".to_string(),
        ExprKind::Path(_) => "a name".to_string(),
        ExprKind::List(_) => "a list".to_string(),
        ExprKind::Range(..) => "a range (`a -> b`)".to_string(),
        ExprKind::At(..) => "a point of a run (`run at 80%`)".to_string(),
        ExprKind::Error => "an invalid value".to_string(),
    }
}

pub(crate) struct Fields<'r> {
    block: &'r Resolved,
    errors: &'r mut Vec<Located>,
    known: Vec<&'static str>,
}

impl<'r> Fields<'r> {
    pub(crate) fn new(block: &'r Resolved, errors: &'r mut Vec<Located>) -> Fields<'r> {
        Fields { block, errors, known: Vec::new() }
    }

    pub(crate) fn error(&mut self, file: FileId, error: CheckError) {
        self.errors.push(Located::new(file, error));
    }

    /// The raw field, registering `key` as known.
    pub(crate) fn get(&mut self, key: &'static str) -> Option<&'r (Field, FileId)> {
        self.known.push(key);
        self.block.fields.iter().find(|(f, _)| f.key.name == key)
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.block.fields.iter().any(|(f, _)| f.key.name == key)
    }

    pub(crate) fn missing(&mut self, key: &'static str, example: &str) {
        let error = CheckError::MissingField {
            kind: self.block.kind.clone(),
            name: self.block.display_name(),
            field: key.to_string(),
            span: self.block.header.into(),
            help: format!("add `{key} = {example}`"),
        };
        self.error(self.block.file, error);
    }

    fn mismatch(&mut self, key: &str, expected: &str, expr: &Expr, file: FileId, help: Option<String>) {
        mismatch(self.errors, key, expected, expr, file, help);
    }

    pub(crate) fn string(&mut self, key: &'static str) -> Option<(String, Span, FileId)> {
        let (field, file) = self.get(key)?;
        match &field.value.kind {
            ExprKind::Str(s) => Some((s.clone(), field.value.span, *file)),
            ExprKind::Error => None,
            _ => {
                self.mismatch(key, "a string", &field.value, *file, Some("quote it: \"...\"".to_string()));
                None
            }
        }
    }

    /// A string or a list of strings.
    pub(crate) fn strings(&mut self, key: &'static str) -> Option<Vec<(String, Span, FileId)>> {
        let (field, file) = self.get(key)?;
        let items: Vec<&Expr> = match &field.value.kind {
            ExprKind::List(items) => items.iter().collect(),
            _ => vec![&field.value],
        };
        let mut out = Vec::new();
        for item in items {
            match &item.kind {
                ExprKind::Str(s) => out.push((s.clone(), item.span, *file)),
                ExprKind::Error => return None,
                _ => {
                    self.mismatch(key, "a string or a list of strings", item, *file, None);
                    return None;
                }
            }
        }
        Some(out)
    }

    pub(crate) fn boolean(&mut self, key: &'static str) -> Option<bool> {
        let (field, file) = self.get(key)?;
        match &field.value.kind {
            ExprKind::Bool(b) => Some(*b),
            ExprKind::Error => None,
            _ => {
                self.mismatch(key, "`true` or `false`", &field.value, *file, None);
                None
            }
        }
    }

    /// One word out of a fixed set, e.g. `shape = cosine`.
    pub(crate) fn word<T: Copy>(&mut self, key: &'static str, what: &str, choices: &[(&str, T)]) -> Option<T> {
        let (field, file) = self.get(key)?;
        self.word_of(key, what, &field.value, *file, choices)
    }

    pub(crate) fn word_of<T: Copy>(
        &mut self,
        key: &str,
        what: &str,
        expr: &Expr,
        file: FileId,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        match &expr.kind {
            ExprKind::Path(parts) if parts.len() == 1 => {
                let word = &parts[0].name;
                if let Some((_, value)) = choices.iter().find(|(n, _)| n == word) {
                    return Some(*value);
                }
                let error = CheckError::UnknownValue {
                    what: what.to_string(),
                    word: word.clone(),
                    span: expr.span.into(),
                    help: help_for(word, &names, what),
                };
                self.error(file, error);
                None
            }
            ExprKind::Error => None,
            _ => {
                let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                let expected = format!("one of {}", quoted.join(", "));
                self.mismatch(key, &expected, expr, file, None);
                None
            }
        }
    }

    /// A list of words out of a fixed set (a single word is a list of one).
    pub(crate) fn words<T: Copy>(&mut self, key: &'static str, what: &str, choices: &[(&str, T)]) -> Option<Vec<T>> {
        let (field, file) = self.get(key)?;
        let items: Vec<&Expr> = match &field.value.kind {
            ExprKind::List(items) => items.iter().collect(),
            _ => vec![&field.value],
        };
        let mut out = Vec::new();
        for item in items {
            out.push(self.word_of(key, what, item, *file, choices)?);
        }
        Some(out)
    }

    pub(crate) fn number(&mut self, key: &'static str, quantity: Quantity) -> Option<Num> {
        let (field, file) = self.get(key)?;
        self.number_of(key, &field.value, *file, quantity)
    }

    pub(crate) fn number_of(&mut self, key: &str, expr: &Expr, file: FileId, quantity: Quantity) -> Option<Num> {
        number_of(self.errors, key, expr, file, quantity)
    }

    /// A list of numbers (a single number is a list of one).
    pub(crate) fn numbers(&mut self, key: &'static str, quantity: Quantity) -> Option<Vec<Num>> {
        let (field, file) = self.get(key)?;
        let items: Vec<&Expr> = match &field.value.kind {
            ExprKind::List(items) => items.iter().collect(),
            _ => vec![&field.value],
        };
        if items.is_empty() {
            let error = CheckError::OutOfRange {
                message: format!("`{key}` is empty"),
                span: field.value.span.into(),
                label: "needs at least one value".to_string(),
                help: None,
            };
            self.error(*file, error);
            return None;
        }
        let mut out = Vec::new();
        for item in items {
            out.push(self.number_of(key, item, *file, quantity)?);
        }
        Some(out)
    }

    /// `a -> b` of two numbers.
    pub(crate) fn range(&mut self, key: &'static str, quantity: Quantity) -> Option<(Num, Num)> {
        let (field, file) = self.get(key)?;
        let ExprKind::Range(from, to) = &field.value.kind else {
            if field.value.kind != ExprKind::Error {
                let expected = format!("a range `from -> to` of {}", quantity.expected());
                self.mismatch(key, &expected, &field.value, *file, None);
            }
            return None;
        };
        let from = self.number_of(key, from, *file, quantity);
        let to = self.number_of(key, to, *file, quantity);
        Some((from?, to?))
    }

    /// A reference or a list of references.
    pub(crate) fn refs(&mut self, key: &'static str) -> Option<Vec<RefPath>> {
        let (field, file) = self.get(key)?;
        let items: Vec<&Expr> = match &field.value.kind {
            ExprKind::List(items) => items.iter().collect(),
            _ => vec![&field.value],
        };
        let mut out = Vec::new();
        for item in items {
            match &item.kind {
                ExprKind::Path(parts) => out.push(RefPath { parts: parts.clone(), span: item.span, file: *file }),
                ExprKind::Error => return None,
                _ => {
                    self.mismatch(key, "a name or a list of names", item, *file, None);
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A single reference.
    pub(crate) fn reference(&mut self, key: &'static str) -> Option<RefPath> {
        let (field, file) = self.get(key)?;
        match &field.value.kind {
            ExprKind::Path(parts) => Some(RefPath { parts: parts.clone(), span: field.value.span, file: *file }),
            ExprKind::Error => None,
            _ => {
                self.mismatch(key, "a name", &field.value, *file, None);
                None
            }
        }
    }

    /// Reports fields that no getter asked for, and nested blocks of unknown kinds.
    pub(crate) fn finish(self, nested: &[&str]) {
        let Fields { block, errors, known } = self;
        for (field, file) in &block.fields {
            if !known.contains(&field.key.name.as_str()) {
                let error = CheckError::UnknownField {
                    field: field.key.name.clone(),
                    kind: block.kind.clone(),
                    span: field.key.span.into(),
                    help: misplaced(&field.key.name, &block.kind)
                        .unwrap_or_else(|| help_for(&field.key.name, &known, "field")),
                };
                errors.push(Located::new(*file, error));
            }
        }
        for child in &block.blocks {
            if !nested.contains(&child.kind.as_str()) {
                let help = if nested.is_empty() {
                    format!("{} blocks hold fields only", block.kind)
                } else {
                    help_for(&child.kind, nested, "nested block")
                };
                let error = CheckError::UnknownKind { kind: child.kind.clone(), span: child.kind_span.into(), help };
                errors.push(Located::new(child.file, error));
            }
        }
    }
}

/// Checks that `expr` is a number measuring `quantity`, in range.
pub(crate) fn number_of(
    errors: &mut Vec<Located>,
    key: &str,
    expr: &Expr,
    file: FileId,
    quantity: Quantity,
) -> Option<Num> {
    let ExprKind::Number(number) = &expr.kind else {
        if expr.kind != ExprKind::Error {
            mismatch(errors, key, quantity.expected(), expr, file, None);
        }
        return None;
    };
    if !quantity.accepts(number.unit) {
        let help = match (quantity, number.unit) {
            (Quantity::Tokens, Unit::None) => Some(format!("write `{} tokens`", number.text)),
            (Quantity::Amount, Unit::None) => {
                Some(format!("write `{0} steps`, `{0} tokens`, or a percentage of the stage", number.text))
            }
            (Quantity::Heldout, Unit::None) => Some(format!("write `{0} docs` or a percentage", number.text)),
            (Quantity::Bytes, Unit::None | Unit::Tokens) => Some(format!(
                "held-out text is measured in bytes, the same for every tokenizer: write `{} bytes`",
                number.text
            )),
            _ => None,
        };
        mismatch(errors, key, quantity.expected(), expr, file, help);
        return None;
    }
    let value = number.value;
    let whole = value >= 0.0 && value.fract() == 0.0;
    let ok = match (quantity, number.unit) {
        (Quantity::Ratio, _) | (_, Unit::Percent) => (0.0..=1.0).contains(&value),
        (Quantity::Count | Quantity::Tokens | Quantity::Bytes, _)
        | (_, Unit::Steps | Unit::Tokens | Unit::Docs | Unit::Bytes) => whole,
        _ => true,
    };
    if !ok {
        let (message, label) = if number.unit == Unit::Percent || quantity == Quantity::Ratio {
            (format!("`{key}` must be between 0% and 100%"), "outside [0%, 100%]")
        } else {
            (format!("`{key}` must be a whole, non-negative number"), "not a whole number")
        };
        let error = CheckError::OutOfRange { message, span: expr.span.into(), label: label.to_string(), help: None };
        errors.push(Located::new(file, error));
        return None;
    }
    Some(Num { value, unit: number.unit, span: expr.span, file })
}

fn mismatch(errors: &mut Vec<Located>, key: &str, expected: &str, expr: &Expr, file: FileId, help: Option<String>) {
    let error = CheckError::TypeMismatch {
        field: key.to_string(),
        expected: expected.to_string(),
        found: describe(expr),
        span: expr.span.into(),
        help,
    };
    errors.push(Located::new(file, error));
}

/// Fields users put in the wrong block, with the block they belong to and what they do there.
const HOMES: &[(&str, &str, &str)] = &[
    ("max_epochs", "corpus", "the passes over that corpus a mixture may draw"),
    ("heldout", "corpus", "the documents that corpus keeps for evaluation"),
    ("split_by", "corpus", "the record field whose value places a document"),
    ("template", "corpus", "how a record becomes text"),
    ("repeat", "mixture", "whether a source that runs out starts another pass"),
    ("ramp", "mixture", "how the domain share rises over training"),
    ("seq_len", "train", "the tokens per training sequence"),
    ("tokens", "train", "the tokens a training draws"),
];

/// The help for `field`, unknown in a `kind` block, when it is a field of another kind.
fn misplaced(field: &str, kind: &str) -> Option<String> {
    let &(_, home, what) = HOMES.iter().find(|(name, home, _)| *name == field && *home != kind)?;
    Some(format!("`{field}` is a field of `{home}` blocks ({what}), not of `{kind}` blocks"))
}
