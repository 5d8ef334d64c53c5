//! Lowering a checked [`Recipe`] into the stage graph.
//!
//! Shared upstream work is one stage: two train stages over the same corpus and tokenizer
//! share its ingest, split and tokenize stages; every point of a sweep shares them too.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use petgraph::graph::NodeIndex;
use serde_json::{Value, json};

use super::{DeferredParam, Graph, PartEstimate, Stage, StageKind, TrainEstimate};
use crate::check::Recipe;
use crate::check::recipe::{
    Amount, Corpus, Deferred, Eval, Heldout, Mixture, ModelRef, ModelSource, Role, StepGeometry, Sweep, TextSource,
    Train,
};

/// Lowers a checked recipe. Cannot fail: checking already rejected what cannot be lowered.
pub fn lower(recipe: &Recipe) -> Graph {
    let mut lowerer = Lowerer { recipe, g: Graph::default(), model_info: HashMap::new() };
    lowerer.run();
    lowerer.g
}

/// What the plan needs to know about a base model.
#[derive(Clone, Copy, Debug, Default)]
struct ModelInfo {
    params: Option<u64>,
    layers: Option<u64>,
    hidden: Option<u64>,
}

struct Lowerer<'r> {
    recipe: &'r Recipe,
    g: Graph,
    model_info: HashMap<String, ModelInfo>,
}

/// A train stage as a sweep point sees it: the template plus the point's overrides.
struct TrainSpec<'a> {
    id: String,
    train: &'a Train,
    model: ModelRef,
    domain_share: Option<Deferred<f64>>,
    tokens: u64,
    /// Fractions of training at which to evaluate, besides `eval_every`.
    eval_at: Vec<f64>,
}

fn stage(id: String, kind: StageKind, params: Value) -> Stage {
    Stage { id, kind, params, files: Vec::new(), deferred: Vec::new(), estimate: None }
}

fn pct(x: f64) -> String {
    let text = format!("{:.2}", x * 100.0);
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

fn count(x: u64) -> String {
    match x {
        x if x >= 1_000_000_000 && x % 1_000_000_000 == 0 => format!("{}B", x / 1_000_000_000),
        x if x >= 1_000_000 && x % 1_000_000 == 0 => format!("{}M", x / 1_000_000),
        x if x >= 1_000 && x % 1_000 == 0 => format!("{}k", x / 1_000),
        x => x.to_string(),
    }
}

fn amount_json(amount: Amount) -> Value {
    serde_json::to_value(amount).unwrap_or(Value::Null)
}

impl<'r> Lowerer<'r> {
    fn run(&mut self) {
        let recipe = self.recipe;
        let sweep_templates: Vec<&str> = recipe.sweeps.iter().map(|s| s.train.as_str()).collect();
        // A train named by a sweep is its template: it runs alone only if something uses it.
        let used = |name: &str| {
            recipe.evals.iter().any(|e| e.model == ModelRef::Train(name.to_string()))
                || recipe.trains.iter().any(|t| t.model == ModelRef::Train(name.to_string()))
        };
        for train in &recipe.trains {
            if !sweep_templates.contains(&train.name.as_str()) || used(&train.name) {
                self.train(train);
            }
        }
        for sweep in &recipe.sweeps {
            self.sweep(sweep);
        }
        for eval in &recipe.evals {
            self.eval(eval);
        }
        for fit in &recipe.fits {
            self.fit_stage(&fit.name);
        }
        for choose in &recipe.chooses {
            self.choose_stage(&choose.name);
        }
        self.report();
    }

    fn model(&mut self, name: &str) -> NodeIndex {
        let Some(model) = self.recipe.model(name) else {
            return self.g.add(stage(format!("model:{name}"), StageKind::HfModel, Value::Null));
        };
        match &model.source {
            ModelSource::Gguf(path) => {
                let mut s = stage(format!("import:{name}"), StageKind::Import, json!({ "dtype": "f32" }));
                s.files.push(path.clone());
                if !self.model_info.contains_key(name) {
                    self.model_info.insert(name.to_string(), gguf_info(path));
                }
                self.g.add(s)
            }
            ModelSource::Hf(dir) => {
                let mut s = stage(format!("model:{name}"), StageKind::HfModel, Value::Null);
                let mut files: Vec<_> = std::fs::read_dir(dir)
                    .map(|d| d.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect())
                    .unwrap_or_default();
                files.sort();
                s.files = files;
                if !self.model_info.contains_key(name) {
                    self.model_info.insert(name.to_string(), hf_info(dir));
                }
                self.g.add(s)
            }
        }
    }

    /// The base model at the root of a chain of train stages.
    fn root_model(&self, model: &ModelRef) -> String {
        let mut current = model.clone();
        for _ in 0..=self.recipe.trains.len() {
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
        let text = match &corpus.text {
            TextSource::Field(f) => json!({ "field": f }),
            TextSource::Template(t) => json!({ "template": t.text }),
        };
        let mut ingest = stage(
            format!("ingest:{}", corpus.name),
            StageKind::Ingest,
            json!({ "format": corpus.format, "text": text, "strict": corpus.strict }),
        );
        ingest.files = corpus.files.clone();
        let ingest = self.g.add(ingest);
        let heldout = match corpus.heldout {
            Heldout::Fraction(f) => json!({ "fraction": f }),
            Heldout::Docs(n) => json!({ "docs": n }),
        };
        let split_id = format!("split:{}", corpus.name);
        if let Some(ix) = self.g.find(&split_id) {
            return ix;
        }
        let split = self.g.add(stage(split_id, StageKind::Split, json!({ "heldout": heldout })));
        self.g.connect(ingest, split, "docs");
        split
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

    fn vocab(&mut self, name: &str) -> NodeIndex {
        let id = format!("vocab:{name}");
        if let Some(ix) = self.g.find(&id) {
            return ix;
        }
        let Some(vocab) = self.recipe.vocab(name) else {
            return self.g.add(stage(id, StageKind::Vocab, Value::Null));
        };
        let params = json!({
            "size": vocab.size,
            "min_frequency": vocab.min_frequency,
            "select": vocab.select,
        });
        let ix = self.g.add(stage(id, StageKind::Vocab, params));
        let base = self.model(&vocab.base);
        self.g.connect(base, ix, "base");
        for corpus_name in &vocab.train_on {
            if let Some(corpus) = self.recipe.corpus(corpus_name) {
                let split = self.split(corpus);
                self.g.connect(split, ix, format!("train_on:{corpus_name}"));
            }
        }
        // General text of the trains that use this vocabulary: its report shows the
        // compression of general held-out text does not change.
        let mut general: Vec<&Corpus> = Vec::new();
        for train in self.recipe.trains.iter().filter(|t| t.vocab.as_deref() == Some(name)) {
            if let Some(mixture) = self.recipe.mixture(&train.mixture) {
                for part in mixture.parts.iter().filter(|p| p.role == Role::General) {
                    general.extend(part.corpora.iter().filter_map(|c| self.recipe.corpus(c)));
                }
            }
        }
        general.sort_by(|a, b| a.name.cmp(&b.name));
        general.dedup_by(|a, b| a.name == b.name);
        for corpus in general {
            let split = self.split(corpus);
            self.g.connect(split, ix, format!("general:{}", corpus.name));
        }
        ix
    }

    fn tokenize(&mut self, corpus: &Corpus, tokenizer: &(String, NodeIndex)) -> NodeIndex {
        let id = format!("tokenize:{}@{}", corpus.name, tokenizer.0);
        if let Some(ix) = self.g.find(&id) {
            return ix;
        }
        let split = self.split(corpus);
        let ix = self.g.add(stage(id, StageKind::Tokenize, json!({ "eos": true })));
        self.g.connect(split, ix, "split");
        self.g.connect(tokenizer.1, ix, "tokenizer");
        ix
    }

    /// The model a train stage starts from: the base (or a previous stage's output),
    /// resized when the stage expands the vocabulary.
    fn start_model(&mut self, model: &ModelRef, vocab: Option<&str>) -> NodeIndex {
        let base = match model {
            ModelRef::Model(name) => self.model(name),
            ModelRef::Train(t) => match self.g.find(&format!("train:{t}")) {
                Some(ix) => ix,
                None => match self.recipe.train(t) {
                    Some(train) => self.train(train),
                    None => self.model(t),
                },
            },
        };
        let Some(vocab_name) = vocab else { return base };
        let init = self.recipe.vocab(vocab_name).map(|v| v.init);
        let base_id = self.g.stage(base).id.clone();
        let base_name = base_id.split_once(':').map_or(base_id.as_str(), |(_, n)| n);
        let id = format!("resize:{base_name}@{vocab_name}");
        if let Some(ix) = self.g.find(&id) {
            return ix;
        }
        let ix = self.g.add(stage(id, StageKind::Resize, json!({ "init": init, "seed": 0 })));
        self.g.connect(base, ix, "model");
        let vocab_ix = self.vocab(vocab_name);
        self.g.connect(vocab_ix, ix, "vocab");
        ix
    }

    fn train(&mut self, train: &Train) -> NodeIndex {
        let spec = TrainSpec {
            id: format!("train:{}", train.name),
            train,
            model: train.model.clone(),
            domain_share: train.domain_share.clone(),
            tokens: train.tokens,
            eval_at: Vec::new(),
        };
        self.train_spec(&spec)
    }

    fn train_spec(&mut self, spec: &TrainSpec<'_>) -> NodeIndex {
        if let Some(ix) = self.g.find(&spec.id) {
            return ix;
        }
        let train = spec.train;
        let vocab = train.vocab.as_deref();
        let tokenizer = self.tokenizer(&spec.model, vocab);
        let start = self.start_model(&spec.model, vocab);
        let mixture = self.recipe.mixture(&train.mixture);

        // The mix stage: sequences drawn from the tokenized corpora.
        let suffix = spec.id.strip_prefix("train:").unwrap_or(&spec.id);
        let mut mix = stage(
            format!("mix:{suffix}"),
            StageKind::Mix,
            json!({
                "mixture": mixture,
                "tokens": StepGeometry::new(spec.tokens, train.seq_len, train.batch_tokens).tokens(),
                "seq_len": train.seq_len,
                "seed": train.seed,
                "long_context": train.long_context,
            }),
        );
        match &spec.domain_share {
            Some(Deferred::Value(v)) => {
                if let Value::Object(map) = &mut mix.params {
                    map.insert("domain_share".to_string(), json!(v));
                }
            }
            Some(Deferred::From { stage: from, output }) => mix.deferred.push(DeferredParam {
                param: "domain_share".to_string(),
                stage: format!("choose:{from}"),
                output: output.clone(),
            }),
            None => {}
        }
        let deferred_from: Vec<String> = mix.deferred.iter().map(|d| d.stage.clone()).collect();
        let mix_ix = self.g.add(mix);
        for from in deferred_from {
            let name = from.strip_prefix("choose:").unwrap_or(&from).to_string();
            let choose = self.choose_stage(&name);
            self.g.connect(choose, mix_ix, "value");
        }
        let mut corpora: Vec<&Corpus> = Vec::new();
        if let Some(mixture) = mixture {
            for part in &mixture.parts {
                for name in &part.corpora {
                    if let Some(c) = self.recipe.corpus(name) {
                        corpora.push(c);
                    }
                }
            }
        }
        for corpus in &corpora {
            let tok = self.tokenize(corpus, &tokenizer);
            self.g.connect(tok, mix_ix, format!("corpus:{}", corpus.name));
        }

        let schedule = self.recipe.schedule(&train.schedule).map(|s| s.lr);
        // Which held-out sets measure the domain and which the general loss (for fits).
        let mut roles = serde_json::Map::new();
        if let Some(mixture) = mixture {
            for part in &mixture.parts {
                for corpus in &part.corpora {
                    roles.insert(corpus.clone(), json!(part.role));
                }
            }
        }
        let share = match &spec.domain_share {
            Some(Deferred::Value(v)) => json!(v),
            _ => Value::Null,
        };
        let params = json!({
            "roles": roles,
            "domain_share": share,
            "schedule": schedule,
            "tokens": spec.tokens,
            "seq_len": train.seq_len,
            "batch_tokens": train.batch_tokens,
            "eval_every": train.eval_every.map(amount_json),
            "eval_at": spec.eval_at,
            "eval_bytes": train.eval_bytes,
            "seed": train.seed,
            "weight_decay": train.weight_decay,
            "grad_clip": train.grad_clip,
            "groups": train.groups,
            "rope_theta": train.long_context.and_then(|l| l.rope_theta),
        });
        let mut train_stage = stage(spec.id.clone(), StageKind::Train, params);
        train_stage.estimate = Some(self.estimate(spec, mixture, &corpora));
        let ix = self.g.add(train_stage);
        self.g.connect(start, ix, "model");
        self.g.connect(mix_ix, ix, "data");
        // Held-out sets evaluated during training: those named, else the mixture's corpora.
        let eval_sets: Vec<&Corpus> = if train.eval_sets.is_empty() {
            corpora.clone()
        } else {
            train.eval_sets.iter().filter_map(|n| self.recipe.corpus(n)).collect()
        };
        for corpus in eval_sets {
            let tok = self.tokenize(corpus, &tokenizer);
            self.g.connect(tok, ix, format!("heldout:{}", corpus.name));
        }
        ix
    }

    fn estimate(&self, spec: &TrainSpec<'_>, mixture: Option<&Mixture>, corpora: &[&Corpus]) -> TrainEstimate {
        let train = spec.train;
        let info = self.model_info.get(&self.root_model(&spec.model)).copied().unwrap_or_default();
        let steps = StepGeometry::new(spec.tokens, train.seq_len, train.batch_tokens).steps;
        let mut parts = Vec::new();
        let share_from = match &spec.domain_share {
            Some(Deferred::From { stage, output }) => Some(format!("choose:{stage}.{output}")),
            _ => None,
        };
        if let (Some(mixture), None) = (mixture, &share_from) {
            let domain_override = match &spec.domain_share {
                Some(Deferred::Value(v)) => Some(*v),
                _ => None,
            };
            for (part, share) in part_shares(mixture, domain_override) {
                let part_tokens = (spec.tokens as f64 * share).round() as u64;
                let mut by_corpus = BTreeMap::new();
                let members: Vec<&&Corpus> = corpora
                    .iter()
                    .filter(|c| mixture.parts.iter().any(|p| p.role == part && p.corpora.contains(&c.name)))
                    .collect();
                let sizes: Vec<u64> = members.iter().map(|c| corpus_bytes(c)).collect();
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
                        id: format!("train:{}[{}]", sweep.name, label.join(",")),
                        train: template,
                        model: model.clone(),
                        domain_share: Some(Deferred::Value(ratio)),
                        tokens,
                        eval_at: sweep.eval_at.clone(),
                    };
                    self.train_spec(&spec);
                }
            }
        }
    }

    fn eval(&mut self, eval: &Eval) -> NodeIndex {
        let id = format!("eval:{}", eval.name);
        let (model_ix, tokenizer) = match &eval.model {
            ModelRef::Model(name) => (self.model(name), self.tokenizer(&eval.model, None)),
            ModelRef::Train(t) => {
                let ix = match self.g.find(&format!("train:{t}")) {
                    Some(ix) => ix,
                    None => match self.recipe.train(t) {
                        Some(train) => self.train(train),
                        None => self.model(t),
                    },
                };
                (ix, self.tokenizer(&eval.model, None))
            }
        };
        let ix = self.g.add(stage(
            id,
            StageKind::Eval,
            json!({ "metrics": eval.metrics, "bytes": eval.bytes, "seq_len": eval.seq_len }),
        ));
        self.g.connect(model_ix, ix, "model");
        for name in &eval.sets {
            if let Some(corpus) = self.recipe.corpus(name) {
                let tok = self.tokenize(corpus, &tokenizer);
                self.g.connect(tok, ix, format!("heldout:{name}"));
            }
        }
        ix
    }

    fn fit_stage(&mut self, name: &str) -> NodeIndex {
        let id = format!("fit:{name}");
        if let Some(ix) = self.g.find(&id) {
            return ix;
        }
        let Some(fit) = self.recipe.fit(name) else {
            return self.g.add(stage(id, StageKind::Fit, Value::Null));
        };
        let params = json!({ "loss": fit.loss, "huber_delta": fit.huber_delta });
        let ix = self.g.add(stage(id, StageKind::Fit, params));
        let prefix = format!("train:{}[", fit.sweep);
        let points: Vec<NodeIndex> = self
            .g
            .graph
            .node_indices()
            .filter(|&p| self.g.stage(p).kind == StageKind::Train && self.g.stage(p).id.starts_with(&prefix))
            .collect();
        for point in points {
            let role = format!("point:{}", self.g.stage(point).id);
            self.g.connect(point, ix, role);
        }
        ix
    }

    fn choose_stage(&mut self, name: &str) -> NodeIndex {
        let id = format!("choose:{name}");
        if let Some(ix) = self.g.find(&id) {
            return ix;
        }
        let Some(choose) = self.recipe.choose(name) else {
            return self.g.add(stage(id, StageKind::Choose, Value::Null));
        };
        let params = json!({ "objective": choose.objective, "tokens": choose.tokens });
        let ix = self.g.add(stage(id, StageKind::Choose, params));
        // Sweep points must exist before their fits can be wired.
        let sweeps: Vec<&Sweep> = self.recipe.sweeps.iter().collect();
        for sweep in sweeps {
            self.sweep(sweep);
        }
        let domain = self.fit_stage(&choose.domain_fit);
        self.g.connect(domain, ix, "domain_law");
        if let Some(general) = &choose.general_fit {
            let general = self.fit_stage(general);
            self.g.connect(general, ix, "general_law");
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
                    self.g.stage(ix).kind,
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
        // Which evaluations measure a trained model: they are the "after" of gain and forgetting.
        let evals: serde_json::Map<String, Value> = self
            .recipe
            .evals
            .iter()
            .map(|e| {
                let (model, trained) = match &e.model {
                    ModelRef::Model(m) => (m.clone(), false),
                    ModelRef::Train(t) => (t.clone(), self.recipe.train(t).is_some()),
                };
                (format!("eval:{}", e.name), json!({ "model": model, "trained": trained }))
            })
            .collect();
        let recipe = self.recipe.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let params = json!({ "format": "html", "recipe": recipe, "evals": evals });
        let ix = self.g.add(stage("report".to_string(), StageKind::Report, params));
        for from in reported {
            let role = self.g.stage(from).id.clone();
            self.g.connect(from, ix, role);
        }
    }
}

/// Each part's share of all training tokens, averaged over the ramp.
pub(crate) fn part_shares(mixture: &Mixture, domain_override: Option<f64>) -> Vec<(Role, f64)> {
    let final_domain = domain_override
        .or_else(|| mixture.parts.iter().find(|p| p.role == Role::Domain).map(|p| p.share))
        .unwrap_or(0.0);
    // Mean domain share over training: the ramp's integral, by the midpoint rule.
    let mean_domain = match &mixture.ramp {
        Some(ramp) => {
            let scale = if ramp.to > 0.0 { final_domain / ramp.to } else { 1.0 };
            let n = 1000;
            (0..n).map(|i| ramp.share_at((i as f64 + 0.5) / n as f64) * scale).sum::<f64>() / n as f64
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

fn corpus_bytes(corpus: &Corpus) -> u64 {
    corpus.files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum()
}

fn gguf_info(path: &Path) -> ModelInfo {
    let Ok(bytes) = std::fs::read(path) else { return ModelInfo::default() };
    let Ok(gguf) = crate::convert::parse_gguf(&bytes) else { return ModelInfo::default() };
    let params = gguf.tensors.iter().map(|t| t.n_elements).sum();
    let arch = gguf.get("general.architecture").and_then(|v| v.as_str()).unwrap_or("llama").to_string();
    ModelInfo {
        params: Some(params),
        layers: gguf.get(&format!("{arch}.block_count")).and_then(|v| v.as_u64()),
        hidden: gguf.get(&format!("{arch}.embedding_length")).and_then(|v| v.as_u64()),
    }
}

fn hf_info(dir: &Path) -> ModelInfo {
    let Ok(text) = std::fs::read_to_string(dir.join("config.json")) else { return ModelInfo::default() };
    let Ok(config) = serde_json::from_str::<Value>(&text) else { return ModelInfo::default() };
    let get = |k: &str| config.get(k).and_then(Value::as_u64);
    let (Some(vocab), Some(hidden), Some(layers), Some(ffn)) =
        (get("vocab_size"), get("hidden_size"), get("num_hidden_layers"), get("intermediate_size"))
    else {
        return ModelInfo::default();
    };
    let heads = get("num_attention_heads").unwrap_or(1).max(1);
    let kv_heads = get("num_key_value_heads").unwrap_or(heads);
    let head_dim = get("head_dim").unwrap_or(hidden / heads);
    let tied = config.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(false);
    let attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2;
    let per_layer = attention + 3 * hidden * ffn + 2 * hidden;
    let params = vocab * hidden * if tied { 1 } else { 2 } + layers * per_layer + hidden;
    ModelInfo { params: Some(params), layers: Some(layers), hidden: Some(hidden) }
}
