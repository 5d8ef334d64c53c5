"""Checks a model directory written by `cptc::vocab::resize_embeddings` with `transformers`.

Usage: vocab_check_model.py BASE_DIR RESIZED_DIR TEXTS_JSON

TEXTS_JSON holds {"english": str, "chinese": str}. Loads both models with
`AutoModelForCausalLM` (fp32) and checks: the embedding grew to the new tokenizer's size,
config.json agrees, old rows are bit-identical, each new row is the mean of its base pieces'
rows (base pieces from Python's own `tokenizers` BPE model), logits on English text over the old
vocabulary are unchanged, and the Chinese text, encoded with the new tokenizer, gets a finite
loss that uses new tokens. Prints one JSON line of figures; tests/vocab_model.rs asserts on it.
"""

import json
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer


@torch.no_grad()
def main() -> None:
    base_dir, new_dir, texts_path = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    texts = json.loads(texts_path.read_text(encoding="utf-8"))
    torch.set_num_threads(1)

    base = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
    new = AutoModelForCausalLM.from_pretrained(new_dir, torch_dtype=torch.float32)
    base_tok = Tokenizer.from_file(str(base_dir / "tokenizer.json"))
    new_tok = Tokenizer.from_file(str(new_dir / "tokenizer.json"))
    hf_tok = AutoTokenizer.from_pretrained(new_dir)

    e0 = base.get_input_embeddings().weight
    e1 = new.get_input_embeddings().weight
    n0, n1 = e0.shape[0], e1.shape[0]
    old_rows_identical = bool(torch.equal(e0, e1[:n0]))

    # Mean of pieces, recomputed independently for every new token.
    base_vocab = base_tok.get_vocab(with_added_tokens=True)
    worst = 0.0
    n_checked = 0
    for token, i in new_tok.get_vocab(with_added_tokens=False).items():
        if token in base_vocab:
            continue
        pieces = [t.id for t in base_tok.model.tokenize(token)]
        expect = e0[pieces].double().mean(0).float()
        worst = max(worst, (e1[i] - expect).abs().max().item())
        n_checked += 1

    en = hf_tok(texts["english"], return_tensors="pt", add_special_tokens=False)["input_ids"][:, :256]
    logits_diff = (base(input_ids=en).logits - new(input_ids=en).logits[..., :n0]).abs().max().item()

    zh = hf_tok(texts["chinese"], return_tensors="pt", add_special_tokens=False)["input_ids"][:, :256]
    zh_loss = new(input_ids=zh, labels=zh).loss.item()
    print(
        json.dumps(
            {
                "rows_before": n0,
                "rows_after": n1,
                "config_vocab_size": new.config.vocab_size,
                "len_tokenizer": len(hf_tok),
                "tied": new.get_output_embeddings().weight.data_ptr() == e1.data_ptr(),
                "old_rows_identical": old_rows_identical,
                "mean_of_pieces_max_err": worst,
                "n_new_checked": n_checked,
                "english_logits_max_diff": logits_diff,
                "chinese_loss": zh_loss,
                "chinese_new_tokens": int((zh >= n0).sum()),
            }
        )
    )


if __name__ == "__main__":
    main()
