"""Independent numpy reference of the Llama / Qwen2 decoder (HF semantics), used to check recode-model.

`python model_ref.py make --arch llama|qwen2 --out DIR [--seed N] [--rope-scaling none|linear|llama3]
[--seq-len T]` writes a tiny random model (config.json + model.safetensors) and `expected.safetensors`
holding input ids, an attention mask (left padding), the logits computed here in float64, the RoPE
inverse frequencies (`inv_freq`, Hugging Face's formulas) and, for llama3 scaling, the per-frequency
divisors llama.cpp's converter stores as the GGUF tensor `rope_freqs.weight` (`rope_freqs`).
"""

import argparse
import json
import os

import numpy as np
from safetensors.numpy import save_file

TINY = dict(
    vocab_size=61,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
)


def make_weights(cfg, rng):
    h, im, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = h // cfg["num_attention_heads"]
    qd, kd = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    w = {"model.embed_tokens.weight": rng.normal(0, 0.5, (v, h))}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes = {
            "self_attn.q_proj.weight": (qd, h),
            "self_attn.k_proj.weight": (kd, h),
            "self_attn.v_proj.weight": (kd, h),
            "self_attn.o_proj.weight": (h, qd),
            "mlp.gate_proj.weight": (im, h),
            "mlp.up_proj.weight": (im, h),
            "mlp.down_proj.weight": (h, im),
        }
        for k, s in shapes.items():
            w[p + k] = rng.normal(0, 1.0 / np.sqrt(s[1]), s)
        if cfg["model_type"] == "qwen2":
            w[p + "self_attn.q_proj.bias"] = rng.normal(0, 0.1, (qd,))
            w[p + "self_attn.k_proj.bias"] = rng.normal(0, 0.1, (kd,))
            w[p + "self_attn.v_proj.bias"] = rng.normal(0, 0.1, (kd,))
        w[p + "input_layernorm.weight"] = 1.0 + rng.normal(0, 0.1, (h,))
        w[p + "post_attention_layernorm.weight"] = 1.0 + rng.normal(0, 0.1, (h,))
    w["model.norm.weight"] = 1.0 + rng.normal(0, 0.1, (h,))
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = rng.normal(0, 1.0 / np.sqrt(h), (v, h))
    return w


def rms(x, g, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g


# Rope scalings `make --rope-scaling` writes into config.json (Hugging Face's `rope_scaling`).
ROPE_SCALINGS = {
    "none": None,
    "linear": {"rope_type": "linear", "factor": 4.0},
    # original context 128, high/low wavelength bounds 32 and 128: with head_dim 8 and theta 1e4
    # the wavelengths 2*pi*(1, 10, 100, 1000) fall in all three regimes (kept, smoothed, divided).
    "llama3": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 128,
    },
}


def inv_freq(cfg):
    """RoPE inverse frequencies with `rope_scaling` applied (transformers' rope init functions)."""
    d = cfg["hidden_size"] // cfg["num_attention_heads"]
    inv = 1.0 / cfg["rope_theta"] ** (np.arange(0, d, 2) / d)
    rs = cfg.get("rope_scaling")
    if rs is None:
        return inv
    if rs["rope_type"] == "linear":
        return inv / rs["factor"]
    assert rs["rope_type"] == "llama3", rs
    factor, old = rs["factor"], rs["original_max_position_embeddings"]
    lo, hi = rs["low_freq_factor"], rs["high_freq_factor"]
    wavelen = 2 * np.pi / inv
    scaled = np.where(wavelen > old / lo, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old / hi) & (wavelen <= old / lo)
    return np.where(medium, smoothed, scaled)


def gguf_rope_freqs(cfg):
    """The divisors llama.cpp's convert_hf_to_gguf.py writes as `rope_freqs.weight` for llama3
    scaling: 1 for short wavelengths, `factor` for long ones, 1 / ((1 - s) / factor + s) between."""
    d = cfg["hidden_size"] // cfg["num_attention_heads"]
    rs = cfg["rope_scaling"]
    factor, old = rs["factor"], rs["original_max_position_embeddings"]
    lo, hi = rs["low_freq_factor"], rs["high_freq_factor"]
    wavelen = 2 * np.pi * cfg["rope_theta"] ** (np.arange(0, d, 2) / d)
    s = (old / wavelen - lo) / (hi - lo)
    return np.select([wavelen < old / hi, wavelen > old / lo], [1.0, factor], 1 / ((1 - s) / factor + s))


def rope(x, pos, inv):
    # x: [B, H, T, D]; pos: [B, T]; inv: [D/2]; rotate-half convention.
    d = x.shape[-1]
    ang = pos[:, None, :, None] * inv[None, None, None, :]
    cos, sin = np.cos(ang), np.sin(ang)
    cos, sin = np.concatenate([cos, cos], -1), np.concatenate([sin, sin], -1)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return x * cos + np.concatenate([-x2, x1], -1) * sin


def forward(cfg, w, ids, mask):
    """Logits [B, T, V] for input ids [B, T] and mask [B, T] (1 token, 0 left padding)."""
    b, t = ids.shape
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg["hidden_size"] // nh
    eps, inv = cfg["rms_norm_eps"], inv_freq(cfg)
    pos = np.clip(np.cumsum(mask, -1) - 1, 0, None).astype(np.float64)
    allowed = np.tril(np.ones((t, t), bool))[None] & (mask[:, None, :] == 1)
    x = w["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."

        def lin(name, inp):
            y = inp @ w[p + name + ".weight"].T
            if p + name + ".bias" in w:
                y = y + w[p + name + ".bias"]
            return y

        hn = rms(x, w[p + "input_layernorm.weight"], eps)
        q = lin("self_attn.q_proj", hn).reshape(b, t, nh, hd).transpose(0, 2, 1, 3)
        k = lin("self_attn.k_proj", hn).reshape(b, t, nkv, hd).transpose(0, 2, 1, 3)
        v = lin("self_attn.v_proj", hn).reshape(b, t, nkv, hd).transpose(0, 2, 1, 3)
        q, k = rope(q, pos, inv), rope(k, pos, inv)
        k = np.repeat(k, nh // nkv, axis=1)
        v = np.repeat(v, nh // nkv, axis=1)
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
        s = np.where(allowed[:, None], s, -1e9)
        s = s - s.max(-1, keepdims=True)
        a = np.exp(s)
        a = a / a.sum(-1, keepdims=True)
        o = (a @ v).transpose(0, 2, 1, 3).reshape(b, t, nh * hd)
        x = x + lin("self_attn.o_proj", o)
        hn = rms(x, w[p + "post_attention_layernorm.weight"], eps)
        g = lin("mlp.gate_proj", hn)
        x = x + lin("mlp.down_proj", g / (1 + np.exp(-g)) * lin("mlp.up_proj", hn))
    x = rms(x, w["model.norm.weight"], eps)
    head = w["embed_tokens_tied"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


def make(arch, out, seed, rope_scaling="none", seq_len=9):
    rng = np.random.default_rng(seed)
    cfg = dict(TINY)
    cfg.update(
        model_type=arch,
        rope_theta=10000.0 if arch == "llama" else 1000000.0,
        tie_word_embeddings=arch == "llama",
    )
    if ROPE_SCALINGS[rope_scaling] is not None:
        cfg["rope_scaling"] = ROPE_SCALINGS[rope_scaling]
    w = make_weights(cfg, rng)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    save_file({k: v.astype(np.float32) for k, v in w.items()}, os.path.join(out, "model.safetensors"))
    # The reference runs in float64 on the float32-rounded weights the model will read.
    w64 = {k: v.astype(np.float32).astype(np.float64) for k, v in w.items()}
    w64["embed_tokens_tied"] = w64["model.embed_tokens.weight"]
    b, t = 3, seq_len
    ids = rng.integers(0, cfg["vocab_size"], (b, t))
    mask = np.ones((b, t), np.int64)
    mask[1, :3] = 0
    mask[2, :6] = 0
    ids[mask == 0] = 0
    logits = forward(cfg, w64, ids, mask)
    expected = {
        "input_ids": ids.astype(np.int64),
        "attention_mask": mask,
        "logits": logits,
        "inv_freq": inv_freq(cfg),
    }
    if rope_scaling == "llama3":
        expected["rope_freqs"] = gguf_rope_freqs(cfg).astype(np.float32)
    save_file(expected, os.path.join(out, "expected.safetensors"))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("--arch", choices=["llama", "qwen2"], required=True)
    mk.add_argument("--out", required=True)
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--rope-scaling", choices=sorted(ROPE_SCALINGS), default="none")
    mk.add_argument("--seq-len", type=int, default=9)
    a = ap.parse_args()
    make(a.arch, a.out, a.seed, a.rope_scaling, a.seq_len)


if __name__ == "__main__":
    main()
