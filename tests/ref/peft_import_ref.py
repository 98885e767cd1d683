#!/usr/bin/python3
"""Reference side of tests/e2e/peft_import.sh (`loratrain import --format peft`).

  peft_import_ref.py eval-loss --model HF_DIR [--adapter PEFT_DIR] --tokens FILE
                     --seq_len T [--backend hf|torch]
      Mean cross-entropy over the packed windows loratrain's data loader makes
      of a token file (io/data/dataset.h): window k is tokens [k*T, k*T + T + 1),
      inputs its first T, targets its last T, (N - 1) // T windows, the tail
      dropped; a token file has no masked target. Each window runs alone
      (batch 1, positions 0..T-1). --backend hf: transformers
      LlamaForCausalLM + PeftModel.from_pretrained (tests/ref/peft_ref.py's
      strict loaders, float32); torch: tests/ref/peft_torch_ref.py's pure-PyTorch
      Llama + LoRA (float32). Log-softmax in float64 of the float32 logits.
      Prints "loss L tokens N windows W".
  peft_import_ref.py make-adapter --model HF_DIR --out DIR [--r 8] [--alpha 16]
                     [--targets LIST] [--rslora] [--dropout 0] [--seed 0] [--b_std 0.05]
      Without PEFT: the layout PEFT 0.13 save_pretrained writes (its
      adapter_config.json keys; base_model.model.<module>.lora_{A,B}.weight,
      float32), A uniform(-1/sqrt(in), 1/sqrt(in)) and B ~ N(0, b_std^2), for
      where transformers and PEFT do not install.
  peft_import_ref.py mutate SRC DST KIND
      Copies adapter SRC to DST and breaks it one way (KIND below).
  peft_import_ref.py same-tensors A.safetensors B.safetensors
      Exit 0 when both hold the same tensor names, dtypes, shapes and bytes.
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
me = "peft_import_ref.py"

ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BLOCK = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
         "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def die(msg):
    sys.exit(f"{me}: {msg}")


def read_tokens(path):
    data = open(path, "rb").read()
    if data[:4] != b"LTTK":
        die(f"{path}: not a loratrain token file")
    version, width, _vocab, count = struct.unpack("<IIIQ", data[4:24])
    if version != 1 or width not in (2, 4):
        die(f"{path}: version {version}, width {width}")
    ids = np.frombuffer(data[24:], dtype="<u2" if width == 2 else "<u4")
    if ids.size != count:
        die(f"{path}: {ids.size} tokens, header says {count}")
    return [int(t) for t in ids]


def windows(ids, T):
    return [ids[k * T:k * T + T + 1] for k in range((len(ids) - 1) // T)]


def cmd_eval_loss(a):
    import torch
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    ids = read_tokens(a.tokens)
    wins = windows(ids, a.seq_len)
    if not wins:
        die(f"{a.tokens}: fewer than {a.seq_len + 1} tokens")
    if a.backend == "hf":
        import peft_ref
        model = peft_ref.load_model(a.model, torch.float32)
        if a.adapter:
            model = peft_ref.load_adapter(model, a.adapter)
        run = lambda x: model(input_ids=torch.tensor([x], dtype=torch.long), use_cache=False).logits[0]
    else:
        import peft_torch_ref
        model = peft_torch_ref.Model(a.model, torch.float32)
        if a.adapter:
            model.add_adapter(a.adapter, False)
        run = model.forward
    total, n = 0.0, 0
    with torch.no_grad():
        for w in wins:
            logits = run(w[:-1]).to(torch.float64)
            lp = torch.log_softmax(logits, dim=-1)
            tgt = torch.tensor(w[1:], dtype=torch.long)
            total += float(-lp.gather(1, tgt[:, None]).sum())
            n += len(w) - 1
    print(f"loss {total / n:.10f} tokens {n} windows {len(wins)}")


def write_safetensors(path, tensors, meta=None):
    header, off, blobs = {}, 0, []
    if meta:
        header["__metadata__"] = meta
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, dtype="<f4")
        b = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path):
    import peft_torch_ref
    return peft_torch_ref.read_safetensors(path)


def cmd_make_adapter(a):
    c = json.load(open(os.path.join(a.model, "config.json")))
    dim, inter = c["hidden_size"], c["intermediate_size"]
    heads = c["num_attention_heads"]
    kv = c.get("num_key_value_heads") or heads
    hd = c.get("head_dim") or dim // heads
    shape = {"q_proj": (heads * hd, dim), "k_proj": (kv * hd, dim), "v_proj": (kv * hd, dim),
             "o_proj": (dim, heads * hd), "gate_proj": (inter, dim), "up_proj": (inter, dim),
             "down_proj": (dim, inter)}
    targets = [t for t in a.targets.split(",") if t]
    rng = np.random.default_rng(a.seed)
    tensors = {}
    for layer in range(c["num_hidden_layers"]):
        for m in targets:
            out, inp = shape[m]
            p = f"base_model.model.model.layers.{layer}.{BLOCK[m]}.{m}"
            bound = 1 / math.sqrt(inp)
            tensors[p + ".lora_A.weight"] = rng.uniform(-bound, bound, (a.r, inp))
            tensors[p + ".lora_B.weight"] = rng.normal(0, a.b_std, (out, a.r))
    os.makedirs(a.out, exist_ok=True)
    write_safetensors(os.path.join(a.out, "adapter_model.safetensors"), tensors, {"format": "pt"})
    cfg = {"alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": a.model, "bias": "none",
           "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True,
           "layer_replication": None, "layers_pattern": None, "layers_to_transform": None,
           "loftq_config": {}, "lora_alpha": int(a.alpha) if a.alpha == int(a.alpha) else a.alpha,
           "lora_dropout": a.dropout, "megatron_config": None, "megatron_core": "megatron.core",
           "modules_to_save": None, "peft_type": "LORA", "r": a.r, "rank_pattern": {}, "revision": None,
           "target_modules": targets, "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": a.rslora}
    json.dump(cfg, open(os.path.join(a.out, "adapter_config.json"), "w"), indent=2)
    print(f"{me}: wrote {a.out} ({len(tensors) // 2} LoRA pairs, r={a.r}, alpha={a.alpha}, rslora={a.rslora})")


# KIND -> what it breaks. Config edits are (key, value) with value None
# meaning "delete the key".
CONFIG_EDITS = {
    "no-r": ("r", None),
    "no-lora_alpha": ("lora_alpha", None),
    "no-target_modules": ("target_modules", None),
    "dora": ("use_dora", True),
    "modules_to_save": ("modules_to_save", ["lm_head"]),
    "layers_to_transform": ("layers_to_transform", [0, 1]),
    "bias": ("bias", "lora_only"),
    "fan_in_fan_out": ("fan_in_fan_out", True),
    "task_type": ("task_type", "SEQ_CLS"),
    "rank_pattern": ("rank_pattern", {"q_proj": 4}),
    "regex-targets": ("target_modules", r".*\.(q_proj|v_proj)"),
    "lacking-module": ("target_modules", ["q_proj", "lm_head"]),
    "peft_type": ("peft_type", "IA3"),
}


def cmd_mutate(a):
    shutil.rmtree(a.dst, ignore_errors=True)
    shutil.copytree(a.src, a.dst)
    cfg_path = os.path.join(a.dst, "adapter_config.json")
    st_path = os.path.join(a.dst, "adapter_model.safetensors")
    if a.kind in CONFIG_EDITS:
        key, value = CONFIG_EDITS[a.kind]
        cfg = json.load(open(cfg_path))
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
        json.dump(cfg, open(cfg_path, "w"), indent=2)
    elif a.kind == "all-linear":  # the string form PEFT also writes
        cfg = json.load(open(cfg_path))
        cfg["target_modules"] = "all-linear"
        json.dump(cfg, open(cfg_path, "w"), indent=2)
    elif a.kind in ("shape", "extra-layer", "missing-tensor"):
        t = {k: np.array(v, dtype=np.float32) for k, v in read_safetensors(st_path).items()}
        name = sorted(k for k in t if ".lora_A." in k)[0]
        if a.kind == "shape":
            t[name] = t[name][:, :-1]
        elif a.kind == "missing-tensor":
            del t[name]
        else:  # a layer past the model's last
            layers = max(int(k.split(".")[4]) for k in t) + 1
            for suffix in ("lora_A", "lora_B"):
                k = name.replace(".lora_A.", f".{suffix}.")
                t[k.replace(f".layers.{k.split('.')[4]}.", f".layers.{layers}.")] = t[k]
        write_safetensors(st_path, t, {"format": "pt"})
    elif a.kind == "truncated":
        data = open(st_path, "rb").read()
        open(st_path, "wb").write(data[:len(data) - 100])
    elif a.kind == "no-config":
        os.remove(cfg_path)
    else:
        die(f"unknown kind {a.kind}")


def cmd_same_tensors(a):
    x, y = read_safetensors(a.a), read_safetensors(a.b)
    if set(x) != set(y):
        die(f"names differ: only in {a.a}: {sorted(set(x) - set(y))[:3]}, only in {a.b}: "
            f"{sorted(set(y) - set(x))[:3]}")
    for k in sorted(x):
        if x[k].dtype != y[k].dtype or x[k].shape != y[k].shape or x[k].tobytes() != y[k].tobytes():
            d = float(np.max(np.abs(x[k].astype(np.float64) - y[k].astype(np.float64)))) \
                if x[k].shape == y[k].shape else float("nan")
            die(f"{k}: differs ({x[k].dtype}{list(x[k].shape)} vs {y[k].dtype}{list(y[k].shape)}, max |d| {d:.3e})")
    print(f"same-tensors: {len(x)} tensors bit-identical")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("eval-loss")
    p.add_argument("--model", required=True)
    p.add_argument("--adapter")
    p.add_argument("--tokens", required=True)
    p.add_argument("--seq_len", type=int, required=True)
    p.add_argument("--backend", default="hf", choices=["hf", "torch"])
    p = sub.add_parser("make-adapter")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16)
    p.add_argument("--targets", default=",".join(ALL))
    p.add_argument("--rslora", action="store_true")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--b_std", type=float, default=0.05)
    p = sub.add_parser("mutate")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("kind")
    p = sub.add_parser("same-tensors")
    p.add_argument("a")
    p.add_argument("b")
    a = ap.parse_args()
    {"eval-loss": cmd_eval_loss, "make-adapter": cmd_make_adapter, "mutate": cmd_mutate,
     "same-tensors": cmd_same_tensors}[a.cmd](a)


if __name__ == "__main__":
    main()
