"""MultiHeadAttention and Attention: PyTorch agreement, gradients, masks, functional API."""
import json
import math
import os

import numpy as np
import pytest

import fundl as fl
from fundl.layers import Attention, Dense, Input, MultiHeadAttention
from fundl.models import Model, load_model
from fundl.testing import assert_error, gradcheck


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _mha_reference(mha, q, v, k=None, mask=None, causal=False):
    """Keras's MultiHeadAttention written out in NumPy with einsum (its own equations)."""
    k = v if k is None else k
    w = {name: np.asarray(a) for name, a in zip(
        ["qk", "qb", "kk", "kb", "vk", "vb", "ok", "ob"], mha.get_weights())}
    Q = np.einsum("btd,dnh->btnh", q, w["qk"]) + w["qb"]
    K = np.einsum("bsd,dnh->bsnh", k, w["kk"]) + w["kb"]
    V = np.einsum("bsd,dnh->bsnh", v, w["vk"]) + w["vb"]
    Q = Q / math.sqrt(mha.key_dim)
    scores = np.einsum("bsnh,btnh->bnts", K, Q)
    allowed = np.ones(scores.shape, bool)
    if mask is not None:
        allowed &= mask[:, None]
    if causal:
        allowed &= np.tril(np.ones(scores.shape[-2:], bool))
    scores = scores + (~allowed) * -1e9
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    out = np.einsum("bnts,bsnh->btnh", p, V)
    return np.einsum("btnh,nho->bto", out, w["ok"]) + w["ob"], p


# -- MultiHeadAttention ----------------------------------------------------------------------

def test_mha_shapes_weights_and_keras_layout():
    mha = MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4, output_shape=5)
    out, scores = mha(_x((2, 6, 7)).astype("float32"), _x((2, 4, 8), 1).astype("float32"),
                      return_attention_scores=True)
    assert out.shape == (2, 6, 5) and scores.shape == (2, 2, 6, 4)
    assert {k: v.shape for k, v in mha.state_dict().items()} == {
        "query_kernel": (7, 2, 3), "query_bias": (2, 3), "key_kernel": (8, 2, 3),
        "key_bias": (2, 3), "value_kernel": (8, 2, 4), "value_bias": (2, 4),
        "output_kernel": (2, 4, 5), "output_bias": (5,)}
    assert [w.name for w in mha.weights][:2] == ["query_kernel", "query_bias"]
    np.testing.assert_allclose(scores.numpy().sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("case", ["plain", "key", "mask", "causal", "rank4"])
def test_mha_matches_the_keras_equations(case):
    fl.manual_seed(0)
    mha = MultiHeadAttention(num_heads=3, key_dim=2, dtype="float64",
                             bias_initializer="random_normal")
    shape_q, shape_v = ((2, 5, 4), (2, 6, 3)) if case != "rank4" else ((2, 2, 3, 4),
                                                                       (2, 3, 2, 3))
    q, v = _x(shape_q), _x(shape_v, 1)
    k = _x(shape_v[:-1] + (5,), 2) if case == "key" else None
    mask = (np.random.default_rng(3).random((2, 5, 6)) > 0.3) if case == "mask" else None
    causal = case == "causal"
    out, scores = mha(q, v, key=k, attention_mask=mask, use_causal_mask=causal,
                      return_attention_scores=True)
    if case == "rank4":  # attention over the flattened inner axes
        want, p = _mha_reference(mha, q.reshape(2, 6, 4), v.reshape(2, 6, 3))
        want = want.reshape(2, 2, 3, 4)
    else:
        want, p = _mha_reference(mha, q, v, k, mask, causal)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(scores.numpy(), p, rtol=1e-10, atol=1e-12)


def test_mha_matches_torch_multihead_attention():
    torch = pytest.importorskip("torch")
    e, n, b, t, s = 6, 2, 3, 5, 4
    fl.manual_seed(1)
    mha = MultiHeadAttention(num_heads=n, key_dim=e // n, dtype="float64",
                             bias_initializer="random_normal")
    q, v = _x((b, t, e)), _x((b, s, e), 1)
    causal = np.tril(np.ones((t, s), bool))
    fq = fl.tensor(q, requires_grad=True)
    fv = fl.tensor(v, requires_grad=True)
    out, scores = mha(fq, fv, attention_mask=np.broadcast_to(causal, (b, t, s)),
                      return_attention_scores=True)
    w = mha.get_weights()
    module = torch.nn.MultiheadAttention(e, n, batch_first=True).double()
    with torch.no_grad():
        module.in_proj_weight.copy_(torch.tensor(np.concatenate(
            [w[0].reshape(e, e).T, w[2].reshape(e, e).T, w[4].reshape(e, e).T])))
        module.in_proj_bias.copy_(torch.tensor(np.concatenate(
            [w[1].ravel(), w[3].ravel(), w[5].ravel()])))
        module.out_proj.weight.copy_(torch.tensor(w[6].reshape(e, e).T))
        module.out_proj.bias.copy_(torch.tensor(w[7]))
    tq = torch.tensor(q, requires_grad=True)
    tv = torch.tensor(v, requires_grad=True)
    tout, tweights = module(tq, tv, tv, attn_mask=torch.tensor(~causal),
                            average_attn_weights=False)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(scores.numpy(), tweights.detach().numpy(), rtol=1e-9,
                               atol=1e-12)
    g = _x(out.shape, 2)
    out.backward(g)
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(fq.grad, tq.grad.numpy(), rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(fv.grad, tv.grad.numpy(), rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(mha.query_kernel.grad.reshape(e, e).T,
                               module.in_proj_weight.grad.numpy()[:e], rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(mha.output_bias.grad, module.out_proj.bias.grad.numpy(),
                               rtol=1e-8, atol=1e-11)


def test_mha_gradcheck_inputs_and_weights():
    fl.manual_seed(2)
    mha = MultiHeadAttention(num_heads=2, key_dim=2, value_dim=1, dtype="float64",
                             bias_initializer="random_normal")
    q = fl.tensor(_x((2, 3, 3)), requires_grad=True)
    v = fl.tensor(_x((2, 2, 2), 1), requires_grad=True)
    mha(q, v)
    mask = np.array([[[1, 0], [1, 1], [0, 1]], [[1, 1], [0, 1], [1, 0]]], bool)
    assert gradcheck(lambda a, b, *w: mha(a, b, attention_mask=mask),
                     [q, v] + mha.trainable_weights)


def test_mha_dropout_only_in_training():
    fl.manual_seed(3)
    mha = MultiHeadAttention(num_heads=2, key_dim=2, dropout=0.5)
    x = _x((2, 4, 4)).astype("float32")
    a, b = mha(x, x).numpy(), mha(x, x).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(mha(x, x, training=True).numpy(), a)


def test_mha_functional_model_trains_saves_and_loads(tmp_path):
    fl.manual_seed(4)
    q_in = Input(shape=(5, 4))
    v_in = Input(shape=(3, 4))
    mha = MultiHeadAttention(num_heads=2, key_dim=2, name="mha")
    h = mha(q_in, v_in)
    assert h.shape == (None, 5, 4)
    model = Model([q_in, v_in], Dense(1)(h))
    q, v = _x((16, 5, 4)).astype("float32"), _x((16, 3, 4), 1).astype("float32")
    y = q[..., :1] * 0.5
    model.compile(optimizer="adam", loss="mse")
    history = model.fit([q, v], y, epochs=4, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = os.path.join(tmp_path, "mha.fundl")
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_allclose(loaded.predict([q, v], verbose=0),
                               model.predict([q, v], verbose=0), rtol=1e-6)


def test_mha_functional_self_attention_with_scores_and_causal_mask():
    x_in = Input(shape=(6, 8))
    out, scores = MultiHeadAttention(num_heads=2, key_dim=4)(
        x_in, x_in, return_attention_scores=True, use_causal_mask=True)
    assert out.shape == (None, 6, 8) and scores.shape == (None, 2, 6, 6)
    model = Model(x_in, [out, scores])
    o, s = model.predict(_x((2, 6, 8)).astype("float32"), verbose=0)
    assert np.allclose(np.triu(s, 1), 0)  # nothing from the future


def test_mha_config_round_trip():
    mha = MultiHeadAttention(num_heads=4, key_dim=8, value_dim=6, dropout=0.1, use_bias=False,
                             output_shape=12, kernel_regularizer="l2",
                             kernel_constraint="max_norm")
    config = json.loads(json.dumps(mha.get_config()))
    clone = MultiHeadAttention.from_config(config)
    assert clone.get_config() == config
    x = _x((2, 3, 5)).astype("float32")
    mha(x, x)
    clone(x, x)
    clone.set_weights(mha.get_weights())
    np.testing.assert_array_equal(clone(x, x).numpy(), mha(x, x).numpy())
    assert len(mha.losses) == 4  # one penalty per kernel
    assert mha.query_kernel.constraint is not None and mha.query_bias is None


def test_mha_errors():
    assert_error(ValueError, lambda: MultiHeadAttention(0, 2), contains=("MultiHeadAttention",
                                                                         "num_heads"))
    assert_error(ValueError, lambda: MultiHeadAttention(2, 2, dropout=1.5),
                 contains=("MultiHeadAttention", "rate"))
    mha = MultiHeadAttention(2, 2)
    x = np.ones((2, 3, 4), "float32")
    assert_error(TypeError, lambda: mha(x), contains=("MultiHeadAttention", "value"))
    assert_error(ValueError, lambda: mha(np.ones((2, 4), "float32"), np.ones((2, 4), "float32")),
                 contains=("MultiHeadAttention", "rank >= 3"))
    mha(x, x)
    assert_error(ValueError, lambda: mha(np.ones((2, 3, 5), "float32"), x),
                 contains=("MultiHeadAttention", "query", "(2, 3, 5)"))
    assert_error(ValueError, lambda: mha(x, x, attention_mask=np.ones((2, 3, 2), bool)),
                 contains=("MultiHeadAttention", "attention_mask", "(2, 3, 2)"))


# -- Attention -------------------------------------------------------------------------------

def test_dot_attention_matches_torch_sdpa():
    torch = pytest.importorskip("torch")
    q, v, k = _x((2, 4, 3)), _x((2, 5, 3), 1), _x((2, 5, 3), 2)
    fq, fv, fk = (fl.tensor(a, requires_grad=True) for a in (q, v, k))
    out = Attention(dtype="float64")([fq, fv, fk])
    tq, tv, tk = (torch.tensor(a, requires_grad=True) for a in (q, v, k))
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, scale=1.0)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = _x(out.shape, 3)
    out.backward(g)
    tout.backward(torch.tensor(g))
    for a, b in ((fq, tq), (fv, tv), (fk, tk)):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_concat_attention_keras_formula_masks_and_scores():
    layer = Attention(use_scale=True, score_mode="concat", dtype="float64")
    q, v = _x((2, 3, 4)), _x((2, 5, 4), 1)
    layer([q, v])
    layer.set_weights([np.array(0.7), np.array(1.3)])  # scale, concat_score_weight
    q_mask = np.array([[1, 1, 0], [1, 1, 1]], bool)
    v_mask = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], bool)
    out, w = layer([q, v], mask=[q_mask, v_mask], return_attention_scores=True)
    scores = 1.3 * np.tanh(0.7 * (q[:, :, None] + v[:, None])).sum(-1)
    scores = scores - 1e9 * (~v_mask[:, None])
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(w.numpy(), p, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.numpy(), (p @ v) * q_mask[..., None], rtol=1e-10,
                               atol=1e-12)


def test_attention_gradcheck_with_scale_and_causal_mask():
    layer = Attention(use_scale=True, dtype="float64")
    q = fl.tensor(_x((2, 3, 2)), requires_grad=True)
    v = fl.tensor(_x((2, 3, 2), 1), requires_grad=True)
    layer([q, v])
    assert gradcheck(lambda a, b, s: layer([a, b], use_causal_mask=True),
                     [q, v] + layer.trainable_weights)
    concat = Attention(use_scale=True, score_mode="concat", dtype="float64")
    concat([q, v])
    assert gradcheck(lambda a, b, *w: concat([a, b]), [q, v] + concat.trainable_weights)


def test_attention_functional_config_and_training():
    fl.manual_seed(5)
    q_in, v_in = Input(shape=(4, 3)), Input(shape=(6, 3))
    att = Attention(use_scale=True, dropout=0.1)
    out = att([q_in, v_in])
    assert out.shape == (None, 4, 3)
    model = Model([q_in, v_in], Dense(1)(out))
    model.compile(optimizer=fl.optimizers.Adam(0.05), loss="mse")
    q, v = _x((16, 4, 3)).astype("float32"), _x((16, 6, 3), 1).astype("float32")
    y = np.broadcast_to(v.mean(axis=1)[:, None, :1], (16, 4, 1)) * 3
    history = model.fit([q, v], y, epochs=5, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    config = json.loads(json.dumps(att.get_config()))
    assert Attention.from_config(config).get_config() == config
    assert_error(ValueError, lambda: Attention(score_mode="add"),
                 contains=("Attention", "score_mode"))
    assert_error(ValueError, lambda: Attention()([np.ones((2, 3, 4), "float32"),
                                                  np.ones((2, 5, 3), "float32")]),
                 contains=("Attention", "same last size"))


def test_mha_functional_with_key_and_mask_inputs():
    q_in, v_in, k_in = Input(shape=(4, 6)), Input(shape=(3, 5)), Input(shape=(3, 2))
    m_in = Input(shape=(4, 3), dtype="bool")
    mha = MultiHeadAttention(num_heads=2, key_dim=3)
    out = mha(q_in, v_in, key=k_in, attention_mask=m_in)
    assert out.shape == (None, 4, 6)
    model = Model([q_in, v_in, k_in, m_in], out)
    q, v, k = _x((2, 4, 6)).astype("float32"), _x((2, 3, 5), 1).astype("float32"), \
        _x((2, 3, 2), 2).astype("float32")
    mask = np.random.default_rng(3).random((2, 4, 3)) > 0.4
    np.testing.assert_allclose(model.predict([q, v, k, mask], verbose=0),
                               mha(q, v, key=k, attention_mask=mask).numpy(), rtol=1e-5,
                               atol=1e-6)
    assert mha.key_kernel.shape == (2, 2, 3)


def test_functional_model_with_scores_output_saves_and_loads(tmp_path):
    x_in = Input(shape=(6, 8))
    out, scores = MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.1, seed=2)(
        x_in, x_in, return_attention_scores=True, use_causal_mask=True)
    a_out = Attention(use_scale=True)([out, x_in], use_causal_mask=True)
    model = Model(x_in, [a_out, scores])
    assert model.count_params() == 288 + 1  # Keras's count for these sizes, plus the scale
    x = _x((2, 6, 8)).astype("float32")
    path = os.path.join(tmp_path, "m.fundl")
    model.save(path)
    for a, b in zip(model.predict(x, verbose=0), load_model(path).predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)
