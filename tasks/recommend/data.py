"""The recommend task's inputs: its config, the items file (id + text columns) and
MIND-shaped impressions (history of clicked ids, candidates ITEM-1 / ITEM-0)."""
from __future__ import annotations

import dataclasses
import re
from typing import Optional

import numpy as np

from tfapp.core.datasets import read_rows
from tfapp.core.errors import DataError
from tfapp.core.task_contract import Examples

CANDIDATE = re.compile(r"^(\S+)-([01])$")
BAD_ID_CHARS = re.compile(r"[,;|]")


@dataclasses.dataclass
class RecommendConfig:
    # Items: None with the built-in sample (tasks/samples/recommend_items.tsv).
    items_file: Optional[str] = None
    item_id_column: str = "item_id"
    # Joined with ". " (empty values skipped) into the text the model reads. Serving
    # clients send item text composed the same way.
    item_text_columns: list[str] = dataclasses.field(
        default_factory=lambda: ["title", "category", "body"])
    item_max_length: int = 48  # word pieces per item text
    # impressions: MIND-shaped rows (below); interactions: a log of (user, item, time[,
    # rating]) rows, split leave-last-out by time (tasks/recommend/interactions.py).
    data_format: str = "impressions"
    # Interactions (data.train_file): columns, what counts as positive, the hold-out.
    item_column: str = "item_id"
    time_column: str = "timestamp"
    rating_column: Optional[str] = None  # None: every interaction is a positive
    positive_threshold: float = 4.0  # rating >= this is a positive
    holdout: int = 1  # last positives per user held out for validation, and as many for test
    eval_negatives: int = 99  # sampled negatives per held-out positive
    # Training targets per user: the most recent N training positives (None: all).
    train_targets_per_user: Optional[int] = None
    short_users: str = "skip"  # users with too few positives: skip (count, report) | fail
    # Impressions (data.train_file etc.): MIND shape.
    impression_id_column: str = "impression_id"
    user_column: str = "user_id"
    history_column: str = "history"  # space-separated clicked item ids, oldest first
    candidates_column: str = "impressions"  # space-separated ITEM-1 / ITEM-0
    side_feature_columns: list[str] = dataclasses.field(default_factory=list)  # numeric
    unknown_items: str = "skip"  # skip (drop the reference, count, report) | fail
    no_click_impressions: str = "skip"  # skip (count, report) | fail
    max_history: int = 20
    # listwise (1 clicked vs K non-clicked of its impression, softmax) | pointwise (BCE) |
    # in_batch (1 clicked vs every other example's clicked item in the batch and
    # sampled_negatives uniform catalogue items per example, sampled softmax with the
    # log-q correction and accidental hits removed: tasks/recommend/in_batch.py)
    loss: str = "listwise"
    negatives: int = 4  # K
    sampled_negatives: int = 1  # in_batch: uniform catalogue items drawn per example
    scorer: str = "dot"  # dot | mlp
    mlp_units: int = 128
    embedding_dim: int = 256
    attention_units: int = 128
    head_dropout: float = 0.1
    ndcg_ks: list[int] = dataclasses.field(default_factory=lambda: [5, 10])
    top_k: int = 10  # catalogue items the export's `recommend` signature returns
    # Training reads history items' vectors from a table re-encoded at each epoch start
    # (no gradient through histories); only candidates are encoded per step.
    history_cache: bool = False
    # finetune: the backbone trains with the rest | frozen: it does not; each item's pooled
    # backbone output is computed once before training and steps run only the item head,
    # user attention and scorer (hundreds of times faster; the export is the same shape).
    text_encoder: str = "finetune"
    # Hybrid items: a learned id vector added to the text vector of every item seen in
    # training (its clicks and histories); other items are scored from their text alone.
    # Training drops an item's id vector with probability id_dropout, so text alone must
    # score well too (cold items). The export recognises known items by their text.
    item_id_embedding: bool = False
    id_dropout: float = 0.5
    # Categorical item columns (e.g. genres; several values separated by ',' or '|'): a
    # learned vector per value, their mean added to the item's vector. Known for every
    # catalogue item, trained or not, so they carry what warm items taught to cold ones.
    item_category_columns: list[str] = dataclasses.field(default_factory=list)

    def problems(self) -> list[str]:
        return [message for ok, message in [
            (self.unknown_items in ("skip", "fail"), "unknown_items must be skip or fail"),
            (self.no_click_impressions in ("skip", "fail"),
             "no_click_impressions must be skip or fail"),
            (self.loss in ("listwise", "pointwise", "in_batch"),
             "loss must be listwise, pointwise or in_batch"),
            (self.sampled_negatives >= 0, "sampled_negatives must be >= 0"),
            (0 <= self.id_dropout < 1, "id_dropout must be in [0, 1)"),
            (self.text_encoder in ("finetune", "frozen"),
             "text_encoder must be finetune or frozen"),
            (self.loss != "in_batch" or not self.side_feature_columns,
             "side_feature_columns: loss in_batch pairs a user with other impressions' "
             "items, which have no side features for that user (use listwise or pointwise)"),
            (self.scorer in ("dot", "mlp"), "scorer must be dot or mlp"),
            (self.negatives >= 1, "negatives must be >= 1"),
            (self.max_history >= 1, "max_history must be >= 1"),
            (self.item_max_length >= 8, "item_max_length must be >= 8"),
            (bool(self.item_text_columns), "item_text_columns must name a column"),
            (self.data_format in ("impressions", "interactions"),
             "data_format must be impressions or interactions"),
            (self.short_users in ("skip", "fail"), "short_users must be skip or fail"),
            (self.holdout >= 1, "holdout must be >= 1"),
            (self.top_k >= 1, "top_k must be >= 1"),
            (self.eval_negatives >= 1, "eval_negatives must be >= 1"),
            (self.train_targets_per_user is None or self.train_targets_per_user >= 1,
             "train_targets_per_user must be null or >= 1"),
            (self.data_format == "impressions" or not self.side_feature_columns,
             "side_feature_columns: an interaction log has no impression rows to "
             "read side features from"),
        ] if not ok]


@dataclasses.dataclass
class Impressions(Examples):
    ids: list[str]
    history: list[list[int]]  # item indices, the last max_history clicks
    candidates: list[list[int]]
    clicks: list[list[int]]
    side: np.ndarray  # [n, features] float32
    source: str


def item_text(values: dict, columns: list[str]) -> str:
    """The text the model reads for an item: the columns' non-empty values joined by '. '."""
    parts = [values[c].strip().rstrip(".") for c in columns if values[c].strip()]
    return ". ".join(parts)


CATEGORY_SEPARATORS = re.compile(r"[,|]")


def item_categories(values: dict, columns: list[str]) -> list[str]:
    """An item's categorical values as 'column=value' strings (values split on ',' / '|')."""
    return sorted({f"{c}={v.strip().lower()}" for c in columns
                   for v in CATEGORY_SEPARATORS.split(values[c]) if v.strip()})


def read_items(p: RecommendConfig, fmt: str, categories: Optional[list] = None
               ) -> tuple[list[str], list[str]]:
    """(item ids, item texts) from the items file, validated row by row; each item's
    item_category_columns values are appended to `categories` when given."""
    extra = [c for c in p.item_category_columns
             if c not in (p.item_id_column, *p.item_text_columns)]
    rows = read_rows(p.items_file, [p.item_id_column, *p.item_text_columns, *extra],
                     fmt)
    first: dict[str, int] = {}
    item_ids, item_texts = [], []
    for row, values in rows:
        item_id = values[p.item_id_column].strip()
        if not item_id:
            raise DataError(p.items_file, "empty item id", row, p.item_id_column)
        if item_id in first:
            raise DataError(p.items_file, f"duplicate item id '{item_id}' (first at row "
                                          f"{first[item_id]})", row, p.item_id_column)
        text = item_text(values, p.item_text_columns)
        if not text:
            raise DataError(p.items_file, f"item '{item_id}' has no text",
                            row, p.item_text_columns[0])
        first[item_id] = row
        item_ids.append(item_id)
        item_texts.append(text)
        if categories is not None:
            categories.append(item_categories(values, p.item_category_columns))
    return item_ids, item_texts


def _reference(p: RecommendConfig, path, row, field, item_id, index, counts) -> Optional[int]:
    if BAD_ID_CHARS.search(item_id):
        raise DataError(path, f"malformed item reference '{item_id}' (ids are separated "
                              f"by spaces)", row, field)
    if item_id in index:
        return index[item_id]
    if p.unknown_items == "fail":
        raise DataError(path, f"unknown item id '{item_id}' (not in "
                              f"{p.items_file})", row, field)
    counts.setdefault("unknown item references", []).append((row, field, item_id))
    return None


def read_impressions(path, p: RecommendConfig, fmt: str, item_ids: list[str],
                     say) -> tuple[Impressions, dict[str, int]]:
    """Validated impressions and {what was skipped: how many}; references to unknown items
    and impressions without a click are skipped or fail as the config says."""
    columns = [p.impression_id_column, p.user_column, p.history_column,
               p.candidates_column, *p.side_feature_columns]
    rows = read_rows(path, columns, fmt)
    index = {item_id: i for i, item_id in enumerate(item_ids)}
    skipped: dict[str, list] = {}
    out = Impressions([], [], [], [], np.zeros([0, len(p.side_feature_columns)],
                                               np.float32), str(path))
    side_rows = []
    for row, values in rows:
        history = []
        for item_id in values[p.history_column].split():
            k = _reference(p, path, row, p.history_column, item_id, index, skipped)
            if k is not None:
                history.append(k)
        candidates, clicks = [], []
        for token in values[p.candidates_column].split():
            match = CANDIDATE.match(token)
            if not match:
                raise DataError(path, f"malformed candidate '{token}' (expected ITEM-1 "
                                      f"or ITEM-0)", row, p.candidates_column)
            k = _reference(p, path, row, p.candidates_column, match[1], index, skipped)
            if k is not None:
                candidates.append(k)
                clicks.append(int(match[2]))
        side = []
        for column in p.side_feature_columns:
            try:
                side.append(float(values[column]))
            except ValueError:
                raise DataError(path, f"not a number: '{values[column]}'", row,
                                column) from None
        if not candidates:
            skipped.setdefault("impressions without candidates", []).append(
                (row, p.candidates_column, ""))
            continue
        if not any(clicks):
            if p.no_click_impressions == "fail":
                raise DataError(path, "no clicked candidate (expected at least one "
                                      "ITEM-1)", row, p.candidates_column)
            skipped.setdefault("impressions without a click", []).append(
                (row, p.candidates_column, ""))
            continue
        out.ids.append(values[p.impression_id_column])
        out.history.append(history[-p.max_history:])
        out.candidates.append(candidates)
        out.clicks.append(clicks)
        side_rows.append(side)
    if side_rows:
        out.side = np.array(side_rows, np.float32).reshape(len(side_rows), -1)
    for what, where in skipped.items():
        row, field, value = where[0]
        say(f"{path}: skipped {len(where)} {what} (first: row {row}, field '{field}'"
            + (f", '{value}')" if value else ")"))
    if not out.ids:
        raise DataError(path, "no usable impressions (each needs a clicked candidate)")
    return out, {what: len(where) for what, where in skipped.items()}
