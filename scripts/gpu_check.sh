#!/usr/bin/env bash
# Prepared GPU check of the backend (issue 7), for a session with a GPU machine. Builds
# nothing there: build here first, then run this on the device with the binary carried along.
#
# Here (CPU machine): build, then strip a copy (101 MB -> 2 MB; carry allows 64 MiB):
#   cargo build --release --example bench_train
#   mkdir -p target/gpu && strip -o target/gpu/bench_train target/release/examples/bench_train
# On the device (run tool, carry ["target/gpu"]; LD_LIBRARY_PATH below overrides the binary's
# RUNPATH, which points at this machine's .deps/libtorch):
#   bash scripts/gpu_check.sh [--peak-flops 989e12] | tee $OUT/gpu.jsonl
#
# Steps, each printing one JSON line, stopping at the first failure:
#   1. libtorch from /opt/torch/.venv is found, tch::Cuda::is_available() is true and a CUDA
#      matmul agrees with the CPU (bench_train --cuda-check), then a tiny bf16 training run.
#   2. bf16 tokens/s and MFU for SmolLM2-135M's shape and a ~1.1B Llama shape, cptc vs PyTorch
#      eager (plain-torch Llama: transformers may be missing there) on the same card.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py=${GPU_PYTHON:-/opt/torch/.venv/bin/python}
torch_lib=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bin=${BENCH_BIN:-$root/target/gpu/bench_train}
peak=${PEAK_FLOPS:-989e12} # H100/H200 SXM dense bf16
[ "${1:-}" = "--peak-flops" ] && peak=$2
say() { printf 'gpu_check: %s\n' "$*" >&2; }

say "torch: $("$py" -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))')"
say "binary libtorch resolution:"
ldd "$bin" | grep -E 'torch|c10|cuda' >&2 || true

# 1. CUDA visible to tch and a matmul on the card vs CPU (exit 3 otherwise).
timeout 60 "$bin" --cuda-check
timeout 120 "$bin" --device cuda --shape tiny --seq 128 --micro 2 --steps 3 --warmup 1 \
  --peak-flops "$peak" | sed 's/^{/{"check":"cptc_cuda_tiny",/'

# 2. Throughput, alternating cptc and PyTorch; batch in tokens per step = seq * micro.
run_pair() {
  local shape=$1 seq=$2 micro=$3
  timeout 240 "$bin" --device cuda --shape "$shape" --seq "$seq" --micro "$micro" --steps 10 \
    --warmup 3 --peak-flops "$peak"
  timeout 240 "$py" tests/python/backend_bench.py --impl plain --device cuda --shape "$shape" \
    --seq "$seq" --micro "$micro" --steps 10 --warmup 3 --peak-flops "$peak" --threads 4
}
run_pair smollm2 2048 8
run_pair 1b 2048 4
