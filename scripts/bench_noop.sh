#!/usr/bin/env bash
# No-op command benchmark (issue 15): wall time and peak RSS of commands that find everything
# cached, with the store's remembered file digests (warm) against the same command made to
# rehash every external file (cold: digests.json removed, page cache as it is), in one run.
#   1. `cptc plan` of a recipe over a generated ~3 GB jsonl corpus (the real corpora cycled,
#      each document prefixed with its copy number so none repeats);
#   2. `cptc run recipes/edu.cpt` after the main job ran (store .cptc).
# Usage: scripts/bench_noop.sh [GB]   (default 3; the corpus is kept in target/bench-noop/)
set -euo pipefail
cd "$(dirname "$0")/.."
GB="${1:-3}"
bin=target/release/cptc
[ -x "$bin" ] && [ -x "${bin%/*}/cptc-torch" ] || cargo build --release
dir=target/bench-noop
mkdir -p "$dir"
big="$dir/big.jsonl"
want=$((GB * 1000 * 1000 * 1000))
if [ ! -f "$big" ] || [ "$(stat -c %s "$big")" -lt "$want" ]; then
  echo "generating $big (~$GB GB)"
  python3 - "$big" "$want" <<'PY'
import json, glob, sys
out, want = sys.argv[1], int(sys.argv[2])
docs = []
for path in sorted(glob.glob("data/corpora/*.jsonl")):
    with open(path, encoding="utf-8") as f:
        docs.extend(json.loads(line)["text"] for line in f if line.strip())
written, copy = 0, 0
with open(out, "w", encoding="utf-8") as f:
    while written < want:
        for text in docs:
            line = json.dumps({"text": f"[{copy}] {text}"}, ensure_ascii=False) + "\n"
            f.write(line)
            written += len(line.encode())
            if written >= want:
                break
        copy += 1
PY
fi
cat > "$dir/big.cpt" <<CPT
model smol {
  gguf = "../../data/models/SmolLM2-135M-Instruct.Q4_1.gguf"
}

corpus big {
  files = "big.jsonl"
}

eval base {
  model = smol
  sets = [big]
}
CPT
store="$dir/store"
mkdir -p "$store"
measure() { # label, command...
  local label="$1"; shift
  local best_s="" best_kb=""
  for _ in 1 2 3; do
    /usr/bin/time -f "%e %M" -o "$dir/time.txt" "$@" > /dev/null 2>&1 || true
    read -r s kb < "$dir/time.txt"
    if [ -z "$best_s" ] || awk "BEGIN{exit !($s < $best_s)}"; then best_s=$s; best_kb=$kb; fi
  done
  printf '%-44s %6.2f s  %6d MB RSS (best of 3)\n' "$label" "$best_s" $((best_kb / 1024))
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "corpus: $(du -h "$big" | cut -f1) ($big)"
measure "cptc --version (the floor)" "$bin" --version
measure "cptc-torch probe (a worker start: libtorch)" "${bin%/*}/cptc-torch" probe
# Plan once to create the store and remember the digests.
"$bin" plan "$dir/big.cpt" --store "$store" > /dev/null 2>&1 || true
"$bin" run "$dir/big.cpt" --store "$store" --only import:smol > /dev/null 2>&1 || true
"$bin" plan "$dir/big.cpt" --store "$store" > /dev/null
measure "plan, 3 GB corpus, remembered digests" "$bin" plan "$dir/big.cpt" --store "$store"
measure "plan, 3 GB corpus, rehashing (baseline)" bash -c "rm -f $store/v1/digests.json; $bin plan $dir/big.cpt --store $store"
"$bin" plan "$dir/big.cpt" --store "$store" > /dev/null
if [ -d .cptc/v1 ]; then
  "$bin" run recipes/edu.cpt > /dev/null 2>&1
  measure "no-op run recipes/edu.cpt, remembered" "$bin" run recipes/edu.cpt
  measure "no-op run recipes/edu.cpt, rehashing (baseline)" bash -c "rm -f .cptc/v1/digests.json; $bin run recipes/edu.cpt"
  "$bin" run recipes/edu.cpt > /dev/null 2>&1
else
  echo "no-op run: skipped (run the main job first: cargo build --release && target/release/cptc run recipes/edu.cpt)"
fi
