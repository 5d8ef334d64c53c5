"""cptc's FSDP2 training engine: one torchrun worker of a `train` stage with `engine = fsdp`.

cptc writes a spec (JSON, the only argument) and this program does what it says, nothing more:
it loads the Hugging Face model sharded over every rank (PyTorch FSDP2, `fully_shard`), trains
on the mix shard's sequences in order with the LR cptc computed for each step and the
parameter plan cptc resolved (frozen parameters, rows, LR multipliers, decay), evaluates the
held-out windows cptc cut, checkpoints with `torch.distributed.checkpoint`, and saves the
trained weights. Rank 0 prints one JSON event per line on stdout; the others print nothing
there. The arithmetic follows cptc's built-in engine: AdamW op for op, the loss of a step is
its summed cross-entropy over the targets of every rank and micro-batch, clipping on the
global gradient norm.
"""

import contextlib
import json
import math
import os
import shutil
import sys
import time
import traceback

FORMAT = "cptc-fsdp-v1"


def emit(event, **fields):
    """One event line for cptc, from each node's first process: every node's cptc follows the
    run (what they print is reduced over all ranks, so the nodes agree)."""
    if LOCAL_RANK == 0:
        sys.stdout.write(json.dumps(finite({"event": event, **fields})) + "\n")
        sys.stdout.flush()


def finite(value):
    """JSON has no NaN: a non-finite number goes as null (cptc reads it back as NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value


def fail(tier, code, message, help=None):
    """Reports a failure cptc shows as the stage's own, then ends every rank."""
    emit("failed", tier=tier, code=code, message=message, help=help)
    raise SystemExit(1)


RANK = int(os.environ.get("RANK", "0"))
LOCAL_RANK = int(os.environ.get("LOCAL_RANK", "0"))

try:
    import numpy as np
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    import torch.nn.functional as F
    from torch import nn
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from torch.distributed.tensor import DTensor, distribute_tensor
    from transformers import AutoConfig, AutoModelForCausalLM
except ImportError as e:  # the environment, not the recipe
    fail(
        "environment",
        "cptc::fsdp::python",
        f"the FSDP engine's Python lacks a package: {e}",
        "run ./scripts/setup.sh (it installs torch and transformers into .venv), or point CPTC_PYTHON at a Python that has them",
    )


# ---------------------------------------------------------------- the model


@contextlib.contextmanager
def parameters_on_meta():
    """Builds modules with their parameters on the meta device (no memory, no init) but their
    buffers real: the non-persistent ones (RoPE frequencies, embedding scales) are in no
    checkpoint and must be computed as the model's constructor does."""
    register = nn.Module.register_parameter

    def on_meta(module, name, param):
        register(module, name, param)
        if param is not None and param.device.type != "meta":  # a tied weight is already there
            p = module._parameters[name]
            module._parameters[name] = nn.Parameter(p.to("meta"), requires_grad=p.requires_grad)

    nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def skeleton(config):
    with parameters_on_meta():
        try:
            return AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa")
        except ValueError:  # an architecture without an SDPA path (Gemma 2's soft-capping)
            return AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")


def non_persistent_buffers(model):
    """name -> tensor of the buffers no state dict holds."""
    out = {}
    for mname, module in model.named_modules():
        for bname in module._non_persistent_buffers_set:
            buf = module._buffers.get(bname)
            if buf is not None:
                out[f"{mname}.{bname}" if mname else bname] = buf.detach().clone()
    return out


def restore_buffers(model, buffers, device):
    for name, value in buffers.items():
        mname, _, bname = name.rpartition(".")
        module = model.get_submodule(mname) if mname else model
        module._buffers[bname] = value.to(device)


def load_model(spec, device, mesh):
    config = AutoConfig.from_pretrained(spec["model_dir"])
    model = skeleton(config)
    tied = model.get_output_embeddings() is not None and (
        model.get_output_embeddings().weight is model.get_input_embeddings().weight
    )
    if tied != spec["tied"]:
        fail(
            "input",
            "cptc::fsdp::tied",
            f"{spec['model_dir']}: the model ties its head to the embeddings: {tied}; its files do: {spec['tied']}",
            "a tied model's files hold no lm_head.weight; an untied one's do",
        )
    buffers = non_persistent_buffers(model)
    policy = MixedPrecisionPolicy()
    if spec["precision"] == "bf16":
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    layers = decoder_layers(model)
    for layer in layers:
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    model.to_empty(device=device)
    restore_buffers(model, buffers, device)
    return model, config


def decoder_layers(model):
    base = getattr(model, model.base_model_prefix, model)
    layers = getattr(base, "layers", None)
    if layers is None:
        fail("input", "cptc::fsdp::architecture", f"{type(model).__name__} has no `layers` to shard")
    return list(layers)


def state_dict_of(model, tied):
    sd = model.state_dict()
    if tied:
        sd.pop("lm_head.weight", None)
    return sd


# ---------------------------------------------------------------- the plan


class Slot:
    """One trained parameter: its plan, its local shard's row masks and AdamW moments."""

    def __init__(self, name, param, plan, rank_rows):
        self.name = name
        self.param = param
        self.plan = plan
        self.decay = plan["decay"]
        self.lr_mult = plan["lr_mult"]
        local = param.to_local() if isinstance(param, DTensor) else param
        self.exp_avg = torch.zeros_like(local, dtype=torch.float32)
        self.exp_avg_sq = torch.zeros_like(local, dtype=torch.float32)
        # Per-row multipliers and masks, as the local shard holds them (None: uniform).
        self.row_mult = None
        self.row_mask = None
        rows, split = plan.get("rows"), plan.get("split_lr")
        if rows is not None or split is not None:
            n = param.shape[0]
            mult = torch.full((n,), float(plan["lr_mult"]), dtype=torch.float64)
            mask = torch.ones(n, dtype=torch.float32)
            if rows is not None:
                a, b = rows
                mask.zero_()
                mask[a:b] = 1.0
                mult = mult * mask.double()
            if split is not None:
                at, m = split
                mult[at:] = float(m)
            self.row_mult = rank_rows(param, mult).unsqueeze(1)
            self.row_mask = rank_rows(param, mask).unsqueeze(1).to(local.dtype)
            if local.dim() == 1:
                self.row_mult, self.row_mask = self.row_mult.squeeze(1), self.row_mask.squeeze(1)

    def local(self, t):
        return t.to_local() if isinstance(t, DTensor) else t


def make_rank_rows(device):
    def rank_rows(param, full):
        full = full.to(device)
        if isinstance(param, DTensor):
            return distribute_tensor(full, param.device_mesh, param.placements).to_local()
        return full

    return rank_rows


def plan_slots(model, spec, device):
    plans = {p["name"]: p for p in spec["params"]}
    slots = []
    for name, param in model.named_parameters():
        plan = plans.get(name)
        if plan is None:
            fail("internal", "cptc::fsdp::plan", f"cptc's parameter plan has no entry for `{name}`")
        param.requires_grad_(plan["trainable"])
        if plan["trainable"]:
            slots.append(Slot(name, param, plan, make_rank_rows(device)))
    return slots


# ---------------------------------------------------------------- data


class Shard:
    """A Megatron indexed dataset (`.idx` + `.bin`), read in place."""

    def __init__(self, prefix):
        with open(prefix + ".idx", "rb") as f:
            header = f.read(34)
            if header[:9] != b"MMIDIDX\x00\x00":
                fail("input", "cptc::fsdp::shard", f"{prefix}.idx is not a Megatron index")
            code = header[17]
            count = int.from_bytes(header[18:26], "little")
        self.dtype = {8: np.uint16, 4: np.int32}[code]
        self.lengths = np.memmap(prefix + ".idx", dtype=np.int32, mode="r", offset=34, shape=(count,))
        self.pointers = np.memmap(prefix + ".idx", dtype=np.int64, mode="r", offset=34 + 4 * count, shape=(count,))
        self.bin = np.memmap(prefix + ".bin", dtype=np.uint8, mode="r")
        # The loss mask of an SFT mixture: one byte per token, 1 where the token is a target.
        self.mask = np.memmap(prefix + ".mask", dtype=np.uint8, mode="r") if os.path.exists(prefix + ".mask") else None

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        start, n = int(self.pointers[i]), int(self.lengths[i])
        size = np.dtype(self.dtype).itemsize
        return np.frombuffer(self.bin[start : start + n * size], dtype=self.dtype).astype(np.int64)

    def targets(self, i):
        """Sequence i's targets (its ids after the first), -100 where the mask leaves one out."""
        ids = self[i]
        y = ids[1:].copy()
        if self.mask is not None:
            start = int(self.pointers[i]) // np.dtype(self.dtype).itemsize
            y[self.mask[start + 1 : start + len(ids)] == 0] = -100
        return y


def rank_batches(items, world, rank, micro):
    """This rank's share of a step's items (every world-th), in micro-batches; every rank gets
    the same number of passes (FSDP's collectives need it), padded with None."""
    mine = items[rank::world]
    per_rank = -(-len(items) // world)
    passes = max(1, -(-per_rank // micro))
    batches = [mine[i * micro : (i + 1) * micro] for i in range(passes)]
    return batches


def token_loss_sum(model, inputs, targets):
    logits = model(input_ids=inputs).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum")


# ---------------------------------------------------------------- evaluation


def evaluate(model, spec, device, world):
    sets = {}
    model.eval()
    seq = spec["seq_len"]
    with torch.no_grad():
        for s in spec["eval_sets"]:
            n = s["windows"]
            data = np.fromfile(s["file"], dtype=np.int64).reshape(2, n, seq)
            nats = torch.zeros((), dtype=torch.float64, device=device)
            count = torch.zeros((), dtype=torch.int64, device=device)
            for batch in rank_batches(list(range(n)), world, RANK, s["batch"]):
                if batch:
                    x = torch.from_numpy(data[0, batch]).to(device)
                    y = torch.from_numpy(data[1, batch]).to(device)
                    nats += token_loss_sum(model, x, y).double()
                    count += (y != -100).sum()
                else:  # a pass with nothing to measure keeps the ranks' collectives in step
                    token_loss_sum(model, torch.zeros((1, seq), dtype=torch.long, device=device), torch.full((1, seq), -100, device=device))
            dist.all_reduce(nats)
            dist.all_reduce(count)
            sets[s["name"]] = {"nats": nats.item(), "tokens": int(count.item())}
    model.train()
    return sets


# ---------------------------------------------------------------- optimizer


def clip_and_norm(slots, max_norm, device):
    """Global L2 norm of the trained gradients (masked rows excluded), and clipping as
    `clip_grad_norm_`: `coef = min(max_norm / (norm + 1e-6), 1)`, applied unconditionally."""
    sq = torch.zeros((), dtype=torch.float64, device=device)
    grads = []
    for s in slots:
        if s.param.grad is None:
            continue
        g = s.local(s.param.grad)
        if s.row_mask is not None:
            g.mul_(s.row_mask)
        sq += g.float().pow(2).sum().double()
        grads.append(g)
    dist.all_reduce(sq)
    norm = math.sqrt(sq.item())
    if max_norm > 0:
        coef = min(max_norm / (norm + 1e-6), 1.0)
        for g in grads:
            g.mul_(coef)
    return norm


def adamw_step(slots, lr, n, cfg):
    """One AdamW update, op for op as cptc's built-in engine (and torch.optim.AdamW)."""
    b1, b2, eps, wd = cfg["beta1"], cfg["beta2"], cfg["eps"], cfg["weight_decay"]
    bias1 = 1.0 - b1**n
    bias2_sqrt = math.sqrt(1.0 - b2**n)
    with torch.no_grad():
        for s in slots:
            if s.param.grad is None:
                continue
            g = s.local(s.param.grad)
            p = s.local(s.param)
            s.exp_avg.lerp_(g, 1.0 - b1)
            s.exp_avg_sq.mul_(b2)
            s.exp_avg_sq.addcmul_(g, g * (1.0 - b2))
            denom = s.exp_avg_sq.sqrt()
            denom.div_(bias2_sqrt)
            denom.add_(eps)
            update = s.exp_avg / denom
            decay = s.decay and wd != 0.0
            if s.row_mult is None:
                plr = lr * s.lr_mult
                if decay:
                    p.mul_(1.0 - plr * wd)
                update.mul_(-(plr / bias1))
                p.add_(update)
            else:
                plr = (s.row_mult * lr).to(p.dtype)
                if decay:
                    p.mul_(1.0 - plr * wd)
                p.add_(update * (-(plr / bias1)))


# ---------------------------------------------------------------- checkpoints


def moments_of(slots):
    out = {}
    for s in slots:
        for key, t in (("exp_avg", s.exp_avg), ("exp_avg_sq", s.exp_avg_sq)):
            if isinstance(s.param, DTensor):
                # The global shape and stride must be given: from_local assumes even shards, and
                # a dimension the world does not divide (50,275 rows on 2 ranks) would save
                # overlapping chunks that the checkpoint planner rejects.
                t = DTensor.from_local(
                    t, s.param.device_mesh, s.param.placements, run_check=False, shape=s.param.shape, stride=s.param.stride()
                )
            out[f"{s.name}.{key}"] = t
    return out


def save_checkpoint(root, step, model, slots, state, tied):
    name = f"step-{step:08d}"
    tmp = os.path.join(root, f".{name}.tmp")
    if LOCAL_RANK == 0:  # each node keeps its own folder (its store may be its own disk)
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp, exist_ok=True)
    dist.barrier()
    dcp.save({"model": state_dict_of(model, tied), "optim": moments_of(slots)}, checkpoint_id=tmp)
    dist.barrier()
    if LOCAL_RANK == 0:
        with open(os.path.join(tmp, "trainer_state.json"), "w") as f:
            json.dump({"format": FORMAT, **state}, f)
        final = os.path.join(root, name)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        for old in os.listdir(root):  # the newest only: it is what a resume needs
            if old.startswith("step-") and old != name:
                shutil.rmtree(os.path.join(root, old), ignore_errors=True)
        emit("checkpoint", step=step)
    dist.barrier()


def load_checkpoint(path, model, slots, tied):
    sd = {"model": state_dict_of(model, tied), "optim": moments_of(slots)}
    dcp.load(sd, checkpoint_id=path)
    for s in slots:  # `from_local` views share storage only sometimes: copy back to be sure
        for key, t in (("exp_avg", s.exp_avg), ("exp_avg_sq", s.exp_avg_sq)):
            loaded = sd["optim"][f"{s.name}.{key}"]
            t.copy_(loaded.to_local() if isinstance(loaded, DTensor) else loaded)
    with open(os.path.join(path, "trainer_state.json")) as f:
        return json.load(f)


def agree_on_resume(spec, device):
    """Every rank must resume from the same step or none does (a node whose store lost its
    checkpoint, or one that never had it, starts everyone afresh)."""
    step = -1
    path = spec.get("resume_from")
    if path and os.path.isfile(os.path.join(path, "trainer_state.json")) and os.path.isfile(os.path.join(path, ".metadata")):
        with open(os.path.join(path, "trainer_state.json")) as f:
            step = json.load(f).get("step", -1)
    lo = torch.tensor([step], device=device)
    hi = torch.tensor([step], device=device)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if path and lo.item() != hi.item():
        emit("notice", text=f"not resuming: the processes' checkpoints disagree (steps {lo.item()} to {hi.item()})")
    return lo.item() == hi.item() and lo.item() >= 0


def save_model(model, config, out, tied):
    """The trained weights as one `model.safetensors` (float32) plus `config.json`, written by
    each node's first process from full tensors gathered one at a time (every node gets a
    complete folder; no shared file system needed)."""
    from safetensors.torch import save_file

    full = {}
    for name, t in state_dict_of(model, tied).items():
        t = t.full_tensor() if isinstance(t, DTensor) else t
        if LOCAL_RANK == 0:
            full[name] = t.detach().to("cpu", torch.float32).contiguous()
    if LOCAL_RANK == 0:
        os.makedirs(out, exist_ok=True)
        save_file(full, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
        config.save_pretrained(out)
    dist.barrier()


# ---------------------------------------------------------------- the run


def main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    if spec.get("format") != FORMAT:
        fail("internal", "cptc::fsdp::spec", f"{spec_path}: spec format {spec.get('format')!r}, this engine reads {FORMAT}")
    cuda = torch.cuda.is_available() and spec["device"] == "cuda"
    if cuda:
        torch.cuda.set_device(LOCAL_RANK)
        device = torch.device("cuda", LOCAL_RANK)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(spec["threads"])
    dist.init_process_group("nccl" if cuda else "gloo")
    world = dist.get_world_size()
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(device.type, (world,))
    torch.manual_seed(spec["seed"])

    model, config = load_model(spec, device, mesh)
    slots = plan_slots(model, spec, device)
    tied = spec["tied"]
    n_params = sum(p.numel() for p in model.parameters())
    S, seq, micro = spec["seqs_per_step"], spec["seq_len"], spec["micro_batch"]
    shard = Shard(spec["train_shard"])
    total = min(spec["total_steps"], len(shard) // S)
    exhausted = total < spec["total_steps"]
    eval_steps = set(spec["eval_steps"]) | {total}

    state = {"step": 0, "tokens": 0, "last_loss": None}
    if not agree_on_resume(spec, device):
        spec["resume_from"] = None
    if spec.get("resume_from"):
        state.update({k: v for k, v in load_checkpoint(spec["resume_from"], model, slots, tied).items() if k != "format"})
        extend_context(model, config, spec, device)
        emit("start", world=world, params=n_params, step=state["step"], total=total)
    else:
        dcp.load(state_dict_of(model, tied), storage_reader=dcp.HuggingFaceStorageReader(spec["model_dir"]))
        emit("start", world=world, params=n_params, step=0, total=total)
        # Step 0: the starting model, so gain and forgetting have a baseline.
        emit("eval", step=0, sets=evaluate(model, spec, device, world))
        extend_context(model, config, spec, device)

    last_ckpt = time.monotonic()
    every = spec.get("checkpoint_every_s")
    model.train()
    while state["step"] < total:
        step = state["step"]
        t0 = time.monotonic()
        items = list(range(step * S, (step + 1) * S))
        seqs = {i: shard[i] for i in items[RANK::world]}
        for i, ids in seqs.items():
            if len(ids) != seq + 1:
                fail("input", "cptc::fsdp::shard", f"sequence {i} of the mix shard has {len(ids)} ids, not seq_len + 1 = {seq + 1}")
        # Every target of the step, on every rank: the loss is their mean, as in the built-in engine.
        if shard.mask is None:
            n_targets = S * seq
        else:
            n_targets = max(1, sum(int((shard.targets(i) != -100).sum()) for i in items))
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        for batch in rank_batches(items, world, RANK, micro):
            if batch:
                ids = torch.from_numpy(np.stack([seqs[i] for i in batch])).to(device)
                x = ids[:, :-1]
                y = torch.from_numpy(np.stack([shard.targets(i) for i in batch])).to(device)
                total_nats = token_loss_sum(model, x, y)
                loss_sum += total_nats.detach().double()
                # FSDP averages gradients over ranks: times world gives their sum.
                (total_nats / n_targets * world).backward()
            else:
                x = torch.zeros((1, seq), dtype=torch.long, device=device)
                (token_loss_sum(model, x, torch.full((1, seq), -100, device=device)) * 0.0).backward()
        dist.all_reduce(loss_sum)
        loss = loss_sum.item() / n_targets
        if not math.isfinite(loss):
            fail("input", "cptc::backend::non_finite", f"the training loss at step {step} is {loss}",
                 "lower the LR (or its warmup), or check the data: the weights are no longer trustworthy")
        norm = clip_and_norm(slots, spec["grad_clip"], device)
        if not math.isfinite(norm):
            fail("input", "cptc::backend::non_finite", f"the gradient norm at step {step} is {norm}",
                 "lower the LR (or its warmup), or check the data: the weights are no longer trustworthy")
        lr = spec["lrs"][step]
        adamw_step(slots, lr, step + 1, spec["adamw"])
        for s in slots:
            s.param.grad = None
        state["step"] = step + 1
        state["tokens"] += S * seq
        state["last_loss"] = loss
        emit("step", step=step + 1, loss=loss, lr=lr, grad_norm=norm, tokens=state["tokens"], step_tokens=S * seq,
             secs=time.monotonic() - t0)
        if state["step"] in eval_steps:
            emit("eval", step=state["step"], sets=evaluate(model, spec, device, world))
        due = torch.tensor([1 if every is not None and time.monotonic() - last_ckpt >= every else 0], device=device)
        dist.broadcast(due, 0)  # rank 0's clock decides: every rank must checkpoint together
        if spec.get("checkpoint_dir") and (due.item() or state["step"] == total):
            save_checkpoint(spec["checkpoint_dir"], state["step"], model, slots, state, tied)
            last_ckpt = time.monotonic()

    save_model(model, config, spec["out_dir"], tied)
    emit("done", steps=state["step"], tokens=state["tokens"], last_loss=state["last_loss"], exhausted=exhausted, params=n_params)
    dist.destroy_process_group()


def extend_context(model, config, spec, device):
    """Long-context training: the RoPE base and scaling cptc computed, and positions that cover
    the trained length, in the config (saved with the model); the rotary buffers recomputed as
    the model's constructor does."""
    lc = spec.get("long_context")
    if lc is None:
        return
    config.rope_parameters = dict(lc["rope_parameters"])
    if hasattr(config, "rope_theta"):
        config.rope_theta = lc["rope_parameters"]["rope_theta"]
    config.max_position_embeddings = lc["max_position_embeddings"]
    fresh = skeleton(config)
    # Rotary modules keep more than buffers (their type, YaRN's attention scaling): swapped
    # whole; they hold no parameters.
    for name, module in fresh.named_modules():
        if type(module).__name__.endswith("RotaryEmbedding"):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, module.to(device))
    restore_buffers(model, non_persistent_buffers(fresh), device)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except SystemExit:
        raise
    except torch.OutOfMemoryError as e:
        fail("environment", "cptc::fsdp::out_of_memory", f"out of device memory: {e}".splitlines()[0],
             "use more devices (--nproc-per-node, --nnodes) or a shorter seq_len")
    except Exception as e:
        traceback.print_exc()
        fail("internal", "cptc::fsdp::crashed", f"the FSDP engine failed: {type(e).__name__}: {e}".splitlines()[0],
             "the traceback is in the stage's launch.log")
    # Everything is written and the process group destroyed: leave without the interpreter's
    # teardown, where gloo's worker threads can still be destroyed unjoined ("terminate called
    # without an active exception", an abort after a finished run; see pytorch/pytorch#179291).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
