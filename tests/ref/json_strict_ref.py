#!/usr/bin/python3
"""The strict JSON check (io/json.c) against Python's json.loads.

Generates a corpus of several thousand documents from the repository's own
JSON (run configs, Hugging Face config.json seeds, tokenizer.json seeds,
chat conversations, JSONL records): the documents themselves, every
single-byte deletion of a structural character, insertions of structural
and stray characters, bad escapes, control characters, invalid UTF-8,
number spellings, literals, comments, trailing commas, nesting, duplicate
keys and seeded random mutations. `test_json verdict` judges each with
lt_json_parse and prints cJSON's tree of the accepted ones.

Python's verdict is json.loads on the text decoded as strict UTF-8 (a
decode error is a refusal; RecursionError too). Where the two must agree:
  - Python refuses       -> loratrain refuses;
  - Python accepts       -> loratrain accepts, and cJSON's tree (printed and
                            read back) equals Python's value (numbers as
                            doubles, infinity as null since cJSON prints it so);
except for the deliberate differences (io/json.h), found in Python's
accepted value and refused by loratrain with a message naming them:
duplicate keys, NaN/Infinity, unpaired surrogates, \\u0000 in a string,
nesting deeper than 128. Every refusal must read "doc:LINE:COL: ...
(expected ...)".

Then the check's speed on a tokenizer.json-sized text (a vocabulary of
150,000 keys and as many merges) against cJSON's own parse.

Usage: json_strict_ref.py TEST_JSON REPO_ROOT
"""
import json
import os
import random
import re
import struct
import subprocess
import sys
import tempfile

MAX_DEPTH = 128
STRUCTURAL = b'{}[]:,"'


def seeds(root):
    """(name, bytes) of real JSON documents from the repository."""
    out = []
    for rel in ("tests/fuzz/seeds/config/minimal.json", "tests/fuzz/seeds/config/hf_llama.json",
                "tests/fuzz/seeds/config/hf_mistral.json", "launch/configs/stories260K_shakespeare.json",
                "launch/configs/stories260K_wikisql.json", "tests/fuzz/seeds/tokenizer/gpt2.json",
                "tests/fuzz/seeds/tokenizer/ignore.json", "tests/fuzz/seeds/tokenizer/prefix.json",
                "tests/data/chat/conversations.json"):
        with open(os.path.join(root, rel), "rb") as f:
            data = f.read()
        # a tokenizer fuzz seed's first byte picks the format; the JSON follows
        out.append((rel, data[1:] if "/seeds/tokenizer/" in rel else data))
    for rel in ("data/wikisql/valid.jsonl", "data/wikisql/valid_pc.jsonl"):
        with open(os.path.join(root, rel), "rb") as f:
            lines = [l for l in f.read().split(b"\n") if l.strip()]
        for k, l in enumerate(lines[:3]):
            out.append(("%s:%d" % (rel, k + 1), l))
    # escapes and characters of every kind, written by Python itself
    out.append(("synthetic", json.dumps(
        {"text": "tab\there \"quoted\" back\\slash / caf\u00e9 \u20ac \U0001F600 \u2028 \x7f",
         "ascii": "caf\u00e9 \U0001F600", "n": [0, -0.0, 1.5e-10, 12345678901234567890, 1e300],
         "t": True, "f": False, "z": None, "e": {}, "a": []}, ensure_ascii=False).encode()))
    out.append(("synthetic-ascii", json.dumps({"k\u00e9y": "caf\u00e9 \U0001F600", "\u0001": 1}).encode()))
    return out


def every_record(root):
    """All records of the shipped JSONL files: real data must pass."""
    docs = []
    for rel in ("data/wikisql/valid.jsonl", "data/wikisql/valid_pc.jsonl", "data/wikisql/test.jsonl"):
        with open(os.path.join(root, rel), "rb") as f:
            docs += [l for l in f.read().split(b"\n") if l.strip()]
    return docs


def corpus(root):
    rng = random.Random(20240528)
    docs = []
    add = docs.append
    S = seeds(root)
    small = [s for name, s in S if len(s) <= 700]
    for _, s in S:
        add(s)
    for d in every_record(root):
        add(d)

    # every single-byte deletion of a structural character (all bytes for the smallest)
    for _, s in S:
        for i, b in enumerate(s):
            if b in STRUCTURAL or len(s) <= 120:
                add(s[:i] + s[i + 1:])
    # insertions: structural and stray characters at every structural position of the small
    # seeds, and at random positions
    inserts = [b"{", b"}", b"[", b"]", b":", b",", b'"', b"'", b"/", b"\\", b"0", b"-", b"+", b".",
               b"e", b"#", b"\x00", b"\x01", b"\t", b"\n", b"\x7f", b"\xff", b"\xc3", b" ", b"//",
               b"/**/", b"x", b"1", b"null", b",,"]
    for s in small:
        spots = [i for i, b in enumerate(s) if b in STRUCTURAL] + [0, len(s)]
        for i in spots:
            for ins in rng.sample(inserts, 6):
                add(s[:i] + ins + s[i:])
    for _, s in S:
        for _ in range(60):
            i = rng.randrange(len(s) + 1)
            add(s[:i] + rng.choice(inserts) + s[i:])

    # escapes, in a value and in a key
    escapes = ["\\" + chr(c) for c in range(0x20, 0x7f)]
    escapes += ["\\u", "\\u1", "\\u12", "\\u123", "\\u1234", "\\uZZZZ", "\\u12G4", "\\u00E9", "\\u00e9",
                "\\uD800", "\\uDBFF", "\\uDC00", "\\uDFFF", "\\uD800\\uDC00", "\\uDBFF\\uDFFF",
                "\\ud83d\\ude00", "\\uD800\\u0041", "\\uD800\\uD800", "\\uDC00\\uD800", "\\uD800\\n",
                "\\uD800x", "\\uD800\\uZZZZ", "\\uD800\\u", "\\u0000", "\\u0001", "\\u001f", "\\u007f",
                "\\uFFFF", "\\uFEFF", "\\U00000041", "\\x41", "\\0", "\\", "\\\\\\", "\\u+123",
                "\\u-123", "\\u 123", "\\u00\xe9"]
    for e in escapes:
        eb = e.encode("utf-8")
        add(b'{"text": "bad ' + eb + b' escape and a long tail"}')
        add(b'{"a' + eb + b'": 1}')
        add(b'["' + eb + b'"]')
        add(b'"' + eb + b'"')

    # control characters inside strings, keys and between tokens
    for c in list(range(0x20)) + [0x7f]:
        ch = bytes([c])
        add(b'{"text": "a' + ch + b'b"}')
        add(b'{"k' + ch + b'": 1}')
        add(b'{"a":' + ch + b'1}')
        add(b'[1' + ch + b']')
        add(b'{}' + ch)
        add(ch + b'{}')

    # UTF-8: valid and invalid sequences inside strings, keys and outside
    utf8 = [b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xef\xbf\xbf", b"\xef\xbb\xbf",
            b"\xf4\x8f\xbf\xbf", b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xc2\x80", b"\xdf\xbf",
            b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xc2", b"\xe0\x80\x80", b"\xe0\x9f\xbf",
            b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf",
            b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xfe", b"\xff",
            b"\xc3\x28", b"\xe2\x28\xa1", b"\xe2\x82\x28", b"\xf0\x28\x8c\xbc", b"\xf0\x9f\x98",
            b"\xe2\x82", b"\xc3\xa9\xa9"]
    for u in utf8:
        add(b'{"text": "x' + u + b'y"}')
        add(b'{"text": "x' + u + b'"}')
        add(b'{"' + u + b'": 1}')
        add(b'[1, ' + u + b']')
        add(u + b'{}')
        add(b'{}' + u)

    # numbers, as a value, in an array and alone
    numbers = ["0", "-0", "1", "-1", "01", "-01", "00", "1.0", "1.", "-.5", ".5", "1e5", "1E5", "1e+5",
               "1e-5", "1e", "1e+", "1E-", "1.5e3", "+1", "--1", "-", "0x10", "0X1A", "1_000", "Infinity",
               "-Infinity", "+Infinity", "NaN", "-NaN", "nan", "inf", "1e999", "-1e999", "1e-999",
               "123456789012345678901234567890", "0.1e-400", "1.0e+00", "0e0", "0.0", "-0.0", "2.",
               "3.e2", "4e2.5", "\u0661", "\uff11", "1 2", "1.2.3", "0.", "00.1", "1e1e1", "-0.0e-0",
               "1" * 400, "0." + "1" * 400, "9" * 4000, "1E400", "-", "-a", "0-1", "1-", "1e5.0",
               "0e", "0e+1", "0.e1", "1.5E+", "0b1", "1f", "1d", "1L", "0777", "-00", "1.0.",
               "\u2212" + "1", "1\u00a0", "12345678901234567", "9007199254740993", "-9223372036854775809",
               "18446744073709551616", "5e-324", "2.2250738585072014e-308", "1.7976931348623157e308",
               "1.7976931348623159e308", "4.9406564584124654e-324", "0.30000000000000004"]
    for t in numbers:
        tb = t.encode("utf-8")
        add(b'{"x": ' + tb + b'}')
        add(b'[' + tb + b']')
        add(tb)
        add(b'[' + tb + b', 1]')

    # literals
    for w in ["true", "false", "null", "True", "False", "None", "nul", "nulll", "tru", "truefalse",
              "null null", "NULL", "t", "f", "n", "undefined", "'a'", "\"a\"", "a", "[]", "{}", "[[]]",
              "truex", "true1", "true,", "nullnull"]:
        wb = w.encode()
        add(b'{"x": ' + wb + b'}')
        add(b'[' + wb + b']')
        add(wb)

    # structure: trailing and stray commas, comments, quotes, missing delimiters, whitespace
    structure = [
        '{"a": 1,}', '{"a": 1, }', '[1,]', '[1, ]', '[1,\n]', '{"a": [1, 2,], "b": 3}', '[,1]', '[1,,2]',
        '{,"a": 1}', '{"a": 1,, "b": 2}', '{"a" 1}', '{"a": 1 "b": 2}', '{"a":: 1}', '{a: 1}',
        "{'a': 1}", "{\"a\": 'b'}", '{"a": 1} // c', '// c\n{"a": 1}', '{"a": /* c */ 1}',
        '{"a": 1} /* c */', '# c\n{}', '{"a": 1}#', '{}', '[]', ' {} ', '\n\t\r{}\r\n\t', '',
        ' ', '\n', '{', '}', '[', ']', '{"a"', '{"a":', '{"a": 1', '[1', '["a', '"a', '"', ':', ',',
        '{}}', '[]]', '{]', '[}', '{"a": [}', '{"a": {]}', '{} {}', '[] []', '{}x', '1 2', '"a" "b"',
        '{"a": 1}\n{"b": 2}', '\x0b{}', '\x0c{}', '{}\x0b', '\u00a0{}', '{}\u00a0', '\u2028{}',
        '\ufeff{}', '{"a":\u00a01}', '{"a"\t:\n1\r}', '{ "a" : [ 1 , { "b" : null } ] }',
        '{"":""}', '{"": 1, "": 2}', '[""]', '[{}]', '[[[]]]', '{"a":{"b":{"c":{}}}}',
        '{"a": 1}\x00', '\x00', '{"a": "\x00"}', '{"\\"": 1, "\\"": 2}', '{"a\\/b": 1, "a/b": 2}',
        '{"a": 1, "b": {"a": 2}}', '{"a": 1, "A": 2}', '{"a": 1, "a ": 2}', '{"a": 1, "\\u0061": 2}',
        '{"\u00e9": 1, "\\u00e9": 2}', '{"\U0001F600": 1, "\\ud83d\\ude00": 2}', '{"a": 1, "a": 1}',
        '[{"a": 1}, {"a": 1}]', '{"a": {"b": 1, "b": 2}}', '{"x": [{"k": 1, "k": 2}]}',
    ]
    for t in structure:
        add(t.encode("utf-8"))
    # a duplicate of each seed's first key, added at its end
    for _, s in S:
        try:
            v = json.loads(s)
        except ValueError:
            continue
        if isinstance(v, dict) and v:
            k = next(iter(v))
            cut = s.rstrip().rindex(b"}")
            add(s[:cut] + b', ' + json.dumps(k).encode() + b': 0' + s[cut:])

    # nesting around the limit and far past it
    for d in (1, 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 200, 900, 5000):
        add(b"[" * d + b"]" * d)
        add(b'{"a":' * d + b"1" + b"}" * d)
        add(b'{"a":[' * (d // 2) + b"1" + b"]}" * (d // 2))
        add(b"[" * d + b"]" * (d - 1))

    # seeded random mutations of the seeds
    alphabet = list(b'{}[]:,"\\ \n\t0123456789-+.eEtrufalsn/\'#') + [0, 1, 0x7f, 0x80, 0xc3, 0xe2, 0xff]
    for _ in range(2500):
        s = bytearray(rng.choice(S)[1])
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            op = rng.randrange(5)
            i = rng.randrange(len(s) + 1)
            if op == 0 and i < len(s):
                s[i] = rng.choice(alphabet)
            elif op == 1:
                s[i:i] = bytes([rng.choice(alphabet)])
            elif op == 2 and i < len(s):
                del s[i:i + rng.randrange(1, 4)]
            elif op == 3 and i < len(s):
                j = min(len(s), i + rng.randrange(1, 12))
                s[i:i] = s[i:j]
            else:
                s = s[:i]
        add(bytes(s))
    return docs


def py_verdict(doc):
    """(accepted, value, reasons): reasons are the deliberate differences
    found in a value Python accepted."""
    try:
        text = doc.decode("utf-8")
    except UnicodeDecodeError:
        return False, None, []
    dup = []
    const = []

    def pairs(ps):
        keys = [k for k, _ in ps]
        if len(set(keys)) != len(keys):
            dup.append(1)
        return dict(ps)

    def constant(name):
        const.append(name)
        return float(name)

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError):
        return False, None, []
    reasons = []
    if dup:
        reasons.append("duplicate key")
    if const:
        reasons += ["NaN", "Infinity"]
    lone = nul = False
    depth = 0
    stack = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            depth = max(depth, d + 1)
            items = list(v.items()) if isinstance(v, dict) else [(None, x) for x in v]
            for k, x in items:
                for t in (k, x):
                    if isinstance(t, str):
                        lone |= any(0xD800 <= ord(ch) <= 0xDFFF for ch in t)
                        nul |= "\x00" in t
                stack.append((x, d + 1))
        elif isinstance(v, str):
            lone |= any(0xD800 <= ord(ch) <= 0xDFFF for ch in v)
            nul |= "\x00" in v
    if lone:
        reasons.append("unpaired UTF-16 surrogate")
    if nul:
        reasons.append('escape "\\u0000"')
    if depth > MAX_DEPTH:
        reasons.append("nesting deeper than")
    return True, value, reasons


def normal(v):
    """Numbers as doubles (cJSON's), infinities as null (cJSON prints them so)."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        try:
            f = float(v)
        except OverflowError:  # an integer past the doubles: strtod gives infinity
            return None
        return None if f in (float("inf"), float("-inf")) else f
    if isinstance(v, list):
        return [normal(x) for x in v]
    return {k: normal(x) for k, x in v.items()}


def big_tokenizer(path):
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz\u0120\u010a\u00e9\u00fc\u4e2d\u0416"
    vocab, seen = {}, set()
    while len(vocab) < 150000:
        w = "".join(rng.choice(letters) for _ in range(rng.randrange(2, 12)))
        if w not in seen:
            seen.add(w)
            vocab[w] = len(vocab)
    words = list(vocab)
    merges = [words[rng.randrange(len(words))] + " " + words[rng.randrange(len(words))]
              for _ in range(150000)]
    tok = {"version": "1.0", "added_tokens": [{"id": 0, "content": "<|endoftext|>", "special": True}],
           "model": {"type": "BPE", "vocab": vocab, "merges": merges}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=2)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    tool, root = sys.argv[1], sys.argv[2]
    docs = corpus(root)
    fails = []
    with tempfile.TemporaryDirectory() as tmp:
        cpath, vpath = os.path.join(tmp, "corpus.bin"), os.path.join(tmp, "verdicts.txt")
        with open(cpath, "wb") as f:
            for d in docs:
                f.write(struct.pack("<I", len(d)) + d)
        r = subprocess.run([tool, "verdict", cpath, vpath])
        if r.returncode != 0:
            sys.exit("FAIL test_json verdict exited with %d" % r.returncode)
        with open(vpath, "rb") as f:
            lines = f.read().split(b"\n")[:-1]
        if len(lines) != len(docs):
            sys.exit("FAIL %d verdicts for %d documents" % (len(lines), len(docs)))
        msg_re = re.compile(r"^doc:\d+:\d+: .+ \(expected .+\)$", re.S)
        counts = {"both accept": 0, "both refuse": 0, "deliberate": 0}
        by_reason = {}
        for k, (doc, line) in enumerate(zip(docs, lines)):
            ours_ok = line[:2] == b"1\t"
            rest = line[2:].decode("utf-8", "replace")
            py_ok, value, reasons = py_verdict(doc)
            want_ok = py_ok and not reasons
            shown = repr(doc if len(doc) < 120 else doc[:100] + b"...")
            if ours_ok != want_ok:
                fails.append("document %d %s: loratrain %s, expected %s (Python %s%s)%s" % (
                    k, shown, "accepts" if ours_ok else "refuses", "accept" if want_ok else "refuse",
                    "accepts" if py_ok else "refuses", ", deliberately refused: " + ", ".join(reasons)
                    if reasons else "", "" if ours_ok else ": " + rest))
                continue
            if ours_ok:
                counts["both accept"] += 1
                ours = json.loads(rest)
                if normal(ours) != normal(value):
                    fails.append("document %d %s: cJSON's tree %s differs from Python's %r" % (
                        k, shown, rest[:200], value))
                continue
            if not msg_re.match(rest):
                fails.append("document %d %s: message not \"doc:LINE:COL: ... (expected ...)\": %s"
                             % (k, shown, rest))
            if py_ok:
                counts["deliberate"] += 1
                if not any(r in rest for r in reasons):
                    fails.append("document %d %s: refused as \"%s\", expected a message naming %s" % (
                        k, shown, rest, " or ".join(reasons)))
                for r in reasons:
                    if r in rest:
                        by_reason[r] = by_reason.get(r, 0) + 1
            else:
                counts["both refuse"] += 1
        print("%d documents: %d accepted by both (trees equal), %d refused by both, %d refused by "
              "loratrain alone as documented (%s)" % (
                  len(docs), counts["both accept"], counts["both refuse"], counts["deliberate"],
                  ", ".join("%s: %d" % kv for kv in sorted(by_reason.items()))))
        for reason in ("duplicate key", "NaN", "unpaired UTF-16 surrogate", 'escape "\\u0000"',
                       "nesting deeper than"):
            if not by_reason.get(reason):
                fails.append("no document exercised the deliberate difference \"%s\"" % reason)
        if counts["both accept"] < 1000 or counts["both refuse"] < 2000:
            fails.append("corpus too small: %s" % counts)

        big = os.path.join(tmp, "tokenizer.json")
        big_tokenizer(big)
        r = subprocess.run([tool, "speed", big])
        if r.returncode != 0:
            fails.append("test_json speed failed")
    for f in fails[:40]:
        print("FAIL " + f)
    if fails:
        print("%d failures" % len(fails))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
