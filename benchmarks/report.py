#!/usr/bin/python3
"""Collects the runs and plans of benchmarks/report.sh and writes the report.

Reads WORK/runs.tsv (one line per `loratrain train` run: name, ranks, exit
code, seconds, output_dir, log, command), each run's output_dir/memory.json
and metrics.jsonl, WORK/plans.tsv (one line per `loratrain plan --json`) and
WORK/loadavg.start and loadavg.end (/proc/loadavg before the first run and
after the last), and writes OUT/report.md, runs.csv, runs.json, plan.csv,
plan.json and the SVG plots. With --from DIR instead, it renders the same
outputs again from DIR/runs.json and DIR/plan.json (which hold every
figure the report uses) without running anything. Standard library and
nothing else; every figure comes from the files of this invocation, and a
figure a run did not produce is written "n/a".

Bytes per step are the collectives of metrics.jsonl (allreduce_bytes,
allgather_bytes, ...); its grad_*_bytes fields say how much of the
gradient's own collective started or finished during backward, a part of
those bytes, and are never added to them.

Throughput (THROUGHPUT_RULE below, in report.md's words): one run's tokens/s
is compared with another's as a measured difference only when both runs had
their cores to themselves and their per-step figures do not overlap;
otherwise the comparison is printed as noise, with the reason and without a
percentage or ratio, and throughput.svg hatches the runs that shared cores.
"""
import argparse
import csv
import ctypes
import datetime
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys

MiB = 1024.0 * 1024.0
GiB = 1024.0 * MiB
CATS = ["base_weights", "quantized_base", "lora_params", "gradients", "optimizer_state",
        "activations", "communication", "workspace", "other"]
CAT_COLORS = {
    "base_weights": "#4e79a7", "quantized_base": "#a0cbe8", "lora_params": "#59a14f",
    "gradients": "#f28e2b", "optimizer_state": "#e15759", "activations": "#b07aa1",
    "communication": "#edc948", "workspace": "#9c755f", "other": "#bab0ac",
}
EXTRA_COLORS = ["#76b7b2", "#ff9da7", "#8cd17d", "#d37295", "#fabfd2", "#499894"]
COLL_COLORS = {"allreduce": "#4e79a7", "allgather": "#f28e2b", "reduce_scatter": "#e15759",
               "reduce": "#76b7b2", "broadcast": "#59a14f"}
MODE_LABEL = {
    "lora": "LoRA (fp32 base)", "qlora": "QLoRA (NF4+DQ)", "qlora-sharded": "QLoRA, shard_base",
    "qlora-gc": "QLoRA + grad. ckpt", "full": "full FT", "full-zero1": "full FT + ZeRO-1",
    "full-gc": "full FT + grad. ckpt", "lora-gc": "LoRA + grad. ckpt",
}
MODE_COLORS = {"lora": "#4e79a7", "qlora": "#59a14f", "full": "#e15759"}
PAPER_NF4_DQ_BITS = 4.127       # QLoRA paper: 4 bits + 0.127 bits of double-quantized absmax
PAPER_FULL_BYTES = 16.0         # fp32 weights 4 + gradients 4 + Adam m 4 + v 4
MIN_STEADY_STEPS = 3            # steps a throughput comparison needs per run (steps 2..N)
LOAD_TAU_S = 60.0               # the kernel's 1-minute load average: exponential, time constant 60 s


# ---------------------------------------------------------------- helpers

def num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def na(x, fmt="%.2f"):
    return fmt % x if num(x) else "n/a"


def mib(x, fmt="%.1f"):
    return fmt % (x / MiB) if num(x) else "n/a"


def gib(x, fmt="%.2f"):
    return fmt % (x / GiB) if num(x) else "n/a"


def ratio(a, b):
    return a / b if num(a) and num(b) and b else None


def rx(x, fmt="%.2fx"):
    return fmt % x if num(x) else "n/a"


def pct(x, fmt="%+.0f%%"):
    return fmt % (100.0 * x) if num(x) else "n/a"


def human_bytes(x):
    if not num(x):
        return "n/a"
    for unit, div in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024.0)):
        if abs(x) >= div:
            return "%.2f %s" % (x / div, unit)
    return "%d B" % x


def intc(x):
    return "{:,}".format(int(x)) if num(x) else "n/a"


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def run_cmd(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def error_line(text):
    """The line that says why a command failed: its error message if any."""
    lines = [l.strip() for l in text.splitlines() if re.search(r"[A-Za-z]", l)]
    for pat in (r"loratrain.*error", r"\berror\b", r"(?i)error", r"(?i)unable|failed|not found|abort|killed"):
        for l in lines:
            if re.search(pat, l):
                return l[:300]
    return lines[-1][:300] if lines else "no output"


def median(xs):
    xs = [x for x in xs if num(x)]
    return statistics.median(xs) if xs else None


def load_file(path):
    """The 1, 5 and 15 minute load averages of a copy of /proc/loadavg."""
    f = read_text(path).split()
    try:
        return [float(x) for x in f[:3]] if len(f) >= 3 else None
    except ValueError:
        return None


# ---------------------------------------------------------------- machine

def machine_info(root, build):
    m = {}
    cpuinfo = read_text("/proc/cpuinfo")
    mm = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    m["cpu_model"] = mm.group(1).strip() if mm else platform.processor() or "n/a"
    flags = re.search(r"^flags\s*:\s*(.*)$", cpuinfo, re.M)
    fl = set(flags.group(1).split()) if flags else set()
    m["cpu_isa"] = ", ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in fl) or "n/a"
    m["logical_cpus"] = os.cpu_count()
    try:
        m["usable_cpus"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        m["usable_cpus"] = None
    mt = re.search(r"^MemTotal:\s*(\d+) kB", read_text("/proc/meminfo"), re.M)
    m["memory_bytes"] = int(mt.group(1)) * 1024 if mt else None
    osr = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', read_text("/etc/os-release"), re.M)
    m["os"] = (osr.group(1) if osr else platform.system()) + ", kernel " + platform.release()
    # /proc/loadavg's 1, 5 and 15 minute figures before the first run and
    # after the last (report.sh's loadavg.start, loadavg.end); without the
    # latter, now.
    m["load_average_start"] = load_file(os.path.join(ARGS.work, "loadavg.start"))
    m["load_average"] = load_file(os.path.join(ARGS.work, "loadavg.end"))
    if m["load_average"] is None:
        try:
            m["load_average"] = list(os.getloadavg())
        except OSError:
            pass
    # OpenBLAS core: from `loratrain info` if it prints it, else from the
    # library the binary links (openblas_get_corename).
    m["openblas_core"], m["openblas_source"] = None, None
    info = read_text(os.path.join(ARGS.work, "info.txt"))
    ob = re.search(r"(?i)openblas[^\n]*", info)
    if ob:
        m["openblas_core"], m["openblas_source"] = ob.group(0).strip(), "loratrain info"
    else:
        lib = None
        for l in run_cmd(["ldd", os.path.join(build, "loratrain")]).splitlines():
            if "openblas" in l and "=>" in l:
                lib = l.split("=>")[1].split("(")[0].strip()
        try:
            h = ctypes.CDLL(lib or "libopenblas.so.0")
            h.openblas_get_corename.restype = ctypes.c_char_p
            h.openblas_get_config.restype = ctypes.c_char_p
            m["openblas_core"] = "%s (%s)" % (h.openblas_get_corename().decode(),
                                             h.openblas_get_config().decode().strip())
            m["openblas_source"] = "openblas_get_corename() of %s" % (lib or "libopenblas.so.0")
        except (OSError, AttributeError):
            pass
    m["openblas_coretype_env"] = os.environ.get("OPENBLAS_CORETYPE")
    m["mpi"] = (run_cmd(["mpirun", "--version"]).splitlines() or ["n/a"])[0]
    cache = read_text(os.path.join(build, "CMakeCache.txt"))
    bt = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", cache, re.M)
    cc = re.search(r"^CMAKE_C_COMPILER:\w+=(.*)$", cache, re.M)
    m["build_type"] = bt.group(1) if bt else "n/a"
    ccv = run_cmd([cc.group(1), "--version"]).splitlines() if cc else []
    m["compiler"] = ccv[0] if ccv else "n/a"
    bpath = read_text(os.path.join(ARGS.work, "binary.path")).strip()
    m["binary"] = bpath or "n/a"
    m["binary_sha256"] = read_text(os.path.join(ARGS.work, "binary.sha256")).strip() or "n/a"
    try:
        m["binary_mtime"] = datetime.datetime.fromtimestamp(os.path.getmtime(bpath)).astimezone().isoformat(timespec="seconds")
    except OSError:
        m["binary_mtime"] = "n/a"
    m["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    m["git_commit"] = run_cmd(["git", "-C", root, "rev-parse", "HEAD"]).strip() or "n/a"
    dirty = run_cmd(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"]).split("\n")
    m["git_modified"] = sorted(l[3:] for l in dirty if l.strip())
    return m


# ---------------------------------------------------------------- runs

def rank_memory(mem):
    """Per-rank {categories: bytes, total, vm_hwm} from memory.json."""
    out = []
    for rk in (mem.get("ranks") or []) if isinstance(mem, dict) else []:
        t = rk.get("tracked_peak_bytes") or {}
        out.append({"cats": {k: v for k, v in t.items() if num(v)},
                    "total": rk.get("tracked_total_peak_bytes"), "vm_hwm": rk.get("vm_hwm_bytes"),
                    "quant_resident": rk.get("quant_resident_bytes"),
                    "model_bytes_read": rk.get("model_bytes_read")})
    if not out and isinstance(mem, dict) and isinstance(mem.get("tracked"), dict):
        cats = {k: v.get("peak_bytes") for k, v in mem["tracked"].items() if isinstance(v, dict)}
        out.append({"cats": {k: v for k, v in cats.items() if num(v)},
                    "total": mem.get("tracked_total_peak_bytes"), "vm_hwm": mem.get("vm_hwm_bytes")})
    return out


def collect_runs():
    runs = []
    for line in read_text(os.path.join(ARGS.work, "runs.tsv")).splitlines():
        f = line.split("\t")
        if len(f) < 7:
            continue
        name, np_, rc, wall, odir, log, cmd = f[:7]
        mem = read_json(os.path.join(odir, "memory.json"))
        rows = []
        for l in read_text(os.path.join(odir, "metrics.jsonl")).splitlines():
            try:
                o = json.loads(l)
            except ValueError:
                continue
            if isinstance(o, dict) and "loss" in o and "step" in o:
                rows.append(o)
        if int(rc) != 0:
            status = "not run: " + error_line(read_text(log))
        elif mem is None:
            status = "not run: no memory.json in the output folder"
        else:
            status = "ok"
        runs.append(make_run(name, int(np_), int(rc), float(wall), cmd, mem, rows, status, log))
    return runs


def runs_from_json(raw):
    """The runs of an earlier invocation, from its runs.json."""
    return [make_run(r["name"], int(r["ranks"]), int(r["exit_code"]), r["wall_s"], r["command"],
                     r.get("memory_json"), r.get("metrics") or [], r["status"], None)
            for r in raw.get("runs") or []]


def make_run(name, np_, rc, wall, cmd, mem, rows, status, log):
    """One run's figures from its memory.json and metrics.jsonl rows."""
    r = {"name": name, "mode": MODE_LABEL.get(name, name), "ranks": np_, "exit_code": rc,
         "wall_s": wall, "command": cmd, "log": log, "status": status}
    r["memory_json"], r["metrics"] = mem, rows
    r["per_rank"] = rank_memory(mem)
    r0 = r["per_rank"][0] if r["per_rank"] else {}
    r["cats"] = dict(r0.get("cats") or {})
    r["tracked_total"] = r0.get("total")
    r["vm_hwm"] = r0.get("vm_hwm")
    tots = [p.get("total") for p in r["per_rank"] if num(p.get("total"))]
    hwms = [p.get("vm_hwm") for p in r["per_rank"] if num(p.get("vm_hwm"))]
    r["tracked_total_max"] = max(tots) if tots else None
    r["vm_hwm_max"] = max(hwms) if hwms else None
    r["base"] = (mem or {}).get("base") or {}
    steady = rows[1:] if len(rows) > 1 else rows
    r["steps"] = len(rows)
    r["tokens_per_s"] = median(x.get("tokens_per_s") for x in steady)
    tps = [x.get("tokens_per_s") for x in steady if num(x.get("tokens_per_s"))]
    r["tokens_per_s_steps"] = tps
    r["tokens_per_s_min"], r["tokens_per_s_max"] = (min(tps), max(tps)) if tps else (None, None)
    r["comm_wait_s"] = median(x.get("comm_wait_s") for x in steady)
    r["elapsed_s"] = rows[-1].get("elapsed_s") if rows else None
    r["loss_first"] = rows[0].get("loss") if rows else None
    r["loss_last"] = rows[-1].get("loss") if rows else None
    # The collectives' bytes. grad_started_bytes and grad_overlapped_bytes
    # are parts of the gradient's all-reduce (or reduce-scatter): kept
    # apart, never added to the traffic.
    coll = {}
    keys = sorted({k for x in steady for k in x if k.endswith("_bytes") and not k.startswith("grad_")})
    for k in keys:
        coll[k[:-len("_bytes")]] = median(x.get(k) for x in steady)
    r["comm_bytes"] = coll
    vals = [v for v in coll.values() if num(v)]
    r["comm_bytes_total"] = sum(vals) if vals else (None if r["status"] != "ok" else 0)
    r["grad_started"] = median(x.get("grad_started_bytes") for x in steady)
    return r


def collect_plans():
    plans = []
    for line in read_text(os.path.join(ARGS.work, "plans.tsv")).splitlines():
        f = line.split("\t")
        if len(f) < 6:
            continue
        kind, model, name, np_, rc, path = f[:6]
        text = read_text(path)
        p = {"kind": kind, "model": "measured model" if kind == "run" else model, "name": name,
             "mode": MODE_LABEL.get(name, name), "ranks": int(np_)}
        js = None
        for l in text.splitlines():
            if l.strip().startswith("{"):
                try:
                    js = json.loads(l)
                except ValueError:
                    js = None
        if int(rc) == 0 and isinstance(js, dict):
            p["status"] = "ok"
            p["bytes"] = {k: v for k, v in (js.get("bytes") or {}).items() if num(v)}
            p["total_bytes"] = js.get("total_bytes")
            if not num(p["total_bytes"]) and p["bytes"]:
                p["total_bytes"] = sum(p["bytes"].values())
            p["seq"], p["batch"], p["r"] = js.get("seq"), js.get("batch"), js.get("r")
            p["raw"] = js
        else:
            p["status"] = "not run: " + error_line(text)
            p["bytes"], p["total_bytes"] = {}, None
        plans.append(p)
    return plans


# ---------------------------------------------------------------- throughput rule

THROUGHPUT_RULE = (
    "A throughput comparison (one run's tokens/s against another's) is stated as a measured difference only "
    "when (1) both runs had their cores to themselves: the other work on the machine plus the run's cores "
    "(ranks x threads per rank) is at most the usable CPUs, the other work being the larger of the 1-minute "
    "load average before the first run and the 1-minute load average after the last run less the runs' own "
    "share of it (each run's cores weighted as the kernel's average weighs them, by e^(-t/60 s) over the "
    "seconds t since the run, the runs taken back to back); and (2) the per-step figures (steps 2..N, at "
    "least %d per run) of the two runs do not overlap: the slowest step of the faster run beat the fastest "
    "step of the slower. Otherwise the comparison is printed as noise, with the reason and without a "
    "percentage or ratio." % MIN_STEADY_STEPS)


def run_cores(r, threads, cpus):
    """Cores a run keeps busy: ranks x threads; threads 0 means all cores."""
    if threads == 0:
        return cpus
    return r["ranks"] * threads if num(threads) else None


def load_context(runs, mach, threads):
    """The other work on the machine while the runs ran (in cores, from the
    load averages), and for each run whether it shared its cores."""
    cpus = mach.get("usable_cpus") or mach.get("logical_cpus")
    start = (mach.get("load_average_start") or [None])[0]
    end = (mach.get("load_average") or [None])[0]
    own, t = 0.0, 0.0
    for r in reversed(runs):
        c = run_cores(r, threads, cpus)
        if num(r["wall_s"]) and num(c):
            own += c * (math.exp(-t / LOAD_TAU_S) - math.exp(-(t + r["wall_s"]) / LOAD_TAU_S))
            t += r["wall_s"]
    other_end = max(0.0, end - own) if num(end) else None
    other = max(start, other_end) if num(start) and num(other_end) else None
    for r in runs:
        r["cores"] = run_cores(r, threads, cpus)
        r["shared_cores"] = (other + r["cores"] > cpus) if num(other) and num(cpus) and num(r["cores"]) else None
    return {"usable_cpus": cpus, "load_1min_start": start, "load_1min_end": end, "own_share_of_end_load": own,
            "other_work_end": other_end, "other_work": other, "min_steps": MIN_STEADY_STEPS}


def compare_throughput(ra, rb, ctx):
    """Whether rb's tokens/s against ra's is a measured difference, and why not."""
    reasons = []
    if any(r["shared_cores"] is None for r in (ra, rb)):
        reasons.append("the load during the runs is unknown")
    elif ra["shared_cores"] or rb["shared_cores"]:
        c = max(r["cores"] for r in (ra, rb) if r["shared_cores"])
        reasons.append("other work %.2f + %d cores > %d CPUs" % (ctx["other_work"], c, ctx["usable_cpus"]))
    sa, sb = ra["tokens_per_s_steps"], rb["tokens_per_s_steps"]
    if len(sa) < MIN_STEADY_STEPS or len(sb) < MIN_STEADY_STEPS:
        reasons.append("fewer than %d steps per run" % MIN_STEADY_STEPS)
    elif min(sa) <= max(sb) and min(sb) <= max(sa):
        reasons.append("steps %.0f-%.0f and %.0f-%.0f overlap" % (min(sa), max(sa), min(sb), max(sb)))
    return reasons


# ---------------------------------------------------------------- SVG

def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def nice_ticks(vmax, n=5):
    if not num(vmax) or vmax <= 0:
        return [0, 1]
    raw = vmax / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    ticks, t = [], 0.0
    while t < vmax + step * 0.999:
        ticks.append(t)
        t += step
    return ticks


def svg_hbars(path, title, subtitle, rows, legend, unit, log=False, refs=()):
    """Horizontal (stacked) bars. rows: dicts with label, segs [(name, value, color)],
    note (text after the bar), markers [(value, color, name)] drawn as ticks, range
    (low, high, name) drawn as a whisker, noise (a reason: the bar is hatched), gap
    (space before), missing (text instead of a bar). legend: (name, color,
    "marker:COLOR" or "hatch"). Each row is a <g class="row" data-label=...>; bars,
    markers, whiskers, notes and axis ticks carry classes (seg, marker, range, note,
    tick), so a reader can take the figures back out of the drawing."""
    import textwrap
    W, left, right, top = 1060, 250, 230, 70
    sublines = textwrap.wrap(subtitle, 150) or [""]
    top += 16 * (len(sublines) - 1)
    rh, bh = 24, 16
    legend_rows = (len(legend) + 5) // 6 if legend else 0
    top += 20 * legend_rows
    height = top + sum(rh + (12 if r.get("gap") else 0) for r in rows) + 60
    plot_w = W - left - right
    totals = [sum(v for _, v, _ in r.get("segs", []) if num(v)) for r in rows]
    marks = [m[0] for r in rows for m in r.get("markers", []) if num(m[0])]
    marks += [r["range"][1] for r in rows if r.get("range") and num(r["range"][1])]
    vmax = max(totals + marks + [x for x, _ in refs] + [0])
    if log:
        pos = [v for v in totals + marks + [x for x, _ in refs] if num(v) and v > 0]
        lo = 10 ** math.floor(math.log10(min(pos))) if pos else 1
        hi = 10 ** math.ceil(math.log10(max(pos))) if pos else 10
        if hi <= lo:
            hi = lo * 10
        ticks = []
        t = lo
        while t <= hi * 1.0001:
            ticks.append(t)
            t *= 10

        def X(v):
            v = max(v, lo)
            return left + plot_w * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    else:
        ticks = nice_ticks(vmax)
        hi = ticks[-1] if ticks[-1] > 0 else 1

        def X(v):
            return left + plot_w * v / hi
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
         'font-family="DejaVu Sans, Arial, sans-serif" font-size="12">' % (W, height, W, height),
         '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
         'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#333" stroke-width="1.5"/>'
         '</pattern></defs>',
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="24" font-size="17" font-weight="bold">%s</text>' % (12, esc(title)),
         ] + ['<text x="12" y="%d" fill="#555">%s</text>' % (44 + 16 * i, esc(l)) for i, l in enumerate(sublines)]
    for i, (name, color) in enumerate(legend):
        lx, ly = 12 + (i % 6) * 160, 58 + 16 * (len(sublines) - 1) + (i // 6) * 20
        if color.startswith("marker:"):
            o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>'
                     % (lx + 6, ly - 1, lx + 6, ly + 13, color[7:]))
        elif color == "hatch":
            o.append('<rect x="%d" y="%d" width="12" height="12" fill="#ccc"/>' % (lx, ly))
            o.append('<rect x="%d" y="%d" width="12" height="12" fill="url(#hatch)"/>' % (lx, ly))
        elif color == "range":
            o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#222" stroke-width="1.5"/>'
                     % (lx, ly + 6, lx + 12, ly + 6))
        else:
            o.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (lx, ly, color))
        o.append('<text x="%d" y="%d">%s</text>' % (lx + 17, ly + 10, esc(name)))
    y = top
    ybot = height - 50
    for t in ticks:
        x = X(t)
        o.append('<line class="tick" data-value="%r" x1="%.2f" y1="%d" x2="%.2f" y2="%d" stroke="#e3e3e3"/>'
                 % (t, x, top - 4, x, ybot))
        o.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#444">%s</text>' % (x, ybot + 16, "%g" % t))
    o.append('<text x="%d" y="%d" text-anchor="middle" fill="#444">%s</text>'
             % (left + plot_w / 2, ybot + 34, esc(unit)))
    for v, lab in refs:
        x = X(v)
        o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333" stroke-dasharray="5,4"/>'
                 % (x, top - 6, x, ybot))
        o.append('<text x="%.1f" y="%d" text-anchor="middle" font-size="11" fill="#333">%s</text>'
                 % (x, top - 9, esc(lab)))
    for r in rows:
        if r.get("gap"):
            y += 12
        o.append('<g class="row" data-label="%s">' % esc(r["label"]))
        o.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (left - 8, y + bh - 3, esc(r["label"])))
        if r.get("missing"):
            o.append('<text class="missing" x="%d" y="%d" fill="#999" font-style="italic">%s</text>'
                     % (left + 4, y + bh - 3, esc(r["missing"][:110])))
            o.append("</g>")
            y += rh
            continue
        acc = 0.0
        for name, v, color in r.get("segs", []):
            if not num(v) or v <= 0:
                continue
            x0 = X(acc) if acc > 0 or not log else left
            x1 = X(acc + v)
            tip = "%s: %s" % (name, r.get("tips", {}).get(name, v))
            if r.get("noise"):
                tip += " (noise: %s)" % r["noise"]
            o.append('<rect class="seg%s" data-name="%s" x="%.2f" y="%d" width="%.2f" height="%d" fill="%s"%s>'
                     '<title>%s</title></rect>'
                     % (" noise" if r.get("noise") else "", esc(name), x0, y, max(x1 - x0, 0.5), bh, color,
                        ' fill-opacity="0.45"' if r.get("noise") else "", esc(tip)))
            if r.get("noise"):
                o.append('<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="url(#hatch)"/>'
                         % (x0, y, max(x1 - x0, 0.5), bh))
            acc += v
        end = X(acc) if acc > 0 else left
        for mv, mcolor, mname in r.get("markers", []):
            if not num(mv):
                continue
            x = X(mv)
            o.append('<line class="marker" data-name="%s" x1="%.2f" y1="%d" x2="%.2f" y2="%d" stroke="%s" '
                     'stroke-width="3"><title>%s</title></line>'
                     % (esc(mname.split(" ")[0]), x, y - 3, x, y + bh + 3, mcolor, esc(mname)))
            end = max(end, x)
        rg = r.get("range")
        if rg and num(rg[0]) and num(rg[1]):
            xa, xb, ym = X(rg[0]), X(rg[1]), y + bh / 2.0
            o.append('<g class="range"><title>%s</title>'
                     '<line x1="%.2f" y1="%.1f" x2="%.2f" y2="%.1f" stroke="#222" stroke-width="1.5"/>'
                     '<line x1="%.2f" y1="%d" x2="%.2f" y2="%d" stroke="#222" stroke-width="1.5"/>'
                     '<line x1="%.2f" y1="%d" x2="%.2f" y2="%d" stroke="#222" stroke-width="1.5"/></g>'
                     % (esc(rg[2]), xa, ym, xb, ym, xa, y + 3, xa, y + bh - 3, xb, y + 3, xb, y + bh - 3))
            end = max(end, xb)
        o.append('<text class="note" x="%.1f" y="%d" fill="#222">%s</text>' % (end + 6, y + bh - 3, esc(r.get("note", ""))))
        o.append("</g>")
        y += rh
    o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>' % (left, top - 4, left, ybot))
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


# ---------------------------------------------------------------- report

SETTINGS_ARGS = {"steps": "steps", "seq": "max_seq_length", "batch": "per_device_train_batch_size", "r": "r",
                 "targets": "target_modules", "threads": "threads_per_rank", "lr": "learning_rate",
                 "plan_seq": "plan_seq", "plan_batch": "plan_batch", "elapsed_s": "elapsed_s"}


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for k in ("root", "build", "work", "out", "targets", "lr"):
        ap.add_argument("--" + k, default=None if k in ("root", "build", "work", "out") else "n/a")
    for k in ("steps", "seq", "batch", "r", "threads", "plan_seq", "plan_batch", "elapsed_s"):
        ap.add_argument("--" + k, type=int, default=None)
    ap.add_argument("--from", dest="from_dir", default=None,
                    help="render again from DIR/runs.json and DIR/plan.json (an earlier invocation's); "
                         "--out defaults to DIR")
    ARGS = a = ap.parse_args()
    if a.from_dir:
        # Everything comes from the earlier invocation's files: its machine,
        # model, settings, runs and plans; nothing is measured or probed now.
        raw = read_json(os.path.join(a.from_dir, "runs.json"))
        plans = read_json(os.path.join(a.from_dir, "plan.json"))
        if not isinstance(raw, dict) or not isinstance(plans, list):
            sys.exit("report.py: %s has no readable runs.json and plan.json" % a.from_dir)
        a.out = a.out or a.from_dir
        mach, model = raw["machine"], raw.get("model") or {}
        for k, sk in SETTINGS_ARGS.items():
            setattr(a, k, (raw.get("settings") or {}).get(sk))
        runs = runs_from_json(raw)
        data_tokens = (raw.get("settings") or {}).get("data_tokens")
    else:
        missing = [k for k in ("root", "build", "work", "out") if getattr(a, k) is None]
        if missing:
            ap.error("--%s required (or --from DIR)" % ", --".join(missing))
        mach = machine_info(a.root, a.build)
        runs = collect_runs()
        plans = collect_plans()
        model_txt = read_text(os.path.join(a.work, "model.txt"))
        mp = re.search(r"(\d+) layers, dim (\d+), hidden (\d+): (\d+) parameters \((\d+) in decoder linears\)", model_txt)
        model = {"layers": int(mp.group(1)), "dim": int(mp.group(2)), "hidden": int(mp.group(3)),
                 "params": int(mp.group(4)), "linear_params": int(mp.group(5))} if mp else {}
        info = read_text(os.path.join(a.work, "info.txt"))
        hm = re.search(r"n_heads (\d+), n_kv_heads (\d+).*?\n\s*vocab_size (\d+), seq_len (\d+)", info, re.S)
        if hm:
            model.update(heads=int(hm.group(1)), kv_heads=int(hm.group(2)), vocab=int(hm.group(3)),
                         seq_len=int(hm.group(4)))
        tm = re.search(r"trainable params: ([\d,]+)", info)
        model["lora_params"] = int(tm.group(1).replace(",", "")) if tm else None
        tok = re.search(r"(\d+) tokens written", read_text(os.path.join(a.work, "tokenize.txt")))
        data_tokens = int(tok.group(1)) if tok else None
    os.makedirs(a.out, exist_ok=True)
    params = model.get("params")
    tctx = load_context(runs, mach, a.threads)

    # categories present anywhere, in the report's order
    cats = [c for c in CATS if any(c in r["cats"] for r in runs) or any(c in p["bytes"] for p in plans)]
    extra = sorted({c for r in runs for c in r["cats"]} - set(CATS))
    cats += extra
    colors = dict(CAT_COLORS)
    for i, c in enumerate(extra):
        colors[c] = EXTRA_COLORS[i % len(EXTRA_COLORS)]
    colls = [c for c in ("allreduce", "allgather", "reduce_scatter", "reduce", "broadcast")
             if any(c in r["comm_bytes"] for r in runs)]
    colls += sorted({c for r in runs for c in r["comm_bytes"]} - set(colls))

    # the planner's prediction for each run
    for r in runs:
        p = next((p for p in plans if p["kind"] == "run" and p["name"] == r["name"] and p["ranks"] == r["ranks"]), None)
        r["plan"] = p
        r["predicted_total"] = p["total_bytes"] if p and p["status"] == "ok" else None
        meas = sum(v for c, v in r["cats"].items() if c != "other") if r["status"] == "ok" and r["cats"] else None
        r["measured_total_excl_other"] = meas
        r["predicted_over_measured"] = ratio(r["predicted_total"], meas)
        dev = {}
        if p and p["status"] == "ok" and r["status"] == "ok":
            for c, pv in p["bytes"].items():
                mv = r["cats"].get(c)
                if num(mv) and (mv > 0 or pv > 0):
                    dev[c] = ratio(pv, mv) if mv else None
        r["predicted_over_measured_by_category"] = dev
        r["plan_status"] = p["status"] if p else "n/a"

    def run(name, np_):
        r = next((r for r in runs if r["name"] == name and r["ranks"] == np_), None)
        return r if r and r["status"] == "ok" else None

    def fig(name, np_, key, sub=None):
        r = run(name, np_)
        if not r:
            return None
        v = r.get(key)
        return v.get(sub) if sub and isinstance(v, dict) else v

    # ------------------------------------------------------------ ratios
    lines = []

    def mem_ratio(a_, b_, np_a, np_b, what):
        ta, tb = fig(a_, np_a, "tracked_total"), fig(b_, np_b, "tracked_total")
        ha, hb = fig(a_, np_a, "vm_hwm"), fig(b_, np_b, "vm_hwm")
        lines.append("- %s = **%s** (tracked peak %s MiB vs %s MiB; by VmHWM %s: %s MiB vs %s MiB)"
                     % (what, rx(ratio(ta, tb), "%.1fx"), mib(ta), mib(tb), rx(ratio(ha, hb), "%.1fx"),
                        mib(ha), mib(hb)))
        return ratio(ta, tb)

    headline = {}
    headline["full_over_qlora_1rank"] = mem_ratio("full", "qlora", 1, 1, "full FT per-rank memory / QLoRA per-rank memory (1 rank)")
    headline["full_over_lora_1rank"] = mem_ratio("full", "lora", 1, 1, "full FT per-rank memory / LoRA (fp32 base) per-rank memory (1 rank)")
    headline["lora_over_qlora_1rank"] = mem_ratio("lora", "qlora", 1, 1, "LoRA (fp32 base) per-rank memory / QLoRA per-rank memory (1 rank)")
    headline["full_over_qlora_2ranks"] = mem_ratio("full", "qlora", 2, 2, "full FT / QLoRA per-rank memory on 2 ranks")
    headline["zero1_over_sharded_qlora_2ranks"] = mem_ratio("full-zero1", "qlora-sharded", 2, 2,
                                                           "full FT + ZeRO-1 / sharded QLoRA per-rank memory on 2 ranks (each method's leanest 2-rank form)")
    headline["sharded_over_unsharded_qlora_2ranks"] = mem_ratio("qlora-sharded", "qlora", 2, 2,
                                                               "sharded QLoRA / unsharded QLoRA per-rank memory (2 ranks)")
    qa, qb = fig("qlora-sharded", 2, "cats", "quantized_base"), fig("qlora", 2, "cats", "quantized_base")
    ta_, tb_ = fig("qlora-sharded", 2, "tracked_total"), fig("qlora", 2, "tracked_total")
    lines.append("  - saves %s MiB per rank: its quantized base per rank is %s MiB sharded vs %s MiB unsharded (%s); the all-gather "
                 "buffers cost %s MiB of communication memory (the fp32 embeddings and classifier are not sharded)"
                 % (mib(tb_ - ta_ if num(ta_) and num(tb_) else None), mib(qa, "%.2f"), mib(qb, "%.2f"), rx(ratio(qa, qb)),
                    mib(fig("qlora-sharded", 2, "cats", "communication"), "%.2f")))
    headline["zero1_over_full_2ranks"] = mem_ratio("full-zero1", "full", 2, 2, "full FT + ZeRO-1 / full FT per-rank memory (2 ranks)")
    oa, ob = fig("full-zero1", 2, "cats", "optimizer_state"), fig("full", 2, "cats", "optimizer_state")
    lines.append("  - optimizer state per rank: %s MiB with ZeRO-1 vs %s MiB without (%s)"
                 % (mib(oa), mib(ob), rx(ratio(oa, ob))))
    comparisons = []

    def tput(before, after, how):
        """'X -> Y (change)' for two runs' tokens/s, or the reason it is noise."""
        if not before or not after or not num(before["tokens_per_s"]) or not num(after["tokens_per_s"]):
            return "n/a"
        reasons = compare_throughput(before, after, tctx)
        q = ratio(after["tokens_per_s"], before["tokens_per_s"])
        comparisons.append({"from": "%s-np%d" % (before["name"], before["ranks"]),
                            "to": "%s-np%d" % (after["name"], after["ranks"]),
                            "ratio": q if not reasons else None, "noise": reasons})
        text = "%s -> %s" % (na(before["tokens_per_s"], "%.0f"), na(after["tokens_per_s"], "%.0f"))
        if reasons:
            return text + " (noise: %s)" % ", ".join(reasons)
        return text + " (%s)" % (pct(q - 1) if how == "pct" else rx(q))

    for m_, lab in (("qlora", "QLoRA"), ("full", "full FT"), ("lora", "LoRA")):
        if not any(r["name"] == m_ + "-gc" for r in runs):
            continue
        for np_ in (1, 2):
            ga, gb = fig(m_ + "-gc", np_, "cats", "activations"), fig(m_, np_, "cats", "activations")
            ta, tb = fig(m_ + "-gc", np_, "tracked_total"), fig(m_, np_, "tracked_total")
            if run(m_ + "-gc", np_) is None and run(m_, np_) is None:
                continue
            lines.append("- gradient checkpointing, %s on %d rank(s): activations %s -> %s MiB (%s), per-rank total "
                         "%s -> %s MiB (%s); tokens/s %s"
                         % (lab, np_, mib(gb), mib(ga), pct(ratio(ga, gb) - 1 if ratio(ga, gb) is not None else None),
                            mib(tb), mib(ta), pct(ratio(ta, tb) - 1 if ratio(ta, tb) is not None else None),
                            tput(run(m_, np_), run(m_ + "-gc", np_), "pct")))
            headline["gc_saving_%s_%drank" % (m_, np_)] = (1 - ratio(ta, tb)) if ratio(ta, tb) is not None else None
    ar_f, ar_l = fig("full", 2, "comm_bytes", "allreduce"), fig("lora", 2, "comm_bytes", "allreduce")
    lines.append("- bytes all-reduced per step on 2 ranks: full FT %s vs LoRA %s = **%s**; QLoRA %s; sharded QLoRA "
                 "all-gathers %s per step on top"
                 % (human_bytes(ar_f), human_bytes(ar_l), rx(ratio(ar_f, ar_l), "%.0fx"),
                    human_bytes(fig("qlora", 2, "comm_bytes", "allreduce")),
                    human_bytes(fig("qlora-sharded", 2, "comm_bytes", "allgather"))))
    zc = run("full-zero1", 2)
    if zc:
        lines.append("- full FT + ZeRO-1 per step on 2 ranks: %s = %s in all" % (", ".join(
            "%s %s" % (k, human_bytes(v)) for k, v in zc["comm_bytes"].items() if num(v) and v),
            human_bytes(zc["comm_bytes_total"])))
    headline["full_over_lora_allreduce_bytes"] = ratio(ar_f, ar_l)
    headline["zero1_comm_bytes_per_step"] = zc["comm_bytes_total"] if zc else None
    sp = []
    for m_ in ("lora", "qlora", "qlora-gc", "full", "full-gc"):
        if run(m_, 1) or run(m_, 2):
            sp.append("%s %s" % (MODE_LABEL[m_], tput(run(m_, 1), run(m_, 2), "ratio")))
    lines.append("- tokens/s, 1 -> 2 ranks (global throughput, %s sequences per rank): %s"
                 % (na(a.batch, "%d"), "; ".join(sp) or "n/a"))
    lines.append("- tokens/s on 1 rank: LoRA -> full FT %s; LoRA -> QLoRA %s"
                 % (tput(run("lora", 1), run("full", 1), "ratio"), tput(run("lora", 1), run("qlora", 1), "ratio")))
    headline["tokens_per_s_comparisons"] = comparisons
    gaps = [(r["vm_hwm"] - r["tracked_total"], r) for r in runs
            if r["status"] == "ok" and num(r["vm_hwm"]) and num(r["tracked_total"])]
    if gaps:
        lo_, hi_ = min(gaps, key=lambda g: g[0]), max(gaps, key=lambda g: g[0])
        lines.append("- the process peak (VmHWM) exceeds the tracked total peak by %s to %s MiB (code, libraries, "
                     "MPI and OpenBLAS buffers the tracked allocator does not see): least for %s on %d rank(s), "
                     "most for %s on %d rank(s); tracked / VmHWM %.0f%%-%.0f%%"
                     % (mib(lo_[0], "%.0f"), mib(hi_[0], "%.0f"), lo_[1]["mode"], lo_[1]["ranks"], hi_[1]["mode"],
                        hi_[1]["ranks"], 100 * min(r["tracked_total"] / r["vm_hwm"] for _, r in gaps),
                        100 * max(r["tracked_total"] / r["vm_hwm"] for _, r in gaps)))
    pom = [r["predicted_over_measured"] for r in runs if num(r.get("predicted_over_measured"))]
    if pom:
        worst = max(pom, key=lambda x: abs(x - 1))
        lines.append("- the planner's per-rank total for the measured runs: predicted / measured between %.3f and %.3f "
                     "(worst %+.1f%%, over %d runs; tracked categories except `other`)"
                     % (min(pom), max(pom), 100 * (worst - 1), len(pom)))
        headline["plan_worst_deviation"] = worst - 1

    # ------------------------------------------------------------ bytes/param
    bp = []
    q1 = run("qlora", 1) or run("qlora", 2)
    if q1:
        b = q1["base"]
        qbits = b.get("quant_bits_per_param")
        if not num(qbits):
            qbits = ratio(8.0 * b["quant_bytes"], b["quant_params"]) if num(b.get("quant_bytes")) and num(b.get("quant_params")) else None
        bp.append("- NF4 + double quantization, the decoder linears: **%s bytes/param (%s bits)** measured "
                  "(memory.json: %s bytes for %s parameters) vs the QLoRA paper's %.3f bytes/param (%.3f bits): %s"
                  % (na(qbits / 8 if num(qbits) else None, "%.4f"), na(qbits, "%.3f"), intc(b.get("quant_bytes")),
                     intc(b.get("quant_params")), PAPER_NF4_DQ_BITS / 8, PAPER_NF4_DQ_BITS,
                     pct(ratio(qbits, PAPER_NF4_DQ_BITS) - 1 if num(qbits) else None, "%+.2f%%")))
        qb_tr = q1["cats"].get("quantized_base")
        bp.append("  - tracked quantized_base peak %s MiB = %s bytes/param of the %s quantized parameters"
                  % (mib(qb_tr, "%.2f"), na(ratio(qb_tr, b.get("quant_params")), "%.4f"), intc(b.get("quant_params"))))
        whole = (q1["cats"].get("base_weights") or 0) + (qb_tr or 0)
        bp.append("  - the whole QLoRA base (fp32 embeddings, norms and tied classifier + NF4 linears): %s MiB = %s "
                  "bytes/param over all %s parameters (the fp32 base: %s bytes/param)"
                  % (mib(whole), na(ratio(whole, params), "%.3f"), intc(params),
                     na(ratio(fig("lora", 1, "cats", "base_weights"), params), "%.3f")))
    else:
        bp.append("- NF4 + double quantization: n/a (no QLoRA run)")
    for nm, np_, expect, lab in (("full", 1, PAPER_FULL_BYTES, "full FT, 1 rank"),
                                 ("full", 2, PAPER_FULL_BYTES, "full FT, 2 ranks"),
                                 ("full-zero1", 2, 4 + 4 + 8 / 2.0, "full FT + ZeRO-1, 2 ranks")):
        f1 = run(nm, np_)
        if not f1:
            bp.append("- %s: n/a (not run)" % lab)
            continue
        c = f1["cats"]
        st = sum(c.get(k) or 0 for k in ("base_weights", "lora_params", "gradients", "optimizer_state"))
        bp.append("- %s: weights + gradients + optimizer state = %s MiB = **%s bytes/param** (weights %s, gradients %s, "
                  "optimizer %s) vs %.0f bytes/param expected for fp32 weights+grads+Adam moments%s; all tracked memory: %s bytes/param"
                  % (lab, mib(st), na(ratio(st, params)), na(ratio((c.get("base_weights") or 0) + (c.get("lora_params") or 0), params)),
                     na(ratio(c.get("gradients"), params)), na(ratio(c.get("optimizer_state"), params)), expect,
                     " (moments split over 2 ranks)" if nm == "full-zero1" else "",
                     na(ratio(f1["tracked_total"], params))))
        headline["bytes_per_param_%s_%d" % (nm, np_)] = ratio(st, params)
    if q1:
        headline["nf4dq_bits_per_param"] = q1["base"].get("quant_bits_per_param")

    # ------------------------------------------------------------ raw files
    def run_row(r):
        row = {"name": r["name"], "mode": r["mode"], "ranks": r["ranks"], "status": r["status"],
               "exit_code": r["exit_code"], "wall_s": r["wall_s"], "steps": r["steps"]}
        for c in cats:
            row["mem_%s_bytes" % c] = r["cats"].get(c)
        row.update({"tracked_total_bytes": r["tracked_total"], "tracked_total_max_rank_bytes": r["tracked_total_max"],
                    "vm_hwm_bytes": r["vm_hwm"], "vm_hwm_max_rank_bytes": r["vm_hwm_max"],
                    "tokens_per_s_median": r["tokens_per_s"], "tokens_per_s_min": r["tokens_per_s_min"],
                    "tokens_per_s_max": r["tokens_per_s_max"], "comm_wait_s_median": r["comm_wait_s"]})
        row.update({"cores": r["cores"], "shared_cores_with_other_work": r["shared_cores"]})
        for c in colls:
            row["%s_bytes_per_step" % c] = r["comm_bytes"].get(c)
        row.update({"comm_bytes_per_step": r["comm_bytes_total"],
                    "grad_started_in_backward_bytes_per_step": r["grad_started"],
                    "predicted_total_bytes": r["predicted_total"],
                    "measured_total_excl_other_bytes": r["measured_total_excl_other"],
                    "predicted_over_measured": r["predicted_over_measured"],
                    "base_quant_bits_per_param": r["base"].get("quant_bits_per_param"),
                    "loss_first": r["loss_first"], "loss_last": r["loss_last"], "command": r["command"]})
        return row

    rows = [run_row(r) for r in runs]
    with open(os.path.join(a.out, "runs.csv"), "w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            w.writeheader()
            for row in rows:
                w.writerow({k: ("n/a" if v is None else v) for k, v in row.items()})
    logdir = os.path.join(a.out, "logs")
    if not a.from_dir:
        shutil.rmtree(logdir, ignore_errors=True)
        os.makedirs(logdir)
        for r in runs:
            if os.path.exists(r["log"]):
                shutil.copy(r["log"], os.path.join(logdir, "%s-np%d.log" % (r["name"], r["ranks"])))
    elif os.path.realpath(a.out) != os.path.realpath(a.from_dir) and os.path.isdir(os.path.join(a.from_dir, "logs")):
        shutil.rmtree(logdir, ignore_errors=True)
        shutil.copytree(os.path.join(a.from_dir, "logs"), logdir)
    settings = {"steps": a.steps, "max_seq_length": a.seq, "per_device_train_batch_size": a.batch, "r": a.r,
                "lora_alpha": 2 * a.r if a.r else None, "target_modules": a.targets, "threads_per_rank": a.threads,
                "learning_rate": a.lr, "plan_seq": a.plan_seq, "plan_batch": a.plan_batch,
                "data": "data/tinyshakespeare/input.txt as a token file of models/stories260K/tok512.bin",
                "data_tokens": data_tokens, "elapsed_s": a.elapsed_s}
    if a.from_dir:
        settings["rendered_again_from_runs_json"] = True
    raw = {"machine": mach, "model": model, "settings": settings, "headline": headline, "throughput_rule": tctx,
           "runs": [dict(run_row(r), memory_json=r["memory_json"], metrics=r["metrics"],
                         predicted_bytes=(r["plan"] or {}).get("bytes"),
                         predicted_over_measured_by_category=r["predicted_over_measured_by_category"],
                         plan_status=r["plan_status"]) for r in runs]}
    with open(os.path.join(a.out, "runs.json"), "w") as f:
        json.dump(raw, f, indent=1)
    pcats = [c for c in CATS if any(c in p["bytes"] for p in plans)]
    pcats += sorted({c for p in plans for c in p["bytes"]} - set(pcats))
    with open(os.path.join(a.out, "plan.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "mode", "name", "ranks", "seq", "batch", "status"] + ["%s_bytes" % c for c in pcats] + ["total_bytes"])
        for p in plans:
            w.writerow([p["model"], p["mode"], p["name"], p["ranks"], p.get("seq", "n/a"), p.get("batch", "n/a"), p["status"]]
                       + [p["bytes"].get(c, "n/a") for c in pcats] + [p["total_bytes"] if num(p["total_bytes"]) else "n/a"])
    with open(os.path.join(a.out, "plan.json"), "w") as f:
        json.dump([{k: v for k, v in p.items()} for p in plans], f, indent=1)

    # ------------------------------------------------------------ plots
    def rlabel(r):
        return "%s · %d rank%s" % (r["mode"], r["ranks"], "s" if r["ranks"] > 1 else "")

    def missing(r):
        return r["status"] if r["status"] != "ok" else None

    prev = None
    mrows = []
    for r in runs:
        fam = r["name"].split("-")[0]
        mrows.append({"label": rlabel(r), "missing": missing(r), "gap": prev is not None and fam != prev,
                      "segs": [(c, r["cats"].get(c), colors[c]) for c in cats],
                      "tips": {c: "%s MiB" % mib(r["cats"].get(c), "%.2f") for c in cats},
                      "markers": [(r["tracked_total"] / MiB if num(r["tracked_total"]) else None, "#d62728",
                                   "tracked total peak %s MiB" % mib(r["tracked_total"])),
                                  (r["vm_hwm"] / MiB if num(r["vm_hwm"]) else None, "black",
                                   "VmHWM %s MiB" % mib(r["vm_hwm"]))],
                      "note": "peak %s, HWM %s MiB" % (mib(r["tracked_total"], "%.0f"), mib(r["vm_hwm"], "%.0f"))})
        prev = fam
    for row in mrows:
        row["segs"] = [(n, v / MiB if num(v) else None, c) for n, v, c in row["segs"]]
    sub = ("%s parameters, LoRA r %s on %s, batch %s x %s tokens per rank, %s steps; rank 0. Bars: each category's "
           "peak (they peak at different moments: loading vs training)" % (intc(params), a.r, a.targets, a.batch, a.seq, a.steps))
    svg_hbars(os.path.join(a.out, "memory.svg"), "Per-rank memory by category (measured)", sub, mrows,
              [(c, colors[c]) for c in cats] + [("tracked total peak", "marker:#d62728"),
                                                ("VmHWM (process peak)", "marker:black")], "MiB per rank")
    trows = []
    prev = None
    for r in runs:
        fam = r["name"].split("-")[0]
        noise = ("other work %.2f + %d cores > %d CPUs" % (tctx["other_work"], r["cores"], tctx["usable_cpus"])
                 if r["shared_cores"] else "the load during the run is unknown" if r["shared_cores"] is None else None)
        trows.append({"label": rlabel(r), "missing": missing(r), "gap": prev is not None and fam != prev,
                      "segs": [("tokens/s", r["tokens_per_s"], MODE_COLORS.get(fam, "#888"))],
                      "tips": {"tokens/s": "%s (median of steps 2..%d)" % (na(r["tokens_per_s"], "%.1f"), r["steps"])},
                      "range": (r["tokens_per_s_min"], r["tokens_per_s_max"],
                                "steps 2..%d: slowest %s, fastest %s tokens/s"
                                % (r["steps"], na(r["tokens_per_s_min"], "%.1f"), na(r["tokens_per_s_max"], "%.1f"))),
                      "noise": noise,
                      "note": "%s tok/s%s" % (na(r["tokens_per_s"], "%.0f"), " · noise: shared cores" if noise else "")})
        prev = fam
    svg_hbars(os.path.join(a.out, "throughput.svg"), "Training throughput (measured)",
              "median tokens/s over steps 2..%s, all ranks together, %s thread(s) per rank; whisker: slowest to "
              "fastest step. Hatched, noise: the run shared its cores with other work (other work %s cores, from the "
              "load average, + the run's cores > %s usable CPUs), so its figure is not this machine's throughput"
              % (a.steps, a.threads, na(tctx["other_work"], "%.2f"), na(tctx["usable_cpus"], "%d")),
              trows, [("LoRA", MODE_COLORS["lora"]), ("QLoRA", MODE_COLORS["qlora"]), ("full FT", MODE_COLORS["full"]),
                      ("steps' range", "range"), ("noise: shared cores", "hatch")],
              "tokens/s")
    crows = []
    prev = None
    for r in [r for r in runs if r["ranks"] > 1]:
        fam = r["name"].split("-")[0]
        tot = r["comm_bytes_total"]
        crows.append({"label": rlabel(r), "missing": missing(r), "gap": prev is not None and fam != prev,
                      "segs": [(c, r["comm_bytes"].get(c) / MiB if num(r["comm_bytes"].get(c)) else None,
                                COLL_COLORS.get(c, "#888")) for c in colls],
                      "tips": {c: "%s (%s bytes) per step" % (human_bytes(r["comm_bytes"].get(c)), intc(r["comm_bytes"].get(c)))
                               for c in colls},
                      "note": ("%s / step" % human_bytes(tot)) if num(tot) and tot else ("none (1 rank)" if r["ranks"] == 1 else human_bytes(tot))})
        prev = fam
    svg_hbars(os.path.join(a.out, "comm.svg"), "Bytes communicated per step (measured, rank 0's counters)",
              "runs on more than 1 rank; each collective's median over steps 2..%s of metrics.jsonl's counters "
              "(grad_started_bytes, the gradient bytes whose reduction began during backward, is a part of the "
              "all-reduce or reduce-scatter and not drawn)" % a.steps, crows,
              [(c, COLL_COLORS.get(c, "#888")) for c in colls], "MiB per step")
    order = list(MODE_LABEL)
    pm = []
    for p in plans:
        if p["kind"] == "preset" and p["model"] not in pm:
            pm.append(p["model"])
    sorted_presets = sorted([p for p in plans if p["kind"] == "preset"],
                            key=lambda p: (pm.index(p["model"]), order.index(p["name"]) if p["name"] in order else 99, p["ranks"]))
    prows = []
    rank_colors = {1: "#4e79a7", 8: "#f28e2b", 64: "#59a14f"}
    prev = None
    for p in sorted_presets:
        key = (p["model"], p["name"])
        prows.append({"label": "%s · %s · %d" % (p["model"], p["mode"], p["ranks"]),
                      "missing": p["status"] if p["status"] != "ok" else None,
                      "gap": prev is not None and key != prev,
                      "segs": [("total", p["total_bytes"] / GiB if num(p["total_bytes"]) else None,
                                rank_colors.get(p["ranks"], "#888"))],
                      "note": "%s GiB" % gib(p["total_bytes"], "%.1f")})
        prev = key
    svg_hbars(os.path.join(a.out, "plan.svg"), "Planner: predicted per-rank memory, Llama-2-7B and 70B",
              "loratrain plan, seq %s, batch %s per rank, LoRA r %s on %s; label: model · mode · ranks" % (a.plan_seq, a.plan_batch, a.r, a.targets),
              prows, [("1 rank", rank_colors[1]), ("8 ranks", rank_colors[8]), ("64 ranks", rank_colors[64])],
              "GiB per rank (log scale)", log=True, refs=((24, "24 GiB"), (80, "80 GiB")))

    # ------------------------------------------------------------ report.md
    md = []
    w = md.append
    w("# LoRA vs QLoRA vs full fine-tuning: measured memory, throughput and communication\n")
    w("Written by `benchmarks/report.sh` on %s (%s s of model generation, runs and planner calls)%s. "
      "Every figure below comes from the runs of that invocation; the raw figures are in `runs.csv`/`runs.json` "
      "(with each run's memory.json and metrics.jsonl) and `plan.csv`/`plan.json`, the logs in `logs/`.\n"
      % (mach["date"], na(a.elapsed_s, "%d"),
         "; this text, the tables and the plots rendered again from its `runs.json` and `plan.json` by "
         "`benchmarks/report.py --from`" if a.from_dir else ""))
    w("## Machine\n")
    w("| | |\n|---|---|")
    w("| CPU | %s (%s) |" % (mach["cpu_model"], mach["cpu_isa"]))
    w("| cores | %s logical CPUs (%s usable by this process); shared with other work |" % (mach["logical_cpus"], na(mach["usable_cpus"], "%d")))
    w("| memory | %s |" % human_bytes(mach["memory_bytes"]))
    w("| OS | %s |" % mach["os"])
    w("| OpenBLAS core | %s%s; OPENBLAS_CORETYPE %s |" % (mach["openblas_core"] or "n/a",
                                                        " (from %s)" % mach["openblas_source"] if mach["openblas_source"] else "",
                                                        mach["openblas_coretype_env"] or "unset"))
    w("| MPI | %s |" % mach["mpi"])
    w("| build | %s, %s |" % (mach["build_type"], mach["compiler"]))
    w("| binary | `%s` (built %s, sha256 %s), copied to WORK/loratrain before the first run and used for all |"
      % (mach["binary"], mach["binary_mtime"], mach["binary_sha256"][:16]))
    w("| git commit | `%s`%s |" % (mach["git_commit"], (" with uncommitted changes in " + ", ".join(mach["git_modified"])) if mach["git_modified"] else ""))
    w("| load average (1, 5, 15 min) | %s before the first run, %s after the last (other work on the same cores "
      "slows the runs: see the throughput rule below) |"
      % (", ".join("%.2f" % x for x in mach["load_average_start"]) if mach.get("load_average_start") else "n/a",
         ", ".join("%.2f" % x for x in mach["load_average"]) if mach.get("load_average") else "n/a"))
    w("")
    w("## Model and settings\n")
    w("Random Llama (tests/ref/make_random_model.py, weights N(0, 0.02²), tied classifier): dim %s, hidden %s, %s layers, "
      "%s heads (%s kv), vocab %s: **%s parameters** (%s in the decoder linears, %s in embeddings and norms). LoRA: r %s, "
      "lora_alpha %s on %s = %s trainable parameters."
      % (model.get("dim", "n/a"), model.get("hidden", "n/a"), model.get("layers", "n/a"), model.get("heads", "n/a"),
         model.get("kv_heads", "n/a"), intc(model.get("vocab")), intc(params), intc(model.get("linear_params")),
         intc(params - model["linear_params"] if num(params) and num(model.get("linear_params")) else None),
         a.r, 2 * a.r if a.r else "n/a", a.targets, intc(model.get("lora_params"))))
    w("")
    w("Each run: `mpirun -np N --oversubscribe loratrain train`, %s steps, max_seq_length %s, per_device_train_batch_size %s "
      "(the same per rank on 1 and 2 ranks, so per-rank memory compares; 2 ranks train twice the global batch), "
      "--threads %s per rank, AdamW lr %s constant, Tiny Shakespeare as a token file (%s tokens) of the bundled "
      "512-token tokenizer. QLoRA: load_in_4bit, nf4, bnb_4bit_use_double_quant, blocks of 64. Full FT: "
      "finetuning_type full (every weight fp32 and trainable); zero1 shards the AdamW moments; gradient_checkpointing "
      "keeps only layer inputs. Memory is rank 0's tracked peak per category (`memory.json`; the categories peak at "
      "different moments, so their sum can exceed the tracked total peak) and its VmHWM; tokens/s is the median over "
      "steps 2..%s (all ranks together); bytes per step are the medians of rank 0's per-step counters of each "
      "collective in metrics.jsonl (its grad_started_bytes, the gradient bytes whose reduction began during "
      "backward, is a part of the all-reduce or reduce-scatter and shown apart, never added). "
      "The exact commands are in runs.csv."
      % (a.steps, a.seq, a.batch, a.threads, a.lr, intc(data_tokens), a.steps))
    w("")
    w("## Headline (measured)\n")
    w("Throughput comparisons follow the rule under \"Throughput and communication of each run\": those marked "
      "noise are not measured differences.\n")
    md.extend(lines)
    w("")
    w("Bytes per parameter:\n")
    md.extend(bp)
    w("")
    w("![per-rank memory](memory.svg)\n")
    w("## Per-rank memory of each run (MiB, rank 0)\n")
    short = {"base_weights": "base fp32", "quantized_base": "base 4-bit", "lora_params": "LoRA",
             "gradients": "grads", "optimizer_state": "optim", "activations": "activ.",
             "communication": "comm", "workspace": "workspace", "other": "other"}
    w("| mode | ranks | " + " | ".join(short.get(c, c) for c in cats) + " | sum of category peaks | tracked total peak | VmHWM | VmHWM - tracked | VmHWM max rank | planner (sum of category peaks) | status |")
    w("|---|---|" + "---|" * (len(cats) + 7))
    for r in runs:
        csum = sum(v for v in r["cats"].values() if num(v)) if r["cats"] else None
        gap = r["vm_hwm"] - r["tracked_total"] if num(r["vm_hwm"]) and num(r["tracked_total"]) else None
        w("| %s | %d | %s | %s | **%s** | %s | %s | %s | %s | %s |" % (
            r["mode"], r["ranks"], " | ".join(mib(r["cats"].get(c)) for c in cats), mib(csum), mib(r["tracked_total"]),
            mib(r["vm_hwm"]), mib(gap), mib(r["vm_hwm_max"]),
            ("%s (%s)" % (mib(r["predicted_total"]), rx(r["predicted_over_measured"], "%.3fx")))
            if num(r["predicted_total"]) else ("n/a" if r["plan_status"] in ("ok", "n/a") else r["plan_status"][:90]),
            r["status"]))
    w("")
    w("The categories peak at different moments (the workspace while loading, activations in training), so their sum "
      "is above the tracked total peak. planner: `loratrain plan --json` for the same shape, mode, ranks, seq and "
      "batch, the sum of its per-category peaks; in brackets predicted / measured, the measured figure being the sum "
      "of the measured category peaks except `other` (data buffers, which the planner leaves out).\n")
    w("![tokens per second](throughput.svg)\n")
    w("![bytes per step](comm.svg)\n")
    w("## Throughput and communication of each run\n")
    w("**Throughput rule.** %s\n" % THROUGHPUT_RULE)
    w("This invocation: %s usable CPUs; 1-minute load average %s before the first run and %s after the last, of "
      "which the runs' own share is estimated at %s: other work **%s**. Runs that shared their cores: %s.\n"
      % (na(tctx["usable_cpus"], "%d"), na(tctx["load_1min_start"], "%.2f"), na(tctx["load_1min_end"], "%.2f"),
         na(tctx["own_share_of_end_load"], "%.2f"),
         "%.2f cores" % tctx["other_work"] if num(tctx["other_work"]) else "unknown",
         ", ".join("%s on %d rank(s)" % (r["mode"], r["ranks"]) for r in runs if r["shared_cores"]) or "none"
         if num(tctx["other_work"]) else "unknown (every throughput comparison is noise)"))
    w("| mode | ranks | tokens/s | min-max | step s | cores shared with other work | "
      + " | ".join("%s / step" % c for c in colls)
      + " | total / step | of which gradients started in backward / step | blocked in comm s/step | loss step 1 -> last | run wall s | status |")
    w("|---|---|---|---|---|---|" + "---|" * (len(colls) + 6))
    for r in runs:
        step_s = (a.batch * a.seq * r["ranks"] / r["tokens_per_s"]) if num(r["tokens_per_s"]) and a.batch and a.seq and r["tokens_per_s"] else None
        shared = ("yes (noise): %s + %d > %d" % (na(tctx["other_work"], "%.2f"), r["cores"], tctx["usable_cpus"])
                  if r["shared_cores"] else "no" if r["shared_cores"] is False else "unknown (noise)")
        w("| %s | %d | %s | %s-%s | %s | %s | %s | %s | %s | %s | %s -> %s | %s | %s |" % (
            r["mode"], r["ranks"], na(r["tokens_per_s"], "%.0f"), na(r["tokens_per_s_min"], "%.0f"),
            na(r["tokens_per_s_max"], "%.0f"), na(step_s, "%.2f"), shared,
            " | ".join(human_bytes(r["comm_bytes"].get(c)) for c in colls), human_bytes(r["comm_bytes_total"]),
            human_bytes(r["grad_started"]),
            na(r["comm_wait_s"], "%.3f"), na(r["loss_first"], "%.3f"), na(r["loss_last"], "%.3f"), na(r["wall_s"], "%.0f"),
            r["status"]))
    w("")
    w("## Planner: Llama-2-7B and Llama-2-70B\n")
    w("`loratrain plan --model llama-2-7b|llama-2-70b --ranks N --seq %s --batch %s` with `--mode lora|qlora --r %s "
      "--target_modules %s` (qlora: NF4 + double quant; `--shard_base`; `--gradient_checkpointing`) and `--mode full` "
      "(`--zero1`, `--gradient_checkpointing`). Per-rank GiB; data buffers not included.\n" % (a.plan_seq, a.plan_batch, a.r, a.targets))
    presets = sorted_presets
    models = []
    for p in presets:
        if p["model"] not in models:
            models.append(p["model"])
    rk = sorted({p["ranks"] for p in presets})
    names = []
    for p in presets:
        if p["name"] not in names:
            names.append(p["name"])
    w("| model | mode | " + " | ".join("%d rank%s" % (n, "s" if n > 1 else "") for n in rk) + " |")
    w("|---|---|" + "---|" * len(rk))
    notrun = {}
    for mdl in models:
        for nm in names:
            cells = []
            for n in rk:
                p = next((p for p in presets if p["model"] == mdl and p["name"] == nm and p["ranks"] == n), None)
                if p is None:
                    cells.append("")
                elif p["status"] == "ok":
                    cells.append(gib(p["total_bytes"], "%.1f"))
                else:
                    cells.append("not run")
                    notrun.setdefault(p["status"], []).append("%s %s %d" % (mdl, nm, n))
            w("| %s | %s | %s |" % (mdl, MODE_LABEL.get(nm, nm), " | ".join(cells)))
    w("")
    for st, who in notrun.items():
        w("- %s — for %s" % (st, ", ".join(who)))
    if notrun:
        w("")
    w("By category (GiB per rank):\n")
    w("| model | mode | ranks | " + " | ".join(short.get(c, c) for c in pcats) + " | total |")
    w("|---|---|---|" + "---|" * (len(pcats) + 1))
    for p in presets:
        if p["status"] == "ok":
            w("| %s | %s | %d | %s | **%s** |" % (p["model"], p["mode"], p["ranks"],
                                              " | ".join(gib(p["bytes"].get(c)) for c in pcats), gib(p["total_bytes"])))
    w("")
    w("![planner](plan.svg)\n")
    bad = [r for r in runs if r["status"] != "ok"]
    if bad:
        w("## Runs that did not run\n")
        for r in bad:
            w("- %s on %d rank(s): %s" % (r["mode"], r["ranks"], r["status"]))
        w("")
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    ARGS = None
    main()
