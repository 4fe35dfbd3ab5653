"""bench.quality's tables from a result dict: best recipe per data set, default vs
reference, and each lever's effect next to the default's."""
from bench.quality_report import best_line, lever_effects, markdown


def summary(**means):
    return {recipe: {metric: {"mean": v, "std": 0.01} for metric, v in
                     {**values, "seconds": 60.0, "epochs_run": 3.0}.items()}
            for recipe, values in means.items()}


RESULT = {
    "suite": "quick", "seeds": [1, 2, 3], "command": "python -m bench.quality",
    "date": "2026-01-01T00:00:00", "machine": {"cpu": "test cpu", "cores": 2},
    "wall_seconds": 900.0, "recipes": ["reference", "default", "head_lr", "ema"],
    "overrides": {"default": [], "head_lr": ["optimizer.head_lr_multiplier=20"],
                  "ema": ["levers.ema.momentum=0.98"]},
    "datasets": {
        "tfns": {"sizes": {"train": 300, "test": 750}, "summary": summary(
            reference={"accuracy": 0.70, "macro_f1": 0.60},
            default={"accuracy": 0.75, "macro_f1": 0.65},
            head_lr={"accuracy": 0.76, "macro_f1": 0.67},
            ema={"accuracy": 0.74, "macro_f1": 0.66})},
        "clinc150_retrieval": {"sizes": {"train": 300}, "summary": summary(
            reference={"recall@1": 0.3, "mrr": 0.40},
            default={"recall@1": 0.5, "mrr": 0.60},
            head_lr={"recall@1": 0.52, "mrr": 0.61},
            ema={"recall@1": 0.45, "mrr": 0.55})},
    },
}


def test_best_line_names_the_best_recipe_and_the_default_gain():
    line = best_line("tfns", RESULT["datasets"]["tfns"]["summary"])
    assert line.startswith("Best recipe found: **head_lr** (macro_f1 0.6700, +7.00 points "
                           "over the reference).")
    assert "Default minus reference: +5.00 points macro_f1." in line


def test_lever_effects_are_differences_to_the_default_on_every_data_set():
    lines = lever_effects(RESULT)
    head_lr = next(line for line in lines if line.startswith("| head_lr |"))
    ema = next(line for line in lines if line.startswith("| ema |"))
    assert head_lr == "| head_lr | +2.00 | +1.00 | yes |"
    assert ema == "| ema | +1.00 | -5.00 | no |"  # helped on one data set only


def test_markdown_has_a_table_per_data_set_and_the_suite_time():
    text = markdown(RESULT)
    assert "## tfns (train 300, test 750)" in text and "## clinc150_retrieval" in text
    assert "| reference | 0.7000 ± 0.0100 | 0.6000 ± 0.0100 | 60 | 3.0 |" in text
    assert "Whole suite: 15.0 minutes." in text
    assert "- `head_lr`: optimizer.head_lr_multiplier=20" in text
    assert "CLINC150 intent mode" not in text  # no intent-mode table in this result


def test_seconds_to_best_epoch_sums_the_epochs_up_to_the_first_best():
    from bench.quality import seconds_to_best_epoch

    history = {"val_macro_f1": [0.5, 0.7, 0.7, 0.6], "examples_per_second": [10, 20, 20, 40]}
    # 400 examples an epoch: 40 s + 20 s up to epoch 2 (the first of the tied best).
    assert seconds_to_best_epoch(history, 400) == {"best_epoch": 2, "seconds_to_best": 60.0}
    # A soup of epochs 2 and 3 needs epoch 3 too, and its own validation passes.
    soup = {"epochs": [2, 3], "seconds": 5.0}
    assert seconds_to_best_epoch(history, 400, soup) == {"best_epoch": 3, "seconds_to_best": 85.0}
