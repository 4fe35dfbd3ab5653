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
    recipe = yaml.safe_load((REPO / "configs" / "recipes" / "best.yaml").read_text()) or {}
    cfg, default = _resolve("--recipe", "best").to_dict(), _resolve().to_dict()
    for section, values in recipe.items():
        for key, value in values.items():
            assert cfg[section][key] == {**default[section][key], **value} \
                if isinstance(value, dict) else value
    unchanged = {s for s in default if s not in recipe}
    assert {s: cfg[s] for s in unchanged} == {s: default[s] for s in unchanged}
    assert _resolve("--recipe", "best", "--set", "levers.ensemble.members=2"
                    ).levers.ensemble.members == 2


def test_a_config_file_can_name_its_recipe(tmp_path, monkeypatch):
    (tmp_path / "configs" / "recipes").mkdir(parents=True)
    (tmp_path / "configs" / "recipes" / "mine.yaml").write_text(
        "levers:\n  ensemble:\n    members: 3\n")
    monkeypatch.chdir(tmp_path)  # a recipe of the working directory's configs/recipes
    path = tmp_path / "bank.yaml"
    path.write_text("task: sentiment\nrecipe: mine\ntrainer:\n  epochs: 5\n")
    cfg = _resolve("--config", str(path))
    assert cfg.trainer.epochs == 5 and cfg.levers.ensemble.members == 3
    assert "recipe" not in cfg.to_dict()


def test_an_unknown_recipe_is_a_one_line_error_naming_the_known_ones():
    from tfapp.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown recipe 'fastest' \(known: best"):
        _resolve("--recipe", "fastest")
