//! Tests of `cptc::data::pack` on real corpus slices: exact streams across epochs (nothing
//! repeated or skipped), span bookkeeping, long-context length upsampling and similarity grouping.

mod data_common;

use cptc::data::pack::{GROUP_WINDOW, Order, PackedSequence, Packer, minhash, similarity};
use cptc::data::shard::ShardReader;
use cptc::recipe::LongContext;
use data_common::{real_texts, shard_of};

fn docs_of(r: &ShardReader) -> Vec<Vec<u32>> {
    (0..r.len()).map(|i| r.read_doc(i).unwrap()).collect()
}

fn check_spans(seq: &PackedSequence, docs: &[Vec<u32>]) {
    let mut at = 0;
    for s in &seq.spans {
        assert_eq!(s.start, at);
        let d = &docs[s.doc as usize];
        let (a, b) = (s.doc_start as usize, (s.doc_start + s.len) as usize);
        assert_eq!(&seq.tokens[s.start as usize..(s.start + s.len) as usize], &d[a..b]);
        at += s.len;
    }
    assert_eq!(at as usize, seq.tokens.len());
}

/// The stream seen by training (first sequence whole, later ones without their shared first
/// token) equals the documents concatenated in each epoch's order.
#[test]
fn stream_is_exact_across_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = shard_of(tmp.path(), "poetry", &real_texts("zh_poetry", 120));
    let docs = docs_of(&shard);
    let total: usize = docs.iter().map(Vec::len).sum();
    let mut p = Packer::new(shard, "poetry", 100, Order::Shuffled { seed: 7, long_context: None }).unwrap();
    let mut expect: Vec<u32> = p.order().unwrap().iter().flat_map(|&d| docs[d as usize].clone()).collect();
    let mut stream: Vec<u32> = Vec::new();
    let mut orders = vec![p.order().unwrap().to_vec()];
    while stream.len() < total * 2 + 500 {
        let s = p.next_sequence(true).unwrap().unwrap();
        assert_eq!(s.tokens.len(), 101);
        check_spans(&s, &docs);
        let skip = usize::from(!stream.is_empty());
        stream.extend_from_slice(&s.tokens[skip..]);
        if orders.last().unwrap() != p.order().unwrap() {
            orders.push(p.order().unwrap().to_vec());
            expect.extend(p.order().unwrap().iter().flat_map(|&d| docs[d as usize].clone()));
        }
    }
    assert!(orders.len() >= 3, "went through several epochs");
    assert_ne!(orders[0], orders[1], "each epoch has its own shuffle");
    assert_eq!(&stream[..], &expect[..stream.len()]);
}

#[test]
fn without_repeat_the_source_ends_and_stays_put() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = shard_of(tmp.path(), "hpo", &real_texts("hpo", 50));
    let tokens = shard.num_tokens();
    let mut p = Packer::new(shard, "hpo", 64, Order::Sequential).unwrap();
    let mut n = 0u64;
    while p.next_sequence(false).unwrap().is_some() {
        n += 1;
    }
    // Every full window of 65 tokens (stride 64) was produced.
    assert_eq!(n, (tokens - 1) / 64);
    let c = p.cursor();
    assert!(p.next_sequence(false).unwrap().is_none());
    assert_eq!(p.cursor(), c);
    // Allowing repetition continues from the same place.
    let s = p.next_sequence(true).unwrap().unwrap();
    assert_eq!(s.epoch, 0);
    assert_eq!(p.cursor().epoch, 1);
}

#[test]
fn restore_reproduces_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = shard_of(tmp.path(), "news", &real_texts("zh_news", 60));
    let mut a = Packer::new(shard, "news", 128, Order::Shuffled { seed: 3, long_context: None }).unwrap();
    let mut saved = None;
    let mut tail = Vec::new();
    for i in 0..400 {
        if i == 137 {
            saved = Some(a.cursor());
        }
        let s = a.next_sequence(true).unwrap().unwrap();
        if i >= 137 {
            tail.push(s);
        }
    }
    let shard = ShardReader::open(&tmp.path().join("news")).unwrap();
    let mut b = Packer::new(shard, "news", 128, Order::Shuffled { seed: 3, long_context: None }).unwrap();
    let c: cptc::data::pack::Cursor = serde_json::from_str(&serde_json::to_string(&saved.unwrap()).unwrap()).unwrap();
    b.restore(c).unwrap();
    for want in tail {
        assert_eq!(b.next_sequence(true).unwrap().unwrap(), want);
    }
}

fn lc(keep_short: f64, group: bool) -> LongContext {
    LongContext { target_len: 2048, group_similar: group, short_below: 256, keep_short, rope_theta: None }
}

/// Short documents survive with probability `keep_short`, long ones always; the choice is
/// deterministic and differs per epoch.
#[test]
fn long_context_keeps_short_documents_at_the_given_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let mut texts = real_texts("hpo", 2000);
    texts.extend(real_texts("austen", 20));
    let shard = shard_of(tmp.path(), "mixed", &texts);
    let short = (0..shard.len()).filter(|&i| shard.doc_len(i) < 256).count();
    let long = shard.len() - short;
    let mut p =
        Packer::new(shard, "mixed", 2048, Order::Shuffled { seed: 1, long_context: Some(lc(0.1, false)) }).unwrap();
    let order = p.order().unwrap().to_vec();
    let kept_short = order.iter().filter(|&&d| p.shard().doc_len(d as usize) < 256).count();
    let kept_long = order.len() - kept_short;
    assert_eq!(kept_long, long);
    let rate = kept_short as f64 / short as f64;
    assert!((0.08..0.12).contains(&rate), "kept {kept_short} of {short} short documents");
    let shard = ShardReader::open(&tmp.path().join("mixed")).unwrap();
    let mut q =
        Packer::new(shard, "mixed", 2048, Order::Shuffled { seed: 1, long_context: Some(lc(0.1, false)) }).unwrap();
    assert_eq!(order, q.order().unwrap());
}

/// With grouping, neighbours in the order mostly come from the same real corpus; a plain
/// shuffle mixes them.
#[test]
fn grouping_puts_similar_documents_together() {
    let tmp = tempfile::tempdir().unwrap();
    let mut texts = Vec::new();
    let mut label = Vec::new();
    for (i, (name, n)) in [("zh_poetry", 150), ("hpo", 150), ("pycode", 40), ("zh_reviews", 150)].iter().enumerate() {
        let t = real_texts(name, *n);
        label.extend(std::iter::repeat_n(i, t.len()));
        texts.extend(t);
    }
    let shard = shard_of(tmp.path(), "mixed", &texts);
    let same = |order: &[u32]| {
        let pairs = order.windows(2).filter(|w| label[w[0] as usize] == label[w[1] as usize]).count();
        pairs as f64 / (order.len() - 1) as f64
    };
    let mut grouped =
        Packer::new(shard, "mixed", 4096, Order::Shuffled { seed: 5, long_context: Some(lc(1.0, true)) }).unwrap();
    let order = grouped.order().unwrap().to_vec();
    assert_eq!(order.len(), texts.len(), "every document visited once");
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..texts.len() as u32).collect::<Vec<_>>());
    let shard = ShardReader::open(&tmp.path().join("mixed")).unwrap();
    let mut plain = Packer::new(shard, "mixed", 4096, Order::Shuffled { seed: 5, long_context: None }).unwrap();
    let (g, s) = (same(&order), same(plain.order().unwrap()));
    eprintln!("same-corpus neighbours: grouped {g:.2}, shuffled {s:.2}");
    // Not higher: the groups come in runs of one or two sequences, in a shuffled order (see
    // the next test), and a run's neighbour across its boundary is often of another corpus.
    assert!(g > 0.8 && s < 0.45, "same-corpus neighbours: grouped {g:.2}, shuffled {s:.2}");
}

/// Grouping keeps each corpus' share along the order: similar documents share sequences, but
/// the chain's runs come in a shuffled order, so no stretch of training is one corpus only.
#[test]
fn grouping_keeps_the_corpora_spread_over_the_order() {
    let tmp = tempfile::tempdir().unwrap();
    let mut texts = real_texts("hpo", 1500);
    let english = texts.len();
    texts.extend(real_texts("zh_poetry", 1500));
    let shard = shard_of(tmp.path(), "two", &texts);
    let mut grouped =
        Packer::new(shard, "two", 512, Order::Shuffled { seed: 3, long_context: Some(lc(1.0, true)) }).unwrap();
    let order = grouped.order().unwrap().to_vec();
    let len = |d: u32| u64::from(grouped.shard().doc_len(d as usize));
    let share = |part: &[u32]| {
        let zh: u64 = part.iter().filter(|&&d| d as usize >= english).map(|&d| len(d)).sum();
        zh as f64 / part.iter().map(|&d| len(d)).sum::<u64>() as f64
    };
    let whole = share(&order);
    let quarters: Vec<f64> = order.chunks(order.len().div_ceil(4)).map(share).collect();
    eprintln!("Chinese share {whole:.2} overall, by quarter {quarters:.2?}");
    assert!(
        quarters.iter().all(|q| (q - whole).abs() < 0.15),
        "Chinese share {whole:.2} overall, by quarter {quarters:.2?}"
    );
    // And neighbours are still mostly of one language.
    let same = order.windows(2).filter(|w| (w[0] as usize >= english) == (w[1] as usize >= english)).count();
    assert!(same as f64 > 0.9 * (order.len() - 1) as f64, "{same} of {} neighbours of one language", order.len() - 1);
}

#[test]
fn minhash_estimates_overlap() {
    let a: Vec<u32> = (0..400).collect();
    let b: Vec<u32> = (0..400).map(|x| if x % 50 == 0 { 9999 } else { x }).collect();
    let c: Vec<u32> = (1000..1400).collect();
    assert!(similarity(&minhash(&a), &minhash(&b)) > 0.5);
    assert!(similarity(&minhash(&a), &minhash(&c)) < 0.2);
    assert_eq!(similarity(&minhash(&a), &minhash(&a)), 1.0);
}

#[test]
fn refused_lengths() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = shard_of(tmp.path(), "hpo", &real_texts("hpo", 3));
    let e = Packer::new(shard, "hpo", 0, Order::Sequential).err().unwrap();
    insta::assert_snapshot!(data_common::render(&e));
}

/// A source whose every document is short, with none kept: an error naming the corpus, not
/// an endless search for tokens.
#[test]
fn nothing_kept_is_an_error_naming_the_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = shard_of(tmp.path(), "hpo", &real_texts("hpo", 50));
    assert!((0..shard.len()).all(|i| shard.doc_len(i) < 256), "HPO definitions are short");
    let mut p =
        Packer::new(shard, "hpo", 2048, Order::Shuffled { seed: 1, long_context: Some(lc(0.0, false)) }).unwrap();
    let e = p.next_sequence(true).err().unwrap();
    insta::assert_snapshot!(data_common::render(&e));
}

/// Past [`GROUP_WINDOW`] documents, grouping reorders each window of the shuffled order on its
/// own (memory stays bounded), and a bucket holding tens of thousands of copies of one document
/// is walked in linear time (the walk used to rescan whole buckets at every step).
#[test]
fn grouping_works_window_by_window_and_through_a_huge_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let real = real_texts("hpo", 2_000);
    // Half of the documents are one and the same: every band of them shares one bucket.
    let n = GROUP_WINDOW + 4_000;
    let texts: Vec<String> =
        (0..n).map(|i| if i % 2 == 0 { real[0].clone() } else { real[i % real.len()].clone() }).collect();
    let shard = shard_of(tmp.path(), "many", &texts);
    let open = |group| {
        let shard = ShardReader::open(&tmp.path().join("many")).unwrap();
        Packer::new(shard, "many", 4096, Order::Shuffled { seed: 9, long_context: Some(lc(1.0, group)) }).unwrap()
    };
    drop(shard);
    let (g, p) = (open(true).order().unwrap().to_vec(), open(false).order().unwrap().to_vec());
    let (g, p) = (&g[..], &p[..]);
    assert_eq!(g.len(), n);
    // Windows are grouped as packing reaches them: the documents packed come in the order
    // grouped all at once.
    let mut lazy = open(true);
    let mut packed: Vec<u32> = Vec::new();
    while let Some(seq) = lazy.next_sequence(false).unwrap() {
        for span in &seq.spans {
            if packed.last() != Some(&(span.doc as u32)) {
                packed.push(span.doc as u32);
            }
        }
    }
    assert_eq!(packed, g[..packed.len()], "packed in another order than grouped up front");
    assert!(packed.len() > GROUP_WINDOW, "packed {} documents, within the first window", packed.len());
    assert_ne!(g, p, "grouping reordered");
    for (gw, pw) in g.chunks(GROUP_WINDOW).zip(p.chunks(GROUP_WINDOW)) {
        let (mut a, mut b) = (gw.to_vec(), pw.to_vec());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "each window holds the same documents as the shuffle's window");
    }
    // The copies end up side by side: far more neighbouring pairs of them than a shuffle gives.
    let copies = |order: &[u32]| order.windows(2).filter(|w| w[0] % 2 == 0 && w[1] % 2 == 0).count();
    assert!(2 * copies(g) > 3 * copies(p), "grouped {} vs shuffled {}", copies(g), copies(p));
}
