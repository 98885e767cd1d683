#!/usr/bin/python3
"""Reference Llama logits and LoRA adapters from Hugging Face transformers + PEFT.

Run with the venv tests/ref/peft_env.sh makes (transformers 4.46.3, peft 0.13.2 on
Debian's torch 1.13):  tests/ref/peft_env.sh DIR && DIR/bin/python tests/ref/peft_ref.py ...
Nothing touches the Hugging Face hub (HF_HUB_OFFLINE=1, local_files_only).
Exit status: 0 ok, 1 error (or merge-check above --tol), 77 transformers/peft
not importable by this interpreter.

  peft_ref.py logits --model HF_DIR [--adapter PEFT_DIR] --ids FILE --out FILE
                     [--dtype float32|float64] [--merge]
      LlamaForCausalLM.from_pretrained(HF_DIR) (torch_dtype --dtype, default
      float32; eager attention; low_cpu_mem_usage False), with --adapter wrapped
      by PeftModel.from_pretrained(model, PEFT_DIR) (--merge: merge_and_unload()
      first). Stricter than transformers/PEFT: a model weight missing from the
      checkpoint (transformers would initialise it at random), or an adapter
      tensor missing or extra (PEFT 0.13 ignores both silently), is an error. Runs each sequence alone (batch 1, no padding, positions 0..T-1)
      and writes its logits.
  peft_ref.py make-adapter --model HF_DIR --out PEFT_DIR [--r 8] [--alpha 16]
                     [--targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]
                     [--seed 0] [--rslora] [--b_std 0.05] [--dropout 0]
      get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r, lora_alpha,
      target_modules, lora_dropout, bias="none", use_rslora)) after
      torch.manual_seed(seed) (so lora_A is PEFT's kaiming-uniform init), then
      every lora_B ~ N(0, b_std^2) (PEFT's zeros would leave the logits
      unchanged); save_pretrained(PEFT_DIR, safe_serialization=True) ->
      adapter_config.json + adapter_model.safetensors.
  peft_ref.py make-model --out HF_DIR [--seed 0] [--hidden 64] [--layers 5]
                     [--heads 8] [--kv_heads 4] [--intermediate 172] [--vocab 512]
                     [--untied] [--init_std 0.02] [--rope_theta 10000] [--max_pos 256]
                     [--arch llama|mistral]
      A random LlamaForCausalLM (rms_norm_eps 1e-5), save_pretrained with
      safe_serialization -> config.json + model.safetensors (+ generation_config.json).
  peft_ref.py merge-check --model HF_DIR --adapter PEFT_DIR --ids FILE
                     [--tol 1e-5] [--save_merged DIR]
      Logits with the adapter applied unmerged vs after merge_and_unload();
      prints the max abs difference and exits 1 above --tol. --save_merged
      writes the merged model (HF layout) to DIR.

Token-id file (--ids): whitespace-separated integers, one sequence per line;
blank lines are skipped; '#' starts a comment.

Logits file (--out): if the name ends in .npy, one float32 array of shape
[sum of T_i, vocab] (the sequences' rows one after another); otherwise raw
little-endian IEEE float32 with no header: for each sequence in file order,
T_i x vocab values, row-major (token position major, vocab index minor), so the
file is sum(T_i) * vocab * 4 bytes. Logits are computed in --dtype and rounded
to float32 on output. tests/ref/peft_torch_ref.py writes the same format and
`peft_torch_ref.py compare A B --vocab V` compares two such files.
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from logits_file import command_line, read_ids, write_logits  # noqa: E402

ALL_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


def load_model(model_dir, dtype):
    from transformers import LlamaForCausalLM, Qwen2ForCausalLM
    with open(os.path.join(model_dir, "config.json")) as f:
        qwen2 = json.load(f).get("model_type") == "qwen2"
    cls = Qwen2ForCausalLM if qwen2 else LlamaForCausalLM
    model, info = cls.from_pretrained(
        model_dir, torch_dtype=dtype, local_files_only=True, low_cpu_mem_usage=False,
        attn_implementation="eager", output_loading_info=True)
    # transformers only warns when a weight is missing and initialises it at
    # random (e.g. lm_head.weight when config.json lacks "tie_word_embeddings":
    # true -- LlamaConfig's default is False): refuse instead.
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        if info.get(kind):
            sys.exit(f"peft_ref.py: {model_dir}: {kind.replace('_', ' ')}: {list(info[kind])[:8]}")
    model.eval()
    return model


def load_adapter(model, adapter_dir):
    """PeftModel.from_pretrained, refusing what peft 0.13 lets pass silently: a
    tensor the config targets that the file lacks (PEFT keeps its init: lora_B
    zero) and a file tensor that matches no module (ignored)."""
    from peft import PeftModel, get_peft_model_state_dict
    from safetensors import safe_open
    path = os.path.join(adapter_dir, "adapter_model.safetensors")
    if not os.path.exists(path):  # PEFT would go looking on the hub
        sys.exit(f"peft_ref.py: {path}: no such file")
    pm = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False)
    pm.eval()
    with safe_open(path, "pt") as f:
        have = set(f.keys())
    want = set(get_peft_model_state_dict(pm).keys())
    if have != want:
        sys.exit(f"peft_ref.py: {path}: missing {sorted(want - have)[:4]}, "
                 f"unexpected {sorted(have - want)[:4]}")
    return pm


def run_logits(model, seqs, vocab):
    rows = []
    with torch.no_grad():
        for s in seqs:
            bad = [t for t in s if t < 0 or t >= vocab]
            if bad:
                sys.exit(f"peft_ref.py: token id {bad[0]} outside [0, {vocab})")
            out = model(input_ids=torch.tensor([s], dtype=torch.long), use_cache=False)
            rows.append(out.logits[0].to(torch.float64).numpy())
    return rows


def dtype_of(name):
    return {"float32": torch.float32, "float64": torch.float64}[name]


def cmd_logits(a):
    model = load_model(a.model, dtype_of(a.dtype))
    vocab = model.config.vocab_size
    if a.adapter:
        model = load_adapter(model, a.adapter)
        if a.merge:
            model = model.merge_and_unload()
    write_logits(a.out, run_logits(model, read_ids(a.ids, "peft_ref.py"), vocab))


def cmd_make_adapter(a):
    from peft import LoraConfig, get_peft_model
    model = load_model(a.model, torch.float32)
    targets = [t for t in a.targets.split(",") if t]
    cfg = LoraConfig(task_type="CAUSAL_LM", r=a.r, lora_alpha=a.alpha, target_modules=targets,
                     lora_dropout=a.dropout, bias="none", use_rslora=a.rslora)
    torch.manual_seed(a.seed)
    pm = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(a.seed + 1)
    n = 0
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype) * a.b_std)
                n += 1
    if n == 0:
        sys.exit("peft_ref.py: no lora_B parameters (targets match nothing?)")
    pm.save_pretrained(a.out, safe_serialization=True)
    print(f"peft_ref.py: wrote {a.out} ({n} LoRA pairs, r={a.r}, alpha={a.alpha}, rslora={a.rslora})")


def cmd_make_model(a):
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM
    Config, Model = (MistralConfig, MistralForCausalLM) if a.arch == "mistral" else (LlamaConfig, LlamaForCausalLM)
    cfg = Config(hidden_size=a.hidden, num_hidden_layers=a.layers, num_attention_heads=a.heads,
                      num_key_value_heads=a.kv_heads, intermediate_size=a.intermediate,
                      vocab_size=a.vocab, tie_word_embeddings=not a.untied, rms_norm_eps=1e-5,
                      rope_theta=a.rope_theta, max_position_embeddings=a.max_pos,
                      initializer_range=a.init_std, torch_dtype="float32",
                      bos_token_id=1, eos_token_id=2)
    torch.manual_seed(a.seed)
    model = Model(cfg)
    with torch.no_grad():  # norms are ones at init: make them non-trivial
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape))
    model.save_pretrained(a.out, safe_serialization=True)
    print(f"peft_ref.py: wrote {a.out}")


def cmd_merge_check(a):
    seqs = read_ids(a.ids, "peft_ref.py")
    model = load_model(a.model, torch.float32)
    vocab = model.config.vocab_size
    pm = load_adapter(model, a.adapter)
    unmerged = run_logits(pm, seqs, vocab)
    merged_model = pm.merge_and_unload()
    merged = run_logits(merged_model, seqs, vocab)
    d = max(float(np.max(np.abs(u - m))) for u, m in zip(unmerged, merged))
    print(f"merge-check: max |unmerged - merged| = {d:.3e} (tol {a.tol:g})")
    if a.save_merged:
        merged_model.save_pretrained(a.save_merged, safe_serialization=True)
        print(f"merge-check: wrote {a.save_merged}")
    sys.exit(0 if d <= a.tol else 1)


def main():
    ap, sub = command_line(__doc__)
    p = sub.add_parser("make-adapter")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16)
    p.add_argument("--targets", default=ALL_TARGETS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rslora", action="store_true")
    p.add_argument("--b_std", type=float, default=0.05)
    p.add_argument("--dropout", type=float, default=0.0)
    p = sub.add_parser("make-model")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv_heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=172)
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--untied", action="store_true")
    p.add_argument("--init_std", type=float, default=0.02)
    p.add_argument("--rope_theta", type=float, default=10000.0)
    p.add_argument("--max_pos", type=int, default=256)
    p.add_argument("--arch", choices=("llama", "mistral"), default="llama")
    p = sub.add_parser("merge-check")
    p.add_argument("--model", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--ids", required=True)
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--save_merged")
    a = ap.parse_args()
    try:
        import peft  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        print(f"peft_ref.py: SKIP: {e} (run it with the python of the venv tests/ref/peft_env.sh makes)",
              file=sys.stderr)
        sys.exit(77)
    if a.cmd == "make-adapter" and a.alpha == int(a.alpha):
        a.alpha = int(a.alpha)
    {"logits": cmd_logits, "make-adapter": cmd_make_adapter, "make-model": cmd_make_model,
     "merge-check": cmd_merge_check}[a.cmd](a)


if __name__ == "__main__":
    main()
