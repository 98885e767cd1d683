#!/bin/bash
# `loratrain plan`'s command line, without training:
#   - the table's first line states the batch and sequence length the
#     prediction assumed, and whether each was given or defaulted (batch:
#     the default; seq: the model's seq_len, read here from the llama2.c
#     header itself); the JSON without --batch/--seq is the JSON with the
#     stated figures given, so the line names what was used;
#   - a name that is neither a preset nor an existing path (a misspelled
#     preset) exits 2 with one line on stderr listing the presets, the same
#     list `plan --help` gives, and every name listed is a preset plan
#     accepts;
#   - --model still takes a llama2.c file and a Hugging Face model
#     directory (the bundled model converted by `loratrain convert`: the
#     same prediction as from the file), and --help says so.
# Usage: plan_cli.sh LORATRAIN REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root -- "$@"
model=$root/models/stories260K/stories260K.bin
"$bin" convert --model "$model" --output_dir "$tmp/hf" --dtype f32 >"$tmp/convert.log" 2>&1 ||
  { echo "FAIL convert the bundled model to a Hugging Face directory:"; cat "$tmp/convert.log"; exit 1; }
mkdir "$tmp/empty_dir"
/usr/bin/python3 - "$bin" "$model" "$tmp" <<'PY'
import json, re, struct, subprocess, sys
bin, model, tmp = sys.argv[1:4]
fail = []

def plan(*a):
    p = subprocess.run([bin, "plan"] + list(a), capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr

def ok(*a):
    rc, out, err = plan(*a)
    if rc != 0:
        fail.append("plan %s: exit %d: %s" % (" ".join(a), rc, err.strip()))
    return out

# The assumed shape, stated on the first line and used.
SHAPE = r"batch (\d+) x (\d+) tokens per rank \(--batch (as given|not given: the default); " \
        r"--seq (as given|not given: the model's seq_len)\)"
seq_len = struct.unpack_from("<7i", open(model, "rb").read(28))[6]
for m_, label in (("llama-2-7b", "preset"), (model, "llama2.c file")):
    for mode in ("qlora", "full"):
        first = ok("--model", m_, "--mode", mode).split("\n")[0]
        s = re.search(SHAPE, first)
        if not s:
            fail.append("%s %s: the first line states no batch x seq: %s" % (label, mode, first))
            continue
        b, t = int(s.group(1)), int(s.group(2))
        if "not given" not in s.group(3) or "not given" not in s.group(4):
            fail.append("%s %s: the first line does not say batch and seq were defaults: %s" % (label, mode, first))
        if label == "llama2.c file" and t != seq_len:
            fail.append("%s %s: states seq %d, the header's seq_len is %d" % (label, mode, t, seq_len))
        implicit = json.loads(ok("--model", m_, "--mode", mode, "--json"))
        explicit = json.loads(ok("--model", m_, "--mode", mode, "--batch", str(b), "--seq", str(t), "--json"))
        if implicit != explicit or (implicit["batch"], implicit["seq"]) != (b, t):
            fail.append("%s %s: the first line states batch %d x %d, but the prediction used batch %d x %d "
                        "(total %d bytes; with the stated figures given %d)"
                        % (label, mode, b, t, implicit["batch"], implicit["seq"], implicit["total_bytes"],
                           explicit["total_bytes"]))
        print("%s %s: %s" % (label, mode, s.group(0)))
given = ok("--model", "llama-2-7b", "--mode", "lora", "--batch", "2", "--seq", "512").split("\n")[0]
if "batch 2 x 512 tokens per rank (--batch as given; --seq as given)" not in given:
    fail.append("given --batch 2 --seq 512, the first line says: %s" % given)

# A misspelled preset, or a path that is not there.
rc, help_, _ = plan("--help")
hm = re.search(r"--model PRESET\|FILE\|DIR.*?:\s*\n\s+([a-z0-9.-]+(?:, [a-z0-9.-]+)+)\n(.*?)\n  --mode", help_, re.S)
if rc != 0 or not hm:
    fail.append("plan --help (exit %d) lists no presets under --model:\n%s" % (rc, help_))
    help_names = []
else:
    help_names = hm.group(1).split(", ")
    if "llama2.c checkpoint file" not in hm.group(2) or "Hugging Face model directory" not in hm.group(2):
        fail.append("plan --help does not say --model takes a llama2.c file and a Hugging Face directory:\n%s"
                    % hm.group(0))
for bad in ("llama-2-7x", tmp + "/no_such_dir/model.bin"):
    rc, out, err = plan("--model", bad, "--mode", "qlora")
    lines = err.strip().split("\n")
    lm = re.search(r"expected a preset \(([^)]*)\)", err)
    names = lm.group(1).split(", ") if lm else []
    if rc != 2 or out or len(lines) != 1 or bad not in err or not names:
        fail.append("--model %s: exit %d, %d stderr line(s), stdout %r, expected exit 2 and one line naming it "
                    "and the presets: %s" % (bad, rc, len(lines), out[:80], err.strip()))
    elif names != help_names:
        fail.append("--model %s lists presets %s, --help lists %s" % (bad, names, help_names))
    elif "llama2.c" not in err or "Hugging Face" not in err:
        fail.append("--model %s: the message does not say files and directories are taken: %s" % (bad, err.strip()))
    else:
        print("--model %s: %s" % (bad, err.strip()))
for n in help_names:
    p = json.loads(ok("--model", n, "--json") or "{}")
    if p.get("model") != n or not p.get("base_params"):
        fail.append("the listed preset %s is not accepted: %s" % (n, p))

# Files and directories still taken; a directory without config.json refused.
from_file = json.loads(ok("--model", model, "--mode", "qlora", "--json"))
from_dir = json.loads(ok("--model", tmp + "/hf", "--mode", "qlora", "--json"))
from_file.pop("model"), from_dir.pop("model")
if from_file != from_dir:
    fail.append("the Hugging Face directory of the same model predicts %s, the file %s" % (from_dir, from_file))
rc, out, err = plan("--model", tmp + "/empty_dir")
if rc == 0 or "config.json" not in err:
    fail.append("a directory without config.json: exit %d, %s" % (rc, err.strip()))
print("%d presets listed and accepted; the converted directory predicts the file's %d bytes"
      % (len(help_names), from_dir.get("total_bytes", 0)))
for f in fail:
    print("FAIL", f)
sys.exit(1 if fail else 0)
PY
