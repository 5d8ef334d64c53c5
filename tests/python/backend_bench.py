"""PyTorch eager side of scripts/bench_backend.sh: the same training step as
examples/bench_train.rs (forward, summed cross-entropy / tokens, backward, clip_grad_norm_ 1.0,
AdamW) on the same shape, batch and dtype; prints one JSON line.

--impl hf uses transformers' LlamaForCausalLM (sdpa); --impl plain a minimal eager Llama in
plain torch (same ops as cptc), for machines without transformers (the GPU venv).
CPU: float32, AdamW foreach=False (PyTorch's CPU default, the algorithm cptc implements).
CUDA: torch.autocast bf16, AdamW fused=True (PyTorch's fastest).
"""

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

SHAPES = {
    "smollm2": (49152, 576, 1536, 30, 9, 3, True),
    "tiny": (4096, 256, 688, 4, 4, 2, False),
    "1b": (32000, 2048, 5632, 22, 32, 4, False),
}


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(torch.nn.Module):
    def __init__(self, d, f, h, kv, eps):
        super().__init__()
        hd = d // h
        self.h, self.kv, self.hd = h, kv, hd
        self.input_layernorm = RMSNorm(d, eps)
        self.post_attention_layernorm = RMSNorm(d, eps)
        self.q = torch.nn.Linear(d, h * hd, bias=False)
        self.k = torch.nn.Linear(d, kv * hd, bias=False)
        self.v = torch.nn.Linear(d, kv * hd, bias=False)
        self.o = torch.nn.Linear(h * hd, d, bias=False)
        self.gate = torch.nn.Linear(d, f, bias=False)
        self.up = torch.nn.Linear(d, f, bias=False)
        self.down = torch.nn.Linear(f, d, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        y = self.input_layernorm(x)
        q = self.q(y).view(b, t, self.h, self.hd).transpose(1, 2)
        k = self.k(y).view(b, t, self.kv, self.hd).transpose(1, 2)
        v = self.v(y).view(b, t, self.kv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.h != self.kv)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, -1))
        y = self.post_attention_layernorm(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y))


class PlainLlama(torch.nn.Module):
    def __init__(self, v, d, f, n_layers, h, kv, tied, theta=1e5, eps=1e-5):
        super().__init__()
        self.embed = torch.nn.Embedding(v, d)
        self.layers = torch.nn.ModuleList(Block(d, f, h, kv, eps) for _ in range(n_layers))
        self.norm = RMSNorm(d, eps)
        self.head = None if tied else torch.nn.Linear(d, v, bias=False)
        hd = d // h
        self.register_buffer("inv_freq", 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float) / hd)), persistent=False)

    def forward(self, ids):
        t = ids.shape[1]
        freqs = torch.arange(t, device=ids.device, dtype=torch.float)[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), -1)[None, None]
        cos, sin = emb.cos(), emb.sin()
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        x = self.norm(x)
        w = self.embed.weight if self.head is None else self.head.weight
        return F.linear(x, w)


def build(args, device):
    if args.impl == "hf":
        from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

        if args.model:
            return AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="sdpa").to(device)
        v, d, f, n, h, kv, tied = SHAPES[args.shape]
        cfg = LlamaConfig(vocab_size=v, hidden_size=d, intermediate_size=f, num_hidden_layers=n,
                          num_attention_heads=h, num_key_value_heads=kv, rms_norm_eps=1e-5,
                          rope_theta=1e5, tie_word_embeddings=tied, max_position_embeddings=8192)
        with torch.device(device):
            return LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa", dtype=torch.float32)
    v, d, f, n, h, kv, tied = SHAPES[args.shape]
    with torch.device(device):
        return PlainLlama(v, d, f, n, h, kv, tied)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--impl", choices=["hf", "plain"], default="hf")
    p.add_argument("--model")
    p.add_argument("--shape", default="smollm2")
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--micro", type=int, default=1)
    p.add_argument("--accum", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--peak-flops", type=float)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    t0 = time.perf_counter()
    model = build(args, device).train()
    load_s = time.perf_counter() - t0
    params = [p for p in model.parameters()]
    n_params = sum(p.numel() for p in params)
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if cuda else {"foreach": False}))
    vocab = model.config.vocab_size if args.impl == "hf" else model.embed.num_embeddings
    gen = torch.Generator().manual_seed(12345)
    times, cpu_times, loss_v = [], [], 0.0
    for i in range(args.warmup + args.steps):
        batch = torch.randint(0, vocab, (args.micro * args.accum, args.seq + 1), generator=gen).to(device)
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        c = time.thread_time()
        opt.zero_grad(set_to_none=True)
        n_targets = args.micro * args.accum * args.seq
        total = torch.zeros((), device=device)
        for j in range(args.accum):
            mb = batch[j * args.micro:(j + 1) * args.micro]
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
                out = model(mb[:, :-1])
                logits = out.logits if hasattr(out, "logits") else out
            loss = F.cross_entropy(logits.float().reshape(-1, vocab), mb[:, 1:].reshape(-1), reduction="sum")
            (loss / n_targets).backward()
            total += loss.detach()
        loss_v = total.item() / n_targets  # cptc reads the loss each micro-step; so does this
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=cuda)
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
            cpu_times.append(time.thread_time() - c)
    times.sort()
    cpu_times.sort()
    median = times[len(times) // 2]
    tokens = args.seq * args.micro * args.accum
    # Same accounting as cptc_torch::backend::metrics::flops_per_token.
    cfg = SHAPES.get(args.shape)
    if args.model and args.impl == "hf":
        c = model.config
        hd = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        layers, qdim = c.num_hidden_layers, c.num_attention_heads * hd
        untied = 0 if c.tie_word_embeddings else c.vocab_size * c.hidden_size
    else:
        v, d, f, layers, h, kv, tied = cfg
        qdim = d
        untied = 0 if tied else v * d
    fpt = 6.0 * (n_params - untied) + 12.0 * layers * qdim * args.seq
    tps = tokens / median
    print(json.dumps({
        "impl": f"pytorch-{args.impl}", "device": str(device), "params": n_params, "seq": args.seq,
        "micro": args.micro, "accum": args.accum, "steps": args.steps,
        "precision": "bf16-autocast" if cuda else "f32", "step_s_median": median, "step_s_min": times[0],
        "cpu_s_median": cpu_times[len(cpu_times) // 2],
        "tokens_per_s": tps, "flops_per_token": fpt, "achieved_tflops": tps * fpt / 1e12,
        "mfu": tps * fpt / args.peak_flops if args.peak_flops else None, "last_loss": loss_v,
        "load_s": load_s, "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
