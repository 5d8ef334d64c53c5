//! Forks: `train anneal { from = cpt at 80% ... }`, a train that starts from another train's
//! state at one of its steps. The state fixes the model, vocabulary, sequence geometry, seed,
//! precision, engine, parameter groups and long-context settings, so a fork inherits them
//! (and may not set them); its mixture, budget, schedule and evaluations are its own or its
//! parent's. Without `tokens`, a fork trains the steps its parent has left.

use super::CheckError;
use super::build::Builder;
use super::fields::Fields;
use super::resolve::Resolved;
use crate::recipe::{Clock, Engine, Fork, StepGeometry, Train};
use crate::source::{FileId, Span};
use crate::syntax::ast::{ExprKind, Field, Unit};

/// What a fork takes from its parent: fields, then nested blocks.
const INHERITED_FIELDS: [&str; 7] = ["model", "vocab", "seq_len", "batch", "seed", "precision", "engine"];
const INHERITED_BLOCKS: [&str; 2] = ["long_context", "group"];

impl Builder<'_> {
    /// A `train` block with `from`: checked as its fields over its parent's.
    pub(crate) fn fork_train(&mut self, block: &Resolved, from: &Field, file: FileId) -> Option<Train> {
        let bad = |message: String, span: Span, label: &str, help: Option<String>| CheckError::Fork {
            message,
            span: span.into(),
            label: label.to_string(),
            help,
        };
        let ExprKind::At(run, point) = &from.value.kind else {
            let error = bad(
                "`from` names a train and the point of its run to start from".into(),
                from.value.span,
                "not `train at point`",
                Some("write e.g. `from = cpt at 80%` (or `at 400 steps`, `at 800M tokens`)".into()),
            );
            self.error(file, error);
            return None;
        };
        let ExprKind::Path(parts) = &run.kind else {
            self.error(file, bad("a fork starts from a train".into(), run.span, "not a name", None));
            return None;
        };
        let r = super::fields::RefPath { parts: parts.clone(), span: run.span, file };
        let (parent_name, _) = self.resolve(&r, &["train"])?;
        let parent = self.definition(&parent_name)?;
        if parent.fields.iter().any(|(f, _)| f.key.name == "from") {
            let error = bad(
                format!("`{parent_name}` is itself a fork"),
                run.span,
                "a fork of a fork",
                Some(format!(
                    "fork from the run `{parent_name}` forks, or continue `{parent_name}`'s model with `model = {parent_name}`"
                )),
            );
            self.error(file, error);
            return None;
        }
        let mut inherited_set = false;
        for (field, at) in &block.fields {
            if INHERITED_FIELDS.contains(&field.key.name.as_str()) {
                let error = bad(
                    format!("a fork continues `{parent_name}`'s run: its `{}` is `{parent_name}`'s", field.key.name),
                    field.key.span,
                    "set by the parent",
                    Some(format!(
                        "remove it here; to train from another starting point, write a train with `model = ...` instead of `from = {parent_name} at ...`"
                    )),
                );
                self.error(*at, error);
                inherited_set = true;
            }
        }
        for child in &block.blocks {
            if INHERITED_BLOCKS.contains(&child.kind.as_str()) {
                let error = bad(
                    format!(
                        "a fork continues `{parent_name}`'s run: its `{}` blocks are `{parent_name}`'s",
                        child.kind
                    ),
                    child.kind_span,
                    "set by the parent",
                    None,
                );
                self.error(child.file, error);
                inherited_set = true;
            }
        }
        let clock = {
            let mut f = Fields::new(block, &mut self.errors);
            f.word("clock", "clock", &Clock::ALL).unwrap_or_default()
        };
        if inherited_set {
            return None;
        }
        let mut own = block.clone();
        own.fields.retain(|(f, _)| !matches!(f.key.name.as_str(), "from" | "clock"));
        let sets_tokens = own.fields.iter().any(|(f, _)| f.key.name == "tokens");
        let merged = own.over(parent);
        let mut train = self.train(&merged)?;
        if train.engine == Engine::Fsdp {
            let error = bad(
                format!("`{parent_name}` keeps no states to fork from: it trains with `engine = fsdp`"),
                run.span,
                "an FSDP run",
                Some("forks start from states the built-in engine keeps; fork a run with `engine = builtin`".into()),
            );
            self.error(file, error);
            return None;
        }
        // The parent's run, from its own budget (a fork's geometry is its parent's).
        let parent_tokens = parent.fields.iter().find_map(|(f, _)| match &f.value.kind {
            ExprKind::Number(n) if f.key.name == "tokens" && n.unit == Unit::Tokens => Some(n.value as u64),
            _ => None,
        })?;
        let geometry = StepGeometry::new(parent_tokens, train.seq_len, train.batch_tokens);
        let (steps, per_step) = (geometry.steps, geometry.tokens_per_step());
        let run_is = format!("`{parent_name}` trains {steps} steps of {per_step} tokens");
        let amount = match &point.kind {
            ExprKind::Number(n) => Some((n.unit, n.value)),
            _ => None,
        };
        let step = match amount {
            Some((Unit::Percent, f)) => (f * steps as f64).round(),
            Some((Unit::Steps, n)) => n,
            Some((Unit::Tokens, t)) if t.rem_euclid(per_step as f64) == 0.0 => t / per_step as f64,
            Some((Unit::Tokens, t)) => {
                let error = bad(
                    format!("{t} tokens is not a whole number of `{parent_name}`'s steps"),
                    point.span,
                    "between two steps",
                    Some(format!("{run_is}: a point is one of its steps")),
                );
                self.error(file, error);
                return None;
            }
            _ => {
                let label = if amount.is_some() { "no unit" } else { "not an amount" };
                let help = Some("a percentage, steps or tokens of the parent's run: `at 80%`, `at 400 steps`".into());
                self.error(
                    file,
                    bad("a fork's point is an amount of its parent's run".into(), point.span, label, help),
                );
                return None;
            }
        };
        if !(step >= 1.0 && step <= steps as f64 && step.fract() == 0.0) {
            let error = bad(
                format!("`{parent_name}` never reaches that point: {run_is}"),
                point.span,
                if step > steps as f64 { "past the parent's last step" } else { "before the parent's first step" },
                Some(format!("a fork starts at one of `{parent_name}`'s steps, 1 to {steps}")),
            );
            self.error(file, error);
            return None;
        }
        let step = step as u64;
        if !sets_tokens {
            if step == steps {
                let error = bad(
                    format!("a fork at `{parent_name}`'s last step needs its own `tokens`"),
                    point.span,
                    "nothing left of the parent's budget",
                    Some("set `tokens = ...` in the fork".into()),
                );
                self.error(file, error);
                return None;
            }
            train.tokens = (steps - step) * per_step;
        }
        train.fork = Some(Fork { parent: parent_name, step, clock });
        Some(train)
    }
}
