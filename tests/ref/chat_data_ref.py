#!/usr/bin/python3
"""Conversational training data against transformers' apply_chat_template.

  chat_data_ref.py make SRC OUT   writes OUT/tok/tokenizer.json (a byte-level
      BPE of 500 entries trained here on the bundled corpora, with ChatML
      and Llama 3 special tokens), OUT/tok/tokenizer_config.json (a ChatML
      chat_template, bos/eos tokens), OUT/llama3.jinja, OUT/chat.jsonl
      (conversations built from the bundled WikiSQL questions and
      tests/data/chat/conversations.json) and, for each template and loss
      mode, OUT/<template>-<all|assistant>.rows: the rows loratrain's data
      loader must produce for T = 1024, unpacked; and the same for the
      bundled SentencePiece tok512.model with tests/data/chat/llama2.jinja
      (OUT/chat_spm.jsonl, OUT/llama2-*.rows; see spm()).

The rows come from transformers itself: PreTrainedTokenizerFast's
apply_chat_template(tokenize=True, return_assistant_tokens_mask=True). Both
templates wrap each assistant turn's content and end-of-turn token in
{% generation %}, so transformers' mask marks what the template calls
assistant output, located by a method (character offsets of the marked
spans) that has nothing in common with loratrain's (prefix renders).
Row i: inputs = ids[0, n - 1), targets[j] = ids[j + 1] where the loss is
taken, else -100 (every token but the first, or assistant tokens only),
both padded to T with 0 / -100.
"""
import json
import os
import random
import sys

T = 1024
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>",
            "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

CHATML = (
    "{%- for message in messages %}\n"
    "{%- if message['role'] == 'assistant' %}\n"
    "{{- '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>\\n' }}"
    "{% endgeneration %}\n"
    "{%- else %}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}\n"
    "{%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}\n")

LLAMA3 = (
    "{{- bos_token }}\n"
    "{%- for message in messages %}\n"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}\n"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] | trim + '<|eot_id|>' }}{% endgeneration %}\n"
    "{%- else %}{{- message['content'] | trim + '<|eot_id|>' }}\n"
    "{%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}\n")


def conversations(src):
    with open(os.path.join(src, "data/wikisql/train.jsonl"), encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    qa = []
    for t in texts[:120]:
        q, _, a = t.rpartition("\nA: ")
        qa.append((q, a))
    r = random.Random(3)
    convs = []
    i = 0
    while i < len(qa):
        turns = r.choice((1, 1, 2, 3))
        msgs = []
        if r.random() < 0.5:
            msgs.append({"role": "system", "content": "Answer with one SQL query."})
        for q, a in qa[i:i + turns]:
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        i += turns
        convs.append(msgs)
    # Those with an assistant turn: one without is an error in
    # assistant_only_loss mode (test_chat_data errors checks it).
    with open(os.path.join(src, "tests/data/chat/conversations.json"), encoding="utf-8") as f:
        convs += [c for c in json.load(f) if any(m["role"] == "assistant" for m in c)]
    return texts, convs


def train_tokenizer(texts, path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=500, special_tokens=SPECIALS, show_progress=False,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, tr)
    tok.save(path)


def rows(ids, mask, assistant_only):
    n = len(ids)
    if n > T + 1:
        raise SystemExit(f"chat_data_ref: a conversation of {n} tokens is longer than T + 1 = {T + 1}")
    inputs = ids[:-1] + [0] * (T - (n - 1))
    targets = [ids[j + 1] if (mask[j + 1] if assistant_only else 1) else -100 for j in range(n - 1)]
    targets += [-100] * (T - (n - 1))
    return "inputs: " + " ".join(map(str, inputs)) + "\ntargets: " + " ".join(map(str, targets)) + "\n"


def main():
    if len(sys.argv) != 4 or sys.argv[1] != "make":
        raise SystemExit("usage: chat_data_ref.py make SRC OUT")
    src, out = sys.argv[2], sys.argv[3]
    try:
        import transformers
        from transformers import PreTrainedTokenizerFast
    except ImportError as e:
        print(f"chat_data_ref: transformers does not import ({e})")
        sys.exit(77)
    os.makedirs(os.path.join(out, "tok"), exist_ok=True)
    texts, convs = conversations(src)
    tok_json = os.path.join(out, "tok", "tokenizer.json")
    train_tokenizer(texts, tok_json)
    with open(os.path.join(out, "tok", "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>",
                   "eos_token": {"content": "<|im_end|>", "special": True},
                   "chat_template": CHATML}, f, indent=1)
    with open(os.path.join(out, "llama3.jinja"), "w") as f:
        f.write(LLAMA3)
    with open(os.path.join(out, "chat.jsonl"), "w", encoding="utf-8") as f:
        for c in convs:
            f.write(json.dumps({"messages": c, "id": len(c)}, ensure_ascii=False) + "\n")

    tok = PreTrainedTokenizerFast(tokenizer_file=tok_json, bos_token="<|begin_of_text|>",
                                  eos_token="<|im_end|>")
    print(f"transformers {transformers.__version__}: {len(convs)} conversations, "
          f"{tok.backend_tokenizer.get_vocab_size()} tokens")
    for name, template in (("chatml", CHATML), ("llama3", LLAMA3)):
        done = {"all": [], "assistant": []}
        ntok = nmask = 0
        for c in convs:
            enc = tok.apply_chat_template(c, chat_template=template, tokenize=True, return_dict=True,
                                          return_assistant_tokens_mask=True)
            ids, mask = enc["input_ids"], enc["assistant_masks"]
            # The same ids as encoding the rendered text once, added tokens special.
            text = tok.apply_chat_template(c, chat_template=template, tokenize=False)
            assert tok.encode(text, add_special_tokens=False) == ids
            ntok += len(ids)
            nmask += sum(mask)
            for mode in done:
                done[mode].append(rows(ids, mask, mode == "assistant"))
        for mode, lines in done.items():
            with open(os.path.join(out, f"{name}-{mode}.rows"), "w") as f:
                f.write("".join(lines))
        print(f"{name}: {ntok} tokens, {nmask} in assistant turns")
    spm(src, out, convs)


def spm(src, out, convs):
    """SentencePiece: the bundled tok512.model in transformers' (slow,
    legacy) LlamaTokenizer with our Llama 2 style template. Its ids are
    transformers'; the assistant mask (return_assistant_tokens_mask needs a
    fast tokenizer) is the rule of io/data/chat_records.h applied with
    transformers' renders and encodings: tokens of encode(render) past the
    common prefix with encode(render up to the turn, generation prompt) and
    inside the common prefix with encode(render through the turn)."""
    import jinja2
    from transformers import LlamaTokenizer
    tok = LlamaTokenizer(vocab_file=os.path.join(src, "models/stories260K/tok512.model"), legacy=True)
    with open(os.path.join(src, "tests/data/chat/llama2.jinja"), encoding="utf-8") as f:
        template = f.read()

    def render(msgs, gen):
        return tok.apply_chat_template(msgs, chat_template=template, tokenize=False, add_generation_prompt=gen)

    def encode(text):
        return tok(text, add_special_tokens=False).input_ids

    def common(a, b):
        k = 0
        while k < len(a) and k < len(b) and a[k] == b[k]:
            k += 1
        return k

    kept, done = [], {"all": [], "assistant": []}
    ntok = nmask = 0
    for c in convs:
        try:
            ids = tok.apply_chat_template(c, chat_template=template, tokenize=True)
        except jinja2.TemplateError:
            continue  # roles that do not alternate: the template refuses them
        assert ids == encode(render(c, False))
        mask = [0] * len(ids)
        for i, m in enumerate(c):
            if m["role"] == "assistant":
                lo, hi = common(encode(render(c[:i], True)), ids), common(encode(render(c[:i + 1], False)), ids)
                mask[lo:hi] = [1] * (hi - lo)
        kept.append(c)
        ntok += len(ids)
        nmask += sum(mask)
        for mode in done:
            done[mode].append(rows(ids, mask, mode == "assistant"))
    with open(os.path.join(out, "chat_spm.jsonl"), "w", encoding="utf-8") as f:
        for c in kept:
            f.write(json.dumps({"messages": c}, ensure_ascii=False) + "\n")
    for mode, lines in done.items():
        with open(os.path.join(out, f"llama2-{mode}.rows"), "w") as f:
            f.write("".join(lines))
    print(f"llama2 (tok512.model): {len(kept)} conversations, {ntok} tokens, {nmask} in assistant turns")


if __name__ == "__main__":
    main()
