//! Loading a recipe with its imports, collecting top-level definitions, and resolving
//! `extends` by merging each block onto its base.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::CheckError;
use super::world::World;
use crate::diag::Located;
use crate::source::{FileId, SourceMap, Span};
use crate::stdlib;
use crate::syntax::ast::{Block, Field, Ident, Item};
use crate::syntax::parse_bytes;

/// A block after inheritance: its own fields over its base's, each with the file it came from.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub(crate) template: bool,
    pub(crate) kind: String,
    pub(crate) kind_span: Span,
    pub(crate) name: Option<Ident>,
    pub(crate) header: Span,
    pub(crate) file: FileId,
    pub(crate) fields: Vec<(Field, FileId)>,
    pub(crate) blocks: Vec<Resolved>,
}

impl Resolved {
    pub(crate) fn display_name(&self) -> String {
        self.name.as_ref().map_or_else(|| "(unnamed)".to_string(), |n| n.name.clone())
    }

    fn from_block(block: &Block, file: FileId, errors: &mut Vec<Located>) -> Resolved {
        let mut fields: Vec<(Field, FileId)> = Vec::new();
        for field in block.fields() {
            if let Some((first, _)) = fields.iter().find(|(f, _)| f.key.name == field.key.name) {
                let error = CheckError::DuplicateField {
                    field: field.key.name.clone(),
                    span: field.key.span.into(),
                    first: first.key.span.into(),
                };
                errors.push(Located::new(file, error));
                continue;
            }
            fields.push((field.clone(), file));
        }
        let mut blocks: Vec<Resolved> = Vec::new();
        for child in block.blocks() {
            let key = (child.kind.name.as_str(), child.name.as_ref().map(|n| n.name.as_str()));
            if let Some(first) =
                blocks.iter().find(|b| (b.kind.as_str(), b.name.as_ref().map(|n| n.name.as_str())) == key)
            {
                let error = CheckError::DuplicateName {
                    name: match &child.name {
                        Some(n) => format!("{} {}", child.kind.name, n.name),
                        None => child.kind.name.clone(),
                    },
                    span: child.header_span().into(),
                    first: Some(first.header.into()),
                    help: Some("merge the two blocks into one".to_string()),
                };
                errors.push(Located::new(file, error));
                continue;
            }
            blocks.push(Resolved::from_block(child, file, errors));
        }
        Resolved {
            template: block.template.is_some(),
            kind: block.kind.name.clone(),
            kind_span: block.kind.span,
            name: block.name.clone(),
            header: block.header_span(),
            file,
            fields,
            blocks,
        }
    }

    /// `self` over `base`: own fields replace inherited ones; nested blocks merge by kind and name.
    pub(crate) fn over(mut self, base: &Resolved) -> Resolved {
        let mut fields: Vec<(Field, FileId)> = base
            .fields
            .iter()
            .filter(|(f, _)| !self.fields.iter().any(|(own, _)| own.key.name == f.key.name))
            .cloned()
            .collect();
        fields.append(&mut self.fields);
        let mut blocks = Vec::new();
        for inherited in &base.blocks {
            let key = |b: &Resolved| (b.kind.clone(), b.name.as_ref().map(|n| n.name.clone()));
            match self.blocks.iter().position(|own| key(own) == key(inherited)) {
                Some(i) => blocks.push(self.blocks.remove(i).over(inherited)),
                None => blocks.push(inherited.clone()),
            }
        }
        blocks.append(&mut self.blocks);
        Resolved { fields, blocks, ..self }
    }
}

/// A top-level definition before inheritance.
struct Definition {
    block: Block,
    file: FileId,
}

pub(crate) struct Loaded {
    pub(crate) sources: SourceMap,
    /// Top-level blocks after inheritance, in definition order (imports first).
    pub(crate) blocks: Vec<Resolved>,
    pub(crate) errors: Vec<Located>,
}

/// Loads `path` and everything it imports, then resolves names and inheritance.
pub(crate) fn load(path: &Path, world: &dyn World) -> Loaded {
    let mut loader = Loader {
        world,
        sources: SourceMap::default(),
        errors: Vec::new(),
        seen: HashMap::new(),
        stack: Vec::new(),
        definitions: Vec::new(),
    };
    match world.read(path) {
        Ok(bytes) => loader.file(path.display().to_string(), Some(path.to_path_buf()), &bytes),
        Err(err) => {
            let file = loader.sources.add(path.display().to_string(), Some(path.to_path_buf()), String::new());
            let error = CheckError::Read { path: path.display().to_string(), reason: err.to_string() };
            loader.errors.push(Located::new(file, error));
        }
    }
    let Loader { sources, mut errors, definitions, .. } = loader;
    let blocks = inherit(&definitions, &mut errors);
    Loaded { sources, blocks, errors }
}

struct Loader<'w> {
    world: &'w dyn World,
    sources: SourceMap,
    errors: Vec<Located>,
    /// Files already loaded, by canonical path or `std/NAME`.
    seen: HashMap<PathBuf, FileId>,
    /// Imports being loaded, to report cycles.
    stack: Vec<PathBuf>,
    definitions: Vec<Definition>,
}

impl Loader<'_> {
    fn file(&mut self, name: String, path: Option<PathBuf>, bytes: &[u8]) {
        let key = path.as_deref().map_or_else(|| PathBuf::from(&name), |p| self.world.canonical(p));
        let text = String::from_utf8_lossy(bytes).into_owned();
        let file = self.sources.add(name, path.clone(), text);
        self.seen.insert(key.clone(), file);
        self.stack.push(key);
        let (ast, parse_errors) = parse_bytes(bytes);
        self.errors.extend(parse_errors.into_iter().map(|e| Located::new(file, e)));
        for item in ast.items {
            match item {
                Item::Import(import) => self.import(file, path.as_deref(), &import.path, import.path_span),
                Item::Block(block) => self.definitions.push(Definition { block, file }),
            }
        }
        self.stack.pop();
    }

    fn import(&mut self, from: FileId, from_path: Option<&Path>, target: &str, span: Span) {
        let fail = |reason: String, help: Option<String>| {
            Located::new(from, CheckError::Import { path: target.to_string(), reason, span: span.into(), help })
        };
        if let Some(module) = target.strip_prefix("std/") {
            let key = PathBuf::from(format!("<stdlib/{}.cpt>", module.trim_end_matches(".cpt")));
            if self.stack.contains(&key) {
                self.errors.push(fail("import cycle".to_string(), None));
                return;
            }
            if self.seen.contains_key(&key) {
                return;
            }
            match stdlib::module(module) {
                Some(text) => self.file(key.display().to_string(), None, text.as_bytes()),
                None => {
                    let names = stdlib::names();
                    let help = crate::suggest::help_for(module, &names, "stdlib module");
                    self.errors.push(fail("no such stdlib module".to_string(), Some(help)));
                }
            }
            return;
        }
        let base = from_path.and_then(Path::parent).unwrap_or(Path::new("."));
        let resolved = base.join(target);
        let key = self.world.canonical(&resolved);
        if self.stack.contains(&key) {
            let help = "two files import each other; move the shared definitions into a third file".to_string();
            self.errors.push(fail("import cycle".to_string(), Some(help)));
            return;
        }
        if self.seen.contains_key(&key) {
            return;
        }
        match self.world.read(&resolved) {
            Ok(bytes) => self.file(resolved.display().to_string(), Some(resolved), &bytes),
            Err(err) => {
                let help = Some(format!("paths are relative to the importing file; looked for {}", resolved.display()));
                self.errors.push(fail(err.to_string(), help));
            }
        }
    }
}

/// Resolves `extends` for every top-level definition; reports duplicates and cycles.
fn inherit(definitions: &[Definition], errors: &mut Vec<Located>) -> Vec<Resolved> {
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut keep = Vec::new();
    for (i, def) in definitions.iter().enumerate() {
        let Some(name) = &def.block.name else {
            let error =
                CheckError::MissingName { kind: def.block.kind.name.clone(), span: def.block.header_span().into() };
            errors.push(Located::new(def.file, error));
            continue;
        };
        if let Some(&first) = by_name.get(name.name.as_str()) {
            let first_def = &definitions[first];
            let same_file = first_def.file == def.file;
            let error = CheckError::DuplicateName {
                name: name.name.clone(),
                span: name.span.into(),
                first: same_file.then(|| first_def.block.name.as_ref().map_or(first_def.block.span, |n| n.span).into()),
                help: Some(if same_file {
                    "names are global: rename one of them".to_string()
                } else {
                    "an imported file defines it too; names are global: rename one of them".to_string()
                }),
            };
            errors.push(Located::new(def.file, error));
            continue;
        }
        by_name.insert(&name.name, i);
        keep.push(i);
    }
    let mut done: HashMap<usize, Option<Resolved>> = HashMap::new();
    let mut out = Vec::new();
    for &i in &keep {
        let mut chain = Vec::new();
        if let Some(resolved) = resolve_one(i, definitions, &by_name, &mut done, &mut chain, errors) {
            out.push(resolved);
        }
    }
    out
}

fn resolve_one(
    i: usize,
    definitions: &[Definition],
    by_name: &HashMap<&str, usize>,
    done: &mut HashMap<usize, Option<Resolved>>,
    chain: &mut Vec<usize>,
    errors: &mut Vec<Located>,
) -> Option<Resolved> {
    if let Some(r) = done.get(&i) {
        return r.clone();
    }
    let def = &definitions[i];
    let Some(base) = &def.block.base else {
        let own = Resolved::from_block(&def.block, def.file, errors);
        done.insert(i, Some(own.clone()));
        return Some(own);
    };
    // Failures are remembered too, so each is reported once.
    done.insert(i, None);
    let Some(&base_idx) = by_name.get(base.name.as_str()) else {
        let names: Vec<&str> = definitions
            .iter()
            .filter(|d| d.block.kind.name == def.block.kind.name)
            .filter_map(|d| d.block.name.as_ref().map(|n| n.name.as_str()))
            .collect();
        let error = CheckError::UnknownName {
            name: base.name.clone(),
            expected: def.block.kind.name.clone(),
            span: base.span.into(),
            help: crate::suggest::help_for(&base.name, &names, &def.block.kind.name),
        };
        errors.push(Located::new(def.file, error));
        return None;
    };
    if chain.contains(&base_idx) || base_idx == i {
        let mut names: Vec<String> = chain.iter().map(|&c| definition_name(&definitions[c])).collect();
        names.push(definition_name(def));
        names.push(base.name.clone());
        let error = CheckError::Cycle {
            cycle: names.join(" extends "),
            span: base.span.into(),
            help: "a block cannot inherit from itself, directly or through others".to_string(),
        };
        errors.push(Located::new(def.file, error));
        return None;
    }
    let base_def = &definitions[base_idx];
    if base_def.block.kind.name != def.block.kind.name {
        let error = CheckError::WrongKind {
            name: base.name.clone(),
            expected: format!("a {}", def.block.kind.name),
            found: base_def.block.kind.name.clone(),
            span: base.span.into(),
            help: Some("a block extends another block of the same kind".to_string()),
        };
        errors.push(Located::new(def.file, error));
        return None;
    }
    chain.push(i);
    let base_resolved = resolve_one(base_idx, definitions, by_name, done, chain, errors);
    chain.pop();
    let own = Resolved::from_block(&def.block, def.file, errors);
    let merged = own.over(&base_resolved?);
    done.insert(i, Some(merged.clone()));
    Some(merged)
}

fn definition_name(def: &Definition) -> String {
    def.block.name.as_ref().map_or_else(String::new, |n| n.name.clone())
}
