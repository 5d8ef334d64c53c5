//! Shared helpers of the `data_*` tests: corpus builders, slices of the real corpora, tokenizers.
#![allow(dead_code, unreachable_pub)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cptc::data::shard::ShardReader;
use cptc::data::tokenize::{Encoder, TokenizeOptions, eos_token, load_tokenizer, tokenize_corpus};
use cptc::recipe::{Corpus, Format, Heldout, Origin, TextSource};
use cptc::source::{FileId, Span};
use miette::{GraphicalReportHandler, GraphicalTheme};

pub fn corpus(name: &str, files: Vec<PathBuf>, format: Format, text: TextSource) -> Corpus {
    Corpus {
        name: name.to_string(),
        patterns: files.iter().map(|f| f.display().to_string()).collect(),
        files,
        format,
        text,
        heldout: Heldout::Fraction(0.0),
        split_by: None,
        strict: false,
        max_epochs: cptc::recipe::DEFAULT_MAX_EPOCHS,
        origin: Origin { file: FileId(0), span: Span::default() },
    }
}

pub fn field(name: &str) -> TextSource {
    TextSource::Field(name.to_string())
}

/// Path of a real corpus extracted by `scripts/setup.sh`.
pub fn real(name: &str) -> PathBuf {
    PathBuf::from("data/corpora").join(format!("{name}.jsonl"))
}

/// The first `n` raw lines of a real corpus (jsonl text).
pub fn real_lines(name: &str, n: usize) -> Vec<String> {
    let f = std::fs::File::open(real(name)).expect("run scripts/setup.sh to extract the corpora");
    std::io::BufReader::new(f).lines().take(n).map(|l| l.unwrap()).collect()
}

/// The texts of the first `n` documents of a real corpus.
pub fn real_texts(name: &str, n: usize) -> Vec<String> {
    real_lines(name, n)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().to_string()
        })
        .collect()
}

pub fn gpt2() -> &'static Encoder {
    static T: OnceLock<Encoder> = OnceLock::new();
    T.get_or_init(|| load_tokenizer(Path::new("data/tokenizers/gpt2/tokenizer.json")).unwrap())
}

pub fn qwen3() -> &'static Encoder {
    static T: OnceLock<Encoder> = OnceLock::new();
    T.get_or_init(|| load_tokenizer(Path::new("data/tokenizers/qwen3/tokenizer.json")).unwrap())
}

/// Tokenizes `texts` with GPT-2 (EOS appended) into `dir/name` and opens the shard.
pub fn shard_of(dir: &Path, name: &str, texts: &[String]) -> ShardReader {
    let prefix = dir.join(name);
    let opts = TokenizeOptions { eos: eos_token(gpt2().reference()), ..Default::default() };
    tokenize_corpus(gpt2(), name, texts, &prefix, &opts).unwrap();
    ShardReader::open(&prefix).unwrap()
}

pub fn render(e: &dyn miette::Diagnostic) -> String {
    let mut s = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(80)
        .render_report(&mut s, e)
        .unwrap();
    s
}
