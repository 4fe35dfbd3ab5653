"""The real packaged backbone (all-MiniLM-L6-v2): loads offline, is deterministic, and
matches an independent NumPy BERT forward pass over the same safetensors weights."""
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from tfapp.core.backbone import TextPacker, load_backbone, packaged_backbone_dir

pytestmark = pytest.mark.slow

SENTENCES = ["Shares of the bank fell sharply after weak quarterly earnings.",
             "The bank's stock dropped after disappointing profits.",
             "The weather in Paris is sunny today."]


@pytest.fixture(scope="module")
def real():
    loaded = load_backbone("default")
    packer = TextPacker(loaded.tokenizer, 64)
    return loaded, packer, packer(tf.constant(SENTENCES))


def _layer_norm(x, g, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def reference_bert(token_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Hugging Face BertModel's forward pass in NumPy (float64, exact erf GELU)."""
    from safetensors.numpy import load_file

    d = packaged_backbone_dir()
    cfg = json.loads((d / "config.json").read_text())
    w = {k: v.astype(np.float64) for k, v in load_file(str(d / "model.safetensors")).items()
         if v.dtype.kind == "f"}
    erf = np.vectorize(math.erf)
    n, t = token_ids.shape
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    x = (w["embeddings.word_embeddings.weight"][token_ids]
         + w["embeddings.position_embeddings.weight"][np.arange(t)][None]
         + w["embeddings.token_type_embeddings.weight"][0][None, None])
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    bias = np.where(mask, 0.0, -1e9)[:, None, None, :]
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def dense(v, name):
            return v @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        def split(v):
            return v.reshape(n, t, heads, h // heads).transpose(0, 2, 1, 3)

        q, k, v = (split(dense(x, f"attention.self.{m}")) for m in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(h // heads) + bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(n, t, h)
        x = _layer_norm(x + dense(ctx, "attention.output.dense"),
                        w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"])
        inter = dense(x, "intermediate.dense")
        inter = 0.5 * inter * (1 + erf(inter / math.sqrt(2)))
        x = _layer_norm(x + dense(inter, "output.dense"), w[p + "output.LayerNorm.weight"],
                        w[p + "output.LayerNorm.bias"])
    return x


def test_hidden_states_are_deterministic_and_non_trivial(real):
    loaded, packer, x = real
    a = loaded.backbone(x, training=False)["sequence_output"].numpy()
    b = loaded.backbone(x, training=False)["sequence_output"].numpy()
    np.testing.assert_array_equal(a, b)
    again = load_backbone("default").backbone(x, training=False)["sequence_output"].numpy()
    np.testing.assert_array_equal(a, again)
    assert a.shape[0] == 3 and a.shape[2] == 384
    assert np.isfinite(a).all() and a.std() > 0.1
    # Pretrained semantics: a paraphrase is far closer than an unrelated sentence.
    mask = x["padding_mask"].numpy()[..., None].astype(bool)
    e = (a * mask).sum(1) / mask.sum(1)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    assert e[0] @ e[1] > 0.6 and e[0] @ e[2] < 0.2, e @ e.T


def test_matches_independent_reference_with_exact_gelu(real):
    loaded, packer, x = real
    assert loaded.exact_gelu
    ours = loaded.backbone(x, training=False)["sequence_output"].numpy()
    ref = reference_bert(x["token_ids"].numpy(), x["padding_mask"].numpy())
    mask = x["padding_mask"].numpy().astype(bool)
    diff = np.abs(ours - ref)[mask].max()
    # tanh-approximate GELU (keras-hub's default) drifts by ~1e-3 on this model.
    assert diff < 1e-4, diff
