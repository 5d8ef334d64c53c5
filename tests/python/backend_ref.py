"""Reference computations for tests/backend_*.rs, done with transformers and PyTorch eager.

Subcommands (each prints one JSON line on stdout):
  logits DIR IDS_JSON OUT      logits of AutoModelForCausalLM (fp32) for ids [[...], ...] -> OUT
                               (safetensors, tensor "logits"), and the mean loss of the shifted ids
  make-qwen2 DIR SEED [window] a small random Qwen2ForCausalLM (non-zero q/k/v biases, untied
                               head, rope_theta 1e6) saved with save_pretrained
  make-llama3 DIR SEED [TYPE]  a small random LlamaForCausalLM with Llama 3.x RoPE scaling (factor 8,
                               frequency factors 1 and 4, original context 64: every band of the rule is used), GQA, untied head;
                               TYPE `linear`: linear scaling by 4 instead; `yarn`: YaRN by 4 from 32
                               positions (attention factor from the factor); `dynamic`: dynamic NTK
                               by 2 with a 64-position context (so 80 positions grow the base)
  make-qwen3 DIR SEED          a small random Qwen3ForCausalLM (q/k norms moved off 1, head_dim 32
                               apart from hidden/heads, GQA, untied head)
  make-mistral DIR SEED        a small random MistralForCausalLM with a 16-token sliding window
  make-gemma2 DIR SEED         a small random Gemma2ForCausalLM (soft-capped attention and logits,
                               sliding window 16 on alternate layers, query_pre_attn_scalar apart
                               from head_dim, sandwich norms moved off 0, tied head)
  make-gemma3 DIR SEED         a small random Gemma3ForCausalLM (text): a sliding layer with its own
                               RoPE base (10k) and a global one with linear scaling by 4 (base 1M),
                               per-head q/k norms, tied head
  make-olmo2 DIR SEED          a small random Olmo2ForCausalLM (norms after attention and MLP,
                               q/k norms over the whole projection moved off 1, GQA, untied head)
  train DIR IDS_JSON OUT SPEC  steps of torch.optim.AdamW (+ clip_grad_norm_) on sequences of
                               seq_len+1 ids; SPEC is JSON {lrs, micro_batch, seqs_per_step,
                               weight_decay, betas, eps, grad_clip}; final weights -> OUT
"""

import json
import sys

import torch
from safetensors.torch import save_file
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    MistralForCausalLM,
    Olmo2Config,
    Olmo2ForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

torch.set_num_threads(1)


def load(path):
    """fp32, SDPA attention; eager for Gemma, as cptc computes Gemma's attention (Gemma 2 has no
    SDPA path, Gemma 3's would differ by rounding that Adam amplifies in training tests)."""
    kind = json.load(open(f"{path}/config.json")).get("model_type", "")
    attn = "eager" if kind.startswith("gemma") else "sdpa"
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=attn)


def cmd_logits(path, ids_json, out):
    model = load(path).eval()
    ids = torch.tensor(json.load(open(ids_json)), dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)
        )
    save_file({"logits": logits.contiguous()}, out)
    print(json.dumps({"shape": list(logits.shape), "loss": loss.item(), "class": type(model).__name__}))


# The shape of the small reference models (GQA 4:2, untied head).
SMALL = dict(
    vocab_size=320,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    tie_word_embeddings=False,
)


def save_randomised(model, path, biases=False):
    """Moves norms (and biases) off their init, so a test notices one that is read but not
    applied, then saves the model and prints its parameter count."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if biases and name.endswith("bias"):
                p.normal_(0.0, 0.5)
            elif "norm" in name:
                p.uniform_(0.5, 1.5)
    model.save_pretrained(path, safe_serialization=True)
    print(json.dumps({"params": sum(p.numel() for p in model.parameters())}))


def cmd_make_qwen2(path, seed, window=None):
    torch.manual_seed(int(seed))
    cfg = Qwen2Config(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=3,
        num_attention_heads=8,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        # `window`: a 16-token sliding window on the layers from 1 on.
        use_sliding_window=window is not None,
        sliding_window=16 if window is not None else None,
        max_window_layers=1,
    )
    save_randomised(Qwen2ForCausalLM(cfg).float(), path, biases=True)


def cmd_make_llama3(path, seed, rope_type="llama3"):
    torch.manual_seed(int(seed))
    cfg = LlamaConfig(
        **SMALL,
        max_position_embeddings=64 if rope_type == "dynamic" else 128,
        rms_norm_eps=1e-5,
        rope_parameters={
            "llama3": {
                "rope_type": "llama3",
                "rope_theta": 500_000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
            "linear": {"rope_type": "linear", "rope_theta": 500_000.0, "factor": 4.0},
            "yarn": {"rope_type": "yarn", "rope_theta": 10_000.0, "factor": 4.0, "original_max_position_embeddings": 32},
            "dynamic": {"rope_type": "dynamic", "rope_theta": 10_000.0, "factor": 2.0},
        }[rope_type],
    )
    save_randomised(LlamaForCausalLM(cfg).float(), path)


def cmd_make_qwen3(path, seed):
    torch.manual_seed(int(seed))
    cfg = Qwen3Config(
        **{**SMALL, "intermediate_size": 160},
        head_dim=32,
        max_position_embeddings=512,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        use_sliding_window=False,
    )
    save_randomised(Qwen3ForCausalLM(cfg).float(), path)


# Gemma's: a tied head, head_dim (32) apart from hidden/heads (16), query_pre_attn_scalar apart
# from both, a 16-token local window.
GEMMA_SMALL = dict(
    **{**SMALL, "tie_word_embeddings": True},
    head_dim=32,
    max_position_embeddings=128,
    sliding_window=16,
    query_pre_attn_scalar=24,
)


def cmd_make_gemma2(path, seed):
    torch.manual_seed(int(seed))
    cfg = Gemma2Config(
        **GEMMA_SMALL,
        attn_logit_softcapping=2.0,
        final_logit_softcapping=3.0,
    )
    save_randomised(Gemma2ForCausalLM(cfg).float(), path)


def cmd_make_gemma3(path, seed):
    torch.manual_seed(int(seed))
    cfg = Gemma3TextConfig(
        **GEMMA_SMALL,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={
            "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1_000_000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
        },
    )
    save_randomised(Gemma3ForCausalLM(cfg).float(), path)


def cmd_make_olmo2(path, seed):
    torch.manual_seed(int(seed))
    cfg = Olmo2Config(**SMALL, max_position_embeddings=128, rms_norm_eps=1e-6)
    save_randomised(Olmo2ForCausalLM(cfg).float(), path)


def cmd_make_mistral(path, seed):
    torch.manual_seed(int(seed))
    cfg = MistralConfig(**SMALL, max_position_embeddings=256, sliding_window=16, rms_norm_eps=1e-5)
    save_randomised(MistralForCausalLM(cfg).float(), path)


def cmd_train(path, ids_json, out, spec_json):
    spec = json.loads(spec_json)
    model = load(path).train()
    seqs = torch.tensor(json.load(open(ids_json)), dtype=torch.long)
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": spec["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec["lrs"][0],
        betas=tuple(spec["betas"]),
        eps=spec["eps"],
        foreach=False,
    )
    per_step, micro = spec["seqs_per_step"], spec["micro_batch"]
    losses = []
    for step, lr in enumerate(spec["lrs"]):
        batch = seqs[step * per_step : (step + 1) * per_step]
        n_targets = batch[:, 1:].numel()
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for i in range(0, per_step, micro):
            mb = batch[i : i + micro]
            logits = model(input_ids=mb[:, :-1]).logits.float()
            loss_sum = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), mb[:, 1:].reshape(-1), reduction="sum"
            )
            (loss_sum / n_targets).backward()
            total += loss_sum.item()
        if spec["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), spec["grad_clip"], foreach=False)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        losses.append(total / n_targets)
    state = {n: p.detach().contiguous() for n, p in model.named_parameters()}
    save_file(state, out)
    print(json.dumps({"losses": losses}))


COMMANDS = {"logits": cmd_logits, "make-qwen2": cmd_make_qwen2, "make-llama3": cmd_make_llama3,
            "make-qwen3": cmd_make_qwen3, "make-mistral": cmd_make_mistral, "make-olmo2": cmd_make_olmo2,
            "make-gemma2": cmd_make_gemma2, "make-gemma3": cmd_make_gemma3, "train": cmd_train}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
