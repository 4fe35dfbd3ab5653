"""recommend.loss in_batch: the batch's clicked items (and a few uniform draws) are every
example's negatives, with the log-q correction and accidental hits removed, each distinct
item encoded once per step."""
import json

import numpy as np
import pytest
from test_recommend import planted_task, rec_config, train_planted

from tfapp.core.errors import ConfigError
from tfapp.core.task_contract import get_task


def test_accidental_hits_are_masked_on_a_batch_with_known_duplicates():
    import tensorflow as tf

    from tasks.recommend.in_batch import MASKED, mask_accidental_hits

    logits = tf.constant(np.arange(12, dtype=np.float32).reshape(3, 4))
    # Candidates: positives of rows 0..2 (items 5, 7, 5), then one drawn item (7).
    out = mask_accidental_hits(logits, tf.constant([5, 7, 5, 7]), tf.constant([5, 7, 5]))
    masked = out.numpy() == MASKED
    assert masked.tolist() == [[True, False, True, False],  # item 5: columns 0 and 2
                               [False, True, False, True],  # item 7: columns 1 and 3
                               [True, False, True, False]]
    np.testing.assert_array_equal(out.numpy()[~masked], logits.numpy()[~masked])


def test_in_batch_logits_put_the_corrected_positive_first_and_mask_its_copies():
    import tensorflow as tf

    from tasks.recommend.in_batch import MASKED, in_batch_logits
    from tasks.recommend.model import Scorer

    user = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    candidates = tf.constant([[2.0, 0.0], [0.0, 3.0], [2.0, 0.0]])  # item 4, item 8, item 4
    ids, q = tf.constant([4, 8, 4]), tf.constant([0.5, 0.25, 0.5])
    logits = in_batch_logits(Scorer("dot", 8, 0), user, tf.zeros([2, 0]), candidates, ids, q,
                             positive_ids=tf.constant([4, 8])).numpy()
    # dot - log q: row 0 (positive item 4) 2 - log 0.5; row 1 (item 8) 3 - log 0.25.
    np.testing.assert_allclose(logits[:, 0], [2 - np.log(0.5), 3 - np.log(0.25)], rtol=1e-6)
    assert logits.shape == (2, 4)
    assert (logits[0, 1:] == MASKED).tolist() == [True, False, True]  # both copies of 4
    assert (logits[1, 1:] == MASKED).tolist() == [False, True, False]
    np.testing.assert_allclose(logits[0, 2], 0 - np.log(0.25), rtol=1e-6)
    np.testing.assert_allclose(logits[1, 1], 0 - np.log(0.5), rtol=1e-6)


def test_candidate_probabilities_mix_popularity_and_uniform_draws():
    from tasks.recommend.in_batch import candidate_probabilities

    q = candidate_probabilities(np.array([3, 1, 0, 0]), sampled_per_example=1)
    np.testing.assert_allclose(q, [(0.75 + 0.25) / 2, (0.25 + 0.25) / 2, 0.125, 0.125])
    assert q.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(candidate_probabilities(np.array([2, 2]), 0), [0.5, 0.5])


@pytest.mark.parametrize("sets, message", [
    ({"recommend.loss": "sampled"}, "recommend.loss must be listwise, pointwise or in_batch"),
    ({"recommend.loss": "in_batch", "recommend.sampled_negatives": -1},
     "recommend.sampled_negatives must be >= 0"),
    ({"recommend.loss": "in_batch", "recommend.side_feature_columns": ["age"]},
     "recommend.side_feature_columns: loss in_batch"),
])
def test_bad_in_batch_settings_are_config_errors(tmp_path, sets, message):
    files = planted_task(tmp_path, n_users=4)
    with pytest.raises(ConfigError, match=message):
        get_task("recommend")(rec_config(tmp_path, files, **sets))


def test_a_batch_encodes_each_distinct_item_once_and_scores_every_candidate(tmp_path):
    import tensorflow as tf

    from tfapp.core.backbone import TextPacker, load_backbone

    files = planted_task(tmp_path, n_users=10)
    task = get_task("recommend")(rec_config(tmp_path, files, **{
        "recommend.loss": "in_batch", "recommend.sampled_negatives": 2}))
    splits = task.load_splits()
    assert task.training_size(splits["train"]) == 20  # 10 impressions x 2 clicks
    loaded = load_backbone("tiny")
    model = task.build_model(loaded)
    packer = TextPacker(loaded.tokenizer, 64)
    x, y = next(iter(task.dataset(splits["train"], packer, 8, training=True)))
    assert x["candidate_index"].shape == (8, 1) and x["negative_index"].shape == (8, 2)
    assert (y.numpy() == 0).all()
    # q: (share of the 20 training clicks + 2 uniform draws / catalogue) / 3 slots.
    counts = np.bincount([i for c, k in zip(splits["train"].candidates, splits["train"].clicks)
                          for i, clicked in zip(c, k) if clicked], minlength=len(task.item_ids))
    for key, index in (("negative_q", "negative_index"), ("candidate_q", "candidate_index")):
        expected_q = (counts[x[index].numpy()] / 20 + 2 / len(task.item_ids)) / 3
        np.testing.assert_allclose(x[key].numpy(), expected_q, rtol=1e-5)
    encoded = []
    original = model.encode_tokens
    model.encode_tokens = lambda t, training=False: (encoded.append(int(t.shape[0])),
                                                     original(t, training))[1]
    logits = model(x)
    ids = np.concatenate([x[k].numpy().ravel() for k in
                          ("history_index", "candidate_index", "negative_index")])
    distinct = len(set(ids[ids >= 0].tolist()))
    assert encoded == [-(-distinct // 32) * 32]  # one encoder call over distinct items
    assert logits.shape == (8, 1 + 8 + 16)
    # Column 0 is the own positive's corrected score from the evaluation path's vectors.
    vectors = task.item_vectors(model, packer)
    h = x["history_index"].numpy()
    user = model.user_pooling(tf.constant(vectors[np.maximum(h, 0)]), tf.constant(h >= 0))
    positive = np.einsum("bd,bd->b", user.numpy(), vectors[x["candidate_index"].numpy()[:, 0]])
    expected = positive - np.log(x["candidate_q"].numpy()[:, 0])
    np.testing.assert_allclose(logits.numpy()[:, 0], expected, rtol=1e-3, atol=1e-3)


@pytest.mark.integration  # a CLI training job (~1 minute)
def test_in_batch_training_learns_the_planted_categories(tmp_path):
    run_dir, _, stdout = train_planted(tmp_path, "recommend.loss=in_batch",
                                       "export.enabled=false", epochs=6)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["auc"] >= 0.75, metrics["test"]
    assert "in_batch_accuracy" in stdout and metrics["train_examples"] == 240


def test_frozen_text_encoder_trains_the_head_over_a_table_of_backbone_outputs(tmp_path):
    import tensorflow as tf

    from tasks.recommend.model import FeatureTableFill
    from tfapp.core.backbone import TextPacker, load_backbone

    files = planted_task(tmp_path, n_users=10)
    task = get_task("recommend")(rec_config(tmp_path, files, **{
        "recommend.loss": "in_batch", "recommend.text_encoder": "frozen"}))
    splits = task.load_splits()
    loaded = load_backbone("tiny")
    model = task.build_model(loaded)
    packer = TextPacker(loaded.tokenizer, 64)
    assert not any("backbone" in v.path for v in model.trainable_variables)
    assert {v.path.split("/")[-2] for v in model.trainable_variables} >= {"item_projection"}
    fill = FeatureTableFill(lambda m: task.item_features(m, packer))
    fill.set_model(model)
    fill.on_train_begin()
    ids = tf.constant([[0, 5, 17]])
    # The table path gives the item encoder's own vectors (what evaluation and the export use).
    np.testing.assert_allclose(model.table_vectors(ids).numpy()[0],
                               task.item_vectors(model, packer)[[0, 5, 17]], atol=1e-4)
    x, _ = next(iter(task.dataset(splits["train"], packer, 8, training=True)))
    model.encode_tokens = lambda *a, **k: pytest.fail("a training step ran the backbone")
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(x, training=True)[:, 0])
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)


def test_bad_text_encoder_is_a_config_error(tmp_path):
    files = planted_task(tmp_path, n_users=4)
    with pytest.raises(ConfigError, match="recommend.text_encoder must be finetune or frozen"):
        get_task("recommend")(rec_config(tmp_path, files, **{"recommend.text_encoder": "x"}))
