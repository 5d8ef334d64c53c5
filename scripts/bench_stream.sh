#!/usr/bin/env bash
# Corpus-scale data benchmark (issue #19): ingest + split + tokenize straight from many jsonl
# files, against the fast engine's raw encode throughput measured in the same run, with the
# run's peak RSS and the store's size; then one file appended and the rerun timed.
# Usage: scripts/bench_stream.sh [GB] [gpt2|qwen3|mistral] [WORK_DIR] [FLAGS...]   (defaults: 3 gpt2 /tmp/...)
# FLAGS go to examples/bench_stream.rs: --format jsonl|gz|zst|parquet, --file-mb M (64).
# Needs about 1.6x GB of free disk in WORK_DIR. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
GB="${1:-3}"
TOK="${2:-gpt2}"
WORK="${3:-${TMPDIR:-/tmp}/cptc-bench-stream}"
shift $(( $# < 3 ? $# : 3 ))
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build --release --quiet --bin cptc --example bench_stream
target/release/examples/bench_stream --gb "$GB" --tokenizer "$TOK" --work "$WORK" --cptc target/release/cptc "$@"
target/release/examples/bench_stream --gb "$GB" --tokenizer "$TOK" --work "$WORK" --cptc target/release/cptc --append "$@"
