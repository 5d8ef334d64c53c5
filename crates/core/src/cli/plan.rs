//! `cptc plan`: the stage graph in execution order with each stage's status, the tokens each
//! train stage consumes per source, FLOPs and an estimated time; as text, DOT or JSON.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use petgraph::graph::NodeIndex;
use serde_json::json;

use super::{EXIT_INTERNAL, PlanFormat, planned};
use crate::exec::{Options, Status};
use crate::fsdp::Topology;
use crate::graph::{Graph, PartEstimate, StageKind, StageParams};
use crate::recipe::{Engine, LongContext};
use crate::stages::Input;

/// Effective training throughput of this machine when `--tflops` is not given: 100 TFLOP/s on
/// a CUDA GPU (bf16 at ~40% of an A100/H100's peak), else what cptc measures on CPU in fp32,
/// about 0.055 TFLOP/s per core (docs/benchmarks.md: SmolLM2-135M at ~130 tokens/s on 2 cores).
pub(crate) fn default_tflops() -> f64 {
    if crate::stages::worker::cuda_available() {
        100.0
    } else {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        0.055 * cores as f64
    }
}

/// 100 -> "100", 0.11 -> "0.11": three significant digits at most.
fn tflops_text(t: f64) -> String {
    let text = if t >= 10.0 {
        format!("{t:.0}")
    } else if t >= 1.0 {
        format!("{t:.1}")
    } else {
        format!("{t:.2}")
    };
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text }
}

pub(crate) fn run(file: &Path, store_dir: &Path, format: PlanFormat, tflops: f64, options: &Options) -> i32 {
    let (graph, statuses) = match planned(file, store_dir, options) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let topology = &options.topology;
    let text = match format {
        PlanFormat::Text => text(&graph, &statuses, file, store_dir, tflops, topology),
        PlanFormat::Dot => dot(&graph, &statuses),
        PlanFormat::Json => {
            match serde_json::to_string_pretty(&to_json(&graph, &statuses, tflops, topology, store_dir)) {
                Ok(t) => t + "\n",
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_INTERNAL;
                }
            }
        }
    };
    print!("{text}");
    0
}

/// The plan in each format `cptc plan` prints (text, dot, JSON), without reading a store:
/// the fuzz target renders every checked recipe this way.
pub fn render(graph: &Graph, statuses: &[(NodeIndex, Status)], file: &Path, tflops: f64) -> [String; 3] {
    let single = &Topology::SINGLE;
    let store = Path::new(".cptc");
    let json = serde_json::to_string_pretty(&to_json(graph, statuses, tflops, single, store)).unwrap_or_default();
    [text(graph, statuses, file, store, tflops, single), dot(graph, statuses), json]
}

/// The devices a training runs on: one for the built-in engine, the whole world for FSDP.
fn devices(params: &StageParams, topology: &Topology) -> u64 {
    match params {
        StageParams::Train(p) if p.engine == Engine::Fsdp => u64::from(topology.world_size()),
        _ => 1,
    }
}

/// Bytes of training state per device: fp32 weights, gradients and AdamW's two moments (16
/// bytes per parameter), on one device for the built-in engine, sharded over every process
/// for FSDP. Activations come on top.
fn state_bytes_per_device(params: &StageParams, model_params: u64, topology: &Topology) -> Option<u64> {
    let StageParams::Train(_) = params else { return None };
    Some((16 * model_params).div_ceil(devices(params, topology)))
}

/// 1.5e9 bytes as `1.5 GB`.
fn bytes_text(bytes: u64) -> String {
    let b = bytes as f64;
    match b {
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.0} MB", b / 1e6),
        b => format!("{:.0} kB", (b / 1e3).max(1.0)),
    }
}

fn status_word(status: &Status) -> &'static str {
    match status {
        Status::Cached(_) => "cached",
        Status::WillRun { .. } => "will run",
        Status::Pending { .. } => "pending",
    }
}

/// `1.2e15` FLOPs as `1.20 PFLOP`.
fn flops_text(flops: f64) -> String {
    let units = [(1e18, "EFLOP"), (1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP")];
    for (scale, unit) in units {
        if flops >= scale {
            return format!("{:.2} {unit}", flops / scale);
        }
    }
    format!("{flops:.0} FLOP")
}

fn duration_text(seconds: f64) -> String {
    match seconds {
        s if s < 60.0 => format!("{s:.0} s"),
        s if s < 3600.0 => format!("{:.1} min", s / 60.0),
        s if s < 86400.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} days", s / 86400.0),
    }
}

fn count_text(x: u64) -> String {
    match x {
        x if x >= 10_000_000_000 => format!("{:.0}B", x as f64 / 1e9),
        x if x >= 1_000_000_000 => format!("{:.1}B", x as f64 / 1e9),
        x if x >= 10_000_000 => format!("{:.0}M", x as f64 / 1e6),
        x if x >= 1_000_000 => format!("{:.1}M", x as f64 / 1e6),
        x if x >= 10_000 => format!("{:.0}k", x as f64 / 1e3),
        x if x >= 1_000 => format!("{:.1}k", x as f64 / 1e3),
        x => x.to_string(),
    }
}

fn text(
    graph: &Graph,
    statuses: &[(NodeIndex, Status)],
    file: &Path,
    store_dir: &Path,
    tflops: f64,
    topology: &Topology,
) -> String {
    let mut out = format!("plan for {} (store {})\n\n", file.display(), store_dir.display());
    // Ids are padded by hand: a format width panics past 65,535 characters.
    let ids: Vec<String> = statuses.iter().map(|(ix, _)| graph.stage(*ix).id.to_string()).collect();
    let width = ids.iter().map(|id| id.chars().count()).max().unwrap_or(10).max(5);
    let (mut total_flops, mut total_seconds) = (0.0, 0.0);
    let memo = Memo::default();
    let mut counts = [0usize; 3];
    for (n, (ix, status)) in statuses.iter().enumerate() {
        let stage = graph.stage(*ix);
        counts[match status {
            Status::Cached(_) => 0,
            Status::WillRun { .. } => 1,
            Status::Pending { .. } => 2,
        }] += 1;
        let note = match status {
            Status::Cached(meta) => meta.key.short(),
            Status::WillRun { why, .. } => why.join("; "),
            Status::Pending { waiting_for } => format!("waiting for {waiting_for}"),
        };
        let id = &ids[n];
        let pad = " ".repeat(width - id.chars().count());
        let line = format!("{:>3}  {id}{pad}  {:<8}  {note}", n + 1, status_word(status));
        out.push_str(line.trim_end());
        out.push('\n');
        if let Some(how) = how_it_runs(&stage.params, topology) {
            out.push_str(&format!("       {how}\n"));
        }
        for w in heldout_warnings(graph, statuses, *ix) {
            out.push_str(&format!("       warning: {w}\n"));
        }
        if let Some(est) = &stage.estimate {
            let mut line = format!("{} tokens in {} steps", count_text(est.tokens), est.steps);
            if let StageParams::Train(p) = &stage.params {
                if let Some(fork) = &p.fork {
                    let parent = graph.inputs(*ix).into_iter().find(|(r, _)| *r == Input::Fork);
                    let parent = parent.map(|(_, i)| graph.stage(i).id.name.clone()).unwrap_or_default();
                    let clock = match fork.clock {
                        crate::recipe::Clock::Continue => "its LR on the parent's clock",
                        crate::recipe::Clock::Restart => "its LR on its own clock",
                    };
                    line.push_str(&format!(", forked from {parent} at step {} ({clock})", fork.step));
                }
                if !p.keep.is_empty() {
                    let steps: Vec<String> = p.keep.iter().map(u64::to_string).collect();
                    line.push_str(&format!(", keeps its state at step {} for forks", steps.join(", ")));
                }
            }
            if let Some(params) = est.params {
                line.push_str(&format!(", model {} params", count_text(params)));
                if let Some(bytes) = state_bytes_per_device(&stage.params, params, topology) {
                    line.push_str(&format!(" ({} of training state per device)", bytes_text(bytes)));
                }
            }
            if let Some(flops) = est.flops {
                let devices = devices(&stage.params, topology);
                let seconds = flops / (tflops * 1e12 * devices as f64);
                if !matches!(status, Status::Cached(_)) {
                    total_flops += flops;
                    total_seconds += seconds;
                }
                let each = if devices > 1 { format!(" on each of {devices} devices") } else { String::new() };
                line.push_str(&format!(
                    ", {} ≈ {} at {} TFLOP/s{each}",
                    flops_text(flops),
                    duration_text(seconds),
                    tflops_text(tflops)
                ));
            }
            out.push_str(&format!("       {line}\n"));
            let TrainData { known, parts, warnings, .. } = train_data(graph, statuses, *ix, est, store_dir, &memo);
            let parts_text: Vec<String> = parts
                .iter()
                .map(|p| {
                    let corpora: Vec<String> = p
                        .corpora
                        .iter()
                        .map(|(c, t)| match known.iter().find(|s| &s.corpus == c) {
                            // Once the corpus is tokenized: of how many, and the passes that makes.
                            Some(s) => format!(
                                "{c} {} of {} = {:.2} epochs{}",
                                count_text(*t),
                                count_text(s.per_pass),
                                *t as f64 / s.per_pass.max(1) as f64,
                                s.targets.map_or(String::new(), |n| format!(
                                    ", {:.0}% of them targets (loss_on)",
                                    100.0 * n as f64 / s.tokens.max(1) as f64
                                ))
                            ),
                            None => format!("{c} {}", count_text(*t)),
                        })
                        .collect();
                    format!("{} {} ({})", p.part, count_text(p.tokens), corpora.join(", "))
                })
                .collect();
            if !parts_text.is_empty() {
                out.push_str(&format!("       tokens by source: {}\n", parts_text.join("; ")));
            }
            for w in warnings {
                out.push_str(&format!("       warning: {w}\n"));
            }
            for line in ledger_lines(graph, statuses, *ix, store_dir) {
                out.push_str(&format!("       {line}\n"));
            }
            if let Some(from) = &est.share_from {
                out.push_str(&format!("       tokens by source: once {from} is known\n"));
            }
        }
    }
    out.push_str(&format!(
        "\n{} stages: {} cached, {} will run, {} pending",
        statuses.len(),
        counts[0],
        counts[1],
        counts[2]
    ));
    if total_flops > 0.0 {
        out.push_str(&format!(
            "; training to run: {} ≈ {} at {} TFLOP/s (--tflops)",
            flops_text(total_flops),
            duration_text(total_seconds),
            tflops_text(tflops)
        ));
    }
    out.push('\n');
    out
}

/// What the store knows of a training source: its tokenized training side, once cached.
struct SourceData {
    corpus: String,
    /// Tokens of its training side: its weight within its mixture part, as the sampler weighs it.
    tokens: u64,
    /// Tokens one pass gives the mixture (`stages::mix::supply`): less the documents other
    /// corpora hold out, short ones at their long-context keep rate. What epochs count.
    per_pass: u64,
    /// Of those, the training targets, in a corpus whose template marks `loss_on` fields.
    targets: Option<u64>,
    max_epochs: f64,
    seq_len: u64,
}

/// The mix stage a train stage reads its data from.
fn mix_of(graph: &Graph, train: NodeIndex) -> Option<NodeIndex> {
    graph.inputs(train).into_iter().find(|(r, _)| *r == Input::Data).map(|(_, ix)| ix)
}

/// A cached stage's artifact folder.
fn cached_dir(graph: &Graph, statuses: &[(NodeIndex, Status)], ix: NodeIndex, store_dir: &Path) -> Option<PathBuf> {
    match statuses.iter().find(|(i, _)| *i == ix) {
        Some((_, Status::Cached(meta))) => {
            Some(crate::store::Store::at(store_dir).artifact_dir(graph.stage(ix).kind(), &meta.key))
        }
        _ => None,
    }
}

/// The inputs of stage `ix` that are cached, with their role and meta.
fn cached_inputs<'s>(
    graph: &Graph,
    statuses: &'s [(NodeIndex, Status)],
    ix: NodeIndex,
) -> Vec<(Input, &'s crate::store::Meta)> {
    graph
        .inputs(ix)
        .into_iter()
        .filter_map(|(role, input)| match statuses.iter().find(|(i, _)| *i == input) {
            Some((_, Status::Cached(meta))) => Some((role, meta.as_ref())),
            _ => None,
        })
        .collect()
}

/// The training tokens of each corpus of a train's mix whose tokenize stage is cached (from
/// its meta, no artifact read): its weight within its part, as the sampler weighs it.
fn weights(graph: &Graph, statuses: &[(NodeIndex, Status)], train: NodeIndex) -> BTreeMap<String, u64> {
    let Some(mix) = mix_of(graph, train) else { return BTreeMap::new() };
    cached_inputs(graph, statuses, mix)
        .into_iter()
        .filter_map(|(role, meta)| {
            let Input::Corpus(corpus) = role else { return None };
            Some((corpus, meta.values.pointer("/train/tokens")?.as_u64()?))
        })
        .collect()
}

/// What the plan says of a train's data once its corpora are tokenized: each part's tokens by
/// corpus, per known source its passes, and the warnings; the same for text and JSON.
struct TrainData {
    known: Vec<SourceData>,
    parts: Vec<PartEstimate>,
    /// What the phases before drew from the same streams ([`earlier_draws`]).
    earlier: BTreeMap<String, u64>,
    warnings: Vec<String>,
}

fn train_data(
    graph: &Graph,
    statuses: &[(NodeIndex, Status)],
    train: NodeIndex,
    est: &crate::graph::TrainEstimate,
    store_dir: &Path,
    memo: &Memo,
) -> TrainData {
    let (known, repeat) = sources(graph, statuses, train, store_dir, memo);
    let parts = by_source(&est.parts, &weights(graph, statuses, train));
    let earlier = earlier_draws(graph, statuses, train);
    let warnings = data_warnings(&parts, &known, repeat, &earlier);
    TrainData { known, parts, earlier, warnings }
}

/// What one plan has read of the store's data artifacts, so a sweep's trains over the same
/// corpora read each corpus' document keys (`train.hashes`, ~16 bytes a document: 400 MB for a
/// 20 GB corpus) once, not once per train.
#[derive(Default)]
struct Memo {
    /// The keys held out by a set of split artifacts.
    held: RefCell<HashMap<Vec<PathBuf>, Rc<HashSet<crate::data::split::DocKey>>>>,
    /// A tokenize artifact's tokens per pass, given what is held out and the keep-short rule.
    per_pass: RefCell<HashMap<PassKey, Option<u64>>>,
}

/// A tokenize artifact, the split artifacts holding documents out, and the long-context
/// keep-short rule (`short_below`, `keep_short`'s bits).
type PassKey = (PathBuf, Vec<PathBuf>, Option<(u64, u64)>);

impl Memo {
    fn held(&self, exclude: &[PathBuf]) -> Rc<HashSet<crate::data::split::DocKey>> {
        let mut held = self.held.borrow_mut();
        let keys = held.entry(exclude.to_vec()).or_insert_with(|| {
            // A plan is a preview: an artifact it cannot read counts for nothing here (`run`
            // says why).
            Rc::new(crate::stages::mix::held_keys(exclude.iter().map(PathBuf::as_path)).unwrap_or_default())
        });
        Rc::clone(keys)
    }

    fn per_pass(&self, dir: &Path, exclude: &[PathBuf], long_context: Option<&LongContext>) -> Option<u64> {
        let rule = long_context.map(|lc| (lc.short_below, lc.keep_short.to_bits()));
        let key = (dir.to_path_buf(), exclude.to_vec(), rule);
        if let Some(&known) = self.per_pass.borrow().get(&key) {
            return known;
        }
        let held = self.held(exclude);
        let per_pass = crate::data::shard::ShardReader::open(&dir.join("train"))
            .ok()
            .and_then(|shard| crate::stages::mix::supply(dir, &shard, &held, long_context).ok())
            .map(|s| s.per_pass);
        self.per_pass.borrow_mut().insert(key, per_pass);
        per_pass
    }
}

/// The sources of a train stage's mix whose tokenize stage is cached, with their limits, and
/// whether the mixture may repeat a source. Documents held out by another corpus count once
/// that corpus' split is cached (until then a pass is taken to give them too).
fn sources(
    graph: &Graph,
    statuses: &[(NodeIndex, Status)],
    train: NodeIndex,
    store_dir: &Path,
    memo: &Memo,
) -> (Vec<SourceData>, bool) {
    let Some(mix) = mix_of(graph, train) else { return (Vec::new(), true) };
    let StageParams::Mix(params) = &graph.stage(mix).params else { return (Vec::new(), true) };
    let exclude: Vec<PathBuf> = graph
        .inputs(mix)
        .into_iter()
        .filter(|(role, _)| matches!(role, Input::Exclude(_)))
        .filter_map(|(_, ix)| cached_dir(graph, statuses, ix, store_dir))
        .collect();
    let mut out = Vec::new();
    for (role, tok) in graph.inputs(mix) {
        let Input::Corpus(corpus) = role else { continue };
        let Some((_, Status::Cached(meta))) = statuses.iter().find(|(ix, _)| *ix == tok) else { continue };
        let Some(tokens) = meta.values.pointer("/train/tokens").and_then(serde_json::Value::as_u64) else { continue };
        let per_pass = cached_dir(graph, statuses, tok, store_dir)
            .and_then(|dir| memo.per_pass(&dir, &exclude, params.long_context.as_ref()))
            .unwrap_or(tokens);
        let max_epochs = params.max_epochs.get(&corpus).copied().unwrap_or(crate::recipe::DEFAULT_MAX_EPOCHS);
        let seq_len = params.long_context.map_or(params.seq_len, |lc| lc.target_len);
        let targets = meta.values.pointer("/train/targets").and_then(serde_json::Value::as_u64);
        out.push(SourceData { corpus, tokens, per_pass, targets, max_epochs, seq_len });
    }
    (out, params.mixture.repeat)
}

/// The estimate's tokens per part and corpus, each part's tokens split among its corpora as
/// the sampler splits them (by their training tokens) once all of them are tokenized; by
/// their files' sizes until then.
fn by_source(parts: &[PartEstimate], weights: &BTreeMap<String, u64>) -> Vec<PartEstimate> {
    parts
        .iter()
        .map(|p| {
            let tokens: Option<Vec<u64>> = p.corpora.keys().map(|c| weights.get(c).copied()).collect();
            let Some(tokens) = tokens else { return p.clone() };
            let total = tokens.iter().sum::<u64>().max(1) as f64;
            let corpora = p
                .corpora
                .keys()
                .zip(tokens)
                .map(|(c, t)| (c.clone(), (p.tokens as f64 * t as f64 / total).round() as u64))
                .collect();
            PartEstimate { corpora, ..p.clone() }
        })
        .collect()
}

/// Per known source: the tokens drawn from it and the passes that makes.
fn drawn(parts: &[PartEstimate], known: &[SourceData]) -> Vec<(u64, f64)> {
    known
        .iter()
        .map(|s| {
            let drawn: u64 = parts.iter().filter_map(|p| p.corpora.get(&s.corpus)).sum();
            (drawn, drawn as f64 / s.per_pass.max(1) as f64)
        })
        .collect()
}

/// Once a train's mix is cached, its data ledger: per phase so far (those it continues or
/// forks from, then its own), what each corpus gave.
fn ledger_lines(graph: &Graph, statuses: &[(NodeIndex, Status)], train: NodeIndex, store_dir: &Path) -> Vec<String> {
    let Some(mix) = mix_of(graph, train) else { return Vec::new() };
    let Some((_, Status::Cached(meta))) = statuses.iter().find(|(ix, _)| *ix == mix) else { return Vec::new() };
    let dir = crate::store::Store::at(store_dir).artifact_dir(StageKind::Mix, &meta.key);
    // A mix from before the ledger has none; the plan then says nothing of it.
    let Ok(ledger) = crate::stages::mix::Ledger::read(&dir) else { return Vec::new() };
    ledger
        .phases
        .iter()
        .map(|phase| {
            let reads: Vec<String> = phase
                .sources
                .iter()
                .map(|(corpus, r)| {
                    format!(
                        "{corpus} {} tokens, {} documents, {:.2} epochs",
                        count_text(r.tokens),
                        r.documents,
                        r.epochs
                    )
                })
                .collect();
            format!("data read by {}: {}", phase.stage, reads.join("; "))
        })
        .collect()
}

/// Tokens per corpus that the phases before `train` drew from the same streams, as their
/// estimates say: a continued train's whole mix (and so on up), a fork's parent up to its point.
fn earlier_draws(graph: &Graph, statuses: &[(NodeIndex, Status)], train: NodeIndex) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Some(mix) = mix_of(graph, train) else { return out };
    let Some((role, parent_mix)) =
        graph.inputs(mix).into_iter().find(|(r, _)| matches!(r, Input::Ledger | Input::ForkData))
    else {
        return out;
    };
    let Some(parent) = graph
        .graph
        .node_indices()
        .find(|&ix| graph.stage(ix).kind() == StageKind::Train && mix_of(graph, ix) == Some(parent_mix))
    else {
        return out;
    };
    let Some(est) = &graph.stage(parent).estimate else { return out };
    // A fork read the parent's streams up to its point only.
    let share = match (&role, &graph.stage(mix).params, &graph.stage(parent_mix).params) {
        (Input::ForkData, StageParams::Mix(fork), StageParams::Mix(p)) => fork.fork.map_or(1.0, |f| {
            let length = p.long_context.map_or(p.seq_len, |lc| lc.target_len);
            ((f.at * length) as f64 / est.tokens.max(1) as f64).min(1.0)
        }),
        _ => 1.0,
    };
    for part in by_source(&est.parts, &weights(graph, statuses, parent)) {
        for (corpus, tokens) in part.corpora {
            *out.entry(corpus).or_insert(0) += (tokens as f64 * share).round() as u64;
        }
    }
    for (corpus, tokens) in earlier_draws(graph, statuses, parent) {
        *out.entry(corpus).or_insert(0) += tokens;
    }
    out
}

/// The corpora a train or eval stage evaluates whose tokenize stage is cached with no held-out
/// document (`heldout = 1%` of a few documents): the stage fails at its first evaluation.
fn heldout_warnings(graph: &Graph, statuses: &[(NodeIndex, Status)], stage: NodeIndex) -> Vec<String> {
    cached_inputs(graph, statuses, stage)
        .into_iter()
        .filter_map(|(role, meta)| {
            let Input::Heldout(set) = role else { return None };
            let documents = meta.values.pointer("/train/documents").and_then(serde_json::Value::as_u64)?;
            (meta.values.pointer("/heldout/documents").and_then(serde_json::Value::as_u64) == Some(0)).then(|| {
                format!(
                    "{set} holds out none of its {documents} documents: `cptc run` fails at this stage's first evaluation; raise its `heldout` (a count, e.g. `heldout = 5 docs`, always holds some out)"
                )
            })
        })
        .collect()
}

/// Sources drawn past their `max_epochs` (which `run` refuses; `earlier`: what the phases
/// before drew from the same streams), past one pass of a mixture that does not repeat
/// (`run` runs out), or too small for one sequence.
fn data_warnings(
    parts: &[PartEstimate],
    known: &[SourceData],
    repeat: bool,
    earlier: &BTreeMap<String, u64>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (s, (drawn, _)) in known.iter().zip(drawn(parts, known)) {
        let before = earlier.get(&s.corpus).copied().unwrap_or(0);
        let total = (before + drawn) as f64 / s.per_pass.max(1) as f64;
        let phases = if before > 0 { " with the phases before this one" } else { "" };
        if total > s.max_epochs {
            out.push(format!(
                "{} is read {total:.1} times over{phases}, more than its max_epochs ({}): `cptc run` refuses this mix; add text, lower its share, or raise `max_epochs`",
                s.corpus, s.max_epochs
            ));
        } else if !repeat && total > 1.0 {
            // A continued stream goes on in its pass: what the phases before drew is gone.
            out.push(format!(
                "{} is read {total:.1} times over{phases}, but the mixture does not repeat a source (`repeat = false`): `cptc run` fails when it runs out; add text, lower its share, or set `repeat = true`",
                s.corpus
            ));
        }
        if s.per_pass <= s.seq_len {
            out.push(format!(
                "{} holds {} training tokens, less than one sequence of {}: every sequence repeats it",
                s.corpus, s.per_pass, s.seq_len
            ));
        }
    }
    out
}

/// Where and in which arithmetic a training or evaluation stage runs (all in its key).
fn how_it_runs(params: &StageParams, topology: &Topology) -> Option<String> {
    match params {
        StageParams::Train(p) => {
            let mut how = format!("{} on {}, {} engine", word(&p.precision), word(&p.device), word(&p.engine));
            if p.engine == Engine::Fsdp {
                how.push_str(&format!(" over {} (torchrun)", topology.describe()));
            }
            if let Some(lc) = &p.long_context {
                how.push_str(&format!("\n       long context: {} positions", lc.target_len));
                if let Some(r) = &p.rope {
                    let from = r.original.map_or("the model's context".to_string(), |o| o.to_string());
                    how.push_str(&format!(", RoPE {} x{} from {from}", r.kind.name(), r.factor));
                }
                if let Some(theta) = lc.rope_theta {
                    how.push_str(&format!(", base {theta}"));
                }
            }
            Some(how)
        }
        StageParams::Eval(p) => Some(format!("{} on {}", word(&p.precision), word(&p.device))),
        _ => None,
    }
}

/// The serialized name of a unit enum (`fp32`, `cpu`, `builtin`).
fn word<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn dot(graph: &Graph, statuses: &[(NodeIndex, Status)]) -> String {
    let mut out =
        String::from("digraph cptc {\n  rankdir=LR;\n  node [shape=box, style=filled, fontname=\"monospace\"];\n");
    // Nodes are numbered in execution order, so the output is stable whatever the graph's
    // internal indices.
    let position: std::collections::HashMap<NodeIndex, usize> =
        statuses.iter().enumerate().map(|(n, (ix, _))| (*ix, n + 1)).collect();
    for (n, (ix, status)) in statuses.iter().enumerate() {
        let color = match status {
            Status::Cached(_) => "palegreen",
            Status::WillRun { .. } => "lightgoldenrod",
            Status::Pending { .. } => "lightgray",
        };
        let stage = graph.stage(*ix);
        out.push_str(&format!(
            "  s{} [label=\"{}\\n{}\", fillcolor={color}];\n",
            n + 1,
            stage.id.to_string().replace('"', "\\\""),
            status_word(status)
        ));
    }
    for (ix, _) in statuses {
        for (role, input) in graph.inputs(*ix) {
            if let (Some(a), Some(b)) = (position.get(&input), position.get(ix)) {
                out.push_str(&format!("  s{a} -> s{b} [label=\"{role}\"];\n"));
            }
        }
    }
    out.push_str("}\n");
    out
}

fn to_json(
    graph: &Graph,
    statuses: &[(NodeIndex, Status)],
    tflops: f64,
    topology: &Topology,
    store_dir: &Path,
) -> serde_json::Value {
    let memo = Memo::default();
    let stages: Vec<serde_json::Value> = statuses
        .iter()
        .map(|(ix, status)| {
            let stage = graph.stage(*ix);
            let inputs: Vec<serde_json::Value> = graph
                .inputs(*ix)
                .into_iter()
                .map(|(role, input)| json!({ "role": role, "stage": graph.stage(input).id }))
                .collect();
            let (key, detail) = match status {
                Status::Cached(meta) => (Some(meta.key), json!({ "output": meta.output })),
                Status::WillRun { key, why } => (*key, json!({ "why": why })),
                Status::Pending { waiting_for } => (None, json!({ "waiting_for": waiting_for })),
            };
            let devices = devices(&stage.params, topology) as f64;
            let seconds = stage.estimate.as_ref().and_then(|e| e.flops).map(|f| f / (tflops * 1e12 * devices));
            let memory = stage
                .estimate
                .as_ref()
                .and_then(|e| e.params)
                .and_then(|n| state_bytes_per_device(&stage.params, n, topology));
            // What the store knows of a train's sources: the passes per source, the warnings.
            let data = stage.estimate.as_ref().filter(|_| stage.kind() == StageKind::Train).map(|est| {
                let TrainData { known, parts, earlier, warnings } = train_data(graph, statuses, *ix, est, store_dir, &memo);
                let per_source: Vec<serde_json::Value> = known
                    .iter()
                    .zip(drawn(&parts, &known))
                    .map(|(s, (drawn, epochs))| {
                        let before = earlier.get(&s.corpus).copied().unwrap_or(0);
                        json!({ "corpus": s.corpus, "drawn": drawn, "earlier": before, "tokens": s.tokens, "per_pass": s.per_pass, "epochs": epochs, "max_epochs": s.max_epochs })
                    })
                    .collect();
                json!({ "parts": parts, "sources": per_source, "warnings": warnings })
            });
            json!({
                "id": stage.id,
                "kind": stage.kind(),
                "status": status_word(status),
                "key": key,
                "detail": detail,
                "inputs": inputs,
                "params": stage.params,
                "estimate": stage.estimate,
                "data": data,
                "heldout_warnings": heldout_warnings(graph, statuses, *ix),
                "estimated_seconds": seconds,
                "state_bytes_per_device": memory,
            })
        })
        .collect();
    let train_flops: f64 = statuses
        .iter()
        .filter(|(ix, _)| graph.stage(*ix).kind() == StageKind::Train)
        .filter_map(|(ix, _)| graph.stage(*ix).estimate.as_ref()?.flops)
        .sum();
    json!({ "tflops": tflops, "train_flops": train_flops, "topology": topology, "stages": stages })
}
