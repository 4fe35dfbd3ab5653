"""recommend.item_id_embedding: a learned id vector on top of each known item's text vector,
dropped in training with recommend.id_dropout; unseen items score from text alone, in
training, evaluation and the export (which recognises known items by their text)."""
import json
import subprocess
import sys

import numpy as np
import pytest
from test_recommend import SERVE, planted_task, rec_config

from tfapp.core.errors import ConfigError
from tfapp.core.task_contract import get_task


def hybrid(tmp_path, **sets):
    from tfapp.core.backbone import TextPacker, load_backbone

    files = planted_task(tmp_path, n_users=10)
    task = get_task("recommend")(rec_config(tmp_path, files, **{
        "recommend.item_id_embedding": True, "export.precision": "float32", **sets}))
    splits = task.load_splits()
    loaded = load_backbone("tiny")
    model = task.build_model(loaded)
    packer = TextPacker(loaded.tokenizer, 64)
    return task, splits, model, packer


def test_unseen_items_score_from_text_alone_and_id_dropout_drops_the_id_part(tmp_path):
    import tensorflow as tf

    task, splits, model, packer = hybrid(tmp_path, **{"recommend.id_dropout": 0.5})
    task.dataset(splits["train"], packer, 8, training=True)  # marks the known items
    known = task._known_items
    assert 0 < known.sum() < len(known)  # the planted training data leaves items unseen
    model.known_items.assign(known)
    rng = np.random.default_rng(0)
    model.id_embedding.embeddings.assign(rng.normal(size=model.id_embedding.embeddings.shape))
    text = task.item_vectors(model, packer, with_extras=False)
    full = task.item_vectors(model, packer)
    unseen, seen = np.flatnonzero(known == 0), np.flatnonzero(known == 1)
    np.testing.assert_array_equal(full[unseen], text[unseen])  # exactly the text score
    ids = model.id_embedding.embeddings.numpy()
    np.testing.assert_allclose(full[seen], text[seen] + ids[seen], atol=1e-5)
    # Training keeps each known item's id vector with probability 1 - id_dropout.
    index = tf.constant(np.repeat(seen[:1], 4000))
    out = model.with_extras(tf.zeros([4000, ids.shape[1]]), index, training=True).numpy()
    kept = np.abs(out).sum(axis=1) > 0
    assert 0.45 < kept.mean() < 0.55
    out = model.with_extras(tf.zeros([4, ids.shape[1]]), tf.constant(unseen[:4]), training=True)
    assert not np.abs(out.numpy()).any()


def test_export_adds_the_id_vector_to_known_item_texts_only(tmp_path):
    import tensorflow as tf

    task, splits, model, packer = hybrid(tmp_path)
    task.dataset(splits["train"], packer, 8, training=True)
    model.known_items.assign(task._known_items)
    model.id_embedding.embeddings.assign(
        np.random.default_rng(1).normal(size=model.id_embedding.embeddings.shape))
    from tfapp.serving.saved_model import export_saved_model

    export = export_saved_model(task, model, packer, tmp_path / "export")
    root, _ = task.serving_root(model, packer)
    seen = int(np.flatnonzero(task._known_items)[0])
    known, new = task.item_texts[seen], "a film nobody has seen. drama"
    history = [[known, ""], [new, known]]
    candidates = [[known, new], [new, ""]]
    result = subprocess.run([sys.executable, "-c", SERVE, str(export),
                             json.dumps([history, candidates])],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = {k: np.array(v) for k, v in json.loads(result.stdout.splitlines()[-1]).items()}
    items = served["items"].reshape(2, 2, -1)
    np.testing.assert_allclose(items[0, 0], task.item_vectors(model, packer)[seen], atol=1e-4)
    text_only = model.encode_tokens(packer.with_length(task.params.item_max_length)(
        tf.constant([new]))["token_ids"]).numpy()[0]
    np.testing.assert_allclose(items[0, 1], text_only, atol=1e-4)
    # The catalogue retrieval ranks the same hybrid vectors.
    np.testing.assert_allclose(root.item_vectors.numpy(), task.item_vectors(model, packer),
                               atol=1e-5)


def test_bad_id_dropout_is_a_config_error(tmp_path):
    files = planted_task(tmp_path, n_users=4)
    with pytest.raises(ConfigError, match=r"recommend.id_dropout must be in \[0, 1\)"):
        get_task("recommend")(rec_config(tmp_path, files, **{"recommend.id_dropout": 1.0}))


def test_category_values_are_split_and_named_by_column():
    from tasks.recommend.data import item_categories

    assert item_categories({"genres": "Action, Adventure|comedy ", "tag": ""},
                           ["genres", "tag"]) == ["genres=action", "genres=adventure",
                                                  "genres=comedy"]


def test_items_sharing_a_category_share_its_vector_cold_or_not(tmp_path):
    import tensorflow as tf

    task, splits, model, packer = hybrid(tmp_path, **{
        "recommend.item_id_embedding": False, "recommend.item_category_columns": ["category"]})
    # The planted items: 12 per category, six categories (the items file's `category`).
    assert task.n_categories == 6 and all(len(c) == 1 for c in task.item_categories)
    model.category_embedding.embeddings.assign(
        np.random.default_rng(2).normal(size=model.category_embedding.embeddings.shape))
    text = task.item_vectors(model, packer, with_extras=False)
    full = task.item_vectors(model, packer)
    table = model.category_embedding.embeddings.numpy()
    for i, cats in enumerate(task.item_categories):
        np.testing.assert_allclose(full[i] - text[i], table[cats].mean(axis=0), atol=1e-5)
    out = model.with_extras(tf.zeros([1, table.shape[1]]), tf.constant([-1])).numpy()
    assert not out.any()  # a padding slot gets nothing
    # The export adds the category part to a catalogue item's text, not to a new text.
    root, signatures = task.serving_root(model, packer)
    vectors = signatures["encode_items"](item_text=tf.constant(
        [task.item_texts[0], "a new film. drama"]))["item_vector"].numpy()
    np.testing.assert_allclose(vectors[0], full[0], atol=1e-4)
    text_only = model.encode_tokens(packer.with_length(task.params.item_max_length)(
        tf.constant(["a new film. drama"]))["token_ids"]).numpy()[0]
    np.testing.assert_allclose(vectors[1], text_only, atol=1e-4)
