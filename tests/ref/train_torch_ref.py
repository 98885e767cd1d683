#!/usr/bin/python3
"""PyTorch reference of a short LoRA or full fine-tuning run, for the end-to-end parity test.

Usage:
  train_torch_ref.py --model models/stories260K/stories260K.bin --case CASE.ltt \
      --out REF.ltt [--dtype float32|float64] [--threads N]
  train_torch_ref.py --selfcheck

The model is tests/ref/llama_torch_ref.py's (imported, not copied); the schedule
lambdas are tests/ref/optim_torch_ref.py's (Hugging Face transformers' formulas).

Case file (tests/lib/tensorfile.h "LTT1"):
  mode.full int32[1] (optional; 1: full fine-tuning -- every base weight of the model file
                      is trained, the case holds no LoRA tensors and no lora.* is needed)
  lora.r int32[1], lora.alpha float64[1], lora.use_rslora int32[1]
  lora.dropout (optional, must be 0), rope.layout int32[1] (optional, 0 interleaved, 1 half)
  layers.{l}.self_attn.{q,k,v,o}_proj.lora_A float32[r,in] / .lora_B float32[out,r]
  layers.{l}.mlp.{gate,up,down}_proj.lora_A / .lora_B   (initial adapters; a module absent
                                                         has no LoRA)
  tokens int32[S,GA,B,T], targets int32[S,GA,B,T] (-100 = ignored)
  opt.lr, opt.beta1, opt.beta2, opt.eps, opt.weight_decay, opt.max_grad_norm float64[1]
  sched.kind int32[1] (0 constant, 1 constant_with_warmup, 2 linear, 3 cosine)
  sched.warmup_steps int32[1], sched.total_steps int32[1]

One optimizer step s (as the Hugging Face Trainer does it with num_items_in_batch):
  zero the gradients of the trained parameters (LoRA, or with mode.full every weight);
  N = non-ignored targets over all GA micro-batches of step s;
  for each micro-batch g: loss_g = (sum of its token cross-entropies) / N; backward
  (gradients accumulate); the step's loss = sum over g of loss_g (the token mean over
  the whole accumulated batch);
  grad_norm = clip_grad_norm_(trained params, max_grad_norm), the norm before clipping
  (max_grad_norm <= 0: no clipping, the norm is still reported);
  torch.optim.AdamW.step() at the schedule's lr for s (LambdaLR: lr_lambda(s));
  scheduler.step().
Dropout is 0 (the case may not ask for more).
Full fine-tuning trains model.named_parameters() in one AdamW parameter group (weight decay
on every weight, norms and embedding included, as loratrain's one flat buffer does). A tied
classifier (llama2.c's shared_classifier) is the embedding matrix itself: one Parameter,
whose gradient sums the embedding lookup's and the classifier's.

Output file (all float64):
  loss [S], grad_norm [S], lr [S], and every final trained tensor: the LoRA tensors under
  their case names, or with mode.full every weight under its model name
  (embed_tokens.weight, layers.{l}.input_layernorm.weight, layers.{l}.self_attn.q_proj.weight,
  ..., norm.weight, and lm_head.weight when the classifier is not tied).
"""
import argparse
import math
import os
import sys
import tempfile
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))  # tensorfile.py
import llama_torch_ref as ref  # noqa: E402
import optim_torch_ref  # noqa: E402
import tensorfile  # noqa: E402

RefError = ref.RefError

SCALAR_NAMES = {
    "lora.r": int, "lora.alpha": float, "lora.use_rslora": int, "lora.dropout": float,
    "rope.layout": int, "mode.full": int,
    "opt.lr": float, "opt.beta1": float, "opt.beta2": float, "opt.eps": float,
    "opt.weight_decay": float, "opt.max_grad_norm": float,
    "sched.kind": int, "sched.warmup_steps": int, "sched.total_steps": int,
}
REQUIRED = ("opt.lr", "opt.beta1", "opt.beta2", "opt.eps",
            "opt.weight_decay", "opt.max_grad_norm", "sched.kind", "sched.warmup_steps",
            "sched.total_steps")


def _scalars(case):
    out = {}
    for name, kind in SCALAR_NAMES.items():
        if name not in case:
            continue
        a = case[name]
        if a.size != 1:
            raise RefError("case %s: %d elements, expected 1" % (name, a.size))
        out[name] = kind(a.reshape(-1)[0])
    need = REQUIRED if out.get("mode.full", 0) else ("lora.r", "lora.alpha") + REQUIRED
    missing = [n for n in need if n not in out]
    if missing:
        raise RefError("case lacks %s" % ", ".join(missing))
    return out


def check_case(case, cfg):
    """Validates the case against the model; returns (scalars, tokens, targets, lora names)."""
    sc = _scalars(case)
    for name in ("tokens", "targets"):
        if name not in case:
            raise RefError("case lacks %s" % name)
        a = case[name]
        if a.ndim != 4 or a.dtype != np.int32:
            raise RefError("case %s: %s %s, expected int32 [S,GA,B,T]" % (name, a.dtype, a.shape))
    tokens, targets = case["tokens"], case["targets"]
    if targets.shape != tokens.shape:
        raise RefError("case targets %s, expected the tokens' shape %s" % (targets.shape,
                                                                           tokens.shape))
    S, GA, B, T = tokens.shape
    V = cfg["vocab_size"]
    if min(S, GA, B, T) < 1:
        raise RefError("case tokens: shape %s, expected every dimension >= 1" % (tokens.shape,))
    if T > cfg["seq_len"]:
        raise RefError("case tokens: T=%d exceeds the model's seq_len %d" % (T, cfg["seq_len"]))
    if tokens.min() < 0 or tokens.max() >= V:
        raise RefError("case tokens: values in [%d,%d], expected [0,%d)"
                       % (tokens.min(), tokens.max(), V))
    bad = (targets != ref.IGNORE_INDEX) & ((targets < 0) | (targets >= V))
    if bad.any():
        raise RefError("case targets: value %d is neither -100 nor in [0,%d)" % (targets[bad][0], V))
    for s in range(S):
        if not (targets[s] != ref.IGNORE_INDEX).any():
            raise RefError("case targets: step %d has no target that is not -100 (its loss "
                           "would divide by zero)" % s)
    if sc.get("lora.dropout", 0.0) != 0.0:
        raise RefError("case lora.dropout = %g, the training reference needs 0"
                       % sc["lora.dropout"])
    if sc.get("mode.full", 0) not in (0, 1):
        raise RefError("case mode.full = %d, expected 0 (LoRA) or 1 (full fine-tuning)"
                       % sc["mode.full"])
    if sc.get("rope.layout", 0) not in (0, 1):
        raise RefError("case rope.layout = %d, expected 0 (interleaved) or 1 (half)"
                       % sc["rope.layout"])
    if sc["sched.kind"] not in (0, 1, 2, 3):
        raise RefError("case sched.kind = %d, expected 0 constant, 1 constant_with_warmup, "
                       "2 linear, 3 cosine" % sc["sched.kind"])
    if sc["sched.total_steps"] < 1 or not 0 <= sc["sched.warmup_steps"] <= sc["sched.total_steps"]:
        raise RefError("case sched.warmup_steps = %d, sched.total_steps = %d, expected "
                       "0 <= warmup <= total, total >= 1"
                       % (sc["sched.warmup_steps"], sc["sched.total_steps"]))
    known = set(ref.lora_module_names(cfg["n_layers"]))
    lora_names = []
    for name in case:
        if name.endswith(".lora_A") or name.endswith(".lora_B"):
            if name[:-len(".lora_A")] not in known:
                raise RefError("case %s: no such module in a %d-layer model"
                               % (name, cfg["n_layers"]))
            lora_names.append(name)
        elif name not in SCALAR_NAMES and name not in ("tokens", "targets"):
            raise RefError("case %s: unknown tensor name" % name)
    if sc.get("mode.full", 0):
        if lora_names:
            raise RefError("case %s: a full fine-tuning case (mode.full = 1) holds no LoRA "
                           "tensors" % lora_names[0])
        return sc, tokens, targets, lora_names
    if not lora_names:
        raise RefError("case has no LoRA tensors (*.lora_A / *.lora_B)")
    r = sc["lora.r"]
    for name in lora_names:
        mod = name[:-len(".lora_A")]
        for part in ("lora_A", "lora_B"):
            if mod + "." + part not in case:
                raise RefError("case: %s.%s missing (both A and B needed)" % (mod, part))
        A, Bm = case[mod + ".lora_A"], case[mod + ".lora_B"]
        if A.ndim != 2 or Bm.ndim != 2 or A.shape[0] != r or Bm.shape[1] != r:
            raise RefError("case %s: lora_A %s / lora_B %s, expected [r=%d,in] / [out,r=%d]"
                           % (mod, A.shape, Bm.shape, r, r))
    return sc, tokens, targets, lora_names


def train(cfg, weights, case, dtype):
    """Runs the case; returns an OrderedDict of float64 numpy outputs."""
    sc, tokens, targets, lora_names = check_case(case, cfg)
    S, GA, B, T = tokens.shape
    V = cfg["vocab_size"]
    model = ref.Llama(cfg, "half" if sc.get("rope.layout", 0) == 1 else "interleaved")
    model.load_base(weights)
    model.to(dtype)
    if sc.get("mode.full", 0):
        names = full_param_names(model)
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        names = lora_names
        r = sc["lora.r"]
        scaling = ref.lora_scaling(sc["lora.alpha"], r, bool(sc.get("lora.use_rslora", 0)))
        mods = OrderedDict((n[:-len(".lora_A")], None) for n in lora_names)
        for mod in mods:
            model.get_submodule(mod).set_lora(torch.tensor(case[mod + ".lora_A"], dtype=dtype),
                                              torch.tensor(case[mod + ".lora_B"], dtype=dtype),
                                              scaling)
    model.train()  # dropout is 0, so train/eval give the same result
    params = [model.get_parameter(n) for n in names]

    opt = torch.optim.AdamW(params, lr=sc["opt.lr"], betas=(sc["opt.beta1"], sc["opt.beta2"]),
                            eps=sc["opt.eps"], weight_decay=sc["opt.weight_decay"],
                            amsgrad=False, maximize=False, foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, optim_torch_ref.hf_lambda(sc["sched.kind"], sc["sched.warmup_steps"],
                                       sc["sched.total_steps"]))
    max_norm = sc["opt.max_grad_norm"]
    losses, norms, lrs = np.zeros(S), np.zeros(S), np.zeros(S)
    tok_all = torch.from_numpy(tokens.astype(np.int64))
    tgt_all = torch.from_numpy(targets.astype(np.int64))
    for s in range(S):
        for p in params:
            p.grad = None
        n_items = int((targets[s] != ref.IGNORE_INDEX).sum())
        step_loss = 0.0
        for g in range(GA):
            logits = model(tok_all[s, g])
            loss = F.cross_entropy(logits.reshape(-1, V), tgt_all[s, g].reshape(-1),
                                   ignore_index=ref.IGNORE_INDEX, reduction="sum") / n_items
            loss.backward()
            step_loss += loss.item()
        for p in params:  # a micro-batch may leave a parameter untouched
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if max_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        else:  # the HF Trainer does not clip; the norm is still worth comparing
            norm = torch.norm(torch.stack([torch.norm(p.grad.detach(), 2.0) for p in params]), 2.0)
        losses[s] = step_loss
        norms[s] = float(norm)
        lrs[s] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    out = OrderedDict()
    out["loss"] = losses
    out["grad_norm"] = norms
    out["lr"] = lrs
    for n, p in zip(names, params):
        out[n] = p.detach().to(torch.float64).numpy()
    return out


def full_param_names(model):
    """Every weight of the reference model, once each (a tied classifier is the embedding,
    which named_parameters() lists once)."""
    return [n for n, _ in model.named_parameters()]


# ---------------------------------------------------------------------------
# Self-check: the training loop against a hand-written one on a tiny model
# ---------------------------------------------------------------------------

def write_llama2c(path, cfg, gen):
    """A random model in llama2.c's legacy format (what ref.load_llama2c reads)."""
    dim, hid, L = cfg["dim"], cfg["hidden_dim"], cfg["n_layers"]
    nh, nkv, V, seq = cfg["n_heads"], cfg["n_kv_heads"], cfg["vocab_size"], cfg["seq_len"]
    hs = dim // nh
    kv = nkv * hs

    def rnd(*shape, scale):
        return (gen.standard_normal(shape) * scale).astype(np.float32)

    parts = [rnd(V, dim, scale=1.0),
             (1 + 0.1 * gen.standard_normal((L, dim))).astype(np.float32),
             rnd(L, dim, dim, scale=dim ** -0.5), rnd(L, kv, dim, scale=dim ** -0.5),
             rnd(L, kv, dim, scale=dim ** -0.5), rnd(L, dim, dim, scale=dim ** -0.5),
             (1 + 0.1 * gen.standard_normal((L, dim))).astype(np.float32),
             rnd(L, hid, dim, scale=dim ** -0.5), rnd(L, dim, hid, scale=hid ** -0.5),
             rnd(L, hid, dim, scale=dim ** -0.5),
             (1 + 0.1 * gen.standard_normal(dim)).astype(np.float32),
             np.zeros(2 * seq * (hs // 2), dtype=np.float32)]  # freq_cis, unused
    vocab_field = V if cfg["shared_classifier"] else -V
    if not cfg["shared_classifier"]:
        parts.append(rnd(V, dim, scale=dim ** -0.5))
    with open(path, "wb") as f:
        f.write(np.array([dim, hid, L, nh, nkv, vocab_field, seq], dtype="<i4").tobytes())
        for p in parts:
            f.write(np.ascontiguousarray(p, dtype="<f4").tobytes())


def hand_loop(cfg, weights, case):
    """Float64, written from the definitions without torch.optim or grad accumulation:
    the gradient of a step is that of the token-mean loss over all its micro-batches
    concatenated into one batch; clipping, the schedule and AdamW in numpy."""
    sc = _scalars(case)
    tokens, targets = case["tokens"], case["targets"]
    S, GA, B, T = tokens.shape
    model = ref.Llama(cfg, "interleaved")
    model.load_base(weights)
    model.to(torch.float64)
    if sc.get("mode.full", 0):
        # every weight, initial values from the model file; a tied embedding is one tensor
        names = full_param_names(model)
        P = OrderedDict((n, model.get_parameter(n).detach().numpy().copy()) for n in names)
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        names = [n for n in case if n.endswith(".lora_A") or n.endswith(".lora_B")]
        r = sc["lora.r"]
        scaling = ref.lora_scaling(sc["lora.alpha"], r, bool(sc.get("lora.use_rslora", 0)))
        P = OrderedDict((n, case[n].astype(np.float64)) for n in names)
        for n in names:
            if n.endswith(".lora_A"):  # values are copied in at every step
                mod = n[:-len(".lora_A")]
                model.get_submodule(mod).set_lora(torch.zeros(case[n].shape, dtype=torch.float64),
                                                  torch.zeros(case[mod + ".lora_B"].shape,
                                                              dtype=torch.float64), scaling)
    m = {n: np.zeros_like(P[n]) for n in names}
    v = {n: np.zeros_like(P[n]) for n in names}
    lr0, b1, b2 = sc["opt.lr"], sc["opt.beta1"], sc["opt.beta2"]
    eps, wd, max_norm = sc["opt.eps"], sc["opt.weight_decay"], sc["opt.max_grad_norm"]
    W, Tt, kind = sc["sched.warmup_steps"], sc["sched.total_steps"], sc["sched.kind"]
    losses, norms, lrs = [], [], []
    for s in range(S):
        params = [model.get_parameter(n) for n in names]
        with torch.no_grad():
            for n, p in zip(names, params):
                p.copy_(torch.from_numpy(P[n]))
        tok = torch.from_numpy(tokens[s].reshape(GA * B, T).astype(np.int64))
        tgt = torch.from_numpy(targets[s].reshape(GA * B, T).astype(np.int64))
        loss = ref.loss_fn(model(tok), tgt)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        G = {n: (np.zeros_like(P[n]) if g is None else g.numpy().copy())
             for n, g in zip(names, grads)}
        norm = math.sqrt(sum(float((G[n] ** 2).sum()) for n in names))
        if max_norm > 0 and max_norm / (norm + 1e-6) < 1:
            for n in names:
                G[n] *= max_norm / (norm + 1e-6)
        # the schedules, from their definitions
        if kind == 0:
            f = 1.0
        elif s < W:
            f = s / max(1, W)
        elif kind == 1:
            f = 1.0
        elif kind == 2:
            f = max(0.0, (Tt - s) / max(1, Tt - W))
        else:
            f = max(0.0, (1 + math.cos(math.pi * (s - W) / max(1, Tt - W))) / 2)
        lr = lr0 * f
        t = s + 1
        for n in names:
            P[n] = P[n] * (1 - lr * wd)
            m[n] = b1 * m[n] + (1 - b1) * G[n]
            v[n] = b2 * v[n] + (1 - b2) * G[n] ** 2
            mhat = m[n] / (1 - b1 ** t)
            vhat = v[n] / (1 - b2 ** t)
            P[n] = P[n] - lr * mhat / (np.sqrt(vhat) + eps)
        losses.append(float(loss))
        norms.append(norm)
        lrs.append(lr)
    return np.array(losses), np.array(norms), np.array(lrs), P


def _model_with_case_lora(cfg, weights, case):
    sc = _scalars(case)
    model = ref.Llama(cfg, "interleaved")
    model.load_base(weights)
    model.to(torch.float64)
    scaling = ref.lora_scaling(sc["lora.alpha"], sc["lora.r"], bool(sc.get("lora.use_rslora", 0)))
    for n in case:
        if n.endswith(".lora_A"):
            mod = n[:-len(".lora_A")]
            model.get_submodule(mod).set_lora(torch.tensor(case[n], dtype=torch.float64),
                                              torch.tensor(case[mod + ".lora_B"],
                                                           dtype=torch.float64), scaling)
    return model


def _step0_micro_losses(model, case, V):
    """Step 0's micro-batch losses, each sum / N over the whole step (the script's rule)."""
    tokens, targets = case["tokens"][0], case["targets"][0]
    n_items = int((targets != ref.IGNORE_INDEX).sum())
    for g in range(tokens.shape[0]):
        lg = model(torch.from_numpy(tokens[g].astype(np.int64)))
        yield F.cross_entropy(lg.reshape(-1, V),
                              torch.from_numpy(targets[g].astype(np.int64)).reshape(-1),
                              ignore_index=ref.IGNORE_INDEX, reduction="sum") / n_items


def fd_step0(cfg, weights, case, name, idx, h=1e-5):
    """Central difference of step 0's loss in one element of one LoRA tensor."""
    model = _model_with_case_lora(cfg, weights, case)
    p = model.get_parameter(name)
    with torch.no_grad():
        x0 = float(p.view(-1)[idx])
        p.view(-1)[idx] = x0 + h
        up = sum(float(l) for l in _step0_micro_losses(model, case, cfg["vocab_size"]))
        p.view(-1)[idx] = x0 - h
        down = sum(float(l) for l in _step0_micro_losses(model, case, cfg["vocab_size"]))
    return (up - down) / (2 * h)


def accumulated_grad_step0(cfg, weights, case, name, idx):
    """Step 0's gradient accumulated over micro-batches, as the script accumulates it."""
    model = _model_with_case_lora(cfg, weights, case)
    for loss in _step0_micro_losses(model, case, cfg["vocab_size"]):
        loss.backward()
    return float(model.get_parameter(name).grad.view(-1)[idx])


def _full_step0_grad(model, case, V):
    """Step 0's accumulated gradient of every parameter of model (all trainable)."""
    for p in model.parameters():
        p.requires_grad_(True)
        p.grad = None
    for loss in _step0_micro_losses(model, case, V):
        loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def full_selfcheck(check, td, gen, tokens, targets):
    """mode.full on a tied and an untied random model: the script against the hand loop,
    and the tied embedding's gradient against its two uses taken apart."""
    for shared in (True, False):
        cfg = dict(dim=16, hidden_dim=24, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=32,
                   seq_len=8, shared_classifier=shared)
        tag = "full, %s classifier" % ("tied" if shared else "untied")
        mpath = os.path.join(td, "full-%d.bin" % shared)
        write_llama2c(mpath, cfg, gen)
        cfg_l, weights = ref.load_llama2c(mpath)
        case = OrderedDict()
        case["mode.full"] = np.array([1], dtype=np.int32)
        case["tokens"] = tokens[:4]
        case["targets"] = targets[:4]
        for k, v in (("opt.lr", 1e-2), ("opt.beta1", 0.9), ("opt.beta2", 0.95),
                     ("opt.eps", 1e-8), ("opt.weight_decay", 0.1), ("opt.max_grad_norm", 0.0)):
            case[k] = np.array([v])
        for k, v in (("sched.kind", 3), ("sched.warmup_steps", 1), ("sched.total_steps", 4)):
            case[k] = np.array([v], dtype=np.int32)
        cpath = os.path.join(td, "full-case.ltt")
        opath = os.path.join(td, "full-out.ltt")
        # max_grad_norm at the median of an unclipped run's norms, so that some steps clip
        tensorfile.write(cpath, case)
        rc = main(["--model", mpath, "--case", cpath, "--out", opath, "--dtype", "float64"])
        mgn = float(np.median(tensorfile.read(opath)["grad_norm"])) if rc == 0 else 1.0
        case["opt.max_grad_norm"] = np.array([mgn])
        tensorfile.write(cpath, case)
        rc = rc or main(["--model", mpath, "--case", cpath, "--out", opath, "--dtype", "float64"])
        check(rc == 0, "%s: the script runs" % tag)
        if rc:
            continue
        out = tensorfile.read(opath)
        case_rt = tensorfile.read(cpath)
        h_loss, h_norm, h_lr, h_P = hand_loop(cfg_l, weights, case_rt)
        want = ["embed_tokens.weight"] + [k for k in weights if k != "embed_tokens.weight"]
        got = [k for k in out if k not in ("loss", "grad_norm", "lr")]
        check(sorted(got) == sorted(want) and ("lm_head.weight" in got) == (not shared),
              "%s: every weight is output, once (%d tensors)" % (tag, len(got)))
        d_loss = float(np.max(np.abs(out["loss"] - h_loss) / np.abs(h_loss)))
        d_norm = float(np.max(np.abs(out["grad_norm"] - h_norm) / h_norm))
        d_lr = float(np.max(np.abs(out["lr"] - h_lr)))
        d_p = max(float(np.max(np.abs(out[n] - h_P[n])) / np.max(np.abs(h_P[n] - weights[n])))
                  for n in h_P)
        check(d_loss < 1e-12 and d_norm < 1e-12 and d_lr < 1e-15,
              "%s: loss, grad norm, lr == hand loop (%.1e %.1e %.1e)" % (tag, d_loss, d_norm, d_lr))
        check(d_p < 1e-9, "%s: final weights == hand loop (%.1e of the update)" % (tag, d_p))
        moved = min(float(np.max(np.abs(out[n] - weights[n]))) for n in got)
        clipped = int((out["grad_norm"] > mgn).sum())
        check(moved > 1e-3 and 0 < clipped < 4, "%s: every tensor moved (%.2g), %d of 4 steps "
              "clipped" % (tag, moved, clipped))
        if shared:
            # one Parameter, two uses: its gradient is the lookup's plus the classifier's,
            # taken apart on an untied copy whose lm_head holds the same matrix
            V = cfg["vocab_size"]
            tied = ref.Llama(cfg_l, "interleaved")
            tied.load_base(weights)
            tied.to(torch.float64)
            g_tied = _full_step0_grad(tied, case_rt, V)
            untied = ref.Llama(dict(cfg_l, shared_classifier=False), "interleaved")
            w2 = OrderedDict(weights)
            w2["lm_head.weight"] = weights["embed_tokens.weight"]
            untied.load_base(w2)
            untied.to(torch.float64)
            g_un = _full_step0_grad(untied, case_rt, V)
            g_sum = g_un["embed_tokens.weight"] + g_un["lm_head.weight"]
            d_tie = float((g_tied["embed_tokens.weight"] - g_sum).abs().max()
                          / g_sum.abs().max())
            both = float(min(g_un["embed_tokens.weight"].abs().max(),
                             g_un["lm_head.weight"].abs().max()))
            check(d_tie < 1e-12 and both > 1e-6, "tied embedding gradient == lookup + classifier "
                  "(%.1e)" % d_tie)
            # and against a central difference of step 0's loss in one tied element
            tok0 = int(case_rt["tokens"][0, 0, 0, 1])
            idx = tok0 * cfg["dim"] + 3
            p = tied.get_parameter("embed_tokens.weight")
            with torch.no_grad():
                x0 = float(p.view(-1)[idx])
                vals = []
                for x in (x0 + 1e-5, x0 - 1e-5):
                    p.view(-1)[idx] = x
                    vals.append(sum(float(l) for l in _step0_micro_losses(tied, case_rt, V)))
                p.view(-1)[idx] = x0
            fd = (vals[0] - vals[1]) / 2e-5
            an = float(g_tied["embed_tokens.weight"].view(-1)[idx])
            rel = abs(fd - an) / max(abs(an), 1e-12)
            check(rel < 1e-5, "tied embed_tokens.weight[%d] step-0 gradient %.6g vs central "
                  "difference (rel %.1e)" % (idx, an, rel))


def run_selfcheck():
    failures = []

    def check(ok, what):
        print("selfcheck: %-66s %s" % (what, "ok" if ok else "FAILED"))
        if not ok:
            failures.append(what)

    gen = np.random.default_rng(7)
    cfg = dict(dim=16, hidden_dim=24, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=32,
               seq_len=8, shared_classifier=False)
    S, GA, B, T, r = 5, 3, 2, 6, 2
    with tempfile.TemporaryDirectory() as td:
        mpath = os.path.join(td, "tiny.bin")
        write_llama2c(mpath, cfg, gen)
        cfg_l, weights = ref.load_llama2c(mpath)
        check(cfg_l == cfg, "random llama2.c model written and read back")

        tokens = gen.integers(0, 32, size=(S, GA, B, T)).astype(np.int32)
        targets = gen.integers(0, 32, size=(S, GA, B, T)).astype(np.int32)
        # uneven masking: micro-batches with many, few and no targets
        targets[0, 0, :, :4] = ref.IGNORE_INDEX
        targets[0, 2] = ref.IGNORE_INDEX
        targets[1, 1, 0, :] = ref.IGNORE_INDEX
        targets[3, :, 1, 1:] = ref.IGNORE_INDEX
        base_case = OrderedDict()
        base_case["lora.r"] = np.array([r], dtype=np.int32)
        base_case["lora.alpha"] = np.array([5.0])
        base_case["lora.use_rslora"] = np.array([0], dtype=np.int32)
        base_case["tokens"] = tokens
        base_case["targets"] = targets
        model = ref.Llama(cfg, "interleaved")
        for mod in ref.lora_module_names(cfg["n_layers"]):
            if mod == "layers.1.mlp.up_proj":
                continue  # a module without LoRA
            lin = model.get_submodule(mod)
            base_case[mod + ".lora_A"] = (gen.standard_normal((r, lin.in_features))
                                          / math.sqrt(lin.in_features)).astype(np.float32)
            base_case[mod + ".lora_B"] = (0.1 * gen.standard_normal((lin.out_features, r))
                                          ).astype(np.float32)

        variants = [
            # kind, W, T, lr, wd, max_grad_norm, betas, eps
            (2, 1, 4, 2e-2, 0.1, 0.5, (0.9, 0.999), 1e-8),   # linear, past T at s = 4
            (3, 2, 5, 5e-2, 0.0, 0.0, (0.8, 0.95), 1e-6),    # cosine, no clipping
            (1, 3, 5, 1e-2, 0.3, 1e9, (0.9, 0.99), 1e-8),    # constant_with_warmup, never clips
            (0, 2, 5, 1e-2, 0.01, 1.5, (0.9, 0.999), 1e-3),  # constant ignores warmup; clips some
        ]
        for kind, W, Tt, lr, wd, mgn, (b1, b2), eps in variants:
            case = OrderedDict(base_case)
            case["opt.lr"] = np.array([lr])
            case["opt.beta1"] = np.array([b1])
            case["opt.beta2"] = np.array([b2])
            case["opt.eps"] = np.array([eps])
            case["opt.weight_decay"] = np.array([wd])
            case["opt.max_grad_norm"] = np.array([mgn])
            case["sched.kind"] = np.array([kind], dtype=np.int32)
            case["sched.warmup_steps"] = np.array([W], dtype=np.int32)
            case["sched.total_steps"] = np.array([Tt], dtype=np.int32)
            cpath = os.path.join(td, "case.ltt")
            opath = os.path.join(td, "out.ltt")
            tensorfile.write(cpath, case)  # through the command line, as the C test will
            rc = main(["--model", mpath, "--case", cpath, "--out", opath, "--dtype", "float64"])
            check(rc == 0, "%s: the script runs" % optim_torch_ref.SCHED_NAMES[kind])
            if rc:
                continue
            out = tensorfile.read(opath)
            case_rt = tensorfile.read(cpath)
            h_loss, h_norm, h_lr, h_P = hand_loop(cfg, weights, case_rt)
            name = optim_torch_ref.SCHED_NAMES[kind]
            d_loss = float(np.max(np.abs(out["loss"] - h_loss) / np.abs(h_loss)))
            d_norm = float(np.max(np.abs(out["grad_norm"] - h_norm) / h_norm))
            d_lr = float(np.max(np.abs(out["lr"] - h_lr)))
            d_p = max(float(np.max(np.abs(out[n] - h_P[n])) / np.max(np.abs(h_P[n])))
                      for n in h_P)
            moved = max(float(np.max(np.abs(h_P[n] - case_rt[n]))) for n in h_P)
            check(d_loss < 1e-12, "%s: loss per step == hand loop (%.1e)" % (name, d_loss))
            check(d_norm < 1e-12, "%s: grad norm per step == hand loop (%.1e)" % (name, d_norm))
            check(d_lr < 1e-15, "%s: lr per step == definition (%.1e)" % (name, d_lr))
            check(d_p < 1e-10, "%s: final LoRA tensors == hand loop (%.1e)" % (name, d_p))
            check(moved > lr, "%s: training moved the adapters (%.2g)" % (name, moved))
            clipped = (out["grad_norm"] > mgn).any() if mgn > 0 else False
            print("selfcheck:   %s lr %s, grad_norm %s, loss %s%s" % (
                name, np.array2string(out["lr"], precision=4),
                np.array2string(out["grad_norm"], precision=4),
                np.array2string(out["loss"], precision=5), " (clipped)" if clipped else ""))
            if kind == 2:
                # float32 run tracks float64 loosely
                rc32 = main(["--model", mpath, "--case", cpath, "--out", opath + "32",
                             "--dtype", "float32"])
                o32 = tensorfile.read(opath + "32")
                d32 = max(float(np.max(np.abs(o32[n] - out[n])) / np.max(np.abs(out[n])))
                          for n in h_P)
                check(rc32 == 0 and d32 < 1e-4, "%s: float32 run within 1e-4 of float64 (%.1e)"
                      % (name, d32))
                # the accumulation rule itself (each micro-batch's sum over the
                # step's N, gradients added) against a central difference of the loss
                for gname, idx in (("layers.0.self_attn.q_proj.lora_B", 3),
                                   ("layers.1.mlp.down_proj.lora_A", 7)):
                    fd = fd_step0(cfg, weights, case_rt, gname, idx)
                    an = accumulated_grad_step0(cfg, weights, case_rt, gname, idx)
                    rel = abs(fd - an) / max(abs(an), 1e-12)
                    check(rel < 1e-5, "step-0 accumulated gradient %s[%d] = %.6g vs central "
                          "difference (rel %.1e)" % (gname, idx, an, rel))
        full_selfcheck(check, td, gen, tokens, targets)
        # malformed cases are refused with a message
        bad = OrderedDict(base_case)
        bad["opt.lr"] = np.array([1e-3])
        cpath = os.path.join(td, "bad.ltt")
        tensorfile.write(cpath, bad)
        print("selfcheck: a malformed case follows; its error line is expected", flush=True)
        rc = main(["--model", mpath, "--case", cpath, "--out", os.path.join(td, "o.ltt")])
        check(rc == 2, "a case without opt.beta1 etc. is refused")
    if failures:
        print("selfcheck: %d FAILED: %s" % (len(failures), "; ".join(failures)))
        return 1
    print("selfcheck: all passed")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="llama2.c checkpoint (.bin, or its folder)")
    ap.add_argument("--case", help="input case file (LTT1)")
    ap.add_argument("--out", help="output reference file (LTT1)")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--selfcheck", action="store_true",
                    help="check the training loop against a hand-written one on a tiny model")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.selfcheck:
        return run_selfcheck()
    if not args.model or not args.case or not args.out:
        ap.error("--model, --case and --out are required (or use --selfcheck)")
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    try:
        cfg, weights = ref.load_llama2c(ref.resolve_model_path(args.model))
        case = tensorfile.read(args.case)
        out = train(cfg, weights, case, dtype)
        tensorfile.write(args.out, out)
    except (RefError, tensorfile.TensorFileError, OSError) as e:
        print("train_torch_ref: error: %s" % e, file=sys.stderr)
        return 2
    print("train_torch_ref: %d steps, dtype %s, loss %.6f -> %.6f, grad_norm %.4g -> %.4g"
          % (len(out["loss"]), args.dtype, out["loss"][0], out["loss"][-1], out["grad_norm"][0],
             out["grad_norm"][-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
