#!/usr/bin/env python3
"""Renders our own chat templates (tests/data/chat/*.jinja) on our own
conversations with Jinja2 itself, configured as transformers'
apply_chat_template configures it (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, raise_exception), and compares every output
byte for byte, and every raise_exception message, with the C renderer
(tests/unit/test_chat_template.c). usage: chat_template_ref.py SRC TEST_BIN WORKDIR"""
import json, os, subprocess, sys

try:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError as e:
    print(f"SKIP: jinja2 does not import ({e})"); sys.exit(77)

src, binary, work = sys.argv[1:4]
d = os.path.join(src, "tests/data/chat")
convs = json.load(open(os.path.join(d, "conversations.json"), encoding="utf-8"))
names = sorted(n for n in os.listdir(d) if n.endswith(".jinja"))

def raise_exception(msg):
    raise jinja2.exceptions.TemplateError(msg)

env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
env.globals["raise_exception"] = raise_exception
cases, want = [], []
for name in names:
    text = open(os.path.join(d, name), encoding="utf-8").read()
    tpl = env.from_string(text)
    for conv in convs:
        for gen in (False, True):
            cases.append({"template": text, "messages": conv, "gen": gen,
                          "bos_token": "<s>", "eos_token": "</s>", "name": name})
            try:
                want.append({"out": tpl.render(messages=conv, add_generation_prompt=gen, tools=None,
                                                documents=None, bos_token="<s>", eos_token="</s>")})
            except jinja2.exceptions.TemplateError as e:
                want.append({"error": str(e)})
os.makedirs(work, exist_ok=True)
path = os.path.join(work, "chat_cases.json")
json.dump(cases, open(path, "w", encoding="utf-8"), ensure_ascii=False)
got = [json.loads(l) for l in subprocess.run([binary, path], check=True, capture_output=True).stdout.decode("utf-8").splitlines()]
assert len(got) == len(cases), (len(got), len(cases))
bad = errs = 0
for c, w, g in zip(cases, want, got):
    if "out" in w:
        ok = g.get("out") == w["out"]
    else:
        errs += 1
        ok = "error" in g and ("raise_exception: " + w["error"]) in g["error"]
    if not ok:
        bad += 1
        print(f"MISMATCH {c['name']} gen={c['gen']} msgs={json.dumps(c['messages'], ensure_ascii=False)[:80]}\n  jinja2: {w!r}\n  C:      {g!r}")
print(f"chat_template_ref: {len(names)} templates x {len(convs)} conversations x 2 = {len(cases)} renders, "
      f"{errs} expected raise_exception errors, {bad} mismatches")
sys.exit(1 if bad else 0)
