//! Data pipeline: ingest, held-out split, tokenization into Megatron shards, mixture sampling, packing.
//!
//! The executor drives it per corpus, then per train stage:
//!
//! ```text
//! ingest::read_corpus(&Corpus, &IngestOptions)          -> Ingested { docs, report }
//! ingest::visit_batches(&Corpus, &opts, bytes, sink)    -> IngestReport (streaming: the stages' path)
//! index::{IndexWriter, IndexReader}                     per-document index (file, record, bytes, hash)
//! parts_list::{write, read}                             `<path>.parts`: a shard or index made of per-file parts
//! split::split(&texts, corpus.heldout)                  -> Split { train, heldout }
//! split::SplitRule::streamed(heldout, hashes)           the same decision over a stream of hashes
//! tokenize::load_tokenizer(path) -> Encoder (fast engine + 0.23 reference), eos_token(enc.reference())
//! tokenize::tokenize_corpus(&tok, name, docs, prefix, &TokenizeOptions { eos, .. })
//!                                                        -> CorpusStats (JSON via write_json)
//!     (tokenize::ShardStream: the same, batch by batch, for a corpus streamed from its files)
//!     writes <prefix>.bin/.idx (Megatron MMIDIDX v1; shard::{ShardWriter, ShardReader})
//! mixture::Sampler::new(SamplerConfig { mixture, domain_share, total_tokens, origin, seq_len, seed,
//!                                       long_context, window }, Vec<Source { corpus, shard, skip, continues }>)
//!     .next_sequence() -> Sampled { index, part, role, corpus, seq: PackedSequence { tokens, spans, epoch } }
//!     .state() -> SamplerState (serde; Sampler::resume(cfg, sources, state) continues exactly)
//!     .drain_events() -> [NewEpoch | Window(WindowStats)]  (log / record in run stats)
//! pack::Packer::new(shard, name, seq_len, Order::Sequential) -> held-out evaluation sequences
//! ```
//!
//! Conventions: sequences hold `seq_len + 1` tokens (next-token targets) and consecutive sequences
//! of one corpus share one token (Megatron's GPT dataset). EOS is appended to every document at
//! tokenization. Text-format corpora are one document per file. Every error is a [`DataError`]
//! naming the file and line (or row) where that applies; nothing here panics on bad input.

pub mod encoder;
pub mod error;
pub mod index;
pub mod ingest;
pub mod mixture;
pub mod pack;
pub mod parts_list;
pub mod shard;
pub mod split;
pub mod tokenize;

pub use error::DataError;
