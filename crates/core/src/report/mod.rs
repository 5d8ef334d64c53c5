//! The run report: what a continued pretraining did, as one HTML page with SVG charts and a
//! short terminal summary.
//!
//! Pure: [`ReportData`] is gathered from artifacts by the executor's report stage
//! (`exec/report.rs`); this module only renders it, deterministically, so a report is
//! byte-identical for the same results and its rendering is snapshot-tested from fixtures.

pub mod chart;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use self::chart::{BarChart, LineChart, Series};
use crate::svg::{escape, si};

/// Everything the report shows, in recipe terms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportData {
    /// The recipe's file name.
    pub recipe: String,
    pub evals: Vec<EvalReport>,
    pub trains: Vec<TrainReport>,
    pub vocabs: Vec<VocabReport>,
    pub laws: Vec<LawReport>,
}

/// One `eval` stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub name: String,
    pub model: String,
    /// The model is a train stage of this recipe: an "after" measurement.
    pub trained: bool,
    pub sets: Vec<SetMetrics>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetMetrics {
    pub set: String,
    pub loss: f64,
    pub ppl: f64,
    pub bpb: f64,
    pub tokens: u64,
    pub bytes: u64,
    /// Bytes of the set no token covers, left out of `bytes` and of the bits per byte.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unencodable_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One `train` stage: its curves and its mixture as drawn.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub name: String,
    pub params: u64,
    pub tokens: u64,
    pub steps: u64,
    pub tokens_per_step: u64,
    /// Mean training throughput over the steps.
    pub tokens_per_s: Option<f64>,
    /// Final domain share when a chosen ratio overrode the mixture's.
    pub domain_share: Option<f64>,
    /// Corpus -> role (`domain`, `general`, `sft`) in the train's mixture.
    pub roles: BTreeMap<String, String>,
    pub curve: Vec<StepPoint>,
    pub evals: Vec<EvalPoint>,
    pub windows: Vec<ShareWindow>,
    /// The data ledger: per phase (this stage and those it continues), what each corpus gave.
    #[serde(default)]
    pub phases: Vec<DataPhase>,
    /// A fork's: the parent's step it started from (its steps are counted on from there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forked_at: Option<u64>,
    /// An SFT phase's: the model it started from (the post-SFT probe compares them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sft_from: Option<SftStart>,
}

/// Where an SFT phase started: a base model, or a model trained in the recipe (a CPT run).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SftStart {
    pub model: String,
    pub trained: bool,
}

/// One row of the post-SFT probe: an SFT phase's held-out loss on one set before and after it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeRow {
    pub train: String,
    pub from: SftStart,
    pub set: String,
    pub before: f64,
    pub after: f64,
}

/// A train's first and last evaluation steps and, per set measured at both, the two points.
type FirstAndLast<'t> = (u64, u64, Vec<(&'t EvalPoint, &'t EvalPoint)>);

impl TrainReport {
    /// Its first and last evaluation steps and, per set measured at both, the two points.
    fn first_and_last(&self) -> Option<FirstAndLast<'_>> {
        let first = self.evals.iter().map(|e| e.step).min()?;
        let last = self.evals.iter().map(|e| e.step).max()?;
        let pairs = self
            .evals
            .iter()
            .filter(|e| e.step == first)
            .filter_map(|e0| Some((e0, self.evals.iter().find(|e| e.step == last && e.set == e0.set)?)))
            .collect();
        Some((first, last, pairs))
    }
}

/// One phase of the data ledger: what one train stage's mix read, per corpus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataPhase {
    pub stage: String,
    pub sources: BTreeMap<String, DataRead>,
}

/// One corpus in one phase: tokens drawn, documents begun, passes over its training side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataRead {
    pub tokens: u64,
    pub documents: u64,
    pub epochs: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepPoint {
    pub step: u64,
    pub tokens: u64,
    pub loss: f64,
    pub lr: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    pub step: u64,
    pub tokens: u64,
    pub set: String,
    pub loss: f64,
    pub bpb: f64,
}

/// Token shares per role over one window of training sequences.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShareWindow {
    /// Training tokens before and after the window.
    pub start: u64,
    pub end: u64,
    pub realized: BTreeMap<String, f64>,
    pub target: BTreeMap<String, f64>,
}

/// One `vocab` stage: what the new tokens buy on held-out text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VocabReport {
    pub name: String,
    pub base_vocab_size: u64,
    pub expanded_vocab_size: u64,
    pub n_added: u64,
    pub n_used_on_domain: u64,
    pub domain: Compression,
    pub general: Compression,
    pub examples: Vec<NewToken>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Compression {
    pub tokens_per_byte_before: f64,
    pub tokens_per_byte_after: f64,
    pub cjk_chars: u64,
    pub tokens_per_cjk_char_before: f64,
    pub tokens_per_cjk_char_after: f64,
    /// `tokens_after / tokens_before - 1`.
    pub change: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewToken {
    pub text: String,
    pub base_pieces: u64,
    pub count: u64,
}

/// A `fit` or `choose` stage: its text summary and its plots.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LawReport {
    pub stage: String,
    pub text: String,
    /// Chosen ratio (choose stages).
    pub ratio: Option<f64>,
    pub svgs: Vec<String>,
}

/// One row of gain and forgetting: a held-out set measured before and after training.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub set: String,
    pub role: Option<String>,
    pub before: f64,
    pub after: f64,
    /// Where the figures come from (`eval:before -> eval:after`).
    pub source: String,
}

impl Change {
    pub fn relative(&self) -> f64 {
        self.after / self.before - 1.0
    }
}

impl ReportData {
    /// The role a set plays in any train of the recipe.
    pub fn role(&self, set: &str) -> Option<&str> {
        self.trains.iter().find_map(|t| t.roles.get(set)).map(String::as_str)
    }

    /// Bits per byte before and after, per set: from an untrained and a trained `eval` stage
    /// where the recipe has both, else from the first and last evaluation inside a train.
    pub fn changes(&self) -> Vec<Change> {
        let mut out: Vec<Change> = Vec::new();
        let before = self.evals.iter().find(|e| !e.trained);
        let after = self.evals.iter().rev().find(|e| e.trained);
        if let (Some(b), Some(a)) = (before, after) {
            for sb in &b.sets {
                if let Some(sa) = a.sets.iter().find(|s| s.set == sb.set) {
                    out.push(Change {
                        set: sb.set.clone(),
                        role: self.role(&sb.set).map(str::to_owned),
                        before: sb.bpb,
                        after: sa.bpb,
                        source: format!("eval:{} -> eval:{}", b.name, a.name),
                    });
                }
            }
        }
        for t in &self.trains {
            let Some((first, last, pairs)) = t.first_and_last() else { continue };
            if first == last {
                continue;
            }
            for (e0, e1) in pairs {
                if out.iter().any(|c| c.set == e0.set) {
                    continue;
                }
                out.push(Change {
                    set: e0.set.clone(),
                    role: t.roles.get(&e0.set).cloned(),
                    before: e0.bpb,
                    after: e1.bpb,
                    source: format!("train:{} step {first} -> {last}", t.name),
                });
            }
        }
        out
    }

    /// The post-SFT probe: per SFT phase and set, bits per byte before and after the SFT (the
    /// set's loss mask counts the answers only), base-started phases first.
    pub fn probe(&self) -> Vec<ProbeRow> {
        let mut rows = Vec::new();
        for t in &self.trains {
            let (Some(from), Some((_, _, pairs))) = (&t.sft_from, t.first_and_last()) else { continue };
            for (e0, e1) in pairs {
                rows.push(ProbeRow {
                    train: t.name.clone(),
                    from: from.clone(),
                    set: e0.set.clone(),
                    before: e0.bpb,
                    after: e1.bpb,
                });
            }
        }
        rows.sort_by(|a, b| (&a.set, a.from.trained).cmp(&(&b.set, b.from.trained)));
        rows
    }

    /// The probe's lines: each row, and per set a CPT-started phase against the base-started
    /// one: whether the gain survives the SFT.
    fn probe_lines(&self) -> Vec<String> {
        let rows = self.probe();
        let mut out = Vec::new();
        let mut sets: Vec<&str> = rows.iter().map(|r| r.set.as_str()).collect();
        sets.dedup();
        for set in sets {
            out.push(format!("post-SFT probe, held-out `{set}` (bits per byte)   before SFT   after"));
            let of_set: Vec<&ProbeRow> = rows.iter().filter(|r| r.set == set).collect();
            for r in &of_set {
                let kind = if r.from.trained { "trained here" } else { "base" };
                let label = format!("{} from {} ({kind})", r.train, r.from.model);
                out.push(format!("  {label:<40} {:>8.4} {:>8.4}", r.before, r.after));
            }
            let base = of_set.iter().find(|r| !r.from.trained);
            for cpt in of_set.iter().filter(|r| r.from.trained) {
                if let Some(base) = base {
                    let (before, after) = (cpt.before / base.before - 1.0, cpt.after / base.after - 1.0);
                    let verdict = match (before < 0.0, after < 0.0) {
                        (true, true) if after <= 0.5 * before => {
                            format!("the CPT gain survives the SFT ({:.0}% of it)", 100.0 * after / before)
                        }
                        (true, true) => {
                            format!("the CPT gain mostly fades in the SFT ({:.0}% of it left)", 100.0 * after / before)
                        }
                        (true, false) => "the CPT gain does not survive the SFT".to_string(),
                        (false, true) => "the CPT model gains only after the SFT".to_string(),
                        (false, false) => "no CPT gain before or after the SFT".to_string(),
                    };
                    out.push(format!(
                        "  {} vs {}: {:+.1}% before SFT, {:+.1}% after: {verdict}",
                        cpt.from.model,
                        base.from.model,
                        100.0 * before,
                        100.0 * after
                    ));
                }
            }
        }
        out
    }

    /// The terminal summary: gain and forgetting, then one line per train, vocab and law.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let changes = self.changes();
        if !changes.is_empty() {
            let _ = writeln!(s, "held-out bits per byte      before    after   change");
            for c in &changes {
                let label = match &c.role {
                    Some(r) => format!("{} ({r})", c.set),
                    None => c.set.clone(),
                };
                let verdict = match (c.role.as_deref(), c.after < c.before) {
                    (Some("domain"), true) => "gain",
                    (Some("domain"), false) => "no gain",
                    (Some(_), false) => "forgetting",
                    (Some(_), true) => "improved",
                    (None, _) => "",
                };
                let _ = writeln!(
                    s,
                    "  {label:<24} {:>8.4} {:>8.4} {:>+7.1}%  {verdict}",
                    c.before,
                    c.after,
                    100.0 * c.relative()
                );
            }
        }
        for t in &self.trains {
            let first = t.curve.first().map(|p| p.loss);
            let last = t.curve.last().map(|p| p.loss);
            let speed = t.tokens_per_s.map(|v| format!(", {v:.0} tokens/s")).unwrap_or_default();
            let loss = match (first, last) {
                (Some(a), Some(b)) => format!(", train loss {a:.3} -> {b:.3}"),
                _ => String::new(),
            };
            let _ = writeln!(s, "train {}: {} tokens in {} steps{loss}{speed}", t.name, si(t.tokens as f64), t.steps);
        }
        for line in self.probe_lines() {
            let _ = writeln!(s, "{line}");
        }
        for v in &self.vocabs {
            let _ = writeln!(
                s,
                "vocab {}: {} -> {} tokens (+{}), domain text {:+.1}% tokens, general {:+.2}%",
                v.name,
                v.base_vocab_size,
                v.expanded_vocab_size,
                v.n_added,
                100.0 * v.domain.change,
                100.0 * v.general.change
            );
        }
        for e in &self.evals {
            for m in e.sets.iter().filter(|m| m.unencodable_bytes > 0) {
                let share = 100.0 * m.unencodable_bytes as f64 / (m.unencodable_bytes + m.bytes).max(1) as f64;
                let _ = writeln!(
                    s,
                    "warning: eval {}: {} bytes ({share:.2}%) of `{}` have no token in the vocabulary; bits per byte leave them out",
                    e.name, m.unencodable_bytes, m.set
                );
            }
        }
        for (stage, ratio) in self.laws.iter().filter_map(|l| Some((&l.stage, l.ratio?))) {
            let _ = writeln!(s, "{stage}: domain ratio {ratio:.4}");
        }
        s
    }

    /// The report page: self-contained HTML (inline CSS and SVG).
    pub fn html(&self) -> String {
        let mut h = String::new();
        let title = format!("cptc report: {}", self.recipe);
        let _ = writeln!(h, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">");
        let _ = writeln!(h, "<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>", escape(&title));
        let _ = writeln!(h, "<h1>{}</h1>", escape(&title));
        self.html_changes(&mut h);
        let probe = self.probe_lines();
        if !probe.is_empty() {
            let _ = writeln!(h, "<h2>Post-SFT probe</h2>");
            let _ = writeln!(
                h,
                "<p>The same SFT from the base and from the trained model, measured on held-out answers (prompts are context only).</p>\n<pre>{}</pre>",
                escape(&probe.join("\n"))
            );
        }
        for t in &self.trains {
            html_train(&mut h, t);
        }
        for v in &self.vocabs {
            html_vocab(&mut h, v);
        }
        for l in &self.laws {
            let _ = writeln!(h, "<h2>{}</h2>\n<pre>{}</pre>", escape(&l.stage), escape(&l.text));
            for svg in &l.svgs {
                let _ = writeln!(h, "<figure>{svg}</figure>");
            }
        }
        if !self.evals.is_empty() {
            let _ = writeln!(h, "<h2>Evaluations</h2>");
            for e in &self.evals {
                let _ = writeln!(h, "<h3>eval {} (model {})</h3>", escape(&e.name), escape(&e.model));
                let _ = writeln!(
                    h,
                    "<table><tr><th>set</th><th>loss</th><th>perplexity</th><th>bits/byte</th><th>tokens</th><th>bytes</th></tr>"
                );
                for m in &e.sets {
                    let _ = writeln!(
                        h,
                        "<tr><td>{}</td><td>{:.4}</td><td>{:.2}</td><td>{:.4}</td><td>{}</td><td>{}</td></tr>",
                        escape(&m.set),
                        m.loss,
                        m.ppl,
                        m.bpb,
                        m.tokens,
                        m.bytes
                    );
                }
                let _ = writeln!(h, "</table>");
            }
        }
        let _ = writeln!(h, "</body>\n</html>");
        h
    }

    fn html_changes(&self, h: &mut String) {
        let changes = self.changes();
        if changes.is_empty() {
            return;
        }
        let _ = writeln!(h, "<h2>Gain and forgetting</h2>");
        let _ = writeln!(
            h,
            "<p>Held-out bits per byte (lower is better; comparable across vocabularies).</p>\n<table><tr><th>set</th><th>role</th><th>before</th><th>after</th><th>change</th><th>from</th></tr>"
        );
        for c in &changes {
            let class = if c.after < c.before { "good" } else { "bad" };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td><td class=\"{class}\">{:+.1}%</td><td>{}</td></tr>",
                escape(&c.set),
                escape(c.role.as_deref().unwrap_or("")),
                c.before,
                c.after,
                100.0 * c.relative(),
                escape(&c.source)
            );
        }
        let _ = writeln!(h, "</table>");
        let chart = BarChart {
            title: "held-out bits per byte, before and after".into(),
            y_label: "bits per byte".into(),
            bars: vec!["before".into(), "after".into()],
            groups: changes.iter().map(|c| (c.set.clone(), vec![c.before, c.after])).collect(),
        };
        let _ = writeln!(h, "<figure>{}</figure>", chart.svg());
    }
}

const CSS: &str = "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}\
td:first-child,th:first-child{text-align:left}.good{color:#070}.bad{color:#b00}figure{margin:1em 0}\
pre{background:#f6f6f6;padding:.6em;overflow-x:auto}";

fn html_train(h: &mut String, t: &TrainReport) {
    let _ = writeln!(h, "<h2>train {}</h2>", escape(&t.name));
    if let (Some(step), Some(parent)) = (t.forked_at, t.phases.iter().rev().nth(1)) {
        let _ = writeln!(
            h,
            "<p>A fork of <b>{}</b>: it starts from that run's state after step {step} (weights, optimizer, data positions).</p>",
            escape(&parent.stage)
        );
    }
    let speed = t.tokens_per_s.map(|v| format!(", {v:.0} tokens/s")).unwrap_or_default();
    let share = t.domain_share.map(|r| format!(", domain share {:.1}%", 100.0 * r)).unwrap_or_default();
    let _ = writeln!(
        h,
        "<p>{} parameters, {} tokens in {} steps of {} tokens{share}{speed}.</p>",
        si(t.params as f64),
        si(t.tokens as f64),
        t.steps,
        si(t.tokens_per_step as f64)
    );
    let sets: Vec<&str> = {
        let mut v: Vec<&str> = t.evals.iter().map(|e| e.set.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    if !sets.is_empty() {
        let series = sets
            .iter()
            .enumerate()
            .map(|(k, set)| Series {
                label: match t.roles.get(*set) {
                    Some(role) => format!("{set} ({role})"),
                    None => (*set).to_owned(),
                },
                colour: k,
                points: t.evals.iter().filter(|e| e.set == *set).map(|e| (e.tokens as f64, e.bpb)).collect(),
                dashed: false,
                markers: true,
            })
            .collect();
        let chart = LineChart {
            title: "held-out bits per byte during training".into(),
            x_label: "training tokens".into(),
            y_label: "bits per byte".into(),
            series,
            y_range: None,
            percent: false,
        };
        let _ = writeln!(h, "<figure>{}</figure>", chart.svg());
    }
    if !t.curve.is_empty() {
        let loss = LineChart {
            title: "training loss".into(),
            x_label: "training tokens".into(),
            y_label: "loss (nats per token)".into(),
            series: vec![Series {
                label: "train loss".into(),
                colour: 0,
                points: t.curve.iter().map(|p| (p.tokens as f64, p.loss)).collect(),
                dashed: false,
                markers: t.curve.len() <= 64,
            }],
            y_range: None,
            percent: false,
        };
        let lr = LineChart {
            title: "learning rate".into(),
            x_label: "training tokens".into(),
            y_label: "LR".into(),
            series: vec![Series {
                label: "LR".into(),
                colour: 1,
                points: t.curve.iter().map(|p| (p.tokens as f64, p.lr)).collect(),
                dashed: false,
                markers: false,
            }],
            y_range: None,
            percent: false,
        };
        let _ = writeln!(h, "<figure>{}</figure>\n<figure>{}</figure>", loss.svg(), lr.svg());
    }
    if !t.windows.is_empty() {
        let mut roles: Vec<&str> = t.windows.iter().flat_map(|w| w.realized.keys().map(String::as_str)).collect();
        roles.sort_unstable();
        roles.dedup();
        let mid = |w: &ShareWindow| (w.start + w.end) as f64 / 2.0;
        let mut series = Vec::new();
        for (k, role) in roles.iter().enumerate() {
            series.push(Series {
                label: format!("{role} realized"),
                colour: k,
                points: t.windows.iter().map(|w| (mid(w), w.realized.get(*role).copied().unwrap_or(0.0))).collect(),
                dashed: false,
                markers: t.windows.len() <= 64,
            });
            series.push(Series {
                label: format!("{role} target"),
                colour: k,
                points: t.windows.iter().map(|w| (mid(w), w.target.get(*role).copied().unwrap_or(0.0))).collect(),
                dashed: true,
                markers: false,
            });
        }
        let chart = LineChart {
            title: "mixture: token shares per window, as drawn".into(),
            x_label: "training tokens".into(),
            y_label: "share of tokens".into(),
            series,
            y_range: Some((0.0, 1.0)),
            percent: true,
        };
        let _ = writeln!(h, "<figure>{}</figure>", chart.svg());
    }
    if !t.phases.is_empty() {
        let _ = writeln!(
            h,
            "<table><tr><th>data read: phase</th><th>corpus</th><th>tokens</th><th>documents</th><th>epochs</th></tr>"
        );
        for phase in &t.phases {
            for (corpus, read) in &phase.sources {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td></tr>",
                    escape(&phase.stage),
                    escape(corpus),
                    read.tokens,
                    read.documents,
                    read.epochs
                );
            }
        }
        let _ = writeln!(h, "</table>");
    }
}

fn html_vocab(h: &mut String, v: &VocabReport) {
    let _ = writeln!(h, "<h2>vocab {}</h2>", escape(&v.name));
    let _ = writeln!(
        h,
        "<p>{} -> {} tokens (+{}; {} used on the domain held-out text).</p>",
        v.base_vocab_size, v.expanded_vocab_size, v.n_added, v.n_used_on_domain
    );
    let _ = writeln!(
        h,
        "<table><tr><th>held-out text</th><th>tokens/byte before</th><th>after</th><th>change</th><th>tokens per CJK character</th></tr>"
    );
    for (label, c) in [("domain", &v.domain), ("general", &v.general)] {
        let cjk = if c.cjk_chars > 0 {
            format!("{:.3} -> {:.3}", c.tokens_per_cjk_char_before, c.tokens_per_cjk_char_after)
        } else {
            String::new()
        };
        let _ = writeln!(
            h,
            "<tr><td>{label}</td><td>{:.4}</td><td>{:.4}</td><td>{:+.2}%</td><td>{cjk}</td></tr>",
            c.tokens_per_byte_before,
            c.tokens_per_byte_after,
            100.0 * c.change
        );
    }
    let _ = writeln!(h, "</table>");
    if !v.examples.is_empty() {
        let _ = writeln!(
            h,
            "<p>Most used new tokens:</p>\n<table><tr><th>token</th><th>base pieces</th><th>uses</th></tr>"
        );
        for e in &v.examples {
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                escape(&format!("{:?}", e.text)),
                e.base_pieces,
                e.count
            );
        }
        let _ = writeln!(h, "</table>");
    }
}
