//! Token-level recognisers built with nom: identifiers, numbers and their scale suffixes.
//!
//! Each returns the matched text and the rest; the parser turns them into spanned nodes.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while};
use nom::character::complete::{char, digit1, one_of, satisfy};
use nom::combinator::{opt, recognize};
use nom::multi::many0_count;
use nom::{IResult, Parser};

/// `[A-Za-z_][A-Za-z0-9_]*`. Identifiers are ASCII so that names read the same everywhere.
pub(crate) fn ident(input: &str) -> IResult<&str, &str> {
    recognize((
        satisfy(|c| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
    ))
    .parse(input)
}

pub(crate) fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The numeric part of a literal: `-12_000.5e-3`, without scale suffix or unit.
pub(crate) fn decimal(input: &str) -> IResult<&str, &str> {
    recognize((
        opt(char('-')),
        digit1,
        many0_count((char('_'), digit1)),
        opt((char('.'), digit1)),
        opt((one_of("eE"), opt(one_of("+-")), digit1)),
    ))
    .parse(input)
}

/// Scale suffixes: `8k`, `200M`, `2B` (or `2G`), `1T`.
pub(crate) fn scale_suffix(input: &str) -> IResult<&str, f64> {
    let (rest, suffix) = alt((tag("k"), tag("K"), tag("M"), tag("B"), tag("G"), tag("T"))).parse(input)?;
    let factor = match suffix {
        "k" | "K" => 1e3,
        "M" => 1e6,
        "B" | "G" => 1e9,
        _ => 1e12,
    };
    Ok((rest, factor))
}

/// Inline whitespace: spaces, tabs and carriage returns, never a line break.
pub(crate) fn inline_space(input: &str) -> IResult<&str, &str> {
    take_while(|c| c == ' ' || c == '\t' || c == '\r').parse(input)
}

/// A comment from `#` up to, not including, the line break.
pub(crate) fn comment(input: &str) -> IResult<&str, &str> {
    recognize((char('#'), take_while(|c| c != '\n'))).parse(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_numbers() {
        assert_eq!(decimal("3e-4 x"), Ok((" x", "3e-4")));
        assert_eq!(decimal("1_000k"), Ok(("k", "1_000")));
        assert_eq!(decimal("-0.5%"), Ok(("%", "-0.5")));
        assert!(decimal("x1").is_err());
        assert_eq!(ident("lr_2 ="), Ok((" =", "lr_2")));
        assert_eq!(scale_suffix("M tokens"), Ok((" tokens", 1e6)));
    }
}
