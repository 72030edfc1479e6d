"""Self-checks of the numpy reference decoder (python/reference/model_ref.py) used for parity tests."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import model_ref  # noqa: E402


def _tiny(arch):
    cfg = dict(model_ref.TINY)
    cfg.update(model_type=arch, rope_theta=10000.0, tie_word_embeddings=arch == "llama")
    w = model_ref.make_weights(cfg, np.random.default_rng(0))
    w["embed_tokens_tied"] = w["model.embed_tokens.weight"]
    return cfg, w


def test_causal_future_tokens_do_not_change_past_logits():
    cfg, w = _tiny("llama")
    ids = np.array([[1, 2, 3, 4, 5]])
    other = np.array([[1, 2, 3, 9, 9]])
    m = np.ones_like(ids)
    a = model_ref.forward(cfg, w, ids, m)
    b = model_ref.forward(cfg, w, other, m)
    assert np.allclose(a[:, :3], b[:, :3], atol=1e-12)
    assert not np.allclose(a[:, 3:], b[:, 3:])


def test_left_padding_is_invisible():
    cfg, w = _tiny("qwen2")
    ids = np.array([[7, 8, 9]])
    padded = np.array([[0, 0, 7, 8, 9]])
    mask = np.array([[0, 0, 1, 1, 1]])
    a = model_ref.forward(cfg, w, ids, np.ones_like(ids))
    b = model_ref.forward(cfg, w, padded, mask)
    assert np.allclose(a, b[:, 2:], atol=1e-12)


def test_gqa_equals_mha_with_duplicated_kv_heads():
    cfg, w = _tiny("llama")
    mha = dict(cfg, num_key_value_heads=cfg["num_attention_heads"])
    w2 = dict(w)
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    rep = cfg["num_attention_heads"] // cfg["num_key_value_heads"]
    for i in range(cfg["num_hidden_layers"]):
        for n in ("k_proj", "v_proj"):
            k = f"model.layers.{i}.self_attn.{n}.weight"
            heads = w[k].reshape(cfg["num_key_value_heads"], hd, -1)
            w2[k] = np.repeat(heads, rep, axis=0).reshape(-1, heads.shape[-1])
    ids = np.array([[3, 1, 4, 1, 5]])
    m = np.ones_like(ids)
    assert np.allclose(model_ref.forward(cfg, w, ids, m), model_ref.forward(mha, w2, ids, m), atol=1e-12)


def test_llama3_rope_two_formulas_agree():
    # transformers' inv_freq formula and llama.cpp's converter (divisors stored in GGUF) are two
    # statements of Llama 3.1 scaling; the tiny config must hit all three wavelength regimes.
    cfg, _ = _tiny("llama")
    cfg["rope_scaling"] = model_ref.ROPE_SCALINGS["llama3"]
    base = model_ref.inv_freq(dict(cfg, rope_scaling=None))
    factors = model_ref.gguf_rope_freqs(cfg)
    assert np.allclose(base / factors, model_ref.inv_freq(cfg), rtol=1e-12)
    factor = cfg["rope_scaling"]["factor"]
    assert factors[0] == 1.0 and factors[-1] == factor
    assert any(1.0 < f < factor for f in factors)
