"""An interaction log (who rated, bought or clicked what, and when) as recommend
impressions: each user's time-ordered positives, the last ones held out by time
(leave-last-out) for validation and test, and seeded negatives from items the user never
interacted with.

Training: one impression per training positive (history = the user's earlier positives,
candidates = the positive + `negatives` sampled items). Validation / test: one impression
per held-out positive against `eval_negatives` sampled items (99: the usual protocol). No
held-out positive is ever in a training history or a training target of its user."""
from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np

from tasks.recommend.data import Impressions, RecommendConfig, _reference
from tfapp.core.datasets import read_rows
from tfapp.core.errors import DataError


@dataclasses.dataclass
class InteractionLog:
    splits: dict  # train / validation / test -> Impressions
    popularity: np.ndarray  # training positives per item (the popularity baseline)
    skipped: dict  # what was skipped -> how many
    # user -> training-period positives in time order (the collaborative baselines)
    train_positives: dict = dataclasses.field(default_factory=dict)


def _number(values, column, path, row) -> float:
    try:
        value = float(values[column])
    except ValueError:
        raise DataError(path, f"not a number: '{values[column]}'", row, column) from None
    if not np.isfinite(value):
        raise DataError(path, f"not a finite number: '{values[column]}'", row, column)
    return value


def _read_events(path, p: RecommendConfig, fmt: str, item_ids: list[str], skipped: dict):
    """{user: [(time, row, item index, positive)]} in file order."""
    columns = [p.user_column, p.item_column, p.time_column]
    columns += [p.rating_column] if p.rating_column else []
    index = {item_id: i for i, item_id in enumerate(item_ids)}
    events = defaultdict(list)
    for row, values in read_rows(path, columns, fmt):
        user = values[p.user_column].strip()
        if not user:
            raise DataError(path, "empty user id", row, p.user_column)
        item = _reference(p, path, row, p.item_column, values[p.item_column].strip(), index,
                          skipped)
        time = _number(values, p.time_column, path, row)
        positive = (_number(values, p.rating_column, path, row) >= p.positive_threshold
                    if p.rating_column else True)
        if item is not None:
            events[user].append((time, row, item, positive))
    return events


def _sample(rng, pool: np.ndarray, n: int) -> list[int]:
    return rng.choice(pool, size=min(n, len(pool)), replace=False).tolist()


def read_interactions(path, p: RecommendConfig, fmt: str, item_ids: list[str], seed: int,
                      say) -> InteractionLog:
    """The log at `path` split leave-last-out into train / validation / test impressions."""
    skipped: dict[str, list] = {}
    events = _read_events(path, p, fmt, item_ids, skipped)
    rng = np.random.default_rng(seed)
    # Validation and test negatives from their own stream: every recipe of a seed ranks the
    # same candidates, however many training targets (and negatives) it draws.
    eval_rng = np.random.default_rng([seed, 1])
    n_items, holdout = len(item_ids), p.holdout
    out = {s: Impressions([], [], [], [], np.zeros([0, 0], np.float32),
                          f"{path} ({s}: leave-last-out)") for s in ("train", "validation",
                                                                     "test")}
    popularity = np.zeros(n_items, np.int64)
    train_positives = {}
    for user, rows in events.items():
        rows.sort()  # by time; ties keep file order
        positives = [item for _, _, item, positive in rows if positive]
        if len(positives) < 2 * holdout + 1:
            if p.short_users == "fail":
                raise DataError(path, f"user '{user}' has {len(positives)} positive "
                                      f"interaction(s); leave-last-out needs at least "
                                      f"{2 * holdout + 1}", rows[0][1], p.user_column)
            skipped.setdefault(f"users with fewer than {2 * holdout + 1} positive "
                               f"interactions", []).append((rows[0][1], p.user_column, user))
            continue
        seen = np.zeros(n_items, bool)
        seen[[item for _, _, item, _ in rows]] = True
        pool = np.flatnonzero(~seen)  # negatives: items the user never interacted with
        if len(pool) == 0:
            skipped.setdefault("users who interacted with every item", []).append(
                (rows[0][1], p.user_column, user))
            continue
        n_train = len(positives) - 2 * holdout
        popularity[positives[:n_train]] += 1
        train_positives[user] = positives[:n_train]
        first_target = 0 if p.train_targets_per_user is None \
            else max(0, n_train - p.train_targets_per_user)
        for j, positive in enumerate(positives):
            if j < first_target:
                continue
            split = ("train" if j < n_train else
                     "validation" if j < n_train + holdout else "test")
            imps = out[split]
            k = p.negatives if split == "train" else p.eval_negatives
            imps.ids.append(f"{user}#{j}")
            imps.history.append(positives[max(0, j - p.max_history):j])
            imps.candidates.append([positive] + _sample(rng if split == "train" else eval_rng,
                                                        pool, k))
            imps.clicks.append([1] + [0] * (len(imps.candidates[-1]) - 1))
    for imps in out.values():
        imps.side = np.zeros([len(imps.ids), 0], np.float32)
    for what, where in skipped.items():
        row, field, value = where[0]
        say(f"{path}: skipped {len(where)} {what} (first: row {row}, field '{field}'"
            + (f", '{value}')" if value else ")"))
    if not out["train"].ids:
        raise DataError(path, f"no usable users (each needs {2 * holdout + 1} or more "
                              f"positive interactions)")
    return InteractionLog(out, popularity, {w: len(v) for w, v in skipped.items()},
                          train_positives)
