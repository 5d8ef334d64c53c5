//! Tests of `cptc::data::split` on real documents: determinism, the fraction's and the count's
//! behaviour when documents are appended, duplicates, and refused settings.

mod data_common;

use std::collections::BTreeSet;

use cptc::data::split::{Split, SplitRule, doc_hash, pieces, split};
use cptc::recipe::Heldout;
use data_common::{real_texts, render};

fn texts() -> Vec<String> {
    let mut t = real_texts("hpo", 1500);
    t.extend(real_texts("zh_reviews", 500));
    t
}

fn sides(texts: &[String], s: &Split) -> (BTreeSet<String>, BTreeSet<String>) {
    (s.train.iter().map(|&i| texts[i].clone()).collect(), s.heldout.iter().map(|&i| texts[i].clone()).collect())
}

#[test]
fn fraction_is_deterministic_and_about_right() {
    let t = texts();
    let a = split(&t, Heldout::Fraction(0.1)).unwrap();
    assert_eq!(a, split(&t, Heldout::Fraction(0.1)).unwrap());
    let share = a.heldout.len() as f64 / t.len() as f64;
    assert!((0.08..0.12).contains(&share), "held-out share {share}");
    assert_eq!(a.train.len() + a.heldout.len(), t.len());
    // Order does not matter: reversing the corpus gives the same sides.
    let rev: Vec<String> = t.iter().rev().cloned().collect();
    assert_eq!(sides(&t, &a), sides(&rev, &split(&rev, Heldout::Fraction(0.1)).unwrap()));
}

#[test]
fn fraction_is_stable_when_appending() {
    let all = texts();
    let (old, _) = all.split_at(1200);
    let (tr_old, ho_old) = sides(old, &split(old, Heldout::Fraction(0.1)).unwrap());
    let (tr_all, ho_all) = sides(&all, &split(&all, Heldout::Fraction(0.1)).unwrap());
    assert!(tr_old.is_subset(&tr_all));
    assert!(ho_old.is_subset(&ho_all));
}

#[test]
fn count_is_exact_and_never_moves_train_to_heldout() {
    let all = texts();
    let old = &all[..1200];
    let s_old = split(old, Heldout::Docs(50)).unwrap();
    let s_all = split(&all, Heldout::Docs(50)).unwrap();
    assert_eq!(s_old.heldout.len(), 50);
    assert_eq!(s_all.heldout.len(), 50);
    let (tr_old, ho_old) = sides(old, &s_old);
    let (tr_all, ho_all) = sides(&all, &s_all);
    // The guarantee: nothing a model trained on becomes evaluation data.
    assert!(tr_old.is_subset(&tr_all));
    // Held-out documents that left were displaced by new ones with smaller hashes.
    let left: Vec<&String> = ho_old.difference(&ho_all).collect();
    let entered: Vec<&String> = ho_all.difference(&ho_old).collect();
    assert_eq!(left.len(), entered.len());
    assert!(entered.iter().all(|t| !old.contains(t)));
    let max_new = entered.iter().map(|t| doc_hash(t)).max();
    let min_left = left.iter().map(|t| doc_hash(t)).min();
    if let (Some(a), Some(b)) = (max_new, min_left) {
        assert!(a < b);
    }
}

#[test]
fn duplicates_share_a_side() {
    let mut t = real_texts("zh_poetry", 300);
    let dup = t[..150].to_vec();
    t.extend(dup);
    for h in [Heldout::Fraction(0.2), Heldout::Docs(30)] {
        let s = split(&t, h).unwrap();
        let (tr, ho) = sides(&t, &s);
        assert!(tr.is_disjoint(&ho), "{h:?}");
    }
    // Thirty distinct texts held out, copies included.
    let s = split(&t, Heldout::Docs(30)).unwrap();
    let distinct: BTreeSet<&String> = s.heldout.iter().map(|&i| &t[i]).collect();
    assert_eq!(distinct.len(), 30);
}

#[test]
fn streaming_rule_agrees_with_split() {
    let t = texts();
    let hashes: Vec<[u8; 32]> = t.iter().map(|x| doc_hash(x)).collect();
    for h in [Heldout::Fraction(0.05), Heldout::Docs(7), Heldout::Fraction(0.0), Heldout::Docs(0)] {
        let rule = SplitRule::new(h, &hashes).unwrap();
        let held: Vec<usize> = (0..t.len()).filter(|&i| rule.is_heldout(&hashes[i])).collect();
        assert_eq!(held, split(&t, h).unwrap().heldout, "{h:?}");
    }
}

#[test]
fn refused_settings() {
    let t = real_texts("austen", 5);
    let mut out = String::new();
    for h in [Heldout::Fraction(1.0), Heldout::Fraction(-0.1), Heldout::Docs(5)] {
        out.push_str(&render(&split(&t, h).unwrap_err()));
    }
    insta::assert_snapshot!(out);
}

#[test]
fn long_heldout_documents_become_pieces_at_breaks() {
    // Real novels (chapters of 10-60 KB) and Chinese text (multi-byte characters).
    let mut docs = real_texts("austen", 3);
    docs.extend(real_texts("zh_news", 3));
    for doc in &docs {
        let parts = pieces(doc, 4096);
        assert_eq!(parts.concat(), *doc, "pieces concatenate to the document");
        assert!(parts.iter().all(|p| p.len() <= 4096 && !p.is_empty()));
        if doc.len() > 4096 {
            assert!(parts.len() > 1);
        }
        // English prose has breaks everywhere: every cut but the last ends at one.
        if doc.is_ascii() {
            for p in &parts[..parts.len() - 1] {
                assert!(p.ends_with('\n') || p.ends_with(' '), "{:?}", &p[p.len() - 40..]);
            }
        }
    }
    assert_eq!(pieces("short", 4096), vec!["short"]);
    assert_eq!(pieces("", 4096), vec![""]);
    // No break at all: cut at a character boundary.
    let han = "诗".repeat(3000);
    let parts = pieces(&han, 4096);
    assert_eq!(parts.concat(), han);
    assert!(parts.iter().all(|p| p.len() <= 4096 && p.len() % 3 == 0));
}

/// The normalization `doc_hash` promises, written the obvious way.
fn normalized_hash(text: &str) -> [u8; 32] {
    *blake3::hash(text.split_whitespace().collect::<Vec<_>>().join(" ").as_bytes()).as_bytes()
}

#[test]
fn the_hash_is_of_the_words_joined_by_one_space() {
    let mut cases: Vec<String> = Vec::new();
    for corpus in ["austen", "hpo", "mobydick", "pycode", "pydocs", "zh_man", "zh_news", "zh_poetry", "zh_reviews"] {
        cases.extend(real_texts(corpus, 300));
    }
    // Every White_Space character, between words, leading, trailing and doubled; characters
    // whose UTF-8 starts like a space's but is none (U+00A1, U+1681, U+2030, U+205E, U+3001).
    let spaces: Vec<char> = (0..=0x3000u32).filter_map(char::from_u32).filter(|c| c.is_whitespace()).collect();
    assert_eq!(spaces.len(), 25, "{spaces:?}");
    for s in &spaces {
        cases.push(format!("{s}a{s}{s}b{s}"));
        cases.push(format!("x{s}\u{a1}\u{1681}\u{2030}\u{205e}\u{3001}{s}y"));
    }
    // Each of them at every offset of the sixteen- and eight-byte blocks the scan skips, alone,
    // after an ASCII space and doubled, inside text long enough for several blocks.
    for s in spaces.iter().chain([&'\u{a1}', &'\u{3001}']) {
        for k in 0..36 {
            let (head, tail) = ("word ".repeat(8)[..k].to_string(), "abc de fghij klm".repeat(3));
            cases.push(format!("{head}{s}{tail}"));
            cases.push(format!("{head} {s}{tail}"));
            cases.push(format!("{head}{s}{s}{tail}"));
        }
    }
    cases.extend(["", " ", "\r\n", "a", " a ", "a\r\nb", "\u{85}\u{a0}"].map(String::from));
    cases.push(format!("{} tail", "w".repeat(40_000)));
    for text in &cases {
        assert_eq!(doc_hash(text), normalized_hash(text), "{:?}", text.chars().take(80).collect::<String>());
    }
}
