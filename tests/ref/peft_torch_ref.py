#!/usr/bin/python3
"""Llama logits with a PEFT LoRA adapter in plain PyTorch + numpy: no transformers,
no PEFT, no safetensors package. The fallback of tests/ref/peft_ref.py where those do
not install (runs on Debian's /usr/bin/python3 with python3-torch and python3-numpy).

  peft_torch_ref.py logits --model HF_DIR [--adapter PEFT_DIR] --ids FILE --out FILE
                           [--dtype float32|float64] [--merge]
  peft_torch_ref.py compare A B --vocab V [--tol 1e-5]
      max |A - B| (and max relative to max |B|) of two logits files; exit 1 above --tol.

Same inputs and output as peft_ref.py logits:
  --ids: whitespace-separated integers, one sequence per line (blank lines
  skipped, '#' starts a comment); each sequence is run alone, positions 0..T-1.
  --out: NAME.npy -> one float32 array [sum T_i, vocab]; any other name -> raw
  little-endian float32, no header, for each sequence in order T_i x vocab
  values row-major (sum(T_i) * vocab * 4 bytes). Computed in --dtype, rounded
  to float32 on output.

HF_DIR is a Hugging Face LlamaForCausalLM directory: config.json and
model.safetensors (or model.safetensors.index.json + shards), read by hand
(8-byte little-endian header length, JSON header, data; F32/F16/BF16/F64).
config.json keys used, with LlamaConfig's defaults when absent: hidden_size,
num_hidden_layers, num_attention_heads, num_key_value_heads (= heads),
intermediate_size, vocab_size, rms_norm_eps (1e-6), rope_theta (10000),
head_dim (hidden/heads), tie_word_embeddings (False -- LlamaConfig's default,
not PretrainedConfig's), attention_bias / mlp_bias (False), hidden_act (must be
silu), rope_scaling (must be null / "default"). With tie_word_embeddings the
classifier is model.embed_tokens.weight (transformers does not save
lm_head.weight then); without it, lm_head.weight must be present (transformers
would silently initialise a missing one at random; this script refuses).

The forward follows transformers 4.46 modeling_llama (eager attention) op by op:
  RMSNorm: w * (x * rsqrt(mean(x^2) + eps))
  RoPE (rotate-half): inv_freq = 1 / theta^(arange(0, d, 2) / d),
    ang = pos * inv_freq, emb = cat(ang, ang); q' = q cos + rotate_half(q) sin,
    rotate_half(x) = cat(-x[d/2:], x[:d/2])
  attention: softmax(q k^T / sqrt(d) + causal mask) v, kv head = h // (heads/kv_heads)
  MLP: down(silu(gate(x)) * up(x)); final norm; logits = h W_lm^T
PEFT LoRA on a linear (peft 0.13 lora.Linear, dropout off in eval):
  y = x W^T (+ b) + ((x A^T) B^T) * scale, scale = alpha / r, or alpha / sqrt(r)
  with use_rslora; r is A's row count, alpha = alpha_pattern[key] or lora_alpha
  (key matched as PEFT does: the module name ends in "." + key). Every
  base_model.model.<module>.lora_A.weight / .lora_B.weight pair in
  adapter_model.safetensors is applied (keys must name Llama linears, and must
  be exactly the modules target_modules / layers_to_transform select); use_dora,
  fan_in_fan_out, bias != "none" and modules_to_save are refused.
  --merge: W += scale * B A first (what merge_and_unload does), then no LoRA path.
"""
import json
import math
import os
import re
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from logits_file import command_line, read_ids, write_logits  # noqa: E402

# torch is imported by the logits command only (main): compare needs numpy
# alone, and the parity scripts call it a score of times, each import of
# torch costing 2 s of a test's time.
torch = None

me = "peft_torch_ref.py"


def die(msg):
    sys.exit(f"{me}: {msg}")


def bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def read_safetensors(path):
    data = open(path, "rb").read()
    if len(data) < 8:
        die(f"{path}: too short for safetensors")
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = memoryview(data)[8 + n:]
    out = {}
    kinds = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2"}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        if dt not in kinds:
            die(f"{path}: {name}: dtype {dt} not supported")
        b, e = info["data_offsets"]
        a = np.frombuffer(body[b:e], dtype=kinds[dt]).reshape(info["shape"])
        a = bf16_to_f32(a) if dt == "BF16" else a
        out[name] = a
    return out


def read_model_tensors(d):
    single = os.path.join(d, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single)
    index = os.path.join(d, "model.safetensors.index.json")
    if not os.path.exists(index):
        die(f"{d}: no model.safetensors or model.safetensors.index.json")
    out = {}
    for shard in sorted(set(json.load(open(index))["weight_map"].values())):
        out.update(read_safetensors(os.path.join(d, shard)))
    return out


class Model:
    def __init__(self, d, dtype):
        c = json.load(open(os.path.join(d, "config.json")))
        self.dtype = dtype
        self.dim = c["hidden_size"]
        self.n_layers = c["num_hidden_layers"]
        self.n_heads = c["num_attention_heads"]
        self.n_kv = c.get("num_key_value_heads") or self.n_heads
        self.head_dim = c.get("head_dim") or self.dim // self.n_heads
        self.vocab = c["vocab_size"]
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        self.tied = c.get("tie_word_embeddings", False)
        if c.get("hidden_act", "silu") != "silu":
            die(f"hidden_act {c['hidden_act']} not supported")
        rs = c.get("rope_scaling")
        if rs and rs.get("rope_type", rs.get("type")) not in (None, "default"):
            die(f"rope_scaling {rs} not supported")
        if c.get("pretraining_tp", 1) != 1:
            pass  # only slices the same GEMMs in transformers: same maths
        t = read_model_tensors(d)
        self.w = {k: torch.from_numpy(np.array(v, dtype=np.float64)).to(dtype) for k, v in t.items()}
        if self.tied:
            self.lm_head = self.w["model.embed_tokens.weight"]
        elif "lm_head.weight" in self.w:
            self.lm_head = self.w["lm_head.weight"]
        else:
            die(f"{d}: tie_word_embeddings is false but lm_head.weight is missing")
        self.lora = {}  # module name -> (A, B, scale)

    def add_adapter(self, d, merge):
        c = json.load(open(os.path.join(d, "adapter_config.json")))
        if c.get("peft_type", "LORA") != "LORA":
            die(f"{d}: peft_type {c.get('peft_type')} is not LORA")
        for k, bad in (("use_dora", True), ("fan_in_fan_out", True)):
            if c.get(k) == bad:
                die(f"{d}: {k} not supported")
        if c.get("bias", "none") != "none" or c.get("lora_bias"):
            die(f"{d}: LoRA bias not supported")
        if c.get("modules_to_save"):
            die(f"{d}: modules_to_save not supported")
        t = read_safetensors(os.path.join(d, "adapter_model.safetensors"))
        pat = re.compile(r"^base_model\.model\.(.+)\.lora_([AB])\.weight$")
        pairs = {}
        for k, v in t.items():
            m = pat.match(k)
            if not m:
                die(f"{d}: unexpected tensor {k}")
            pairs.setdefault(m.group(1), {})[m.group(2)] = v
        alpha_pattern = c.get("alpha_pattern") or {}
        for mod, ab in sorted(pairs.items()):
            if set(ab) != {"A", "B"}:
                die(f"{d}: {mod} lacks lora_A or lora_B")
            if mod + ".weight" not in self.w:
                die(f"{d}: {mod} is not a linear of the model")
            A = torch.from_numpy(np.array(ab["A"], dtype=np.float64)).to(self.dtype)
            B = torch.from_numpy(np.array(ab["B"], dtype=np.float64)).to(self.dtype)
            W = self.w[mod + ".weight"]
            r = A.shape[0]
            if A.shape != (r, W.shape[1]) or B.shape != (W.shape[0], r):
                die(f"{d}: {mod}: A {tuple(A.shape)} B {tuple(B.shape)} do not fit W {tuple(W.shape)}")
            key = next((k for k in alpha_pattern if re.match(rf".*\.{k}$", mod)), None)
            alpha = alpha_pattern[key] if key is not None else c["lora_alpha"]
            scale = alpha / math.sqrt(r) if c.get("use_rslora") else alpha / r
            if merge:
                self.w[mod + ".weight"] = W + (B @ A) * scale
            else:
                self.lora[mod] = (A, B, scale)
        if not pairs:
            die(f"{d}: adapter holds no LoRA tensors")
        want = self.targeted(c)
        if want is not None and want != set(pairs):
            die(f"{d}: target_modules name {sorted(want - set(pairs))[:4]} without tensors, "
                f"tensors for {sorted(set(pairs) - want)[:4]} not targeted")
        return len(pairs)

    def targeted(self, c):
        """The module names PEFT would wrap for this config (None: not checked)."""
        linears = [f"model.layers.{l}.{blk}.{m}" for l in range(self.n_layers)
                   for blk, mods in (("self_attn", ("q_proj", "k_proj", "v_proj", "o_proj")),
                                     ("mlp", ("gate_proj", "up_proj", "down_proj"))) for m in mods]
        t = c.get("target_modules")
        if t is None:
            return None
        if isinstance(t, str):
            got = set(linears) if t == "all-linear" else {n for n in linears if re.fullmatch(t, n)}
        else:
            got = {n for n in linears if any(n == k or n.endswith("." + k) for k in t)}
        layers = c.get("layers_to_transform")
        if layers is not None:
            layers = {layers} if isinstance(layers, int) else set(layers)
            got = {n for n in got if int(n.split(".")[2]) in layers}
        return got

    def linear(self, name, x):
        y = x @ self.w[name + ".weight"].T
        b = self.w.get(name + ".bias")
        if b is not None:
            y = y + b
        lo = self.lora.get(name)
        if lo is not None:
            A, B, s = lo
            y = y + ((x @ A.T) @ B.T) * s
        return y

    def rmsnorm(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def forward(self, ids):
        T, hd = len(ids), self.head_dim
        x = self.w["model.embed_tokens.weight"][torch.tensor(ids, dtype=torch.long)]
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        ang = torch.arange(T, dtype=torch.float32)[:, None] * inv_freq[None, :]  # float32 as in HF
        emb = torch.cat((ang, ang), dim=-1)
        cos, sin = emb.cos().to(self.dtype), emb.sin().to(self.dtype)

        def rope(q):  # q [H, T, hd]
            rot = torch.cat((-q[..., hd // 2:], q[..., :hd // 2]), dim=-1)
            return q * cos + rot * sin

        mask = torch.full((T, T), torch.finfo(self.dtype).min, dtype=self.dtype).triu(1)
        group = self.n_heads // self.n_kv
        for l in range(self.n_layers):
            p = f"model.layers.{l}."
            h = self.rmsnorm(x, self.w[p + "input_layernorm.weight"])
            q = self.linear(p + "self_attn.q_proj", h).view(T, self.n_heads, hd).transpose(0, 1)
            k = self.linear(p + "self_attn.k_proj", h).view(T, self.n_kv, hd).transpose(0, 1)
            v = self.linear(p + "self_attn.v_proj", h).view(T, self.n_kv, hd).transpose(0, 1)
            q, k = rope(q), rope(k)
            k = k.repeat_interleave(group, dim=0)
            v = v.repeat_interleave(group, dim=0)
            s = (q @ k.transpose(1, 2)) / math.sqrt(hd) + mask
            a = torch.softmax(s, dim=-1) @ v  # [H, T, hd]
            a = a.transpose(0, 1).reshape(T, self.n_heads * hd)
            x = x + self.linear(p + "self_attn.o_proj", a)
            h = self.rmsnorm(x, self.w[p + "post_attention_layernorm.weight"])
            g = self.linear(p + "mlp.gate_proj", h)
            u = self.linear(p + "mlp.up_proj", h)
            x = x + self.linear(p + "mlp.down_proj", torch.nn.functional.silu(g) * u)
        x = self.rmsnorm(x, self.w["model.norm.weight"])
        return x @ self.lm_head.T


def read_logits(path, vocab):
    if path.endswith(".npy"):
        return np.load(path).astype(np.float64)
    a = np.fromfile(path, dtype="<f4")
    if a.size % vocab:
        die(f"{path}: {a.size} floats is not a multiple of vocab {vocab}")
    return a.reshape(-1, vocab).astype(np.float64)


def cmd_logits(a):
    dtype = {"float32": torch.float32, "float64": torch.float64}[a.dtype]
    m = Model(a.model, dtype)
    if a.adapter:
        m.add_adapter(a.adapter, a.merge)
    seqs = read_ids(a.ids, me)
    rows = []
    with torch.no_grad():
        for s in seqs:
            bad = [t for t in s if t < 0 or t >= m.vocab]
            if bad:
                die(f"token id {bad[0]} outside [0, {m.vocab})")
            rows.append(m.forward(s).to(torch.float64).numpy())
    write_logits(a.out, rows)


def cmd_compare(a):
    x, y = read_logits(a.a, a.vocab), read_logits(a.b, a.vocab)
    if x.shape != y.shape:
        die(f"shapes differ: {x.shape} vs {y.shape}")
    d = float(np.max(np.abs(x - y)))
    scale = float(np.max(np.abs(y)))
    print(f"compare: {x.shape[0]} rows x {a.vocab}: max |a - b| = {d:.3e}, "
          f"max |b| = {scale:.3e}, relative {d / max(scale, 1e-30):.3e} (tol {a.tol:g})")
    sys.exit(0 if d <= a.tol else 1)


def main():
    ap, sub = command_line(__doc__)
    p = sub.add_parser("compare")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--vocab", type=int, required=True)
    p.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()
    if a.cmd == "logits":
        global torch
        import torch
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    {"logits": cmd_logits, "compare": cmd_compare}[a.cmd](a)


if __name__ == "__main__":
    main()
