#!/usr/bin/python3
"""Write a Llama with random weights in the llama2.c checkpoint format.

For memory and speed measurements on models larger than the bundled one:
weights N(0, 0.02^2) (norm weights 1), tied classifier, the same tokenizer
vocabulary as the bundled model by default, so its tokenizer and data work.

  make_random_model.py OUT.bin [--dim 512] [--hidden 1376] [--layers 8]
      [--heads 8] [--kv_heads 8] [--vocab 512] [--seq 256] [--seed 0]
"""
import argparse
import struct

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=1376)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv_heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.dim % a.heads or a.heads % a.kv_heads or (a.dim // a.heads) % 2:
        ap.error("dim must split into an even head size and heads into kv groups")
    rng = np.random.default_rng(a.seed)
    C, H, L, V, kv = a.dim, a.hidden, a.layers, a.vocab, a.dim // a.heads * a.kv_heads

    def rand(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)).astype("<f4")

    with open(a.out, "wb") as f:
        # vocab_size > 0: the classifier is the token embedding
        f.write(struct.pack("<7i", C, H, L, a.heads, a.kv_heads, V, a.seq))
        f.write(rand(V, C).tobytes())
        f.write(np.ones((L, C), "<f4").tobytes())
        for shape in ((C, C), (kv, C), (kv, C), (C, C)):
            for _ in range(L):
                f.write(rand(*shape).tobytes())
        f.write(np.ones((L, C), "<f4").tobytes())
        for shape in ((H, C), (C, H), (H, C)):
            for _ in range(L):
                f.write(rand(*shape).tobytes())
        f.write(np.ones(C, "<f4").tobytes())
        f.write(np.zeros(a.seq * (C // a.heads), "<f4").tobytes())  # RoPE tables, unused
    linear = L * (2 * C * C + 2 * kv * C + 3 * H * C)
    print("%s: %d layers, dim %d, hidden %d: %d parameters (%d in decoder linears)"
          % (a.out, L, C, H, V * C + 2 * L * C + C + linear, linear))


if __name__ == "__main__":
    main()
