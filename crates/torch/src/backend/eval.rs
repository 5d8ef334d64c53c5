//! Held-out evaluation: loss, perplexity and bits per byte over token sequences.

use cptc::backend::Result;
pub use cptc::backend::eval::EvalResult;

use super::model::Llama;
use super::train::{Example, sum_nats};

/// One held-out sequence and the UTF-8 byte length of the text its counted targets cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalExample {
    pub example: Example,
    pub bytes: u64,
}

/// Evaluates `model` on `examples`, `micro_batch` sequences of equal length per forward pass,
/// without gradients, in the model's precision. Token sums are accumulated in float64.
pub fn evaluate<I>(model: &Llama, examples: I, micro_batch: usize) -> Result<EvalResult>
where
    I: IntoIterator<Item = EvalExample>,
{
    let vocab = model.config().vocab_size;
    let (mut nats, mut tokens, mut bytes) = (0.0, 0u64, 0u64);
    let mut pending: Vec<Example> = Vec::new();
    let mut flush = |pending: &mut Vec<Example>| -> Result<()> {
        if !pending.is_empty() {
            let (n, t) = sum_nats(model, pending)?;
            nats += n;
            tokens += t;
            pending.clear();
        }
        Ok(())
    };
    for (i, e) in examples.into_iter().enumerate() {
        e.example.validate(i as u64, vocab, None)?;
        bytes += e.bytes;
        let same_len = pending.first().is_none_or(|p| p.input.len() == e.example.input.len());
        if !same_len || pending.len() >= micro_batch.max(1) {
            flush(&mut pending)?;
        }
        pending.push(e.example);
    }
    flush(&mut pending)?;
    Ok(EvalResult::from_totals(nats, tokens, bytes))
}
