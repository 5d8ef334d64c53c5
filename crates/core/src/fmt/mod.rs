//! The canonical layout of `.cpt` files, used by `cptc fmt`: two-space indents, one blank line
//! between items, single-line lists when they fit, every comment kept where it was.
//!
//! Formatting is idempotent (a test runs it twice on every recipe) and refuses files with
//! syntax errors rather than guess.

use crate::syntax::ast::{Block, Comment, Entry, Expr, ExprKind, File, Item, Unit};
use crate::syntax::{ParseError, parse};

const INDENT: &str = "  ";
const MAX_WIDTH: usize = 100;

/// Formats `text`; `Err` holds the syntax errors that prevent it.
pub fn format(text: &str) -> Result<String, Vec<ParseError>> {
    let (file, errors) = parse(text);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut printer = Printer { src: text, out: String::new(), comments: &file.comments, next_comment: 0 };
    printer.file(&file);
    Ok(printer.out)
}

struct Printer<'a> {
    src: &'a str,
    out: String,
    comments: &'a [Comment],
    next_comment: usize,
}

impl Printer<'_> {
    fn slice(&self, start: u32, end: u32) -> &str {
        self.src.get(start as usize..end as usize).unwrap_or("")
    }

    /// Whether the source has a blank line between `from` and `to`.
    fn blank_between(&self, from: u32, to: u32) -> bool {
        let between = self.slice(from, to);
        let mut newlines = 0;
        for c in between.chars() {
            match c {
                '\n' => {
                    newlines += 1;
                    if newlines >= 2 {
                        return true;
                    }
                }
                c if c.is_whitespace() => {}
                _ => newlines = 0,
            }
        }
        false
    }

    /// Own-line comments that start before `before`, at `indent`.
    fn leading(&mut self, before: u32, indent: usize, mut last_end: u32) -> u32 {
        while let Some(comment) = self.comments.get(self.next_comment) {
            if comment.span.start >= before {
                break;
            }
            if self.blank_between(last_end, comment.span.start)
                && !self.out.ends_with("{\n")
                && !self.out.is_empty()
                && !self.out.ends_with("\n\n")
            {
                self.out.push('\n');
            }
            self.line(indent, &format!("#{}", comment.text));
            last_end = comment.span.end;
            self.next_comment += 1;
        }
        last_end
    }

    /// A comment on the same line after `after`, appended to the current line.
    fn trailing(&mut self, after: u32) {
        self.trailing_before(after, u32::MAX);
    }

    /// Like `trailing`, for a comment that starts before `before` only.
    fn trailing_before(&mut self, after: u32, before: u32) {
        if let Some(comment) = self.comments.get(self.next_comment) {
            let between = self.slice(after, comment.span.start);
            // Only punctuation may stand between the code and its comment on that line.
            let same_line = between.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '{' | '}' | ';' | ','));
            if comment.span.start >= after && comment.span.start < before && same_line {
                self.out.push_str(&format!("  #{}", comment.text));
                self.next_comment += 1;
            }
        }
    }

    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.out.push_str(INDENT);
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn file(&mut self, file: &File) {
        let mut previous: Option<&Item> = None;
        let mut last_end = 0;
        for item in &file.items {
            let separate = match (previous, item) {
                (None, _) => false,
                (Some(Item::Import(_)), Item::Import(_)) => self.blank_between(last_end, item.span().start),
                _ => true,
            };
            if separate {
                self.out.push('\n');
            }
            self.leading(item.span().start, 0, last_end);
            match item {
                Item::Import(import) => {
                    let path = self.slice(import.path_span.start, import.path_span.end).to_string();
                    self.out.push_str(&format!("import {path}"));
                    self.trailing(import.span.end);
                    self.out.push('\n');
                }
                Item::Block(block) => self.block(block, 0),
            }
            last_end = item.span().end;
            previous = Some(item);
        }
        if self.next_comment < self.comments.len() && !self.out.is_empty() {
            self.out.push('\n');
        }
        self.leading(u32::MAX, 0, last_end);
    }

    fn header(block: &Block) -> String {
        let mut text = if block.template.is_some() { String::from("template ") } else { String::new() };
        text.push_str(&block.kind.name);
        if let Some(name) = &block.name {
            text.push(' ');
            text.push_str(&name.name);
        }
        if let Some(base) = &block.base {
            text.push_str(" extends ");
            text.push_str(&base.name);
        }
        text
    }

    fn block(&mut self, block: &Block, indent: usize) {
        for _ in 0..indent {
            self.out.push_str(INDENT);
        }
        let header = Self::header(block);
        let has_inner_comment = self.comments.get(self.next_comment).is_some_and(|c| c.span.start < block.span.end);
        if block.entries.is_empty() && !has_inner_comment {
            self.out.push_str(&format!("{header} {{}}"));
            self.trailing(block.span.end);
            self.out.push('\n');
            return;
        }
        self.out.push_str(&format!("{header} {{"));
        let first_entry = block.entries.first().map_or(block.span.end, |e| e.span().start);
        self.trailing_before(block.header_span().end, first_entry);
        self.out.push('\n');
        let mut last_end = block.header_span().end;
        for (i, entry) in block.entries.iter().enumerate() {
            let start = entry.span().start;
            let first_comment =
                self.comments.get(self.next_comment).filter(|c| c.span.start < start).map(|c| c.span.start);
            if i > 0 && self.blank_between(last_end, first_comment.unwrap_or(start)) {
                self.out.push('\n');
            }
            self.leading(start, indent + 1, last_end);
            match entry {
                Entry::Field(field) => {
                    let prefix = format!("{} = ", field.key.name);
                    let value = self.expr(&field.value, indent + 1, prefix.len());
                    for _ in 0..=indent {
                        self.out.push_str(INDENT);
                    }
                    self.out.push_str(&prefix);
                    self.out.push_str(&value);
                    self.trailing(field.span.end);
                    self.out.push('\n');
                }
                Entry::Block(child) => self.block(child, indent + 1),
            }
            last_end = entry.span().end;
        }
        // Comments after the last entry stay inside the block.
        let close = block.span.end.saturating_sub(1);
        self.leading(close, indent + 1, last_end);
        for _ in 0..indent {
            self.out.push_str(INDENT);
        }
        self.out.push('}');
        self.trailing(block.span.end);
        self.out.push('\n');
    }

    /// The value's text; long lists break one item per line at `indent + 1`.
    fn expr(&self, expr: &Expr, indent: usize, used: usize) -> String {
        let flat = self.flat(expr);
        let ExprKind::List(items) = &expr.kind else {
            return flat;
        };
        if indent * INDENT.len() + used + flat.len() <= MAX_WIDTH || items.is_empty() {
            return flat;
        }
        let mut out = String::from("[\n");
        for item in items {
            for _ in 0..=indent {
                out.push_str(INDENT);
            }
            out.push_str(&self.expr(item, indent + 1, 0));
            out.push_str(",\n");
        }
        for _ in 0..indent {
            out.push_str(INDENT);
        }
        out.push(']');
        out
    }

    fn flat(&self, expr: &Expr) -> String {
        match &expr.kind {
            ExprKind::Number(n) => match n.unit {
                Unit::None => n.text.clone(),
                Unit::Percent => format!("{}%", n.text),
                unit => format!("{} {}", n.text, unit.word()),
            },
            // Strings are kept exactly as written, escapes included.
            ExprKind::Str(_) => self.slice(expr.span.start, expr.span.end).to_string(),
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::Path(parts) => parts.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join("."),
            ExprKind::List(items) => {
                let inner: Vec<String> = items.iter().map(|i| self.flat(i)).collect();
                format!("[{}]", inner.join(", "))
            }
            ExprKind::Range(a, b) => format!("{} -> {}", self.flat(a), self.flat(b)),
            ExprKind::At(a, b) => format!("{} at {}", self.flat(a), self.flat(b)),
            ExprKind::Error => self.slice(expr.span.start, expr.span.end).to_string(),
        }
    }
}
