#!/bin/sh
# Copies the crate's .cpt files into the seed corpus (fuzz/corpus is git-ignored).
set -e
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/corpus/parse_check"
for f in "$here"/../recipes/*.cpt "$here"/../crates/core/stdlib/*.cpt "$here"/../tests/fixtures/invalid/*.cpt; do
  dir=$(basename "$(dirname "$f")")
  cp "$f" "$here/corpus/parse_check/$dir-$(basename "$f")"
done
