//! Mixture sampler: decides which corpus supplies each training sequence so that token shares
//! follow the recipe (general/replay, domain with its ramp, SFT), deterministically and
//! resumably.
//!
//! Design: every sequence has the same length, so token shares are sequence shares. The source of
//! each sequence is chosen by error diffusion (a deterministic low-discrepancy scheme, like
//! Megatron's blending but with time-varying targets), not by iid draws:
//! - at sequence `i`, progress is `t = i * seq_len / total_tokens`; the domain parts' total share
//!   is `Ramp::share_at(t)` (its `to` replaced by the train's `domain_share` when given), or the
//!   fixed share without a ramp; the other parts share the rest in their written proportions;
//! - each part's share is quantised to 2^-32 and added to its *deficit*; the part with the largest
//!   deficit (first on ties) supplies the sequence and pays one unit. The deficits always sum to
//!   zero and stay bounded by the number of parts, so every window of W sequences is within about
//!   `parts / W` of its target (0.3 percentage points for 1000 sequences and 3 parts);
//! - within a part the same scheme picks a corpus, weighted by the corpora's token counts.
//!
//! The state ([`SamplerState`]) is the deficits, one [`Cursor`] per corpus and the open stats
//! window: O(parts + corpora), serde-serializable, integer-only (exact after JSON round-trips).
//! A corpus that runs out starts a new epoch (a [`SamplerEvent::NewEpoch`] to log), or fails
//! with [`DataError::SourceExhausted`] when the mixture does not repeat.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::DataError;
use super::pack::{Cursor, Order, PackedSequence, Packer};
use super::shard::ShardReader;
use crate::recipe::{LongContext, Mixture, Ramp, Role};

const ONE: i64 = 1 << 32;
const STATE_VERSION: u32 = 1;

/// A tokenized corpus (its training side) available to the sampler.
pub struct Source {
    pub corpus: String,
    pub shard: ShardReader,
    /// Documents of the shard never drawn (held out by another corpus).
    pub skip: Vec<u32>,
    /// Where an earlier phase left this corpus' stream: its epoch and the documents consumed
    /// in it (see [`Packer::continuing`]); `None` starts at epoch 0.
    pub continues: Option<(u64, Vec<u32>)>,
}

/// Everything the sampler needs from the recipe and the train stage.
#[derive(Clone, Debug)]
pub struct SamplerConfig {
    pub mixture: Mixture,
    /// `Train.domain_share` once resolved: the domain share at the end of the ramp.
    pub domain_share: Option<f64>,
    /// Training tokens of the stage: defines progress for the ramp.
    pub total_tokens: u64,
    /// The sequence at which progress is 0: 0, or where a fork on its own clock starts.
    pub origin: u64,
    /// Input tokens per sequence (each sequence holds one more). Ignored in long-context mode,
    /// where `long_context.target_len` is the length.
    pub seq_len: u64,
    pub seed: u64,
    pub long_context: Option<LongContext>,
    /// Sequences per stats window.
    pub window: u64,
}

impl SamplerConfig {
    fn seq_len(&self) -> u64 {
        self.long_context.map_or(self.seq_len, |lc| lc.target_len)
    }
}

/// The sampler's whole resumable state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerState {
    pub version: u32,
    /// Hash of the configuration and corpora; a resume with anything else is refused.
    pub fingerprint: String,
    /// Sequences produced so far.
    pub sequences: u64,
    /// Per part, in units of 2^-32 sequences.
    pub part_deficits: Vec<i64>,
    /// Per part, per corpus of the part.
    pub corpus_deficits: Vec<Vec<i64>>,
    /// Per corpus, in the order of the sources given.
    pub cursors: Vec<Cursor>,
    pub window: WindowAcc,
}

/// The open stats window: sequences per part and the sum of targets (units of 2^-32).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowAcc {
    pub start: u64,
    pub counts: Vec<u64>,
    pub targets: Vec<i64>,
}

/// Realized and target shares (of tokens) per role over one window of sequences.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowStats {
    pub start: u64,
    pub sequences: u64,
    pub realized: BTreeMap<&'static str, f64>,
    pub target: BTreeMap<&'static str, f64>,
}

/// Things the executor should log or record.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerEvent {
    NewEpoch { corpus: String, epoch: u64, at_sequence: u64 },
    Window(WindowStats),
}

/// One sampled sequence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sampled {
    /// Index of the sequence in the stage.
    pub index: u64,
    pub part: usize,
    pub role: Role,
    /// Index into the sources given to [`Sampler::new`].
    pub corpus: usize,
    pub seq: PackedSequence,
}

struct PartPlan {
    role: Role,
    /// Source indices of the part's corpora and their quantised weights (summing to ONE).
    corpora: Vec<usize>,
    weights: Vec<i64>,
    base_share: f64,
}

/// The mixture sampler.
pub struct Sampler {
    cfg: SamplerConfig,
    ramp: Option<Ramp>,
    parts: Vec<PartPlan>,
    packers: Vec<Packer>,
    names: Vec<String>,
    state: SamplerState,
    events: Vec<SamplerEvent>,
}

impl Sampler {
    /// Builds a sampler at sequence 0. `sources` must hold every corpus the mixture names.
    pub fn new(cfg: SamplerConfig, sources: Vec<Source>) -> Result<Sampler, DataError> {
        let bad = |reason: String| DataError::BadMixture { mixture: cfg.mixture.name.clone(), reason };
        if cfg.mixture.parts.is_empty() {
            return Err(bad("it has no parts".into()));
        }
        if cfg.window == 0 {
            return Err(bad("the stats window must be at least one sequence".into()));
        }
        let names: Vec<String> = sources.iter().map(|s| s.corpus.clone()).collect();
        let mut parts = Vec::new();
        for p in &cfg.mixture.parts {
            if !(p.share.is_finite() && p.share >= 0.0) {
                return Err(bad(format!("part `{}` has share {}", p.role.name(), p.share)));
            }
            let mut corpora = Vec::new();
            let mut tokens = Vec::new();
            for c in &p.corpora {
                let i = names
                    .iter()
                    .position(|n| n == c)
                    .ok_or_else(|| bad(format!("corpus `{c}` was not given to the sampler")))?;
                let t = sources[i].shard.num_tokens();
                if t == 0 {
                    return Err(bad(format!("corpus `{c}` has no tokens")));
                }
                corpora.push(i);
                tokens.push(t as f64);
            }
            if corpora.is_empty() {
                return Err(bad(format!("part `{}` has no corpora", p.role.name())));
            }
            let sum: f64 = tokens.iter().sum();
            let weights = quantise(&tokens.iter().map(|t| t / sum).collect::<Vec<_>>());
            parts.push(PartPlan { role: p.role, corpora, weights, base_share: p.share });
        }
        if parts.iter().map(|p| p.base_share).sum::<f64>() <= 0.0 {
            return Err(bad("all shares are zero".into()));
        }
        if let Some(d) = cfg.domain_share
            && !(0.0..=1.0).contains(&d)
        {
            return Err(bad(format!("domain share {d} is not in [0, 1]")));
        }
        let ramp = cfg.mixture.ramp.map(|r| Ramp { to: cfg.domain_share.unwrap_or(r.to), ..r });
        let seq_len = cfg.seq_len();
        let order = Order::Shuffled { seed: cfg.seed, long_context: cfg.long_context };
        let mut packers = Vec::with_capacity(sources.len());
        for s in sources {
            let name = s.corpus.clone();
            let mut packer = Packer::new(s.shard, &name, seq_len, order)?.skipping(s.skip)?;
            if let Some((epoch, consumed)) = s.continues {
                packer = packer.continuing(epoch, consumed)?;
            }
            packers.push(packer);
        }
        let n_parts = parts.len();
        let mut state = SamplerState {
            version: STATE_VERSION,
            fingerprint: String::new(),
            sequences: 0,
            part_deficits: vec![0; n_parts],
            corpus_deficits: parts.iter().map(|p| vec![0; p.corpora.len()]).collect(),
            cursors: vec![Cursor::default(); packers.len()],
            window: WindowAcc { start: 0, counts: vec![0; n_parts], targets: vec![0; n_parts] },
        };
        let mut s =
            Sampler { cfg, ramp, parts, packers, names, state: SamplerState::default_empty(), events: Vec::new() };
        state.fingerprint = s.fingerprint();
        s.state = state;
        Ok(s)
    }

    /// Builds a sampler and moves it to a saved state.
    pub fn resume(cfg: SamplerConfig, sources: Vec<Source>, state: SamplerState) -> Result<Sampler, DataError> {
        let mut s = Sampler::new(cfg, sources)?;
        s.restore(state)?;
        Ok(s)
    }

    /// The state to save for an exact resume.
    pub fn state(&self) -> SamplerState {
        let mut st = self.state.clone();
        st.cursors = self.packers.iter().map(Packer::cursor).collect();
        st
    }

    fn restore(&mut self, st: SamplerState) -> Result<(), DataError> {
        let bad = |reason: String| DataError::BadState { reason };
        if st.version != STATE_VERSION {
            return Err(bad(format!("state version {} (this cptc writes {STATE_VERSION})", st.version)));
        }
        if st.fingerprint != self.state.fingerprint {
            return Err(bad("it was saved for another mixture, corpus set, seed or length".into()));
        }
        let n = self.parts.len();
        let shapes_ok = st.part_deficits.len() == n
            && st.corpus_deficits.iter().map(Vec::len).eq(self.parts.iter().map(|p| p.corpora.len()))
            && st.cursors.len() == self.packers.len()
            && st.window.counts.len() == n
            && st.window.targets.len() == n;
        if !shapes_ok {
            return Err(bad("its part or corpus counts differ".into()));
        }
        for (p, c) in self.packers.iter_mut().zip(&st.cursors) {
            p.restore(*c)?;
        }
        self.state = st;
        Ok(())
    }

    /// Per source (in the order given), its epoch and the documents consumed in it, earlier
    /// phases' included: the data ledger a later phase continues from.
    pub fn consumed(&self) -> Vec<(u64, Vec<u32>)> {
        self.packers.iter().map(Packer::consumed).collect()
    }

    /// Per source, where its stream began this stage (epoch, documents already consumed in it):
    /// what a packer built for it again needs to reproduce its order.
    pub fn continuations(&self) -> Vec<(u64, Vec<u32>)> {
        self.packers
            .iter()
            .map(|p| {
                let (epoch, docs) = p.continuation();
                (epoch, docs.to_vec())
            })
            .collect()
    }

    /// Per part, its role and corpora: with the source names, the shape a state belongs to.
    pub fn part_corpora(&self) -> Vec<(Role, Vec<String>)> {
        self.parts.iter().map(|p| (p.role, p.corpora.iter().map(|&c| self.names[c].clone()).collect())).collect()
    }

    /// Goes on from another sampler's state (a fork's parent's at the fork's point), whose
    /// sources were `names` and parts `parts`: each source both share continues at its cursor
    /// (its packer must have been built with the parent's continuation, see
    /// [`Sampler::continuations`]); the error-diffusion deficits carry over when the parts
    /// are the same, else start balanced; the sequence count goes on.
    pub fn adopt(
        &mut self,
        st: &SamplerState,
        names: &[String],
        parts: &[(Role, Vec<String>)],
    ) -> Result<(), DataError> {
        if st.cursors.len() != names.len() {
            return Err(DataError::BadState {
                reason: format!("{} cursors for {} sources", st.cursors.len(), names.len()),
            });
        }
        for (packer, name) in self.packers.iter_mut().zip(&self.names) {
            if let Some(k) = names.iter().position(|n| n == name) {
                packer.restore(st.cursors[k])?;
            }
        }
        self.state.sequences = st.sequences;
        if self.part_corpora() == parts && self.names == names {
            self.state.part_deficits.clone_from(&st.part_deficits);
            self.state.corpus_deficits.clone_from(&st.corpus_deficits);
            self.state.window = st.window.clone();
        } else {
            self.state.window.start = st.sequences;
        }
        Ok(())
    }

    /// Sequences produced so far.
    pub fn position(&self) -> u64 {
        self.state.sequences
    }

    /// The shard source `corpus` (an index into [`corpus_names`](Self::corpus_names)) reads.
    pub fn shard(&self, corpus: usize) -> &ShardReader {
        self.packers[corpus].shard()
    }

    pub fn corpus_names(&self) -> &[String] {
        &self.names
    }

    /// Events since the last call (epochs started, stats windows closed).
    pub fn drain_events(&mut self) -> Vec<SamplerEvent> {
        std::mem::take(&mut self.events)
    }

    /// The target share of each part at progress `t` in [0, 1].
    pub fn target_shares(&self, t: f64) -> Vec<f64> {
        let is_dom = |p: &PartPlan| p.role == Role::Domain;
        let dom_sum: f64 = self.parts.iter().filter(|p| is_dom(p)).map(|p| p.base_share).sum();
        let other_sum: f64 = self.parts.iter().filter(|p| !is_dom(p)).map(|p| p.base_share).sum();
        let total = dom_sum + other_sum;
        let dom_total = if dom_sum <= 0.0 {
            0.0
        } else if other_sum <= 0.0 {
            1.0
        } else if let Some(r) = &self.ramp {
            r.share_at(t).clamp(0.0, 1.0)
        } else {
            self.cfg.domain_share.unwrap_or(dom_sum / total).clamp(0.0, 1.0)
        };
        self.parts
            .iter()
            .map(|p| {
                if is_dom(p) {
                    dom_total * p.base_share / dom_sum
                } else {
                    (1.0 - dom_total) * p.base_share / other_sum
                }
            })
            .collect()
    }

    /// The next sequence.
    pub fn next_sequence(&mut self) -> Result<Sampled, DataError> {
        let i = self.state.sequences;
        let t = if self.cfg.total_tokens == 0 {
            1.0
        } else {
            ((i.saturating_sub(self.cfg.origin) as f64) * self.cfg.seq_len() as f64 / self.cfg.total_tokens as f64)
                .min(1.0)
        };
        let q = quantise(&self.target_shares(t));
        let part = pick(&mut self.state.part_deficits, &q);
        let plan = &self.parts[part];
        let k = pick(&mut self.state.corpus_deficits[part], &plan.weights);
        let corpus = plan.corpora[k];
        let role = plan.role;
        let packer = &mut self.packers[corpus];
        let before = packer.cursor().epoch;
        let Some(seq) = packer.next_sequence(self.cfg.mixture.repeat)? else {
            return Err(DataError::SourceExhausted { corpus: self.names[corpus].clone(), sequences: i });
        };
        let after = packer.cursor().epoch;
        for epoch in before + 1..=after {
            self.events.push(SamplerEvent::NewEpoch { corpus: self.names[corpus].clone(), epoch, at_sequence: i });
        }
        self.state.sequences += 1;
        let w = &mut self.state.window;
        w.counts[part] += 1;
        for (acc, qi) in w.targets.iter_mut().zip(&q) {
            *acc += qi;
        }
        if self.state.sequences - w.start >= self.cfg.window {
            let stats = self.window_stats();
            self.events.push(SamplerEvent::Window(stats));
            let n = self.parts.len();
            self.state.window = WindowAcc { start: self.state.sequences, counts: vec![0; n], targets: vec![0; n] };
        }
        Ok(Sampled { index: i, part, role, corpus, seq })
    }

    /// Shares of the open window (also what a closed window reports).
    pub fn window_stats(&self) -> WindowStats {
        let w = &self.state.window;
        let n = (self.state.sequences - w.start).max(1) as f64;
        let mut realized = BTreeMap::new();
        let mut target = BTreeMap::new();
        for (p, plan) in self.parts.iter().enumerate() {
            *realized.entry(plan.role.name()).or_insert(0.0) += w.counts[p] as f64 / n;
            *target.entry(plan.role.name()).or_insert(0.0) += w.targets[p] as f64 / ONE as f64 / n;
        }
        WindowStats { start: w.start, sequences: self.state.sequences - w.start, realized, target }
    }

    fn fingerprint(&self) -> String {
        let mut h = blake3::Hasher::new();
        let c = &self.cfg;
        let text = format!(
            "{:?}|{:?}|{}|{}|{}|{:?}|{}",
            c.mixture.parts,
            self.ramp,
            c.total_tokens,
            c.seq_len(),
            c.seed,
            c.long_context,
            c.window
        );
        h.update(text.as_bytes());
        for (n, p) in self.names.iter().zip(&self.packers) {
            h.update(n.as_bytes());
            h.update(&p.shard().num_tokens().to_le_bytes());
            h.update(&(p.shard().len() as u64).to_le_bytes());
            // Only a continuing stream adds to it: states saved before ledgers stay valid.
            let (epoch, consumed) = p.continuation();
            if epoch > 0 || !consumed.is_empty() {
                h.update(&epoch.to_le_bytes());
                h.update(bytemuck::cast_slice(consumed));
            }
        }
        h.finalize().to_hex()[..16].to_string()
    }
}

impl SamplerState {
    fn default_empty() -> SamplerState {
        SamplerState {
            version: STATE_VERSION,
            fingerprint: String::new(),
            sequences: 0,
            part_deficits: Vec::new(),
            corpus_deficits: Vec::new(),
            cursors: Vec::new(),
            window: WindowAcc::default(),
        }
    }
}

/// Shares (summing to about 1) as integers summing to exactly ONE; the rounding remainder goes
/// to the largest share so that the deficits stay balanced.
fn quantise(shares: &[f64]) -> Vec<i64> {
    let sum: f64 = shares.iter().filter(|s| s.is_finite() && **s > 0.0).sum();
    if sum <= 0.0 {
        return vec![0; shares.len()];
    }
    let mut q: Vec<i64> = shares
        .iter()
        .map(|&s| if s.is_finite() && s > 0.0 { (s / sum * ONE as f64).floor() as i64 } else { 0 })
        .collect();
    let rest = ONE - q.iter().sum::<i64>();
    let mut big = 0;
    for (i, s) in shares.iter().enumerate() {
        if *s > shares[big] {
            big = i;
        }
    }
    q[big] += rest;
    q
}

/// Error diffusion step: credit each slot its share, pick the largest deficit (first on ties),
/// charge it one unit.
fn pick(deficits: &mut [i64], q: &[i64]) -> usize {
    let mut best = 0;
    for (d, qi) in deficits.iter_mut().zip(q) {
        *d += qi;
    }
    // Only slots with a positive share compete: a zero share never supplies data.
    for i in 0..deficits.len().min(q.len()) {
        if q[i] > 0 && (q[best] == 0 || deficits[i] > deficits[best]) {
            best = i;
        }
    }
    deficits[best] -= ONE;
    best
}
