#!/usr/bin/python3
"""PyTorch side of the LoRA (and full fine-tune) training-step speed benchmark (CPU).

    bench_torch.py --shape stories15M|stories260K --batch 8 --threads N --steps S --warmup W
                   [--ddp P] [--finetuning-type lora|full]

Builds a randomly initialised Llama of the named shape with a frozen base and
PEFT-style LoRA (r=8, alpha=16, dropout 0) on q_proj, k_proj, v_proj, o_proj,
and times one training step = forward + cross-entropy + backward + AdamW step on
the LoRA parameters (every parameter with --finetuning-type full), batch x seq_len
random tokens per step. Prints one JSON line:
  {"impl":"pytorch","shape":...,"threads":N,"batch":B,"seq":T,
   "tokens_per_s":...,"step_ms_median":...,"torch":version, ...extra detail keys}
(extra keys include "finetuning_type" and "trainable_params"; "lora_params" only for LoRA).

--finetuning-type full (default lora): the full fine-tuning baseline, the reference for
loratrain --finetuning_type full. Same model, init, shape, batch, seq, data and step;
no LoRA modules: every weight (embedding = tied classifier, the 7 linears of every layer,
the norms) trains in fp32 with one foreach AdamW over all of them (same lr, betas, eps,
weight decay 0, no clipping); --rank / --alpha are ignored. With --ddp the DDP wrapper is
the same (default bucket_cap_mb = 25 MiB, so the ~58 MiB of gradients go in a few buckets
all-reduced over gloo as backward produces them, gradient_as_bucket_view=True).

The model is written the way Hugging Face's LlamaForCausalLM is (separate q/k/v
Linears, rotate_half RoPE, repeat_kv for grouped-query attention, tied embedding
for these llama2.c shapes), with the attention as matmul + masked softmax since
torch 1.13 has no scaled_dot_product_attention.

--ddp P (default 0 = off): data-parallel over P local processes, the strong-scaling
reference. The launcher (the tuned, re-executed process; it never imports torch)
starts P children of this script with the SAME environment (tcmalloc, OMP/OPENBLAS/MKL
_NUM_THREADS = --threads, OpenBLAS build and core type; so --threads threads per rank)
plus RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT (a free port picked by
binding port 0) and GLOO_SOCKET_IFNAME=lo when unset. Each rank: torch.distributed
gloo (init_process_group timeout 60 s, which gloo also applies to every collective,
so a dead or stuck rank makes the others fail instead of hang), the model wrapped in
DistributedDataParallel (default buckets, find_unused_parameters=False,
gradient_as_bucket_view=True, broadcast_buffers=False: the buffers are constant RoPE
tables and mask), same seed so identical init. --batch stays the GLOBAL batch: every
rank builds the same global token data and trains on its batch/P rows (error if not
divisible), so the averaged gradients, and the losses, equal the single-process run's.
Step = forward + CE + backward (DDP all-reduces the trainable grads) + AdamW, timed on
every rank with its own wall clock (no barrier). Only rank 0 prints, one JSON line
with the keys above (batch = global, tokens_per_s from the global batch x seq over
rank 0's median step, loss_* = mean over ranks) plus "ddp":P, "backend":"gloo",
"batch_per_rank" and "rank_step_ms_median" (every rank's median); the launcher holds
it back and writes it to stdout only if every rank exits 0 (else to stderr), and the
other ranks' stdout goes to stderr, so stdout gets at most one line. Exit status 0 only
when every rank exits 0; when one fails the launcher terminates the rest after 10 s
and exits non-zero, and it also fails ranks still running 60 s after one finished.
Ranks end with os._exit after flushing: torch 1.13 can deadlock in interpreter
teardown (the DDP Reducer's ProcessGroupGloo destructor joins a gloo thread that waits
for the GIL the main thread holds; seen once here, a rank spinning after its work).

CPU tuning done here (so a caller cannot forget it):
  - the script re-executes itself with LD_PRELOAD=Debian's tcmalloc and
    OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS = N when they are not
    set that way. OPENBLAS_NUM_THREADS matters a lot: Debian's torch calls the
    pthread OpenBLAS, whose threads torch.set_num_threads does NOT limit, so a
    "1 thread" run without it silently uses every core for the GEMMs.
  - torch.set_num_threads(N), torch.set_num_interop_threads(1) before any work.
  - --openblas-coretype auto (default): OpenBLAS 0.3.21 does not know newer CPUs
    (here AMD family 0x1A, Zen 5) and falls back to its AVX2 "Haswell" kernels;
    when the CPU has AVX-512 (F, CD, BW, DQ, VL) and OPENBLAS_CORETYPE is unset,
    auto sets OPENBLAS_CORETYPE=SkylakeX. "none" leaves OpenBLAS's choice.
  - --blas auto (default): put Debian's OpenMP build of OpenBLAS
    (/usr/lib/x86_64-linux-gnu/openblas-openmp, package libopenblas0-openmp) first
    on LD_LIBRARY_PATH. With the default pthread build, torch's OpenMP threads and
    OpenBLAS's own pthreads spin against each other: at 2 threads on a 2-core box
    the step got SLOWER than at 1 thread (stories15M 920 vs 1310 tokens/s, with
    multi-second outlier steps); with the OpenMP build both share one pool
    (2,390 tokens/s). At 1 thread the two builds are the same speed.
  - frozen base (requires_grad False), no per-step tensor creation besides what
    autograd needs (tokens, RoPE tables and the causal mask are built once), the
    attention scale folded into the q RoPE tables, the LoRA scaling applied on the
    rank-r tensor, one reused AdamW (foreach) over the LoRA parameters only, grads
    set to None, median over the timed steps.

MEASURED on this machine (AMD EPYC Zen 5 KVM guest, 2 vCPUs; Debian torch 1.13.1 CPU
[torch.__version__ says 1.13.0a0], OpenBLAS 0.3.21 OpenMP build, tcmalloc; batch 8 at
the shape's full seq_len; OPENBLAS_CORETYPE=Haswell as this machine's environment sets it):
  stories15M  (T=256), 1 thread:  1,311 tokens/s (median step 1,562 ms)
  stories260K (T=512), 1 thread:  8,723 tokens/s (median step   470 ms)
  stories15M,  2 threads:          2,389 tokens/s (857 ms)
  stories260K, 2 threads:         12,112 tokens/s (338 ms)
With --openblas-coretype SkylakeX (AVX-512 kernels; what auto picks when the variable
is unset): stories15M 2,174 tokens/s at 1 thread, 3,256 at 2; stories260K 10,144 at 1.
Profile (1 thread, Haswell kernels): stories15M is GEMM-bound (aten::mm 76 %, bmm 9 %,
log_softmax fwd+bwd over the 2048 x 32000 logits 6 %); stories260K is attention-bound
(bmm with head_size 8 47 %, softmax fwd+bwd over [8,8,512,512] 27 %, mm 12 %).

MEASURED --ddp (later, on a 2-vCPU KVM guest whose lscpu says "Intel(R) Xeon(R)
Processor", so not comparable with the numbers above; OPENBLAS_CORETYPE unset, so auto
picked SkylakeX; OpenMP OpenBLAS, tcmalloc; global batch 8; --steps 6 --warmup 2; median):
  stories15M  --threads 1 --ddp 2:  2,617 tokens/s (783 ms; rank medians 783 / 786 ms)
                                   [an earlier run: 2,559 tokens/s, 800 ms]
  stories15M  --threads 1:          1,309 tokens/s (1,564 ms)  [earlier: 1,256]
  stories15M  --threads 2:          2,340 tokens/s (875 ms)
  stories260K --threads 1 --ddp 2: 11,366 tokens/s (360 ms)    [earlier: 11,066]
  stories260K --threads 1:          5,530 tokens/s (741 ms)    [earlier: 6,141]
so 2 ranks x 1 thread is 2.0x one process at 1 thread and beats 1 process x 2 threads;
loss_first / loss_last are the same as the single-process run's (same global data).
"""

import argparse
import os
import sys

TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
OPENBLAS_OPENMP_DIR = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
REEXEC_MARK = "LT_BENCH_TORCH_REEXEC"

SHAPES = {
    # dim, n_layers, n_heads, n_kv_heads, hidden_dim, vocab_size, seq_len
    "stories15M": dict(dim=288, n_layers=6, n_heads=6, n_kv_heads=6, hidden_dim=768,
                       vocab_size=32000, seq_len=256),
    "stories260K": dict(dim=64, n_layers=5, n_heads=8, n_kv_heads=4, hidden_dim=172,
                        vocab_size=512, seq_len=512),
}


def parse_args(argv):
    ap = argparse.ArgumentParser(description="PyTorch LoRA training-step benchmark (CPU)")
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--seq", type=int, default=0, help="tokens per sequence (0: the shape's seq_len)")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--openblas-coretype", default="auto",
                    help="auto (SkylakeX on AVX-512 CPUs when unset), none, or an OpenBLAS core name")
    ap.add_argument("--blas", choices=("auto", "openmp", "system"), default="auto",
                    help="auto/openmp: load Debian's OpenMP build of OpenBLAS (libopenblas0-openmp) "
                         "when installed; system: whatever libblas.so.3 the alternatives pick")
    ap.add_argument("--no-reexec", action="store_true",
                    help="do not re-exec with tcmalloc and thread env vars (for experiments)")
    ap.add_argument("--finetuning-type", "--finetuning_type", dest="finetuning_type",
                    choices=("lora", "full"), default="lora",
                    help="lora (default): frozen base + LoRA on q,k,v,o; full: every weight "
                         "trains (fp32, AdamW over all parameters)")
    ap.add_argument("--ddp", type=int, default=0,
                    help="data-parallel: N processes (torch.distributed gloo + DistributedDataParallel), "
                         "--threads threads each, --batch is the GLOBAL batch split batch/N per rank; "
                         "0 (default): single process")
    a = ap.parse_args(argv)
    for k in ("batch", "threads", "steps", "rank"):
        if getattr(a, k) < 1:
            ap.error("--%s must be >= 1" % k)
    if a.warmup < 0 or a.seq < 0:
        ap.error("--warmup and --seq must be >= 0")
    if a.ddp < 0:
        ap.error("--ddp must be >= 0")
    if a.ddp and a.batch % a.ddp:
        ap.error("--batch %d (the global batch) is not divisible by --ddp %d" % (a.batch, a.ddp))
    return a


def _cpu_has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    fl = set(line.split(":", 1)[1].split())
                    return {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"} <= fl
    except OSError:
        pass
    return False


def ensure_env(args):
    """Re-exec with tcmalloc preloaded and the thread variables set, once."""
    n = str(args.threads)
    want = {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n}
    if args.openblas_coretype == "auto":
        if "OPENBLAS_CORETYPE" not in os.environ and _cpu_has_avx512():
            want["OPENBLAS_CORETYPE"] = "SkylakeX"
    elif args.openblas_coretype != "none":
        want["OPENBLAS_CORETYPE"] = args.openblas_coretype
    env_extra = {}
    if args.blas in ("auto", "openmp"):
        if os.path.exists(os.path.join(OPENBLAS_OPENMP_DIR, "libblas.so.3")):
            ldp = os.environ.get("LD_LIBRARY_PATH", "")
            if ldp.split(":")[0] != OPENBLAS_OPENMP_DIR:
                env_extra["LD_LIBRARY_PATH"] = (OPENBLAS_OPENMP_DIR + ":" + ldp).rstrip(":")
        elif args.blas == "openmp":
            print("bench_torch: warning: %s missing (apt package libopenblas0-openmp); using the "
                  "system BLAS" % OPENBLAS_OPENMP_DIR, file=sys.stderr)
    preload = os.environ.get("LD_PRELOAD", "")
    have_tc = any(os.path.basename(p).startswith("libtcmalloc")
                  for p in preload.replace(":", " ").split())
    need = {k: v for k, v in want.items() if os.environ.get(k) != v}
    need.update(env_extra)
    tc_ok = os.path.exists(TCMALLOC)
    if not tc_ok and not have_tc:
        print("bench_torch: warning: %s not found (apt package libtcmalloc-minimal4); "
              "running with glibc malloc" % TCMALLOC, file=sys.stderr)
    if (need or (tc_ok and not have_tc)) and not args.no_reexec:
        if os.environ.get(REEXEC_MARK):
            print("bench_torch: warning: environment still not as wanted after re-exec: %s"
                  % sorted(need), file=sys.stderr)
            return
        env = dict(os.environ)
        env.update(want)
        env.update(env_extra)
        if tc_ok and not have_tc:
            env["LD_PRELOAD"] = (TCMALLOC + " " + preload).strip()
        env[REEXEC_MARK] = "1"
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)


DDP_CHILD_MARK = "LT_BENCH_TORCH_DDP_CHILD"
DDP_TIMEOUT_S = 60  # init_process_group timeout; gloo also applies it to every collective


def _free_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_ddp(args):
    """--ddp N launcher (runs after ensure_env, so the environment is already tuned; it never
    imports torch): start N children of this script with that same environment plus
    RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT. Rank 0's stdout (the one JSON line) is
    held in a temporary file and copied to our stdout only when every rank exited 0 (to
    stderr otherwise); the other ranks' stdout goes to stderr. Exit status: 0 only when every
    rank exits 0; when one fails, the others are terminated after a short grace period."""
    import signal
    import subprocess
    import tempfile
    import time as _time
    n = args.ddp
    base = dict(os.environ)
    base.update({DDP_CHILD_MARK: "1", "WORLD_SIZE": str(n), "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(_free_port())})
    if "GLOO_SOCKET_IFNAME" not in base and os.path.exists("/sys/class/net/lo"):
        base["GLOO_SOCKET_IFNAME"] = "lo"  # all ranks are local: do not depend on hostname lookup
    cmd = [sys.executable, os.path.abspath(__file__)] + sys.argv[1:]
    sys.stdout.flush()
    sys.stderr.flush()
    procs = []
    out0 = tempfile.TemporaryFile()
    # a SIGTERM to the launcher unwinds through the finally below, which kills the ranks
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for r in range(n):
            env = dict(base, RANK=str(r), LOCAL_RANK=str(r))
            procs.append(subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                          stdout=out0 if r == 0 else sys.stderr.fileno()))
        rc = 0
        fail_t = None  # when the first rank failed
        done_t = None  # when the first rank exited 0
        while True:
            codes = [p.poll() for p in procs]
            bad = [c for c in codes if c not in (None, 0)]
            if bad and fail_t is None:
                fail_t = _time.monotonic()
                rc = bad[0] if bad[0] > 0 else 128 - bad[0]
            if all(c is not None for c in codes):
                break
            if done_t is None and 0 in codes:
                done_t = _time.monotonic()
            if (fail_t is None and done_t is not None
                    and _time.monotonic() - done_t > DDP_TIMEOUT_S):
                # a finished rank's peers have nothing left to wait for: a rank still running
                # this long after is stuck (e.g. in torch's process-group teardown)
                print("bench_torch: error: ddp ranks still running %d s after one finished"
                      % DDP_TIMEOUT_S, file=sys.stderr)
                fail_t, rc = 0.0, 1
            if fail_t is not None and _time.monotonic() - fail_t > 10:
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGTERM)
                _time.sleep(2)
                for p in procs:
                    if p.poll() is None:
                        p.kill()
                for p in procs:
                    p.wait()
                break
            _time.sleep(0.05)
        if rc == 0 and any(p.returncode for p in procs):
            rc = 1
        out0.seek(0)
        text = out0.read().decode("utf-8", "replace")
        if rc:
            sys.stderr.write(text)
            print("bench_torch: error: ddp rank exit codes %s" % [p.returncode for p in procs],
                  file=sys.stderr)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
        return rc
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        out0.close()


ARGS = parse_args(sys.argv[1:])
ensure_env(ARGS)
if ARGS.ddp and not os.environ.get(DDP_CHILD_MARK):
    sys.exit(launch_ddp(ARGS))

import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(ARGS.threads)
torch.set_num_interop_threads(1)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class LoraLinear(nn.Module):
    """PEFT lora.Linear, dropout 0: y = base(x) + lora_B(lora_A(x)) * scaling."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        self.scaling = alpha / r

    def forward(self, x):
        y = self.base_layer(x)
        # scaling on the [N, r] tensor instead of the [N, out] one: same value, less work
        return y.add_(self.lora_B(self.lora_A(x) * self.scaling))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_heads, self.n_kv = c["n_heads"], c["n_kv_heads"]
        self.hs = c["dim"] // self.n_heads
        self.q_proj = nn.Linear(c["dim"], self.n_heads * self.hs, bias=False)
        self.k_proj = nn.Linear(c["dim"], self.n_kv * self.hs, bias=False)
        self.v_proj = nn.Linear(c["dim"], self.n_kv * self.hs, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.hs, c["dim"], bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.hs).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv, self.hs).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv, self.hs).transpose(1, 2)
        # cos/sin already carry 1/sqrt(hs) for q (folded scale), plain for k
        q = q * cos[0] + rotate_half(q) * sin[0]
        k = k * cos[1] + rotate_half(k) * sin[1]
        rep = self.n_heads // self.n_kv
        if rep > 1:  # HF repeat_kv
            k = k[:, :, None].expand(B, self.n_kv, rep, T, self.hs).reshape(B, self.n_heads, T, self.hs)
            v = v[:, :, None].expand(B, self.n_kv, rep, T, self.hs).reshape(B, self.n_heads, T, self.hs)
        scores = torch.matmul(q, k.transpose(-2, -1))
        scores = scores.add_(mask)
        att = torch.softmax(scores, dim=-1)
        out = torch.matmul(att, v).transpose(1, 2).reshape(B, T, self.n_heads * self.hs)
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c["dim"], c["hidden_dim"], bias=False)
        self.up_proj = nn.Linear(c["dim"], c["hidden_dim"], bias=False)
        self.down_proj = nn.Linear(c["hidden_dim"], c["dim"], bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["dim"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["dim"])
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, c, T):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["dim"])
        self.layers = nn.ModuleList(Block(c) for _ in range(c["n_layers"]))
        self.norm = RMSNorm(c["dim"])
        hs = c["dim"] // c["n_heads"]
        inv = 1.0 / (10000.0 ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))
        ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
        ang = torch.cat((ang, ang), dim=-1)  # HF layout [T, hs]
        s = 1.0 / math.sqrt(hs)
        self.register_buffer("cos", torch.stack((ang.cos() * s, ang.cos())).float())
        self.register_buffer("sin", torch.stack((ang.sin() * s, ang.sin())).float())
        self.register_buffer("mask", torch.full((T, T), float("-inf")).triu(1))

    def forward(self, tokens):
        x = self.embed_tokens(tokens)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.mask)
        # tied classifier (llama2.c shapes share it with the embedding)
        return F.linear(self.norm(x), self.embed_tokens.weight)


def build(c, T, r, alpha, gen, full=False):
    m = Llama(c, T)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if not n.endswith("norm.weight"):
                p.normal_(0.0, 0.02, generator=gen)  # HF initializer_range
    if full:  # full fine-tuning: no adapters, every parameter (all fp32) trains
        m.requires_grad_(True)
        return m
    m.requires_grad_(False)  # frozen base
    for layer in m.layers:
        at = layer.self_attn
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            lin = LoraLinear(getattr(at, name), r, alpha)
            with torch.no_grad():
                # PEFT init for A; B small random (not zero) so every gradient is non-trivial
                nn.init.kaiming_uniform_(lin.lora_A.weight, a=math.sqrt(5))
                lin.lora_B.weight.normal_(0.0, 0.02, generator=gen)
            setattr(at, name, lin)
    return m


def loaded_blas():
    """Paths of the BLAS libraries mapped into this process."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                base = os.path.basename(path)
                if base.startswith(("libblas.so", "libopenblas")):
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    return sorted(libs)


def main():
    a = ARGS
    c = SHAPES[a.shape]
    T = a.seq or c["seq_len"]
    B = a.batch  # global batch (= the per-process batch without --ddp)
    ddp = a.ddp > 0
    rank, world = 0, 1
    if ddp:
        import datetime
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel as DDP
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        if world != a.ddp:
            print("bench_torch: error: WORLD_SIZE %d != --ddp %d" % (world, a.ddp), file=sys.stderr)
            return 1
        dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=DDP_TIMEOUT_S))
    B_local = B // world
    # same seed on every rank: identical model (DDP broadcasts rank 0's anyway) and identical
    # global data, of which each rank takes its own batch/N rows
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    full = a.finetuning_type == "full"
    model = build(c, T, a.rank, a.alpha, gen, full=full)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    n_train = sum(p.numel() for p in params)
    n_total = sum(p.numel() for p in model.parameters())
    if ddp:
        # buffers (RoPE tables, causal mask) are constant and identical: no per-step broadcast
        model = DDP(model, broadcast_buffers=False, find_unused_parameters=False,
                    gradient_as_bucket_view=True)
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0, foreach=True)

    n_steps = a.warmup + a.steps
    data = torch.randint(0, c["vocab_size"], (n_steps, B, T + 1), generator=gen)
    data = data[:, rank * B_local:(rank + 1) * B_local]
    inputs = [data[i, :, :-1].contiguous() for i in range(n_steps)]
    targets = [data[i, :, 1:].reshape(-1).contiguous() for i in range(n_steps)]
    del data

    times = []
    losses = []
    for i in range(n_steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(inputs[i])
        loss = F.cross_entropy(logits.view(-1, c["vocab_size"]), targets[i])
        loss.backward()
        opt.step()
        t1 = time.perf_counter()
        losses.append(loss.item())
        del logits, loss
        if i >= a.warmup:
            times.append(t1 - t0)
    rank_medians = None
    if ddp:
        # after the timed loop: global mean loss per step (equal shards, so the mean of the
        # rank means) and every rank's median step time
        lt = torch.tensor(losses, dtype=torch.float64)
        dist.all_reduce(lt)
        losses = (lt / world).tolist()
        meds = [torch.zeros(1, dtype=torch.float64) for _ in range(world)]
        dist.all_gather(meds, torch.tensor([statistics.median(times)], dtype=torch.float64))
        rank_medians = [round(m.item() * 1e3, 2) for m in meds]
        # no destroy_process_group / DDP teardown: see _ddp_child_exit
        if rank != 0:
            return 0 if all(math.isfinite(v) for v in losses) else 1
    if not all(math.isfinite(v) for v in losses):
        print("bench_torch: error: non-finite loss %s" % losses, file=sys.stderr)
        return 1
    med = statistics.median(times)
    out = {
        "impl": "pytorch",
        "shape": a.shape,
        "threads": a.threads,
        "batch": B,
        "seq": T,
        "tokens_per_s": round(B * T / med, 1),
        "step_ms_median": round(med * 1e3, 2),
        "torch": torch.__version__,
        "step_ms_min": round(min(times) * 1e3, 2),
        "step_ms_max": round(max(times) * 1e3, 2),
        "steps": a.steps,
        "warmup": a.warmup,
        "finetuning_type": a.finetuning_type,
        "trainable_params": n_train,
        "total_params": n_total,
        "loss_first": round(losses[0], 4),
        "loss_last": round(losses[-1], 4),
        "tcmalloc": "tcmalloc" in os.environ.get("LD_PRELOAD", ""),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "blas": loaded_blas(),
    }
    if not full:
        out["lora_params"] = n_train
    if ddp:
        out.update({"ddp": world, "backend": "gloo", "batch_per_rank": B_local,
                    "rank_step_ms_median": rank_medians})
    print(json.dumps(out))
    return 0


def _ddp_child_exit(rc):
    """End a --ddp rank without interpreter teardown. Torch 1.13 can deadlock there: the main
    thread (holding the GIL) destroys the DDP Reducer, whose ProcessGroupGloo destructor joins
    a gloo worker thread that is waiting for the GIL to free a tensor (seen here: rank 1 spun
    forever after rank 0 had printed its line). Every collective has completed by now."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(rc)


if __name__ == "__main__":
    if ARGS.ddp:  # a rank (the launcher exited above)
        try:
            status = main()
        except BaseException:
            import traceback
            traceback.print_exc()
            status = 1
        _ddp_child_exit(status)
    sys.exit(main())
