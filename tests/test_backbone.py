import numpy as np
import pytest
import tensorflow as tf

from tfapp.core.backbone import (
    TextPacker,
    backbone_inputs,
    load_backbone,
    packaged_backbone_dir,
    pooled_output,
    tiny_vocabulary,
)
from tfapp.core.errors import BackboneError


def test_tokenisation_runs_in_graph_with_lowercase_truncation_and_specials():
    loaded = load_backbone("tiny")
    packer = TextPacker(loaded.tokenizer, 8)
    vocab = tiny_vocabulary()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encode(texts):
        return packer(texts)

    out = encode(tf.constant(["Stocks FELL", "the market rose after the deal was done today"]))
    ids = out["token_ids"].numpy()
    assert ids.shape == (2, 8)  # padded to the longest row, which was truncated to 8
    assert [vocab[i] for i in ids[0][:4]] == ["[CLS]", "stocks", "fell", "[SEP]"]
    assert out["padding_mask"].numpy()[0].tolist() == [1] * 4 + [0] * 4
    assert ids[1][0] == vocab.index("[CLS]") and ids[1][-1] == vocab.index("[SEP]")
    assert out["padding_mask"].numpy()[1].all()
    # Eager calls give the same ids as the graph.
    np.testing.assert_array_equal(packer(tf.constant(["Stocks FELL"]))["token_ids"], ids[:1, :4])


def test_packaged_dir_located_offline():
    d = packaged_backbone_dir()
    assert (d / "model.safetensors").is_file() and (d / "vocab.txt").is_file()


def _hf_copy(tmp_path, drop=()):
    src = packaged_backbone_dir()
    dst = tmp_path / "hf_bert"
    dst.mkdir()
    for name in ("config.json", "vocab.txt", "model.safetensors"):
        if name not in drop:
            (dst / name).symlink_to(src / name)
    return dst


def test_hugging_face_directory_with_only_config_vocab_and_weights(tmp_path):
    loaded = load_backbone(str(_hf_copy(tmp_path)))
    assert loaded.exact_gelu and loaded.backbone.num_layers == 6
    ids = TextPacker(loaded.tokenizer, 16)(tf.constant(["Héllo World"]))["token_ids"].numpy()
    vocab = (packaged_backbone_dir() / "vocab.txt").read_text().split("\n")
    # Uncased vocab inferred: lower-cased and accents stripped, like the HF tokenizer.
    assert [vocab[i] for i in ids[0]] == ["[CLS]", "hello", "world", "[SEP]"]


@pytest.mark.parametrize("missing", ["vocab.txt", "model.safetensors", "config.json"])
def test_backbone_directory_missing_file_is_one_line(tmp_path, missing):
    path = _hf_copy(tmp_path, drop=(missing,))
    with pytest.raises(BackboneError) as err:
        load_backbone(str(path))
    assert f"backbone directory {path}: missing {missing}" in str(err.value)
    assert "\n" not in str(err.value)


def test_not_a_directory():
    with pytest.raises(BackboneError, match="not 'default', 'tiny' or an existing directory"):
        load_backbone("/no/such/bert")


def test_keras_hub_preset_directory_round_trip(tmp_path):
    loaded = load_backbone("tiny")
    preset = tmp_path / "preset"
    loaded.backbone.save_to_preset(str(preset))
    loaded.tokenizer.save_to_preset(str(preset))
    again = load_backbone(str(preset), exact_gelu="true")
    texts = tf.constant(["stocks fell after the deal"])
    x = TextPacker(loaded.tokenizer, 16)(texts)
    np.testing.assert_array_equal(TextPacker(again.tokenizer, 16)(texts)["token_ids"],
                                  x["token_ids"])
    np.testing.assert_allclose(again.backbone(x)["sequence_output"],
                               loaded.backbone(x)["sequence_output"], atol=1e-6)


def test_mean_pooling_ignores_padding():
    loaded = load_backbone("tiny")
    packer = TextPacker(loaded.tokenizer, 32)
    inputs = backbone_inputs()
    import keras

    model = keras.Model(inputs, pooled_output(loaded.backbone, inputs, "mean"))
    alone = model(packer(tf.constant(["stocks fell"])))
    padded = model(packer(tf.constant(["stocks fell", "a much longer sentence about the market"])))
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-5)
