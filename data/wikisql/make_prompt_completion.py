#!/usr/bin/python3
"""Splits the WikiSQL {"text": ...} records into {"prompt", "completion"} pairs.

    data/wikisql/make_prompt_completion.py [DIR]      (DIR defaults to this script's folder)

reads DIR/{train,valid,test}.jsonl and writes DIR/{train,valid,test}_pc.jsonl.
The prompt is everything up to and including "\\nA:" (table, columns and
question), the completion the SQL after it (it starts with a space), so
prompt + completion == text and a trainer can take the loss on the SQL only.

Deterministic: records keep their order, keys are written prompt first, and
json.dumps' defaults (ASCII with \\u escapes, ", " and ": " separators) are
the ones the shipped files were written with, which is checked on every line.
Standard library only.
"""
import json
import os
import sys

SEPARATOR = "\nA:"
SPLITS = ("train", "valid", "test")


def convert(src, dst):
    with open(src, "r", encoding="utf-8", newline="") as f:
        data = f.read()
    if not data.endswith("\n"):
        raise SystemExit(f"{src}: expected the file to end with a newline")
    out = []
    for lineno, line in enumerate(data[:-1].split("\n"), 1):
        rec = json.loads(line)
        if not isinstance(rec, dict) or set(rec) != {"text"} or not isinstance(rec["text"], str):
            raise SystemExit(f'{src} line {lineno}: expected an object with one string field "text"')
        if json.dumps(rec) != line:
            raise SystemExit(f"{src} line {lineno}: not in json.dumps' default form; "
                             "the output would not match the input's style")
        text = rec["text"]
        count = text.count(SEPARATOR)
        if count != 1:
            raise SystemExit(f'{src} line {lineno}: "\\nA:" occurs {count} times, expected exactly once')
        cut = text.index(SEPARATOR) + len(SEPARATOR)
        prompt, completion = text[:cut], text[cut:]
        if not completion.startswith(" ") or not completion.strip():
            raise SystemExit(f"{src} line {lineno}: expected a completion starting with a space, "
                             f"got {completion!r}")
        assert prompt + completion == text
        out.append(json.dumps({"prompt": prompt, "completion": completion}))
    # Written whole under a temporary name, then renamed: a half file never
    # appears under the final name.
    tmp = dst + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(out) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, dst)
    return len(out)


def main():
    here = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for split in SPLITS:
        src = os.path.join(here, split + ".jsonl")
        dst = os.path.join(here, split + "_pc.jsonl")
        n = convert(src, dst)
        print(f"{dst}: {n} records")


if __name__ == "__main__":
    main()
