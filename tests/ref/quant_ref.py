#!/usr/bin/python3
"""Independent reference of bitsandbytes' quantization, from its published algorithm.

Written from bitsandbytes' CUDA kernels (kQuantizeBlockwise with dQuantizeNF4,
dQuantizeFP4 and dQuantize<0>, kDequantizeBlockwise), its Python driver
(quantize_4bit's compress_statistics branch, create_dynamic_map) and
int8_vectorwise_quant/dequant -- not from loratrain's C code. numpy float32
arithmetic throughout, so every rounding is the kernels' rounding.

  quant_ref.py --check CASES.ltt   recompute every case test_quant wrote and
                                   compare codes, absmax (and the double-quant
                                   state) and dequantized values bit for bit
  quant_ref.py --selfcheck         the reference against facts it must hold
  quant_ref.py --bitsandbytes CASES.ltt   also compare with bitsandbytes
                                   itself (needs a Python where it imports)
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))  # tensorfile.py
import tensorfile  # noqa: E402

F32 = np.float32
NF4, FP4, INT8 = 1, 2, 3
NAMES = {NF4: "nf4", FP4: "fp4", INT8: "int8"}

# get_4bit_type("nf4")
NF4_CODE = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=F32)

# dDequantizeFP4Tree: magnitude by the low three bits, sign by bit 3
FP4_MAG = np.array([0.0, 5.208333333e-03, 0.66666667, 1.0, 0.33333333, 0.5, 0.16666667, 0.25],
                   dtype=F32)


def nf4_quantize(x):
    """dQuantizeNF4, the nested comparisons of the kernel as nested where()."""
    x = np.asarray(x, dtype=F32)
    t = lambda v: x > F32(v)  # noqa: E731
    w = np.where
    return w(t(0.03979014977812767),
             w(t(0.3893125355243683),
               w(t(0.6427869200706482), w(t(0.8614784181118011), 15, 14),
                 w(t(0.5016634166240692), 13, 12)),
               w(t(0.2035212516784668), w(t(0.2920137718319893), 11, 10),
                 w(t(0.1202552504837513), 9, 8))),
             w(t(-0.33967943489551544),
               w(t(-0.13791173323988914), w(t(-0.045525018125772476), 7, 6),
                 w(t(-0.23460740596055984), 5, 4)),
               w(t(-0.6106329262256622), w(t(-0.4599952697753906), 3, 2),
                 w(t(-0.8480964004993439), 1, 0)))).astype(np.uint8)


def fp4_quantize(x):
    """dQuantizeFP4: sign bit, then a tree over |x|."""
    x = np.asarray(x, dtype=F32)
    sign = np.where(x < 0, 8, 0)
    a = np.abs(x)
    t = lambda v: a > F32(v)  # noqa: E731
    w = np.where
    mag = w(t(0.29166667),
            w(t(0.583333), w(t(0.8333333), 3, 2), w(t(0.4166667), 5, 4)),
            w(t(0.0859375), w(t(0.20833333), 7, 6), w(t(0.00260417), 1, 0)))
    return (mag + sign).astype(np.uint8)


def fp4_table():
    mag = np.concatenate([FP4_MAG, FP4_MAG])
    sign = np.where(np.arange(16) >= 8, F32(-1), F32(1))
    return mag, sign


def create_dynamic_map():
    """bitsandbytes.functional.create_dynamic_map(signed=True, 7, 8), with torch."""
    import torch
    data = []
    max_exponent_bits, non_sign_bits = 7, 7
    for i in range(max_exponent_bits):
        fraction_items = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1)
        boundaries = torch.linspace(0.1, 1, fraction_items)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data.append(0)
    data.append(1.0)
    assert len(data) == 256
    data.sort()
    return np.array(data, dtype=F32)


def dynamic_quantize(x, code):
    """dQuantize<0>: the kernel's seven-step search and midpoint choice, vectorised."""
    x = np.asarray(x, dtype=F32).ravel()
    n = x.size
    pivot = np.full(n, 127)
    upper_p, lower_p = np.full(n, 255), np.zeros(n, dtype=np.int64)
    lower, upper = np.full(n, F32(-1)), np.full(n, F32(1))
    val = code[pivot]
    step = 64
    while step > 0:
        right = x > val
        lower_p = np.where(right, pivot, lower_p)
        lower = np.where(right, val, lower)
        upper_p = np.where(right, upper_p, pivot)
        upper = np.where(right, upper, val)
        pivot = np.where(right, pivot + step, pivot - step)
        val = code[pivot]
        step //= 2
    upper = np.where(upper_p == 255, code[255], upper)
    lower = np.where(lower_p == 0, code[0], lower)
    up_mid = ((upper + val) * F32(0.5)).astype(F32)
    lo_mid = ((lower + val) * F32(0.5)).astype(F32)
    q = np.where(x > val, np.where(x > up_mid, upper_p, pivot),
                 np.where(x < lo_mid, lower_p, pivot))
    return q.astype(np.uint8)


def blockwise_absmax(flat, bs):
    n = flat.size
    nb = (n + bs - 1) // bs
    padded = np.zeros(nb * bs, dtype=F32)
    padded[:n] = flat
    return np.abs(padded.reshape(nb, bs)).max(axis=1).astype(F32), padded


def quantize_4bit(w, fmt, bs, dq, code8):
    """quantize_4bit(blocksize=bs, compress_statistics=dq, quant_type=fmt)."""
    flat = np.asarray(w, dtype=F32).ravel()
    n = flat.size
    absmax, padded = blockwise_absmax(flat, bs)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = (F32(1) / absmax).astype(F32)
        # the kernel loads a partial block padded with 0.0f
        scaled = (padded.reshape(-1, bs) * inv[:, None]).astype(F32).ravel()[: n + (n & 1)]
    q = (nf4_quantize if fmt == NF4 else fp4_quantize)(scaled)
    codes = ((q[0::2].astype(np.uint16) << 4) | q[1::2]).astype(np.uint8)
    state = {"absmax": absmax}
    if dq:
        # offset = absmax.mean(): a float64 sum here (torch sums float32 in its
        # own order; the two agree to the last bit or differ by one ulp)
        offset = F32(np.float64(absmax.astype(np.float64).sum()) / absmax.size)
        centered = (absmax - offset).astype(F32)
        a2, padded2 = blockwise_absmax(centered, 256)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv2 = (F32(1) / a2).astype(F32)
            s2 = (padded2.reshape(-1, 256) * inv2[:, None]).astype(F32).ravel()[: absmax.size]
        state = {"absmax_q": dynamic_quantize(s2, code8), "absmax2": a2,
                 "offset": np.array([offset], dtype=F32)}
    return codes, state


def dequantize_4bit(codes, state, fmt, bs, n, code8):
    """kDequantizeBlockwise after dequantize_blockwise(absmax) + offset."""
    if "absmax_q" in state:
        a2 = np.repeat(state["absmax2"], 256)[: state["absmax_q"].size]
        absmax = (code8[state["absmax_q"]] * a2).astype(F32)
        absmax = (absmax + state["offset"][0]).astype(F32)
    else:
        absmax = state["absmax"]
    q = np.empty(codes.size * 2, dtype=np.uint8)
    q[0::2], q[1::2] = codes >> 4, codes & 15
    q = q[:n]
    am = np.repeat(absmax, bs)[:n]
    if fmt == NF4:
        return (NF4_CODE[q] * am).astype(F32)
    mag, sign = fp4_table()
    return ((mag[q] * am).astype(F32) * sign[q]).astype(F32)


def quantize_int8(w):
    """int8_vectorwise_quant (threshold 0): round(w * (127 / rowmax)), half to even."""
    w = np.asarray(w, dtype=F32)
    rowmax = np.abs(w).max(axis=1).astype(F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (F32(127) / rowmax).astype(F32)
        q = np.rint((w * scale[:, None]).astype(F32))
    q = np.where(rowmax[:, None] > 0, q, 0).astype(np.int8)
    return q, rowmax


def dequantize_int8(q, rowmax):
    return ((q.astype(F32) * rowmax[:, None]).astype(F32) * F32(7.874015718698502e-3)).astype(F32)


# ---------------------------------------------------------------------------

def check(path):
    cases = tensorfile.read(path)
    code8 = create_dynamic_map()
    fails = []

    def same(what, ours, ref):
        ours, ref = np.asarray(ours), np.asarray(ref)
        if ours.shape != ref.shape:
            fails.append("%s: shape %s, reference %s" % (what, ours.shape, ref.shape))
            return
        if ours.dtype.kind == "f":
            diff = ours.view(np.uint32) != ref.astype(F32).view(np.uint32)
        else:
            diff = ours.astype(np.int64) != ref.astype(np.int64)
        if diff.any():
            i = int(np.flatnonzero(diff.ravel())[0])
            fails.append("%s: %d of %d differ, first at %d: ours %r, reference %r"
                         % (what, int(diff.sum()), diff.size, i, ours.ravel()[i], ref.ravel()[i]))

    same("dynamic map (C table vs torch create_dynamic_map)", cases["dynamic8_code"], code8)
    same("NF4 table", cases["nf4_code"], NF4_CODE)
    mag, sign = fp4_table()
    same("FP4 table", cases["fp4_code"], (mag * sign).astype(F32))
    for k in range(int(cases["ncases"][0])):
        fmt, bs, dq = (int(v) for v in cases["case%d.config" % k])
        w = cases["case%d.w" % k]
        tag = "case %d (%s, blocks %d, dq %d, %s)" % (k, NAMES[fmt], bs, dq, w.shape)
        before = len(fails)
        deq = cases["case%d.dequantized" % k]
        if fmt == INT8:
            q, rowmax = quantize_int8(w)
            same(tag + " codes", cases["case%d.codes" % k].astype(np.uint8).view(np.int8), q.ravel())
            same(tag + " row absmax", cases["case%d.absmax" % k], rowmax)
            same(tag + " dequantized", deq, dequantize_int8(q, rowmax))
        else:
            codes, state = quantize_4bit(w, fmt, bs, dq, code8)
            same(tag + " codes", cases["case%d.codes" % k], codes)
            if dq:
                same(tag + " absmax codes", cases["case%d.absmax" % k], state["absmax_q"])
                same(tag + " absmax2", cases["case%d.absmax2" % k], state["absmax2"])
                same(tag + " offset", cases["case%d.offset" % k], state["offset"])
            else:
                same(tag + " absmax", cases["case%d.absmax" % k], state["absmax"])
            same(tag + " dequantized", deq,
                 dequantize_4bit(codes, state, fmt, bs, w.size, code8).reshape(w.shape))
        if not np.isfinite(deq).all():
            fails.append(tag + ": dequantized values are not all finite")
        print("%-48s %7d elements: %s" % (tag, w.size, "identical" if len(fails) == before else "DIFFERENT"))
    for f in fails:
        print("FAIL " + f)
    return 1 if fails else 0


def selfcheck():
    """Facts the reference must reproduce, independent of the C code."""
    fails = []
    # thresholds are the midpoints of adjacent NF4 values
    xs = np.linspace(-1, 1, 200001, dtype=F32)
    nearest = np.abs(xs[:, None] - NF4_CODE[None, :]).argmin(axis=1)
    tree = nf4_quantize(xs)
    near_mid = np.abs(xs[:, None] - ((NF4_CODE[1:] + NF4_CODE[:-1]) / 2)[None, :]).min(axis=1) < 1e-6
    if (tree != nearest)[~near_mid].any():
        fails.append("NF4 tree disagrees with nearest-code away from midpoints")
    fp4_vals = (lambda m, s: m * s)(*fp4_table())
    nearest = np.abs(xs[:, None] - fp4_vals[None, :]).argmin(axis=1)
    fq = fp4_quantize(xs)
    if not np.allclose(fp4_vals[fq], fp4_vals[nearest], atol=0.0):
        away = np.abs(np.abs(xs[:, None]) - np.array([7 / 24, 7 / 12, 5 / 6, 5 / 12, 11 / 128,
                                                      5 / 24, 1 / 384])[None, :]).min(axis=1) > 1e-5
        if (fp4_vals[fq] != fp4_vals[nearest])[away].any():
            fails.append("FP4 tree disagrees with nearest value away from its pivots")
    code8 = create_dynamic_map()
    if code8.size != 256 or code8[127] != 0 or code8[255] != 1 or not (np.diff(code8) > 0).all():
        fails.append("dynamic map: not 256 sorted values with 0 at 127 and 1 at 255")
    q = dynamic_quantize(code8, code8)
    if (q != np.arange(256)).any():
        fails.append("dynamic quantize does not map each code value to itself")
    # zero blocks: NaN scaled values take code 0 and dequantize to zero
    codes, st = quantize_4bit(np.zeros(64, F32), NF4, 64, 0, code8)
    if codes.any() or dequantize_4bit(codes, st, NF4, 64, 64, code8).any():
        fails.append("an all-zero block does not give code 0 and zeros")
    # the expected NF4 error on Gaussian weights, by Monte Carlo with numpy's RNG
    g = np.random.default_rng(0).standard_normal(1 << 20).astype(F32)
    c, s = quantize_4bit(g, NF4, 64, 0, code8)
    d = dequantize_4bit(c, s, NF4, 64, g.size, code8)
    rel = float(np.sqrt(((g - d).astype(np.float64) ** 2).sum() / (g.astype(np.float64) ** 2).sum()))
    print("NF4 relative RMS error on 2^20 N(0,1) samples, blocks of 64: %.4f" % rel)
    if not 0.08 < rel < 0.10:
        fails.append("NF4 Gaussian error %.4f outside 0.08..0.10" % rel)
    for f in fails:
        print("FAIL " + f)
    print("selfcheck: %s" % ("FAILED" if fails else "ok"))
    return 1 if fails else 0


def compare_bitsandbytes(path):
    """Our codes against bitsandbytes' own quantize_4bit / int8_vectorwise_quant.

    Off the GPU, bitsandbytes quantizes with its torch "default" backend,
    which is not the CUDA kernel in three corners: a zero block takes code 7
    (absmax clamped to 1e-38) where the kernel gives code 0, the last partial
    block is divided instead of multiplied by the reciprocal, and the decision
    uses float32 midpoints instead of the kernel's constants. So codes must
    agree except in zero blocks and where the scaled weight lies within 1e-6
    of a decision boundary; absmax must agree exactly (the double-quant
    offset, a float32 mean in torch's order, to 1e-6 relative; its 8-bit
    codes come from the native CPU search, a third variant, and must agree
    for 99% of blocks and within two code steps); and bitsandbytes' torch
    dequantization of its own codes must equal ours wherever the codes
    agree. Its native CPU dequantization kernel is reported, not required:
    in bitsandbytes 0.50.2 it is wrong whenever a row's length is not a
    multiple of the block size (rows of 96 or 288 with blocks of 64: 11-13%
    of values right), exact when it is (rows of 128 or 4096)."""
    import torch
    import bitsandbytes
    import bitsandbytes.functional as bf
    from bitsandbytes.backends.default.ops import _dequantize_4bit_compute
    from bitsandbytes.backends.utils import _get_4bit_code
    cases = tensorfile.read(path)
    code8 = create_dynamic_map()
    fails = []
    for k in range(int(cases["ncases"][0])):
        fmt, bs, dq = (int(v) for v in cases["case%d.config" % k])
        w = cases["case%d.w" % k]
        tag = "case %d (%s, blocks %d, dq %d, %s)" % (k, NAMES[fmt], bs, dq, w.shape)
        wt = torch.from_numpy(w.copy())
        if fmt == INT8:
            q, stats, _ = bf.int8_vectorwise_quant(wt.clone())
            oq, orow = quantize_int8(w)
            ok = np.array_equal(q.numpy(), oq) and np.array_equal(stats.numpy(), orow)
            print("%-48s codes and row absmax %s" % (tag, "identical" if ok else "DIFFERENT"))
            if not ok:
                fails.append(tag)
            continue
        if bs not in (64, 128, 256, 512, 1024, 2048, 4096):
            print("%-48s skipped: bitsandbytes has no block size %d" % (tag, bs))
            continue
        q, st = bf.quantize_4bit(wt, blocksize=bs, compress_statistics=bool(dq), quant_type=NAMES[fmt])
        qb = q.view(torch.uint8).numpy().ravel()
        codes = cases["case%d.codes" % k].astype(np.uint8)
        # which elements may legitimately differ
        flat = w.ravel()
        absmax, padded = blockwise_absmax(flat, bs)
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = (padded.reshape(-1, bs) * (F32(1) / absmax)[:, None]).ravel()[: flat.size]
        bounds = (np.array([-0.8480964004993439, -0.6106329262256622, -0.4599952697753906,
                            -0.33967943489551544, -0.23460740596055984, -0.13791173323988914,
                            -0.045525018125772476, 0.03979014977812767, 0.1202552504837513,
                            0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
                            0.5016634166240692, 0.6427869200706482, 0.8614784181118011])
                  if fmt == NF4 else
                  np.array([7 / 24, 7 / 12, 5 / 6, 5 / 12, 11 / 128, 5 / 24, 1 / 384, 0.0]))
        ref_x = np.abs(scaled) if fmt == FP4 else scaled
        near = np.abs(ref_x[:, None] - bounds[None, :]).min(axis=1) < 1e-6
        excused = near | np.repeat(absmax == 0, bs)[: flat.size] | ~np.isfinite(scaled)
        ours_el = np.empty(codes.size * 2, np.uint8)
        ours_el[0::2], ours_el[1::2] = codes >> 4, codes & 15
        bnb_el = np.empty(qb.size * 2, np.uint8)
        bnb_el[0::2], bnb_el[1::2] = qb >> 4, qb & 15
        table = NF4_CODE if fmt == NF4 else (lambda m, g: m * g)(*fp4_table())
        differ = ours_el[: flat.size] != bnb_el[: flat.size]
        # +0 and -0 (FP4 codes 0 and 8) are the same weight
        excused |= table[ours_el[: flat.size]] == table[bnb_el[: flat.size]]
        bad = differ & ~excused
        msg = "%d codes differ (%d in zero blocks or within 1e-6 of a boundary)" % (
            int(differ.sum()), int((differ & excused).sum()))
        if bad.any():
            fails.append("%s: %d codes differ away from zero blocks and boundaries" % (tag, int(bad.sum())))
        if dq:
            off_b = F32(st.offset.item())
            off_o = cases["case%d.offset" % k][0]
            ulps = abs(int(np.array([off_b]).view(np.int32)[0]) - int(np.array([off_o]).view(np.int32)[0]))
            aq = st.absmax.numpy().astype(np.int64)
            ao = cases["case%d.absmax" % k].astype(np.int64)
            msg += "; offset %d ulp apart; %d of %d absmax codes differ (by at most %d)" % (
                ulps, int((aq != ao).sum()), aq.size, int(np.abs(aq - ao).max()))
            # torch sums float32 in its own order: within 1e-6 relative
            if abs(float(off_b) - float(off_o)) > 1e-6 * abs(float(off_o)) or \
                    (aq != ao).mean() > 0.01 or np.abs(aq - ao).max() > 2:
                fails.append(tag + ": double-quant state differs beyond 1e-6 / two code steps")
        else:
            ab = st.absmax.numpy()
            if not np.array_equal(ab, absmax):
                fails.append(tag + ": absmax differs")
            dref = _dequantize_4bit_compute(q.view(torch.uint8).reshape(-1), st.absmax,
                                            _get_4bit_code(NAMES[fmt], torch.device("cpu")), bs,
                                            w.shape, torch.float32).numpy().ravel()
            ours = cases["case%d.dequantized" % k].ravel()
            same_code = ~differ
            if (dref[same_code] != ours[same_code]).any():
                fails.append(tag + ": bitsandbytes' dequantization of equal codes differs from ours")
            msg += "; dequantized values equal wherever codes are"
            native = bf.dequantize_4bit(q, st).numpy().ravel()
            rms = lambda d: float(np.sqrt(((d - flat).astype(np.float64) ** 2).sum() /  # noqa: E731
                                          max((flat.astype(np.float64) ** 2).sum(), 1e-300)))
            msg += "; native CPU kernel error %.4f vs ours %.4f" % (rms(native), rms(ours))
        print("%-48s %s" % (tag, msg))
    print("compared with bitsandbytes %s (torch %s)" % (bitsandbytes.__version__, torch.__version__))
    for f in fails:
        print("FAIL " + f)
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", metavar="CASES")
    ap.add_argument("--selfcheck", action="store_true")
    ap.add_argument("--bitsandbytes", metavar="CASES")
    a = ap.parse_args()
    if a.selfcheck:
        return selfcheck()
    if a.check:
        return check(a.check)
    if a.bitsandbytes:
        return compare_bitsandbytes(a.bitsandbytes)
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
