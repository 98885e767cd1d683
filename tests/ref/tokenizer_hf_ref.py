#!/usr/bin/python3
"""Reference tokenizers trained from the bundled corpora at test time (no hub
is reachable), and their ids for every record, for tests/unit/test_tokenizer_ref.c.

  spm  SentencePiece (Debian's python3-sentencepiece): BPE 512 and 2000
       with byte_fallback, identity normalizer, one with
       remove_extra_whitespaces on and one off; a Unigram model (1000).
  hf   Hugging Face tokenizers (PyPI, in build/venv-tok): byte-level BPE,
       GPT-2 style (ByteLevel pre-tokenizer; also saved with merges in the
       legacy "a b" form, and a variant with add_prefix_space), and Llama 3
       style (Split with Llama 3's regex, ByteLevel, ignore_merges, BOS from
       a TemplateProcessing post-processor).

Writes OUT/records.txt (one record per line; "\\n", "\\r" and "\\\\" escaped)
and for each tokenizer NAME: OUT/NAME.<json|model>, OUT/NAME.ids (ids per
record, no BOS/EOS), OUT/NAME.decoded (the reference's decode of those ids,
escaped like the records) and OUT/NAME.bos (the BOS id it adds, or -1).
Exits 77 (CTest's skip) when the reference library does not import.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# Qwen2's tokenizer.json: Llama 3's split, but digits one at a time.
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
            r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def escape(s):
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def lines_of(path):
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def corpus_records(src):
    from tokenizer_ref import EXTRA_RECORDS
    recs = list(EXTRA_RECORDS)
    # Added/special tokens inside text are cut out before pre-tokenization.
    recs += ["Hello<|endoftext|>world", "a <|end_of_text|> b <|begin_of_text|>",
             "<|begin_of_text|>x<|end_of_text|>", "<|endoftext|><|endoftext|>",
             "<|end_of_text", "x <|endoftext|>\n\ny", " <|endoftext|> "]
    shakespeare = os.path.join(src, "data/tinyshakespeare/input.txt")
    stories = os.path.join(src, "data/tinystories/tinystories_v2_sample.txt")
    recs += lines_of(stories) + lines_of(shakespeare)
    wdir = os.path.join(src, "data/wikisql")
    for name in sorted(os.listdir(wdir)):
        if name.endswith(".jsonl"):
            for line in lines_of(os.path.join(wdir, name)):
                for v in json.loads(line).values():
                    if isinstance(v, str):
                        recs.append(v)
    for path in (stories, shakespeare):
        with open(path, "rb") as f:
            recs.append(f.read().decode("utf-8"))
    return recs, lines_of(shakespeare) + lines_of(stories)


def write_refs(out, name, records, encode, decode, bos):
    with open(os.path.join(out, name + ".ids"), "w") as fi, \
            open(os.path.join(out, name + ".decoded"), "wb") as fd:
        for r in records:
            ids = encode(r)
            fi.write(" ".join(map(str, ids)) + "\n")
            fd.write(escape(decode(ids)).encode("utf-8") + b"\n")
    with open(os.path.join(out, name + ".bos"), "w") as f:
        f.write(f"{bos}\n")


def run_spm(out, records, train_lines, wiki_lines):
    try:
        import sentencepiece as spm
    except ImportError as e:
        print(f"tokenizer_hf_ref: sentencepiece does not import ({e}); install "
              "python3-sentencepiece (launch/install_deps.sh)")
        sys.exit(77)
    print(f"sentencepiece {spm.__version__}")
    specs = [
        ("spm_bpe512", dict(model_type="bpe", vocab_size=512, remove_extra_whitespaces=True),
         train_lines),
        ("spm_bpe2000", dict(model_type="bpe", vocab_size=2000, remove_extra_whitespaces=False),
         train_lines + wiki_lines),
        ("spm_unigram", dict(model_type="unigram", vocab_size=1000), train_lines),
    ]
    for name, kw, lines in specs:
        prefix = os.path.join(out, name)
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_prefix=prefix, byte_fallback=True,
            normalization_rule_name="identity", character_coverage=1.0,
            num_threads=2, minloglevel=2, **kw)
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
        write_refs(out, name, records, sp.encode, sp.decode, sp.bos_id())
        print(f"{name}: {sp.get_piece_size()} pieces")


def run_hf(out, records, train_lines):
    try:
        import tokenizers
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, \
            trainers
    except ImportError as e:
        print(f"tokenizer_hf_ref: Hugging Face tokenizers does not import ({e}); "
              "tests/ref/tokenizer_hf.sh installs it into build/venv-tok from PyPI")
        sys.exit(77)
    print(f"tokenizers {tokenizers.__version__}")

    def train(pre, specials, vocab, ignore_merges=False):
        tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
        tok.pre_tokenizer = pre
        tok.decoder = decoders.ByteLevel()
        tr = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials, show_progress=False,
                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(train_lines, tr)
        return tok

    def save(name, tok, bos):
        path = os.path.join(out, name + ".json")
        tok.save(path)
        tok = Tokenizer.from_file(path)
        write_refs(out, name, records, lambda r: tok.encode(r, add_special_tokens=False).ids,
                   lambda ids: tok.decode(ids, skip_special_tokens=True), bos)
        print(f"{name}: {tok.get_vocab_size()} tokens")
        return path

    gpt2 = train(pre_tokenizers.ByteLevel(add_prefix_space=False), ["<|endoftext|>"], 2000)
    path = save("hf_gpt2", gpt2, -1)
    # The same tokenizer with merges in the legacy "a b" string form.
    with open(path) as f:
        j = json.load(f)
    j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    legacy = Tokenizer.from_str(json.dumps(j))
    save("hf_gpt2_legacy", legacy, -1)
    pfx = Tokenizer.from_str(json.dumps(j))
    pfx.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    save("hf_gpt2_prefix", pfx, -1)

    llama3 = train(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
        ["<|begin_of_text|>", "<|end_of_text|>"], 3000, ignore_merges=True)
    bos = llama3.token_to_id("<|begin_of_text|>")
    llama3.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)])
    save("hf_llama3", llama3, bos)

    # Qwen2's split (digits one at a time) on Llama 3's vocabulary plus a
    # merge for every pair of digits: the corpus is too short of numbers
    # for training to learn any, and without them a reader that grouped
    # digits as Llama 3 does would give the same ids.
    qwen2 = Tokenizer.from_str(llama3.to_str())
    qwen2.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    qwen2.post_processor = None
    j = json.loads(qwen2.to_str())
    j["model"]["ignore_merges"] = False
    vocab, merges = j["model"]["vocab"], j["model"]["merges"]
    as_list = bool(merges) and isinstance(merges[0], list)
    next_id = 1 + max(list(vocab.values()) + [t["id"] for t in j["added_tokens"]])
    for a in "0123456789":
        for b in "0123456789":
            if a + b not in vocab:
                vocab[a + b] = next_id
                next_id += 1
                merges.append([a, b] if as_list else a + " " + b)
    save("hf_qwen2", Tokenizer.from_str(json.dumps(j)), -1)
    # the same vocabulary split as Llama 3 does: its digit pairs must show
    llama3_digits = Tokenizer.from_str(json.dumps(j))
    llama3_digits.pre_tokenizer = llama3.pre_tokenizer
    save("hf_llama3_digits", llama3_digits, -1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["spm", "hf"])
    ap.add_argument("--src", required=True, help="repository root (data/ lives there)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    records, train_lines = corpus_records(a.src)
    with open(os.path.join(a.out, "records.txt"), "wb") as f:
        for r in records:
            f.write(escape(r).encode("utf-8") + b"\n")
    if a.mode == "spm":
        wiki = [r for r in records if r.startswith("table:")]
        run_spm(a.out, records, train_lines, wiki)
    else:
        run_hf(a.out, records, train_lines)
    print(f"tokenizer_hf_ref: {len(records)} records")


if __name__ == "__main__":
    main()
