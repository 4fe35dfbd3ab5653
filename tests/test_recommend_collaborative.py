"""The collaborative-filtering baselines (item-kNN, BPR matrix factorisation) on constructed
interaction logs with known answers."""
import numpy as np
import pytest

from tasks.recommend.data import Impressions


def _imps(rows):
    """rows: (user, history) per impression."""
    return Impressions([f"{u}#{k}" for k, (u, _) in enumerate(rows)], [h for _, h in rows],
                       [[0]] * len(rows), [[1]] * len(rows), np.zeros([len(rows), 0]), "t")


def test_item_knn_scores_items_watched_by_the_same_people_highest():
    from tasks.recommend.collaborative import item_knn_scores

    # Items 0 and 1 are always watched together; 2 and 3 together; 4 by nobody.
    log = {"a": [0, 1], "b": [0, 1], "c": [2, 3], "d": [2, 3, 0]}
    scores = item_knn_scores(_imps([("x", [0]), ("y", [2]), ("z", [])]), log, 5)
    assert np.argmax(scores[0]) == 1 and np.argmax(scores[1]) == 3
    assert scores[0, 4] == 0 and scores[1, 4] == 0  # a cold item gets no signal
    assert not scores[2].any()  # an empty history scores nothing
    # cos(0, 1) = 2 / sqrt(3 * 2): item 0 is in 3 users' rows, item 1 in 2, together in 2
    assert scores[0, 1] == pytest.approx(2 / np.sqrt(6))


def test_bpr_factorisation_ranks_a_users_group_above_the_other():
    from tasks.recommend.collaborative import mf_scores, train_bpr

    rng = np.random.default_rng(0)
    # Two tastes: users 0-19 watch items 0-9, users 20-39 items 10-19 (5 each, at random).
    log = {f"u{k}": sorted(rng.choice(np.arange(10) + (10 if k >= 20 else 0), 5,
                                      replace=False).tolist()) for k in range(40)}
    factors = train_bpr(log, 20, seed=1, dim=8, epochs=40, batch=64)
    scores = mf_scores(_imps([("u0", []), ("u25", []), ("stranger", [])]), factors)
    assert scores[0, :10].mean() > scores[0, 10:].mean()
    assert scores[1, 10:].mean() > scores[1, :10].mean()
    assert not scores[2].any()  # no training interactions: no opinion
    again = mf_scores(_imps([("u0", [])]), train_bpr(log, 20, seed=1, dim=8, epochs=40,
                                                     batch=64))
    np.testing.assert_allclose(again[0], scores[0], rtol=1e-5)  # seeded
