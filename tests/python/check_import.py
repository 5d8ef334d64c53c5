"""Checks a model directory written by `cptc import gguf` with the reference Python stack.

Usage: check_import.py OUT_DIR [--corpus AUSTEN_JSONL]

Loads tokenizer.json with `tokenizers` (and through `transformers.AutoTokenizer`), encodes a mixed
English/Chinese/code sample, loads the weights with `LlamaForCausalLM`, and measures perplexity on 256-token windows from the
middle of Pride and Prejudice and on the same words shuffled. Prints one JSON line with the
figures; tests/convert_gguf.rs asserts on it.

`ppl` pools 4 consecutive windows around the middle (1024 tokens): one window alone swings from
30 to 55 with its position (the exact middle one is reported as `ppl_middle_window`), too noisy
for a guard whose failure mode (no Q/K un-permutation) only multiplies it by 3 to 6.
"""

import argparse
import json
import math
import random
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import AutoTokenizer, LlamaForCausalLM

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (
    "It is a truth universally acknowledged, that a single man in possession of 12,500 pounds "
    "must be in want of a wife.\n"
    "北京是中华人民共和国的首都，常住人口约2189万。机器学习需要大量数据。\n"
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)  # 0x1F\n"
    "<|im_start|>user\nHi!<|im_end|>\n"
)
WINDOW = 256
N_WINDOWS = 4


def pick_text(corpus: Path) -> tuple[str, str]:
    """Pride and Prejudice (its records, e.g. one per chapter, joined in file order), else the
    source with the most text."""
    by_source: dict[str, list[str]] = {}
    for line in corpus.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            by_source.setdefault(str(r.get("source", "?")), []).append(r["text"])
    if not by_source:
        sys.exit(f"{corpus} holds no records")
    pride = [s for s in by_source if "pride" in s.lower()]
    source = pride[0] if pride else max(by_source, key=lambda s: sum(map(len, by_source[s])))
    return source, "\n\n".join(by_source[source])


@torch.no_grad()
def perplexity(model, windows: list[list[int]]) -> float:
    """exp of the mean next-token loss over all predicted tokens of the windows."""
    total, count = 0.0, 0
    for ids in windows:
        x = torch.tensor([ids])
        total += model(input_ids=x, labels=x).loss.item() * (len(ids) - 1)
        count += len(ids) - 1
    return math.exp(total / count)


def shuffled_words(tok: Tokenizer, ids: list[int], seed: int) -> list[int]:
    words = tok.decode(ids).split()
    random.Random(seed).shuffle(words)
    return tok.encode(" ".join(words), add_special_tokens=False).ids[:WINDOW]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--corpus", type=Path, default=ROOT / "data/corpora/austen.jsonl")
    args = ap.parse_args()
    # One thread: the CI machines have two cores and collapse when both are contended.
    torch.set_num_threads(1)

    tok = Tokenizer.from_file(str(args.out_dir / "tokenizer.json"))
    ids = tok.encode(SAMPLE, add_special_tokens=False).ids
    auto = AutoTokenizer.from_pretrained(args.out_dir)
    auto_ids = auto(SAMPLE, add_special_tokens=False)["input_ids"]
    if auto_ids != ids:
        sys.exit(f"AutoTokenizer ids differ from tokenizers ids:\n{auto_ids}\n{ids}")
    chat = auto.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)

    model = LlamaForCausalLM.from_pretrained(args.out_dir, dtype=torch.float32)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())

    source, text = pick_text(args.corpus)
    all_ids = tok.encode(text, add_special_tokens=False).ids
    span = N_WINDOWS * WINDOW
    if len(all_ids) < 2 * span:
        sys.exit(f"{source} has only {len(all_ids)} tokens")
    start = len(all_ids) // 2 - span // 2
    windows = [all_ids[start + i * WINDOW : start + (i + 1) * WINDOW] for i in range(N_WINDOWS)]
    ppl = perplexity(model, windows)
    ppl_middle = perplexity(model, [all_ids[len(all_ids) // 2 - WINDOW // 2 :][:WINDOW]])
    ppl_shuffled = perplexity(model, [shuffled_words(tok, w, i) for i, w in enumerate(windows)])

    print(
        json.dumps(
            {
                "sample": SAMPLE,
                "ids": ids,
                "n_params": n_params,
                "source": source,
                "windows": N_WINDOWS,
                "window_tokens": WINDOW,
                "ppl": round(ppl, 3),
                "ppl_middle_window": round(ppl_middle, 3),
                "ppl_shuffled": round(ppl_shuffled, 3),
                "chat_prefix": chat[:40],
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
