//! The expansion report: tokens per byte and per character on domain and general held-out text,
//! before and after, with example tokens; serde JSON for machines, `Display` for people.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::base::{BaseTokenizer, new_tokens, token_text};
use super::error::VocabError;
use super::select::{SurfaceLens, attribute, count_new, encode_all};
use crate::data::encoder::Encoder;

/// Compression of one text set under the base and the expanded tokenizer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Compression {
    pub n_texts: usize,
    pub bytes: u64,
    pub chars: u64,
    pub tokens_before: u64,
    pub tokens_after: u64,
    pub tokens_per_byte_before: f64,
    pub tokens_per_byte_after: f64,
    pub tokens_per_char_before: f64,
    pub tokens_per_char_after: f64,
    /// Characters that are CJK ideographs, and tokens per such character (0 without any): the
    /// figure usually quoted for Chinese.
    pub cjk_chars: u64,
    pub tokens_per_cjk_char_before: f64,
    pub tokens_per_cjk_char_after: f64,
    /// `tokens_after / tokens_before - 1`: -0.5 means half the tokens.
    pub change: f64,
}

/// One new token seen on the domain held-out text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Example {
    pub id: u32,
    pub text: String,
    /// Base tokens the same text took where it appeared.
    pub base_pieces: u64,
    pub count: u64,
}

/// What vocabulary expansion did, measured on held-out text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub base_vocab_size: usize,
    pub expanded_vocab_size: usize,
    pub n_added: usize,
    /// New tokens that occur at least once in the domain held-out text.
    pub n_used_on_domain: usize,
    pub domain: Compression,
    pub general: Compression,
    /// The most frequent new tokens on the domain held-out text.
    pub examples: Vec<Example>,
}

/// Measures `expanded` against `base` (both `tokenizer.json` paths) on held-out `domain` and
/// `general` texts and lists the `n_examples` most frequent new tokens on the domain text.
pub fn report<S: AsRef<str> + Sync>(
    base: &Path,
    expanded: &Path,
    domain: &[S],
    general: &[S],
    n_examples: usize,
) -> Result<Report, VocabError> {
    let base_tok = BaseTokenizer::load(base)?;
    let new_tok = BaseTokenizer::load(expanded)?;
    let new_tokens = new_tokens(&base_tok, &new_tok)?;
    let dense_first = new_tokens.first().map_or(base_tok.next_id, |(id, _)| *id);
    let dense: Vec<String> = new_tokens.iter().map(|(_, t)| t.clone()).collect();
    let contiguous =
        new_tokens.iter().enumerate().all(|(i, (id, _))| u64::from(*id) == u64::from(dense_first) + i as u64);
    if !contiguous {
        return Err(VocabError::NotAnExtension {
            base: base.to_path_buf(),
            new: expanded.to_path_buf(),
            message: "the new ids are not one contiguous block".to_string(),
        });
    }

    let domain: Vec<&str> = domain.iter().map(AsRef::as_ref).collect();
    let general: Vec<&str> = general.iter().map(AsRef::as_ref).collect();
    let (base_enc, new_enc) = (base_tok.encoder(), new_tok.encoder());
    let (domain_c, before, after) = compression(&base_enc, &new_enc, &domain)?;
    let (general_c, _, _) = compression(&base_enc, &new_enc, &general)?;

    let counts = count_new(&after, dense_first, dense.len());
    let lens = SurfaceLens::new(&base_tok);
    let mut pieces = vec![0u64; dense.len()];
    for (b, a) in before.iter().zip(&after) {
        attribute(b, a, dense_first, &lens, &dense, |i, n| pieces[i] = n);
    }
    let mut order: Vec<usize> = (0..dense.len()).filter(|&i| counts[i] > 0).collect();
    order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
    let examples = order
        .iter()
        .take(n_examples)
        .map(|&i| Example {
            id: dense_first + i as u32,
            text: token_text(&dense[i]),
            base_pieces: pieces[i],
            count: counts[i],
        })
        .collect();
    Ok(Report {
        base_vocab_size: base_tok.tokenizer.get_vocab_size(true),
        expanded_vocab_size: new_tok.tokenizer.get_vocab_size(true),
        n_added: dense.len(),
        n_used_on_domain: order.len(),
        domain: domain_c,
        general: general_c,
        examples,
    })
}

type Encodings = Vec<Vec<u32>>;

fn compression(
    base: &Encoder,
    new: &Encoder,
    texts: &[&str],
) -> Result<(Compression, Encodings, Encodings), VocabError> {
    let before = encode_all(base, texts)?;
    let after = encode_all(new, texts)?;
    let bytes: u64 = texts.iter().map(|t| t.len() as u64).sum();
    let chars: u64 = texts.iter().map(|t| t.chars().count() as u64).sum();
    let cjk_chars: u64 = texts.iter().map(|t| t.chars().filter(|&c| is_cjk(c)).count() as u64).sum();
    let tokens_before: u64 = before.iter().map(|e| e.len() as u64).sum();
    let tokens_after: u64 = after.iter().map(|e| e.len() as u64).sum();
    let per = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let c = Compression {
        n_texts: texts.len(),
        bytes,
        chars,
        tokens_before,
        tokens_after,
        tokens_per_byte_before: per(tokens_before, bytes),
        tokens_per_byte_after: per(tokens_after, bytes),
        tokens_per_char_before: per(tokens_before, chars),
        tokens_per_char_after: per(tokens_after, chars),
        cjk_chars,
        tokens_per_cjk_char_before: per(tokens_before, cjk_chars),
        tokens_per_cjk_char_after: per(tokens_after, cjk_chars),
        change: per(tokens_after, tokens_before) - 1.0,
    };
    Ok((c, before, after))
}

/// CJK unified ideographs (the basic block, extensions A and B, compatibility ideographs).
fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{20000}'..='\u{2A6DF}' | '\u{F900}'..='\u{FAFF}')
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.4} -> {:.4} tokens/char, {:.4} -> {:.4} tokens/byte ({:+.2}% tokens; {} texts, {} chars)",
            self.tokens_per_char_before,
            self.tokens_per_char_after,
            self.tokens_per_byte_before,
            self.tokens_per_byte_after,
            self.change * 100.0,
            self.n_texts,
            self.chars,
        )?;
        if self.cjk_chars > 0 {
            write!(
                f,
                "; {:.4} -> {:.4} tokens per CJK character",
                self.tokens_per_cjk_char_before, self.tokens_per_cjk_char_after
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "vocabulary {} -> {} (+{} tokens, {} used on the domain held-out text)",
            self.base_vocab_size, self.expanded_vocab_size, self.n_added, self.n_used_on_domain
        )?;
        writeln!(f, "domain held-out:  {}", self.domain)?;
        writeln!(f, "general held-out: {}", self.general)?;
        if !self.examples.is_empty() {
            let shown: Vec<String> =
                self.examples.iter().map(|e| format!("{:?} ({} -> 1, x{})", e.text, e.base_pieces, e.count)).collect();
            writeln!(f, "most used new tokens: {}", shown.join(", "))?;
        }
        Ok(())
    }
}

/// Serializes a duration as seconds (f64).
pub(crate) fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
