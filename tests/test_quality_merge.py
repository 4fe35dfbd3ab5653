"""bench.quality_merge: several bench.quality runs as one table, like for like only."""
import json

import pytest

from bench.quality_merge import main


def run(recipes: dict, seeds=(1, 2, 3), sizes=None, suite="full", wall=600.0,
        shipped=None) -> dict:
    """A bench.quality result: recipe -> one macro-F1 per seed on TFNS."""
    return {"suite": suite, "shipped": shipped or {"trainer.epochs": 4, "x.lr": 1},
            "seeds": list(seeds), "recipes": list(recipes),
            "overrides": {r: [f"x.{r}=1"] for r in recipes if r != "reference"},
            "command": "python -m bench.quality --recipes " + ",".join(recipes),
            "date": "2026-01-01T00:00:00", "machine": {"cpu": "test cpu", "cores": 2},
            "wall_seconds": wall,
            "datasets": {"tfns": {
                "sizes": sizes or {"train": 9543, "test": 2388},
                "runs": {r: [{"accuracy": 0.8, "macro_f1": f, "seconds": 600.0,
                              "epochs_run": 4} for f in scores]
                         for r, scores in recipes.items()},
                "summary": {}}}}


def write(tmp_path, name, result):
    path = tmp_path / name
    path.write_text(json.dumps(result))
    return str(path)


def test_runs_merge_into_one_table_with_lever_effects_and_sources(tmp_path):
    base = write(tmp_path, "base.json", run({"reference": [0.80, 0.82, 0.84],
                                             "default": [0.83, 0.84, 0.85]}))
    lever = write(tmp_path, "lever.json", run({"ema_slow": [0.85, 0.86, 0.87]}, wall=300.0))
    main([lever, base, "--out", str(tmp_path / "out")])
    merged = json.loads((tmp_path / "out" / "quality.json").read_text())
    assert merged["recipes"] == ["reference", "default", "ema_slow"]
    summary = merged["datasets"]["tfns"]["summary"]
    assert summary["default"]["macro_f1"]["mean"] == pytest.approx(0.84)
    assert summary["ema_slow"]["macro_f1"]["mean"] == pytest.approx(0.86)
    assert merged["wall_seconds"] == 900.0
    text = (tmp_path / "out" / "QUALITY.md").read_text()
    assert "| ema_slow | +2.00 | yes |" in text
    assert "Best recipe found: **ema_slow**" in text
    assert "--recipes ema_slow` on 2026-01-01T00:00:00, 5.0 minutes" in text


def test_seeds_keeps_those_seeds_of_every_run(tmp_path):
    base = write(tmp_path, "base.json", run({"default": [0.83, 0.90, 0.90]}))
    screen = write(tmp_path, "screen.json", run({"lr": [0.81]}, seeds=(1,)))
    main([base, screen, "--seeds", "1", "--out", str(tmp_path / "out")])
    merged = json.loads((tmp_path / "out" / "quality.json").read_text())
    assert merged["seeds"] == [1]
    assert merged["datasets"]["tfns"]["runs"]["default"][0]["macro_f1"] == 0.83
    text = (tmp_path / "out" / "QUALITY.md").read_text()
    assert "| lr | -2.00 | no |" in text
    assert "One seed: 1;" in text and "| default | 0.8000 | 0.8300 | 600 | 4.0 |" in text


@pytest.mark.parametrize("other, message", [
    (run({"lr": [0.81]}, seeds=(1,)), "seed 2 was not run"),
    (run({"lr": [0.8] * 3}, sizes={"train": 239, "test": 500}), "tfns sizes"),
    (run({"lr": [0.8] * 3}, suite="quick"), "suite quick differs"),
    (run({"lr": [0.8] * 3}, shipped={"trainer.epochs": 3, "x.lr": 1}),
     "shipped trainer.epochs is 3, "),
])
def test_unlike_runs_are_refused_with_one_line(tmp_path, capsys, other, message):
    base = write(tmp_path, "base.json", run({"default": [0.83, 0.84, 0.85]}))
    path = write(tmp_path, "other.json", other)
    with pytest.raises(SystemExit) as e:
        main([base, path, "--out", str(tmp_path / "out")])
    assert str(e.value).startswith(f"error: {path}: ")
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out" / "quality.json").exists()


def test_a_file_that_is_not_a_result_is_a_one_line_error(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{\"suite\": \"full\"}")
    with pytest.raises(SystemExit, match=r"x.json: not a bench.quality result \(no 'seeds'"):
        main([str(path), "--out", str(tmp_path / "out")])


def test_runs_that_predate_the_shipped_record_still_merge(tmp_path):
    old = run({"default": [0.83, 0.84, 0.85]})
    del old["shipped"]
    base = write(tmp_path, "old.json", old)
    lever = write(tmp_path, "new.json", run({"lr": [0.8] * 3}))
    main([base, lever, "--out", str(tmp_path / "out")])
    merged = json.loads((tmp_path / "out" / "quality.json").read_text())
    assert merged["recipes"] == ["default", "lr"]
    assert merged["shipped"] == {"trainer.epochs": 4, "x.lr": 1}
    # An older run first still checks the recorded ones against each other.
    other = write(tmp_path, "other.json", run({"ema": [0.8] * 3},
                                              shipped={"trainer.epochs": 3, "x.lr": 1}))
    with pytest.raises(SystemExit,
                       match="other.json: shipped trainer.epochs is 3, .*new.json's is 4"):
        main([base, lever, other, "--out", str(tmp_path / "out2")])


def test_a_recipes_seeds_join_from_runs_made_side_by_side(tmp_path):
    base = write(tmp_path, "base.json", run({"default": [0.83, 0.84, 0.85]}))
    one = write(tmp_path, "ref1.json", run({"reference": [0.80]}, seeds=(1,)))
    rest = write(tmp_path, "ref23.json", run({"reference": [0.81, 0.90]}, seeds=(2, 3)))
    main([base, rest, one, "--out", str(tmp_path / "out")])
    merged = json.loads((tmp_path / "out" / "quality.json").read_text())
    assert merged["seeds"] == [1, 2, 3]
    runs = merged["datasets"]["tfns"]["runs"]["reference"]
    assert [r["macro_f1"] for r in runs] == [0.80, 0.81, 0.90]  # in seed order
    assert len(merged["sources"]) == 3


def test_recipes_keeps_only_the_named_recipes(tmp_path):
    base = write(tmp_path, "base.json", run({"reference": [0.80, 0.82, 0.84],
                                             "default": [0.83, 0.84, 0.85]}))
    # A recipe run with one seed only would stop the merge unless it is left out.
    screen = write(tmp_path, "screen.json", run({"lr": [0.81]}, seeds=(1,)))
    lever = write(tmp_path, "lever.json", run({"ema_slow": [0.85, 0.86, 0.87]}))
    main([base, screen, lever, "--recipes", "reference,ema_slow", "--out", str(tmp_path / "out")])
    merged = json.loads((tmp_path / "out" / "quality.json").read_text())
    assert merged["recipes"] == ["reference", "ema_slow"]
    assert set(merged["datasets"]["tfns"]["runs"]) == {"reference", "ema_slow"}
    assert set(merged["overrides"]) == {"ema_slow"}
    text = (tmp_path / "out" / "QUALITY.md").read_text()
    assert "| default |" not in text and "| lr |" not in text
