"""bench.quality's recipes are valid configs, and every lever it measures changes the
shipped config (a lever that became the default is measured by switching it off)."""
import pytest

from bench.quality_recipes import LEVERS, RECIPES, SUITES, shipped_settings
from tfapp.core.config import apply_overrides, build_config, read_yaml
from tfapp.core.task_contract import get_task

from conftest import REPO

# class_weights is a sentiment key; every other recipe applies to both tasks.
TASKS = {"class_weights": ("sentiment",)}


def resolved(task: str, overrides: list[str]) -> dict:
    raw = apply_overrides(read_yaml(REPO / "configs" / f"{task}.yaml"), overrides)
    return build_config(raw, get_task(task).Config, "recipe").to_dict()


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_overrides_are_valid_config(recipe):
    for task in TASKS.get(recipe, ("sentiment", "qa")):
        resolved(task, RECIPES[recipe])  # raises ConfigError on an unknown key or bad value


@pytest.mark.parametrize("recipe", LEVERS)
def test_every_lever_differs_from_the_shipped_default(recipe):
    for task in TASKS.get(recipe, ("sentiment", "qa")):
        assert resolved(task, RECIPES[recipe]) != resolved(task, []), recipe


def test_suites_name_known_recipes():
    for suite in SUITES.values():
        assert all(r == "reference" or r in RECIPES for r in suite.recipes)


def test_shipped_settings_are_the_shipped_values_of_every_recipe_key():
    shipped = shipped_settings()
    keys = {s.split("=", 1)[0] for sets in RECIPES.values() for s in sets}
    assert set(shipped) == keys
    sentiment = resolved("sentiment", [])
    for key, value in shipped.items():
        node = sentiment
        for part in key.split("."):
            node = node[part]
        assert node == value, key


@pytest.mark.parametrize("args", [["--seeds", "0"], ["--first-seed", "0"]])
def test_bench_quality_refuses_bad_seeds_before_any_work(tmp_path, args):
    from bench.quality import main

    with pytest.raises(SystemExit, match="--seeds and --first-seed must be >= 1"):
        main(args + ["--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "work").exists()
