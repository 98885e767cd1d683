#!/bin/bash
# Verifies every shipped model and data file against the size and sha256
# recorded in its folder's SOURCE.md, and that no shipped file is missing
# from its SOURCE note. Usage: checksums.sh REPO_ROOT
set -u
root=${1:?usage: checksums.sh REPO_ROOT}
fail=0
checked=0
for src in "$root"/models/*/SOURCE.md "$root"/data/*/SOURCE.md; do
  dir=$(dirname "$src")
  listed=()
  # Table rows: | name | size | [lines |] sha256 |
  while IFS='|' read -r _ name size rest; do
    name=$(echo "$name" | tr -d ' `')
    size=$(echo "$size" | tr -d ' ')
    sha=$(echo "$rest" | grep -oE '[0-9a-f]{64}' | head -1)
    [[ -n "$sha" && "$size" =~ ^[0-9]+$ ]] || continue
    listed+=("$name")
    f="$dir/$name"
    if [[ ! -f "$f" ]]; then
      echo "FAIL $src lists $name, which is missing"; fail=1; continue
    fi
    actual_size=$(stat -c %s "$f")
    actual_sha=$(sha256sum "$f" | cut -d' ' -f1)
    if [[ "$actual_size" != "$size" ]]; then
      echo "FAIL $f: size $actual_size, SOURCE.md says $size"; fail=1
    elif [[ "$actual_sha" != "$sha" ]]; then
      echo "FAIL $f: sha256 $actual_sha, SOURCE.md says $sha"; fail=1
    else
      checked=$((checked + 1))
    fi
  done < "$src"
  for f in "$dir"/*; do
    b=$(basename "$f")
    [[ "$b" == SOURCE.md ]] && continue
    found=0
    for l in "${listed[@]}"; do [[ "$l" == "$b" ]] && found=1; done
    if [[ $found == 0 ]]; then echo "FAIL $f is shipped without a checksum in $src"; fail=1; fi
  done
done
if [[ $checked -lt 10 ]]; then
  echo "FAIL only $checked files verified; expected the model, tokenizer, oracle and corpora (10)"
  fail=1
fi
[[ $fail == 0 ]] && echo "verified $checked files against their SOURCE notes"
exit $fail
