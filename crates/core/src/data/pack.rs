//! Packing: one source's documents (EOS already appended by tokenization) joined into
//! fixed-length training sequences, with the source spans of every sequence.
//!
//! Convention (Megatron's GPT dataset): a sequence holds `seq_len + 1` tokens, inputs
//! `tokens[..seq_len]` and targets `tokens[1..]`; the next sequence starts at the previous one's
//! last token, so every token but the stream's first is a target exactly once per epoch.
//! Sequences cross document boundaries (no padding, no dropped tails); at the end of an epoch the
//! stream continues into the next epoch's order.
//!
//! Document order per epoch is a seeded shuffle. In long-context mode ([`LongContext`]) each
//! epoch's order is also filtered and grouped: documents shorter than `short_below` tokens are
//! kept with probability `keep_short` (decided by a hash of seed, epoch and the document's
//! tokens: per-source length upsampling as in Fu et al. 2024), and with `group_similar` the kept
//! documents are chained so that similar ones share a sequence (MinHash over token n-grams,
//! LSH buckets, then a greedy nearest-neighbour walk, after In-Context Pretraining).

use std::collections::HashMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::error::DataError;
use super::shard::ShardReader;
use crate::recipe::LongContext;

/// Where tokens of a sequence came from: `len` tokens of document `doc` from its token
/// `doc_start`, placed at `start` in the sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSpan {
    pub doc: u64,
    pub doc_start: u32,
    pub start: u32,
    pub len: u32,
}

/// One training sequence of `seq_len + 1` tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackedSequence {
    pub tokens: Vec<u32>,
    pub spans: Vec<SourceSpan>,
    /// Epoch of the source when the sequence started.
    pub epoch: u64,
}

/// Position in a source's stream: small, serializable, enough to resume exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub epoch: u64,
    /// Index into the epoch's document order.
    pub pos: u64,
    /// Token offset in that document (may equal its length: the move to the next document is
    /// made lazily, so that the one-token overlap never has to step back across documents).
    pub offset: u32,
    pub sequences: u64,
}

/// Documents ahead of the one being packed whose reading is asked for ([`ShardReader::prefetch`]):
/// reads in flight where the page cache does not hold the shard.
const PREFETCH: usize = 256;

/// How documents are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Order {
    /// Shard order, no shuffle (evaluation on held-out shards).
    Sequential,
    /// Seeded shuffle per epoch, optionally long-context filtered and grouped.
    Shuffled { seed: u64, long_context: Option<LongContext> },
}

/// Packs one shard into sequences.
pub struct Packer {
    shard: ShardReader,
    /// The corpus, for messages.
    name: String,
    /// Distinguishes sources in seeds so that two corpora never share a shuffle.
    source_key: u64,
    seq_tokens: u32,
    order_kind: Order,
    order: Vec<u32>,
    /// Documents at the front of `order` in their final place; those after await their
    /// window's grouping, done as the cursor comes near, so a mix drawing a small share of a
    /// large corpus groups only the windows it reaches (a 200 M-token draw from 20 GB took 445 s
    /// with the whole epoch grouped up front, 117 s so).
    ordered: usize,
    /// What the grouping of the windows not grouped yet draws from (the shuffle's generator,
    /// as the windows before left it).
    grouping: Option<ChaCha8Rng>,
    cursor: Cursor,
    /// Documents never packed (sorted shard indices): held out by another corpus.
    skip: Vec<u32>,
    /// Documents an earlier phase consumed in the epoch this packer starts in (sorted): they
    /// are left out of that epoch only.
    consumed: (u64, Vec<u32>),
}

impl Packer {
    /// `seq_len` tokens of input per sequence (each sequence holds `seq_len + 1`).
    pub fn new(shard: ShardReader, source_name: &str, seq_len: u64, order: Order) -> Result<Packer, DataError> {
        if seq_len == 0 || seq_len >= (1 << 31) {
            return Err(DataError::BadPacking { reason: format!("sequence length {seq_len}") });
        }
        let source_key = u64_of(&blake3::hash(source_name.as_bytes()).as_bytes()[..8]);
        let mut p = Packer {
            shard,
            name: source_name.to_string(),
            source_key,
            seq_tokens: seq_len as u32 + 1,
            order_kind: order,
            order: Vec::new(),
            ordered: 0,
            grouping: None,
            cursor: Cursor::default(),
            skip: Vec::new(),
            consumed: (0, Vec::new()),
        };
        p.start_epoch(0)?;
        Ok(p)
    }

    /// The same packer, never packing the documents `skip` lists (shard indices, any order).
    pub fn skipping(mut self, mut skip: Vec<u32>) -> Result<Packer, DataError> {
        skip.sort_unstable();
        skip.dedup();
        if !skip.is_empty() && skip.len() >= self.shard.len() {
            return Err(DataError::BadPacking {
                reason: format!("every document of `{}` is held out by another corpus", self.name),
            });
        }
        self.skip = skip;
        self.start_epoch(self.cursor.epoch)?;
        Ok(self)
    }

    /// The same packer continuing a stream an earlier phase left in `epoch` after consuming
    /// `consumed` (shard indices): that epoch goes on without them, later ones are whole.
    pub fn continuing(mut self, epoch: u64, mut consumed: Vec<u32>) -> Result<Packer, DataError> {
        consumed.sort_unstable();
        consumed.dedup();
        if consumed.last().is_some_and(|&d| d as usize >= self.shard.len()) {
            return Err(DataError::BadState {
                reason: format!(
                    "the earlier phase consumed document {} of `{}`, which has {} documents",
                    consumed.last().copied().unwrap_or(0),
                    self.name,
                    self.shard.len()
                ),
            });
        }
        self.consumed = (epoch, consumed);
        self.cursor = Cursor { epoch, ..Cursor::default() };
        self.start_epoch(epoch)?;
        Ok(self)
    }

    /// The epoch the stream is in and every document consumed in it so far, earlier phases'
    /// included (sorted): what a later phase continues from. A document begun counts.
    pub fn consumed(&self) -> (u64, Vec<u32>) {
        let c = self.cursor;
        let begun = c.pos as usize + usize::from(c.offset > 0);
        let mut docs: Vec<u32> = self.order[..begun.min(self.order.len())].to_vec();
        if self.consumed.0 == c.epoch {
            docs.extend(&self.consumed.1);
        }
        docs.sort_unstable();
        docs.dedup();
        (c.epoch, docs)
    }

    /// What [`continuing`](Self::continuing) set: the epoch and the earlier phases' documents.
    pub fn continuation(&self) -> (u64, &[u32]) {
        (self.consumed.0, &self.consumed.1)
    }

    pub fn shard(&self) -> &ShardReader {
        &self.shard
    }
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }
    /// The current epoch's document order (shard indices), every window grouped.
    pub fn order(&mut self) -> Result<&[u32], DataError> {
        self.order_through(usize::MAX)?;
        Ok(&self.order)
    }

    /// Moves to a saved position (recomputing that epoch's order).
    pub fn restore(&mut self, c: Cursor) -> Result<(), DataError> {
        if c.epoch != self.cursor.epoch {
            self.start_epoch(c.epoch)?;
        }
        self.order_through(c.pos as usize)?;
        let len = self.order.get(c.pos as usize).map(|&d| self.shard.doc_len(d as usize));
        match len {
            Some(l) if c.offset <= l => {}
            None if c.pos as usize == self.order.len() && c.offset == 0 => {}
            _ => {
                return Err(DataError::BadState {
                    reason: format!(
                        "cursor {c:?} is outside the source's epoch order of {} documents",
                        self.order.len()
                    ),
                });
            }
        }
        self.cursor = c;
        Ok(())
    }

    /// The next sequence; `None` when the source would need a new epoch and `repeat` is false.
    /// A source that cannot fill a single sequence even across epochs is an error.
    pub fn next_sequence(&mut self, repeat: bool) -> Result<Option<PackedSequence>, DataError> {
        let saved = self.cursor;
        let mut tokens = Vec::with_capacity(self.seq_tokens as usize);
        let mut spans = Vec::new();
        let epoch = self.cursor.epoch;
        // Token count at the last epoch turn: a whole epoch adding nothing means no tokens.
        let mut last_turn: Option<usize> = None;
        while (tokens.len() as u32) < self.seq_tokens {
            let c = self.cursor;
            self.order_through(c.pos as usize + PREFETCH)?;
            let doc = match self.order.get(c.pos as usize) {
                Some(&d) if c.offset < self.shard.doc_len(d as usize) => d,
                Some(_) => {
                    self.cursor.pos += 1;
                    self.cursor.offset = 0;
                    continue;
                }
                None => {
                    if !repeat {
                        // Leave the cursor where it was so the state stays consistent.
                        self.cursor = saved;
                        return Ok(None);
                    }
                    if last_turn == Some(tokens.len()) {
                        return Err(DataError::NothingToPack { corpus: self.name.clone() });
                    }
                    last_turn = Some(tokens.len());
                    self.start_epoch(c.epoch + 1)?;
                    self.cursor = Cursor { epoch: c.epoch + 1, pos: 0, offset: 0, sequences: c.sequences };
                    continue;
                }
            };
            if c.offset == 0
                && let Some(&ahead) = self.order.get(c.pos as usize + PREFETCH)
            {
                self.shard.prefetch(ahead as usize);
            }
            let len = self.shard.doc_len(doc as usize);
            let take = (len - c.offset).min(self.seq_tokens - tokens.len() as u32);
            spans.push(SourceSpan { doc: u64::from(doc), doc_start: c.offset, start: tokens.len() as u32, len: take });
            self.shard.read_range(doc as usize, c.offset, take, &mut tokens)?;
            self.cursor.offset += take;
        }
        // Step back one token: the last target is the next sequence's first input.
        self.cursor.offset -= 1;
        self.cursor.sequences += 1;
        Ok(Some(PackedSequence { tokens, spans, epoch }))
    }

    /// Sets the order of `epoch`: shuffled, its grouping to come ([`Self::order_through`]).
    fn start_epoch(&mut self, epoch: u64) -> Result<(), DataError> {
        let (order, grouping) = self.epoch_order(epoch)?;
        self.ordered = if grouping.is_some() { 0 } else { order.len() };
        self.order = order;
        self.grouping = grouping;
        Ok(())
    }

    /// Groups the windows of the order up to and including the one holding position `pos`.
    fn order_through(&mut self, pos: usize) -> Result<(), DataError> {
        while self.ordered < self.order.len() && self.ordered <= pos {
            let Some(mut rng) = self.grouping.take() else {
                self.ordered = self.order.len();
                break;
            };
            let end = (self.ordered + GROUP_WINDOW).min(self.order.len());
            let grouped = self.group_window(&self.order[self.ordered..end], &mut rng)?;
            self.order[self.ordered..end].copy_from_slice(&grouped);
            self.ordered = end;
            self.grouping = Some(rng);
        }
        Ok(())
    }

    /// The epoch's documents, filtered and shuffled, and the generator its windows' grouping
    /// continues with, where the long-context setting groups similar documents.
    fn epoch_order(&self, epoch: u64) -> Result<(Vec<u32>, Option<ChaCha8Rng>), DataError> {
        let n = u32::try_from(self.shard.len())
            .map_err(|_| DataError::BadPacking { reason: "more than 2^32 documents in one shard".into() })?;
        let consumed: &[u32] = if self.consumed.0 == epoch { &self.consumed.1 } else { &[] };
        let kept = (0..n).filter(|d| self.skip.binary_search(d).is_err() && consumed.binary_search(d).is_err());
        let Order::Shuffled { seed, long_context } = self.order_kind else {
            return Ok((kept.collect(), None));
        };
        let key = mix(mix(seed ^ self.source_key) ^ epoch);
        let mut docs: Vec<u32> = kept.collect();
        if let Some(lc) = long_context {
            docs = self.keep_filter(&docs, &lc, key)?;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(key);
        docs.shuffle(&mut rng);
        let grouped = long_context.is_some_and(|lc| lc.group_similar);
        Ok((docs, grouped.then_some(rng)))
    }

    /// Long-context length upsampling: short documents survive with probability `keep_short`.
    fn keep_filter(&self, docs: &[u32], lc: &LongContext, key: u64) -> Result<Vec<u32>, DataError> {
        let mut kept = Vec::with_capacity(docs.len());
        let thr = (lc.keep_short.clamp(0.0, 1.0) * 18_446_744_073_709_551_616.0) as u64;
        let mut buf = Vec::new();
        for &d in docs {
            let len = self.shard.doc_len(d as usize);
            if u64::from(len) >= lc.short_below || lc.keep_short >= 1.0 {
                kept.push(d);
                continue;
            }
            buf.clear();
            self.shard.read_range(d as usize, 0, len, &mut buf)?;
            let mut h = blake3::Hasher::new();
            h.update(&key.to_le_bytes());
            h.update(bytemuck::cast_slice(&buf));
            if u64_of(&h.finalize().as_bytes()[..8]) < thr {
                kept.push(d);
            }
        }
        Ok(kept)
    }

    /// Reorders one window of [`GROUP_WINDOW`] documents (already shuffled) so that similar
    /// documents are adjacent: windows keep memory and work bounded for any corpus, and a window
    /// of shuffled documents holds neighbours enough.
    ///
    /// The similarity chain walks one topic after another, so it is cut into runs of about one
    /// sequence's tokens, put in an order drawn from `rng`: similar documents still share their
    /// sequences, and every stretch of training still sees the window's topics in their
    /// proportions (the chain alone gave a quarter of a run with none of a corpus' second
    /// language).
    fn group_window(&self, window: &[u32], rng: &mut ChaCha8Rng) -> Result<Vec<u32>, DataError> {
        let mut sigs = Vec::with_capacity(window.len());
        let mut buf = Vec::new();
        for &d in window {
            buf.clear();
            self.shard.read_range(d as usize, 0, self.shard.doc_len(d as usize), &mut buf)?;
            sigs.push(minhash(&buf));
        }
        let chain = greedy_chain(&sigs);
        // A run ends past one sequence's tokens where the chain changes topic, or past two.
        let (enough, most) = (u64::from(self.seq_tokens), 2 * u64::from(self.seq_tokens));
        let mut runs: Vec<&[usize]> = Vec::new();
        let (mut start, mut tokens) = (0, 0u64);
        for (i, &d) in chain.iter().enumerate() {
            tokens += u64::from(self.shard.doc_len(window[d] as usize));
            let turns = chain.get(i + 1).is_none_or(|&next| similarity(&sigs[d], &sigs[next]) < TOPIC_TURN);
            if tokens >= most || (tokens >= enough && turns) {
                runs.push(&chain[start..=i]);
                (start, tokens) = (i + 1, 0);
            }
        }
        if start < chain.len() {
            runs.push(&chain[start..]);
        }
        runs.shuffle(rng);
        Ok(runs.into_iter().flatten().map(|&i| window[i]).collect())
    }
}

/// Documents grouped together at most (64 Ki: 16 MB of signatures).
pub const GROUP_WINDOW: usize = 1 << 16;

/// MinHash signature size and LSH banding (16 bands of 2 rows: pairs with Jaccard ~0.3 or more
/// almost always share a bucket). N-grams of one token: topical similarity lives in shared
/// vocabulary; on real corpora 5-grams only found near-duplicates (same-corpus neighbours 0.31
/// with 5-grams, 0.47 with 3-grams, 0.84+ with single tokens; see `tests/data_pack.rs`).
const K: usize = 32;
const BANDS: usize = 16;
const NGRAM: usize = 1;
/// MinHash similarity under which the chain's next document starts another topic (where a
/// run of grouped documents is best cut).
const TOPIC_TURN: f64 = 0.1;
/// Candidates examined per bucket per step; bounds the walk's cost on huge buckets.
const SCAN: usize = 64;

/// MinHash of a document's token n-grams (the whole document when shorter).
pub fn minhash(tokens: &[u32]) -> [u64; K] {
    let n = NGRAM.min(tokens.len().max(1));
    // Distinct grams first: repeated tokens are the norm and each gram costs K hashes.
    let mut grams: Vec<u64> =
        tokens.windows(n).map(|w| w.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &t| mix(h ^ u64::from(t)))).collect();
    grams.sort_unstable();
    grams.dedup();
    let mut sig = [u64::MAX; K];
    for h in grams {
        for (k, s) in sig.iter_mut().enumerate() {
            let v = mix(h ^ (k as u64).wrapping_mul(0xa076_1d64_78bd_642f));
            *s = (*s).min(v);
        }
    }
    sig
}

/// Estimated Jaccard similarity of two signatures.
pub fn similarity(a: &[u64; K], b: &[u64; K]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / K as f64
}

/// One LSH bucket: its documents in order, those before `start` visited.
#[derive(Default)]
struct Bucket {
    items: Vec<usize>,
    start: usize,
}

impl Bucket {
    /// The first [`SCAN`] unvisited documents, in order. Visited ones met on the way move
    /// before `start` (the unvisited keep their order), so each is stepped over once: the walk
    /// is linear in a bucket's size, not quadratic.
    fn first_unvisited(&mut self, visited: &[bool]) -> Vec<usize> {
        let (mut dead, mut j) = (self.start, self.start);
        while j < self.items.len() && j - dead < SCAN {
            if visited[self.items[j]] {
                self.items[dead..=j].rotate_right(1);
                dead += 1;
            }
            j += 1;
        }
        self.start = dead;
        self.items[dead..j].to_vec()
    }
}

/// Greedy nearest-neighbour walk over LSH candidates: from the current document go to the most
/// similar unvisited candidate; with none, to the next unvisited document in the given order.
fn greedy_chain(sigs: &[[u64; K]]) -> Vec<usize> {
    let rows = K / BANDS;
    let band_key = |s: &[u64; K], b: usize| {
        let mut h = b as u64;
        for r in 0..rows {
            h = mix(h ^ s[b * rows + r]);
        }
        h
    };
    let mut buckets: HashMap<u64, Bucket> = HashMap::new();
    for (i, s) in sigs.iter().enumerate() {
        for b in 0..BANDS {
            buckets.entry(band_key(s, b)).or_default().items.push(i);
        }
    }
    let mut visited = vec![false; sigs.len()];
    let mut out = Vec::with_capacity(sigs.len());
    let mut next_unvisited = 0;
    let mut cur: Option<usize> = None;
    while out.len() < sigs.len() {
        let pick = cur.and_then(|c| {
            let mut best: Option<(f64, usize)> = None;
            for b in 0..BANDS {
                let Some(bucket) = buckets.get_mut(&band_key(&sigs[c], b)) else { continue };
                for i in bucket.first_unvisited(&visited) {
                    let s = similarity(&sigs[c], &sigs[i]);
                    if best.is_none_or(|(bs, bi)| s > bs || (s == bs && i < bi)) {
                        best = Some((s, i));
                    }
                }
            }
            best.map(|(_, i)| i)
        });
        let next = match pick {
            Some(i) => i,
            None => {
                while visited[next_unvisited] {
                    next_unvisited += 1;
                }
                next_unvisited
            }
        };
        visited[next] = true;
        out.push(next);
        cur = Some(next);
    }
    out
}

/// splitmix64 finalizer: a fast, well-mixed 64-bit hash step.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn u64_of(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}
