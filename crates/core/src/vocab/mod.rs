//! Vocabulary expansion: BPE training on domain text, merge into the base tokenizer, embedding resize.
//!
//! The pipeline a `vocab` stage runs, each step a function over files on disk:
//!
//! 1. [`train_candidates`]`(base_tokenizer_json, texts, size, min_frequency) -> Candidates`:
//!    trains a BPE of `size` tokens with `tokenizers`' `BpeTrainer` on the domain training
//!    texts, through the base tokenizer's own normalizer and (byte-level) pre-tokenizer; the
//!    candidates are the learned tokens the base vocabulary lacks, in merge order.
//! 2. [`select`]`(base, &candidates, texts, Selection) -> Expansion`: merges every candidate in,
//!    encodes the same training texts, and credits each new token with the base tokens it
//!    replaced (tokens saved); keeps the top K (`Selection::TopK`) or those saving at least a
//!    fraction of the base token count (`Selection::MinGain`), plus the intermediate tokens
//!    their merges are built from.
//! 3. [`merge`]`(base, &expansion, out_tokenizer_json, first_id) -> Merged`: writes the base
//!    `tokenizer.json` with the new tokens as ordinary vocabulary entries and merges (ranked
//!    after all base merges). Every base id stays; new ids follow the largest id in use (added
//!    tokens included), or `first_id` when larger: pass [`embedding_rows`]`(model_dir)` for
//!    models that pad their embedding (GPT-2 at 50,304, Qwen). Added tokens that sit after the
//!    BPE ids (Qwen) are also entered in the model vocabulary at their ids, or `tokenizers` would
//!    renumber them onto the new ids when loading. Python's `tokenizers`/`transformers` load the
//!    file and encode identically.
//! 4. [`report`]`(base, expanded, domain_held_out, general_held_out, n_examples) -> Report`:
//!    tokens per byte and per character before and after on both held-out sets, tokens added,
//!    the most used new tokens; `Serialize` for JSON, `Display` for a summary.
//! 5. [`resize_embeddings`]`(model_in, model_out, base_tok, new_tok, EmbedInit, seed) -> Resized`:
//!    copies an HF model directory with the embedding (and untied `lm_head`) grown by one row per
//!    new token: mean of the token's base pieces, mean of all rows, or a seeded normal with the
//!    rows' standard deviation. Old rows are copied byte for byte; `config.json`'s `vocab_size`
//!    follows; the directory appears atomically.
//!
//! All functions return [`VocabError`] (miette diagnostics, codes `cptc::vocab::*`), never panic
//! on bad input, and write outputs atomically (aside, then renamed).
//!
//! Only byte-level BPE tokenizers are supported (GPT-2, SmolLM2, Llama 3, Qwen). The base BPE
//! applies all its own merges before any new one, so expansion never changes how the base
//! segments text; new merges only join what it leaves, which keeps general text as it was.

mod base;
mod error;
mod merge;
mod report;
mod resize;
mod select;
mod train;

pub use error::VocabError;
pub use merge::{Merged, merge};
pub use report::{Compression, Example, Report, report};
pub use resize::{Resized, embedding_rows, resize_embeddings};
pub use select::{Expansion, NewToken, select};
pub use train::{Candidate, Candidates, train_candidates};
