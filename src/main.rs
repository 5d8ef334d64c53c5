//! The `cptc` binary: a thin shell over `cptc::cli`.

/// mimalloc rather than glibc's malloc: the data stages allocate a string per document and the
/// fast engine loads a vocabulary of small allocations; a 0.5 GB corpus through the tokenize
/// stage took 1.5-4% less time (five and four interleaved pairs, Qwen3's tokenizer) and 175 MiB
/// less peak memory (`docs/benchmarks.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cptc::cli::main());
}
