//! Fuzz target: parse, check, render diagnostics and format arbitrary bytes as a `.cpt` file,
//! asserting that formatting yields a file that parses cleanly, means the same, and is a fixed point;
//! a recipe that checks is lowered and its plan rendered in every format (identifiers of any length).

#![no_main]

use std::io;
use std::path::{Path, PathBuf};

use cptc::syntax::ast::{Block, Comment, Entry, Expr, ExprKind, File, Ident, Item};
use libfuzzer_sys::fuzz_target;

const NAME: &str = "fuzz.cpt";

/// An in-memory world holding only the fuzz input, as `fuzz.cpt`.
struct MemWorld<'a> {
    text: &'a str,
}

impl cptc::check::World for MemWorld<'_> {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        if path == Path::new(NAME) {
            Ok(self.text.as_bytes().to_vec())
        } else {
            Err(io::Error::new(io::ErrorKind::NotFound, format!("{} not found", path.display())))
        }
    }

    fn glob(&self, _base: &Path, pattern: &str) -> Result<Vec<PathBuf>, cptc::check::GlobError> {
        // A crude stand-in for globset's validation, to reach the malformed-pattern path.
        if pattern.matches('[').count() != pattern.matches(']').count() || pattern.contains("***") {
            return Err(cptc::check::GlobError::Pattern(format!("malformed pattern {pattern:?}")));
        }
        Ok(Vec::new())
    }

    fn canonical(&self, path: &Path) -> PathBuf {
        path.to_path_buf()
    }

    fn is_file(&self, path: &Path) -> bool {
        path == Path::new(NAME)
    }

    fn list_files(&self, _dir: &Path) -> io::Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }
}

/// A CPU machine that knows nothing of any file: lowering asks, never reads.
struct NoMachine;

impl cptc::graph::Probe for NoMachine {
    fn device(&self) -> cptc::stages::DeviceClass {
        cptc::stages::DeviceClass::Cpu
    }

    fn model_info(&self, _: &cptc::recipe::ModelSource) -> cptc::graph::ModelInfo {
        cptc::graph::ModelInfo::default()
    }

    fn file_size(&self, _: &Path) -> u64 {
        0
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = cptc::syntax::parse_bytes(data);
    let Ok(text) = std::str::from_utf8(data) else { return };

    match cptc::check::check(Path::new(NAME), &MemWorld { text }) {
        Err(failed) => {
            let _ = cptc::diag::render(&failed.errors, &failed.sources, false, 80);
        }
        Ok(recipe) => {
            let graph = cptc::graph::lower(&recipe, &NoMachine);
            let statuses: Vec<_> = graph
                .order()
                .into_iter()
                .map(|ix| {
                    let waits = graph.stage(ix).params.waits_for().first().map(|v| v.to_string());
                    let status = match waits {
                        Some(waiting_for) => cptc::exec::Status::Pending { waiting_for },
                        None => cptc::exec::Status::WillRun { key: None, why: Vec::new() },
                    };
                    (ix, status)
                })
                .collect();
            let _ = cptc::cli::plan::render(&graph, &statuses, Path::new(NAME), 10.0);
        }
    }

    let Ok(formatted) = cptc::fmt::format(text) else { return };
    let (reparsed, errors) = cptc::syntax::parse(&formatted);
    assert!(errors.is_empty(), "formatted output does not parse: {errors:?}\n--- formatted ---\n{formatted}");
    let again = cptc::fmt::format(&formatted);
    assert!(
        again.as_deref() == Ok(formatted.as_str()),
        "format is not idempotent\n--- once ---\n{formatted}\n--- twice ---\n{again:?}"
    );
    let (original, _) = cptc::syntax::parse(text);
    let (before, after) = (shape(&original), shape(&reparsed));
    assert!(before == after, "formatting changed the tree\n--- before ---\n{before}\n--- after ---\n{after}");
});

/// The tree as a string with every span zeroed (Debug, so NaN numbers still compare equal).
fn shape(file: &File) -> String {
    let mut file = file.clone();
    file.items.iter_mut().for_each(item);
    file.comments.iter_mut().for_each(comment);
    format!("{:#?}", file)
}

fn item(item: &mut Item) {
    match item {
        Item::Import(import) => {
            import.span = Default::default();
            import.path_span = Default::default();
        }
        Item::Block(b) => block(b),
    }
}

fn comment(comment: &mut Comment) {
    comment.span = Default::default();
    comment.text = comment.text.trim_end().to_string();
}

fn ident(ident: &mut Ident) {
    ident.span = Default::default();
}

fn block(block: &mut Block) {
    block.span = Default::default();
    block.template = block.template.map(|_| Default::default());
    ident(&mut block.kind);
    block.name.iter_mut().for_each(ident);
    block.base.iter_mut().for_each(ident);
    for entry in &mut block.entries {
        match entry {
            Entry::Field(field) => {
                field.span = Default::default();
                ident(&mut field.key);
                expr(&mut field.value);
            }
            Entry::Block(b) => self::block(b),
        }
    }
}

fn expr(expr: &mut Expr) {
    expr.span = Default::default();
    match &mut expr.kind {
        ExprKind::Path(idents) => idents.iter_mut().for_each(ident),
        ExprKind::List(items) => items.iter_mut().for_each(self::expr),
        ExprKind::Range(from, to) => {
            self::expr(from);
            self::expr(to);
        }
        ExprKind::Number(_) | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Error => {}
    }
}
