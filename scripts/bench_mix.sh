#!/usr/bin/env bash
# The mix stage at corpus scale (issue #19, item 6): over a corpus `scripts/bench_stream.sh`
# tokenized (its DIR: `corpus/`, `hf/`, `store/`), a ramped mixture of TOKENS drawn from it beside
# a small code corpus (`mix:t`), and a long-context one that groups similar documents
# (`mix:long`); for each cptc binary given, interleaved, N rounds: `cptc plan`, then `mix:t`
# with the page cache warm and, as root, dropped first; then `mix:long` once per binary. Each
# run draws a count of tokens not drawn before (TOKENS + 1 M per run), so it is a miss for every
# binary. Prints wall and CPU seconds, peak RSS and the 512-byte blocks read from the disk.
# LONG=0 leaves `mix:long` out. Not part of CI.
# Usage: [LONG=0] scripts/bench_mix.sh DIR TOKENS_M N BIN...   (e.g. /tmp/bs20 200 2 old/cptc target/release/cptc)
set -euo pipefail
dir=$1 tokens=$2 n=$3
shift 3
repo=$(cd "$(dirname "$0")/.." && pwd)
recipe() {
  cat > "$dir/bench_mix.cpt" <<CPT
model base {
  hf = "hf"
}

corpus big {
  files = "corpus/*.jsonl"
  heldout = 1%
}

corpus code {
  files = ["$repo/data/corpora/pydocs.jsonl", "$repo/data/corpora/pycode.jsonl"]
  heldout = 2%
}

mixture ramped {
  part general {
    corpora = [big]
    share = 92%
  }
  part domain {
    corpora = [code]
    share = 8%
  }
  ramp {
    shape = linear
    share = 2% -> 8%
    window = 0% -> 50%
  }
}

mixture general_only {
  part general {
    corpora = [big]
    share = 100%
  }
}

schedule flat {
  shape = constant
  lr = 1e-5
  warmup = 0%
}

train t {
  model = base
  mixture = ramped
  tokens = ${1}M tokens
  seq_len = 2048
  batch = 512k tokens
  lr = flat
}

train long {
  model = base
  mixture = general_only
  tokens = ${tokens}M tokens
  seq_len = 8192
  batch = 512k tokens
  lr = flat

  long_context {
    length = 8192
    group_similar = true
    short_below = 4k tokens
    keep_short = 10%
    rope_theta = 1M
  }
}
CPT
}
cd "$dir"
echo "$(nproc) cores; corpus $(du -sh --apparent-size corpus | cut -f1); store $(du -sh store | cut -f1)"
draw=$tokens
timed() { # LABEL BIN ARGS...
  local label=$1 bin=$2
  shift 2
  /usr/bin/time -f "$label $bin: %e s, %U user, %S sys, peak RSS %M KB, %I blocks in" "$bin" "$@" --store store 2>&1 >/dev/null | tail -1
}
recipe "$draw"
for bin in "$@"; do timed "the code corpus (once)" "$bin" run bench_mix.cpt --only split:code --only tokenize:code@base; break; done
for _ in $(seq "$n"); do
  for bin in "$@"; do
    draw=$((draw + 1)); recipe "$draw"
    timed plan "$bin" plan bench_mix.cpt
    timed "mix:t ${draw}M, warm" "$bin" run bench_mix.cpt --only mix:t
    if [ "$(id -u)" = 0 ]; then
      draw=$((draw + 1)); recipe "$draw"
      sync; echo 3 > /proc/sys/vm/drop_caches
      timed "mix:t ${draw}M, page cache dropped" "$bin" run bench_mix.cpt --only mix:t
    fi
  done
done
if [ "${LONG:-1}" != 0 ]; then
  for bin in "$@"; do
    timed "mix:long ${tokens}M" "$bin" run bench_mix.cpt --only mix:long --force mix:long
  done
fi
