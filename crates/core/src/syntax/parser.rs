//! Recursive-descent parser for `.cpt` files over nom lexemes.
//!
//! Architecture invariant: parsing never fails and never panics. It returns a tree plus every
//! error found; after an error it resumes at the next entry or item boundary.

use super::ast::{Block, Comment, Entry, Expr, ExprKind, Field, File, Ident, Import, Item, Number, Unit};
use super::error::ParseError;
use super::lexeme;
use crate::source::Span;
use crate::suggest::did_you_mean;

/// How deep lists and blocks may nest. Recipes need 3 or 4 levels; the bound keeps the
/// recursive parser's stack small whatever the input.
pub const MAX_DEPTH: usize = 32;

/// Largest recipe accepted; spans are `u32` and real recipes are a few KiB.
pub const MAX_FILE_BYTES: usize = 16 << 20;

/// Errors reported per file before the parser stops: past this, more would only be noise
/// (and a 16 MiB file of garbage must not produce millions of them).
pub const MAX_ERRORS: usize = 50;

/// Reserved words of the grammar (the rest of the words are identifiers).
pub const KEYWORDS: [&str; 6] = ["import", "template", "extends", "true", "false", "at"];

/// Punctuation of the grammar.
pub const PUNCTUATION: [&str; 10] = ["{", "}", "[", "]", "=", ",", ";", ".", "->", "%"];

/// Parses raw bytes: invalid UTF-8 is reported, never guessed at.
pub fn parse_bytes(bytes: &[u8]) -> (File, Vec<ParseError>) {
    if bytes.len() > MAX_FILE_BYTES {
        let error = ParseError::TooLarge { size: bytes.len(), limit: MAX_FILE_BYTES };
        return (File::default(), vec![error]);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text),
        Err(err) => {
            let at = err.valid_up_to();
            let span = Span::new(at, at + err.error_len().unwrap_or(1));
            (File::default(), vec![ParseError::InvalidUtf8 { span: span.into() }])
        }
    }
}

/// Parses a recipe's text into its tree and the syntax errors found.
pub fn parse(text: &str) -> (File, Vec<ParseError>) {
    if text.len() > MAX_FILE_BYTES {
        let error = ParseError::TooLarge { size: text.len(), limit: MAX_FILE_BYTES };
        return (File::default(), vec![error]);
    }
    let mut parser = Parser { src: text, pos: 0, errors: Vec::new(), comments: Vec::new(), depth: 0 };
    let items = parser.file();
    (File { items, comments: parser.comments }, parser.errors)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    errors: Vec<ParseError>,
    comments: Vec<Comment>,
    depth: usize,
}

/// Marks a parse that already reported its error; the caller recovers.
struct Reported;

type PResult<T> = Result<T, Reported>;

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_eof(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn advance_to(&mut self, rest: &str) {
        self.pos = self.src.len() - rest.len();
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }

    fn span_from(&self, start: usize) -> Span {
        Span::new(start, self.pos)
    }

    /// Skips spaces and comments on the current line.
    fn skip_inline(&mut self) {
        loop {
            if let Ok((rest, _)) = lexeme::inline_space(self.rest()) {
                self.advance_to(rest);
            }
            match lexeme::comment(self.rest()) {
                Ok((rest, text)) => {
                    let start = self.pos;
                    self.advance_to(rest);
                    let text = text.get(1..).unwrap_or("").trim_end_matches('\r').to_string();
                    self.comments.push(Comment { text, span: self.span_from(start) });
                }
                Err(_) => return,
            }
        }
    }

    /// Skips whitespace, line breaks and comments; with `semicolons`, entry separators too.
    fn skip_blank(&mut self, semicolons: bool) {
        loop {
            self.skip_inline();
            match self.peek() {
                Some('\n') => self.bump(),
                Some(';') if semicolons => self.bump(),
                _ => return,
            }
        }
    }

    fn found(&self) -> String {
        let rest = self.rest();
        match rest.chars().next() {
            None => "end of file".to_string(),
            Some('\n') => "end of line".to_string(),
            Some(c) if lexeme::is_ident_char(c) => {
                let word: String = rest.chars().take_while(|&c| lexeme::is_ident_char(c)).take(40).collect();
                format!("`{word}`")
            }
            Some(c) if c.is_control() => format!("control character U+{:04X}", c as u32),
            Some(c) => format!("`{c}`"),
        }
    }

    fn found_span(&self) -> Span {
        let rest = self.rest();
        let len = match rest.chars().next() {
            Some(c) if lexeme::is_ident_char(c) => rest.chars().take_while(|&c| lexeme::is_ident_char(c)).count(),
            Some(c) => c.len_utf8(),
            None => 0,
        };
        Span::new(self.pos, self.pos + len)
    }

    fn unexpected(&mut self, expected: &str, help: Option<String>) -> Reported {
        let found = self.found();
        let span = self.found_span().into();
        self.errors.push(ParseError::Unexpected { expected: expected.to_string(), found, span, help });
        Reported
    }

    fn ident(&mut self) -> Option<Ident> {
        let (rest, name) = lexeme::ident(self.rest()).ok()?;
        let start = self.pos;
        self.advance_to(rest);
        Some(Ident { name: name.to_string(), span: self.span_from(start) })
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    /// Skips the rest of the current line (after an error), keeping comments.
    fn recover_line(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                return;
            }
            if c == '#' {
                self.skip_inline();
                continue;
            }
            // Do not swallow the closing brace of the enclosing block.
            if c == '}' {
                return;
            }
            self.bump();
        }
    }

    /// Skips to the next line that starts an item: an identifier in column 0.
    fn recover_item(&mut self) {
        loop {
            self.recover_line();
            if self.peek() == Some('}') {
                self.bump();
                continue;
            }
            if self.at_eof() {
                return;
            }
            self.bump(); // the line break
            if self.peek().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') {
                return;
            }
        }
    }

    fn file(&mut self) -> Vec<Item> {
        let mut items = Vec::new();
        loop {
            self.skip_blank(true);
            if self.at_eof() || self.errors.len() >= MAX_ERRORS {
                return items;
            }
            let start = self.pos;
            match self.item() {
                Ok(item) => {
                    items.push(item);
                    if self.end_of_entry().is_err() {
                        self.recover_item();
                    }
                }
                Err(Reported) => {
                    self.recover_item();
                    if self.pos == start {
                        self.bump();
                    }
                }
            }
        }
    }

    /// After an item or entry: the line must end (or `;` or `}` follow).
    fn end_of_entry(&mut self) -> PResult<()> {
        self.skip_inline();
        match self.peek() {
            None | Some('\n' | ';' | '}') => Ok(()),
            Some(_) => {
                let span = self.found_span().into();
                self.errors.push(ParseError::MissingSeparator { span });
                Err(Reported)
            }
        }
    }

    fn item(&mut self) -> PResult<Item> {
        let Some(keyword) = self.ident() else {
            return Err(self.unexpected("an item such as `train name { ... }` or `import \"...\"`", None));
        };
        if keyword.name == "import" {
            self.skip_inline();
            let path_start = self.pos;
            if self.peek() != Some('"') {
                return Err(self.unexpected("a quoted path after `import`", None));
            }
            let path = self.string()?;
            let path_span = self.span_from(path_start);
            return Ok(Item::Import(Import { path, path_span, span: keyword.span.to(path_span) }));
        }
        if keyword.name == "template" {
            self.skip_inline();
            let Some(kind) = self.ident() else {
                return Err(self.unexpected("a block kind after `template`", None));
            };
            let mut block = self.block(kind)?;
            block.template = Some(keyword.span);
            block.span = keyword.span.to(block.span);
            return Ok(Item::Block(block));
        }
        self.block(keyword).map(Item::Block)
    }

    /// The rest of a block after its kind word: `[name] [extends base] { entries }`.
    fn block(&mut self, kind: Ident) -> PResult<Block> {
        self.skip_inline();
        let mut name = None;
        let mut base = None;
        if let Some(word) = self.ident() {
            if word.name == "extends" {
                self.skip_inline();
                base = Some(self.ident().ok_or_else(|| self.unexpected("a block name after `extends`", None))?);
            } else {
                name = Some(word);
                self.skip_inline();
                if self.rest().starts_with("extends")
                    && self.rest()[7..].chars().next().is_none_or(|c| !lexeme::is_ident_char(c))
                {
                    self.pos += 7;
                    self.skip_inline();
                    base = Some(self.ident().ok_or_else(|| self.unexpected("a block name after `extends`", None))?);
                }
            }
        }
        self.skip_inline();
        if self.peek() != Some('{') {
            let help = if self.peek() == Some('=') {
                Some(format!("`{}` starts a block here; fields (`key = value`) go inside a block", kind.name))
            } else {
                None
            };
            return Err(self.unexpected("`{`", help));
        }
        let open = self.found_span();
        self.bump();
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.errors.push(ParseError::TooDeep { limit: MAX_DEPTH, span: open.into() });
            self.depth -= 1;
            return Err(Reported);
        }
        let entries = self.entries(open);
        self.depth -= 1;
        Ok(Block { span: kind.span.to(self.span_from(self.pos)), template: None, kind, name, base, entries })
    }

    fn entries(&mut self, open: Span) -> Vec<Entry> {
        let mut entries = Vec::new();
        loop {
            self.skip_blank(true);
            if self.errors.len() >= MAX_ERRORS {
                return entries;
            }
            match self.peek() {
                None => {
                    let end = Span::new(self.pos, self.pos).into();
                    self.errors.push(ParseError::Unclosed { what: "block", close: '}', open: open.into(), end });
                    return entries;
                }
                Some('}') => {
                    self.bump();
                    return entries;
                }
                Some(_) => {}
            }
            let start = self.pos;
            match self.entry() {
                Ok(entry) => {
                    entries.push(entry);
                    if self.end_of_entry().is_err() {
                        self.recover_line();
                    }
                }
                Err(Reported) => {
                    self.recover_line();
                    if self.pos == start {
                        self.bump();
                    }
                }
            }
        }
    }

    fn entry(&mut self) -> PResult<Entry> {
        let Some(key) = self.ident() else {
            return Err(self.unexpected("a field (`key = value`) or a nested block", None));
        };
        self.skip_inline();
        if self.eat("=") {
            self.skip_inline();
            let value = self.expr()?;
            let span = key.span.to(value.span);
            return Ok(Entry::Field(Field { key, value, span }));
        }
        if self.peek() == Some(':') || self.peek().is_some_and(|c| c.is_ascii_digit() || matches!(c, '"' | '[' | '-')) {
            return Err(self.unexpected("`=`", Some(format!("fields are written `{} = value`", key.name))));
        }
        self.block(key).map(Entry::Block)
    }

    fn expr(&mut self) -> PResult<Expr> {
        let from = self.atom()?;
        self.skip_inline();
        if self.eat("->") {
            self.skip_inline();
            let to = self.atom()?;
            let span = from.span.to(to.span);
            return Ok(Expr { kind: ExprKind::Range(Box::new(from), Box::new(to)), span });
        }
        // `run at 80%`: a point of a run (a word, so `atom` alone is not one).
        if self.rest().starts_with("at") && !self.rest()[2..].starts_with(lexeme::is_ident_char) {
            self.pos += 2;
            self.skip_inline();
            let point = self.atom()?;
            let span = from.span.to(point.span);
            return Ok(Expr { kind: ExprKind::At(Box::new(from), Box::new(point)), span });
        }
        Ok(from)
    }

    fn atom(&mut self) -> PResult<Expr> {
        let start = self.pos;
        match self.peek() {
            Some('"') => {
                let text = self.string()?;
                Ok(Expr { kind: ExprKind::Str(text), span: self.span_from(start) })
            }
            Some('[') => self.list(),
            Some(c) if c.is_ascii_digit() || c == '-' => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let mut parts = Vec::new();
                while let Some(part) = self.ident() {
                    parts.push(part);
                    if !(self.peek() == Some('.')
                        && self.rest()[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
                    {
                        break;
                    }
                    self.bump();
                }
                let span = self.span_from(start);
                let kind = match parts.as_slice() {
                    [one] if one.name == "true" => ExprKind::Bool(true),
                    [one] if one.name == "false" => ExprKind::Bool(false),
                    _ => ExprKind::Path(parts),
                };
                Ok(Expr { kind, span })
            }
            _ => Err(self.unexpected("a value (number, string, name or list)", None)),
        }
    }

    fn list(&mut self) -> PResult<Expr> {
        let open = self.found_span();
        self.bump();
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.errors.push(ParseError::TooDeep { limit: MAX_DEPTH, span: open.into() });
            self.depth -= 1;
            return Err(Reported);
        }
        let result = self.list_items(open);
        self.depth -= 1;
        result
    }

    fn list_items(&mut self, open: Span) -> PResult<Expr> {
        let mut items = Vec::new();
        loop {
            self.skip_blank(false);
            if self.eat("]") {
                return Ok(Expr { kind: ExprKind::List(items), span: open.to(self.span_from(self.pos)) });
            }
            if self.at_eof() {
                let end = Span::new(self.pos, self.pos).into();
                self.errors.push(ParseError::Unclosed { what: "list", close: ']', open: open.into(), end });
                return Err(Reported);
            }
            items.push(self.expr()?);
            self.skip_blank(false);
            if !self.eat(",") && self.peek() != Some(']') {
                if self.at_eof() {
                    continue; // reported as unclosed on the next turn
                }
                return Err(self.unexpected("`,` or `]`", None));
            }
        }
    }

    fn number(&mut self) -> PResult<Expr> {
        let start = self.pos;
        let Ok((rest, digits)) = lexeme::decimal(self.rest()) else {
            return Err(self.unexpected("a number", None));
        };
        self.advance_to(rest);
        let mut factor = 1.0;
        if let Ok((rest, scale)) = lexeme::scale_suffix(self.rest())
            && !rest.starts_with(lexeme::is_ident_char)
        {
            self.advance_to(rest);
            factor = scale;
        }
        // Letters glued to the number (`12abc`, `3x`) are a malformed literal, not a unit.
        if self.peek().is_some_and(lexeme::is_ident_char) {
            let glued_start = self.pos;
            while self.peek().is_some_and(lexeme::is_ident_char) {
                self.bump();
            }
            let text = self.src[start..self.pos].to_string();
            let reason = format!("unexpected `{}` after the digits", &self.src[glued_start..self.pos]);
            self.errors.push(ParseError::InvalidNumber { text, reason, span: self.span_from(start).into() });
            return Err(Reported);
        }
        let text = self.src[start..self.pos].to_string();
        let Ok(parsed) = digits.replace('_', "").parse::<f64>() else {
            let reason = "not a number".to_string();
            self.errors.push(ParseError::InvalidNumber { text, reason, span: self.span_from(start).into() });
            return Err(Reported);
        };
        let mut value = parsed * factor;
        let mut unit = Unit::None;
        if self.eat("%") {
            unit = Unit::Percent;
            value /= 100.0;
        } else {
            let before_space = self.pos;
            if let Ok((rest, _)) = lexeme::inline_space(self.rest()) {
                self.advance_to(rest);
            }
            if let Some(word) = self.ident() {
                match Unit::WORDS.iter().find(|(w, _)| *w == word.name) {
                    Some((_, u)) => unit = *u,
                    None => {
                        let names: Vec<&str> = Unit::WORDS.iter().map(|(w, _)| *w).collect();
                        let help = match did_you_mean(&word.name, names.iter().copied()) {
                            Some(best) => format!("did you mean `{best}`? units are %, {}", names.join(", ")),
                            None => format!("units are %, {}; put each entry on its own line", names.join(", ")),
                        };
                        self.errors.push(ParseError::UnknownUnit { word: word.name, span: word.span.into(), help });
                        return Err(Reported);
                    }
                }
            } else {
                // No unit: leave the whitespace for the caller (it may precede `->`).
                self.pos = before_space;
            }
        }
        if !value.is_finite() {
            let reason = "too large".to_string();
            self.errors.push(ParseError::InvalidNumber { text, reason, span: self.span_from(start).into() });
            return Err(Reported);
        }
        let text = text.trim_end_matches('%').to_string();
        Ok(Expr { kind: ExprKind::Number(Number { value, text, unit }), span: self.span_from(start) })
    }

    /// A double-quoted string on one line, with escapes.
    fn string(&mut self) -> PResult<String> {
        let start = self.pos;
        self.bump(); // opening quote
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                self.errors.push(ParseError::UnterminatedString { span: Span::new(start, start + 1).into() });
                return Err(Reported);
            };
            match c {
                '"' => {
                    self.bump();
                    return Ok(out);
                }
                '\n' => {
                    self.errors.push(ParseError::UnterminatedString { span: Span::new(start, start + 1).into() });
                    return Err(Reported);
                }
                '\\' => {
                    let escape_start = self.pos;
                    self.bump();
                    let escaped = self.peek();
                    self.bump();
                    match escaped {
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        Some('r') => out.push('\r'),
                        Some('\\') => out.push('\\'),
                        Some('"') => out.push('"'),
                        // Kept escaped: templates give `{` a meaning, `\{` is a literal brace.
                        Some('{') => out.push_str("\\{"),
                        Some('}') => out.push_str("\\}"),
                        Some('u') => match self.unicode_escape() {
                            Some(ch) => out.push(ch),
                            None => {
                                let escape = self.src[escape_start..self.pos].to_string();
                                let span = self.span_from(escape_start).into();
                                self.errors.push(ParseError::InvalidEscape { escape, span });
                            }
                        },
                        _ => {
                            let escape = self.src[escape_start..self.pos].to_string();
                            let span = self.span_from(escape_start).into();
                            self.errors.push(ParseError::InvalidEscape { escape, span });
                        }
                    }
                }
                c => {
                    out.push(c);
                    self.bump();
                }
            }
        }
    }

    /// `{XXXX}` after `\u`: one to six hex digits naming a Unicode scalar value.
    fn unicode_escape(&mut self) -> Option<char> {
        if !self.eat("{") {
            return None;
        }
        let digits: String = self.rest().chars().take_while(char::is_ascii_hexdigit).take(7).collect();
        self.pos += digits.len();
        if !self.eat("}") || digits.is_empty() || digits.len() > 6 {
            return None;
        }
        u32::from_str_radix(&digits, 16).ok().and_then(char::from_u32)
    }
}
