"""recommend.data_format: interactions — leave-last-out splits by time without leakage,
seeded negatives from never-interacted items, one-line errors, the popularity and
zero-shot baselines on cases with known ranks, and a run on a generated log."""
import json
import re

import numpy as np
import pytest

from conftest import run_cli, write_csv

ITEMS = [{"item_id": f"m{i}", "title": f"movie {i}", "genres": g, "overview": o}
         for i, (g, o) in enumerate([
             ("comedy", "a funny film about friends"), ("horror", "a scary night in a house"),
             ("comedy", "two friends laugh on a trip"), ("drama", "a family story of loss"),
             ("horror", "monsters in the dark woods"), ("drama", "a long war and a letter"),
             ("comedy", "a wedding goes wrong"), ("horror", "a ghost haunts a school"),
             ("drama", "a teacher changes a town"), ("comedy", "a dog runs for mayor")])]


def _config(tmp_path, log_rows, **params):
    from tfapp.core.config import apply_overrides, build_config
    from tfapp.core.task_contract import get_task

    items = write_csv(tmp_path / "items.csv", ITEMS)
    log = write_csv(tmp_path / "log.csv", log_rows)
    sets = {"task": "recommend", "backbone.name": "tiny", "data.train_file": str(log),
            "recommend.items_file": str(items), "recommend.data_format": "interactions",
            "recommend.item_text_columns": ["title", "genres", "overview"],
            "recommend.rating_column": "rating", "recommend.negatives": 3,
            "recommend.eval_negatives": 4, **{f"recommend.{k}": v for k, v in params.items()}}
    raw = apply_overrides({}, [f"{k}={json.dumps(v)}" for k, v in sets.items()])
    return get_task("recommend")(build_config(raw, get_task("recommend").Config, "test"))


def _rows(user, events):
    return [{"user_id": user, "item_id": f"m{i}", "rating": r, "timestamp": t}
            for i, r, t in events]


LOG = (_rows("u1", [(3, 5.0, 40), (0, 4.0, 10), (1, 4.5, 20), (5, 2.0, 25), (2, 4.0, 30)])
       + _rows("u2", [(4, 5.0, 1), (6, 3.0, 2), (7, 4.0, 3)])  # 2 positives: too few
       + _rows("u3", [(8, 4.0, 5), (9, 4.0, 5), (0, 5.0, 6), (1, 5.0, 7), (2, 4.0, 8)]))


def test_leave_last_out_splits_by_time_without_leakage(tmp_path):
    task = _config(tmp_path, LOG)
    splits = task.load_splits()
    train, val, test = splits["train"], splits["validation"], splits["test"]
    by_user = lambda imps, u: [(h, c) for i, h, c in  # noqa: E731
                               zip(imps.ids, imps.history, imps.candidates)
                               if i.startswith(u + "#")]
    # u1's positives by time: m0 (10), m1 (20), m2 (30), m3 (40); m5 was rated 2: negative.
    assert [(h, c[0]) for h, c in by_user(train, "u1")] == [([], 0), ([0], 1)]
    assert [(h, c[0]) for h, c in by_user(val, "u1")] == [([0, 1], 2)]
    assert [(h, c[0]) for h, c in by_user(test, "u1")] == [([0, 1, 2], 3)]
    # Equal timestamps keep file order: u3 is m8, m9, m0 | m1 | m2.
    assert [c[0] for _, c in by_user(train, "u3")] == [8, 9, 0]
    assert not by_user(train, "u2") and task.skipped  # u2 counted, not trained on
    for user, seen in (("u1", {0, 1, 2, 3, 5}), ("u3", {8, 9, 0, 1, 2})):
        held_out = {c[0] for _, c in by_user(val, user) + by_user(test, user)}
        for history, candidates in by_user(train, user):
            assert not held_out & set(history) and candidates[0] not in held_out
        for imps, k in ((train, 3), (val, 4), (test, 4)):
            for _, candidates in by_user(imps, user):
                negatives = candidates[1:]
                assert len(negatives) == k and len(set(negatives)) == k
                assert not set(negatives) & seen  # never-interacted items only
    assert all(clicks == [1] + [0] * (len(clicks) - 1) for clicks in test.clicks)
    # Popularity counts training positives only.
    assert task.popularity.tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 1, 1]
    (tmp_path / "b").mkdir()
    again = _config(tmp_path / "b", LOG).load_splits()
    assert again["test"].candidates == test.candidates  # seeded


@pytest.mark.parametrize("rows, params, message", [
    (LOG[:1] + [{"user_id": "u1", "item_id": "m1", "rating": "great", "timestamp": 5}], {},
     "row 3: field 'rating': not a number: 'great'"),
    (LOG[:1] + [{"user_id": "u1", "item_id": "m1", "rating": 4, "timestamp": "noon"}], {},
     "row 3: field 'timestamp': not a number: 'noon'"),
    (LOG + [{"user_id": "u1", "item_id": "zz", "rating": 4, "timestamp": 5}],
     {"unknown_items": "fail"}, "field 'item_id': unknown item id 'zz'"),
    (LOG, {"short_users": "fail"}, "user 'u2' has 2 positive interaction(s)"),
])
def test_bad_interactions_are_one_line_errors(tmp_path, rows, params, message):
    from tfapp.core.errors import DataError

    with pytest.raises(DataError, match=re.escape(message)):
        _config(tmp_path, rows, **params).load_splits()


def test_unknown_items_are_counted_and_skipped(tmp_path):
    task = _config(tmp_path, LOG + [{"user_id": "u1", "item_id": "zz", "rating": 4,
                                     "timestamp": 5}])
    task.load_splits()
    counts = next(iter(task.skipped.values()))
    assert counts["unknown item references"] == 1


def test_baselines_on_known_ranks():
    from tasks.recommend.data import Impressions
    from tasks.recommend.evaluation import (
        cold_hit_rate,
        positive_rank,
        ranking_report,
        zero_shot_scores,
    )

    assert positive_rank(np.array([0.5, 0.9, 0.1, 0.5]), 0) == 2.5  # one above, one tie
    n = 12
    imps = Impressions(["a", "b"], [[11], []], [list(range(n)), [5, 0, 1]],
                       [[1] + [0] * (n - 1), [1, 0, 0]], np.zeros([2, 0]), "test")
    # User a: the positive (item 0) is beaten by items 1..10 and by item 11, which is in
    # a's history and so left out of the catalogue ranking.
    scores = np.zeros([2, n])
    scores[0] = [0.0] + [1.0] * 10 + [2.0]
    scores[1, [5, 0, 1]] = [3.0, 2.0, 1.0]
    report = ranking_report(imps, scores, (10,))
    assert report["hr@10"] == 0.5  # a: rank 12 of its 12 candidates; b: rank 1
    assert report["mrr"] == pytest.approx((1 / 12 + 1) / 2)
    assert report["catalogue"]["recall@10"] == 0.5  # a: rank 11 once 11 is excluded
    assert report["catalogue"]["recall@50"] == 1.0
    # Zero-shot: the user is the mean of the history's unit vectors; cosine.
    vectors = np.eye(n)
    vectors[3] = [1.0] + [0.0] * 10 + [1.0]  # item 3 is half like item 0, half like 11
    zs = zero_shot_scores(imps, vectors)
    assert zs[0, 11] == pytest.approx(1.0) and zs[0, 3] == pytest.approx(2 ** -0.5)
    assert not zs[1].any()  # no history: nothing to compare with
    popularity = np.array([0, 4, 4] + [1] * (n - 3))
    assert cold_hit_rate(imps, scores, popularity) == {"impressions": 1, "hr@10": 0.0}


@pytest.fixture(scope="module")
def log_run(tmp_path_factory):
    """A tiny run on a generated log: users like one genre, and all rated m3 badly."""
    tmp_path = tmp_path_factory.mktemp("log_run")
    rng = np.random.default_rng(0)
    rows = []
    for u in range(12):
        liked = [i for i in range(10) if ITEMS[i]["genres"] == ["comedy", "horror"][u % 2]]
        for t, i in enumerate(rng.permutation(liked).tolist() + [3]):
            rows.append({"user_id": f"u{u}", "item_id": f"m{i}",
                         "rating": 2.0 if i == 3 else 4.5, "timestamp": 100 * u + t})
    items = write_csv(tmp_path / "items.csv", ITEMS)
    log = write_csv(tmp_path / "log.csv", rows)
    run_dir = tmp_path / "run"
    result = run_cli("tfapp.train", "--task", "recommend", "--backbone", "tiny", "--epochs", 1,
                     "--set", "recommend.data_format=interactions",
                     "--set", f"data.train_file={log}", "--set", f"recommend.items_file={items}",
                     "--set", "recommend.item_text_columns=[title,genres,overview]",
                     "--set", "recommend.rating_column=rating", "--set", "recommend.top_k=3",
                     "--set", "recommend.history_cache=true",
                     "--set", "recommend.eval_negatives=5",
                     # float32: the catalogue test compares with in-process scores at 1e-5
                     "--set", "export.precision=float32", "--run-dir", run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, result.stdout


@pytest.mark.slow
@pytest.mark.integration
def test_interaction_log_trains_and_reports_baselines(log_run):
    run_dir, stdout = log_run
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert test["impressions"] == 12 and test["candidates"] == 12 * 6
    for name in ("popularity", "zero_shot_text", "item_knn", "bpr_mf"):
        assert 0 <= test["baselines"][name]["hr@10"] <= 1
        assert set(test["baselines"][name]["catalogue"]) == {"recall@10", "recall@50"}
    assert set(test["cold_items"]) == {"model", "popularity", "zero_shot_text", "item_knn",
                                       "bpr_mf"}
    for name in ("popularity", "zero_shot_text", "item_knn", "bpr_mf"):
        assert name in stdout
    assert (run_dir / "export" / "recommend" / "1" / "saved_model.pb").is_file()
    # ... and in TensorBoard, beside the model's own final metrics.
    import tensorflow as tf

    tags = {v.tag for path in (run_dir / "logs").rglob("events.out.tfevents*")
            for event in tf.compat.v1.train.summary_iterator(str(path))
            for v in event.summary.value}
    for name in ("popularity", "zero_shot_text", "item_knn", "bpr_mf"):
        assert f"final/test/baselines/{name}/hr@10" in tags, sorted(tags)[:20]
    assert "final/test/hr@10" in tags


RECOMMEND = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
model = tf.saved_model.load(sys.argv[1])
out = model.signatures["recommend"](history=tf.constant(json.loads(sys.argv[2])))
assert not {"tfapp", "tasks", "keras_hub"} & {m.split(".")[0] for m in sys.modules}
print(json.dumps({"ids": [[x.decode() for x in r] for r in out["item_ids"].numpy().tolist()],
                  "scores": out["scores"].numpy().tolist()}))
"""


def _recommend_fresh(export, histories):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", RECOMMEND, str(export),
                             json.dumps(histories)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _text(i):
    from tasks.recommend.data import item_text

    return item_text(ITEMS[i], ["title", "genres", "overview"])


@pytest.mark.slow
@pytest.mark.integration
def test_catalogue_top_k_in_a_fresh_process_equals_in_process_ranking(log_run):
    import tensorflow as tf

    from tfapp.training.restore import restore_run

    run_dir, _ = log_run
    histories = [[_text(0), _text(2), ""], [_text(1), "", ""], ["", "", ""]]
    served = _recommend_fresh(run_dir / "export" / "recommend" / "1", histories)
    cfg, task, model, packer = restore_run(run_dir)
    task.load_splits()
    vectors = task.item_vectors(model, packer)
    for history, ids, scores in zip(([0, 2], [1], []), served["ids"], served["scores"]):
        h = np.zeros([1, max(len(history), 1), vectors.shape[1]], np.float32)
        h[0, :len(history)] = vectors[history]
        mask = np.zeros([1, h.shape[1]], bool)
        mask[0, :len(history)] = True
        all_scores = model.score_vectors(tf.constant(h), tf.constant(mask),
                                         tf.constant(vectors[np.newaxis]),
                                         tf.zeros([1, 0])).numpy()[0]
        all_scores[history] = -np.inf  # items the user already has are not recommended
        order = np.argsort(-all_scores, kind="stable")[:3]
        assert ids == [task.item_ids[i] for i in order]
        np.testing.assert_allclose(scores, all_scores[order], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.integration
def test_reindex_adds_an_item_that_is_then_retrieved(log_run, tmp_path):
    run_dir, _ = log_run
    export = run_dir / "export" / "recommend"
    history = [[_text(1), "", ""]]
    top = _recommend_fresh(export / "1", history)["ids"][0][0]
    twin = dict(ITEMS[int(top[1:])], item_id="brand_new")  # same text: the same vector
    items = write_csv(tmp_path / "new_items.csv", ITEMS + [twin])
    result = run_cli("tfapp.recommend_index", "--model", export, "--items", items,
                     "--text-columns", "title,genres,overview")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (export / "2" / "assets.extra" / "recommend_catalogue.json").is_file()
    served = _recommend_fresh(export / "2", history)
    assert set(served["ids"][0][:2]) == {top, "brand_new"}
    assert served["scores"][0][0] == pytest.approx(served["scores"][0][1], abs=1e-5)
    bad = run_cli("tfapp.recommend_index", "--model", export, "--items", items,
                  "--text-columns", "title,plot")
    assert bad.returncode != 0 and "plot" in bad.stderr and "Traceback" not in bad.stderr
    assert not (export / "3").exists()


def test_evaluation_negatives_do_not_depend_on_the_training_targets(tmp_path):
    """Recipes that train on more or fewer targets per user rank the same test candidates."""
    import random

    from tasks.recommend.data import RecommendConfig
    from tasks.recommend.interactions import read_interactions

    rng = random.Random(0)
    items = [str(i) for i in range(40)]
    rows = [{"user_id": u, "item_id": str(i), "timestamp": t}
            for u in range(6) for t, i in enumerate(rng.sample(range(40), 12))]
    log = write_csv(tmp_path / "log.csv", rows)
    splits = {}
    for targets in (None, 2):
        p = RecommendConfig(data_format="interactions", train_targets_per_user=targets)
        splits[targets] = read_interactions(log, p, "csv", items, 3, lambda _: None).splits
    assert len(splits[None]["train"].ids) > len(splits[2]["train"].ids)
    for split in ("validation", "test"):
        assert splits[None][split].candidates == splits[2][split].candidates
