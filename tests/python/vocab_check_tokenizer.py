"""Checks an expanded tokenizer.json written by `cptc::vocab::merge` with the reference Python stack.

Usage: vocab_check_tokenizer.py TOKENIZER_JSON SAMPLES_JSON

SAMPLES_JSON holds {"base_vocab_size": N, "samples": [{"text": ..., "ids": [...]}, ...]} with the
ids cptc produced (no special tokens). Loads the file with `tokenizers` and, from a directory
holding it, with `transformers.AutoTokenizer`; encodes every text with both and compares with
cptc's ids; checks that the new tokens are ordinary vocabulary entries (not added tokens) and
that decoding gives back the (normalized) text. Prints one JSON line of figures; tests/vocab_expand.rs asserts on it.
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

from tokenizers import Tokenizer
from transformers import AutoTokenizer


def main() -> None:
    tok_path, samples_path = Path(sys.argv[1]), Path(sys.argv[2])
    data = json.loads(samples_path.read_text(encoding="utf-8"))
    samples = data["samples"]
    base_size = data["base_vocab_size"]

    tok = Tokenizer.from_file(str(tok_path))
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(tok_path, Path(d) / "tokenizer.json")
        hf = AutoTokenizer.from_pretrained(d)

    added = {t.content for t in tok.get_added_tokens_decoder().values()}
    vocab = tok.get_vocab(with_added_tokens=False)
    new_ids = sorted(i for t, i in vocab.items() if i >= base_size)
    new_tokens_added_as_special = sum(1 for t, i in vocab.items() if i >= base_size and t in added)

    mismatch_tokenizers, mismatch_transformers, roundtrip_fail = 0, 0, 0
    first_bad = None
    n_tokens, n_new_used = 0, 0
    for s in samples:
        ids = tok.encode(s["text"], add_special_tokens=False).ids
        hf_ids = hf(s["text"], add_special_tokens=False)["input_ids"]
        if ids != s["ids"]:
            mismatch_tokenizers += 1
            first_bad = first_bad or s["text"][:80]
        if hf_ids != s["ids"]:
            mismatch_transformers += 1
            first_bad = first_bad or s["text"][:80]
        # Decoding gives back the normalized text (Qwen's tokenizer applies NFC).
        expect = tok.normalizer.normalize_str(s["text"]) if tok.normalizer else s["text"]
        if tok.decode(ids, skip_special_tokens=False) != expect:
            roundtrip_fail += 1
        n_tokens += len(ids)
        n_new_used += sum(1 for i in ids if i >= base_size)

    print(
        json.dumps(
            {
                "n_samples": len(samples),
                "mismatch_tokenizers": mismatch_tokenizers,
                "mismatch_transformers": mismatch_transformers,
                "roundtrip_fail": roundtrip_fail,
                "first_bad": first_bad,
                "n_tokens": n_tokens,
                "n_new_used": n_new_used,
                "n_new_in_vocab": len(new_ids),
                "new_added_as_special": new_tokens_added_as_special,
                "len_transformers": len(hf),
                "vocab_size_tokenizers": tok.get_vocab_size(with_added_tokens=True),
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
