#!/usr/bin/env bash
# Idempotent set-up of the peer environment for `recode bench generate` (not used by CI):
#  - a virtualenv $RECODE_CACHE/venv-bench with PyTorch (CPU use), transformers, gguf, PEFT and TRL
#    from PyPI (TRL+PEFT are the peer of `recode bench train`),
#    so crates/recode-bench/peers/generate_peer.py can run Hugging Face `generate` on the same SmolLM2 GGUF;
#  - with RECODE_BENCH_LLAMACPP=1, also llama-cpp-python (built from the PyPI sdist; slow),
#    for the CPU features this machine's kernel shows in /proc/cpuinfo, never with native
#    detection: a CPU that advertises AMX made llama.cpp repack weights for its AMX backend and
#    die with SIGILL. CMAKE_ARGS set by the caller wins.
# Re-installs only when the package list below changes. Prints the variable to export at the end.
set -euo pipefail
cache=${RECODE_CACHE:-$HOME/.cache/recode}
venv=$cache/venv-bench
log() { printf '[setup-bench] %s\n' "$*" >&2; }

pkgs=("torch>=2.4" "transformers>=4.46" "accelerate>=1.0" "gguf>=0.10" "numpy>=1.26" "psutil>=5.9" "peft>=0.13" "trl>=0.12")
base=${#pkgs[@]}
if [ "${RECODE_BENCH_LLAMACPP:-0}" = 1 ]; then
  pkgs+=("llama-cpp-python>=0.3")
  if [ -z "${CMAKE_ARGS:-}" ]; then
    # GGML option per /proc/cpuinfo flag; AMX stays off whatever the CPU claims.
    cpu=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
    local_flags="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C avx512f:AVX512 avx512_vnni:AVX512_VNNI \
                avx512_bf16:AVX512_BF16 avx512vbmi:AVX512_VBMI; do
      if [[ " $cpu " == *" ${pair%%:*} "* ]]; then
        local_flags+=" -DGGML_${pair#*:}=ON"
      else
        local_flags+=" -DGGML_${pair#*:}=OFF"
      fi
    done
    export CMAKE_ARGS=$local_flags
  fi
  log "llama.cpp build flags: $CMAKE_ARGS"
fi
# The flags are part of the stamp: another CPU (or other flags) rebuilds the peer.
want=$( (printf '%s\n' "${pkgs[@]}"; printf '%s\n' "${CMAKE_ARGS:-}") | sha256sum | cut -d' ' -f1)
stamp=$venv/.bench-packages.sha256
if [ ! -x "$venv/bin/python" ]; then
  log "creating virtualenv $venv"
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing ${pkgs[*]} (PyTorch is large: this takes a while once)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pkgs[@]:0:$base}" >&2
  if [ "${#pkgs[@]}" -gt "$base" ]; then
    # --no-cache-dir: a cached wheel of llama-cpp-python carries the flags it was built with
    log "building llama-cpp-python (several minutes)"
    "$venv/bin/python" -m pip uninstall --quiet --yes llama-cpp-python >&2 || true
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
      "${pkgs[@]:$base}" >&2
  fi
  echo "$want" > "$stamp"
else
  log "bench virtualenv up to date"
fi
echo "export RECODE_BENCH_VENV=$venv"
