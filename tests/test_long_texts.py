"""Long texts: data.truncation (head | tail | head_tail) keeps the configured word pieces,
identically in training input and inside the export; data.length_percentile picks the max
length from the training data."""
import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_cli, tiny_config

LONG = ("shares fell sharply after the bank cut its dividend and a profit warning hit "
        "markets today while bond yields rose again")


@pytest.fixture(scope="module")
def tokenizer():
    from tfapp.core.backbone import load_backbone

    return load_backbone("tiny").tokenizer


def _ids(tokenizer, max_len, truncation, texts):
    from tfapp.core.backbone import TextPacker

    packer = TextPacker(tokenizer, max_len, truncation)
    full = packer.word_pieces(tf.constant(texts)).to_list()
    return full, packer.ragged_ids(tf.constant(texts)).to_list(), packer


@pytest.mark.parametrize("truncation", ["head", "tail", "head_tail"])
def test_truncation_keeps_the_configured_pieces(tokenizer, truncation):
    full, packed, packer = _ids(tokenizer, 18, truncation, [LONG, "shares fell"])
    pieces, budget = full[0], 16
    assert len(pieces) > 2 * budget  # the text really is long
    expected = {"head": pieces[:budget], "tail": pieces[-budget:],
                "head_tail": pieces[:4] + pieces[-12:]}[truncation]
    assert packed[0] == [packer.cls_id, *expected, packer.sep_id]
    # A text that fits is never cut, whatever the mode.
    assert packed[1] == [packer.cls_id, *full[1], packer.sep_id]


def test_unknown_truncation_is_refused(tokenizer, tmp_path):
    from tfapp.core.backbone import TextPacker
    from tfapp.core.errors import ConfigError

    with pytest.raises(ValueError, match="truncation must be one of head, tail, head_tail"):
        TextPacker(tokenizer, 16, "middle")
    with pytest.raises(ConfigError, match="data.truncation must be head, tail or head_tail"):
        tiny_config(tmp_path, **{"data.truncation": "middle"})
    with pytest.raises(ConfigError, match=r"data.length_percentile must be null or in \[50"):
        tiny_config(tmp_path, **{"data.length_percentile": 120})


def test_length_percentile_sets_max_length_from_training_texts(tmp_path, tokenizer):
    from tfapp.core.backbone import TextPacker, load_backbone
    from tfapp.core.task_contract import get_task
    from tfapp.training.inputs import choose_max_length

    cfg = tiny_config(tmp_path, **{"data.length_percentile": 90,
                                   "backbone.max_seq_length": 128})
    task = get_task("sentiment")(cfg)
    splits = task.load_splits()
    lengths = TextPacker(tokenizer, 128).token_lengths(task.texts(splits["train"])) + 2
    choose_max_length(cfg, task, load_backbone("tiny"), splits)
    expected = int(np.ceil(np.percentile(lengths, 90) / 8) * 8)
    assert cfg.backbone.max_seq_length == min(128, expected)
    assert cfg.backbone.max_seq_length % 8 == 0
    assert cfg.backbone.max_seq_length >= np.percentile(lengths, 90)
    # The configured length stays a cap.
    capped = tiny_config(tmp_path, **{"data.length_percentile": 100,
                                      "backbone.max_seq_length": 8})
    choose_max_length(capped, task, load_backbone("tiny"), splits)
    assert capped.backbone.max_seq_length == 8


def test_export_truncates_like_training(tmp_path):
    """Tail truncation inside the served graph: two long texts that differ only in their
    first words score the same, and the resolved config records the chosen mode."""
    import yaml

    run_dir = tmp_path / "run"
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", 1,
                     "--set", "data.truncation=tail", "--set", "backbone.max_seq_length=16",
                     "--set", "sentiment.topic_column=null", "--run-dir", run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["data"]["truncation"] == "tail"
    code = f"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
model = tf.saved_model.load({str(run_dir / 'export' / 'sentiment' / '1')!r})
texts = json.loads(sys.argv[1])
out = model.signatures["serving_default"](text=tf.constant(texts))
print(json.dumps(out["probabilities"].numpy().tolist()))
"""
    texts = ["great record profit " + LONG, "terrible loss disaster " + LONG, "great record"]
    import subprocess
    import sys

    served = subprocess.run([sys.executable, "-c", code, json.dumps(texts)],
                            capture_output=True, text=True, timeout=300)
    assert served.returncode == 0, served.stderr[-3000:]
    probs = np.array(json.loads(served.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-6)
    assert not np.allclose(probs[0], probs[2], atol=1e-6)
