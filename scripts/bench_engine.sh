#!/usr/bin/env bash
# Engine hand-off benchmark (issue 17): the same small recipe trained by the built-in engine
# and by `engine = fsdp` (torchrun + FSDP2, gloo on CPU) with 1 and 2 processes, in one run.
# Prints per engine: median step time and steps/s from its metrics, and the train stage's wall
# time (model load, baseline evaluation and launch included): the overhead of the hand-off.
# The model is a tiny random Llama made by transformers (GPT-2 vocabulary, hidden 32, 2 layers),
# the data the first 2,000 documents of two real corpora, 32 steps of 4 x 128 tokens.
# Usage: scripts/bench_engine.sh   (BIN=target/debug/cptc to use the dev build)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
bin="${BIN:-target/release/cptc}"
[ -x "$bin" ] && [ -x "${bin%/*}/cptc-torch" ] || cargo build --release
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
.venv/bin/python tests/python/fsdp_ref.py make llama "$dir/hf" 1 >/dev/null 2>&1
cp data/tokenizers/gpt2/tokenizer.json "$dir/hf/"
head -2000 data/corpora/austen.jsonl > "$dir/web.jsonl"
head -2000 data/corpora/hpo.jsonl > "$dir/law.jsonl"
for engine in builtin fsdp; do
  sed -e "s/ENGINE/$engine/" -e 's/tokens = 2k tokens/tokens = 16k tokens/' -e 's/seq_len = 64/seq_len = 128/' \
    -e 's/batch = 256 tokens/batch = 512 tokens/' -e 's/eval_every = 50%/eval_every = 100%/' \
    tests/fixtures/fsdp/recipe.cpt > "$dir/$engine.cpt"
done
cd "$dir"
"$repo/$bin" run builtin.cpt --only mix:t >/dev/null 2>&1
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-22s %10s %10s %12s\n' engine "step (ms)" "steps/s" "stage (s)"
measure() {
  local name=$1 recipe=$2; shift 2
  local start end
  start=$(date +%s.%N)
  "$repo/$bin" run "$recipe" --only train:t --force train:t "$@" >/dev/null 2>&1
  end=$(date +%s.%N)
  local metrics
  metrics=$(ls -t .cptc/v1/artifacts/train-v3/*/metrics.jsonl | head -1)
  python3 - "$metrics" "$name" "$(echo "$end - $start" | bc)" <<'PY'
import json, statistics, sys
steps = [json.loads(l)["step_time_s"] for l in open(sys.argv[1]) if '"kind":"train"' in l.replace(" ", "")]
med = statistics.median(steps)
print(f"{sys.argv[2]:<22} {med * 1000:10.1f} {1 / med:10.2f} {float(sys.argv[3]):12.1f}")
PY
}
measure builtin builtin.cpt
measure "fsdp, 1 process" fsdp.cpt --nproc-per-node 1
measure "fsdp, 2 processes" fsdp.cpt --nproc-per-node 2
