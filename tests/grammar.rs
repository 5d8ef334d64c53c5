//! Keeps `grammar/cpt.ebnf` in sync with the parser: its terminals are the parser's keywords,
//! punctuation, units and scales; every production it uses is defined; every example parses.

use std::collections::BTreeSet;

use cptc::syntax::ast::{Entry, ExprKind, Item, Unit};
use cptc::syntax::parse;
use cptc::syntax::parser::{KEYWORDS, PUNCTUATION};

fn grammar() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/grammar/cpt.ebnf")).expect("grammar/cpt.ebnf")
}

/// The grammar without its `(* ... *)` comments.
fn rules(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("(*") {
        out.push_str(&rest[..start]);
        rest = rest[start..].find("*)").map_or("", |end| &rest[start + end + 2..]);
    }
    out.push_str(rest);
    out
}

fn terminals(rules: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for quote in ['"', '\''] {
        let mut parts = rules.split(quote);
        parts.next();
        while let Some(inside) = parts.next() {
            out.insert(inside.to_string());
            parts.next();
        }
    }
    out
}

#[test]
fn word_terminals_are_the_parsers_keywords_and_units() {
    let rules = rules(&grammar());
    let words: BTreeSet<String> =
        terminals(&rules).into_iter().filter(|t| t.len() > 1 && t.chars().all(|c| c.is_ascii_alphabetic())).collect();
    let mut expected: BTreeSet<String> = KEYWORDS.iter().map(|k| (*k).to_string()).collect();
    expected.extend(Unit::WORDS.iter().map(|(w, _)| (*w).to_string()));
    assert_eq!(words, expected);
}

#[test]
fn punctuation_is_in_the_grammar() {
    let terminals = terminals(&rules(&grammar()));
    for p in PUNCTUATION {
        assert!(terminals.contains(p), "`{p}` is in the parser but not in grammar/cpt.ebnf");
    }
}

#[test]
fn every_scale_in_the_grammar_parses_with_its_factor() {
    let rules = rules(&grammar());
    let line = rules.lines().find(|l| l.trim_start().starts_with("scale")).expect("a scale production");
    let scales: Vec<String> = terminals(line).into_iter().collect();
    assert_eq!(scales.len(), 6);
    for scale in scales {
        let (file, errors) = parse(&format!("b {{ x = 3{scale} }}"));
        assert!(errors.is_empty(), "{scale}: {errors:?}");
        let Item::Block(block) = &file.items[0] else { panic!("not a block") };
        let Entry::Field(field) = &block.entries[0] else { panic!("not a field") };
        let ExprKind::Number(n) = &field.value.kind else { panic!("not a number") };
        let factor = match scale.as_str() {
            "k" | "K" => 1e3,
            "M" => 1e6,
            "B" | "G" => 1e9,
            _ => 1e12,
        };
        assert_eq!(n.value, 3.0 * factor, "{scale}");
    }
}

#[test]
fn every_production_used_is_defined() {
    let rules = rules(&grammar());
    let mut defined = BTreeSet::new();
    let mut used = BTreeSet::new();
    for rule in rules.split(';') {
        let Some((lhs, rhs)) = rule.split_once('=') else { continue };
        defined.insert(lhs.trim().to_string());
        let mut unquoted = String::new();
        let mut quote = None;
        for c in rhs.chars() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' => quote = Some(c),
                None => unquoted.push(c),
            }
        }
        for word in unquoted.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !word.is_empty() {
                used.insert(word.to_string());
            }
        }
    }
    // Character classes, described in the notes rather than spelled out.
    for primitive in ["digit", "letter", "hex", "character", "line", "break"] {
        defined.insert(primitive.to_string());
    }
    let undefined: Vec<&String> = used.difference(&defined).collect();
    assert!(undefined.is_empty(), "used but not defined: {undefined:?}");
}

#[test]
fn every_example_parses() {
    let text = grammar();
    let examples: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("(* example:"))
        .map(|l| l.trim_end_matches("*)").trim())
        .collect();
    assert!(examples.len() >= 6, "too few examples: {examples:?}");
    for example in examples {
        let (_, errors) = parse(example);
        assert!(errors.is_empty(), "grammar example does not parse: {example}\n{errors:?}");
    }
}
