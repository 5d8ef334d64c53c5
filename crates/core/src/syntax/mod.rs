//! Syntax: the `.cpt` grammar's tree and its parser. Pure: no IO, never panics.

pub mod ast;
pub mod error;
mod lexeme;
pub mod parser;

pub use error::ParseError;
pub use parser::{parse, parse_bytes};
