"""PyTorch side of benchmarks/gpu.sh: one training-step benchmark of a random Llama.

    gpu_torch.py --mode lora|qlora|qlora-bf16|full --dim C --hidden H --layers L --heads NH
                 --kv_heads NKV --vocab V --seq T --batch B --r R --steps S --warmup W
                 [--device cuda|cpu]

The model is Hugging Face transformers' LlamaForCausalLM built from a LlamaConfig of
that shape (tied embedding and classifier, as the llama2.c file loratrain trains),
weights N(0, 0.02^2), in fp32. What trains:
  lora        PEFT LoRA (r R, lora_alpha 2R, dropout 0) on every linear of every layer,
              fp32 compute;
  qlora       the same on a bitsandbytes NF4 base (bnb.nn.Linear4bit, double quant,
              blocks of 64, compute_dtype float32);
  qlora-bf16  the same with compute_dtype bfloat16 and the step under
              torch.autocast(bfloat16), as Trainer(bf16=True) runs it: PEFT keeps the
              adapter weights fp32, so AdamW updates fp32 masters;
  full        every weight, fp32.
fp32 matmuls without TF32 (torch.backends.cuda.matmul.allow_tf32 = False), as
loratrain's cuBLAS calls run (CUBLAS_DEFAULT_MATH). One step = zero_grad, forward with
labels (the model's shifted cross-entropy), backward, torch.optim.AdamW (lr 1e-4,
weight decay 0); random tokens below min(V, 512); the median of the timed steps,
synchronised. Prints one JSON line: impl, mode, device, tokens_per_s, step_ms_median,
peak_bytes (torch.cuda.max_memory_allocated on a GPU; the process's peak resident set
on the CPU, where the figure is a host one), peak_kind, trainable_params, torch,
quantized (false where bitsandbytes is missing: the CPU plumbing check runs the
qlora rows on an unquantized base and says so in note).
"""
import argparse
import json
import resource
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("lora", "qlora", "qlora-bf16", "full"), required=True)
    for k in ("dim", "hidden", "layers", "heads", "kv_heads", "vocab", "seq", "batch", "r", "steps"):
        ap.add_argument("--" + k, type=int, required=True)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dev = torch.device(a.device)
    if a.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(a.seed)
    cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.dim, intermediate_size=a.hidden,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads,
                      num_key_value_heads=a.kv_heads, max_position_embeddings=a.seq,
                      rms_norm_eps=1e-5, tie_word_embeddings=True, initializer_range=0.02)
    model = LlamaForCausalLM(cfg)
    note = ""
    quantized = False
    bf16 = a.mode == "qlora-bf16"
    if a.mode in ("qlora", "qlora-bf16"):
        try:
            import bitsandbytes as bnb
        except ImportError as e:
            bnb = None
            if a.device == "cuda":
                print("gpu_torch: bitsandbytes is needed for --mode %s on a GPU: %s" % (a.mode, e),
                      file=sys.stderr)
                return 2
            note = "bitsandbytes not importable: base not quantized (CPU plumbing check)"
        if bnb is not None:
            # every decoder linear becomes an NF4 Linear4bit (quantized as it moves to the GPU)
            for layer in model.model.layers:
                for block in (layer.self_attn, layer.mlp):
                    for name, lin in list(block.named_children()):
                        if not isinstance(lin, torch.nn.Linear):
                            continue
                        q = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=False,
                                              compute_dtype=torch.bfloat16 if bf16 else torch.float32,
                                              compress_statistics=True, quant_type="nf4")
                        q.weight = bnb.nn.Params4bit(lin.weight.data, requires_grad=False,
                                                     compress_statistics=True, quant_type="nf4")
                        setattr(block, name, q)
            quantized = True
    model.to(dev)
    if a.mode == "full":
        params = [p for p in model.parameters()]
    else:
        from peft import LoraConfig, get_peft_model
        model.requires_grad_(False)
        lc = LoraConfig(r=a.r, lora_alpha=2 * a.r, lora_dropout=0.0, bias="none",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                        "up_proj", "down_proj"], task_type="CAUSAL_LM")
        model = get_peft_model(model, lc)
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:  # fp32 adapter masters, whatever the compute dtype
            p.data = p.data.float()
    model.train()
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    n_train = sum(p.numel() for p in params)

    gen = torch.Generator().manual_seed(a.seed)
    steps = a.warmup + a.steps
    data = torch.randint(0, min(a.vocab, 512), (steps, a.batch, a.seq), generator=gen).to(dev)

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    times, losses = [], []
    for i in range(steps):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(a.device, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=data[i], labels=data[i]).loss
        loss.backward()
        opt.step()
        sync()
        t1 = time.perf_counter()
        losses.append(float(loss.item()))
        if i >= a.warmup:
            times.append(t1 - t0)
    if not all(v == v and abs(v) != float("inf") for v in losses):
        print("gpu_torch: non-finite loss %s" % losses, file=sys.stderr)
        return 1
    med = statistics.median(times)
    if a.device == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(), "torch.cuda.max_memory_allocated"
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "host ru_maxrss"
    print(json.dumps({
        "impl": "pytorch", "mode": a.mode, "device": a.device, "tokens_per_s": a.batch * a.seq / med,
        "step_ms_median": med * 1e3, "steps": a.steps, "peak_bytes": peak, "peak_kind": kind,
        "trainable_params": n_train, "quantized": quantized, "torch": torch.__version__,
        "loss_first": losses[0], "loss_last": losses[-1], "note": note}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
