"""Masked-LM batches: length-bucketed, re-masked each epoch, whole-word masking."""
import numpy as np
import tensorflow as tf

from tfapp.pretraining.masking import mask_batch, mlm_dataset

# ids: 0 [PAD], 1 [CLS], 2 [SEP], 3 [MASK], 4.. pieces; 10.. are "##" continuations
SELECTABLE = tf.constant([False, False, False, False] + [True] * 16)
CONTINUES = tf.constant([False] * 10 + [True] * 10)


def _batch(rows, **kw):
    width = max(map(len, rows))
    ids = tf.constant([r + [0] * (width - len(r)) for r in rows], tf.int32)
    args = dict(rate=0.5, max_predictions=4, whole_word=False, mask_id=3,
                vocabulary_size=20)
    args.update(kw)
    return ids, mask_batch(ids, SELECTABLE, CONTINUES, **args)


def test_masks_skip_special_tokens_and_label_the_original_pieces():
    tf.random.set_seed(0)
    rows = [[1] + list(range(4, 10)) + [2], [1, 4, 5, 2]]
    ids, (inputs, originals, weights) = _batch(rows, rate=0.9)
    ids, positions = ids.numpy(), inputs["mask_positions"].numpy()
    weights, originals = weights.numpy(), originals.numpy()
    assert positions.shape == (2, 4) and weights.sum(axis=1).max() <= 4
    for r in range(2):
        for p, w, o in zip(positions[r], weights[r], originals[r]):
            if w:
                assert ids[r, p] >= 4 and o == ids[r, p]
    np.testing.assert_array_equal(inputs["padding_mask"].numpy(), ids != 0)


def test_whole_word_masking_takes_every_piece_of_a_chosen_word():
    # words: [4 ##10 ##11] [5 ##12] [6] [7 ##13 ##14 ##15]
    row = [1, 4, 10, 11, 5, 12, 6, 7, 13, 14, 15, 2]
    words = [[1, 2, 3], [4, 5], [6], [7, 8, 9, 10]]
    for seed in range(20):
        tf.random.set_seed(seed)
        _, (inputs, _, weights) = _batch([row], whole_word=True, rate=0.4,
                                         max_predictions=12)
        chosen = {int(p) for p, w in zip(inputs["mask_positions"][0], weights[0]) if w}
        for word in words:
            assert not chosen & set(word) or set(word) <= chosen, (seed, chosen)


def test_batches_pad_to_their_longest_text_and_mask_afresh_each_epoch():
    import keras

    from tfapp.core.backbone import load_backbone

    keras.utils.set_random_seed(1)  # as training sets it: masks must still change per epoch
    tokenizer = load_backbone("tiny").tokenizer
    texts = ["a b"] * 8 + ["a b c d e f g h i j k l m n o p"] * 8
    ds = mlm_dataset(texts, tokenizer, 128, 8, rate=0.3, max_predictions=5,
                     whole_word=False, training=True, seed=0)
    widths = sorted(int(x["token_ids"].shape[1]) for x, _, _ in ds)
    assert widths[0] < widths[1] < 128  # short texts are not padded to the long ones
    first = [x["mask_positions"].numpy() for x, _, _ in ds]
    second = [x["mask_positions"].numpy() for x, _, _ in ds]
    assert any(a.shape != b.shape or (a != b).any() for a, b in zip(first, second))
    val = mlm_dataset(texts, tokenizer, 128, 8, rate=0.3, max_predictions=5,
                      whole_word=False, training=False, seed=0)
    once = [x["mask_positions"].numpy() for x, _, _ in val]
    again = [x["mask_positions"].numpy() for x, _, _ in val]
    assert all((a == b).all() for a, b in zip(once, again))  # cached: drawn once
