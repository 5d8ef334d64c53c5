#!/usr/bin/env bash
# Data pipeline benchmark (issue 5): tokenize + shard MB/s against the raw `tokenizers` ceiling
# and the Python pipeline, plus mix + pack tokens/s, on >= 100 MB of the real corpora.
# Usage: scripts/bench_data.sh [MB] [gpt2|qwen3|mistral]   (defaults: 100 gpt2)
# Runs niced: the machine is shared; the load average is printed before each measurement, and the
# fast measurements take the best of CPTC_BENCH_ROUNDS (default 3) alternating rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
MB="${1:-100}"
TOK="${2:-gpt2}"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
CPTC_BENCH_MB="$MB" CPTC_BENCH_TOKENIZER="$TOK" \
  nice -n 10 cargo test --release --test data_bench -- --nocapture --test-threads 1 2>&1 |
  grep -vE '^\s+(Compiling|Finished|Running)|^running|^test result|^$'
