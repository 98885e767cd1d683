#!/usr/bin/python3
"""Reference token ids for tests/unit/test_tokenizer.c, from SentencePiece itself.

Encodes a set of text records with the SentencePiece model the llama2.c
tokenizer was exported from (models/stories260K/tok512.model) and writes:

  RECORDS  one record per line; inside a record "\\n" stands for a newline
           and "\\\\" for a backslash (records may be whole files)
  IDS      one line per record: "<ids A> | <ids B>", space-separated, where
           A = SentencePiece with the model's remove_extra_whitespaces switched
               off: the same pieces, scores and merge rule, and exactly what
               llama2.c run.c computes (it never touches whitespace);
           B = the model as shipped (remove_extra_whitespaces = true, the
               SentencePiece default that llama2.c's train_vocab kept), which
               strips leading/trailing ' ' and collapses runs of ' ' first.
The C test checks encode(record) == A and encode(collapse(record)) == B.

This script itself checks that A and B differ only where the record has
leading, trailing or repeated spaces, so that difference is fully explained.

Run with Debian's python3-sentencepiece:
  /usr/bin/python3 tests/ref/tokenizer_ref.py --model models/stories260K/tok512.model \\
      --lines data/tinystories/tinystories_v2_sample.txt \\
      --lines data/tinyshakespeare/input.txt \\
      --whole data/tinyshakespeare/input.txt \\
      --out-records build/tokenizer_records.txt --out-ids build/tokenizer_ref_ids.txt
"""

import argparse
import re
import sys

import sentencepiece as spm

# Multi-byte UTF-8, characters outside the 512-piece vocabulary (byte
# fallback), whitespace corner cases, pieces that spell control or byte
# tokens, and runs of one letter (merge ties resolved leftmost).
EXTRA_RECORDS = [
    "",
    " ",
    "   ",
    "a",
    "Hello, world!",
    "Once upon a time, there was a little girl named Lily.",
    "naïve café — “quoted” ‘single’ … señor ñandú",
    "emoji 😀🎉 and family 👨‍👩‍👧 and flag 🇫🇷",
    "日本語のテキスト, 中文, Привет мир, γειά σου, עברית, العربية",
    "e\u0301 combining, \u00a0non-breaking\u00a0space, zero\u200bwidth, hair\u200aspace",
    "tabs\tand\ttabs, \x01 control \x7f bytes, NUL \x00 inside",
    "  leading spaces",
    "trailing spaces   ",
    "double  spaces   and    more",
    "multi\nline\n\ntext\n",
    "\n starts with a newline",
    "digits 0123456789 3.14159 2024-01-01 $100 50%",
    "<0x41> <s> </s> <unk> <0xZZ> <0x",
    "aaaa bbbb llll ssss eeee oooo mmmmm zzzz",
    "zllla zooom zppp Whooo Sooo Ooo oooh zlll",
    "Lily and Lily and Lily said hello hello hello",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐛𝐨𝐥𝐝 ∑∫√ ™ € £ ¥",
]


def _varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def _put_varint(v):
    out = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        if v:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def _fields(b):
    """Top-level protobuf fields as (number, wire type, raw encoded bytes)."""
    i, out = 0, []
    while i < len(b):
        start = i
        key, i = _varint(b, i)
        wt = key & 7
        if wt == 0:
            _, i = _varint(b, i)
        elif wt == 1:
            i += 8
        elif wt == 2:
            n, i = _varint(b, i)
            i += n
        elif wt == 5:
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        out.append((key >> 3, wt, b[start:i]))
    if i != len(b):
        raise ValueError("protobuf message overruns its buffer")
    return out


def _payload(raw):
    """The value bytes of a length-delimited field."""
    _, i = _varint(raw, 0)
    n, i = _varint(raw, i)
    return raw[i:i + n]


def without_whitespace_removal(model_bytes):
    """The model with NormalizerSpec.remove_extra_whitespaces (field 4 of
    ModelProto.normalizer_spec, field 3) set to false; nothing else changes.
    Hand-rolled because Debian's python3-sentencepiece does not pull in
    protobuf."""
    out, found = bytearray(), 0
    for num, wt, raw in _fields(model_bytes):
        if num == 3 and wt == 2:
            found += 1
            spec = bytearray()
            for n2, wt2, raw2 in _fields(_payload(raw)):
                if n2 != 4:
                    spec += raw2
            spec += bytes([4 << 3 | 0, 0])
            out += bytes([3 << 3 | 2]) + _put_varint(len(spec)) + spec
        else:
            out += raw
    if found != 1:
        raise ValueError(f"expected one normalizer_spec in the model, found {found}")
    return bytes(out)


def collapse_spaces(s):
    """What remove_extra_whitespaces does under the identity normalizer:
    only ' ' counts as whitespace (tabs and newlines are kept)."""
    return re.sub(" +", " ", s).strip(" ")


def escape(s):
    return s.replace("\\", "\\\\").replace("\n", "\\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="SentencePiece .model file")
    ap.add_argument("--lines", action="append", default=[],
                    help="text file whose lines are records (FILE or FILE:MAXLINES)")
    ap.add_argument("--whole", action="append", default=[],
                    help="text file that is one record as a whole")
    ap.add_argument("--out-records", required=True)
    ap.add_argument("--out-ids", required=True)
    a = ap.parse_args()

    model = open(a.model, "rb").read()
    stock = spm.SentencePieceProcessor(model_proto=model)
    literal = spm.SentencePieceProcessor(model_proto=without_whitespace_removal(model))
    # The patch must have taken effect, or A would silently equal B.
    if literal.encode("a  b") == stock.encode("a  b"):
        sys.exit("tokenizer_ref: switching off remove_extra_whitespaces had no effect")

    records = list(EXTRA_RECORDS)
    for spec in a.lines:
        path, _, limit = spec.partition(":")
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the file's final newline ends a line, it does not start one
        records += lines[:int(limit)] if limit else lines
    for path in a.whole:
        with open(path, "rb") as f:
            records.append(f.read().decode("utf-8"))

    differ = 0
    with open(a.out_records, "wb") as fr, open(a.out_ids, "w") as fi:
        for k, r in enumerate(records):
            ids_a = literal.encode(r)
            ids_b = stock.encode(r)
            if ids_a != ids_b:
                differ += 1
                if collapse_spaces(r) == r:
                    sys.exit(f"tokenizer_ref: record {k} {r[:60]!r}: shipped and whitespace-"
                             "preserving models differ on text without extra spaces")
                if literal.encode(collapse_spaces(r)) != ids_b:
                    sys.exit(f"tokenizer_ref: record {k} {r[:60]!r}: collapsing spaces does not "
                             "explain the shipped model's ids")
            fr.write(escape(r).encode("utf-8") + b"\n")
            fi.write(" ".join(map(str, ids_a)) + " | " + " ".join(map(str, ids_b)) + "\n")
    print(f"tokenizer_ref: {len(records)} records; {differ} encode differently with the shipped "
          "model (leading, trailing or repeated spaces), explained by collapsing spaces")


if __name__ == "__main__":
    main()
