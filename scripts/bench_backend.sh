#!/usr/bin/env bash
# Benchmarks one training step (forward, backward, clip, AdamW) of the same model, batch and
# dtype in cptc (examples/bench_train.rs) and in PyTorch eager (tests/python/backend_bench.py),
# alternating the two for ROUNDS rounds so that load from other processes hits both alike.
#
# Usage: scripts/bench_backend.sh [ARGS...]   (ARGS go to both sides), e.g.
#   scripts/bench_backend.sh --model target/test-models/smollm2-135m-f32 --seq 256 --steps 5
#   scripts/bench_backend.sh --shape tiny --seq 128 --micro 4 --steps 10
# Env: ROUNDS (default 2), IMPLS (python impls, default "hf plain"), PYTHON (default .venv),
#      BENCH_BIN (a prebuilt bench_train; otherwise built here in release mode).
# Prints each run's JSON line, then one summary line per python impl: cptc / PyTorch ratios of
# the best median step time, wall clock and thread CPU time (the latter is the fairer figure
# when other processes share the cores: with one intra-op thread it is the step's work).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python=${PYTHON:-$root/.venv/bin/python}
rounds=${ROUNDS:-2}
impls=${IMPLS:-hf plain}
bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet --example bench_train >&2
  bin="$root/target/release/examples/bench_train"
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$rounds"); do
  "$bin" "$@" | tee -a "$out"
  for impl in $impls; do
    "$python" tests/python/backend_bench.py --impl "$impl" "$@" | tee -a "$out"
  done
done
"$python" - "$out" <<'EOF'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def best(key):
    b = {}
    for r in runs:
        b[r["impl"]] = min(b.get(r["impl"], 1e9), r[key])
    return b
wall, cpu = best("step_s_median"), best("cpu_s_median")
for impl in wall:
    if impl == "cptc":
        continue
    print(json.dumps({"summary": True, "vs": impl,
                      "wall_s": [round(wall["cptc"], 4), round(wall[impl], 4)],
                      "wall_ratio_cptc_over_pytorch": round(wall["cptc"] / wall[impl], 3),
                      "cpu_s": [round(cpu["cptc"], 4), round(cpu[impl], 4)],
                      "cpu_ratio_cptc_over_pytorch": round(cpu["cptc"] / cpu[impl], 3)}))
EOF
