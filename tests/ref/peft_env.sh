#!/bin/bash
# tests/ref/peft_env.sh DIR -- makes DIR a Python venv in which tests/ref/peft_ref.py
# runs: Hugging Face transformers + PEFT on top of Debian's own PyTorch.
#
#   tests/ref/peft_env.sh DIR && DIR/bin/python tests/ref/peft_ref.py ...
#
# Exit status: 0 ready (DIR/bin/python imports torch, numpy, transformers,
# peft, safetensors, accelerate); 77 cannot be made here (no /usr/bin/python3
# venv, no torch/numpy in the system site-packages, PyPI unreachable, or the
# pinned set does not import) -- one line on stderr says why; 2 usage.
# Idempotent and cached: DIR/.peft_env_ok holds the pin list it was built
# with; when it matches, nothing is done (a few ms). A broken or stale DIR is
# removed and rebuilt; concurrent calls serialise on DIR.lock (flock).
#
# The venv is made by /usr/bin/python3 -m venv --system-site-packages, so it
# sees Debian's python3-torch (1.13.0a0+gitunknown) and python3-numpy
# (1.24.2). `python3` on PATH may be another interpreter (pyenv) without
# torch: never use it here.
#
# Pins (found by trying, Debian 12, torch 1.13.0a0, numpy 1.24.2, Python 3.11):
#   transformers 4.46.3  the release PEFT 0.13.2 shipped against; on torch 1.13
#                        it has no SDPA and uses eager attention (peft_ref.py
#                        asks for "eager" explicitly); tests/ref/peft_torch_ref.py
#                        follows its modeling_llama op by op. Tried: 4.47.1,
#                        4.48.3, 4.49.0 also run (4.48+ refactored attention:
#                        logits up to 2.3e-6 away from 4.46's); 4.50.3 fails
#                        (imports torch.distributed.tensor, torch 2.x only);
#                        4.53.3 disables PyTorch ("PyTorch >= 2.1 is required").
#   tokenizers 0.20.3    transformers 4.46 wants >=0.20,<0.21 (never used:
#                        peft_ref.py takes token ids, but transformers imports it).
#   huggingface_hub 0.36.2  transformers 4.46 wants >=0.23.2,<1.0.
#   peft 0.13.2          declares torch>=1.13.0, which pip reads as excluding
#                        1.13.0a0 (a pre-release sorts below 1.13.0) and would
#                        then download a new torch: that is why every package
#                        is installed with --no-deps from this explicit list.
#                        It works with 1.13.0a0 (lora.Linear only).
#   accelerate 1.0.1     peft imports accelerate.hooks/utils at import time;
#                        1.0.x still accepts torch >= 1.10.
#   safetensors 0.4.5    save_pretrained/from_pretrained with torch 1.13.
#   Jinja2 3.1.6, MarkupSafe 3.0.4: PEFT's save_pretrained writes a README.md
#                        model card through huggingface_hub's template, which
#                        raises ImportError without Jinja2.
#   filelock, fsspec, hf-xet, packaging, regex, tqdm: what those need beyond the
#   Debian packages already present (PyYAML, requests, psutil, typing_extensions).
# pip runs with a constraints file pinning torch and numpy to the system
# versions, so it can never replace them; the script checks afterwards that
# torch and numpy are still the ones in /usr/lib/python3/dist-packages.
# Install time measured: 16-39 s (venv 4 s, the rest pip downloads + installs) on
# a 2-core machine with a fast PyPI mirror; cached call: < 0.1 s.
set -uo pipefail
me=peft_env.sh
pins=(
  transformers==4.46.3
  tokenizers==0.20.3
  huggingface_hub==0.36.2
  peft==0.13.2
  accelerate==1.0.1
  safetensors==0.4.5
  filelock==4.3.1
  fsspec==2026.9.0
  hf-xet==1.8.0
  packaging==26.4
  regex==2026.11.19
  tqdm==4.70.1
  Jinja2==3.1.6
  MarkupSafe==3.0.4
)
check='import sys, transformers, peft, safetensors, accelerate
from transformers import LlamaForCausalLM, LlamaConfig
from peft import LoraConfig, PeftModel, get_peft_model
import jinja2'
sys_import="torch, numpy"
sys_hint="python3-torch python3-numpy"
what="transformers/peft"
# shellcheck source=tests/ref/venv_build.sh
source "$(dirname "${BASH_SOURCE[0]}")/venv_build.sh"
