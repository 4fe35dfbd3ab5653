"""--recipe NAME / `recipe: NAME`: a shipped recipe (configs/recipes/NAME.yaml) merged over
the config; --set still wins."""
import argparse

import pytest
import yaml

from conftest import REPO


def _resolve(*argv):
    from tfapp.cli import add_config_args, resolve_config

    parser = argparse.ArgumentParser()
    add_config_args(parser)
    return resolve_config(parser.parse_args(["--task", "sentiment", *argv]))[0]


def test_the_best_recipe_sets_what_its_file_says_and_set_still_wins():
    recipe = yaml.safe_load((REPO / "configs" / "recipes" / "best.yaml").read_text())
    cfg = _resolve("--recipe", "best")
    for name, section in recipe["levers"].items():
        for key, value in section.items():
            assert getattr(getattr(cfg.levers, name), key) == value
    assert _resolve().levers.ensemble.members == 0
    assert _resolve("--recipe", "best", "--set", "levers.ensemble.members=2"
                    ).levers.ensemble.members == 2


def test_a_config_file_can_name_its_recipe(tmp_path):
    path = tmp_path / "bank.yaml"
    path.write_text("task: sentiment\nrecipe: best\ntrainer:\n  epochs: 5\n")
    cfg = _resolve("--config", str(path))
    assert cfg.trainer.epochs == 5 and cfg.levers.ensemble.members == 3
    assert "recipe" not in cfg.to_dict()


def test_an_unknown_recipe_is_a_one_line_error_naming_the_known_ones():
    from tfapp.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown recipe 'fastest' \(known: best\)"):
        _resolve("--recipe", "fastest")
