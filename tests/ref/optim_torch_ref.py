#!/usr/bin/python3
"""PyTorch reference for the optimizer module: torch.optim.AdamW with a LambdaLR
built from Hugging Face transformers' schedule lambdas and
torch.nn.utils.clip_grad_norm_, replaying the gradients the C test wrote.

Usage:
  optim_torch_ref.py --case CASE.ltt --out REF.ltt [--dtype float32|float64]

Case file (tests/lib/tensorfile.h "LTT1"), written by `test_optim torch-case`:
  cases int32[1] (K), steps int32[1] (S), and for each case k:
  c{k}.sizes int32[m]         the flat buffer is split into m tensors of these sizes
  c{k}.params0 float32[n]     initial parameters
  c{k}.grads float32[S, n]    the gradient of each step
  c{k}.lr, .beta1, .beta2, .eps, .weight_decay, .max_grad_norm  float64[1]
  c{k}.sched.kind int32[1]    0 constant, 1 constant_with_warmup, 2 linear, 3 cosine
  c{k}.sched.warmup_steps, c{k}.sched.total_steps  int32[1]
Output, per case k (all float64):
  c{k}.lr_used [S]            learning rate of each optimizer step
  c{k}.grad_norm [S]          total gradient norm before clipping
  c{k}.params [S, n]          parameters after each step

One step s: grads = case gradients of step s (cast to dtype); norm =
clip_grad_norm_(params, max_grad_norm) when max_grad_norm > 0 (else the same
norm, unclipped, as the HF Trainer skips clipping); optimizer.step();
scheduler.step().
"""
import argparse
import math
import os
import sys
from collections import OrderedDict

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))  # tensorfile.py
import tensorfile  # noqa: E402

SCHED_NAMES = ("constant", "constant_with_warmup", "linear", "cosine")


class RefError(Exception):
    pass


# transformers.optimization's lambdas (v4.x), copied term for term so that the
# arithmetic, and therefore the rounding, is HF's.
def _constant_lambda(_=None):
    return 1


def _constant_with_warmup_lambda(current_step, *, num_warmup_steps):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1.0, num_warmup_steps))
    return 1.0


def _linear_lambda(current_step, *, num_warmup_steps, num_training_steps):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    return max(0.0, float(num_training_steps - current_step)
               / float(max(1, num_training_steps - num_warmup_steps)))


def _cosine_lambda(current_step, *, num_warmup_steps, num_training_steps, num_cycles=0.5):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(
        max(1, num_training_steps - num_warmup_steps))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))


def hf_lambda(kind, warmup, total):
    """The lr_lambda HF's get_scheduler(kind, ...) installs in a LambdaLR."""
    if kind == 0:  # get_scheduler("constant") ignores num_warmup_steps
        return _constant_lambda
    if kind == 1:
        return lambda s: _constant_with_warmup_lambda(s, num_warmup_steps=warmup)
    if kind == 2:
        return lambda s: _linear_lambda(s, num_warmup_steps=warmup, num_training_steps=total)
    if kind == 3:
        return lambda s: _cosine_lambda(s, num_warmup_steps=warmup, num_training_steps=total)
    raise RefError("sched.kind = %d, expected 0..3 (%s)" % (kind, ", ".join(SCHED_NAMES)))


def _scalar(case, name, kind):
    if name not in case:
        raise RefError("case lacks %s" % name)
    a = case[name]
    if a.size != 1:
        raise RefError("case %s: %d elements, expected 1" % (name, a.size))
    return kind(a.reshape(-1)[0])


def run_case(case, k, steps, dtype):
    p = "c%d." % k
    sizes = [int(x) for x in case[p + "sizes"].reshape(-1)]
    p0 = case[p + "params0"]
    grads = case[p + "grads"]
    n = sum(sizes)
    if p0.shape != (n,) or grads.shape != (steps, n):
        raise RefError("case %d: params0 %s / grads %s, expected [%d] / [%d, %d]"
                       % (k, p0.shape, grads.shape, n, steps, n))
    lr = _scalar(case, p + "lr", float)
    beta1 = _scalar(case, p + "beta1", float)
    beta2 = _scalar(case, p + "beta2", float)
    eps = _scalar(case, p + "eps", float)
    wd = _scalar(case, p + "weight_decay", float)
    max_norm = _scalar(case, p + "max_grad_norm", float)
    kind = _scalar(case, p + "sched.kind", int)
    warmup = _scalar(case, p + "sched.warmup_steps", int)
    total = _scalar(case, p + "sched.total_steps", int)

    flat0 = torch.from_numpy(p0).to(dtype)
    params = [torch.nn.Parameter(t.clone()) for t in torch.split(flat0, sizes)]
    opt = torch.optim.AdamW(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=wd,
                            amsgrad=False, maximize=False, foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, hf_lambda(kind, warmup, total))

    lr_used = np.zeros(steps)
    norms = np.zeros(steps)
    traj = np.zeros((steps, n))
    for s in range(steps):
        g = torch.from_numpy(grads[s]).to(dtype)
        for prm, gs in zip(params, torch.split(g, sizes)):
            prm.grad = gs.clone()
        if max_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        else:
            norm = torch.norm(torch.stack([torch.norm(prm.grad, 2.0) for prm in params]), 2.0)
        norms[s] = float(norm)
        lr_used[s] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        with torch.no_grad():
            traj[s] = torch.cat([prm.detach().reshape(-1) for prm in params]).double().numpy()
    return lr_used, norms, traj


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = ap.parse_args(argv)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    torch.set_num_threads(1)  # a fixed reduction order in torch.norm
    try:
        case = tensorfile.read(args.case)
        ncases = _scalar(case, "cases", int)
        steps = _scalar(case, "steps", int)
        out = OrderedDict()
        for k in range(ncases):
            lr_used, norms, traj = run_case(case, k, steps, dtype)
            out["c%d.lr_used" % k] = lr_used
            out["c%d.grad_norm" % k] = norms
            out["c%d.params" % k] = traj
        tensorfile.write(args.out, out)
    except (RefError, tensorfile.TensorFileError, OSError, KeyError) as e:
        print("optim_torch_ref: error: %s" % e, file=sys.stderr)
        return 2
    print("optim_torch_ref: %d cases x %d steps in %s" % (ncases, steps, args.dtype))
    return 0


if __name__ == "__main__":
    sys.exit(main())
