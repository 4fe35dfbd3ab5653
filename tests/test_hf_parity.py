"""Numerical parity with Hugging Face transformers (PyTorch) on the packaged checkpoint:
a backbone that fails this is a bug, not a benchmark. Needs the `hf` extra."""
import numpy as np
import pytest
import tensorflow as tf

from tfapp.core.backbone import TextPacker, load_backbone, packaged_backbone_dir

torch = pytest.importorskip("torch", reason="needs the hf extra: pip install -e .[hf]")
transformers = pytest.importorskip("transformers")

SENTENCES = [
    "Shares of Northwind Bank jumped 9% after earnings beat estimates.",
    "Rates unchanged.",
    "Helix Pharma cut its full-year revenue guidance after sales fell 12% in the second "
    "quarter, hurt by weaker demand in Europe and rising costs across its plants.",
    "Ünïcode café déjà vu",
    "ok",
]


def test_last_hidden_states_match_transformers():
    directory = packaged_backbone_dir()
    ours = load_backbone("default")
    x = TextPacker(ours.tokenizer, 128)(tf.constant(SENTENCES))
    mask = x["padding_mask"].numpy().astype(bool)
    assert mask.sum(1).min() < mask.shape[1]  # the batch really is padded

    hf_tok = transformers.AutoTokenizer.from_pretrained(str(directory))
    enc = hf_tok(SENTENCES, padding=True, truncation=True, max_length=128, return_tensors="np")
    np.testing.assert_array_equal(enc["input_ids"], x["token_ids"].numpy())  # same pieces

    model = transformers.BertModel.from_pretrained(str(directory)).eval()
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor(enc["input_ids"]),
                       attention_mask=torch.tensor(enc["attention_mask"])
                       ).last_hidden_state.numpy()
    mine = ours.backbone(x, training=False)["sequence_output"].numpy()
    diff = np.abs(mine - theirs)[mask].max()
    print(f"max abs diff over real tokens: {diff:.2e}")
    assert diff <= 1e-4, diff
