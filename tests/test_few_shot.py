"""levers.few_shot: a SetFit-style contrastive stage on same/different-class pairs before
the head trains (method setfit, or auto for few examples per class)."""
import json

import numpy as np
import pytest

from conftest import run_cli, tiny_config


def test_pairs_match_classes_and_never_pair_an_example_with_itself():
    from tfapp.levers.few_shot import contrastive_pairs

    classes = np.array([0, 0, 0, 1, 1, 2])
    first, second, same = contrastive_pairs(classes, 3, seed=0)
    assert len(same) == 3 * (5 * 2 + 1)  # class 2's only example has no positive partner
    assert (first != second).all()
    np.testing.assert_array_equal(same, (classes[first] == classes[second]).astype(float))
    assert same.sum() == 15


def test_auto_runs_the_stage_only_for_few_examples_per_class(tmp_path):
    from tfapp.levers.few_shot import FewShot

    cfg = tiny_config(tmp_path, **{"levers.few_shot.method": "auto",
                                   "levers.few_shot.max_per_class": 4})
    lever = FewShot(cfg, cfg.levers.few_shot)
    assert lever.applies(np.array([0, 0, 1, 1, 1, 1]))
    assert not lever.applies(np.array([0] * 5 + [1]))


def test_setfit_stage_then_the_head_alone_on_the_frozen_encoder(tmp_path):
    from tfapp.core.backbone import load_backbone
    from tfapp.training.restore import restore_run

    run_dir = tmp_path / "run"
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", "1",
                     "--run-dir", run_dir, "--set", "train.method=setfit",
                     "--set", "levers.few_shot.pairs_per_example=2",
                     "--set", "levers.few_shot.head_only=true")
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run_dir / "metrics.json").read_text())["few_shot"]
    assert record["ran"] and record["head_only"] and record["pairs"] > 0
    stage = load_backbone(str(run_dir / "few_shot" / "backbone")).backbone
    fresh = load_backbone("tiny").backbone
    served = restore_run(run_dir).model.get_layer("bert_backbone")
    name = "token_embedding"
    # The stage trained the encoder; the head-only fine-tune left it as the stage made it.
    assert not np.allclose(stage.get_layer(name).get_weights()[0],
                           fresh.get_layer(name).get_weights()[0])
    np.testing.assert_allclose(served.get_layer(name).get_weights()[0],
                               stage.get_layer(name).get_weights()[0])
    assert "few-shot: contrastive stage" in (run_dir / "MODEL_CARD.md").read_text()


def test_bad_method_is_a_one_line_config_error(tmp_path):
    from tfapp.core.errors import ConfigError

    with pytest.raises(ConfigError, match="levers.few_shot.method must be one of finetune"):
        tiny_config(tmp_path, **{"levers.few_shot.method": "prompt"})


def test_a_task_without_classes_is_refused(tmp_path):
    result = run_cli("tfapp.train", "--task", "recommend", "--backbone", "tiny",
                     "--run-dir", tmp_path / "run", "--set", "levers.few_shot.method=setfit")
    assert result.returncode == 2
    assert "the recommend task has no classes to pair" in result.stderr.strip().splitlines()[-1]
