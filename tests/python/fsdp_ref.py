"""References for tests/fsdp.rs, computed by transformers (each subcommand prints one JSON line):

  make KIND DIR SEED         a tiny random-weight model built from a config and saved with
                             save_pretrained (safetensors); KIND: llama (tied head), qwen2 (untied,
                             q/k/v biases), qwen3 (q/k norms, head_dim apart), gemma2 (soft-capping,
                             sandwich norms, sliding window), llama32 (llama with 32 positions);
                             GPT-2's vocabulary (50257), so the
                             real GPT-2 tokenizer drives them
  heldout DIR WINDOWS SEQ    the model in DIR loaded by AutoModelForCausalLM (fp32): summed nats
                             and counted targets over WINDOWS (int64: inputs [n, SEQ] then targets)
"""

import json
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, Gemma2Config, LlamaConfig, Qwen2Config, Qwen3Config

COMMON = dict(vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)


def config(kind):
    if kind == "llama":
        return LlamaConfig(**COMMON, tie_word_embeddings=True, rms_norm_eps=1e-5)
    if kind == "llama32":  # a 32-position context, for long-context training past it
        return LlamaConfig(**{**COMMON, "max_position_embeddings": 32}, tie_word_embeddings=True)
    if kind == "qwen2":
        return Qwen2Config(**COMMON, tie_word_embeddings=False, rope_theta=1e6)
    if kind == "qwen3":
        return Qwen3Config(**COMMON, head_dim=16, tie_word_embeddings=False)
    if kind == "gemma2":
        return Gemma2Config(**COMMON, head_dim=8, query_pre_attn_scalar=8, sliding_window=16,
                            final_logit_softcapping=30.0, attn_logit_softcapping=50.0)
    raise SystemExit(f"unknown kind {kind}")


def cmd_heldout(path, windows, seq):
    seq = int(seq)
    data = np.fromfile(windows, dtype=np.int64).reshape(2, -1, seq)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa").eval()
    except ValueError:  # as the engine: eager where an architecture has no SDPA path
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
    nats, tokens = 0.0, 0
    with torch.no_grad():
        for x, y in zip(torch.from_numpy(data[0]), torch.from_numpy(data[1])):
            logits = model(input_ids=x[None]).logits.float()
            nats += torch.nn.functional.cross_entropy(logits[0], y, ignore_index=-100, reduction="sum").item()
            tokens += int((y != -100).sum())
    print(json.dumps({"nats": nats, "tokens": tokens, "class": type(model).__name__}))


def cmd_make(kind, path, seed):
    torch.manual_seed(int(seed))
    model = AutoModelForCausalLM.from_config(config(kind), dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.5)
            elif "norm" in name:
                p.uniform_(0.5, 1.5)
    model.save_pretrained(path, safe_serialization=True)
    print(json.dumps({"params": sum(p.numel() for p in model.parameters()), "class": type(model).__name__}))


COMMANDS = {"make": cmd_make, "heldout": cmd_heldout}

if __name__ == "__main__":
    torch.set_num_threads(1)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
