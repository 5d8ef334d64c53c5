//! Lowering resolved blocks into the typed [`Recipe`]: one function per block kind, whose
//! getter calls are that kind's schema, then the checks that span several blocks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::CheckError;
use super::fields::{Fields, Num, Quantity, RefPath};
use super::resolve::Resolved;
use super::world::{GlobError, World};
use crate::diag::Located;
use crate::recipe::*;
use crate::source::{FileId, SourceMap, Span};
use crate::suggest::help_for;
use crate::syntax::ast::Unit;

/// Top-level block kinds, in the order recipes usually list them.
pub const KINDS: [&str; 10] =
    ["model", "corpus", "vocab", "mixture", "schedule", "train", "eval", "sweep", "fit", "choose"];

pub(crate) struct Builder<'a> {
    pub(crate) world: &'a dyn World,
    pub(crate) sources: &'a SourceMap,
    pub(crate) errors: Vec<Located>,
    /// Every top-level definition by name, with its kind.
    defs: HashMap<String, &'a Resolved>,
}

fn origin(block: &Resolved) -> Origin {
    Origin { file: block.file, span: block.header }
}

fn amount(num: Num) -> Amount {
    match num.unit {
        Unit::Steps => Amount::Steps(num.value as u64),
        Unit::Tokens => Amount::Tokens(num.value as u64),
        _ => Amount::Fraction(num.value),
    }
}

impl<'a> Builder<'a> {
    pub(crate) fn new(world: &'a dyn World, sources: &'a SourceMap, blocks: &'a [Resolved]) -> Builder<'a> {
        let defs = blocks.iter().filter_map(|b| Some((b.name.as_ref()?.name.clone(), b))).collect();
        Builder { world, sources, errors: Vec::new(), defs }
    }

    pub(crate) fn error(&mut self, file: FileId, error: CheckError) {
        self.errors.push(Located::new(file, error));
    }

    /// Refuses the value `at`: an `out_of_range` error pointing at it.
    fn out_of_range(&mut self, at: &Num, message: impl Into<String>, label: &str, help: Option<&str>) {
        let error = CheckError::OutOfRange {
            message: message.into(),
            span: at.span.into(),
            label: label.to_string(),
            help: help.map(str::to_string),
        };
        self.error(at.file, error);
    }

    /// The resolved block a name defines.
    pub(crate) fn definition(&self, name: &str) -> Option<&'a Resolved> {
        self.defs.get(name).copied()
    }

    fn kind_of(&self, name: &str) -> Option<&'a str> {
        self.defs.get(name).map(|b| b.kind.as_str())
    }

    /// Resolves a plain reference to a definition of one of `kinds`.
    pub(crate) fn resolve(&mut self, r: &RefPath, kinds: &[&str]) -> Option<(String, &'a str)> {
        let head = r.head().clone();
        let expected = kinds.join(" or ");
        let Some(found) = self.kind_of(&head.name) else {
            let mut names: Vec<&str> =
                self.defs.iter().filter(|(_, b)| kinds.contains(&b.kind.as_str())).map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            let error = CheckError::UnknownName {
                name: head.name.clone(),
                expected,
                span: head.span.into(),
                help: help_for(&head.name, &names, &kinds.join("/")),
            };
            self.error(r.file, error);
            return None;
        };
        if !kinds.contains(&found) {
            let error = CheckError::WrongKind {
                name: head.name.clone(),
                expected: format!("a {expected}"),
                found: found.to_string(),
                span: head.span.into(),
                help: None,
            };
            self.error(r.file, error);
            return None;
        }
        if let Some(extra) = r.parts.get(1) {
            let error = CheckError::UnknownOutput {
                name: head.name.clone(),
                field: extra.name.clone(),
                span: extra.span.into(),
                help: format!("refer to the {found} by its name alone: `{}`", head.name),
            };
            self.error(r.file, error);
            return None;
        }
        Some((head.name, found))
    }

    fn resolve_all(&mut self, refs: &[RefPath], kinds: &[&str]) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut ok = true;
        for r in refs {
            match self.resolve(r, kinds) {
                Some((name, _)) => out.push(name),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn base_dir(&self, file: FileId) -> PathBuf {
        self.sources.get(file).dir().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    pub(crate) fn model(&mut self, block: &Resolved) -> Option<Model> {
        let mut f = Fields::new(block, &mut self.errors);
        let hf = f.string("hf");
        let gguf = f.string("gguf");
        f.finish(&[]);
        let source = match (hf, gguf) {
            (Some(_), Some(_)) => {
                let (span, file) = self.both_span(block, "hf", "gguf");
                let error = CheckError::Conflict {
                    message: format!("model `{}` gives both `hf` and `gguf`", block.display_name()),
                    span: span.0.into(),
                    label: "a Hugging Face directory".to_string(),
                    other: Some(span.1.into()),
                    help: Some("keep one source per model".to_string()),
                };
                self.error(file, error);
                return None;
            }
            (Some((path, span, file)), None) => {
                let dir = self.base_dir(file).join(&path);
                if !self.world.is_file(&dir.join("config.json")) {
                    self.no_match(file, span, "model directory", &path, &dir.join("config.json"), None);
                    return None;
                }
                let files = self.world.list_files(&dir).unwrap_or_default();
                ModelSource::Hf { dir, files }
            }
            (None, Some((path, span, file))) => {
                let resolved = self.base_dir(file).join(&path);
                if !self.world.is_file(&resolved) {
                    let help = Some("run `scripts/setup.sh` to fetch the SmolLM2 GGUF".to_string());
                    self.no_match(file, span, "GGUF file", &path, &resolved, help);
                    return None;
                }
                ModelSource::Gguf(resolved)
            }
            (None, None) => {
                let mut f = Fields::new(block, &mut self.errors);
                f.missing("hf", "\"path/to/hf-model\"");
                return None;
            }
        };
        Some(Model { name: block.display_name(), source, origin: origin(block) })
    }

    fn both_span(&self, block: &Resolved, a: &str, b: &str) -> ((Span, Span), FileId) {
        let find = |k: &str| block.fields.iter().find(|(f, _)| f.key.name == k).map(|(f, file)| (f.span, *file));
        let (sa, file) = find(a).unwrap_or((block.header, block.file));
        let (sb, _) = find(b).unwrap_or((block.header, block.file));
        ((sa, sb), file)
    }

    fn no_match(
        &mut self,
        file: FileId,
        span: Span,
        what: &'static str,
        pattern: &str,
        resolved: &Path,
        help: Option<String>,
    ) {
        let error = CheckError::NoMatch {
            what,
            pattern: pattern.to_string(),
            span: span.into(),
            resolved: resolved.display().to_string(),
            help,
        };
        self.error(file, error);
    }

    pub(crate) fn corpus(&mut self, block: &Resolved) -> Option<Corpus> {
        const FORMATS: [(&str, Format); 3] =
            [("jsonl", Format::Jsonl), ("text", Format::Text), ("parquet", Format::Parquet)];
        let mut f = Fields::new(block, &mut self.errors);
        let files = f.strings("files");
        let format = f.word("format", "format", &FORMATS);
        let text = f.string("text");
        let template = f.string("template");
        let heldout = f.number("heldout", Quantity::Heldout);
        let strict = f.boolean("strict");
        let max_epochs = f.number("max_epochs", Quantity::Plain);
        let loss_on = f.refs("loss_on");
        let split_by = f.reference("split_by");
        if files.is_none() && !f.has("files") {
            f.missing("files", "\"data/*.jsonl\"");
        }
        f.finish(&[]);
        let text_source = match (text, template) {
            (Some(_), Some(_)) => {
                let (spans, file) = self.both_span(block, "text", "template");
                let error = CheckError::Conflict {
                    message: format!("corpus `{}` gives both `text` and `template`", block.display_name()),
                    span: spans.0.into(),
                    label: "the text field".to_string(),
                    other: Some(spans.1.into()),
                    help: Some("use `text` for plain documents, `template` for SFT records".to_string()),
                };
                self.error(file, error);
                None
            }
            (_, Some((t, span, file))) => match parse_template(&t) {
                Ok(parts) => self
                    .loss_on(block, &parts, loss_on.as_deref())
                    .map(|loss_on| TextSource::Template(Template { text: t, parts, loss_on })),
                Err(reason) => {
                    self.error(file, CheckError::Template { reason, span: span.into() });
                    None
                }
            },
            (Some(_), None) | (None, None) if loss_on.is_some() => {
                let marks = loss_on.as_deref().unwrap_or_default();
                let (span, file) = marks.first().map_or((block.header, block.file), |r| (r.span, r.file));
                let error = CheckError::LossOn {
                    message: format!("corpus `{}` marks `loss_on` fields but has no template", block.display_name()),
                    span: span.into(),
                    label: "needs a `template`".to_string(),
                    help: "`loss_on` names fields of a template, e.g. `template = \"{question}\\n{answer}\"` with `loss_on = [answer]`; a plain text corpus trains on every token".to_string(),
                };
                self.error(file, error);
                None
            }
            (Some((t, _, _)), None) => Some(TextSource::Field(t)),
            (None, None) => Some(TextSource::Field("text".to_string())),
        };
        let mut patterns = Vec::new();
        let mut matched = Vec::new();
        // Which pattern matched each file first, to point at it.
        let mut origin_of = HashMap::new();
        for (pattern, span, file) in files? {
            let base = self.base_dir(file);
            let full = base.join(&pattern);
            let full_str = full.display().to_string();
            match self.world.glob(&base, &pattern) {
                Ok(found) if found.is_empty() => {
                    let help = Some(if pattern.starts_with('~') {
                        "cptc does not expand `~` (a shell does): write the folder out, `/home/...`".to_string()
                    } else {
                        "paths are relative to the recipe's folder; `scripts/setup.sh` fetches the corpora under data/"
                            .to_string()
                    });
                    self.no_match(file, span, "pattern", &pattern, &full, help);
                }
                Ok(found) => {
                    if let Some(odd) = found.iter().find(|p| p.to_str().is_none()) {
                        let name = odd.to_string_lossy().into_owned();
                        self.error(file, CheckError::FileName { pattern: pattern.clone(), span: span.into(), name });
                        continue;
                    }
                    for path in &found {
                        origin_of.entry(path.clone()).or_insert((span, file));
                    }
                    matched.extend(found);
                }
                Err(GlobError::Pattern(msg)) => {
                    let error = CheckError::OutOfRange {
                        message: format!("invalid glob pattern `{pattern}`"),
                        span: span.into(),
                        label: msg,
                        help: Some("globs use `*`, `?`, `**`, `[...]` and `{a,b}`".to_string()),
                    };
                    self.error(file, error);
                }
                Err(GlobError::Broken { link, target }) => {
                    let error = CheckError::BrokenLink {
                        pattern: pattern.clone(),
                        span: span.into(),
                        link: link.display().to_string(),
                        target: target.display().to_string(),
                    };
                    self.error(file, error);
                }
                Err(GlobError::Cycle { link, target }) => {
                    let error = CheckError::SymlinkCycle {
                        pattern: pattern.clone(),
                        span: span.into(),
                        link: link.display().to_string(),
                        target: target.display().to_string(),
                    };
                    self.error(file, error);
                }
            }
            patterns.push(full_str);
        }
        if matched.is_empty() {
            return None;
        }
        matched.sort();
        // A file two patterns reach (under any spelling) is read once.
        let mut seen = std::collections::HashSet::new();
        matched.retain(|p| seen.insert(self.world.canonical(p)));
        let format = match format {
            Some(format) => format,
            None => {
                // Guessed from the names: every file must agree, or some would be misread.
                let first = guess_format(&matched[0]);
                if let Some(other) = matched.iter().find(|p| guess_format(p) != first) {
                    let (span, file) = origin_of[other];
                    let name = |p: &Path| p.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                    let error = CheckError::Conflict {
                        message: format!(
                            "corpus `{}` mixes file formats: `{}` reads as {}, `{}` as {}",
                            block.display_name(),
                            name(&matched[0]),
                            format_name(first),
                            name(other),
                            format_name(guess_format(other)),
                        ),
                        span: span.into(),
                        label: "matches files of more than one format".to_string(),
                        other: None,
                        help: Some("one corpus per format, or `format = ...` to read them all alike".to_string()),
                    };
                    self.error(file, error);
                    return None;
                }
                first
            }
        };
        let heldout = match heldout {
            // Nothing held out leaves the corpus nothing to measure; everything, nothing to train on.
            Some(n) if n.value <= 0.0 => {
                let help = "every corpus keeps held-out documents for its loss; a small share (1%) or a count (`20 docs`) will do";
                self.out_of_range(&n, "`heldout` must hold out at least one document", "holds out nothing", Some(help));
                return None;
            }
            Some(n) if n.unit != Unit::Docs && n.value >= 1.0 => {
                let help = "the held-out share is a fraction of the documents, below 100%; the rest is trained on";
                self.out_of_range(&n, "`heldout` must leave documents to train on", "holds out everything", Some(help));
                return None;
            }
            Some(n) if n.unit == Unit::Docs => Heldout::Docs(n.value as u64),
            Some(n) => Heldout::Fraction(n.value),
            None => Heldout::Fraction(0.02),
        };
        let split_by = match split_by {
            Some(r) if format == Format::Text => {
                let error = CheckError::Conflict {
                    message: format!(
                        "corpus `{}` splits by a field, but plain text has no fields",
                        block.display_name()
                    ),
                    span: r.span.into(),
                    label: "a record field".to_string(),
                    other: None,
                    help: Some(
                        "`split_by` names a field of jsonl or parquet records, e.g. `split_by = source`".to_string(),
                    ),
                };
                self.error(r.file, error);
                return None;
            }
            Some(r) => Some(r.dotted()),
            None => None,
        };
        let max_epochs = match max_epochs {
            Some(n) if !(n.value > 0.0 && n.value.is_finite()) => {
                let help = "how many times training may read the corpus over; 4 is the default, 1 reads it once";
                self.out_of_range(&n, "`max_epochs` must be a positive number", "not a number of passes", Some(help));
                return None;
            }
            Some(n) => n.value,
            None => crate::recipe::DEFAULT_MAX_EPOCHS,
        };
        Some(Corpus {
            name: block.display_name(),
            patterns,
            files: matched,
            format,
            text: text_source?,
            heldout,
            split_by,
            strict: strict.unwrap_or(false),
            max_epochs,
            origin: origin(block),
        })
    }

    /// The template fields `loss_on` marks as targets: each one of the template's fields, not
    /// all of them (that is the default), none twice.
    fn loss_on(&mut self, block: &Resolved, parts: &[TemplatePart], marks: Option<&[RefPath]>) -> Option<Vec<String>> {
        let Some(marks) = marks else { return Some(Vec::new()) };
        let fields: Vec<&str> = parts
            .iter()
            .filter_map(|p| match p {
                TemplatePart::Field(n) => Some(n.as_str()),
                TemplatePart::Literal(_) => None,
            })
            .collect();
        let mut out: Vec<String> = Vec::new();
        let mut ok = true;
        for mark in marks {
            let name = mark.dotted();
            let error = if !fields.contains(&name.as_str()) {
                Some(CheckError::UnknownName {
                    name: name.clone(),
                    expected: "template field".to_string(),
                    span: mark.span.into(),
                    help: crate::suggest::help_for(&name, &fields, "template field"),
                })
            } else if out.contains(&name) {
                Some(CheckError::LossOn {
                    message: format!("`loss_on` names `{name}` twice"),
                    span: mark.span.into(),
                    label: "named before".to_string(),
                    help: "name each field once".to_string(),
                })
            } else {
                None
            };
            match error {
                Some(e) => {
                    self.error(mark.file, e);
                    ok = false;
                }
                None => out.push(name),
            }
        }
        if ok && marks.is_empty() {
            let error = CheckError::LossOn {
                message: format!("corpus `{}` marks no field in `loss_on`", block.display_name()),
                span: block.header.into(),
                label: "empty `loss_on`".to_string(),
                help: "name the fields that are targets, e.g. `loss_on = [answer]`, or leave `loss_on` out to train on every token".to_string(),
            };
            self.error(block.file, error);
            return None;
        }
        ok.then_some(out)
    }

    pub(crate) fn vocab(&mut self, block: &Resolved) -> Option<Vocab> {
        const INITS: [(&str, EmbedInit); 3] = [
            ("mean_of_pieces", EmbedInit::MeanOfPieces),
            ("mean_of_all", EmbedInit::MeanOfAll),
            ("random", EmbedInit::Random),
        ];
        let mut f = Fields::new(block, &mut self.errors);
        let base = f.reference("base");
        let train_on = f.refs("train_on");
        let size = f.number("size", Quantity::Count);
        let min_frequency = f.number("min_frequency", Quantity::Count);
        let keep_top = f.number("keep_top", Quantity::Count);
        let min_gain = f.number("min_gain", Quantity::Plain);
        let init = f.word("init", "embedding initialisation", &INITS);
        for (key, example) in [("base", "base_model"), ("train_on", "[domain_corpus]"), ("size", "8k")] {
            if !f.has(key) {
                f.missing(key, example);
            }
        }
        let conflict = f.has("keep_top") && f.has("min_gain");
        f.finish(&[]);
        if conflict {
            let (spans, file) = self.both_span(block, "keep_top", "min_gain");
            let error = CheckError::Conflict {
                message: format!("vocab `{}` gives both `keep_top` and `min_gain`", block.display_name()),
                span: spans.0.into(),
                label: "keep the top K candidates".to_string(),
                other: Some(spans.1.into()),
                help: Some("choose one selection: the top K by gain, or all above a gain".to_string()),
            };
            self.error(file, error);
            return None;
        }
        let base = self.resolve(&base?, &["model"])?.0;
        let train_on = self.resolve_all(&train_on?, &["corpus"])?;
        let size = size?.value as u64;
        if let Some(k) = keep_top.as_ref().filter(|k| k.value < 1.0) {
            let help = "`keep_top = K` keeps the K candidates with the best gain; leave it out to keep `size` of them";
            self.out_of_range(k, "`keep_top` must keep at least one token", "keeps nothing", Some(help));
            return None;
        }
        let select = match (keep_top, min_gain) {
            (Some(k), _) => Selection::TopK(k.value as u64),
            (None, Some(g)) => Selection::MinGain(g.value),
            (None, None) => Selection::TopK(size),
        };
        Some(Vocab {
            name: block.display_name(),
            base,
            train_on,
            size,
            min_frequency: min_frequency.map_or(2, |n| n.value as u64),
            select,
            init: init.unwrap_or(EmbedInit::MeanOfPieces),
            origin: origin(block),
        })
    }

    pub(crate) fn mixture(&mut self, block: &Resolved) -> Option<Mixture> {
        let mut f = Fields::new(block, &mut self.errors);
        let repeat = f.boolean("repeat");
        f.finish(&["part", "ramp"]);
        let mut parts: Vec<(Part, Option<Num>, &Resolved)> = Vec::new();
        let mut ok = true;
        for child in block.blocks.iter().filter(|b| b.kind == "part") {
            let mut f = Fields::new(child, &mut self.errors);
            let corpora = f.refs("corpora");
            let share = f.number("share", Quantity::Ratio);
            if !f.has("corpora") {
                f.missing("corpora", "[corpus_name]");
            }
            f.finish(&[]);
            let names: Vec<&str> = Role::ALL.iter().map(|(n, _)| *n).collect();
            let Some(name) = &child.name else {
                let error = CheckError::MissingName { kind: "part".to_string(), span: child.header.into() };
                self.error(child.file, error);
                ok = false;
                continue;
            };
            let Some(role) = Role::ALL.iter().find(|(n, _)| *n == name.name).map(|(_, r)| *r) else {
                let error = CheckError::UnknownValue {
                    what: "mixture part".to_string(),
                    word: name.name.clone(),
                    span: name.span.into(),
                    help: help_for(&name.name, &names, "part"),
                };
                self.error(child.file, error);
                ok = false;
                continue;
            };
            let Some(corpora) = corpora.and_then(|c| self.resolve_all(&c, &["corpus"])) else {
                ok = false;
                continue;
            };
            parts.push((Part { role, corpora, share: share.map_or(f64::NAN, |s| s.value) }, share, child));
        }
        let ramp_block = block.blocks.iter().find(|b| b.kind == "ramp");
        let ramp = match ramp_block {
            Some(rb) => Some(self.ramp(rb)?),
            None => None,
        };
        if !ok {
            return None;
        }
        if parts.is_empty() {
            let error = CheckError::MissingField {
                kind: "mixture".to_string(),
                name: block.display_name(),
                field: "part".to_string(),
                span: block.header.into(),
                help: "add parts such as `part general { corpora = [...]  share = 75% }`".to_string(),
            };
            self.error(block.file, error);
            return None;
        }
        // A corpus in two parts would make its share ambiguous.
        let mut seen: HashMap<&str, Role> = HashMap::new();
        for (part, _, child) in &parts {
            for corpus in &part.corpora {
                if let Some(other) = seen.insert(corpus, part.role)
                    && other != part.role
                {
                    let error = CheckError::Conflict {
                        message: format!(
                            "corpus `{corpus}` is in both the {} and the {} part",
                            other.name(),
                            part.role.name()
                        ),
                        span: child.header.into(),
                        label: "listed again here".to_string(),
                        other: None,
                        help: Some("a corpus belongs to one part of a mixture".to_string()),
                    };
                    self.error(child.file, error);
                    return None;
                }
            }
        }
        // The domain share at the end of the ramp is the domain part's share.
        if let Some(ramp) = &ramp {
            let Some(domain) = parts.iter_mut().find(|(p, _, _)| p.role == Role::Domain) else {
                let rb = ramp_block.unwrap_or(block);
                let error = CheckError::MissingField {
                    kind: "mixture".to_string(),
                    name: block.display_name(),
                    field: "part domain".to_string(),
                    span: rb.header.into(),
                    help: "a ramp moves the domain share; add `part domain { corpora = [...] }`".to_string(),
                };
                self.error(rb.file, error);
                return None;
            };
            match domain.1 {
                None => domain.0.share = ramp.to,
                Some(share) if (share.value - ramp.to).abs() > 1e-9 => {
                    let error = CheckError::Conflict {
                        message: format!(
                            "the domain share is {} but the ramp ends at {}",
                            pct(share.value),
                            pct(ramp.to)
                        ),
                        span: share.span.into(),
                        label: "domain share".to_string(),
                        other: None,
                        help: Some(
                            "shares are the end-of-ramp shares; drop the domain `share` or make it equal".to_string(),
                        ),
                    };
                    self.error(share.file, error);
                    return None;
                }
                Some(_) => {}
            }
        }
        for (part, share, child) in &parts {
            if share.is_none() && part.share.is_nan() {
                let mut f = Fields::new(child, &mut self.errors);
                f.missing("share", "25%");
                return None;
            }
        }
        let sum: f64 = parts.iter().map(|(p, _, _)| p.share).sum();
        if (sum - 1.0).abs() > 1e-6 {
            let listed: Vec<String> =
                parts.iter().map(|(p, _, _)| format!("{} {}", p.role.name(), pct(p.share))).collect();
            let error = CheckError::SharesSum {
                mixture: block.display_name(),
                sum: pct(sum),
                span: block.header.into(),
                parts: listed.join(" + "),
                help: format!("adjust the shares by {} in total", pct(1.0 - sum)),
            };
            self.error(block.file, error);
            return None;
        }
        let parts = parts.into_iter().map(|(p, _, _)| p).collect();
        Some(Mixture { name: block.display_name(), parts, ramp, repeat: repeat.unwrap_or(true), origin: origin(block) })
    }

    fn ramp(&mut self, block: &Resolved) -> Option<Ramp> {
        const SHAPES: [(&str, RampShape); 3] =
            [("linear", RampShape::Linear), ("cosine", RampShape::Cosine), ("step", RampShape::Step)];
        let mut f = Fields::new(block, &mut self.errors);
        let shape = f.word("shape", "ramp shape", &SHAPES);
        let share = f.range("share", Quantity::Ratio);
        let window = f.range("window", Quantity::Ratio);
        if !f.has("share") {
            f.missing("share", "5% -> 30%");
        }
        f.finish(&[]);
        let (from, to) = share?;
        let window = match window {
            Some((a, b)) if a.value > b.value => {
                let error = CheckError::OutOfRange {
                    message: "the ramp's window ends before it starts".to_string(),
                    span: a.span.to(b.span).into(),
                    label: format!("{} -> {}", pct(a.value), pct(b.value)),
                    help: Some("write the window as `start -> end` of training progress".to_string()),
                };
                self.error(a.file, error);
                return None;
            }
            Some((a, b)) => (a.value, b.value),
            None => (0.0, 1.0),
        };
        Some(Ramp { shape: shape.unwrap_or(RampShape::Linear), from: from.value, to: to.value, window })
    }

    pub(crate) fn schedule(&mut self, block: &Resolved) -> Option<Schedule> {
        const SHAPES: [(&str, &str); 5] = [
            ("constant", "constant"),
            ("linear", "linear"),
            ("cosine", "cosine"),
            ("wsd", "wsd"),
            ("rewarm", "rewarm"),
        ];
        const DECAYS: [(&str, DecayShape); 4] = [
            ("linear", DecayShape::Linear),
            ("cosine", DecayShape::Cosine),
            ("exponential", DecayShape::Exponential),
            ("sqrt", DecayShape::Sqrt),
        ];
        let mut f = Fields::new(block, &mut self.errors);
        let Some(shape) = f.word("shape", "schedule shape", &SHAPES) else {
            if !f.has("shape") {
                f.missing("shape", "cosine");
            }
            return None;
        };
        let warmup_default = if shape == "rewarm" { Amount::Fraction(0.01) } else { Amount::Fraction(0.0) };
        let warmup = f.number("warmup", Quantity::Amount).map_or(warmup_default, amount);
        let positive = |f: &mut Fields<'_>, key: &'static str| -> Option<f64> {
            let n = f.number(key, Quantity::Plain);
            if n.is_none() && !f.has(key) {
                f.missing(key, "3e-4");
            }
            let n = n?;
            if n.value <= 0.0 {
                let error = CheckError::OutOfRange {
                    message: format!("`{key}` must be positive"),
                    span: n.span.into(),
                    label: "not positive".to_string(),
                    help: None,
                };
                f.error(n.file, error);
                return None;
            }
            Some(n.value)
        };
        let lr = match shape {
            "constant" => {
                let lr = positive(&mut f, "lr");
                lr.map(|lr| LrSchedule::Constant { lr, warmup })
            }
            "linear" | "cosine" => {
                let peak = positive(&mut f, "peak");
                let min = f.number("min", Quantity::Ratio).map_or(0.1, |n| n.value);
                peak.map(|peak| {
                    if shape == "linear" {
                        LrSchedule::Linear { peak, warmup, min }
                    } else {
                        LrSchedule::Cosine { peak, warmup, min }
                    }
                })
            }
            "wsd" => {
                let peak = positive(&mut f, "peak");
                let decay = f.number("decay", Quantity::Ratio).map_or(0.1, |n| n.value);
                let min = f.number("min", Quantity::Ratio).map_or(0.0, |n| n.value);
                let decay_shape = f.word("decay_shape", "decay shape", &DECAYS).unwrap_or(DecayShape::Linear);
                peak.map(|peak| LrSchedule::Wsd { peak, warmup, decay, min, decay_shape })
            }
            _ => {
                let start = positive(&mut f, "start");
                let peak = positive(&mut f, "peak");
                let min = f.number("min", Quantity::Ratio).map_or(0.1, |n| n.value);
                let decay_shape = f.word("decay_shape", "decay shape", &DECAYS).unwrap_or(DecayShape::Cosine);
                match (start, peak) {
                    (Some(start), Some(peak)) => Some(LrSchedule::Rewarm { start, peak, warmup, min, decay_shape }),
                    _ => None,
                }
            }
        };
        f.finish(&[]);
        Some(Schedule { name: block.display_name(), lr: lr?, origin: origin(block) })
    }

    pub(crate) fn train(&mut self, block: &Resolved) -> Option<Train> {
        if let Some((from, file)) = block.fields.iter().find(|(f, _)| f.key.name == "from") {
            return self.fork_train(block, from, *file);
        }
        let mut f = Fields::new(block, &mut self.errors);
        let model = f.reference("model");
        let vocab = f.reference("vocab");
        let mixture = f.reference("mixture");
        let domain_share_field = f.get("domain_share").cloned();
        let tokens = f.number("tokens", Quantity::Tokens);
        let seq_len = f.number("seq_len", Quantity::Count);
        let batch = f.number("batch", Quantity::Tokens);
        let lr = f.reference("lr");
        let eval_every = f.number("eval_every", Quantity::Amount);
        let eval = f.refs("eval");
        let eval_bytes = f.number("eval_bytes", Quantity::Bytes);
        let seed = f.number("seed", Quantity::Count);
        let weight_decay = f.number("weight_decay", Quantity::Plain);
        let grad_clip = f.number("grad_clip", Quantity::Plain);
        let precision = f.word("precision", "precision", &Precision::ALL);
        let divergence_ratio = f.number("divergence_ratio", Quantity::Plain);
        let divergence_steps = f.number("divergence_steps", Quantity::Count);
        let engine = f.word("engine", "engine", &Engine::ALL).unwrap_or_default();
        for (key, example) in [
            ("model", "base"),
            ("mixture", "mix"),
            ("tokens", "20M tokens"),
            ("seq_len", "512"),
            ("batch", "16k tokens"),
            ("lr", "cosine_rewarm"),
        ] {
            if !f.has(key) {
                f.missing(key, example);
            }
        }
        f.finish(&["long_context", "group"]);
        let domain_share = match domain_share_field {
            None => None,
            Some((field, file)) => Some(self.deferred_ratio(&field.value, file)?),
        };
        let model = self.model_ref(&model?)?;
        let vocab = match vocab {
            Some(v) => Some(self.resolve(&v, &["vocab"])?.0),
            None => None,
        };
        let mixture = self.resolve(&mixture?, &["mixture"])?.0;
        let schedule = self.resolve(&lr?, &["schedule"])?.0;
        let eval_sets = match eval {
            Some(e) => self.resolve_all(&e, &["corpus"])?,
            None => Vec::new(),
        };
        let (tokens, seq_len, batch) = (tokens?, seq_len?, batch?);
        if seq_len.value < 2.0 {
            self.out_of_range(&seq_len, "`seq_len` must be at least 2", "too short", None);
            return None;
        }
        if batch.value < seq_len.value {
            self.out_of_range(
                &batch,
                format!("the batch ({} tokens) is smaller than one sequence ({} tokens)", batch.value, seq_len.value),
                "smaller than `seq_len`",
                Some("the batch is counted in tokens: sequences per step x `seq_len`"),
            );
            return None;
        }
        if tokens.value < batch.value {
            self.out_of_range(
                &tokens,
                "the token budget is smaller than one batch",
                "fewer tokens than one step uses",
                None,
            );
            return None;
        }
        if let Some(wd) = weight_decay.as_ref().filter(|w| w.value < 0.0) {
            let help = "AdamW's decoupled decay pulls weights toward zero; 0 turns it off, 0.1 is usual";
            self.out_of_range(wd, "`weight_decay` cannot be negative", "negative decay grows the weights", Some(help));
            return None;
        }
        if let Some(clip) = grad_clip.as_ref().filter(|c| c.value <= 0.0) {
            let help = "the global gradient norm is clipped to this value; 1.0 is usual";
            self.out_of_range(clip, "`grad_clip` must be above 0", "would zero every update", Some(help));
            return None;
        }
        if let Some(r) = divergence_ratio.as_ref().filter(|r| r.value <= 1.0) {
            let help =
                "training stops when its loss stays above this multiple of the first step's loss; 2 is the default";
            self.out_of_range(r, "`divergence_ratio` must be above 1", "a loss at its start would trip it", Some(help));
            return None;
        }
        if let Some(n) = divergence_steps.as_ref().filter(|n| n.value < 1.0) {
            let help = "the number of steps in a row the loss must stay above the bound; 20 is the default";
            self.out_of_range(n, "`divergence_steps` must be at least 1", "never trips", Some(help));
            return None;
        }
        let divergence = Divergence {
            ratio: divergence_ratio.map_or(Divergence::DEFAULT.ratio, |n| n.value),
            steps: divergence_steps.map_or(Divergence::DEFAULT.steps, |n| n.value as u64),
        };
        let mut long_context = None;
        let mut rope = None;
        let mut groups = Vec::new();
        for child in &block.blocks {
            match child.kind.as_str() {
                "long_context" => {
                    let (lc, r) = self.long_context(child, &seq_len)?;
                    long_context = Some(lc);
                    rope = r;
                }
                "group" => groups.push(self.group(child, vocab.is_some())?),
                _ => {}
            }
        }
        Some(Train {
            name: block.display_name(),
            model,
            vocab,
            mixture,
            domain_share,
            tokens: tokens.value as u64,
            seq_len: seq_len.value as u64,
            batch_tokens: batch.value as u64,
            schedule,
            eval_every: eval_every.map(amount),
            eval_sets,
            eval_bytes: eval_bytes.map_or(DEFAULT_EVAL_BYTES, |n| n.value as u64),
            seed: seed.map_or(0, |n| n.value as u64),
            weight_decay: weight_decay.map_or(0.1, |n| n.value),
            grad_clip: grad_clip.map_or(1.0, |n| n.value),
            long_context,
            groups,
            precision,
            divergence,
            engine,
            rope,
            fork: None,
            origin: origin(block),
        })
    }

    fn model_ref(&mut self, r: &RefPath) -> Option<ModelRef> {
        let (name, kind) = self.resolve(r, &["model", "train"])?;
        Some(if kind == "model" { ModelRef::Model(name) } else { ModelRef::Train(name) })
    }

    /// A ratio written in the recipe, or `choose.ratio` computed at run time.
    fn deferred_ratio(&mut self, expr: &crate::syntax::ast::Expr, file: FileId) -> Option<Deferred<f64>> {
        use crate::syntax::ast::ExprKind;
        match &expr.kind {
            ExprKind::Path(parts) => {
                let r = RefPath { parts: parts.clone(), span: expr.span, file };
                let head = r.head().clone();
                let kind = self.kind_of(&head.name);
                if kind != Some("choose") {
                    // Reuse the resolver for its unknown-name and wrong-kind messages.
                    let plain = RefPath { parts: vec![head], span: expr.span, file };
                    self.resolve(&plain, &["choose"])?;
                }
                let Some(output) = parts.get(1) else {
                    let error = CheckError::UnknownOutput {
                        name: r.head().name.clone(),
                        field: String::new(),
                        span: expr.span.into(),
                        help: format!("name the output: `{}.ratio`", r.head().name),
                    };
                    self.error(file, error);
                    return None;
                };
                if !CHOOSE_OUTPUTS.contains(&output.name.as_str()) || parts.len() > 2 {
                    let error = CheckError::UnknownOutput {
                        name: r.head().name.clone(),
                        field: output.name.clone(),
                        span: output.span.into(),
                        help: help_for(&output.name, &CHOOSE_OUTPUTS, "output"),
                    };
                    self.error(file, error);
                    return None;
                }
                Some(Deferred::From { stage: r.head().name.clone(), output: output.name.clone() })
            }
            _ => {
                let n = super::fields::number_of(&mut self.errors, "domain_share", expr, file, Quantity::Ratio)?;
                Some(Deferred::Value(n.value))
            }
        }
    }

    /// The packing of a long-context train whose sequences are `seq_len` long.
    fn long_context(&mut self, block: &Resolved, seq_len: &Num) -> Option<(LongContext, Option<RopeExtension>)> {
        const ROPES: [(&str, Option<RopeKind>); 5] = [
            ("theta", None),
            ("linear", Some(RopeKind::Linear)),
            ("dynamic", Some(RopeKind::Dynamic)),
            ("yarn", Some(RopeKind::Yarn)),
            ("llama3", Some(RopeKind::Llama3)),
        ];
        let mut f = Fields::new(block, &mut self.errors);
        let length = f.number("length", Quantity::Count);
        let group_similar = f.boolean("group_similar");
        let short_below = f.number("short_below", Quantity::Tokens);
        let keep_short = f.number("keep_short", Quantity::Ratio);
        let rope_theta = f.number("rope_theta", Quantity::Plain);
        let rope_kind = f.word("rope", "RoPE scaling", &ROPES);
        let factor = f.number("factor", Quantity::Plain);
        let original = f.number("original", Quantity::Count);
        let has_length = f.has("length");
        let has_rope = f.has("rope");
        let rope_span = f.get("rope").map(|(field, file)| (field.value.span, *file));
        f.finish(&[]);
        if has_rope && rope_kind.is_none() {
            return None; // the word was wrong: said
        }
        let rope_kind = rope_kind.flatten();
        let rope = match (rope_kind, &factor) {
            (Some(kind), Some(factor)) if factor.value.is_finite() && factor.value > 1.0 => {
                Some(RopeExtension { kind, factor: factor.value, original: original.as_ref().map(|o| o.value as u64) })
            }
            (Some(_), Some(factor)) => {
                self.out_of_range(
                    factor,
                    "`factor` must be above 1",
                    "not an extension",
                    Some("how many times longer the context becomes, e.g. 4 for 4k -> 16k"),
                );
                return None;
            }
            (Some(kind), None) => {
                let (span, file) = rope_span?;
                let error = CheckError::MissingField {
                    kind: "long_context".to_string(),
                    name: format!("rope = {}", kind.name()),
                    field: "factor".to_string(),
                    span: span.into(),
                    help: "add `factor = 4`: how many times longer the context becomes".to_string(),
                };
                self.error(file, error);
                return None;
            }
            (None, _) => {
                if let Some(n) = factor.as_ref().or(original.as_ref()) {
                    self.out_of_range(
                        n,
                        "`factor` and `original` belong to a RoPE scaling",
                        "no `rope` to apply it to",
                        Some("add `rope = yarn` (or linear, dynamic, llama3); `rope = theta` changes the base only"),
                    );
                    return None;
                }
                None
            }
        };
        if let Some(o) = original.as_ref().filter(|o| o.value < 1.0) {
            self.out_of_range(o, "`original` must be a positive number of positions", "no context", None);
            return None;
        }
        // The packed length is the trained length: `length` may repeat `seq_len`, never differ.
        let length = if has_length { length? } else { *seq_len };
        if length.value != seq_len.value {
            let error = CheckError::Conflict {
                message: format!(
                    "long-context sequences of {} tokens, but the train's `seq_len` is {}",
                    length.value, seq_len.value
                ),
                span: length.span.into(),
                label: "the packed length".to_string(),
                other: (length.file == seq_len.file).then(|| seq_len.span.into()),
                help: Some("the model trains on the packed sequences: set `seq_len` to this length".to_string()),
            };
            self.error(length.file, error);
            return None;
        }
        let rope_theta = match rope_theta {
            Some(t) if !(t.value.is_finite() && t.value > 1.0) => {
                self.out_of_range(
                    &t,
                    "`rope_theta` must be above 1",
                    "not a RoPE base",
                    Some("RoPE's base is typically 10k to 10M; long-context CPT raises it"),
                );
                return None;
            }
            t => t,
        };
        let lc = LongContext {
            target_len: length.value as u64,
            group_similar: group_similar.unwrap_or(false),
            short_below: short_below.map_or(4096, |n| n.value as u64),
            keep_short: keep_short.map_or(1.0, |n| n.value),
            rope_theta: rope_theta.map(|n| n.value),
        };
        Some((lc, rope))
    }

    fn group(&mut self, block: &Resolved, has_vocab: bool) -> Option<ParamGroup> {
        const PARAMS: [(&str, ParamSelector); 5] = [
            ("embeddings", ParamSelector::Embeddings),
            ("new_embeddings", ParamSelector::NewEmbeddings),
            ("head", ParamSelector::Head),
            ("norms", ParamSelector::Norms),
            ("all", ParamSelector::All),
        ];
        let mut f = Fields::new(block, &mut self.errors);
        let params = f.word("params", "parameter set", &PARAMS);
        let layers = f.range("layers", Quantity::Count);
        let frozen = f.boolean("frozen");
        let lr_mult = f.number("lr_mult", Quantity::Plain);
        let both = f.has("params") && f.has("layers");
        let neither = !f.has("params") && !f.has("layers");
        if neither {
            f.missing("params", "embeddings");
        }
        f.finish(&[]);
        if both {
            let (spans, file) = self.both_span(block, "params", "layers");
            let error = CheckError::Conflict {
                message: "a group selects `params` or `layers`, not both".to_string(),
                span: spans.0.into(),
                label: "named parameters".to_string(),
                other: Some(spans.1.into()),
                help: Some("split it into two groups".to_string()),
            };
            self.error(file, error);
            return None;
        }
        let selector = match (params, layers) {
            (Some(p), _) => p,
            (None, Some((a, b))) => {
                if a.value > b.value {
                    let error = CheckError::OutOfRange {
                        message: "the layer range ends before it starts".to_string(),
                        span: a.span.to(b.span).into(),
                        label: "from > to".to_string(),
                        help: None,
                    };
                    self.error(a.file, error);
                    return None;
                }
                ParamSelector::Layers { from: a.value as u64, to: b.value as u64 }
            }
            _ => return None,
        };
        if selector == ParamSelector::NewEmbeddings && !has_vocab {
            let ((span, _), file) = self.both_span(block, "params", "params");
            let error = CheckError::Conflict {
                message: "`new_embeddings` needs a vocabulary expansion".to_string(),
                span: span.into(),
                label: "no new rows without `vocab`".to_string(),
                other: None,
                help: Some("add `vocab = NAME` to the train stage, or select `embeddings`".to_string()),
            };
            self.error(file, error);
            return None;
        }
        Some(ParamGroup {
            name: block.display_name(),
            params: selector,
            frozen: frozen.unwrap_or(false),
            lr_mult: lr_mult.map_or(1.0, |n| n.value),
        })
    }

    pub(crate) fn eval(&mut self, block: &Resolved) -> Option<Eval> {
        const METRICS: [(&str, Metric); 3] = [("loss", Metric::Loss), ("ppl", Metric::Ppl), ("bpb", Metric::Bpb)];
        let mut f = Fields::new(block, &mut self.errors);
        let model = f.reference("model");
        let sets = f.refs("sets");
        let metrics = f.words("metrics", "metric", &METRICS);
        let bytes = f.number("bytes", Quantity::Bytes);
        let seq_len = f.number("seq_len", Quantity::Count);
        let precision = f.word("precision", "precision", &Precision::ALL);
        for (key, example) in [("model", "cpt"), ("sets", "[domain, general]")] {
            if !f.has(key) {
                f.missing(key, example);
            }
        }
        f.finish(&[]);
        let model = self.model_ref(&model?)?;
        let sets = self.resolve_all(&sets?, &["corpus"])?;
        let metrics = match metrics {
            Some(m) => m,
            None if block.fields.iter().any(|(f, _)| f.key.name == "metrics") => return None,
            None => vec![Metric::Loss, Metric::Ppl, Metric::Bpb],
        };
        Some(Eval {
            name: block.display_name(),
            model,
            sets,
            metrics,
            bytes: bytes.map_or(DEFAULT_EVAL_BYTES, |n| n.value as u64),
            seq_len: seq_len.map_or(DEFAULT_EVAL_SEQ_LEN, |n| (n.value as u64).max(2)),
            precision,
            origin: origin(block),
        })
    }

    pub(crate) fn sweep(&mut self, block: &Resolved) -> Option<Sweep> {
        let mut f = Fields::new(block, &mut self.errors);
        let train = f.reference("train");
        let ratios = f.numbers("ratio", Quantity::Ratio);
        let models = f.refs("models");
        let tokens = f.numbers("tokens", Quantity::Tokens);
        let eval_at = f.numbers("eval_at", Quantity::Ratio);
        for (key, example) in [("train", "small_run"), ("ratio", "[10%, 30%, 50%]")] {
            if !f.has(key) {
                f.missing(key, example);
            }
        }
        f.finish(&[]);
        let train = self.resolve(&train?, &["train"])?.0;
        let ratios = ratios?;
        if let Some(zero) = ratios.iter().find(|r| r.value <= 0.0) {
            self.out_of_range(
                zero,
                "sweep ratios must be above 0%",
                "no domain data at this ratio",
                Some("the law's C/(r+e)^g term is fitted on ratios above zero"),
            );
            return None;
        }
        // Runs are named by their ratio to 0.01%: two ratios that round alike would be one run.
        let key = |r: f64| (r * 10_000.0).round() as i64;
        for (i, later) in ratios.iter().enumerate() {
            if let Some(earlier) = ratios[..i].iter().find(|e| key(e.value) == key(later.value)) {
                let error = CheckError::Conflict {
                    message: "a sweep ratio is listed twice (ratios count to 0.01%)".to_string(),
                    span: later.span.into(),
                    label: "the same ratio again".to_string(),
                    other: Some(earlier.span.into()),
                    help: Some("each ratio is one training run: list it once".to_string()),
                };
                self.error(later.file, error);
                return None;
            }
        }
        let models = match models {
            Some(m) => self.resolve_all(&m, &["model"])?,
            None => Vec::new(),
        };
        Some(Sweep {
            name: block.display_name(),
            train,
            ratios: ratios.iter().map(|n| n.value).collect(),
            models,
            tokens: tokens.map_or_else(Vec::new, |t| t.iter().map(|n| n.value as u64).collect()),
            eval_at: eval_at.map_or_else(|| vec![0.25, 0.5, 0.75, 1.0], |e| e.iter().map(|n| n.value).collect()),
            origin: origin(block),
        })
    }

    pub(crate) fn fit(&mut self, block: &Resolved) -> Option<Fit> {
        const LOSSES: [(&str, LossKind); 2] = [("domain", LossKind::Domain), ("general", LossKind::General)];
        let mut f = Fields::new(block, &mut self.errors);
        let sweep = f.reference("sweep");
        let loss = f.word("loss", "loss", &LOSSES);
        let delta = f.number("huber_delta", Quantity::Plain);
        for (key, example) in [("sweep", "ratios"), ("loss", "domain")] {
            if !f.has(key) {
                f.missing(key, example);
            }
        }
        f.finish(&[]);
        if let Some(d) = delta.filter(|d| d.value <= 0.0) {
            self.out_of_range(&d, "`huber_delta` must be positive", "not positive", None);
            return None;
        }
        let sweep = self.resolve(&sweep?, &["sweep"])?.0;
        Some(Fit {
            name: block.display_name(),
            sweep,
            loss: loss?,
            huber_delta: delta.map_or(1e-3, |d| d.value),
            origin: origin(block),
        })
    }

    pub(crate) fn choose(&mut self, block: &Resolved, fits: &[Fit]) -> Option<Choose> {
        let mut f = Fields::new(block, &mut self.errors);
        let domain = f.reference("domain");
        let general = f.reference("general");
        let max_increase = f.number("max_general_increase", Quantity::Ratio);
        let domain_tokens = f.number("domain_tokens", Quantity::Tokens);
        let tokens = f.number("tokens", Quantity::Tokens);
        if !f.has("domain") {
            f.missing("domain", "domain_law");
        }
        let has = (f.has("max_general_increase"), f.has("domain_tokens"), f.has("general"), f.has("tokens"));
        f.finish(&[]);
        let objective = match has {
            (true, true, _, _) => {
                let (spans, file) = self.both_span(block, "max_general_increase", "domain_tokens");
                let error = CheckError::Conflict {
                    message: "choose one objective".to_string(),
                    span: spans.0.into(),
                    label: "usage 1: general-loss tolerance".to_string(),
                    other: Some(spans.1.into()),
                    help: Some(
                        "`max_general_increase` bounds forgetting; `domain_tokens` fixes the domain data".to_string(),
                    ),
                };
                self.error(file, error);
                return None;
            }
            (false, false, _, _) => {
                let mut f = Fields::new(block, &mut self.errors);
                f.missing("max_general_increase", "3%");
                return None;
            }
            (true, false, has_general, has_tokens) => {
                let mut f = Fields::new(block, &mut self.errors);
                if !has_general {
                    f.missing("general", "general_law");
                }
                if !has_tokens {
                    f.missing("tokens", "100M tokens");
                }
                if !(has_general && has_tokens) {
                    return None;
                }
                Objective::MaxGeneralIncrease(max_increase?.value)
            }
            (false, true, _, _) => Objective::DomainTokens(domain_tokens?.value as u64),
        };
        let domain_ref = domain?;
        let domain_fit = self.resolve(&domain_ref, &["fit"])?.0;
        self.fit_loss(fits, &domain_fit, LossKind::Domain, &domain_ref)?;
        let general_fit = match general {
            Some(g) => {
                let name = self.resolve(&g, &["fit"])?.0;
                self.fit_loss(fits, &name, LossKind::General, &g)?;
                Some(name)
            }
            None => None,
        };
        Some(Choose {
            name: block.display_name(),
            domain_fit,
            general_fit,
            objective,
            tokens: tokens.map(|t| t.value as u64),
            origin: origin(block),
        })
    }

    fn fit_loss(&mut self, fits: &[Fit], name: &str, want: LossKind, r: &RefPath) -> Option<()> {
        let fit = fits.iter().find(|f| f.name == name)?;
        if fit.loss == want {
            return Some(());
        }
        let word = |l: LossKind| if l == LossKind::Domain { "domain" } else { "general" };
        let error = CheckError::WrongKind {
            name: name.to_string(),
            expected: format!("a fit of {} loss", word(want)),
            found: format!("fit of {} loss", word(fit.loss)),
            span: r.span.into(),
            help: None,
        };
        self.error(r.file, error);
        None
    }
}

/// `12.5%` for a fraction 0.125, without trailing zeros.
pub(crate) fn pct(fraction: f64) -> String {
    crate::recipe::percent(fraction, 4)
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Jsonl => "jsonl",
        Format::Text => "text",
        Format::Parquet => "parquet",
    }
}

fn guess_format(path: &Path) -> Format {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    if name.ends_with(".parquet") {
        Format::Parquet
    } else if name.ends_with(".txt") || name.ends_with(".txt.gz") || name.ends_with(".txt.zst") {
        Format::Text
    } else {
        Format::Jsonl
    }
}

/// Splits `{question}\n{answer}` into literals and field names; `\{` is a literal brace.
pub fn parse_template(text: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('{' | '}')) => literal.extend(chars.next()),
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) if c.is_alphanumeric() || c == '_' || c == '.' => name.push(c),
                        Some(c) => return Err(format!("`{}` inside a field name", c.escape_default())),
                        None => return Err("a `{` is never closed".to_string()),
                    }
                }
                if name.is_empty() {
                    return Err("empty field name `{}`".to_string());
                }
                if !literal.is_empty() {
                    parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(TemplatePart::Field(name));
            }
            '}' => return Err("a `}` without its `{`".to_string()),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(TemplatePart::Literal(literal));
    }
    if !parts.iter().any(|p| matches!(p, TemplatePart::Field(_))) {
        return Err("it names no field".to_string());
    }
    Ok(parts)
}
