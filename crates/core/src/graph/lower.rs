//! Lowering a checked [`Recipe`] into the stage graph.
//!
//! Shared upstream work is one stage: two train stages over the same corpus and tokenizer
//! share its ingest, split and tokenize stages; every point of a sweep shares them too.

use std::collections::{BTreeMap, HashMap};

use petgraph::graph::NodeIndex;

use super::{Graph, ModelInfo, PartEstimate, Probe, Stage, TrainEstimate};
use crate::recipe::{
    Corpus, Deferred, Eval, Heldout, Mixture, ModelRef, ModelSource, Precision, Recipe, Role, StepGeometry, Sweep,
    Train,
};
use crate::stages::{
    DeviceClass, Input, Runtime, StageId, StageKind, StageParams, ValueRef, choose, eval, fit, hf_model, import,
    ingest, mix, report, resize, split, tokenize, train, vocab,
};

/// Lowers a checked recipe. Cannot fail: checking already rejected what cannot be lowered.
/// `probe` answers what lowering may not read itself: the device, and (for estimates only)
/// model shapes and corpus sizes.
pub fn lower(recipe: &Recipe, probe: &dyn Probe) -> Graph {
    let device = probe.device();
    let mut lowerer =
        Lowerer { recipe, probe, device, g: Graph::default(), model_info: HashMap::new(), points: HashMap::new() };
    lowerer.run();
    lowerer.g
}

struct Lowerer<'r> {
    recipe: &'r Recipe,
    probe: &'r dyn Probe,
    device: DeviceClass,
    g: Graph,
    model_info: HashMap<String, ModelInfo>,
    /// Each sweep's train stages, for its fits.
    points: HashMap<String, Vec<NodeIndex>>,
}

/// A train stage as a sweep point sees it: the template plus the point's overrides.
struct TrainSpec<'a> {
    id: StageId,
    train: &'a Train,
    model: ModelRef,
    domain_share: Option<Deferred<f64>>,
    tokens: u64,
    /// Fractions of training at which to evaluate, besides `eval_every`.
    eval_at: Vec<f64>,
}

fn id(kind: StageKind, name: impl Into<String>) -> StageId {
    StageId::new(kind, name)
}

/// The precision a recipe asks for, else the device's default.
fn precision(asked: Option<Precision>, device: DeviceClass) -> Precision {
    asked.unwrap_or(match device {
        DeviceClass::Cuda => Precision::Bf16,
        DeviceClass::Cpu => Precision::Fp32,
    })
}

/// A sweep ratio in a stage id: two decimals (checking keeps ratios 0.01% apart).
fn pct(x: f64) -> String {
    crate::recipe::percent(x, 2)
}

/// How the data stages read `corpus`' files: with its loss marks for tokenize, without them for
/// the stages that read text only (ingest, vocab), so `loss_on` is in their keys only where it
/// changes the output.
fn source(corpus: &Corpus, marks: bool) -> ingest::Source {
    ingest::Source {
        corpus: corpus.name.clone(),
        format: corpus.format,
        text: if marks { corpus.text.clone() } else { corpus.text.unmarked() },
        strict: corpus.strict,
        split_by: corpus.split_by.clone(),
    }
}

fn count(x: u64) -> String {
    match x {
        x if x >= 1_000_000_000 && x % 1_000_000_000 == 0 => format!("{}B", x / 1_000_000_000),
        x if x >= 1_000_000 && x % 1_000_000 == 0 => format!("{}M", x / 1_000_000),
        x if x >= 1_000 && x % 1_000 == 0 => format!("{}k", x / 1_000),
        x => x.to_string(),
    }
}

impl<'r> Lowerer<'r> {
    fn run(&mut self) {
        let recipe = self.recipe;
        let sweep_templates: Vec<&str> = recipe.sweeps().iter().map(|s| s.train.as_str()).collect();
        // A train named by a sweep is its template: it runs alone only if something uses it.
        let used = |name: &str| {
            recipe.evals().iter().any(|e| e.model == ModelRef::Train(name.to_string()))
                || recipe.trains().iter().any(|t| t.model == ModelRef::Train(name.to_string()))
        };
        for train in recipe.trains() {
            if !sweep_templates.contains(&train.name.as_str()) || used(&train.name) {
                self.train(train);
            }
        }
        for sweep in recipe.sweeps() {
            self.sweep(sweep);
        }
        for eval in recipe.evals() {
            self.eval(eval);
        }
        for fit in recipe.fits() {
            self.fit_stage(&fit.name);
        }
        for choose in recipe.chooses() {
            self.choose_stage(&choose.name);
        }
        self.report();
        self.exclusions();
    }

    /// Every mix stage keeps out of training what any corpus of the recipe holds out: a
    /// document in two corpora is never evaluated in one and trained on in the other. (The mix,
    /// not tokenize, so that a corpus' tokens never depend on another corpus.)
    fn exclusions(&mut self) {
        let splits: Vec<(String, NodeIndex)> = self
            .g
            .graph
            .node_indices()
            .filter(|&ix| self.g.stage(ix).kind() == StageKind::Split)
            .map(|ix| (self.g.stage(ix).id.name.clone(), ix))
            .collect();
        let mixes: Vec<NodeIndex> =
            self.g.graph.node_indices().filter(|&ix| self.g.stage(ix).kind() == StageKind::Mix).collect();
        for mix in mixes {
            for (corpus, split) in &splits {
                self.g.connect(*split, mix, Input::Exclude(corpus.clone()));
            }
        }
    }

    /// The stage providing a declared base model (checking guarantees it is declared).
    fn model(&mut self, name: &str) -> NodeIndex {
        let Some(model) = self.recipe.model(name) else {
            let params = hf_model::Params { builtin: self.builtin_reads(name) };
            return self.g.add(Stage::new(id(StageKind::HfModel, name), StageParams::HfModel(params)));
        };
        if !self.model_info.contains_key(name) {
            self.model_info.insert(name.to_string(), self.probe.model_info(&model.source));
        }
        let stage = match &model.source {
            ModelSource::Gguf(path) => {
                let params = StageParams::Import(import::Params { dtype: import::Dtype::F32 });
                let mut s = Stage::new(id(StageKind::Import, name), params).at(model.origin);
                s.files.push(path.clone());
                s
            }
            ModelSource::Hf { files, .. } => {
                let params = hf_model::Params { builtin: self.builtin_reads(name) };
                let mut s = Stage::new(id(StageKind::HfModel, name), StageParams::HfModel(params)).at(model.origin);
                s.files.clone_from(files);
                s
            }
        };
        self.g.add(stage)
    }

    /// Whether the built-in engine reads model `name`: an eval of it, or a builtin training
    /// from it. (An FSDP training's output is read by the builtin engine only if evaluated.)
    fn builtin_reads(&self, name: &str) -> bool {
        let this = ModelRef::Model(name.to_string());
        self.recipe.evals().iter().any(|e| e.model == this)
            || self.recipe.trains().iter().any(|t| t.model == this && t.engine == crate::recipe::Engine::Builtin)
    }

    /// The base model at the root of a chain of train stages.
    fn root_model(&self, model: &ModelRef) -> String {
        let mut current = model.clone();
        for _ in 0..=self.recipe.trains().len() {
            match current {
                ModelRef::Model(name) => return name,
                ModelRef::Train(t) => match self.recipe.train(&t) {
                    Some(train) => current = train.model.clone(),
                    None => return t,
                },
            }
        }
        String::new()
    }

    fn split(&mut self, corpus: &Corpus) -> NodeIndex {
        let split_id = id(StageKind::Split, &corpus.name);
        if let Some(ix) = self.g.find_id(&split_id) {
            return ix;
        }
        let ingest = self.ingest(corpus);
        let params = StageParams::Split(split::Params { heldout: corpus.heldout });
        let split = self.g.add(Stage::new(split_id, params).at(corpus.origin));
        self.g.connect(ingest, split, Input::Docs);
        split
    }

    fn ingest(&mut self, corpus: &Corpus) -> NodeIndex {
        let ingest_id = id(StageKind::Ingest, &corpus.name);
        if let Some(ix) = self.g.find_id(&ingest_id) {
            return ix;
        }
        let mut ingest = Stage::new(ingest_id, StageParams::Ingest(source(corpus, false))).at(corpus.origin);
        ingest.files.clone_from(&corpus.files);
        self.g.add(ingest)
    }

    /// The stage that provides the tokenizer for a model chain, and a short name for ids.
    fn tokenizer(&mut self, model: &ModelRef, vocab: Option<&str>) -> (String, NodeIndex) {
        if let Some(vocab) = vocab {
            return (vocab.to_string(), self.vocab(vocab));
        }
        match model {
            ModelRef::Model(name) => (name.clone(), self.model(name)),
            ModelRef::Train(t) => match self.recipe.train(t) {
                Some(train) => {
                    let (model, vocab) = (train.model.clone(), train.vocab.clone());
                    self.tokenizer(&model, vocab.as_deref())
                }
                None => (t.clone(), self.model(t)),
            },
        }
    }

    /// The vocab stage `name` (checking guarantees it is declared).
    fn vocab(&mut self, name: &str) -> NodeIndex {
        let vocab_id = id(StageKind::Vocab, name);
        if let Some(ix) = self.g.find_id(&vocab_id) {
            return ix;
        }
        let recipe = self.recipe;
        let Some(vocab) = recipe.vocab(name) else { unreachable_vocab(name) };
        let train_on: Vec<&Corpus> = vocab.train_on.iter().filter_map(|c| recipe.corpus(c)).collect();
        // General text of the trains that use this vocabulary: its report shows the
        // compression of general held-out text does not change.
        let mut general: Vec<&Corpus> = Vec::new();
        for train in self.recipe.trains().iter().filter(|t| t.vocab.as_deref() == Some(name)) {
            if let Some(mixture) = self.recipe.mixture(&train.mixture) {
                for part in mixture.parts.iter().filter(|p| p.role == Role::General) {
                    general.extend(part.corpora.iter().filter_map(|c| self.recipe.corpus(c)));
                }
            }
        }
        general.sort_by(|a, b| a.name.cmp(&b.name));
        general.dedup_by(|a, b| a.name == b.name);
        // The stage reads the corpora's files itself: they are its external files, in order.
        let read: Vec<(bool, &Corpus)> =
            train_on.iter().map(|&c| (true, c)).chain(general.iter().map(|&c| (false, c))).collect();
        let sources = read
            .iter()
            .map(|&(train_on, c)| vocab::VocabSource { train_on, source: source(c, false), files: c.files.len() })
            .collect();
        let params = vocab::Params {
            size: vocab.size,
            min_frequency: vocab.min_frequency,
            select: vocab.select,
            sources,
            sample_bytes: vocab::SAMPLE_BYTES,
            heldout_bytes: vocab::HELDOUT_BYTES,
        };
        let mut stage = Stage::new(vocab_id, StageParams::Vocab(params)).at(vocab.origin);
        stage.files = read.iter().flat_map(|(_, c)| c.files.iter().cloned()).collect();
        let ix = self.g.add(stage);
        let base = self.model(&vocab.base);
        self.g.connect(base, ix, Input::Base);
        for (train_on, corpus) in read {
            let split = self.split(corpus);
            let role = if train_on { Input::TrainOn(corpus.name.clone()) } else { Input::General(corpus.name.clone()) };
            self.g.connect(split, ix, role);
        }
        ix
    }

    fn tokenize(&mut self, corpus: &Corpus, tokenizer: &(String, NodeIndex)) -> NodeIndex {
        let tok_id = id(StageKind::Tokenize, format!("{}@{}", corpus.name, tokenizer.0));
        if let Some(ix) = self.g.find_id(&tok_id) {
            return ix;
        }
        // The split stage exists whatever the path: every mix keeps out what it holds out.
        let split = self.split(corpus);
        let ingest = self.ingest(corpus);
        // A held-out fraction decides each document by its own hash, so a tokenizer that does
        // not come from this corpus' split reads the files in one pass: it hashes, tokenizes and
        // indexes them; the ingest stage, ordered after it when both run, assembles that index
        // (the first such tokenize stage feeds it; others hash for themselves). A count, or a
        // vocabulary trained on the split, needs the ingest and split stages first.
        let fraction = match corpus.heldout {
            Heldout::Fraction(f) if self.g.stage(tokenizer.1).kind() != StageKind::Vocab => Some(f),
            _ => None,
        };
        let params = tokenize::Params { source: source(corpus, true), eos: true, fraction };
        let mut stage = Stage::new(tok_id, StageParams::Tokenize(params)).at(corpus.origin);
        stage.files.clone_from(&corpus.files);
        let ix = self.g.add(stage);
        self.g.connect(tokenizer.1, ix, Input::Tokenizer);
        if fraction.is_some() {
            if self.g.waits_for(ingest).next().is_none() {
                self.g.run_after(ix, ingest);
            }
        } else {
            self.g.connect(ingest, ix, Input::Docs);
            self.g.connect(split, ix, Input::Split);
        }
        ix
    }

    /// The model a train stage starts from: the base (or a previous stage's output),
    /// resized when the stage expands the vocabulary.
    fn start_model(&mut self, model: &ModelRef, vocab: Option<&str>) -> NodeIndex {
        let base = self.model_ref(model);
        let Some(vocab_name) = vocab else { return base };
        let Some(vocab) = self.recipe.vocab(vocab_name) else { unreachable_vocab(vocab_name) };
        let (init, origin) = (vocab.init, vocab.origin);
        let resize_id = id(StageKind::Resize, format!("{}@{vocab_name}", self.g.stage(base).id.name));
        if let Some(ix) = self.g.find_id(&resize_id) {
            return ix;
        }
        let ix = self.g.add(Stage::new(resize_id, StageParams::Resize(resize::Params { init, seed: 0 })).at(origin));
        self.g.connect(base, ix, Input::Model);
        let vocab_ix = self.vocab(vocab_name);
        self.g.connect(vocab_ix, ix, Input::Vocab);
        ix
    }

    /// The stage whose output a model reference names: a base model's, or a train stage's.
    fn model_ref(&mut self, model: &ModelRef) -> NodeIndex {
        match model {
            ModelRef::Model(name) => self.model(name),
            ModelRef::Train(t) => match self.g.find_id(&id(StageKind::Train, t)) {
                Some(ix) => ix,
                None => match self.recipe.train(t) {
                    Some(train) => self.train(train),
                    None => self.model(t),
                },
            },
        }
    }

    fn train(&mut self, train: &Train) -> NodeIndex {
        let spec = TrainSpec {
            id: id(StageKind::Train, &train.name),
            train,
            model: train.model.clone(),
            domain_share: train.domain_share.clone(),
            tokens: train.tokens,
            eval_at: Vec::new(),
        };
        self.train_spec(&spec)
    }

    fn train_spec(&mut self, spec: &TrainSpec<'_>) -> NodeIndex {
        if let Some(ix) = self.g.find_id(&spec.id) {
            return ix;
        }
        let recipe = self.recipe;
        let train = spec.train;
        let vocab = train.vocab.as_deref();
        let tokenizer = self.tokenizer(&spec.model, vocab);
        let start = self.start_model(&spec.model, vocab);
        let Some(mixture) = recipe.mixture(&train.mixture) else { unreachable_mixture(&train.mixture) };

        // The mix stage: sequences drawn from the tokenized corpora.
        let domain_share = spec.domain_share.as_ref().map(|share| match share {
            Deferred::Value(v) => Runtime::Known(*v),
            Deferred::From { stage, output } => {
                Runtime::From(ValueRef { stage: id(StageKind::Choose, stage), output: output.clone() })
            }
        });
        let geometry = StepGeometry::new(spec.tokens, train.seq_len, train.batch_tokens);
        // The steps forks of this train start from: its state there is kept.
        let mut keep: Vec<u64> = recipe
            .trains()
            .iter()
            .filter_map(|t| t.fork.as_ref().filter(|f| f.parent == spec.id.name).map(|f| f.step))
            .collect();
        keep.sort_unstable();
        keep.dedup();
        let mix = mix::Params {
            mixture: mixture.clone(),
            tokens: geometry.tokens(),
            seq_len: train.seq_len,
            seed: train.seed,
            long_context: train.long_context,
            domain_share,
            max_epochs: mixture
                .parts
                .iter()
                .flat_map(|p| &p.corpora)
                .filter_map(|c| recipe.corpus(c))
                .map(|c| (c.name.clone(), c.max_epochs))
                .collect(),
            keep: keep.iter().map(|s| s * geometry.seqs_per_step).collect(),
            fork: train.fork.as_ref().map(|f| mix::MixFork { at: f.step * geometry.seqs_per_step, clock: f.clock }),
        };
        let mix = StageParams::Mix(Box::new(mix));
        let waits: Vec<StageId> = mix.waits_for().into_iter().map(|v| v.stage.clone()).collect();
        let mix_ix = self.g.add(Stage::new(id(StageKind::Mix, &spec.id.name), mix).at(train.origin));
        for from in waits {
            let choose = self.choose_stage(&from.name);
            self.g.connect(choose, mix_ix, Input::Value);
        }
        // A stage continuing another's model continues its data streams too; a fork goes on
        // from its parent's streams at its point.
        let fork_parent = train.fork.as_ref().map(|f| self.model_ref(&ModelRef::Train(f.parent.clone())));
        if let Some(parent) = &train.fork {
            if let Some(parent_mix) = self.g.find_id(&id(StageKind::Mix, &parent.parent)) {
                self.g.connect(parent_mix, mix_ix, Input::ForkData);
            }
        } else if let ModelRef::Train(parent) = &spec.model
            && let Some(parent_mix) = self.g.find_id(&id(StageKind::Mix, parent))
        {
            self.g.connect(parent_mix, mix_ix, Input::Ledger);
        }
        let corpora: Vec<&Corpus> =
            mixture.parts.iter().flat_map(|p| &p.corpora).filter_map(|name| recipe.corpus(name)).collect();
        for corpus in &corpora {
            let tok = self.tokenize(corpus, &tokenizer);
            self.g.connect(tok, mix_ix, Input::Corpus(corpus.name.clone()));
        }

        let Some(schedule) = recipe.schedule(&train.schedule).map(|s| s.lr) else {
            unreachable!("check resolved schedule `{}`", train.schedule)
        };
        // Which held-out sets measure the domain and which the general loss (for fits).
        let roles: BTreeMap<String, Role> =
            mixture.parts.iter().flat_map(|p| p.corpora.iter().map(|c| (c.clone(), p.role))).collect();
        let params = train::Params {
            roles,
            domain_share: match &spec.domain_share {
                Some(Deferred::Value(v)) => Some(*v),
                _ => None,
            },
            schedule,
            tokens: spec.tokens,
            seq_len: train.seq_len,
            batch_tokens: train.batch_tokens,
            eval_every: train.eval_every,
            eval_at: spec.eval_at.clone(),
            eval_bytes: train.eval_bytes,
            seed: train.seed,
            weight_decay: train.weight_decay,
            grad_clip: train.grad_clip,
            divergence: train.divergence,
            groups: train.groups.clone(),
            long_context: train.long_context,
            rope: train.rope,
            precision: precision(train.precision, self.device),
            device: self.device,
            engine: train.engine,
            keep,
            fork: train.fork.as_ref().map(|f| train::ForkStart { step: f.step, clock: f.clock }),
        };
        let mut train_stage = Stage::new(spec.id.clone(), StageParams::Train(Box::new(params))).at(train.origin);
        train_stage.estimate = Some(self.estimate(spec, mixture, &corpora));
        let ix = self.g.add(train_stage);
        self.g.connect(start, ix, Input::Model);
        self.g.connect(mix_ix, ix, Input::Data);
        if let Some(parent) = fork_parent {
            self.g.connect(parent, ix, Input::Fork);
        }
        // Held-out sets evaluated during training: those named, else the mixture's corpora.
        let eval_sets: Vec<&Corpus> = if train.eval_sets.is_empty() {
            corpora.clone()
        } else {
            train.eval_sets.iter().filter_map(|n| recipe.corpus(n)).collect()
        };
        for corpus in eval_sets {
            let tok = self.tokenize(corpus, &tokenizer);
            self.g.connect(tok, ix, Input::Heldout(corpus.name.clone()));
        }
        ix
    }

    fn estimate(&self, spec: &TrainSpec<'_>, mixture: &Mixture, corpora: &[&Corpus]) -> TrainEstimate {
        let train = spec.train;
        let info = self.model_info.get(&self.root_model(&spec.model)).copied().unwrap_or_default();
        let steps = StepGeometry::new(spec.tokens, train.seq_len, train.batch_tokens).steps;
        let mut parts = Vec::new();
        let share_from = match &spec.domain_share {
            Some(Deferred::From { stage, output }) => Some(format!("{}.{output}", id(StageKind::Choose, stage))),
            _ => None,
        };
        if share_from.is_none() {
            let domain_override = match &spec.domain_share {
                Some(Deferred::Value(v)) => Some(*v),
                _ => None,
            };
            // A fork on its parent's clock draws from the end of the ramp.
            let from = match &train.fork {
                Some(f) if f.clock == crate::recipe::Clock::Continue => f.step as f64 / (f.step + steps).max(1) as f64,
                _ => 0.0,
            };
            for (part, share) in part_shares(mixture, domain_override, from, 1.0) {
                let part_tokens = (spec.tokens as f64 * share).round() as u64;
                let mut by_corpus = BTreeMap::new();
                let members: Vec<&&Corpus> = corpora
                    .iter()
                    .filter(|c| mixture.parts.iter().any(|p| p.role == part && p.corpora.contains(&c.name)))
                    .collect();
                let sizes: Vec<u64> =
                    members.iter().map(|c| c.files.iter().map(|f| self.probe.file_size(f)).sum()).collect();
                let total: u64 = sizes.iter().sum::<u64>().max(1);
                for (c, size) in members.iter().zip(sizes) {
                    let t = (part_tokens as f64 * size as f64 / total as f64).round() as u64;
                    *by_corpus.entry(c.name.clone()).or_insert(0) += t;
                }
                parts.push(PartEstimate { part: part.name().to_string(), tokens: part_tokens, corpora: by_corpus });
            }
        }
        let flops = info.params.map(|n| {
            let attention =
                6.0 * info.layers.unwrap_or(0) as f64 * train.seq_len as f64 * info.hidden.unwrap_or(0) as f64;
            spec.tokens as f64 * (6.0 * n as f64 + attention)
        });
        TrainEstimate { tokens: spec.tokens, steps, parts, share_from, params: info.params, flops }
    }

    fn sweep(&mut self, sweep: &Sweep) {
        let Some(template) = self.recipe.train(&sweep.train) else { return };
        let models: Vec<ModelRef> = if sweep.models.is_empty() {
            vec![template.model.clone()]
        } else {
            sweep.models.iter().map(|m| ModelRef::Model(m.clone())).collect()
        };
        let budgets = if sweep.tokens.is_empty() { vec![template.tokens] } else { sweep.tokens.clone() };
        for model in &models {
            for &tokens in &budgets {
                for &ratio in &sweep.ratios {
                    let mut label = vec![format!("r={}", pct(ratio))];
                    if models.len() > 1 {
                        label.push(format!("n={}", self.root_model(model)));
                    }
                    if budgets.len() > 1 {
                        label.push(format!("d={}", count(tokens)));
                    }
                    let spec = TrainSpec {
                        id: id(StageKind::Train, format!("{}[{}]", sweep.name, label.join(","))),
                        train: template,
                        model: model.clone(),
                        domain_share: Some(Deferred::Value(ratio)),
                        tokens,
                        eval_at: sweep.eval_at.clone(),
                    };
                    let ix = self.train_spec(&spec);
                    let points = self.points.entry(sweep.name.clone()).or_default();
                    if !points.contains(&ix) {
                        points.push(ix);
                    }
                }
            }
        }
    }

    fn eval(&mut self, eval: &Eval) -> NodeIndex {
        let model_ix = self.model_ref(&eval.model);
        let tokenizer = self.tokenizer(&eval.model, None);
        let params = eval::Params {
            metrics: eval.metrics.clone(),
            bytes: eval.bytes,
            seq_len: eval.seq_len,
            precision: precision(eval.precision, self.device),
            device: self.device,
        };
        let ix = self.g.add(Stage::new(id(StageKind::Eval, &eval.name), StageParams::Eval(params)).at(eval.origin));
        self.g.connect(model_ix, ix, Input::Model);
        for name in &eval.sets {
            if let Some(corpus) = self.recipe.corpus(name) {
                let tok = self.tokenize(corpus, &tokenizer);
                self.g.connect(tok, ix, Input::Heldout(name.clone()));
            }
        }
        ix
    }

    fn fit_stage(&mut self, name: &str) -> NodeIndex {
        let fit_id = id(StageKind::Fit, name);
        if let Some(ix) = self.g.find_id(&fit_id) {
            return ix;
        }
        let Some(fit) = self.recipe.fit(name) else { unreachable!("check resolved fit `{name}`") };
        let params = fit::Params { loss: fit.loss, huber_delta: fit.huber_delta };
        let ix = self.g.add(Stage::new(fit_id, StageParams::Fit(params)).at(fit.origin));
        let points = self.points.get(&fit.sweep).cloned().unwrap_or_default();
        for point in points {
            let role = Input::Point(self.g.stage(point).id.clone());
            self.g.connect(point, ix, role);
        }
        ix
    }

    fn choose_stage(&mut self, name: &str) -> NodeIndex {
        let choose_id = id(StageKind::Choose, name);
        if let Some(ix) = self.g.find_id(&choose_id) {
            return ix;
        }
        let Some(choose) = self.recipe.choose(name) else { unreachable!("check resolved choose `{name}`") };
        let params = choose::Params { objective: choose.objective, tokens: choose.tokens };
        let ix = self.g.add(Stage::new(choose_id, StageParams::Choose(params)).at(choose.origin));
        // Sweep points must exist before their fits can be wired.
        let recipe = self.recipe;
        for sweep in recipe.sweeps() {
            self.sweep(sweep);
        }
        let domain = self.fit_stage(&choose.domain_fit);
        self.g.connect(domain, ix, Input::DomainLaw);
        if let Some(general) = &choose.general_fit {
            let general = self.fit_stage(general);
            self.g.connect(general, ix, Input::GeneralLaw);
        }
        ix
    }

    /// One report over everything a reader wants to see: evaluations, training curves, the
    /// mixtures as drawn, vocabulary gains and fitted laws.
    fn report(&mut self) {
        let reported: Vec<NodeIndex> = self
            .g
            .graph
            .node_indices()
            .filter(|&ix| {
                matches!(
                    self.g.stage(ix).kind(),
                    StageKind::Train
                        | StageKind::Eval
                        | StageKind::Vocab
                        | StageKind::Fit
                        | StageKind::Choose
                        | StageKind::Mix
                )
            })
            .collect();
        if reported.is_empty() {
            return;
        }
        // A model as the report names it, and whether it was trained here.
        let info = |m: &ModelRef| match m {
            ModelRef::Model(m) => report::EvalInfo { model: m.clone(), trained: false },
            ModelRef::Train(t) => report::EvalInfo { model: t.clone(), trained: self.recipe.train(t).is_some() },
        };
        // Which evaluations measure a trained model: they are the "after" of gain and forgetting.
        let evals = self.recipe.evals().iter().map(|e| (e.name.clone(), info(&e.model))).collect();
        // SFT phases (a mixture of `sft` parts only): the post-SFT probe compares them by the
        // model each started from.
        let sft_only =
            |t: &&Train| self.recipe.mixture(&t.mixture).is_some_and(|m| m.parts.iter().all(|p| p.role == Role::Sft));
        let sft = self.recipe.trains().iter().filter(sft_only).map(|t| (t.name.clone(), info(&t.model))).collect();
        let recipe = self.recipe.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let params = report::Params { format: report::ReportFormat::Html, recipe, evals, sft };
        let ix = self.g.add(Stage::new(id(StageKind::Report, ""), StageParams::Report(params)));
        for from in reported {
            let role = Input::Reported(self.g.stage(from).id.clone());
            self.g.connect(from, ix, role);
        }
    }
}

/// Each part's share of all training tokens, averaged over the ramp.
/// Each part's mean share over the stretch `[from, to]` of the ramp's progress (a fork on its
/// parent's clock covers the end of it; every other stage the whole).
pub(crate) fn part_shares(mixture: &Mixture, domain_override: Option<f64>, from: f64, to: f64) -> Vec<(Role, f64)> {
    let final_domain = domain_override
        .or_else(|| mixture.parts.iter().find(|p| p.role == Role::Domain).map(|p| p.share))
        .unwrap_or(0.0);
    // Mean domain share over the stretch: the ramp's integral, by the midpoint rule.
    let mean_domain = match &mixture.ramp {
        Some(ramp) => {
            let scale = if ramp.to > 0.0 { final_domain / ramp.to } else { 1.0 };
            let n = 1000;
            let at = |i: usize| from + (to - from) * (i as f64 + 0.5) / n as f64;
            (0..n).map(|i| ramp.share_at(at(i)) * scale).sum::<f64>() / n as f64
        }
        None => final_domain,
    };
    let others: f64 = mixture.parts.iter().filter(|p| p.role != Role::Domain).map(|p| p.share).sum();
    mixture
        .parts
        .iter()
        .map(|p| {
            let share = if p.role == Role::Domain {
                mean_domain
            } else if others > 0.0 {
                (1.0 - mean_domain) * p.share / others
            } else {
                0.0
            };
            (p.role, share)
        })
        .collect()
}

fn unreachable_vocab(name: &str) -> ! {
    unreachable!("check resolved vocab `{name}`")
}

fn unreachable_mixture(name: &str) -> ! {
    unreachable!("check resolved mixture `{name}`")
}
