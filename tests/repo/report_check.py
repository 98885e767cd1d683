#!/usr/bin/python3
"""Every figure of the benchmark report against the raw figures it comes from.

The truth is a runs.json's raw per-run records (each run's memory.json and
metrics.jsonl rows, its exit status and seconds) and plan.json's `loratrain
plan --json` outputs; this script derives each figure from them on its own
and reads the figures back out of the report: every bar, marker, whisker,
tooltip and note of memory.svg, throughput.svg, comm.svg and plan.svg (bar
lengths measured against the axis ticks), every number of report.md's
headline and bytes-per-parameter bullets (a bullet it does not know fails),
the throughput/communication table and runs.csv's per-step columns.

Bytes per step are the trainer's collectives (allreduce, allgather,
reduce_scatter, reduce, broadcast); anything else drawn or added as traffic
fails. Throughput comparisons follow the report's rule, recomputed here: a
comparison is a measured difference exactly when both runs had their cores
to themselves (other work + ranks x threads <= usable CPUs; other work = the
larger of the 1-minute load before the first run and the 1-minute load after
the last less the runs' own share, each run's cores weighted by
e^(-t/60 s)) and their steps 2..N (at least 3 each) do not overlap; anything
else must read "noise" with its true reasons and no percentage or ratio, and
throughput.svg must hatch exactly the runs that shared their cores.

Cases, each checked in full:
  committed  the committed benchmarks/report/ files against their runs.json
  render     report.py --from over a copy of the committed runs.json/plan.json;
             its outputs must also be byte for byte the committed ones
  replay     report.py run as report.sh runs it, on a work folder rebuilt from
             the committed runs.json (loads as recorded)
  quiet      the same with no other work and edited steps: qlora-gc faster than
             qlora on 1 rank by the median but overlapping (noise), full-gc on
             2 ranks with 2 steps only (noise), the rest measured
  loaded     other work of 1000 cores at the end: every comparison noise
  unknown    no load recorded before the runs: every comparison noise
Usage: report_check.py REPO_ROOT BUILD_DIR [REPORT_PY]  (REPORT_PY defaults to
the repository's benchmarks/report.py; pass an older one to see it fail)
"""
import copy
import csv
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

MiB, GiB = 2.0 ** 20, 2.0 ** 30
COLLECTIVES = ("allreduce", "allgather", "reduce_scatter", "reduce", "broadcast")
UNITS = {"B": 1.0, "KiB": 1024.0, "MiB": MiB, "GiB": GiB}
SIZE = r"[\d.]+ (?:B|KiB|MiB|GiB)"
NF4_DQ_PAPER_BITS = 4.127  # QLoRA (Dettmers et al. 2023): 4 bits + 0.127 for double-quantized absmax
PX = 0.12                  # coordinates written to 0.1 px (older reports) or 0.01 px
SVGNS = "{http://www.w3.org/2000/svg}"


class Checker:
    def __init__(self, case):
        self.case, self.fails, self.checked = case, [], 0

    def fail(self, msg):
        self.fails.append("%s: %s" % (self.case, msg))

    def near(self, what, printed, true, decimals):
        """printed (text) shows true rounded to `decimals` places."""
        self.checked += 1
        try:
            p = float(printed.replace(",", ""))
        except (ValueError, AttributeError):
            self.fail("%s: %r is not a number (true %r)" % (what, printed, true))
            return
        if true is None or abs(p - true) > 0.5 * 10 ** -decimals + 1e-9 * max(1.0, abs(true)):
            self.fail("%s: the report says %s, the raw figures give %s" % (what, printed, true))

    def size(self, what, printed, true_bytes):
        """printed like '10.69 MiB' or '8 B' shows true_bytes."""
        self.checked += 1
        m = re.fullmatch(r"([\d.]+) (B|KiB|MiB|GiB)", printed.strip())
        if not m or true_bytes is None:
            self.fail("%s: %r, the raw figures give %r bytes" % (what, printed, true_bytes))
            return
        dec = len(m.group(1).split(".")[1]) if "." in m.group(1) else 0
        unit = UNITS[m.group(2)]
        if abs(float(m.group(1)) * unit - true_bytes) > (0.5 * 10 ** -dec) * unit + 1e-6:
            self.fail("%s: the report says %s, the raw figures give %d bytes (%.4f %s)"
                      % (what, printed, true_bytes, true_bytes / unit, m.group(2)))

    def pct(self, what, printed, true_fraction):
        self.near(what, printed, None if true_fraction is None else 100.0 * true_fraction, 0)


# ---------------------------------------------------------------- the truth

def med(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return statistics.median(xs) if xs else None


def truth_runs(raw):
    """Per run, keyed (name, ranks): figures from its memory.json and metrics rows."""
    out = {}
    for i, r in enumerate(raw["runs"]):
        rows = r.get("metrics") or []
        steady = rows[1:] if len(rows) > 1 else rows
        mem = r.get("memory_json") or {}
        r0 = (mem.get("ranks") or [{}])[0]
        coll = {c: med(x.get(c + "_bytes") for x in steady) for c in COLLECTIVES
                if any(c + "_bytes" in x for x in steady)}
        t = {"i": i, "name": r["name"], "mode": r["mode"], "ranks": r["ranks"], "ok": r["status"] == "ok",
             "status": r["status"], "wall_s": r["wall_s"],
             "tps": [x["tokens_per_s"] for x in steady], "tps_med": med(x["tokens_per_s"] for x in steady),
             "coll": coll, "coll_total": sum(v for v in coll.values() if v is not None),
             "cats": dict(r0.get("tracked_peak_bytes") or {}), "tracked": r0.get("tracked_total_peak_bytes"),
             "hwm": r0.get("vm_hwm_bytes"), "base": mem.get("base") or {},
             "hwm_max": max((rk.get("vm_hwm_bytes") or 0) for rk in mem.get("ranks") or [{}]) or None}
        t["label"] = "%s · %d rank%s" % (t["mode"], t["ranks"], "s" if t["ranks"] > 1 else "")
        out[(r["name"], r["ranks"])] = t
    return out


def rule(runs, cpus, threads, load_start, load_end):
    """The throughput rule's inputs: other work in cores; each run's cores and verdict."""
    own, t = 0.0, 0.0
    for r in sorted(runs.values(), key=lambda r: -r["i"]):
        cores = cpus if threads == 0 else r["ranks"] * threads
        own += cores * (math.exp(-t / 60.0) - math.exp(-(t + r["wall_s"]) / 60.0))
        t += r["wall_s"]
    other = None
    if load_start is not None and load_end is not None:
        other = max(load_start, max(0.0, load_end - own))
    for r in runs.values():
        r["cores"] = cpus if threads == 0 else r["ranks"] * threads
        r["shared"] = None if other is None else other + r["cores"] > cpus
    return {"own": own, "other": other, "cpus": cpus}


def verdict(a, b, ctx):
    """(measured?, reasons as sets of facts) for b's tokens/s against a's."""
    facts = {}
    if a["shared"] is None or b["shared"] is None:
        facts["unknown"] = True
    elif a["shared"] or b["shared"]:
        facts["shared"] = (ctx["other"], max(r["cores"] for r in (a, b) if r["shared"]), ctx["cpus"])
    if len(a["tps"]) < 3 or len(b["tps"]) < 3:
        facts["few"] = True
    elif min(a["tps"]) <= max(b["tps"]) and min(b["tps"]) <= max(a["tps"]):
        facts["overlap"] = (min(a["tps"]), max(a["tps"]), min(b["tps"]), max(b["tps"]))
    return not facts, facts


# ---------------------------------------------------------------- SVG

def svg_rows(path, ck):
    """The drawing read in document order, as a reader's eye would: each axis
    tick (a grid line and the value written under it), and per row (its label,
    written right-aligned left of the axis) the bars with their tooltips, the
    marker lines, the whisker, the note after the bar or the note that it
    did not run."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        ck.fail("%s: cannot read: %s" % (os.path.basename(path), e))
        return None, {}, ""
    ticks, rows, cur, grid = [], {}, None, None
    sub = " ".join(e.text or "" for e in root.iter(SVGNS + "text") if e.get("fill") == "#555")
    for e in root.iter():
        tag, title = e.tag.replace(SVGNS, ""), e.findtext(SVGNS + "title")
        if tag == "line" and e.get("stroke") == "#e3e3e3":
            grid = float(e.get("x1"))
        elif tag == "text" and grid is not None:
            ticks.append((float(e.text), grid))
            grid = None
        elif tag == "text" and e.get("text-anchor") == "end":
            cur = rows[e.text] = {"segs": [], "markers": {}, "note": None, "missing": None, "range": None}
        elif cur is None:
            continue
        elif tag == "rect" and title is not None:
            cur["segs"].append((title.split(": ")[0], float(e.get("x")), float(e.get("width")),
                                "noise" in (e.get("class") or "") or e.get("fill-opacity") is not None, title))
        elif tag == "line" and title is not None:
            cur["markers"][title.split(" ")[0]] = float(e.get("x1"))
        elif tag == "g" and (e.get("class") or "") == "range":
            ln = e.find(SVGNS + "line")
            cur["range"] = (float(ln.get("x1")), float(ln.get("x2")))
            cur["range_title"] = title or ""
        elif tag == "text" and e.get("font-style") == "italic":
            cur["missing"] = e.text or ""
        elif tag == "text" and e.get("fill") == "#222":
            cur["note"] = e.text or ""
    if len(ticks) < 2 or not rows:
        ck.fail("%s: no axis ticks or no rows to read figures from" % os.path.basename(path))
        return None, {}, sub
    return ticks, rows, sub


def axis(ticks, log):
    (v0, x0), (v1, x1) = min(ticks), max(ticks)
    if log:
        k = (x1 - x0) / (math.log10(v1) - math.log10(v0))
        return lambda v: x0 + k * (math.log10(max(v, v0)) - math.log10(v0))
    k = (x1 - x0) / (v1 - v0)
    return lambda v: x0 + k * (v - v0)


def check_bars(ck, plot, label, row, X, want, log=False):
    """want: [(segment name, value in the axis unit)] in drawing order (values > 0)."""
    got = [(n, x, w) for n, x, w, _, _ in row["segs"]]
    names = [n for n, _ in want]
    if [n for n, _, _ in got] != names:
        ck.fail("%s %s: draws segments %s, the raw figures have %s" % (plot, label, [n for n, _, _ in got], names))
        return
    acc = 0.0
    for (n, v), (_, x, w) in zip(want, got):
        ck.checked += 1
        xs = X(acc)  # a log axis starts its bars at its lowest tick
        xe = X(acc + v)
        if abs(x - xs) > PX or abs(w - max(xe - xs, 0.5)) > PX:
            ck.fail("%s %s %s: bar from %.2f to %.2f px, the raw figure %.6g spans %.2f to %.2f px"
                    % (plot, label, n, x, x + w, v, xs, xe))
        acc += v


def check_svgs(ck, out, runs, plans, ctx):
    # memory.svg: rank 0's peak per category, its tracked total and VmHWM
    ticks, rows, _ = svg_rows(os.path.join(out, "memory.svg"), ck)
    if ticks:
        X = axis(ticks, False)
        cats_order = [c for c in ("base_weights", "quantized_base", "lora_params", "gradients", "optimizer_state",
                                  "activations", "communication", "workspace", "other")]
        want_labels = {r["label"] for r in runs.values()}
        if set(rows) != want_labels:
            ck.fail("memory.svg rows %s, runs %s" % (sorted(rows), sorted(want_labels)))
        for r in runs.values():
            row = rows.get(r["label"])
            if not row:
                continue
            if not r["ok"]:
                if row["missing"] is None:
                    ck.fail("memory.svg %s: the run did not run, the plot draws a bar" % r["label"])
                continue
            extra = [c for c in r["cats"] if c not in cats_order]
            want = [(c, r["cats"][c] / MiB) for c in cats_order + sorted(extra) if r["cats"].get(c, 0) > 0]
            check_bars(ck, "memory.svg", r["label"], row, X, want)
            for n, _, _, _, title in row["segs"]:
                m = re.fullmatch(r"%s: ([\d.]+) MiB" % re.escape(n), title)
                ck.near("memory.svg %s %s tooltip" % (r["label"], n), m.group(1) if m else title,
                        r["cats"].get(n, 0) / MiB, 2)
            for key, true in (("tracked", r["tracked"]), ("VmHWM", r["hwm"])):
                ck.checked += 1
                if key not in row["markers"] or abs(row["markers"][key] - X(true / MiB)) > PX:
                    ck.fail("memory.svg %s: %s marker at %s px, the raw %d bytes is at %.2f px"
                            % (r["label"], key, row["markers"].get(key), true, X(true / MiB)))
            m = re.fullmatch(r"peak ([\d.]+), HWM ([\d.]+) MiB", row["note"] or "")
            if not m:
                ck.fail("memory.svg %s: note %r" % (r["label"], row["note"]))
            else:
                ck.near("memory.svg %s note peak" % r["label"], m.group(1), r["tracked"] / MiB, 0)
                ck.near("memory.svg %s note HWM" % r["label"], m.group(2), r["hwm"] / MiB, 0)

    # throughput.svg: the median over steps 2..N, its range, noise where cores were shared
    ticks, rows, sub = svg_rows(os.path.join(out, "throughput.svg"), ck)
    if ticks:
        X = axis(ticks, False)
        m = re.search(r"other work ([\d.]+|n/a) cores", sub)
        ck.checked += 1
        if not m or (m.group(1) == "n/a") != (ctx["other"] is None):
            ck.fail("throughput.svg: the subtitle does not state the other work (%s): %r" % (ctx["other"], sub))
        elif ctx["other"] is not None:
            ck.near("throughput.svg subtitle other work", m.group(1), ctx["other"], 2)
        m = re.search(r"> (\d+) usable CPUs", sub)
        ck.near("throughput.svg subtitle CPUs", m.group(1) if m else sub, ctx["cpus"], 0)
        for r in runs.values():
            row = rows.get(r["label"])
            if row is None:
                ck.fail("throughput.svg: no row for %s" % r["label"])
                continue
            if not r["ok"]:
                continue
            check_bars(ck, "throughput.svg", r["label"], row, X, [("tokens/s", r["tps_med"])])
            ck.checked += 1
            if row["range"] is None or abs(row["range"][0] - X(min(r["tps"]))) > PX or \
                    abs(row["range"][1] - X(max(r["tps"]))) > PX:
                ck.fail("throughput.svg %s: whisker %s px, the steps span %.1f-%.1f tokens/s (%.2f-%.2f px)"
                        % (r["label"], row["range"], min(r["tps"]), max(r["tps"]), X(min(r["tps"])), X(max(r["tps"]))))
            m = re.fullmatch(r"steps 2\.\.\d+: slowest ([\d.]+), fastest ([\d.]+) tokens/s", row.get("range_title") or "")
            ck.near("throughput.svg %s whisker slowest" % r["label"], m.group(1) if m else row.get("range_title"), min(r["tps"]), 1)
            ck.near("throughput.svg %s whisker fastest" % r["label"], m.group(2) if m else row.get("range_title"), max(r["tps"]), 1)
            m = re.match(r"tokens/s: ([\d.]+)", row["segs"][0][4] if row["segs"] else "")
            ck.near("throughput.svg %s tooltip" % r["label"], m.group(1) if m else None, r["tps_med"], 1)
            m = re.match(r"([\d.]+) tok/s", row["note"] or "")
            ck.near("throughput.svg %s note" % r["label"], m.group(1) if m else row["note"], r["tps_med"], 0)
            marked = bool(row["segs"]) and row["segs"][0][3]
            noted = "noise" in (row["note"] or "")
            want = r["shared"] is not False
            ck.checked += 1
            if marked != want or noted != want:
                ck.fail("throughput.svg %s: hatched %s, note %r; the rule says %s (other work %s, %d cores, %d CPUs)"
                        % (r["label"], marked, row["note"], "noise" if want else "measured", ctx["other"],
                           r["cores"], ctx["cpus"]))

    # comm.svg: each collective's median bytes per step, runs on more than 1 rank
    ticks, rows, _ = svg_rows(os.path.join(out, "comm.svg"), ck)
    if ticks:
        X = axis(ticks, False)
        multi = [r for r in runs.values() if r["ranks"] > 1]
        if set(rows) != {r["label"] for r in multi}:
            ck.fail("comm.svg rows %s, runs on more than 1 rank %s" % (sorted(rows), sorted(r["label"] for r in multi)))
        for r in multi:
            row = rows.get(r["label"])
            if not row or not r["ok"]:
                continue
            for n, _, _, _, _ in row["segs"]:
                if n not in COLLECTIVES:
                    ck.fail("comm.svg %s: draws %s as traffic, which is no collective (a part of one)" % (r["label"], n))
            drawn = [n for n, _, _, _, _ in row["segs"]]
            want = [(c, r["coll"][c] / MiB) for c in drawn if c in r["coll"]]
            missing = [c for c, v in r["coll"].items() if v and c not in drawn]
            if missing:
                ck.fail("comm.svg %s: does not draw %s" % (r["label"], missing))
            if all(n in COLLECTIVES for n in drawn):
                check_bars(ck, "comm.svg", r["label"], row, X, want)
            end = max((x + w for _, x, w, _, _ in row["segs"]), default=None)
            ck.checked += 1
            if end is None or abs(end - X(r["coll_total"] / MiB)) > 0.5 + PX:
                ck.fail("comm.svg %s: the bar ends at %s px, the %d bytes per step at %.2f px"
                        % (r["label"], end, r["coll_total"], X(r["coll_total"] / MiB)))
            for n, _, _, _, title in row["segs"]:
                if n not in r["coll"]:
                    continue
                m = re.fullmatch(r"%s: (%s) \(([\d,]+) bytes\) per step" % (re.escape(n), SIZE), title)
                bare = re.fullmatch(r"%s: ([\d.e+-]+)" % re.escape(n), title)  # the value in the axis' MiB
                if m:
                    ck.size("comm.svg %s %s tooltip" % (r["label"], n), m.group(1), r["coll"][n])
                    ck.near("comm.svg %s %s tooltip bytes" % (r["label"], n), m.group(2), r["coll"][n], 0)
                elif bare:
                    ck.checked += 1
                    if abs(float(bare.group(1)) * MiB - r["coll"][n]) > 1e-6 * max(1.0, r["coll"][n]):
                        ck.fail("comm.svg %s %s tooltip %r MiB, the raw figures give %d bytes"
                                % (r["label"], n, bare.group(1), r["coll"][n]))
                else:
                    ck.fail("comm.svg %s %s tooltip %r" % (r["label"], n, title))
            m = re.fullmatch(r"(%s) / step" % SIZE, row["note"] or "")
            if not m:
                ck.fail("comm.svg %s: note %r" % (r["label"], row["note"]))
            else:
                ck.size("comm.svg %s note" % r["label"], m.group(1), r["coll_total"])

    # plan.svg: the planner's total per preset, model and ranks (log scale)
    ticks, rows, _ = svg_rows(os.path.join(out, "plan.svg"), ck)
    if ticks:
        X = axis(ticks, True)
        presets = [p for p in plans if p["kind"] == "preset"]
        labels = {"%s · %s · %d" % (p["model"], p["mode"], p["ranks"]): p for p in presets}
        if set(rows) != set(labels):
            ck.fail("plan.svg rows %s, presets planned %s" % (sorted(rows), sorted(labels)))
        for lab, p in labels.items():
            row = rows.get(lab)
            if not row or p["status"] != "ok":
                continue
            tot = p["raw"]["total_bytes"]
            if len(row["segs"]) != 1:
                ck.fail("plan.svg %s: %d bars" % (lab, len(row["segs"])))
                continue
            _, x, w, _, tip = row["segs"][0]
            m = re.fullmatch(r"total: ([\d.e+-]+)", tip)
            ck.checked += 1
            if not m or abs(float(m.group(1)) * GiB - tot) > 1e-6 * tot:
                ck.fail("plan.svg %s: tooltip %r, the planner's %d bytes" % (lab, tip, tot))
            ck.checked += 1
            if abs(x + w - X(tot / GiB)) > PX:
                ck.fail("plan.svg %s: bar ends at %.2f px, the planner's %d bytes at %.2f px" % (lab, x + w, tot, X(tot / GiB)))
            m = re.fullmatch(r"([\d.]+) GiB", row["note"] or "")
            ck.near("plan.svg %s note" % lab, m.group(1) if m else row["note"], tot / GiB, 1)


# ---------------------------------------------------------------- report.md

def check_tput(ck, what, text, a, b, ctx, kind):
    m = re.fullmatch(r"(\d+) -> (\d+) \(([^()]*)\)", text.strip())
    if not m:
        ck.fail("%s: %r is not 'X -> Y (change or noise: reasons)'" % (what, text))
        return None
    ck.near(what + " from", m.group(1), a["tps_med"], 0)
    ck.near(what + " to", m.group(2), b["tps_med"], 0)
    measured, facts = verdict(a, b, ctx)
    inner = m.group(3)
    ck.checked += 1
    if measured:
        if "noise" in inner:
            ck.fail("%s: marked noise (%s), the rule says measured" % (what, inner))
        elif kind == "pct":
            p = re.fullmatch(r"([+-]\d+)%", inner)
            ck.pct(what + " change", p.group(1) if p else inner, b["tps_med"] / a["tps_med"] - 1)
        else:
            p = re.fullmatch(r"([\d.]+)x", inner)
            ck.near(what + " ratio", p.group(1) if p else inner, b["tps_med"] / a["tps_med"], 2)
        return True
    if not inner.startswith("noise: ") or "%" in inner or re.search(r"\d\.\d+x", inner):
        ck.fail("%s: %r states a difference; the rule says noise (%s)" % (what, inner, facts))
        return False
    rest = inner[len("noise: "):]
    patterns = {"unknown": r"the load during the runs is unknown",
                "shared": r"other work ([\d.]+) \+ (\d+) cores > (\d+) CPUs",
                "few": r"fewer than 3 steps per run",
                "overlap": r"steps (\d+)-(\d+) and (\d+)-(\d+) overlap"}
    for k, pat in patterns.items():
        f = re.search(pat, rest)
        if bool(f) != (k in facts):
            ck.fail("%s: reason %r %s, the rule %s" % (what, k, "given" if f else "missing",
                                                       "agrees it holds" if k in facts else "says it does not hold"))
            continue
        if f and k == "shared":
            ck.near(what + " other work", f.group(1), facts[k][0], 2)
            ck.near(what + " cores", f.group(2), facts[k][1], 0)
            ck.near(what + " CPUs", f.group(3), facts[k][2], 0)
        if f and k == "overlap":
            for g, v in zip(f.groups(), facts[k]):
                ck.near(what + " step range", g, v, 0)
        rest = rest.replace(f.group(0), "") if f else rest
    if rest.replace(",", "").strip():
        ck.fail("%s: unchecked words in the reason: %r" % (what, rest))
    return False


MEM_PAIRS = {
    "full FT per-rank memory / QLoRA per-rank memory (1 rank)": (("full", 1), ("qlora", 1)),
    "full FT per-rank memory / LoRA (fp32 base) per-rank memory (1 rank)": (("full", 1), ("lora", 1)),
    "LoRA (fp32 base) per-rank memory / QLoRA per-rank memory (1 rank)": (("lora", 1), ("qlora", 1)),
    "full FT / QLoRA per-rank memory on 2 ranks": (("full", 2), ("qlora", 2)),
    "full FT + ZeRO-1 / sharded QLoRA per-rank memory on 2 ranks (each method's leanest 2-rank form)":
        (("full-zero1", 2), ("qlora-sharded", 2)),
    "sharded QLoRA / unsharded QLoRA per-rank memory (2 ranks)": (("qlora-sharded", 2), ("qlora", 2)),
    "full FT + ZeRO-1 / full FT per-rank memory (2 ranks)": (("full-zero1", 2), ("full", 2)),
}
GC_MODES = {"QLoRA": "qlora", "full FT": "full", "LoRA": "lora"}


def section(md, start, end):
    i = md.find(start)
    j = md.find(end, i + 1) if i >= 0 else -1
    return md[i + len(start):j] if i >= 0 and j >= 0 else None


def check_md(ck, out, runs, plans, raw, ctx, load_start, load_end, seen):
    md = open(os.path.join(out, "report.md")).read()
    R = lambda n, k: runs.get((n, k))
    head = section(md, "## Headline (measured)", "Bytes per parameter:")
    bpp = section(md, "Bytes per parameter:", "![per-rank memory]")
    if head is None or bpp is None:
        ck.fail("report.md: no headline or bytes-per-parameter section")
        return
    params = raw["model"]["params"]
    for line in [l for l in head.split("\n") + bpp.split("\n") if l.lstrip().startswith("- ")]:
        m = re.fullmatch(r"- (.+?) = \*\*([\d.]+)x\*\* \(tracked peak ([\d.]+) MiB vs ([\d.]+) MiB; by VmHWM "
                         r"([\d.]+)x: ([\d.]+) MiB vs ([\d.]+) MiB\)", line)
        if m and m.group(1) in MEM_PAIRS:
            a, b = (R(*k) for k in MEM_PAIRS[m.group(1)])
            w = m.group(1)
            ck.near(w + " ratio", m.group(2), a["tracked"] / b["tracked"], 1)
            ck.near(w + " a", m.group(3), a["tracked"] / MiB, 1)
            ck.near(w + " b", m.group(4), b["tracked"] / MiB, 1)
            ck.near(w + " VmHWM ratio", m.group(5), a["hwm"] / b["hwm"], 1)
            ck.near(w + " VmHWM a", m.group(6), a["hwm"] / MiB, 1)
            ck.near(w + " VmHWM b", m.group(7), b["hwm"] / MiB, 1)
            continue
        m = re.fullmatch(r"  - saves ([\d.]+) MiB per rank: its quantized base per rank is ([\d.]+) MiB sharded vs "
                         r"([\d.]+) MiB unsharded \(([\d.]+)x\); the all-gather buffers cost ([\d.]+) MiB of "
                         r"communication memory \(the fp32 embeddings and classifier are not sharded\)", line)
        if m:
            s, u = R("qlora-sharded", 2), R("qlora", 2)
            ck.near("sharding saves", m.group(1), (u["tracked"] - s["tracked"]) / MiB, 1)
            ck.near("sharded quantized base", m.group(2), s["cats"]["quantized_base"] / MiB, 2)
            ck.near("unsharded quantized base", m.group(3), u["cats"]["quantized_base"] / MiB, 2)
            ck.near("quantized base ratio", m.group(4), s["cats"]["quantized_base"] / u["cats"]["quantized_base"], 2)
            ck.near("all-gather buffers", m.group(5), s["cats"]["communication"] / MiB, 2)
            continue
        m = re.fullmatch(r"  - optimizer state per rank: ([\d.]+) MiB with ZeRO-1 vs ([\d.]+) MiB without \(([\d.]+)x\)", line)
        if m:
            z, f = R("full-zero1", 2)["cats"]["optimizer_state"], R("full", 2)["cats"]["optimizer_state"]
            ck.near("ZeRO-1 optimizer state", m.group(1), z / MiB, 1)
            ck.near("optimizer state", m.group(2), f / MiB, 1)
            ck.near("optimizer state ratio", m.group(3), z / f, 2)
            continue
        m = re.fullmatch(r"- gradient checkpointing, (QLoRA|full FT|LoRA) on (\d) rank\(s\): activations ([\d.]+) -> "
                         r"([\d.]+) MiB \(([+-]\d+)%\), per-rank total ([\d.]+) -> ([\d.]+) MiB \(([+-]\d+)%\); "
                         r"tokens/s (.+)", line)
        if m:
            n = int(m.group(2))
            b, a = R(GC_MODES[m.group(1)], n), R(GC_MODES[m.group(1)] + "-gc", n)
            w = "gradient checkpointing %s %d" % (m.group(1), n)
            ck.near(w + " activations", m.group(3), b["cats"]["activations"] / MiB, 1)
            ck.near(w + " activations gc", m.group(4), a["cats"]["activations"] / MiB, 1)
            ck.pct(w + " activations change", m.group(5), a["cats"]["activations"] / b["cats"]["activations"] - 1)
            ck.near(w + " total", m.group(6), b["tracked"] / MiB, 1)
            ck.near(w + " total gc", m.group(7), a["tracked"] / MiB, 1)
            ck.pct(w + " total change", m.group(8), a["tracked"] / b["tracked"] - 1)
            seen.append(check_tput(ck, w + " tokens/s", m.group(9), b, a, ctx, "pct"))
            continue
        m = re.fullmatch(r"- bytes all-reduced per step on 2 ranks: full FT (%s) vs LoRA (%s) = \*\*(\d+)x\*\*; QLoRA "
                         r"(%s); sharded QLoRA all-gathers (%s) per step on top" % (SIZE, SIZE, SIZE, SIZE), line)
        if m:
            f, l = R("full", 2)["coll"]["allreduce"], R("lora", 2)["coll"]["allreduce"]
            ck.size("full FT all-reduce", m.group(1), f)
            ck.size("LoRA all-reduce", m.group(2), l)
            ck.near("all-reduce ratio", m.group(3), f / l, 0)
            ck.size("QLoRA all-reduce", m.group(4), R("qlora", 2)["coll"]["allreduce"])
            ck.size("sharded QLoRA all-gather", m.group(5), R("qlora-sharded", 2)["coll"]["allgather"])
            continue
        m = re.fullmatch(r"- full FT \+ ZeRO-1 per step on 2 ranks: (.+?)(?: = (%s) in all)?" % SIZE, line)
        if m:
            z = R("full-zero1", 2)
            named = []
            for item in m.group(1).split(", "):
                im = re.fullmatch(r"(\w+) (%s)" % SIZE, item)
                if not im or im.group(1) not in COLLECTIVES:
                    ck.fail("ZeRO-1 per step: %r is no collective's bytes (a part of one is not traffic)" % item)
                    continue
                named.append(im.group(1))
                ck.size("ZeRO-1 %s per step" % im.group(1), im.group(2), z["coll"].get(im.group(1)))
            if sorted(named) != sorted(c for c, v in z["coll"].items() if v):
                ck.fail("ZeRO-1 per step names %s, its collectives that moved bytes are %s"
                        % (named, sorted(c for c, v in z["coll"].items() if v)))
            if m.group(2) is None:
                ck.fail("ZeRO-1 per step: no total stated")
            else:
                ck.size("ZeRO-1 per step in all", m.group(2), z["coll_total"])
            continue
        m = re.fullmatch(r"- tokens/s, 1 -> 2 ranks \(global throughput, (\d+) sequences per rank\): (.+)", line)
        if m:
            ck.near("sequences per rank", m.group(1), raw["settings"]["per_device_train_batch_size"], 0)
            labels = {r["mode"]: r["name"] for r in runs.values()}
            done = set()
            for item in m.group(2).split("; "):
                im = re.fullmatch(r"(.+?) (\d+ -> \d+ \(.*\))", item)
                if not im or im.group(1) not in labels or not R(labels[im.group(1)], 1) or not R(labels[im.group(1)], 2):
                    ck.fail("1 -> 2 ranks: %r names no mode run on 1 and 2 ranks" % item)
                    continue
                nm = labels[im.group(1)]
                done.add(nm)
                seen.append(check_tput(ck, "tokens/s 1 -> 2 ranks, " + nm, im.group(2), R(nm, 1), R(nm, 2), ctx, "ratio"))
            want = {r["name"] for r in runs.values() if R(r["name"], 1) and R(r["name"], 2)}
            if done != want:
                ck.fail("1 -> 2 ranks covers %s, the modes run on both are %s" % (sorted(done), sorted(want)))
            continue
        m = re.fullmatch(r"- tokens/s on 1 rank: LoRA -> full FT (.+); LoRA -> QLoRA (.+)", line)
        if m:
            seen.append(check_tput(ck, "tokens/s 1 rank LoRA -> full FT", m.group(1), R("lora", 1), R("full", 1), ctx, "ratio"))
            seen.append(check_tput(ck, "tokens/s 1 rank LoRA -> QLoRA", m.group(2), R("lora", 1), R("qlora", 1), ctx, "ratio"))
            continue
        m = re.fullmatch(r"- the process peak \(VmHWM\) exceeds the tracked total peak by (\d+) to (\d+) MiB \(code, "
                         r"libraries, MPI and OpenBLAS buffers the tracked allocator does not see\): least for (.+?) on "
                         r"(\d+) rank\(s\), most for (.+?) on (\d+) rank\(s\); tracked / VmHWM (\d+)%-(\d+)%", line)
        if m:
            ok = [r for r in runs.values() if r["ok"]]
            lo = min(ok, key=lambda r: r["hwm"] - r["tracked"])
            hi = max(ok, key=lambda r: r["hwm"] - r["tracked"])
            ck.near("VmHWM gap least", m.group(1), (lo["hwm"] - lo["tracked"]) / MiB, 0)
            ck.near("VmHWM gap most", m.group(2), (hi["hwm"] - hi["tracked"]) / MiB, 0)
            ck.checked += 1
            if (m.group(3), int(m.group(4)), m.group(5), int(m.group(6))) != (lo["mode"], lo["ranks"], hi["mode"], hi["ranks"]):
                ck.fail("VmHWM gap: least/most for %s, the raw figures: %s %d, %s %d"
                        % (m.group(3, 4, 5, 6), lo["mode"], lo["ranks"], hi["mode"], hi["ranks"]))
            ck.near("tracked / VmHWM least", m.group(7), 100 * min(r["tracked"] / r["hwm"] for r in ok), 0)
            ck.near("tracked / VmHWM most", m.group(8), 100 * max(r["tracked"] / r["hwm"] for r in ok), 0)
            continue
        m = re.fullmatch(r"- the planner's per-rank total for the measured runs: predicted / measured between ([\d.]+) "
                         r"and ([\d.]+) \(worst ([+-][\d.]+)%, over (\d+) runs; tracked categories except `other`\)", line)
        if m:
            q = []
            for r in runs.values():
                p = next((p for p in plans if p["kind"] == "run" and p["name"] == r["name"] and p["ranks"] == r["ranks"]
                          and p["status"] == "ok"), None)
                if r["ok"] and p:
                    q.append(p["raw"]["total_bytes"] / sum(v for c, v in r["cats"].items() if c != "other"))
            worst = max(q, key=lambda x: abs(x - 1))
            ck.near("planner lowest", m.group(1), min(q), 3)
            ck.near("planner highest", m.group(2), max(q), 3)
            ck.near("planner worst", m.group(3), 100 * (worst - 1), 1)
            ck.near("planner runs", m.group(4), len(q), 0)
            continue
        m = re.fullmatch(r"- NF4 \+ double quantization, the decoder linears: \*\*([\d.]+) bytes/param \(([\d.]+) bits\)\*\* "
                         r"measured \(memory.json: ([\d,]+) bytes for ([\d,]+) parameters\) vs the QLoRA paper's ([\d.]+) "
                         r"bytes/param \(([\d.]+) bits\): ([+-][\d.]+)%", line)
        q = R("qlora", 1) or R("qlora", 2)
        if m:
            bits = 8.0 * q["base"]["quant_bytes"] / q["base"]["quant_params"]
            ck.near("NF4+DQ bytes/param", m.group(1), bits / 8, 4)
            ck.near("NF4+DQ bits", m.group(2), bits, 3)
            ck.near("NF4+DQ bytes", m.group(3), q["base"]["quant_bytes"], 0)
            ck.near("NF4+DQ parameters", m.group(4), q["base"]["quant_params"], 0)
            ck.near("paper bytes/param", m.group(5), NF4_DQ_PAPER_BITS / 8, 3)
            ck.near("paper bits", m.group(6), NF4_DQ_PAPER_BITS, 3)
            ck.near("NF4+DQ vs paper", m.group(7), 100 * (bits / NF4_DQ_PAPER_BITS - 1), 2)
            continue
        m = re.fullmatch(r"  - tracked quantized_base peak ([\d.]+) MiB = ([\d.]+) bytes/param of the ([\d,]+) quantized parameters", line)
        if m:
            ck.near("quantized_base peak", m.group(1), q["cats"]["quantized_base"] / MiB, 2)
            ck.near("quantized_base bytes/param", m.group(2), q["cats"]["quantized_base"] / q["base"]["quant_params"], 4)
            ck.near("quantized parameters", m.group(3), q["base"]["quant_params"], 0)
            continue
        m = re.fullmatch(r"  - the whole QLoRA base \(fp32 embeddings, norms and tied classifier \+ NF4 linears\): ([\d.]+) MiB = "
                         r"([\d.]+) bytes/param over all ([\d,]+) parameters \(the fp32 base: ([\d.]+) bytes/param\)", line)
        if m:
            whole = q["cats"]["base_weights"] + q["cats"]["quantized_base"]
            allp = q["base"]["fp32_params"] + q["base"]["quant_params"]
            ck.near("QLoRA base", m.group(1), whole / MiB, 1)
            ck.near("QLoRA base bytes/param", m.group(2), whole / allp, 3)
            ck.near("base parameters", m.group(3), allp, 0)
            ck.near("fp32 base bytes/param", m.group(4), R("lora", 1)["cats"]["base_weights"] / allp, 3)
            continue
        m = re.fullmatch(r"- (full FT, 1 rank|full FT, 2 ranks|full FT \+ ZeRO-1, 2 ranks): weights \+ gradients \+ optimizer "
                         r"state = ([\d.]+) MiB = \*\*([\d.]+) bytes/param\*\* \(weights ([\d.]+), gradients ([\d.]+), "
                         r"optimizer ([\d.]+)\) vs (\d+) bytes/param expected for fp32 weights\+grads\+Adam moments"
                         r"(?: \(moments split over 2 ranks\))?; all tracked memory: ([\d.]+) bytes/param", line)
        if m:
            r = {"full FT, 1 rank": R("full", 1), "full FT, 2 ranks": R("full", 2),
                 "full FT + ZeRO-1, 2 ranks": R("full-zero1", 2)}[m.group(1)]
            c = r["cats"]
            st = c["base_weights"] + c.get("lora_params", 0) + c["gradients"] + c["optimizer_state"]
            w = m.group(1)
            ck.near(w + " state", m.group(2), st / MiB, 1)
            ck.near(w + " bytes/param", m.group(3), st / params, 2)
            ck.near(w + " weights", m.group(4), (c["base_weights"] + c.get("lora_params", 0)) / params, 2)
            ck.near(w + " gradients", m.group(5), c["gradients"] / params, 2)
            ck.near(w + " optimizer", m.group(6), c["optimizer_state"] / params, 2)
            ck.near(w + " expected", m.group(7), 4 + 4 + 8 / (2 if "ZeRO" in w else 1), 0)
            ck.near(w + " all tracked", m.group(8), r["tracked"] / params, 2)
            continue
        ck.fail("report.md headline with figures no check knows: %s" % line)

    # The rule's own figures and the throughput/communication table.
    m = re.search(r"This invocation: (\d+) usable CPUs; 1-minute load average ([\d.]+|n/a) before the first run and "
                  r"([\d.]+|n/a) after the last, of which the runs' own share is estimated at ([\d.]+|n/a): other work "
                  r"\*\*([\d.]+ cores|unknown)\*\*\. Runs that shared their cores: (.*?)\.\n", md)
    if not m:
        ck.fail("report.md: no \"This invocation: ... other work ...\" line stating the rule's figures")
    else:
        ck.near("usable CPUs", m.group(1), ctx["cpus"], 0)
        for g, v, what in ((2, load_start, "load before"), (3, load_end, "load after")):
            if v is None:
                if m.group(g) != "n/a":
                    ck.fail("%s: %s, none was recorded" % (what, m.group(g)))
            else:
                ck.near(what, m.group(g), v, 2)
        ck.near("own share of the end load", m.group(4), ctx["own"], 2)
        if ctx["other"] is None:
            if "unknown" not in m.group(6):
                ck.fail("other work unknown, the report lists: %s" % m.group(6))
        else:
            ck.near("other work", m.group(5).split()[0], ctx["other"], 2)
            want = ", ".join("%s on %d rank(s)" % (r["mode"], r["ranks"]) for r in sorted(runs.values(), key=lambda r: r["i"])
                             if r["shared"]) or "none"
            ck.checked += 1
            if m.group(6) != want:
                ck.fail("runs that shared their cores: the report says %r, the rule %r" % (m.group(6), want))
    tab = section(md, "## Throughput and communication of each run", "## Planner")
    lines = [l for l in (tab or "").split("\n") if l.startswith("|")]
    if len(lines) < 3:
        ck.fail("report.md: no throughput and communication table")
        return
    hdr = [h.strip() for h in lines[0].strip("|").split("|")]
    for h in hdr:
        if h.endswith(" / step") and h[:-len(" / step")] not in COLLECTIVES and h not in (
                "total / step", "blocked in comm s/step", "of which gradients started in backward / step"):
            ck.fail("throughput table: column %r is no collective, yet a per-step traffic column" % h)
    for l in lines[2:]:
        cells = dict(zip(hdr, [c.strip() for c in l.strip("|").split("|")]))
        r = next((r for r in runs.values() if r["mode"] == cells.get("mode") and str(r["ranks"]) == cells.get("ranks")), None)
        if r is None or not r["ok"]:
            continue
        w = "throughput table %s" % r["label"]
        ck.near(w + " tokens/s", cells.get("tokens/s"), r["tps_med"], 0)
        mm = re.fullmatch(r"(\d+)-(\d+)", cells.get("min-max", ""))
        ck.near(w + " min", mm.group(1) if mm else None, min(r["tps"]), 0)
        ck.near(w + " max", mm.group(2) if mm else None, max(r["tps"]), 0)
        sh = cells.get("cores shared with other work", "")
        ck.checked += 1
        if (sh.startswith("yes (noise)") or sh.startswith("unknown (noise)")) != (r["shared"] is not False):
            ck.fail("%s: cores shared %r, the rule says %s" % (w, sh, r["shared"]))
        for c in COLLECTIVES:
            if "%s / step" % c in cells:
                ck.size("%s %s" % (w, c), cells["%s / step" % c], r["coll"].get(c, 0))
        ck.size(w + " total", cells.get("total / step", ""), r["coll_total"])


def check_outputs(ck, out, runs, plans, raw, ctx, load_start, load_end):
    seen = []
    check_svgs(ck, out, runs, plans, ctx)
    check_md(ck, out, runs, plans, raw, ctx, load_start, load_end, seen)
    with open(os.path.join(out, "runs.csv")) as f:
        for row in csv.DictReader(f):
            r = runs.get((row["name"], int(row["ranks"])))
            if not r or not r["ok"]:
                continue
            for c in COLLECTIVES:
                if c + "_bytes_per_step" in row:
                    ck.near("runs.csv %s %s" % (r["label"], c), row[c + "_bytes_per_step"], r["coll"].get(c, 0), 0)
            ck.near("runs.csv %s comm_bytes_per_step" % r["label"], row.get("comm_bytes_per_step"), r["coll_total"], 0)
            ck.near("runs.csv %s tokens/s" % r["label"], row.get("tokens_per_s_median"), r["tps_med"], 1)
    oj = json.load(open(os.path.join(out, "runs.json")))
    z = runs.get(("full-zero1", 2))
    if z and "zero1_comm_bytes_per_step" in oj.get("headline", {}):
        ck.near("runs.json ZeRO-1 bytes per step", str(oj["headline"]["zero1_comm_bytes_per_step"]), z["coll_total"], 0)
    for r, o in zip(raw["runs"], oj["runs"]):
        ck.checked += 1
        if r.get("metrics") != o.get("metrics") or r.get("memory_json") != o.get("memory_json"):
            ck.fail("runs.json %s on %d: the raw metrics or memory.json differ from the input's" % (r["name"], r["ranks"]))
    return seen


# ---------------------------------------------------------------- cases

def replay(raw, plans, work, load_start, load_end):
    """A work folder as report.sh leaves it, from a runs.json and plan.json."""
    os.makedirs(os.path.join(work, "runs"))
    os.makedirs(os.path.join(work, "plans"))
    with open(os.path.join(work, "runs.tsv"), "w") as tsv:
        for r in raw["runs"]:
            o = os.path.join(work, "runs", "%s-np%d" % (r["name"], r["ranks"]))
            os.makedirs(o)
            if r.get("memory_json") is not None:
                json.dump(r["memory_json"], open(os.path.join(o, "memory.json"), "w"))
            with open(os.path.join(o, "metrics.jsonl"), "w") as f:
                for m in r.get("metrics") or []:
                    f.write(json.dumps(m) + "\n")
            with open(o + ".log", "w") as f:
                f.write("replayed from runs.json\n" + ("" if r["status"] == "ok" else r["status"][len("not run: "):] + "\n"))
            tsv.write("\t".join([r["name"], str(r["ranks"]), str(r["exit_code"]), str(r["wall_s"]), o, o + ".log",
                                 r["command"]]) + "\n")
    with open(os.path.join(work, "plans.tsv"), "w") as tsv:
        for i, p in enumerate(plans):
            f = os.path.join(work, "plans", "%d.out" % i)
            with open(f, "w") as out:
                out.write(json.dumps(p["raw"]) + "\n" if p["status"] == "ok" else p["status"][len("not run: "):] + "\n")
            tsv.write("\t".join([p["kind"], os.path.join(work, "model.bin") if p["kind"] == "run" else p["model"],
                                 p["name"], str(p["ranks"]), "0" if p["status"] == "ok" else "1", f]) + "\n")
    m = raw["model"]
    open(os.path.join(work, "model.txt"), "w").write(
        "%d layers, dim %d, hidden %d: %d parameters (%d in decoder linears)\n"
        % (m["layers"], m["dim"], m["hidden"], m["params"], m["linear_params"]))
    open(os.path.join(work, "info.txt"), "w").write(
        "model: n_heads %d, n_kv_heads %d\n  vocab_size %d, seq_len %d\ntrainable params: {:,}\n".format(m["lora_params"])
        % (m["heads"], m["kv_heads"], m["vocab"], m["seq_len"]))
    open(os.path.join(work, "tokenize.txt"), "w").write("%d tokens written\n" % raw["settings"]["data_tokens"])
    for name, v in (("loadavg.start", load_start), ("loadavg.end", load_end)):
        if v is not None:
            open(os.path.join(work, name), "w").write("%.2f %.2f %.2f\n" % (v, v, v))


def run_report(report_py, args):
    # 300 s times the build's time-limit factor (tests/CMakeLists.txt).
    limit = 300 * int(os.environ.get("LT_TIMEOUT_SCALE", "1"))
    p = subprocess.run(["/usr/bin/python3", report_py] + args, capture_output=True, text=True, timeout=limit)
    return p.returncode, (p.stdout + p.stderr).strip()


def main():
    root, build = sys.argv[1], sys.argv[2]
    report_py = sys.argv[3] if len(sys.argv) > 3 else os.path.join(root, "benchmarks", "report.py")
    committed = os.path.join(root, "benchmarks", "report")
    raw = json.load(open(os.path.join(committed, "runs.json")))
    plans = json.load(open(os.path.join(committed, "plan.json")))
    mach = raw["machine"]
    rec_start = (mach.get("load_average_start") or [None])[0]
    rec_end = (mach.get("load_average") or [None])[0]

    quiet = copy.deepcopy(raw)
    for r in quiet["runs"]:
        # qlora-gc "faster" than qlora by the median (+46%), the steps overlapping
        if (r["name"], r["ranks"]) == ("qlora", 1):
            for m, v in zip(r["metrics"], (40.0, 38.0, 45.0, 70.0, 41.0, 39.0)):
                m["tokens_per_s"] = v
        if (r["name"], r["ranks"]) == ("qlora-gc", 1):
            for m, v in zip(r["metrics"], (59.0, 60.0, 35.0, 58.0, 61.0, 62.0)):
                m["tokens_per_s"] = v
        if (r["name"], r["ranks"]) == ("full-gc", 2):
            r["metrics"] = r["metrics"][:3]
    cases = [  # name, runs.json, how, load before, load after, (some measured, some noise)
        ("committed", raw, "files", rec_start, rec_end, (True, True)),
        ("render", raw, "from", rec_start, rec_end, (True, True)),
        ("replay", raw, "work", rec_start, rec_end, (True, True)),
        ("quiet", quiet, "work", 0.0, 0.0, (True, True)),
        ("loaded", raw, "work", 0.0, 1000.0, (False, True)),
        ("unknown", raw, "work", None, 0.0, (False, True)),
    ]
    tmp = tempfile.mkdtemp()
    fails, total = [], 0
    try:
        for name, data, how, ls, le, expect in cases:
            ck = Checker(name)
            out = os.path.join(tmp, name, "out")
            if how == "files":
                out = committed
            elif how == "from":
                src = os.path.join(tmp, name, "src")
                os.makedirs(src)
                json.dump(data, open(os.path.join(src, "runs.json"), "w"))
                json.dump(plans, open(os.path.join(src, "plan.json"), "w"))
                rc, log = run_report(report_py, ["--from", src, "--out", out])
            else:
                work = os.path.join(tmp, name, "work")
                replay(data, plans, work, ls, le)
                s = data["settings"]
                rc, log = run_report(report_py, [
                    "--root", root, "--build", build, "--work", work, "--out", out, "--steps", str(s["steps"]),
                    "--seq", str(s["max_seq_length"]), "--batch", str(s["per_device_train_batch_size"]),
                    "--r", str(s["r"]), "--targets", s["target_modules"], "--threads", str(s["threads_per_rank"]),
                    "--lr", s["learning_rate"], "--plan_seq", str(s["plan_seq"]), "--plan_batch", str(s["plan_batch"]),
                    "--elapsed_s", str(s["elapsed_s"])])
            if how != "files" and rc != 0:
                fails.append("%s: report.py exited %d: %s" % (name, rc, log[-500:]))
                continue
            oj = json.load(open(os.path.join(out, "runs.json")))
            om = oj["machine"]
            cpus = om.get("usable_cpus") or om.get("logical_cpus")
            got_start = (om.get("load_average_start") or [None])[0]
            got_end = (om.get("load_average") or [None])[0]
            if how == "work" and le is not None and (got_end is None or abs(got_end - le) > 0.005):
                ck.fail("runs.json records load %s after the runs, loadavg.end said %.2f" % (om.get("load_average"), le))
            if (got_start is None) != (ls is None) or (ls is not None and abs(got_start - ls) > 0.005):
                ck.fail("runs.json records load %s before the runs, the input says %s" % (om.get("load_average_start"), ls))
            if how != "work" and cpus != (mach.get("usable_cpus") or mach.get("logical_cpus")):
                ck.fail("runs.json records %s usable CPUs, the measuring machine had %s" % (cpus, mach.get("usable_cpus")))
            if name == "render":
                for f in ("report.md", "memory.svg", "throughput.svg", "comm.svg", "plan.svg", "runs.csv", "runs.json",
                          "plan.csv"):
                    ck.checked += 1
                    if open(os.path.join(out, f), "rb").read() != open(os.path.join(committed, f), "rb").read():
                        ck.fail("benchmarks/report/%s is not what report.py renders from the committed runs.json "
                                "(render again: /usr/bin/python3 benchmarks/report.py --from benchmarks/report)" % f)
            runs = truth_runs(data)
            ctx = rule(runs, cpus, data["settings"]["threads_per_rank"], ls, le)
            seen = check_outputs(ck, out, runs, plans, data, ctx, ls, le)
            measured, noise = any(v is True for v in seen), any(v is False for v in seen)
            if measured != expect[0] or noise != expect[1]:
                ck.fail("the case meant to give %s measured and %s noise comparisons gave %s and %s on %d CPUs"
                        % ("some" if expect[0] else "no", "some" if expect[1] else "no",
                           sum(v is True for v in seen), sum(v is False for v in seen), cpus))
            print("%-9s %4d figures checked; %d throughput comparisons: %d measured, %d noise (other work %s, %s CPUs)%s"
                  % (name, ck.checked, len(seen), sum(v is True for v in seen), sum(v is False for v in seen),
                     "n/a" if ctx["other"] is None else "%.2f" % ctx["other"], cpus,
                     "" if not ck.fails else "; %d FAILED" % len(ck.fails)))
            fails += ck.fails
            total += ck.checked
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in fails:
        print("FAIL", f)
    print("%d figures checked, %d wrong" % (total, len(fails)))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
