//! Tests of `cptc::data::mixture` on real corpus shards: per-window shares on a ramp, weights
//! within a part, determinism, exact resume through a JSON round-trip, epochs and exhaustion.

mod data_common;

use std::path::Path;

use cptc::data::mixture::{Sampled, Sampler, SamplerConfig, SamplerEvent, SamplerState, Source};
use cptc::data::shard::ShardReader;
use cptc::recipe::{Mixture, Origin, Part, Ramp, RampShape, Role};
use cptc::source::{FileId, Span};
use data_common::{real_texts, render, shard_of};

const SEQ: u64 = 128;

/// Shards: general = austen + mobydick, domain = hpo, sft = pydocs (slices).
fn build(dir: &Path) {
    shard_of(dir, "austen", &real_texts("austen", 40));
    shard_of(dir, "mobydick", &real_texts("mobydick", 30));
    shard_of(dir, "hpo", &real_texts("hpo", 3000));
    shard_of(dir, "pydocs", &real_texts("pydocs", 30));
}

fn sources(dir: &Path) -> Vec<Source> {
    ["austen", "mobydick", "hpo", "pydocs"]
        .iter()
        .map(|n| Source {
            corpus: n.to_string(),
            shard: ShardReader::open(&dir.join(n)).unwrap(),
            skip: Vec::new(),
            continues: None,
        })
        .collect()
}

fn mixture(ramp: Option<Ramp>, repeat: bool) -> Mixture {
    let part =
        |role, corpora: &[&str], share| Part { role, corpora: corpora.iter().map(|c| c.to_string()).collect(), share };
    Mixture {
        name: "cpt".into(),
        parts: vec![
            part(Role::General, &["austen", "mobydick"], 0.6),
            part(Role::Domain, &["hpo"], 0.3),
            part(Role::Sft, &["pydocs"], 0.1),
        ],
        ramp,
        repeat,
        origin: Origin { file: FileId(0), span: Span::default() },
    }
}

fn ramp() -> Ramp {
    Ramp { shape: RampShape::Cosine, from: 0.05, to: 0.3, window: (0.1, 0.8) }
}

fn config(sequences: u64, seed: u64) -> SamplerConfig {
    SamplerConfig {
        mixture: mixture(Some(ramp()), true),
        domain_share: None,
        total_tokens: sequences * SEQ,
        origin: 0,
        seq_len: SEQ,
        seed,
        long_context: None,
        window: 1000,
    }
}

fn run(s: &mut Sampler, n: u64) -> Vec<Sampled> {
    (0..n).map(|_| s.next_sequence().unwrap()).collect()
}

fn windows(events: &[SamplerEvent]) -> Vec<&cptc::data::mixture::WindowStats> {
    events.iter().filter_map(|e| if let SamplerEvent::Window(w) = e { Some(w) } else { None }).collect()
}

#[test]
fn every_window_tracks_the_ramp() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let n = 8000;
    let mut s = Sampler::new(config(n, 1), sources(tmp.path())).unwrap();
    let out = run(&mut s, n);
    let events = s.drain_events();
    let ws = windows(&events);
    assert_eq!(ws.len(), 8);
    let r = ramp();
    for w in &ws {
        // The recorded target is the ramp averaged over the window's sequences.
        let mean_dom: f64 =
            (w.start..w.start + w.sequences).map(|i| r.share_at(i as f64 / n as f64)).sum::<f64>() / w.sequences as f64;
        assert!((w.target["domain"] - mean_dom).abs() < 1e-6, "{w:?}");
        for role in ["general", "domain", "sft"] {
            let err = (w.realized[role] - w.target[role]).abs();
            assert!(
                err < 0.01,
                "window at {}: {role} realized {} target {}",
                w.start,
                w.realized[role],
                w.target[role]
            );
        }
        // Non-domain parts keep their 6:1 proportion.
        let ratio = w.target["general"] / w.target["sft"];
        assert!((ratio - 6.0).abs() < 1e-6);
    }
    assert!(ws[0].target["domain"] < 0.06 && ws[7].target["domain"] > 0.29);
    // Tokens, not sequences, are what the shares count: every sequence has SEQ + 1 tokens.
    assert!(out.iter().all(|x| x.seq.tokens.len() == SEQ as usize + 1));

    // Within the general part, corpora follow their token counts.
    let src = sources(tmp.path());
    let (ta, tm) = (src[0].shard.num_tokens() as f64, src[1].shard.num_tokens() as f64);
    let na = out.iter().filter(|x| x.corpus == 0).count() as f64;
    let nm = out.iter().filter(|x| x.corpus == 1).count() as f64;
    assert!((na / (na + nm) - ta / (ta + tm)).abs() < 0.005, "austen {na}, mobydick {nm}");
    // Corpora that ran out started new epochs, and said so.
    assert!(
        events.iter().any(|e| matches!(e, SamplerEvent::NewEpoch { corpus, epoch: 1, .. } if corpus == "mobydick"))
    );
}

#[test]
fn domain_share_override_replaces_the_ramp_end() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let mut cfg = config(3000, 1);
    cfg.domain_share = Some(0.5);
    let mut s = Sampler::new(cfg, sources(tmp.path())).unwrap();
    run(&mut s, 3000);
    let events = s.drain_events();
    let last = windows(&events)[2];
    assert!((last.target["domain"] - 0.5).abs() < 0.02, "{last:?}");
    assert!((last.realized["domain"] - last.target["domain"]).abs() < 0.01);
}

#[test]
fn deterministic_for_a_seed() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let a = run(&mut Sampler::new(config(5000, 11), sources(tmp.path())).unwrap(), 400);
    let b = run(&mut Sampler::new(config(5000, 11), sources(tmp.path())).unwrap(), 400);
    assert_eq!(a, b);
    let c = run(&mut Sampler::new(config(5000, 12), sources(tmp.path())).unwrap(), 400);
    // The same sources are chosen (shares do not depend on the seed) but with other documents.
    assert!(a.iter().zip(&c).all(|(x, y)| x.corpus == y.corpus));
    assert!(a.iter().zip(&c).filter(|(x, y)| x.seq.tokens != y.seq.tokens).count() > 300);
}

#[test]
fn resumes_exactly_from_any_step() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let mut a = Sampler::new(config(5000, 3), sources(tmp.path())).unwrap();
    let head = run(&mut a, 1234);
    let saved = serde_json::to_string(&a.state()).unwrap();
    let tail = run(&mut a, 1766);
    let state: SamplerState = serde_json::from_str(&saved).unwrap();
    assert!(saved.len() < 2000, "state is small: {} bytes", saved.len());
    let mut b = Sampler::resume(config(5000, 3), sources(tmp.path()), state).unwrap();
    assert_eq!(b.position(), 1234);
    let tail_b = run(&mut b, 1766);
    assert_eq!(tail, tail_b);
    assert_eq!(a.state(), b.state());
    assert_eq!(head.last().unwrap().index + 1, tail_b[0].index);

    // The same state refused for another seed or mixture.
    let state: SamplerState = serde_json::from_str(&saved).unwrap();
    let e = Sampler::resume(config(5000, 4), sources(tmp.path()), state).err().unwrap();
    insta::assert_snapshot!(render(&e));
}

#[test]
fn exhaustion_without_repeat_fails_naming_the_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let mut cfg = config(20_000, 1);
    cfg.mixture = mixture(None, false);
    let mut s = Sampler::new(cfg, sources(tmp.path())).unwrap();
    let e = loop {
        match s.next_sequence() {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    insta::assert_snapshot!(render(&e));
}

#[test]
fn refused_mixtures() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let mut out = String::new();
    let mut cfg = config(1000, 1);
    cfg.mixture.parts[1].corpora = vec!["missing".into()];
    out.push_str(&render(&Sampler::new(cfg, sources(tmp.path())).err().unwrap()));
    let mut cfg = config(1000, 1);
    cfg.mixture.parts.iter_mut().for_each(|p| p.share = 0.0);
    out.push_str(&render(&Sampler::new(cfg, sources(tmp.path())).err().unwrap()));
    let mut cfg = config(1000, 1);
    cfg.domain_share = Some(1.5);
    out.push_str(&render(&Sampler::new(cfg, sources(tmp.path())).err().unwrap()));
    insta::assert_snapshot!(out);
}
