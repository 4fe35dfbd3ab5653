"""Recommendation text scoring: per-impression metrics, data validation, training on a
generated task with planted preferences, and export signatures served from a fresh process."""
import csv
import json
import random
import re
import subprocess
import sys

import numpy as np
import pytest

from tasks.recommend.ranking_metrics import (
    impression_auc,
    impression_metrics,
    impression_mrr,
    impression_ndcg,
)
from tfapp.core.errors import DataError
from tfapp.core.task_contract import get_task

from conftest import REPO, run_cli

# --- metrics against hand-computed values --------------------------------------------


def test_impression_metrics_match_hand_computed_values():
    labels, scores = [1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1]
    # Pairs (clicked, skipped): 0.9>0.8, 0.9>0.1, 0.3<0.8, 0.3>0.1 -> 3 of 4.
    assert impression_auc(labels, scores) == 0.75
    # Clicked items at ranks 1 and 3 -> (1 + 1/3) / 2.
    assert impression_mrr(labels, scores) == pytest.approx(2 / 3)
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; ideal = 1 + 1/log2(3).
    assert impression_ndcg(labels, scores, 5) == pytest.approx(1.5 / (1 + 1 / np.log2(3)))
    # Only the top 2 count at k=2: DCG = 1, ideal = 1 + 1/log2(3).
    assert impression_ndcg(labels, scores, 2) == pytest.approx(1 / (1 + 1 / np.log2(3)))
    assert impression_auc([1, 0, 0], [0.5, 0.5, 0.5]) == 0.5  # ties count half
    assert impression_auc([0, 1], [0.9, 0.1]) == 0.0
    m = impression_metrics([labels, [0, 1]], [scores, [0.9, 0.1]], ks=(5, 10))
    assert m["auc"] == pytest.approx((0.75 + 0.0) / 2)
    assert m["mrr"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["impressions"] == 2 and m["candidates"] == 6
    with pytest.raises(ValueError):
        impression_auc([1, 1], [0.2, 0.3])


# --- data validation -----------------------------------------------------------------

CATEGORIES = ["profit", "stock", "rates", "debt", "deal", "earnings"]
FILLER = "the a of to in on for and with by".split()


def write_tsv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def planted_task(tmp_path, n_users=120, seed=0):
    """Items of six keyword categories; each user clicks only one category. Returns paths."""
    rng = random.Random(seed)
    items = []
    for c, cat in enumerate(CATEGORIES):
        for i in range(12):
            items.append([f"N{c}{i:02d}", cat, f"{' '.join(rng.sample(FILLER, 3))} {cat} "
                                              f"{rng.choice(FILLER)}", "more text"])
    by_cat = {cat: [it[0] for it in items if it[1] == cat] for cat in CATEGORIES}
    files = {}
    for split, users in (("train", n_users), ("validation", 30), ("test", 30)):
        rows = []
        for u in range(users):
            cat = rng.choice(CATEGORIES)
            # One user in six is cold (no history): those rank at chance (AUC 0.5).
            history = rng.sample(by_cat[cat], rng.choice([0, 3, 4, 5, 5, 5]))
            pos = rng.sample([i for i in by_cat[cat] if i not in history], 2)
            others = [it[0] for it in items if it[1] != cat]
            cands = [f"{i}-1" for i in pos] + [f"{i}-0" for i in rng.sample(others, 6)]
            rng.shuffle(cands)
            rows.append([f"{split}{u}", f"U{u}", " ".join(history), " ".join(cands)])
        files[split] = write_tsv(tmp_path / f"{split}.tsv",
                                 ["impression_id", "user_id", "history", "impressions"], rows)
    files["items"] = write_tsv(tmp_path / "items.tsv", ["item_id", "category", "title", "body"],
                               items)
    return files


def rec_config(tmp_path, files, **overrides):
    from tfapp.core.config import apply_overrides, build_config, read_yaml

    raw = read_yaml(REPO / "configs" / "recommend.yaml")
    sets = {"backbone.name": "tiny", "trainer.epochs": 1, "run.root": str(tmp_path / "runs"),
            "data.train_file": str(files["train"]),
            "data.validation_file": str(files["validation"]),
            "data.test_file": str(files["test"]), "recommend.items_file": str(files["items"]),
            **overrides}
    raw = apply_overrides(raw, [f"{k}={json.dumps(v)}" for k, v in sets.items()])
    return build_config(raw, get_task("recommend").Config, "test")


def corrupt(path, row, column, value):
    """Sets `column` of data row `row` (1 = first data row) in a TSV file."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    rows[row][rows[0].index(column)] = value
    write_tsv(path, rows[0], rows[1:])


@pytest.mark.parametrize("case, overrides, message", [
    ("duplicate_item", {}, "items.tsv: row 3: field 'item_id': duplicate item id 'N000' "
                           "(first at row 2)"),
    ("unknown_item", {"recommend.unknown_items": "fail"},
     "train.tsv: row 3: field 'history': unknown item id 'N999'"),
    ("malformed_history", {}, "train.tsv: row 3: field 'history': malformed item reference "
                              "'N000,N001' (ids are separated by spaces)"),
    ("malformed_candidate", {}, "train.tsv: row 2: field 'impressions': malformed candidate "
                                "'N000-2' (expected ITEM-1 or ITEM-0)"),
    ("no_click", {"recommend.no_click_impressions": "fail"},
     "train.tsv: row 2: field 'impressions': no clicked candidate"),
])
def test_bad_items_and_impressions_are_one_clear_line(tmp_path, case, overrides, message):
    files = planted_task(tmp_path, n_users=10)
    if case == "duplicate_item":
        corrupt(files["items"], 2, "item_id", "N000")
    elif case == "unknown_item":
        corrupt(files["train"], 2, "history", "N999")
    elif case == "malformed_history":
        corrupt(files["train"], 2, "history", "N000,N001")
    elif case == "malformed_candidate":
        corrupt(files["train"], 1, "impressions", "N000-2 N001-0")
    elif case == "no_click":
        corrupt(files["train"], 1, "impressions", "N000-0 N001-0")
    task = get_task("recommend")(rec_config(tmp_path, files, **overrides))
    with pytest.raises(DataError) as e:
        task.load_splits()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unknown_items_and_no_click_impressions_are_skipped_and_reported(tmp_path, capsys):
    files = planted_task(tmp_path, n_users=10)
    corrupt(files["train"], 2, "history", "N999 N000")
    corrupt(files["train"], 3, "impressions", "N001-0 N002-0")
    task = get_task("recommend")(rec_config(tmp_path, files))
    splits = task.load_splits()
    out = capsys.readouterr().out
    assert "skipped 1 unknown item references (first: row 3, field 'history', 'N999')" in out
    assert "skipped 1 impressions without a click (first: row 4, field 'impressions')" in out
    assert len(splits["train"]) == 9
    assert splits["train"].history[1] == [task.item_ids.index("N000")]
    assert task.skipped[str(files["train"])] == {"unknown item references": 1,
                                                 "impressions without a click": 1}


# --- model ---------------------------------------------------------------------------


def test_each_distinct_item_in_a_batch_is_encoded_once(tmp_path):
    import tensorflow as tf

    from tfapp.core.backbone import TextPacker, load_backbone

    files = planted_task(tmp_path, n_users=10)
    task = get_task("recommend")(rec_config(tmp_path, files))
    splits = task.load_splits()
    loaded = load_backbone("tiny")
    model = task.build_model(loaded)
    packer = TextPacker(loaded.tokenizer, 64)
    x, y = next(iter(task.dataset(splits["train"], packer, 8, training=True)))
    encoded = []
    original = model.encode_tokens
    model.encode_tokens = lambda t, training=False: (encoded.append(int(t.shape[0])),
                                                     original(t, training))[1]
    scores = model(x)
    ids = np.concatenate([x["history_index"].numpy().ravel(),
                          x["candidate_index"].numpy().ravel()])
    distinct = len(set(ids[ids >= 0].tolist()))
    # One encoder call over the distinct items, rounded up to a multiple of 32 rows.
    assert encoded == [-(-distinct // 32) * 32]
    assert distinct < (ids >= 0).sum()  # histories and candidates share items
    assert scores.shape == (8, 1 + task.params.negatives)
    # Same scores as encoding every catalogue item on its own (the evaluation path).
    vectors = task.item_vectors(model, packer)
    h_ids, c_ids = x["history_index"].numpy(), x["candidate_index"].numpy()
    expected = model.score_vectors(tf.constant(vectors[np.maximum(h_ids, 0)]),
                                   tf.constant(h_ids >= 0), tf.constant(vectors[c_ids]),
                                   x["side"])
    np.testing.assert_allclose(scores.numpy(), expected.numpy(), atol=1e-4)
    # Cold users (no history) score with the learned cold-user vector, not NaN.
    cold = tf.zeros([1, 0, task.params.embedding_dim])
    out = model.score_vectors(cold, tf.zeros([1, 0], bool),
                              tf.ones([1, 2, task.params.embedding_dim]), tf.zeros([1, 0]))
    assert np.all(np.isfinite(out.numpy()))


# --- training and export -------------------------------------------------------------


def train_planted(tmp_path, *sets, epochs=4):
    files = planted_task(tmp_path)
    run_dir = tmp_path / "run"
    args = ["--set", f"recommend.items_file={files['items']}",
            "--set", f"data.train_file={files['train']}",
            "--set", f"data.validation_file={files['validation']}",
            "--set", f"data.test_file={files['test']}",
            "--set", "optimizer.learning_rate=3e-3", "--set", "trainer.early_stopping_patience=10"]
    for s in sets:
        args += ["--set", s]
    result = run_cli("tfapp.train", "--task", "recommend", "--backbone", "tiny",
                     "--epochs", epochs, "--run-dir", run_dir, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, files, result.stdout


@pytest.fixture(scope="module")
def listwise_run(tmp_path_factory):
    # float32 export: its tests compare the export with in-process scoring at 1e-4, which
    # bfloat16 rounding along two code paths would not meet.
    return train_planted(tmp_path_factory.mktemp("rec_listwise"), "export.precision=float32")


def test_listwise_training_beats_random_ranking(listwise_run):
    run_dir, _, stdout = listwise_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["test"]
    assert test["impressions"] == 30 and test["candidates"] == 240
    # Random ranking: AUC 0.5. Each user clicks exactly their planted category.
    assert test["auc"] >= 0.8 and test["ndcg@10"] > 0.6, test
    assert "val_auc" in stdout and "ex/s" in stdout
    assert metrics["train_examples"] == 240  # 120 impressions x 2 clicks


SERVE = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401
m = tf.saved_model.load(sys.argv[1])
history, candidates = (tf.constant(v) for v in json.loads(sys.argv[2]))
out = {"scores": m.signatures["score"](history=history, candidates=candidates)["scores"],
       "default": m.signatures["serving_default"](history=history,
                                                  candidates=candidates)["scores"],
       "user": m.signatures["encode_user"](history=history)["user_vector"],
       "items": m.signatures["encode_items"](
           item_text=tf.reshape(candidates, [-1]))["item_vector"]}
assert not {"tfapp", "tasks", "keras_hub"} & {k.split(".")[0] for k in sys.modules}
print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}))
"""


def test_export_signatures_agree_with_each_other_and_in_process(listwise_run):
    import tensorflow as tf

    from tasks.recommend.data import Impressions
    from tfapp.training.restore import restore_run

    run_dir, files, _ = listwise_run
    _, task, model, packer = restore_run(run_dir)
    texts = dict(zip(task.item_ids, task.item_texts))
    history = [[texts["N000"], texts["N001"], texts["N002"]], [texts["N100"], "", ""],
               ["", "", ""]]
    candidates = [[texts["N003"], texts["N500"], ""], [texts["N101"], texts["N201"],
                                                        texts["N301"]],
                  [texts["N004"], texts["N104"], ""]]
    result = subprocess.run([sys.executable, "-c", SERVE,
                             str(run_dir / "export" / "recommend" / "1"),
                             json.dumps([history, candidates])],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = {k: np.array(v) for k, v in json.loads(result.stdout.splitlines()[-1]).items()}
    # (a) score == (c) user vector . (b) item vectors, in candidate order; padding scores 0.
    items = served["items"].reshape(3, 3, -1)
    expected = np.einsum("bd,bcd->bc", served["user"], items)
    mask = np.array([[c != "" for c in row] for row in candidates])
    np.testing.assert_allclose(served["scores"], np.where(mask, expected, 0), atol=1e-4)
    np.testing.assert_array_equal(served["scores"], served["default"])
    # The fresh-process export matches in-process scoring from item ids.
    index = {i: k for k, i in enumerate(task.item_ids)}
    imps = Impressions(
        ["a", "b", "c"], [[index[i] for i in h] for h in (["N000", "N001", "N002"], ["N100"],
                                                         [])],
        [[index[i] for i in c] for c in (["N003", "N500"], ["N101", "N201", "N301"],
                                         ["N004", "N104"])],
        [[1, 0], [1, 0, 0], [1, 0]], np.zeros([3, 0], np.float32), "test")
    local = task.score_impressions(model, imps, packer)
    for row, scores in enumerate(local):
        np.testing.assert_allclose(served["scores"][row, :len(scores)], scores, atol=1e-4)
    del tf


@pytest.mark.integration  # a whole CLI job with export
def test_pointwise_mlp_with_side_features_trains_and_exports(tmp_path):
    files = planted_task(tmp_path, n_users=40)
    for path in (files["train"], files["validation"], files["test"]):
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        write_tsv(path, rows[0] + ["hour"], [r + [str(k % 24)] for k, r in enumerate(rows[1:])])
    run_dir = tmp_path / "run"
    result = run_cli(
        "tfapp.train", "--task", "recommend", "--backbone", "tiny", "--epochs", 2,
        "--run-dir", run_dir, "--set", f"recommend.items_file={files['items']}",
        "--set", f"data.train_file={files['train']}",
        "--set", f"data.validation_file={files['validation']}",
        "--set", f"data.test_file={files['test']}", "--set", "recommend.loss=pointwise",
        "--set", "recommend.scorer=mlp", "--set", "recommend.side_feature_columns=[hour]",
        "--set", "recommend.item_max_length=8")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Item texts are truncated at recommend.item_max_length, and reported per split.
    assert re.search(r"train: \d+ of 72 texts longer than 6 word pieces were truncated",
                     result.stdout), result.stdout[-2000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train_examples"] == 40 * 8  # one example per candidate
    assert 0 <= metrics["test"]["auc"] <= 1
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    m = tf.saved_model.load(str(run_dir / "export" / "recommend" / "1"))
    spec = m.signatures["score"].structured_input_signature[1]
    assert set(spec) == {"history", "candidates", "side_features"}
    assert spec["side_features"].shape.as_list() == [None, 1]


def test_jsonl_impressions_with_list_fields_read_like_tsv(tmp_path):
    files = planted_task(tmp_path, n_users=10)
    with open(files["train"], encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text("".join(json.dumps({**r, "history": r["history"].split(),
                                         "impressions": r["impressions"].split()}) + "\n"
                             for r in rows), encoding="utf-8")
    task = get_task("recommend")(rec_config(tmp_path, files))
    from_tsv = task.load_splits()["train"]
    task = get_task("recommend")(rec_config(tmp_path, files,
                                                  **{"data.train_file": str(jsonl)}))
    from_jsonl = task.load_splits()["train"]
    assert from_jsonl.history == from_tsv.history
    assert from_jsonl.candidates == from_tsv.candidates and from_jsonl.clicks == from_tsv.clicks


def test_evaluate_cli_scores_a_labelled_impressions_file(listwise_run):
    run_dir, files, _ = listwise_run
    result = run_cli("tfapp.evaluate", "--run", run_dir, "--data", files["test"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "recommend: AUC" in result.stdout
    metrics = json.loads((run_dir / "eval" / "test" / "metrics.json").read_text())
    saved = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert metrics["auc"] == pytest.approx(saved["auc"], abs=1e-6)
    assert metrics["ndcg@10"] == pytest.approx(saved["ndcg@10"], abs=1e-6)


def test_history_cache_encodes_only_candidates_and_reads_histories_from_the_table(tmp_path):
    import tensorflow as tf

    from tasks.recommend.model import HistoryCacheRefresh
    from tfapp.core.backbone import TextPacker, load_backbone

    files = planted_task(tmp_path, n_users=10)
    task = get_task("recommend")(rec_config(tmp_path, files, **{"recommend.history_cache": True}))
    splits = task.load_splits()
    loaded = load_backbone("tiny")
    model = task.build_model(loaded)
    packer = TextPacker(loaded.tokenizer, 64)
    x, _ = next(iter(task.dataset(splits["train"], packer, 8, training=True)))
    refresh = HistoryCacheRefresh(lambda m: task.item_vectors(m, packer))
    refresh.set_model(model)
    refresh.on_epoch_begin(0)
    table = model.history_cache.numpy()
    np.testing.assert_allclose(table, task.item_vectors(model, packer), atol=1e-6)
    encoded = []
    original = model.encode_tokens
    model.encode_tokens = lambda t, training=False: (encoded.append(t), original(t, training))[1]
    with tf.GradientTape() as tape:
        scores = model(x, training=True)
    c_ids = x["candidate_index"].numpy()
    distinct = len(set(c_ids[c_ids >= 0].tolist()))
    assert [int(t.shape[0]) for t in encoded] == [-(-distinct // 32) * 32]  # candidates only
    assert tape.gradient(scores, model.history_cache) is None  # no gradient into histories
    # Training scores read histories from the table: the same batch against a table of
    # other vectors scores differently (seeded dropout keeps the candidates' side equal).
    model.encode_tokens = original
    tf.random.set_seed(1)
    before = model(x, training=True).numpy()
    model.history_cache.assign(table[::-1].copy())
    tf.random.set_seed(1)
    assert not np.allclose(model(x, training=True).numpy(), before)
    # Evaluation encodes histories live: the table does not matter there.
    after_eval = model(x, training=False).numpy()
    model.history_cache.assign(table)
    np.testing.assert_allclose(model(x, training=False).numpy(), after_eval, atol=1e-6)
