#!/usr/bin/env bash
# Idempotent set-up of the peer environment for `recode bench generate` (not used by CI):
#  - a virtualenv $RECODE_CACHE/venv-bench with PyTorch (CPU use), transformers, gguf, PEFT and TRL
#    from PyPI (TRL+PEFT are the peer of `recode bench train`),
#    so python/bench/generate_peer.py can run Hugging Face `generate` on the same SmolLM2 GGUF;
#  - with RECODE_BENCH_LLAMACPP=1, also llama-cpp-python (built from the PyPI sdist; slow).
# Re-installs only when the package list below changes. Prints the variable to export at the end.
set -euo pipefail
cache=${RECODE_CACHE:-$HOME/.cache/recode}
venv=$cache/venv-bench
log() { printf '[setup-bench] %s\n' "$*" >&2; }

pkgs=("torch>=2.4" "transformers>=4.46" "accelerate>=1.0" "gguf>=0.10" "numpy>=1.26" "psutil>=5.9" "peft>=0.13" "trl>=0.12")
if [ "${RECODE_BENCH_LLAMACPP:-0}" = 1 ]; then
  pkgs+=("llama-cpp-python>=0.3")
fi
want=$(printf '%s\n' "${pkgs[@]}" | sha256sum | cut -d' ' -f1)
stamp=$venv/.bench-packages.sha256
if [ ! -x "$venv/bin/python" ]; then
  log "creating virtualenv $venv"
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing ${pkgs[*]} (PyTorch is large: this takes a while once)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pkgs[@]}" >&2
  echo "$want" > "$stamp"
else
  log "bench virtualenv up to date"
fi
echo "export RECODE_BENCH_VENV=$venv"
