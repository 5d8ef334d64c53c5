//! Benchmark of the data path at corpus scale (issue #19): generates a corpus of many jsonl
//! files from the real corpora, runs `cptc run --only tokenize:big@base --only split:big`
//! (tokenize, ingest, split straight from the files) and prints each stage's time, the whole
//! path's MB/s against the fast engine's raw encode throughput on a sample in memory (the
//! ceiling: the median of six timings, three before the path and three after), the same split
//! in CPU seconds per GB (the path's, the engine's alone, and the difference: the path's own
//! work), the run's peak RSS and the store's bytes. `scripts/bench_stream.sh` runs it.
//!
//! Usage: bench_stream --gb G [--file-mb M] [--format jsonl|gz|zst|parquet]
//!        [--tokenizer gpt2|qwen3|mistral] [--sample-mb S] [--work DIR] [--cptc PATH] [--append]
//!
//! `--format` writes the corpus as gzipped or zstd-compressed jsonl (level 6 and 3, the tools'
//! defaults) or as parquet (one `text` column, snappy, row groups of about 8 MB of text: the
//! layout of a Hugging Face dataset); each file holds the documents its jsonl would.

#[path = "../tests/rss_support/mod.rs"]
mod rss_support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cptc::data::encoder::{Encoder, Ids};
use cptc::data::tokenize::load_tokenizer;
use rayon::prelude::*;

const CORPORA: [&str; 9] =
    ["austen", "hpo", "mobydick", "pycode", "pydocs", "zh_man", "zh_news", "zh_poetry", "zh_reviews"];

/// How the corpus' files are written.
#[derive(Clone, Copy, PartialEq)]
enum Format {
    Jsonl,
    Gz,
    Zst,
    Parquet,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Gz => "jsonl.gz",
            Format::Zst => "jsonl.zst",
            Format::Parquet => "parquet",
        }
    }
}

struct Args {
    gb: f64,
    file_mb: u64,
    format: Format,
    tokenizer: String,
    sample_mb: u64,
    work: PathBuf,
    cptc: PathBuf,
    append: bool,
}

fn args() -> Args {
    let mut a = Args {
        gb: 3.0,
        file_mb: 64,
        format: Format::Jsonl,
        tokenizer: "gpt2".into(),
        sample_mb: 512,
        work: std::env::temp_dir().join("cptc-bench-stream"),
        cptc: PathBuf::from("target/release/cptc"),
        append: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| fail(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--gb" => a.gb = value().parse().unwrap_or_else(|_| fail("--gb: a number")),
            "--file-mb" => a.file_mb = value().parse().unwrap_or_else(|_| fail("--file-mb: a number")),
            "--format" => {
                a.format = match value().as_str() {
                    "jsonl" => Format::Jsonl,
                    "gz" => Format::Gz,
                    "zst" => Format::Zst,
                    "parquet" => Format::Parquet,
                    _ => fail("--format: jsonl, gz, zst or parquet"),
                }
            }
            "--tokenizer" => a.tokenizer = value(),
            "--sample-mb" => a.sample_mb = value().parse().unwrap_or_else(|_| fail("--sample-mb: a number")),
            "--work" => a.work = PathBuf::from(value()),
            "--cptc" => a.cptc = PathBuf::from(value()),
            "--append" => a.append = true,
            other => fail(&format!("unknown flag {other}")),
        }
    }
    a
}

fn fail(message: &str) -> ! {
    eprintln!("bench_stream: {message}");
    std::process::exit(2)
}

/// The real corpora's lines, interleaved so every file has a realistic mix.
fn real_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for c in CORPORA {
        let path = format!("data/corpora/{c}.jsonl");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| fail(&format!("{path}: {e} (run setup)")));
        lines.extend(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
    }
    let n = lines.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (i * 7919) % n);
    order.into_iter().map(|i| lines[i].clone()).collect()
}

/// Writes `gb` GB of jsonl into `dir` as files of `file_mb` MB, each document the real text
/// prefixed by a counter so no two are the same. Returns (files, documents, text bytes).
fn generate(dir: &Path, gb: f64, file_mb: u64, first_file: usize) -> (Vec<PathBuf>, u64, u64) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
    let texts: Vec<String> = real_lines()
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["text"].as_str().map(str::to_string)))
        .map(Option::unwrap_or_default)
        .collect();
    let total = (gb * 1e9) as u64;
    let (mut written, mut docs, mut text_bytes, mut files) = (0u64, 0u64, 0u64, Vec::new());
    while written < total {
        let path = dir.join(format!("part-{:05}.jsonl", first_file + files.len()));
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).expect("create"));
        let mut in_file = 0u64;
        while in_file < file_mb << 20 && written < total {
            let t = &texts[(docs as usize) % texts.len()];
            let text = format!("{} {}: {t}", first_file + files.len(), docs);
            let line = serde_json::json!({ "text": text }).to_string();
            out.write_all(line.as_bytes()).and_then(|()| out.write_all(b"\n")).expect("write");
            in_file += line.len() as u64 + 1;
            written += line.len() as u64 + 1;
            text_bytes += text.len() as u64;
            docs += 1;
        }
        out.flush().expect("flush");
        files.push(path);
    }
    (files, docs, text_bytes)
}

/// Rewrites each jsonl file among `files` in `format` (in parallel), removing the jsonl.
fn convert(files: &[PathBuf], format: Format) {
    if format == Format::Jsonl {
        return;
    }
    files.par_iter().for_each(|jsonl| {
        let out = jsonl.with_extension(format.extension());
        let text = std::fs::read_to_string(jsonl).expect("read");
        let create = || std::fs::File::create(&out).unwrap_or_else(|e| fail(&format!("{}: {e}", out.display())));
        match format {
            Format::Jsonl => {}
            Format::Gz => {
                let mut w = flate2::write::GzEncoder::new(create(), flate2::Compression::default());
                w.write_all(text.as_bytes()).expect("gzip");
                w.finish().expect("gzip");
            }
            Format::Zst => {
                let mut w = zstd::Encoder::new(create(), 3).expect("zstd");
                w.write_all(text.as_bytes()).expect("zstd");
                w.finish().expect("zstd");
            }
            Format::Parquet => write_parquet(&text, create()),
        }
        std::fs::remove_file(jsonl).expect("remove the jsonl");
    });
}

/// The documents of a jsonl text as parquet: one optional `text` column, snappy, a row group
/// per 8 MB of text.
fn write_parquet(jsonl: &str, file: std::fs::File) {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let schema =
        std::sync::Arc::new(parse_message_type("message schema { optional binary text (UTF8); }").expect("schema"));
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut w = SerializedFileWriter::new(file, schema, std::sync::Arc::new(props)).expect("parquet");
    let texts: Vec<String> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["text"].as_str().unwrap_or("").to_string())
        .collect();
    let mut start = 0;
    while start < texts.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < texts.len() && bytes < 8 << 20 {
            bytes += texts[end].len();
            end += 1;
        }
        let vals: Vec<ByteArray> = texts[start..end].iter().map(|t| ByteArray::from(t.as_str())).collect();
        let mut rg = w.next_row_group().expect("row group");
        let mut col = rg.next_column().expect("column").expect("text column");
        col.typed::<ByteArrayType>().write_batch(&vals, Some(&vec![1; vals.len()]), None).expect("write");
        col.close().expect("column");
        rg.close().expect("row group");
        start = end;
    }
    w.close().expect("parquet");
}

/// The first `mb` MB of the corpus' texts (its jsonl), in the stage's batches of 8 MB: what the
/// ceiling encodes.
struct Sample {
    texts: Vec<String>,
    bytes: u64,
}

impl Sample {
    fn read(corpus: &Path, mb: u64) -> Sample {
        let (mut texts, mut bytes) = (Vec::new(), 0u64);
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(corpus).expect("corpus").filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        'files: for f in files {
            for line in std::fs::read_to_string(&f).expect("read").lines() {
                let v: serde_json::Value = serde_json::from_str(line).expect("json");
                let t = v["text"].as_str().unwrap_or("").to_string();
                bytes += t.len() as u64;
                texts.push(t);
                if bytes >= mb << 20 {
                    break 'files;
                }
            }
        }
        Sample { texts, bytes }
    }

    fn batches(&self) -> Vec<Vec<&str>> {
        let mut batches: Vec<Vec<&str>> = vec![Vec::new()];
        let mut size = 0;
        for t in &self.texts {
            if size >= 8 << 20 {
                batches.push(Vec::new());
                size = 0;
            }
            size += t.len();
            batches.last_mut().expect("batch").push(t.as_str());
        }
        batches
    }

    /// The fast engine's encode MB/s over the sample, in memory, no I/O, both cores: `runs`
    /// timings, the engine's word cache warmed first as the stage's first batch warms it.
    fn encode_mbs(&self, tok: &Encoder, runs: usize) -> Vec<Run> {
        let batches = self.batches();
        batches[0].par_iter().for_each(|t| {
            tok.encode_into(t, false, &mut Ids::new()).expect("encode");
        });
        (0..runs)
            .map(|_| {
                let (start, cpu) = (Instant::now(), cpu_seconds(Whose::Own));
                let tokens: usize = batches
                    .iter()
                    .map(|b| {
                        // One id buffer per thread, reused: the engine alone, not the
                        // allocator growing a fresh buffer for every document.
                        b.par_iter()
                            .map_init(Ids::new, |ids, t| {
                                ids.clear();
                                tok.encode_into(t, false, ids).expect("encode");
                                ids.len()
                            })
                            .sum::<usize>()
                    })
                    .sum();
                let mbs = self.bytes as f64 / 1e6 / start.elapsed().as_secs_f64();
                Run { mbs, tokens, cpu_per_gb: (cpu_seconds(Whose::Own) - cpu) / (self.bytes as f64 / 1e9) }
            })
            .collect()
    }
}

fn median(mut all: Vec<f64>) -> f64 {
    all.sort_by(f64::total_cmp);
    let n = all.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        all[n / 2]
    } else {
        (all[n / 2 - 1] + all[n / 2]) / 2.0
    }
}

fn show(runs: &[Run]) -> String {
    runs.iter().map(|r| format!("{:.1}", r.mbs)).collect::<Vec<_>>().join(", ")
}

/// One timing of the raw encode: MB/s, the tokens it gave, and the CPU time it took per GB of
/// text (both cores' user and system time).
struct Run {
    mbs: f64,
    tokens: usize,
    cpu_per_gb: f64,
}

/// Whose CPU time [`cpu_seconds`] reads.
#[derive(Clone, Copy)]
enum Whose {
    /// This process' own (the raw encode's threads).
    Own,
    /// Its children's that it has waited for (the cptc run).
    Children,
}

/// User plus system CPU seconds from `/proc/self/stat` (fields 14-15, or 16-17 for the waited
/// children), in the kernel's clock ticks of 1/100 s (`USER_HZ`, 100 on every Linux this runs
/// on; reading `sysconf` would need `unsafe`). Ticks make the figure coarse (10 ms), which a run
/// of seconds on two cores does not feel.
fn cpu_seconds(whose: Whose) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name, which may hold spaces: field 3 on.
    let fields: Vec<u64> =
        stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    let at = match whose {
        Whose::Own => 11,
        Whose::Children => 13,
    };
    fields.get(at..at + 2).map_or(0.0, |f| (f[0] + f[1]) as f64 / 100.0)
}

/// Bytes under `path`, each file once however many links reach it (parts are hard-linked
/// into their artifacts).
fn du(path: &Path) -> u64 {
    fn walk(path: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
        if meta.is_dir() {
            let entries: Vec<PathBuf> =
                std::fs::read_dir(path).map_or(Vec::new(), |d| d.filter_map(Result::ok).map(|e| e.path()).collect());
            entries.iter().map(|e| walk(e, seen)).sum()
        } else if seen.insert((meta.dev(), meta.ino())) {
            meta.len()
        } else {
            0
        }
    }
    walk(path, &mut std::collections::HashSet::new())
}

/// Elapsed seconds per stage of the newest run log in the store.
fn stage_times(store: &Path) -> Vec<(String, f64)> {
    let runs = store.join("v1/runs");
    let newest = std::fs::read_dir(&runs).ok().and_then(|d| d.filter_map(Result::ok).map(|e| e.path()).max());
    let Some(log) = newest else { return Vec::new() };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "done")
        .map(|v| (v["stage"].as_str().unwrap_or("").to_string(), v["elapsed_s"].as_f64().unwrap_or(0.0)))
        .collect()
}

/// One `cptc run --only tokenize:big@base --only split:big`: (wall s, exit status, peak RSS bytes).
fn run_cptc(a: &Args) -> (f64, i32, u64, f64) {
    let (start, cpu) = (Instant::now(), cpu_seconds(Whose::Children));
    let child = std::process::Command::new(&a.cptc)
        .args(["run", "recipe.cpt", "--only", "tokenize:big@base", "--only", "split:big", "--store", "store"])
        .current_dir(&a.work)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| fail(&format!("{}: {e}", a.cptc.display())));
    let (status, rss) = rss_support::wait_peak_rss(child);
    (start.elapsed().as_secs_f64(), status, rss, cpu_seconds(Whose::Children) - cpu)
}

fn main() {
    let a = args();
    let cptc = std::fs::canonicalize(&a.cptc).unwrap_or_else(|e| fail(&format!("{}: {e}", a.cptc.display())));
    let a = Args { cptc, ..a };
    let tokenizer = std::fs::canonicalize(format!("data/tokenizers/{}/tokenizer.json", a.tokenizer))
        .unwrap_or_else(|e| fail(&format!("tokenizer {}: {e}", a.tokenizer)));
    println!(
        "machine: {} cores; corpus {:.1} GB in files of {} MB of jsonl, written as {}; tokenizer {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        a.gb,
        a.file_mb,
        a.format.extension(),
        a.tokenizer
    );
    let corpus = a.work.join("corpus");
    let sampled = if a.append {
        // One more file into the corpus of the previous run: what reruns, and how long it takes.
        let existing = std::fs::read_dir(&corpus).map_or(0, Iterator::count);
        let (files, docs, bytes) = generate(&corpus, a.file_mb as f64 / 1e3, a.file_mb, existing);
        convert(&files, a.format);
        println!("appended one file: {docs} documents, {:.0} MB of text", bytes as f64 / 1e6);
        None
    } else {
        let _ = std::fs::remove_dir_all(&a.work);
        let t = Instant::now();
        let (files, docs, bytes) = generate(&corpus, a.gb, a.file_mb, 0);
        println!(
            "generated {} files, {docs} documents, {:.2} GB of text in {:.0} s",
            files.len(),
            bytes as f64 / 1e9,
            t.elapsed().as_secs_f64()
        );
        std::fs::create_dir_all(a.work.join("hf")).expect("mkdir");
        std::fs::copy(&tokenizer, a.work.join("hf/tokenizer.json")).expect("tokenizer");
        // A tiny model whose embedding rows cover the tokenizer's ids (qwen3's reach 151,668).
        let tok = load_tokenizer(&tokenizer).unwrap_or_else(|e| fail(&e.to_string()));
        let vocab = tok.vocab_size();
        let config = format!(
            "{{\"vocab_size\": {vocab}, \"hidden_size\": 8, \"num_hidden_layers\": 2, \"intermediate_size\": 16, \"num_attention_heads\": 2}}\n"
        );
        std::fs::write(a.work.join("hf/config.json"), config).expect("config");
        let recipe = format!(
            "model base {{\n  hf = \"hf\"\n}}\ncorpus big {{\n  files = \"corpus/*.{}\"\n  heldout = 1%\n}}\neval all {{\n  model = base\n  sets = [big]\n}}\n",
            a.format.extension()
        );
        std::fs::write(a.work.join("recipe.cpt"), recipe).expect("recipe");
        // The ceiling reads the jsonl, before it is converted.
        let sample = Sample::read(&corpus, a.sample_mb);
        let before = sample.encode_mbs(&tok, 3);
        let tokens = before[0].tokens;
        println!(
            "raw encode before the path: {} MB/s ({tokens} tokens from {:.0} MB, engine {})",
            show(&before),
            sample.bytes as f64 / 1e6,
            tok.info().engine
        );
        if a.format != Format::Jsonl {
            let t = Instant::now();
            convert(&files, a.format);
            println!(
                "converted to {}: {:.2} GB on disk in {:.0} s",
                a.format.extension(),
                du(&corpus) as f64 / 1e9,
                t.elapsed().as_secs_f64()
            );
        }
        Some((sample, tok, before))
    };
    let (wall, status, rss, cpu) = run_cptc(&a);
    if status != 0 {
        fail(&format!("cptc run failed (status {status}); see {}/store/v1/runs", a.work.display()));
    }
    let text_bytes: u64 = {
        let art = a.work.join("store/v1/artifacts");
        let ingest = std::fs::read_dir(&art)
            .ok()
            .and_then(|d| d.filter_map(Result::ok).find(|e| e.file_name().to_string_lossy().starts_with("ingest")))
            .map(|e| e.path());
        let newest = ingest.and_then(|d| {
            std::fs::read_dir(d)
                .ok()?
                .filter_map(Result::ok)
                .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        });
        newest
            .and_then(|d| std::fs::read_to_string(d.path().join("report.json")).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["bytes"].as_u64())
            .unwrap_or(0)
    };
    let times = stage_times(&a.work.join("store"));
    for (stage, s) in &times {
        println!("  {stage}: {s:.1} s");
    }
    let mbs = text_bytes as f64 / 1e6 / wall;
    if a.append {
        println!("rerun after appending one file: {wall:.1} s, peak RSS {:.0} MiB", rss as f64 / f64::from(1 << 20));
        return;
    }
    let (ceiling, engine_cpu) = match sampled {
        Some((sample, tok, before)) => {
            let after = sample.encode_mbs(&tok, 3);
            // The median of six timings, three before the path and three after: this VM's speed
            // drifts by 10% or more within minutes, and one set of a few seconds before a run of
            // minutes caught the drift, not the code (60-73% for the same code within a morning).
            let runs = || before.iter().chain(&after);
            let c = median(runs().map(|r| r.mbs).collect());
            println!("raw encode after the path: {} MB/s; ceiling (the median of all six): {c:.1} MB/s", show(&after));
            (c, median(runs().map(|r| r.cpu_per_gb).collect()))
        }
        None => return,
    };
    println!(
        "whole path: {wall:.1} s for {:.2} GB of text = {mbs:.1} MB/s = {:.0}% of the raw encode ceiling",
        text_bytes as f64 / 1e9,
        100.0 * mbs / ceiling
    );
    // The same split in CPU time, which the VM's drift moves less than the ratio: what the path
    // spends per GB, what the engine alone spends (the raw encode's median), and the difference,
    // the path's own work (reading, parsing, hashing, writing, loading the tokenizer).
    let gb = text_bytes as f64 / 1e9;
    let (path_cpu, cores) = (cpu / gb, std::thread::available_parallelism().map_or(1, usize::from));
    println!(
        "CPU: the path {cpu:.1} s = {path_cpu:.1} s/GB ({:.0}% of {cores} cores' time); the raw encode {engine_cpu:.1} s/GB; \
         the path beside the engine {:.1} s/GB = {:.0}% of its CPU",
        100.0 * cpu / (cores as f64 * wall),
        path_cpu - engine_cpu,
        100.0 * (path_cpu - engine_cpu) / path_cpu
    );
    println!(
        "peak RSS {:.0} MiB; store {:.2} GB, artifacts and per-file parts, each file once (source {:.2} GB)",
        rss as f64 / f64::from(1 << 20),
        du(&a.work.join("store/v1")) as f64 / 1e9,
        du(&corpus) as f64 / 1e9
    );
}
