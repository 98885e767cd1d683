#!/usr/bin/env python3
"""Checks `loratrain export --format gguf` files against the PEFT export of
the same checkpoint, with llama.cpp's own GGUF package (gguf-py).

    gguf_ref.py PEFT_DIR HF_CONFIG_JSON F32.gguf F16.gguf WORK_DIR

What a right file is, derived here from the PEFT adapter alone (read with a
safetensors parser of our own, not loratrain's):
  - GGUF v3, alignment 32 (general.alignment, uint32), every tensor's data
    at a multiple of 32 and the tensors back to back, each padded to 32,
    the file ending after the last padding (what ggml's loader reads);
  - general.architecture "llama", general.type "adapter", adapter.type
    "lora", general.name the file's name without .gguf (strings), adapter.lora.alpha (float32) =
    lora_alpha, or lora_alpha * sqrt(r) with use_rslora (llama.cpp scales
    by alpha / r);
  - one blk.N.<attn_q|...|ffn_down>.weight.lora_a / .lora_b per PEFT
    lora_A / lora_B, nothing else; ggml dims [in, r] and [r, out]
    (numpy [r, in] and [out, r]), consistent with the base's config.json
    as llama.cpp's adapter loader checks; F32 resp. F16;
  - lora_a = PEFT lora_A exactly; lora_b = PEFT lora_B, for q_proj and
    k_proj with the rows taken from Hugging Face's rotate-half order back to
    the interleaved order llama.cpp computes in (done here with an index
    loop, and checked against llama.cpp's reshape/swapaxes formula);
  - F16: numpy's round-to-nearest-even of those values, so within half an
    F16 ulp.
Then the same adapter is written by gguf-py's GGUFWriter (the writer
convert_lora_to_gguf.py drives) with the same metadata: loratrain's files
must be byte for byte the same. Finally, files with the q/k permutation
left out, with lora_a's or lora_b's dims in numpy rather than ggml order,
and with alpha not converted for rsLoRA are written the same way and
must each be rejected, so these checks are known to catch those mistakes.
Prints one line per finding; exit 0 when all hold, 1 otherwise.

    gguf_ref.py --close A.gguf B.gguf TOL

compares two files' tensors within TOL relative L2 (an adapter trained on
the llama2.c base and the same trained on its Hugging Face directory: one
file needs no row permutation, the other does)."""
import json
import math
import os
import re
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter

ALIGN = 32
MODULES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
           "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
PEFT_NAME = re.compile(r"base_model\.model\.model\.layers\.(\d+)\.(?:self_attn|mlp)\."
                       r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.lora_([AB])\.weight")


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", (name, e["dtype"])
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(blob[8 + n + b:8 + n + end], dtype="<f4").reshape(e["shape"]).copy()
    return out


def to_interleaved(w, n_heads):
    """Rows of each head from rotate-half (i, i + hd/2) pairs back to
    adjacent (2i, 2i + 1) pairs: interleaved row 2i + c = half row c*hd/2 + i."""
    hd = w.shape[0] // n_heads
    out = np.empty_like(w)
    for h in range(n_heads):
        for i in range(hd // 2):
            for c in range(2):
                out[h * hd + 2 * i + c] = w[h * hd + c * (hd // 2) + i]
    return out


def llama_cpp_permute(w, n_heads):
    # convert_hf_to_gguf.py LlamaModel.permute, which LoraTorchTensor applies to lora_B
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def expected(peft_dir, cfg):
    """GGUF name -> (numpy array, module, A|B), and alpha, from the PEFT adapter alone."""
    with open(os.path.join(peft_dir, "adapter_config.json")) as f:
        ac = json.load(f)
    st = read_safetensors(os.path.join(peft_dir, "adapter_model.safetensors"))
    heads = {"q_proj": cfg["num_attention_heads"],
             "k_proj": cfg.get("num_key_value_heads", cfg["num_attention_heads"])}
    exp = {}
    for name, w in st.items():
        m = PEFT_NAME.fullmatch(name)
        if not m:
            raise SystemExit(f"FAIL unexpected PEFT tensor {name}")
        layer, mod, ab = int(m.group(1)), m.group(2), m.group(3)
        if ab == "B" and mod in heads:
            p = to_interleaved(w, heads[mod])
            if not np.array_equal(p, llama_cpp_permute(w, heads[mod])):
                raise SystemExit(f"FAIL {name}: the index-loop permutation is not llama.cpp's")
            if np.array_equal(p, w):
                raise SystemExit(f"FAIL {name}: permuting does not change it; the test would not "
                                 "notice a missing permutation")
            w = p
        exp[f"blk.{layer}.{MODULES[mod]}.weight.lora_{ab.lower()}"] = (w, mod, ab)
    alpha = np.float32(ac["lora_alpha"])
    if ac.get("use_rslora"):
        alpha = np.float32(float(alpha) * math.sqrt(ac["r"]))
    return exp, alpha, ac


def module_shape(cfg, mod):
    """(out, in) of the base weight, as llama.cpp's loader compares them."""
    d, hid = cfg["hidden_size"], cfg["intermediate_size"]
    kv = d // cfg["num_attention_heads"] * cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    return {"q_proj": (d, d), "k_proj": (kv, d), "v_proj": (kv, d), "o_proj": (d, d),
            "gate_proj": (hid, d), "up_proj": (hid, d), "down_proj": (d, hid)}[mod]


def field_value(r, key):
    f = r.get_field(key)
    if f is None:
        return None, None
    return f.types, f.contents()


def check(path, exp, alpha, cfg, name, f16):
    """The problems with the file at path; [] when it is right."""
    bad = []
    try:
        r = GGUFReader(path)
    except Exception as e:  # a malformed file is a finding, not a crash
        return [f"GGUFReader cannot read it: {e}"]
    blob = open(path, "rb").read()
    if blob[:4] != b"GGUF" or struct.unpack_from("<I", blob, 4)[0] != 3:
        bad.append("not a little-endian GGUF v3 file")
    want = {"general.architecture": ([GGUFValueType.STRING], "llama"),
            "general.type": ([GGUFValueType.STRING], "adapter"),
            "adapter.type": ([GGUFValueType.STRING], "lora"),
            "general.name": ([GGUFValueType.STRING], name),
            "general.alignment": ([GGUFValueType.UINT32], ALIGN),
            "adapter.lora.alpha": ([GGUFValueType.FLOAT32], alpha)}
    for key, (types, value) in want.items():
        t, v = field_value(r, key)
        if t != types or v != value:
            bad.append(f"{key} = {v!r} ({t}), expected {value!r} ({types})")
    if r.alignment != ALIGN or r.data_offset % ALIGN:
        bad.append(f"alignment {r.alignment}, data at {r.data_offset}")
    names = [t.name for t in r.tensors]
    if sorted(names) != sorted(exp):
        bad.append(f"tensors {sorted(set(names) ^ set(exp))[:6]} differ from the PEFT adapter's")
    dtype = GGMLQuantizationType.F16 if f16 else GGMLQuantizationType.F32
    at = 0
    for t in r.tensors:
        rel = t.data_offset - r.data_offset
        if rel != at or rel % ALIGN:
            bad.append(f"{t.name}: data at +{rel}, expected +{at} (back to back, aligned)")
        at = rel + (t.n_bytes + ALIGN - 1) // ALIGN * ALIGN
        if t.name not in exp:
            continue
        w, mod, ab = exp[t.name]
        out, inp = module_shape(cfg, mod)
        rank = w.shape[0] if ab == "A" else w.shape[1]
        ggml = [inp, rank] if ab == "A" else [rank, out]
        if t.shape.tolist() != ggml:
            bad.append(f"{t.name}: ggml dims {t.shape.tolist()}, expected {ggml} (numpy {list(w.shape)} reversed)")
            continue
        if t.tensor_type != dtype:
            bad.append(f"{t.name}: type {t.tensor_type.name}, expected {dtype.name}")
            continue
        got = np.asarray(t.data)
        if f16:
            ref = w.astype(np.float16)
            err = np.abs(got.astype(np.float32) - w)
            ulp = np.maximum(np.abs(w) * 2.0 ** -11, 2.0 ** -25)
            if not np.array_equal(got, ref) or np.any(err > ulp):
                bad.append(f"{t.name}: not PEFT's values rounded to F16 (max error {err.max():.3g})")
        elif not np.array_equal(got, w):
            kind = " (q/k rows in the wrong RoPE order?)" if ab == "B" and mod in ("q_proj", "k_proj") else ""
            bad.append(f"{t.name}: differs from PEFT's lora_{ab}{kind}, max |diff| {np.abs(got - w).max():.3g}")
    if len(blob) != r.data_offset + at:
        bad.append(f"file is {len(blob)} bytes, expected {r.data_offset + at} (data + padding)")
    return bad


def write_reference(path, exp, alpha, name, f16, order, mutate=None, raw=None):
    """The same adapter through gguf-py's GGUFWriter, in the order given;
    mutate names a mistake to make (raw: the PEFT tensors and lora_alpha
    as they are, for the mistakes of not converting them)."""
    w = GGUFWriter(path, "llama")
    w.add_custom_alignment(ALIGN)
    w.add_type("adapter")
    w.add_string("adapter.type", "lora")
    w.add_name(name)
    w.add_float32("adapter.lora.alpha", raw["lora_alpha"] if mutate == "alpha" else float(alpha))
    w.add_quantization_version(2)
    for n in order:
        a, mod, ab = exp[n]
        if mutate == "no_permute" and ab == "B" and mod in ("q_proj", "k_proj"):
            a = raw["tensors"][n]
        if mutate == "numpy_dims_" + ab:
            # The data as it is, the dims recorded in numpy order.
            arr = a.astype(np.float16 if f16 else np.float32)
            w.add_tensor(n, arr.reshape(arr.shape[::-1]))
            continue
        w.add_tensor(n, a.astype(np.float16 if f16 else np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=False)
    w.close()


def close(a_path, b_path, tol):
    """The same adapter trained on two bases (llama2.c file and its Hugging
    Face directory) gives the same GGUF tensors within tol relative L2."""
    a = {t.name: np.asarray(t.data) for t in GGUFReader(a_path).tensors}
    b = {t.name: np.asarray(t.data) for t in GGUFReader(b_path).tensors}
    if sorted(a) != sorted(b):
        print("FAIL the two files hold different tensors")
        return 1
    worst = max(np.linalg.norm(a[n] - b[n]) / max(np.linalg.norm(a[n]), 1e-30) for n in a)
    if not worst <= tol:
        print(f"FAIL {os.path.basename(a_path)} and {os.path.basename(b_path)}: relative L2 {worst:.3g} > {tol}")
        return 1
    print(f"ok {os.path.basename(a_path)} ~ {os.path.basename(b_path)}: worst tensor relative L2 {worst:.3g}")
    return 0


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--close":
        sys.exit(close(sys.argv[2], sys.argv[3], float(sys.argv[4])))
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    peft_dir, cfg_path, f32, f16, work = sys.argv[1:]
    with open(cfg_path) as f:
        cfg = json.load(f)
    exp, alpha, ac = expected(peft_dir, cfg)
    st = read_safetensors(os.path.join(peft_dir, "adapter_model.safetensors"))
    raw = {"lora_alpha": float(ac["lora_alpha"]), "tensors": {}}
    for pn, w in st.items():
        m = PEFT_NAME.fullmatch(pn)
        raw["tensors"][f"blk.{m.group(1)}.{MODULES[m.group(2)]}.weight.lora_{m.group(3).lower()}"] = w
    fails = 0
    for path, is16 in ((f32, False), (f16, True)):
        name = re.sub(r"\.gguf$", "", os.path.basename(path))
        bad = check(path, exp, alpha, cfg, name, is16)
        for b in bad:
            print(f"FAIL {os.path.basename(path)}: {b}")
        fails += len(bad)
        if bad:
            continue
        order = [t.name for t in GGUFReader(path).tensors]
        ref = os.path.join(work, f"ref-{'f16' if is16 else 'f32'}.gguf")
        write_reference(ref, exp, alpha, name, is16, order)
        a, b = open(path, "rb").read(), open(ref, "rb").read()
        if a != b:
            at = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
            print(f"FAIL {os.path.basename(path)}: differs from gguf-py's GGUFWriter output at byte {at} "
                  f"({len(a)} vs {len(b)} bytes)")
            fails += 1
        else:
            print(f"ok {os.path.basename(path)}: {len(order)} tensors, alpha {float(alpha):g}; "
                  f"= gguf-py's GGUFWriter output byte for byte")
    # The checks have teeth: each known mistake, written by gguf-py itself, is caught.
    order = sorted(exp)
    mutations = ["no_permute", "numpy_dims_A", "numpy_dims_B"] + (["alpha"] if ac.get("use_rslora") else [])
    for mut in mutations:
        p = os.path.join(work, f"mut-{mut}.gguf")
        write_reference(p, exp, alpha, name, False, order, mut, raw)
        found = check(p, exp, alpha, cfg, name, False)
        if not found:
            print(f"FAIL the check accepts a file with mistake {mut}")
            fails += 1
        else:
            print(f"ok mistake {mut} caught: {found[0]}")
    print(f"{fails} problems" if fails else "all checks hold")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
