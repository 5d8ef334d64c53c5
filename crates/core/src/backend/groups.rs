//! Parameter groups of a recipe (`ParamGroup`) resolved against a model's parameters: which
//! train, at what LR multiple, with weight decay or not, and which embedding rows (for training
//! only new vocabulary rows). Both engines train by this plan: the built-in one over its own
//! parameter list, the FSDP engine over the names in the model's safetensors files.

use serde::{Deserialize, Serialize};

use super::{BackendError, Result};
use crate::recipe::{ParamGroup, ParamSelector};

/// What a parameter is, for weight decay and parameter-group selection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    Embedding,
    Head,
    Norm,
    Bias,
    Matrix,
}

impl ParamKind {
    /// Hugging Face's and Megatron's convention: no weight decay on norms and biases.
    pub fn decays(self) -> bool {
        matches!(self, Self::Embedding | Self::Head | Self::Matrix)
    }

    /// The kind of a parameter of a `transformers` causal LM, by its name and shape (the
    /// names every architecture there shares: `model.embed_tokens`, `lm_head`, `*norm*`).
    pub fn of_hf_name(name: &str, shape: &[i64]) -> ParamKind {
        if name.ends_with("embed_tokens.weight") {
            ParamKind::Embedding
        } else if name == "lm_head.weight" {
            ParamKind::Head
        } else if name.ends_with(".bias") {
            ParamKind::Bias
        } else if shape.len() < 2 {
            ParamKind::Norm
        } else {
            ParamKind::Matrix
        }
    }
}

/// A parameter's name, shape and kind.
pub type ParamInfo = (String, Vec<i64>, ParamKind);

/// The parameters of a model as the plan needs them: names, shapes and kinds, in order, plus
/// the layer count and whether the head is the embedding matrix.
pub struct ParamList<'a> {
    pub params: &'a [ParamInfo],
    pub n_layers: i64,
    pub tied: bool,
}

/// How the optimizer treats one parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamPlan {
    pub name: String,
    pub kind: ParamKind,
    pub trainable: bool,
    pub lr_mult: f64,
    /// Decoupled weight decay applies (not on norms and biases).
    pub decay: bool,
    /// Only rows `start..end` (dimension 0) train; the others keep their values bit for bit
    /// (their gradient is ignored and they get no update and no decay).
    pub rows: Option<(i64, i64)>,
    /// Rows at and above `.0` (dimension 0) train at LR multiplier `.1` instead of `lr_mult`:
    /// new vocabulary rows that learn faster than the old ones.
    pub split_lr: Option<(i64, f64)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct State {
    frozen: bool,
    lr_mult: f64,
}

const DEFAULT: State = State { frozen: false, lr_mult: 1.0 };

/// Resolves groups in order, a later group overriding an earlier one where both select a
/// parameter; parameters no group selects train at multiplier 1.
///
/// `old_vocab` is the vocabulary size before expansion: `new_embeddings` selects the rows at
/// and above it of the input embedding (and of an untied head). With tied embeddings the head
/// is the embedding matrix, so `head` and `embeddings` select the same tensor.
pub fn plan_params(list: &ParamList<'_>, groups: &[ParamGroup], old_vocab: Option<i64>) -> Result<Vec<ParamPlan>> {
    let vocab = list
        .params
        .iter()
        .find(|(_, _, kind)| *kind == ParamKind::Embedding)
        .and_then(|(_, shape, _)| shape.first().copied())
        .unwrap_or(0);
    let n_layers = list.n_layers;
    let bad = |reason: String| BackendError::ParamGroups { reason };
    if groups.iter().any(|g| g.params == ParamSelector::NewEmbeddings) {
        match old_vocab {
            None => {
                return Err(bad("`new_embeddings` needs the vocabulary size before expansion".to_owned()));
            }
            Some(o) if o <= 0 || o > vocab => {
                return Err(bad(format!("the vocabulary size before expansion ({o}) must be in 1..={vocab}")));
            }
            _ => {}
        }
    }
    for g in groups {
        if let ParamSelector::Layers { from, to } = g.params
            && (from > to || to >= n_layers as u64)
        {
            return Err(bad(format!(
                "group `{}` selects layers {from}..={to}, the model has layers 0..={}",
                g.name,
                n_layers - 1
            )));
        }
        if !(g.lr_mult.is_finite() && g.lr_mult >= 0.0) {
            return Err(bad(format!("group `{}` has LR multiplier {}", g.name, g.lr_mult)));
        }
    }
    let tied = list.tied;
    let mut out = Vec::new();
    for (name, _, kind) in list.params.iter().cloned() {
        let has_rows = matches!(kind, ParamKind::Embedding | ParamKind::Head);
        // State of rows below old_vocab (the whole tensor when it has no rows) and above it.
        let (mut old, mut new) = (DEFAULT, DEFAULT);
        for g in groups {
            let st = State { frozen: g.frozen, lr_mult: g.lr_mult };
            let layer = layer_index(&name);
            let whole = match g.params {
                ParamSelector::All => true,
                ParamSelector::Embeddings => kind == ParamKind::Embedding,
                ParamSelector::Head => kind == ParamKind::Head || (tied && kind == ParamKind::Embedding),
                ParamSelector::Norms => kind == ParamKind::Norm,
                ParamSelector::Layers { from, to } => layer.is_some_and(|i| i >= from && i <= to),
                ParamSelector::NewEmbeddings => {
                    if has_rows {
                        new = st;
                    }
                    false
                }
            };
            if whole {
                old = st;
                new = st;
            }
        }
        let split = old_vocab.filter(|&o| has_rows && o < vocab && old != new);
        let plan = |trainable: bool, lr_mult: f64, rows: Option<(i64, i64)>| ParamPlan {
            name: name.clone(),
            kind,
            trainable,
            lr_mult,
            decay: kind.decays(),
            rows,
            split_lr: None,
        };
        out.push(match split {
            None => plan(!old.frozen, old.lr_mult, None),
            Some(o) => match (old.frozen, new.frozen) {
                (true, true) => plan(false, 1.0, None),
                (true, false) => plan(true, new.lr_mult, Some((o, vocab))),
                (false, true) => plan(true, old.lr_mult, Some((0, o))),
                (false, false) => ParamPlan { split_lr: Some((o, new.lr_mult)), ..plan(true, old.lr_mult, None) },
            },
        });
    }
    Ok(out)
}

/// `model.layers.7.mlp...` -> 7.
fn layer_index(name: &str) -> Option<u64> {
    name.strip_prefix("model.layers.")?.split('.').next()?.parse().ok()
}
