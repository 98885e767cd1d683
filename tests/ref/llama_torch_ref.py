#!/usr/bin/python3
"""Independent PyTorch reference of the Llama decoder with Hugging Face PEFT LoRA.

Used by the C parity test: the C side writes a case file (tests/lib/tensorfile.h
"LTT1" format) holding the tokens, targets and LoRA tensors, this script
computes logits, loss and LoRA gradients with torch autograd and writes them
back.

Usage:
  llama_torch_ref.py --model models/stories260K/stories260K.bin \
      --case CASE.ltt --out REF.ltt [--dtype float64|float32] [--rope_layout interleaved|half]
  llama_torch_ref.py --model models/stories260K/stories260K.bin --greedy 256 \
      [--expect models/stories260K/expected_greedy_t0_256.ids]
  llama_torch_ref.py --selfcheck

Case file (all optional except tokens):
  lora.r int32[1], lora.alpha float64[1], lora.use_rslora int32[1],
  lora.dropout float (must be 0 when present), rope.layout int32[1] (0 interleaved, 1 half),
  tokens int32[B,T], targets int32[B,T] (-100 = ignored),
  layers.{l}.self_attn.{q,k,v,o}_proj.lora_A float32[r,in] / .lora_B float32[out,r],
  layers.{l}.mlp.{gate,up,down}_proj.lora_A / .lora_B (a module absent has no LoRA),
  quant.config int32[3] (format 1 nf4 / 2 fp4 / 3 int8, blocksize, double quant) with, for
  every decoder linear, <module>.quant.codes int32 (bytes), .quant.absmax (float32, or
  int32 codes with double quant), .quant.absmax2, .quant.offset: the base linears are then
  these quantized weights, dequantized by tests/ref/quant_ref.py (QLoRA: autograd through the
  dequantized frozen weights).
Output file:
  logits f64[B,T,V], loss f64[1] (only with targets), <lora name>.grad f64 (only with
  targets), base_logits f64[B,T,V] (the model without any LoRA).

The model is written from the published maths (llama2.c run.c / HF LlamaModel / PEFT
lora.Linear), not from the C code:
  RMSNorm eps 1e-5; RoPE theta 10000 in llama2.c's adjacent-pair layout (default) or HF's
  rotate_half layout; grouped-query attention (kv head = h // (n_heads // n_kv_heads));
  SwiGLU MLP (llama2.c w1 = gate_proj, w3 = up_proj, w2 = down_proj); shared or separate
  classifier. LoRA: y = base(x) + lora_B(lora_A(dropout(x))) * scaling,
  scaling = alpha / r, or alpha / sqrt(r) with use_rslora.
"""
import argparse
import math
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.stateless import functional_call

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))  # tensorfile.py
import tensorfile  # noqa: E402

ATTN_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
RMS_EPS = 1e-5
ROPE_THETA = 10000.0
IGNORE_INDEX = -100
BOS = 1


class RefError(Exception):
    pass


# ---------------------------------------------------------------------------
# llama2.c checkpoint (legacy v0) loading, numpy only
# ---------------------------------------------------------------------------

def resolve_model_path(path):
    """Accept the .bin itself or a folder holding exactly one model .bin."""
    if os.path.isdir(path):
        cands = sorted(f for f in os.listdir(path)
                       if f.endswith(".bin") and not f.startswith("tok"))
        if len(cands) != 1:
            raise RefError("%s: folder must hold exactly one model .bin (not tok*.bin), found %s"
                           % (path, cands))
        return os.path.join(path, cands[0])
    if not os.path.exists(path):
        # also accept "models/stories260K/bin" meaning that folder's model .bin
        d, base = os.path.split(path)
        if base == "bin" and os.path.isdir(d):
            return resolve_model_path(d)
        raise RefError("%s: no such model file" % path)
    return path


def load_llama2c(path):
    """Return (config dict, OrderedDict of float32 numpy arrays in HF-style names)."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size < 28:
        raise RefError("%s: %d bytes, too small for the 28-byte header" % (path, raw.size))
    hdr = raw[:28].view("<i4")
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = (int(v) for v in hdr)
    shared = vocab > 0
    vocab = abs(vocab)
    for name, v in (("dim", dim), ("hidden_dim", hidden), ("n_layers", n_layers),
                    ("n_heads", n_heads), ("n_kv_heads", n_kv), ("vocab_size", vocab),
                    ("seq_len", seq_len)):
        if v <= 0:
            raise RefError("%s: header %s = %d, expected > 0" % (path, name, v))
    if dim % n_heads:
        raise RefError("%s: dim %d not divisible by n_heads %d" % (path, dim, n_heads))
    if n_heads % n_kv:
        raise RefError("%s: n_heads %d not divisible by n_kv_heads %d" % (path, n_heads, n_kv))
    hs = dim // n_heads
    if hs % 2:
        raise RefError("%s: head_size %d must be even for RoPE" % (path, hs))
    kv_dim = n_kv * hs
    L = n_layers
    layout = [
        ("tok_embeddings", (vocab, dim)),
        ("rms_att", (L, dim)),
        ("wq", (L, dim, dim)),
        ("wk", (L, kv_dim, dim)),
        ("wv", (L, kv_dim, dim)),
        ("wo", (L, dim, dim)),
        ("rms_ffn", (L, dim)),
        ("w1", (L, hidden, dim)),
        ("w2", (L, dim, hidden)),
        ("w3", (L, hidden, dim)),
        ("rms_final", (dim,)),
        ("freq_cis", (2, seq_len, hs // 2)),  # skipped
    ]
    if not shared:
        layout.append(("wcls", (vocab, dim)))
    n_floats = sum(int(np.prod(s)) for _, s in layout)
    expect = 28 + 4 * n_floats
    if raw.size != expect:
        raise RefError("%s: file is %d bytes, header (dim=%d hidden=%d layers=%d heads=%d kv=%d "
                       "vocab=%d%s seq=%d) needs %d" % (path, raw.size, dim, hidden, n_layers,
                                                       n_heads, n_kv, vocab,
                                                       "" if shared else " unshared", seq_len,
                                                       expect))
    flat = raw[28:].view("<f4")
    arrays = {}
    off = 0
    for name, shape in layout:
        n = int(np.prod(shape))
        arrays[name] = flat[off:off + n].reshape(shape).astype(np.float32)
        off += n
    cfg = dict(dim=dim, hidden_dim=hidden, n_layers=n_layers, n_heads=n_heads,
               n_kv_heads=n_kv, vocab_size=vocab, seq_len=seq_len, shared_classifier=shared)
    w = OrderedDict()
    w["embed_tokens.weight"] = arrays["tok_embeddings"]
    for l in range(L):
        p = "layers.%d." % l
        w[p + "input_layernorm.weight"] = arrays["rms_att"][l]
        w[p + "self_attn.q_proj.weight"] = arrays["wq"][l]
        w[p + "self_attn.k_proj.weight"] = arrays["wk"][l]
        w[p + "self_attn.v_proj.weight"] = arrays["wv"][l]
        w[p + "self_attn.o_proj.weight"] = arrays["wo"][l]
        w[p + "post_attention_layernorm.weight"] = arrays["rms_ffn"][l]
        w[p + "mlp.gate_proj.weight"] = arrays["w1"][l]
        w[p + "mlp.down_proj.weight"] = arrays["w2"][l]
        w[p + "mlp.up_proj.weight"] = arrays["w3"][l]
    w["norm.weight"] = arrays["rms_final"]
    if not shared:
        w["lm_head.weight"] = arrays["wcls"]
    return cfg, w


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim, eps=RMS_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim), requires_grad=False)

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class LoraLinear(nn.Module):
    """nn.Linear without bias, frozen, plus an optional PEFT-style LoRA branch."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features), requires_grad=False)
        self.lora_A = None  # Parameter [r, in]
        self.lora_B = None  # Parameter [out, r]
        self.scaling = 0.0
        self.lora_dropout = nn.Identity()
        self.lora_enabled = True

    def set_lora(self, A, B, scaling, dropout=0.0):
        r = A.shape[0]
        if tuple(A.shape) != (r, self.in_features) or tuple(B.shape) != (self.out_features, r):
            raise RefError("LoRA shapes A %s B %s do not fit a Linear(%d -> %d)"
                           % (tuple(A.shape), tuple(B.shape), self.in_features,
                              self.out_features))
        self.lora_A = nn.Parameter(A)
        self.lora_B = nn.Parameter(B)
        self.scaling = float(scaling)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.lora_A is not None and self.lora_enabled:
            y = y + F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B) * self.scaling
        return y


def rope_tables(seq_len, head_size, dtype):
    # freq_i = theta^(-2i/head_size), i = 0 .. head_size/2 - 1; angle = pos * freq_i
    inv_freq = 1.0 / (ROPE_THETA ** (torch.arange(0, head_size, 2, dtype=torch.float64)
                                     / head_size))
    pos = torch.arange(seq_len, dtype=torch.float64)
    ang = torch.outer(pos, inv_freq)  # [T, hs/2]
    return ang.cos().to(dtype), ang.sin().to(dtype)


def apply_rope(x, cos, sin, layout):
    """x: [B, H, T, hs]; cos, sin: [T, hs/2]."""
    if layout == "interleaved":
        # llama2.c: pairs (2i, 2i+1) rotated by angle pos*freq_i
        x2 = x.unflatten(-1, (-1, 2))
        a, b = x2[..., 0], x2[..., 1]
        out = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1)
        return out.flatten(-2)
    if layout == "half":
        # Hugging Face: pairs (i, i + hs/2), x*cos + rotate_half(x)*sin
        c = torch.cat((cos, cos), dim=-1)
        s = torch.cat((sin, sin), dim=-1)
        h = x.shape[-1] // 2
        rot = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
        return x * c + rot * s
    raise RefError("rope layout %r, expected interleaved or half" % layout)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_heads = cfg["n_heads"]
        self.n_kv = cfg["n_kv_heads"]
        self.hs = cfg["dim"] // self.n_heads
        dim = cfg["dim"]
        self.q_proj = LoraLinear(dim, self.n_heads * self.hs)
        self.k_proj = LoraLinear(dim, self.n_kv * self.hs)
        self.v_proj = LoraLinear(dim, self.n_kv * self.hs)
        self.o_proj = LoraLinear(self.n_heads * self.hs, dim)

    def forward(self, x, cos, sin, rope_layout):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.hs).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv, self.hs).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv, self.hs).transpose(1, 2)
        q = apply_rope(q, cos, sin, rope_layout)
        k = apply_rope(k, cos, sin, rope_layout)
        rep = self.n_heads // self.n_kv
        if rep > 1:  # query head h reads kv head h // rep
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.hs)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        scores = scores.masked_fill(causal, float("-inf"))
        att = torch.softmax(scores, dim=-1)
        out = torch.matmul(att, v).transpose(1, 2).reshape(B, T, self.n_heads * self.hs)
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate_proj = LoraLinear(cfg["dim"], cfg["hidden_dim"])
        self.up_proj = LoraLinear(cfg["dim"], cfg["hidden_dim"])
        self.down_proj = LoraLinear(cfg["hidden_dim"], cfg["dim"])

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["dim"])
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["dim"])
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, rope_layout):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, rope_layout)
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x


class Llama(nn.Module):
    def __init__(self, cfg, rope_layout="interleaved"):
        super().__init__()
        self.cfg = dict(cfg)
        self.rope_layout = rope_layout
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["dim"])
        self.embed_tokens.weight.requires_grad_(False)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg["n_layers"]))
        self.norm = RMSNorm(cfg["dim"])
        if cfg["shared_classifier"]:
            self.lm_head = None
        else:
            self.lm_head = nn.Linear(cfg["dim"], cfg["vocab_size"], bias=False)
            self.lm_head.weight.requires_grad_(False)

    def load_base(self, weights):
        sd = {k: torch.as_tensor(np.asarray(v)) for k, v in weights.items()}
        own = {k for k, _ in self.named_parameters()}
        missing = own - set(sd)
        extra = set(sd) - own
        if missing or extra:
            raise RefError("base weights: missing %s, unexpected %s" % (sorted(missing),
                                                                        sorted(extra)))
        with torch.no_grad():
            for k, p in self.named_parameters():
                if tuple(p.shape) != tuple(sd[k].shape):
                    raise RefError("%s: shape %s, expected %s" % (k, tuple(sd[k].shape),
                                                                  tuple(p.shape)))
                p.copy_(sd[k])

    def lora_modules(self):
        return [(n, m) for n, m in self.named_modules()
                if isinstance(m, LoraLinear) and m.lora_A is not None]

    def set_lora_enabled(self, on):
        for _, m in self.lora_modules():
            m.lora_enabled = on

    def forward(self, tokens):
        B, T = tokens.shape
        x = self.embed_tokens(tokens)
        cos, sin = rope_tables(T, self.cfg["dim"] // self.cfg["n_heads"], x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin, self.rope_layout)
        x = self.norm(x)
        w = self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(x, w)


def lora_module_names(n_layers):
    names = []
    for l in range(n_layers):
        names += ["layers.%d.self_attn.%s" % (l, m) for m in ATTN_MODULES]
        names += ["layers.%d.mlp.%s" % (l, m) for m in MLP_MODULES]
    return names


def lora_scaling(alpha, r, use_rslora):
    return alpha / math.sqrt(r) if use_rslora else alpha / r


def loss_fn(logits, targets):
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1).long(),
                           ignore_index=IGNORE_INDEX, reduction="mean")


# ---------------------------------------------------------------------------
# Case mode
# ---------------------------------------------------------------------------

def _scalar(case, name, default, kind):
    if name not in case:
        return default
    a = case[name]
    if a.size != 1:
        raise RefError("case %s: %d elements, expected 1" % (name, a.size))
    return kind(a.reshape(-1)[0])


def dequantize_case_base(case, weights, cfg):
    """Replace every decoder linear by the dequantized quantized weights of the case."""
    import quant_ref
    fmt, bs, dq = (int(v) for v in case["quant.config"])
    code8 = quant_ref.create_dynamic_map()
    count = 0
    for mod in lora_module_names(cfg["n_layers"]):
        key = mod + ".weight"
        shape = weights[key].shape
        q = mod + ".quant."
        if q + "codes" not in case or q + "absmax" not in case:
            raise RefError("case: %scodes / absmax missing for a quantized base" % q)
        codes = case[q + "codes"].astype(np.uint8)
        if fmt == quant_ref.INT8:
            w = quant_ref.dequantize_int8(codes.view(np.int8).reshape(shape), case[q + "absmax"])
        else:
            state = ({"absmax_q": case[q + "absmax"].astype(np.uint8), "absmax2": case[q + "absmax2"],
                      "offset": case[q + "offset"]} if dq else {"absmax": case[q + "absmax"]})
            w = quant_ref.dequantize_4bit(codes, state, fmt, bs, int(np.prod(shape)), code8)
        weights[key] = w.reshape(shape)
        count += 1
    return count


def run_case(args):
    cfg, weights = load_llama2c(resolve_model_path(args.model))
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    case = tensorfile.read(args.case)

    if "tokens" not in case:
        raise RefError("case %s: no 'tokens' tensor" % args.case)
    tokens = case["tokens"]
    if tokens.ndim != 2 or tokens.dtype != np.int32:
        raise RefError("case tokens: %s %s, expected int32 [B,T]" % (tokens.dtype, tokens.shape))
    B, T = tokens.shape
    V = cfg["vocab_size"]
    if T < 1 or B < 1:
        raise RefError("case tokens: shape %s, expected B,T >= 1" % (tokens.shape,))
    if T > cfg["seq_len"]:
        raise RefError("case tokens: T=%d exceeds the model's seq_len %d" % (T, cfg["seq_len"]))
    if tokens.min() < 0 or tokens.max() >= V:
        raise RefError("case tokens: values in [%d,%d], expected [0,%d)" % (tokens.min(),
                                                                           tokens.max(), V))
    targets = case.get("targets")
    if targets is not None:
        if targets.shape != tokens.shape or targets.dtype != np.int32:
            raise RefError("case targets: %s %s, expected int32 %s" % (targets.dtype,
                                                                      targets.shape, tokens.shape))
        bad = (targets != IGNORE_INDEX) & ((targets < 0) | (targets >= V))
        if bad.any():
            raise RefError("case targets: value %d is neither -100 nor in [0,%d)"
                           % (targets[bad][0], V))

    layout_codes = {0: "interleaved", 1: "half"}
    case_layout = _scalar(case, "rope.layout", None, int)
    if case_layout is not None and case_layout not in layout_codes:
        raise RefError("case rope.layout = %d, expected 0 (interleaved) or 1 (half)" % case_layout)
    rope_layout = args.rope_layout or "interleaved"
    if case_layout is not None:
        if args.rope_layout and args.rope_layout != layout_codes[case_layout]:
            raise RefError("--rope_layout %s contradicts case rope.layout = %d (%s)"
                           % (args.rope_layout, case_layout, layout_codes[case_layout]))
        rope_layout = layout_codes[case_layout]

    dropout = _scalar(case, "lora.dropout", 0.0, float)
    if dropout != 0.0:
        raise RefError("case lora.dropout = %g, the parity reference needs 0" % dropout)
    use_rslora = bool(_scalar(case, "lora.use_rslora", 0, int))
    alpha = _scalar(case, "lora.alpha", None, float)
    r_case = _scalar(case, "lora.r", None, int)

    n_quant = 0
    if "quant.config" in case:
        n_quant = dequantize_case_base(case, weights, cfg)
    model = Llama(cfg, rope_layout)
    model.load_base(weights)
    model.to(dtype)

    known = set(lora_module_names(cfg["n_layers"]))
    lora_names = []  # tensor names in case order
    for name in case:
        if name.endswith(".lora_A") or name.endswith(".lora_B"):
            mod = name[:-len(".lora_A")]
            if mod not in known:
                raise RefError("case %s: no module %s in a %d-layer model"
                               % (name, mod, cfg["n_layers"]))
            lora_names.append(name)
        elif ".quant." in name or name == "quant.config":
            continue
        elif name not in ("tokens", "targets", "lora.r", "lora.alpha", "lora.use_rslora",
                          "lora.dropout", "rope.layout"):
            raise RefError("case %s: unknown tensor name" % name)
    mods = OrderedDict()
    for name in lora_names:
        mods.setdefault(name[:-len(".lora_A")], None)
    if mods and (r_case is None or alpha is None):
        raise RefError("case has LoRA tensors but lacks lora.r or lora.alpha")
    for mod in mods:
        for part in ("lora_A", "lora_B"):
            if mod + "." + part not in case:
                raise RefError("case: %s.%s missing (both A and B needed)" % (mod, part))
        A = case[mod + ".lora_A"]
        Bm = case[mod + ".lora_B"]
        if A.ndim != 2 or Bm.ndim != 2 or A.shape[0] != r_case or Bm.shape[1] != r_case:
            raise RefError("case %s: lora_A %s / lora_B %s, expected [r=%d,in] / [out,r=%d]"
                           % (mod, A.shape, Bm.shape, r_case, r_case))
        model.get_submodule(mod).set_lora(torch.tensor(A, dtype=dtype),
                                          torch.tensor(Bm, dtype=dtype),
                                          lora_scaling(alpha, r_case, use_rslora), dropout)

    model.train()  # dropout is 0, so train/eval give the same result
    tok = torch.from_numpy(tokens.astype(np.int64))
    logits = model(tok)
    out = OrderedDict()
    out["logits"] = logits.detach().to(torch.float64).numpy()
    if targets is not None:
        tgt = torch.from_numpy(targets.astype(np.int64))
        n_valid = int((targets != IGNORE_INDEX).sum())
        if n_valid == 0:
            print("llama_torch_ref: warning: every target is -100, loss is NaN", file=sys.stderr)
        loss = loss_fn(logits, tgt)
        params = [model.get_parameter(n) for n in lora_names]
        grads = torch.autograd.grad(loss, params, allow_unused=True) if params else []
        out["loss"] = np.array([loss.item()], dtype=np.float64)
        for n, p, g in zip(lora_names, params, grads):
            if g is None:
                g = torch.zeros_like(p)
            out[n + ".grad"] = g.detach().to(torch.float64).numpy()
    with torch.no_grad():
        model.set_lora_enabled(False)
        out["base_logits"] = model(tok).to(torch.float64).numpy()
        model.set_lora_enabled(True)
    tensorfile.write(args.out, out)
    msg = "llama_torch_ref: B=%d T=%d V=%d dtype=%s rope=%s lora_modules=%d quantized_linears=%d" % (
        B, T, V, args.dtype, rope_layout, len(mods), n_quant)
    if "loss" in out:
        msg += " loss=%.9g" % out["loss"][0]
    print(msg)


# ---------------------------------------------------------------------------
# Greedy generation (checks the weights load correctly)
# ---------------------------------------------------------------------------

def run_greedy(args):
    cfg, weights = load_llama2c(resolve_model_path(args.model))
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    model = Llama(cfg, args.rope_layout or "interleaved")
    model.load_base(weights)
    model.to(dtype).eval()
    n = min(args.greedy, cfg["seq_len"])
    seq = [BOS]
    with torch.no_grad():
        while len(seq) - 1 < n:
            logits = model(torch.tensor([seq], dtype=torch.long))
            nxt = int(torch.argmax(logits[0, -1]))
            if nxt == BOS:  # llama2.c run.c stops when BOS is produced
                break
            seq.append(nxt)
    ids = seq[1:]
    print(" ".join(str(i) for i in ids))
    if args.expect:
        with open(args.expect) as f:
            want = [int(t) for t in f.read().split()]
        k = min(len(ids), len(want))
        first_bad = next((i for i in range(k) if ids[i] != want[i]), None)
        if first_bad is not None or k < min(n, len(want)):
            where = first_bad if first_bad is not None else k
            print("llama_torch_ref: greedy ids differ from %s at index %d" % (args.expect, where),
                  file=sys.stderr)
            return 1
        print("llama_torch_ref: greedy ids match %s (%d ids)" % (args.expect, k), file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------
# Self-check: prove the reference with gradcheck and identities
# ---------------------------------------------------------------------------

def _random_model(cfg, layout, gen):
    m = Llama(cfg, layout)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif n == "embed_tokens.weight":
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
            else:  # Linear [out, in]: unit-variance outputs for unit-variance inputs
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64)
                        / math.sqrt(p.shape[1]))
    return m


def _hf_permute(w, n_heads):
    # HF convert_llama_weights_to_hf permute: maps llama2.c/Meta interleaved rows to
    # rotate_half rows, so that half-layout RoPE on permuted weights == interleaved on original.
    out_f, in_f = w.shape
    return w.view(n_heads, out_f // n_heads // 2, 2, in_f).transpose(1, 2).reshape(out_f, in_f)


def run_selfcheck():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    dt = torch.float64
    failures = []

    def check(ok, what):
        print("selfcheck: %-62s %s" % (what, "ok" if ok else "FAILED"))
        if not ok:
            failures.append(what)

    # 1. tensorfile round trip
    import tempfile
    d = OrderedDict()
    d["z.f32"] = np.arange(6, dtype=np.float32).reshape(2, 3)
    d["a.i32"] = np.array([[1, -100]], dtype=np.int32)
    d["m.f64"] = np.array([math.pi], dtype=np.float64)
    d["empty"] = np.zeros((0, 4), dtype=np.float32)
    with tempfile.TemporaryDirectory() as td:
        p = os.path.join(td, "rt.ltt")
        tensorfile.write(p, d)
        back = tensorfile.read(p)
    check(list(back) == list(d) and all(back[k].dtype == d[k].dtype and
                                        np.array_equal(back[k], d[k]) for k in d),
          "tensorfile write/read round trip")

    base_cfg = dict(dim=16, hidden_dim=24, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=32,
                    seq_len=8, shared_classifier=True)
    B, T, r = 2, 6, 2
    tokens = torch.randint(0, 32, (B, T), generator=gen)
    targets = torch.randint(0, 32, (B, T), generator=gen)
    targets[0, 1] = IGNORE_INDEX
    targets[1, 4] = IGNORE_INDEX
    all_mods = lora_module_names(2)
    mods = [m for m in all_mods if m != "layers.1.mlp.up_proj"]  # one module without LoRA

    def make_lora(m, scaling):
        # s * B @ A is a perturbation of about half the base weight's size
        loras = OrderedDict()
        for name in mods:
            lin = m.get_submodule(name)
            loras[name + ".lora_A"] = (torch.randn(r, lin.in_features, generator=gen, dtype=dt)
                                       / math.sqrt(lin.in_features))
            loras[name + ".lora_B"] = (torch.randn(lin.out_features, r, generator=gen, dtype=dt)
                                       * 0.5 / (scaling * math.sqrt(r)))
        return loras

    # 2. gradcheck of loss and logits w.r.t. all LoRA A/B, several variants
    variants = [
        ("interleaved", True, False, 16.0),
        ("half", True, True, 3.0),
        ("interleaved", False, True, 5.0),
    ]
    for layout, shared, rslora, alpha in variants:
        cfg = dict(base_cfg, shared_classifier=shared)
        model = _random_model(cfg, layout, gen).to(dt)
        scaling = lora_scaling(alpha, r, rslora)
        loras = make_lora(model, scaling)
        names = list(loras)

        for name in mods:  # registers lora_A / lora_B parameters and the scaling
            model.get_submodule(name).set_lora(loras[name + ".lora_A"].clone(),
                                               loras[name + ".lora_B"].clone(), scaling)

        def f(*tensors):
            logits = functional_call(model, dict(zip(names, tensors)), (tokens,))
            return loss_fn(logits, targets), logits

        inputs = tuple(t.clone().requires_grad_(True) for t in loras.values())
        try:
            ok = torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)
        except RuntimeError as e:
            print(str(e)[:2000])
            ok = False
        check(ok, "gradcheck rope=%s shared=%s rslora=%s" % (layout, shared, rslora))

    # 3. identities on one model
    model = _random_model(base_cfg, "interleaved", gen).to(dt)
    s = lora_scaling(7.0, r, False)
    loras = make_lora(model, s)
    for name in mods:
        model.get_submodule(name).set_lora(loras[name + ".lora_A"], loras[name + ".lora_B"], s)
    with torch.no_grad():
        y_lora = model(tokens)
        model.set_lora_enabled(False)
        y_base = model(tokens)
        model.set_lora_enabled(True)
        # merge W' = W + s B A must equal the LoRA model
        merged = _random_model(base_cfg, "interleaved", gen).to(dt)
        merged.load_state_dict(model.state_dict(), strict=False)
        for name in mods:
            lin = merged.get_submodule(name)
            lin.weight.add_(s * loras[name + ".lora_B"] @ loras[name + ".lora_A"])
        y_merged = merged(tokens)
    check(float((y_lora - y_merged).abs().max()) < 1e-10, "merge W + s*B@A equals LoRA forward")
    check(float((y_lora - y_base).abs().max()) > 1e-3, "LoRA changes the logits")
    with torch.no_grad():
        for name in mods:
            model.get_submodule(name).lora_B.zero_()
        y_zero = model(tokens)
    check(float((y_zero - y_base).abs().max()) == 0.0, "B = 0 gives exactly the base model")

    # 4. half-layout RoPE on HF-permuted q/k weights == interleaved on the originals
    m_il = _random_model(base_cfg, "interleaved", gen).to(dt)
    loras = make_lora(m_il, s)
    for name in mods:
        m_il.get_submodule(name).set_lora(loras[name + ".lora_A"], loras[name + ".lora_B"], s)
    m_half = Llama(base_cfg, "half").to(dt)
    with torch.no_grad():
        m_half.load_state_dict({k: v for k, v in m_il.state_dict().items()
                                if "lora" not in k}, strict=False)
        for l in range(2):
            for proj, nh in (("q_proj", 4), ("k_proj", 2)):
                lin = m_half.get_submodule("layers.%d.self_attn.%s" % (l, proj))
                lin.weight.copy_(_hf_permute(lin.weight, nh))
        for name in mods:
            A = loras[name + ".lora_A"]
            Bm = loras[name + ".lora_B"]
            if name.endswith("q_proj"):
                Bm = _hf_permute(Bm, 4)
            elif name.endswith("k_proj"):
                Bm = _hf_permute(Bm, 2)
            m_half.get_submodule(name).set_lora(A.clone(), Bm.clone(), s)
        d_rope = float((m_il(tokens) - m_half(tokens)).abs().max())
    check(d_rope < 1e-10, "rope half on permuted weights == interleaved (%.1e)" % d_rope)

    # 5. causality: changing a later token leaves earlier logits unchanged
    with torch.no_grad():
        t2 = tokens.clone()
        t2[:, -1] = (t2[:, -1] + 1) % 32
        a, b = m_il(tokens), m_il(t2)
    check(float((a[:, :-1] - b[:, :-1]).abs().max()) == 0.0 and
          float((a[:, -1] - b[:, -1]).abs().max()) > 0, "causal mask")

    # 6. GQA equals MHA with kv heads duplicated (kv head h // rep for query head h)
    cfg_mha = dict(base_cfg, n_kv_heads=4)
    m_mha = Llama(cfg_mha, "interleaved").to(dt)
    m_gqa = _random_model(base_cfg, "interleaved", gen).to(dt)
    with torch.no_grad():
        sd = m_gqa.state_dict()
        hs = 4
        for k in list(sd):
            if k.endswith("k_proj.weight") or k.endswith("v_proj.weight"):
                sd[k] = sd[k].view(2, hs, 16).repeat_interleave(2, dim=0).reshape(16, 16)
        m_mha.load_state_dict(sd)
        d_gqa = float((m_mha(tokens) - m_gqa(tokens)).abs().max())
    check(d_gqa < 1e-12, "GQA == MHA with duplicated kv heads")

    # 7. a direct loop implementation of one position matches (attention, rope, norm)
    with torch.no_grad():
        ref = _loop_forward(m_gqa, tokens[0].tolist())
        d_loop = float((ref - m_gqa(tokens[:1])[0]).abs().max())
    check(d_loop < 1e-10, "vectorised forward == per-position loop (%.1e)" % d_loop)

    if failures:
        print("selfcheck: %d FAILED: %s" % (len(failures), "; ".join(failures)))
        return 1
    print("selfcheck: all passed")
    return 0


def _loop_forward(model, toks):
    """Slow scalar-loop forward with a KV cache (llama2.c style) for cross-checking."""
    cfg = model.cfg
    nh, nkv, dim = cfg["n_heads"], cfg["n_kv_heads"], cfg["dim"]
    hs = dim // nh
    rep = nh // nkv
    L = cfg["n_layers"]
    kc = [[] for _ in range(L)]
    vc = [[] for _ in range(L)]
    outs = []

    def rms(x, w):
        return x / math.sqrt(float((x * x).mean()) + RMS_EPS) * w

    def rope1(vec, pos):
        vec = vec.clone()
        for i in range(0, vec.numel(), 2):
            j = i % hs
            ang = pos * ROPE_THETA ** (-j / hs)
            a, b = float(vec[i]), float(vec[i + 1])
            vec[i] = a * math.cos(ang) - b * math.sin(ang)
            vec[i + 1] = a * math.sin(ang) + b * math.cos(ang)
        return vec

    for pos, t in enumerate(toks):
        x = model.embed_tokens.weight[t].clone()
        for l, layer in enumerate(model.layers):
            at = layer.self_attn
            h = rms(x, layer.input_layernorm.weight)
            q = rope1(at.q_proj(h), pos)
            kc[l].append(rope1(at.k_proj(h), pos))
            vc[l].append(at.v_proj(h))
            o = torch.zeros(dim, dtype=x.dtype)
            for hh in range(nh):
                kv = hh // rep
                qh = q[hh * hs:(hh + 1) * hs]
                sc = torch.tensor([float(qh @ kc[l][p][kv * hs:(kv + 1) * hs]) / math.sqrt(hs)
                                   for p in range(pos + 1)], dtype=x.dtype)
                w = torch.softmax(sc, 0)
                for p in range(pos + 1):
                    o[hh * hs:(hh + 1) * hs] += w[p] * vc[l][p][kv * hs:(kv + 1) * hs]
            x = x + at.o_proj(o)
            h = rms(x, layer.post_attention_layernorm.weight)
            mlp = layer.mlp
            x = x + mlp.down_proj(F.silu(mlp.gate_proj(h)) * mlp.up_proj(h))
        x = rms(x, model.norm.weight)
        w = model.embed_tokens.weight if model.lm_head is None else model.lm_head.weight
        outs.append(w @ x)
    return torch.stack(outs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="llama2.c checkpoint (.bin, or its folder)")
    ap.add_argument("--case", help="input case file (LTT1)")
    ap.add_argument("--out", help="output reference file (LTT1)")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--rope_layout", choices=("interleaved", "half"), default=None,
                    help="default interleaved; the case's rope.layout wins when present")
    ap.add_argument("--greedy", type=int, metavar="N",
                    help="print N greedy token ids generated from BOS")
    ap.add_argument("--expect", help="with --greedy: ids file to compare against")
    ap.add_argument("--selfcheck", action="store_true",
                    help="gradcheck and identity checks on a small random model")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        if args.selfcheck:
            return run_selfcheck()
        if not args.model:
            ap.error("--model is required")
        if args.greedy is not None:
            return run_greedy(args)
        if not args.case or not args.out:
            ap.error("--case and --out are required (or use --greedy / --selfcheck)")
        run_case(args)
        return 0
    except (RefError, tensorfile.TensorFileError, OSError) as e:
        print("llama_torch_ref: error: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
