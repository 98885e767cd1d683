#!/usr/bin/python3
"""Hugging Face model directories for tests/e2e/hf_load.sh, from numpy and json
only (safetensors written by hand: an 8-byte little-endian header length,
a JSON header, the data).

  make_hf_variants.py check BIN F32_DIR F16_DIR BF16_DIR
      loratrain convert's files against an independent reading of the
      llama2.c file: q/k rows permuted as transformers' conversion script
      does, every tensor bitwise; F16 and BF16 exactly torch's rounding.
  make_hf_variants.py shard SRC DST        two shards + model.safetensors.index.json
  make_hf_variants.py widen SRC DST        every tensor as F32 (exact for F16/BF16)
  make_hf_variants.py qwen2 SRC DST [SEED] SRC (F32) as Qwen2: random q/k/v biases
  make_hf_variants.py malformed SRC ROOT   one broken directory per case; prints
                                           "name<TAB>expected message part" lines
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

DT = {"F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (np.uint16, 2)}


def read_st(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        out[name] = (e["dtype"], e["shape"], data[b:end])
    return out, meta


def write_st(path, tensors, meta=None):
    """tensors: name -> (dtype, shape, bytes), written in the order given."""
    header, off = {}, 0
    if meta is not None:
        header["__metadata__"] = meta
    for name, (dt, shape, b) in tensors.items():
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for _, (_, _, b) in tensors.items():
            f.write(b)


def as_f32(dt, b):
    if dt == "F32":
        return np.frombuffer(b, np.float32)
    if dt == "F16":
        return np.frombuffer(b, np.float16).astype(np.float32)
    return (np.frombuffer(b, np.uint16).astype(np.uint32) << 16).view(np.float32)


def permute(w, n_heads):
    # transformers/models/llama/convert_llama_weights_to_hf.py
    d1, d2 = w.shape
    return w.reshape(n_heads, d1 // n_heads // 2, 2, d2).transpose(0, 2, 1, 3).reshape(d1, d2)


def expected_hf(bin_path):
    """The llama2.c file as transformers names and orders it, read by the
    PyTorch reference's own reader."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from llama_torch_ref import load_llama2c
    cfg, w = load_llama2c(bin_path)
    e = {}
    for name, a in w.items():
        if ".q_proj." in name:
            a = permute(a, cfg["n_heads"])
        elif ".k_proj." in name:
            a = permute(a, cfg["n_kv_heads"])
        e[name if name == "lm_head.weight" else "model." + name] = a
    return e


def check(bin_path, f32_dir, f16_dir, bf16_dir):
    import torch
    want = expected_hf(bin_path)
    bad = 0
    for d, dt in ((f32_dir, "F32"), (f16_dir, "F16"), (bf16_dir, "BF16")):
        got, meta = read_st(os.path.join(d, "model.safetensors"))
        if meta != {"format": "pt"}:
            print(f"FAIL {d}: __metadata__ {meta}, expected {{'format': 'pt'}}")
            bad += 1
        if set(got) != set(want):
            print(f"FAIL {d}: tensor names differ: extra {sorted(set(got) - set(want))[:3]}, "
                  f"missing {sorted(set(want) - set(got))[:3]}")
            bad += 1
            continue
        cfg = json.load(open(os.path.join(d, "config.json")))
        torch_dtype = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dt]
        if cfg.get("torch_dtype") != torch_dtype or cfg.get("tie_word_embeddings") is not True:
            print(f"FAIL {d}/config.json: torch_dtype {cfg.get('torch_dtype')}, tie "
                  f"{cfg.get('tie_word_embeddings')}")
            bad += 1
        for name, w in want.items():
            gdt, shape, b = got[name]
            ref = torch.from_numpy(np.array(w))
            if dt == "F32":
                exp = ref.numpy().tobytes()
            elif dt == "F16":
                exp = ref.to(torch.float16).numpy().tobytes()
            else:
                exp = ref.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
            if gdt != dt or list(shape) != list(w.shape) or b != exp:
                print(f"FAIL {d}: {name}: {gdt} {shape}, expected {dt} {list(w.shape)}; "
                      f"bytes equal: {b == exp}")
                bad += 1
    n = len(want)
    print(f"checked {n} tensors x 3 dtypes against the llama2.c file and torch's rounding: "
          f"{bad} failures")
    return 1 if bad else 0


def shard(src, dst):
    os.makedirs(dst, exist_ok=True)
    shutil.copy(os.path.join(src, "config.json"), dst)
    t, meta = read_st(os.path.join(src, "model.safetensors"))
    names = list(t)
    # Split mid-layer, so one layer's tensors live in two files.
    cut = len(names) // 2 + 1
    parts = [dict((k, t[k]) for k in names[:cut]), dict((k, t[k]) for k in names[cut:])]
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    wmap = {}
    for p, f in zip(parts, files):
        write_st(os.path.join(dst, f), p, meta)
        for k in p:
            wmap[k] = f
    total = sum(len(b) for _, _, b in t.values())
    json.dump({"metadata": {"total_size": total}, "weight_map": wmap},
              open(os.path.join(dst, "model.safetensors.index.json"), "w"), indent=2)


def widen(src, dst):
    os.makedirs(dst, exist_ok=True)
    shutil.copy(os.path.join(src, "config.json"), dst)
    t, meta = read_st(os.path.join(src, "model.safetensors"))
    out = {k: ("F32", s, as_f32(dt, b).astype(np.float32).tobytes()) for k, (dt, s, b) in t.items()}
    write_st(os.path.join(dst, "model.safetensors"), out, meta)


def malformed(src, root):
    cfg0 = json.load(open(os.path.join(src, "config.json")))
    t0, meta = read_st(os.path.join(src, "model.safetensors"))
    cases = []

    def make(name, expect, cfg=None, tensors=None, raw_config=None, post=None):
        d = os.path.join(root, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(raw_config if raw_config is not None else json.dumps(cfg or cfg0, indent=2))
        write_st(os.path.join(d, "model.safetensors"), tensors if tensors is not None else t0, meta)
        if post:
            post(d)
        cases.append((name, expect))

    def without(key):
        c = dict(cfg0)
        del c[key]
        return c

    def with_(**kw):
        c = dict(cfg0)
        c.update(kw)
        return c
    make("missing_hidden_size", 'config.json: missing field "hidden_size"', cfg=without("hidden_size"))
    make("missing_rms_norm_eps", 'config.json: missing field "rms_norm_eps"', cfg=without("rms_norm_eps"))
    make("bad_json", "config.json:1:43: ','", raw_config='{"model_type": "llama", "hidden_size": 64,,}')
    make("unknown_arch", 'architecture "GPT2LMHeadModel" is not supported',
         cfg=with_(architectures=["GPT2LMHeadModel"]))
    make("unknown_model_type", 'model_type "gpt2" is not supported', cfg=with_(model_type="gpt2"))
    make("qwen2_no_bias", "tensor model.layers.0.self_attn.q_proj.bias is missing",
         cfg=with_(model_type="qwen2", architectures=["Qwen2ForCausalLM"]))
    make("arch_type_mismatch", 'architecture Qwen2ForCausalLM does not match model_type "llama"',
         cfg=with_(architectures=["Qwen2ForCausalLM"]))
    make("llama_attention_bias", '"attention_bias" is set; the model\'s o_proj has no bias',
         cfg=with_(attention_bias=True))
    make("rope_scaling", '"rope_scaling" is set', cfg=with_(rope_scaling={"type": "linear", "factor": 2.0}))
    make("gelu", '"hidden_act" must be "silu"', cfg=with_(hidden_act="gelu"))
    make("heads_not_dividing", "not a multiple of num_attention_heads", cfg=with_(num_attention_heads=7))
    make("negative_layers", '"num_hidden_layers" must be an integer', cfg=with_(num_hidden_layers=-1))
    t = dict(t0)
    dt, s, b = t["model.layers.1.mlp.up_proj.weight"]
    t["model.layers.1.mlp.up_proj.weight"] = (dt, [s[1], s[0]], b)
    make("wrong_shape", "tensor model.layers.1.mlp.up_proj.weight has shape [64, 172], expected [172, 64]",
         tensors=t)
    t = dict(t0)
    t["model.layers.0.self_attn.q_proj.bias"] = ("F32", [64], b"\0" * 256)
    make("unknown_name", 'tensor "model.layers.0.self_attn.q_proj.bias" is not a weight', tensors=t)
    t = dict(t0)
    t["model.layers.5.mlp.up_proj.weight"] = t["model.layers.4.mlp.up_proj.weight"]
    make("layer_out_of_range", 'tensor "model.layers.5.mlp.up_proj.weight" is not a weight', tensors=t)
    t = dict(t0)
    del t["model.layers.3.self_attn.v_proj.weight"]
    make("missing_tensor", "tensor model.layers.3.self_attn.v_proj.weight is missing", tensors=t)
    t = dict(t0)
    t["lm_head.weight"] = t["model.embed_tokens.weight"]
    make("tied_with_lm_head", "lm_head.weight is present but config.json has tie_word_embeddings true",
         tensors=t)
    t = dict(t0)
    dt, s, b = t["model.norm.weight"]
    t["model.norm.weight"] = (dt, s, np.full(s, np.nan, np.float32).tobytes())
    make("nan_weight", "tensor model.norm.weight element 0 is nan, expected a finite value", tensors=t)

    def truncate(d):
        p = os.path.join(d, "model.safetensors")
        size = os.path.getsize(p)
        with open(p, "r+b") as f:
            f.truncate(size - 1000)
    make("truncated", "outside the", post=truncate)

    def missing_shard(d):
        shard(d, d + ".tmp")
        shutil.rmtree(d)
        os.rename(d + ".tmp", d)
        os.remove(os.path.join(d, "model-00002-of-00002.safetensors"))
    make("index_missing_shard", "weight_map names a shard: ", post=missing_shard)

    def index_escape(d):
        shard(d, d + ".tmp")
        shutil.rmtree(d)
        os.rename(d + ".tmp", d)
        p = os.path.join(d, "model.safetensors.index.json")
        idx = json.load(open(p))
        idx["weight_map"]["model.norm.weight"] = "../model.safetensors"
        json.dump(idx, open(p, "w"))
    make("index_path_escape", "must be a file name in the same directory", post=index_escape)

    def no_config(d):
        os.remove(os.path.join(d, "config.json"))
    make("no_config", "a directory without config.json", post=no_config)

    def no_weights(d):
        os.remove(os.path.join(d, "model.safetensors"))
    make("no_weights", "no model.safetensors or model.safetensors.index.json", post=no_weights)
    config_level = ("missing_hidden_size", "missing_rms_norm_eps", "bad_json", "unknown_arch", "unknown_model_type", "arch_type_mismatch", "llama_attention_bias",
                    "rope_scaling", "gelu", "heads_", "negative_", "no_config")
    for name, expect in cases:
        kind = "config" if name.startswith(config_level) else "weights"
        print(f"{name}\t{kind}\t{expect}")


def qwen2(src, dst, seed="7"):
    """SRC (a converted Llama directory, F32) as a Qwen2 model: the same
    weights plus q/k/v biases drawn N(0, 0.5) (large enough that a model
    ignoring them, or adding them after RoPE, is far off), sliding window
    off as Qwen2 checkpoints ship it."""
    cfg = json.load(open(os.path.join(src, "config.json")))
    t, meta = read_st(os.path.join(src, "model.safetensors"))
    for k in ("attention_bias", "mlp_bias"):
        cfg.pop(k, None)
    cfg.update(model_type="qwen2", architectures=["Qwen2ForCausalLM"], use_sliding_window=False,
               sliding_window=cfg["max_position_embeddings"], max_window_layers=cfg["num_hidden_layers"])
    dim = cfg["hidden_size"]
    kv = dim // cfg["num_attention_heads"] * cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    rng = np.random.default_rng(int(seed))
    out = {}
    for name, v in t.items():
        out[name] = v
        if name.endswith(".self_attn.v_proj.weight"):
            p = name[:-len("v_proj.weight")]
            for mod, n in (("q_proj", dim), ("k_proj", kv), ("v_proj", kv)):
                b = (rng.standard_normal(n) * 0.5).astype(np.float32)
                out[p + mod + ".bias"] = ("F32", [n], b.tobytes())
    os.makedirs(dst, exist_ok=True)
    write_st(os.path.join(dst, "model.safetensors"), out, meta)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "check":
        sys.exit(check(*args))
    {"shard": shard, "widen": widen, "malformed": malformed, "qwen2": qwen2}[cmd](*args)
