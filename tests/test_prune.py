"""Structured pruning: unit selection, a physically smaller backbone that computes exactly
what the unpruned one computes with the pruned units zeroed, presets that reload, a bad
fraction as a one-line error, and the distil -> prune -> quantise chain as real runs."""
import json

import numpy as np
import pytest

from tfapp.compression.pruning import check_fraction, normalise_per_layer, units_to_keep
from tfapp.core.errors import ConfigError

from conftest import keyword_sentiment_csv, run_cli


def test_units_to_keep_removes_the_lowest_globally_but_never_a_layers_last():
    scores = [np.array([0.9, 0.1, 0.5]), np.array([0.2, 0.3, 0.8])]
    assert units_to_keep(scores, 0.0) == [[0, 1, 2], [0, 1, 2]]
    assert units_to_keep(scores, 2 / 6) == [[0, 2], [1, 2]]  # 0.1 and 0.2 go
    assert units_to_keep(scores, 0.5) == [[0, 2], [2]]  # then 0.3
    # 5 of 6 asked: each layer keeps its best unit, so only 4 go.
    assert units_to_keep(scores, 5 / 6) == [[0], [2]]
    normalised = normalise_per_layer([np.array([3.0, 4.0]), np.zeros(2)])
    np.testing.assert_allclose(normalised[0], [0.6, 0.8])
    np.testing.assert_allclose(normalised[1], [0.0, 0.0])


def test_bad_fractions_are_config_errors():
    assert check_fraction("--heads", "0.25") == 0.25
    for bad in ("1", "1.5", "-0.1", "half"):
        with pytest.raises(ConfigError, match="--heads must be"):
            check_fraction("--heads", bad)


def four_head_backbone():
    import keras
    import keras_hub

    from tfapp.core.backbone import load_backbone

    keras.utils.set_random_seed(3)
    tiny = load_backbone("tiny")
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=tiny.backbone.vocabulary_size, num_layers=2, num_heads=4,
        hidden_dim=32, intermediate_dim=64, max_sequence_length=64, dropout=0.0)
    return backbone, tiny.tokenizer


def features(n=3, length=9, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 60, size=(n, length)).astype("int32")
    mask = np.ones((n, length), dtype="int32")
    mask[0, 6:] = 0  # padding must be handled the same way too
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}


KEEP_HEADS = [[0, 2], [3]]
KEEP_NEURONS = [list(range(0, 64, 2)), list(range(10, 50))]


def test_pruned_backbone_has_the_expected_shapes_and_fewer_parameters():
    from tfapp.compression.pruning import pruned_backbone
    from tfapp.core.pruned_bert import PrunedBertBackbone, layer_shapes

    backbone, _ = four_head_backbone()
    small = pruned_backbone(backbone, KEEP_HEADS, KEEP_NEURONS)
    assert isinstance(small, PrunedBertBackbone)
    assert layer_shapes(small) == ([2, 1], [32, 40], 8)
    first, second = small.transformer_layers
    assert tuple(first._self_attention_layer._query_dense.kernel.shape) == (32, 2, 8)
    assert tuple(second._self_attention_layer._output_dense.kernel.shape) == (1, 8, 32)
    assert tuple(first._feedforward_intermediate_dense.kernel.shape) == (32, 32)
    assert tuple(second._feedforward_output_dense.kernel.shape) == (40, 32)
    assert small.count_params() < backbone.count_params()


def test_pruned_outputs_equal_the_unpruned_model_with_pruned_units_zeroed():
    from tfapp.compression.pruning import pruned_backbone

    backbone, _ = four_head_backbone()
    small = pruned_backbone(backbone, KEEP_HEADS, KEEP_NEURONS)
    x = features()
    # Pruning is not a no-op: the full model differs before its units are zeroed.
    full_before = backbone(x)["sequence_output"].numpy()
    for layer, heads, neurons in zip(backbone.transformer_layers, KEEP_HEADS, KEEP_NEURONS):
        out = layer._self_attention_layer._output_dense
        kernel, bias = out.get_weights()
        kernel[[h for h in range(4) if h not in heads]] = 0
        out.set_weights([kernel, bias])
        ffn = layer._feedforward_output_dense
        kernel, bias = ffn.get_weights()
        kernel[[i for i in range(64) if i not in neurons]] = 0
        ffn.set_weights([kernel, bias])
    mask = x["padding_mask"].astype(bool)
    for key in ("sequence_output", "pooled_output"):
        want, got = backbone(x)[key].numpy(), small(x)[key].numpy()
        if key == "sequence_output":
            want, got = want[mask], got[mask]
        np.testing.assert_allclose(got, want, atol=2e-5)
    assert np.abs(full_before[mask] - backbone(x)["sequence_output"].numpy()[mask]).max() > 1e-3


def test_pruned_preset_reloads_through_the_normal_backbone_loader(tmp_path):
    from tfapp.compression.pruning import pruned_backbone
    from tfapp.core.backbone import LoadedBackbone, load_backbone, policy_clone, save_preset
    from tfapp.core.pruned_bert import PrunedBertBackbone

    backbone, tokenizer = four_head_backbone()
    small = pruned_backbone(backbone, KEEP_HEADS, KEEP_NEURONS)
    save_preset(LoadedBackbone(small, tokenizer, "pruned", False), tmp_path / "p", {})
    again = load_backbone(str(tmp_path / "p"))
    assert isinstance(again.backbone, PrunedBertBackbone)
    x = features(seed=1)
    np.testing.assert_allclose(again.backbone(x)["pooled_output"].numpy(),
                               small(x)["pooled_output"].numpy(), atol=1e-6)
    clone = policy_clone(again)  # the export path rebuilds the same architecture
    assert clone.backbone.layer_heads == [2, 1]


def test_bad_fraction_on_the_command_line_is_one_line(tmp_path):
    result = run_cli("tfapp.prune", "--run", tmp_path, "--heads", "1.2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --heads must be in [0, 1) (the fraction of units removed), got 1.2")
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """A tiny teacher, distilled to 1 layer, pruned, then quantised: each step a run."""
    base = tmp_path_factory.mktemp("chain")
    data = keyword_sentiment_csv(base / "keywords.csv")
    teacher, student, pruned = base / "teacher", base / "student", base / "pruned"
    steps = [("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", 4,
              "--set", f"data.train_file={data}", "--set", "sentiment.topic_column=null",
              "--set", "optimizer.learning_rate=2e-3", "--set", "trainer.global_batch_size=16",
              "--set", "backbone.max_seq_length=32", "--run-dir", teacher),
             ("tfapp.distill", "--teacher", teacher, "--student-layers", 1, "--epochs", 2,
              "--run-dir", student),
             ("tfapp.prune", "--run", student, "--heads", 0.5, "--ffn", 0.5, "--epochs", 2,
              "--batches", 8, "--run-dir", pruned),
             ("tfapp.quantize", "--run", pruned)]
    outputs = []
    for step in steps:
        result = run_cli(*step)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        outputs.append(result.stdout)
    return teacher, student, pruned, outputs


@pytest.mark.integration  # four CLI jobs: train, distill, prune, quantize
def test_a_pruned_run_is_smaller_trains_and_exports(chain):
    import keras

    from tfapp.training.restore import restore_run

    teacher, student, pruned, outputs = chain
    report = json.loads((pruned / "pruning.json").read_text())
    assert report["heads_per_layer"] == [1]  # 1 of the tiny model's 2 heads
    assert report["ffn_width_per_layer"] == [32]
    assert report["parameters_after"] < report["parameters_before"]
    metrics = json.loads((pruned / "metrics.json").read_text())
    history = metrics["history"]["loss"]
    assert len(history) == 2 and history[-1] < history[0]  # it trains
    assert metrics["test"]["sentiment"]["accuracy"] >= 0.6
    restored = restore_run(pruned)
    backbone = next(layer for layer in restored.model.layers
                    if isinstance(layer, keras.Model) and hasattr(layer, "layer_heads"))
    assert backbone.layer_heads == [1] and backbone.layer_intermediate_dims == [32]
    assert list((pruned / "export" / "sentiment").iterdir())
    assert "pruned: heads per layer [1]" in outputs[2]


@pytest.mark.integration  # four CLI jobs: train, distill, prune, quantize
def test_the_chain_ends_in_an_int8_export_that_agrees_with_float(chain):
    from conftest import serve_sentiment_fresh

    _, _, pruned, _ = chain
    report = json.loads((pruned / "quantization.json").read_text())
    assert min(report["agreement"]["test"].values()) >= 0.9
    texts = [f"{s} {k} {t}" for s in ("shares", "the fund") for k in
             ("soared", "slumped", "were flat", "rallied", "plunged")
             for t in ("after earnings", "in trading")]
    float_out = serve_sentiment_fresh(pruned / "export" / "sentiment" / "1", texts)
    int8_out = serve_sentiment_fresh(pruned / "export-int8" / "sentiment" / "1", texts)
    same = np.mean([a == b for a, b in zip(float_out["labels"], int8_out["labels"])])
    assert same >= 0.9
    np.testing.assert_allclose(int8_out["probabilities"], float_out["probabilities"],
                               atol=0.1)
