import numpy as np
import pytest

from tfapp.core.backbone import TextPacker, load_backbone
from tfapp.core.datasets import count_truncated, read_rows, text_dataset
from tfapp.core.errors import ConfigError, DataError
from tfapp.core.task_contract import get_task

from conftest import sample_rows, tiny_config, write_csv, write_jsonl


def task_for(tmp_path, **overrides):
    return get_task("sentiment")(tiny_config(tmp_path, **overrides))


def test_csv_tsv_and_jsonl_read_the_same_rows(tmp_path):
    rows = sample_rows(20)
    csv_rows = read_rows(write_csv(tmp_path / "a.csv", rows), ["text", "label"])
    (tmp_path / "a.tsv").write_text(
        "text\tlabel\n" + "".join(f"{r['text']}\t{r['label']}\n" for r in rows))
    tsv_rows = read_rows(tmp_path / "a.tsv", ["text", "label"])
    json_rows = read_rows(write_jsonl(tmp_path / "a.jsonl", rows), ["text", "label"])
    assert [v for _, v in csv_rows] == [v for _, v in tsv_rows] == [v for _, v in json_rows]
    assert csv_rows[0][0] == 2 and json_rows[0][0] == 1  # header is CSV row 1


@pytest.mark.parametrize("setup, message", [
    ("missing", r"nope.csv: file not found"),
    ("empty", r"empty.csv: file is empty"),
    ("header_only", r"header_only.csv: file has no data rows"),
    ("no_column", r"no_column.csv: row 1: field 'label': column 'label' not found in header"),
    ("bad_label", r"bad_label.csv: row 4: field 'label': unknown label 'bullish' "
                  r"\(expected one of negative, neutral, positive\)"),
    ("empty_text", r"empty_text.csv: row 3: field 'text': empty text"),
    ("bad_utf8", r"bad_utf8.csv: row 3: field 'text': invalid UTF-8 \(byte 0xff"),
    ("bad_utf8_jsonl", r"bad_utf8_jsonl.jsonl: row 2: invalid UTF-8"),
    ("bad_json", r"bad_json.jsonl: row 2: not valid JSON"),
    ("bad_topic", r"bad_topic.csv: row 2: field 'topic': unknown label 'sports'"),
])
def test_bad_training_file_names_file_row_and_field(tmp_path, setup, message):
    rows = sample_rows(5)
    path = tmp_path / f"{setup}.csv"
    if setup == "empty":
        path.write_bytes(b"")
    elif setup == "header_only":
        path.write_text("text,label,topic\n")
    elif setup == "no_column":
        write_csv(path, [{"text": r["text"], "sentiment": r["label"], "topic": r["topic"]}
                         for r in rows])
    elif setup == "bad_label":
        rows[2]["label"] = "bullish"
        write_csv(path, rows)
    elif setup == "empty_text":
        rows[1]["text"] = "   "
        write_csv(path, rows)
    elif setup == "bad_utf8":
        write_csv(path, rows)
        lines = path.read_bytes().split(b"\n")
        lines[2] = lines[2].replace(b" ", b" \xff", 1)  # inside the text (first column)
        path.write_bytes(b"\n".join(lines))
    elif setup == "bad_utf8_jsonl":
        path = tmp_path / f"{setup}.jsonl"
        write_jsonl(path, rows)
        lines = path.read_bytes().split(b"\n")
        lines[1] = lines[1].replace(b"\"text\": \"", b"\"text\": \"\xff")
        path.write_bytes(b"\n".join(lines))
    elif setup == "bad_json":
        path = tmp_path / f"{setup}.jsonl"
        write_jsonl(path, rows)
        path.write_text(path.read_text().replace("}\n", "\n", 2).replace("\n", "}\n", 1))
    elif setup == "bad_topic":
        rows[0]["topic"] = "sports"
        write_csv(path, rows)
    elif setup == "missing":
        path = tmp_path / "nope.csv"
    task = task_for(tmp_path, **{"data.train_file": str(path),
                                 "sentiment.topic_labels": ["analyst", "deals", "earnings",
                                                            "markets"]})
    with pytest.raises(DataError) as err:
        task.load_splits()
    assert "\n" not in str(err.value)
    import re
    assert re.search(message, str(err.value)), str(err.value)


def test_labels_come_from_training_file_when_not_configured(tmp_path):
    rows = [{"text": f"text {i}", "label": lab, "topic": "xy"[i % 2]}
            for i, lab in enumerate(["up", "down", "flat"] * 10)]
    task = task_for(tmp_path, **{"data.train_file": str(write_csv(tmp_path / "t.csv", rows)),
                                 "sentiment.labels": None})
    splits = task.load_splits()
    assert task.params.labels == ["down", "flat", "up"]
    assert task.params.topic_labels == ["x", "y"]
    assert sum(len(s) for s in splits.values()) == 30


def test_split_is_seeded_stratified_and_disjoint(tmp_path):
    task = task_for(tmp_path)
    a, b = task.load_splits(), task_for(tmp_path).load_splits()
    assert a["validation"].texts == b["validation"].texts
    texts = [set(a[s].texts) for s in ("train", "validation", "test")]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    assert sum(map(len, texts)) == len(sample_rows())
    # Stratified: each label keeps its share in validation within one example.
    total = np.bincount(a["train"].labels) + np.bincount(a["validation"].labels) + \
        np.bincount(a["test"].labels)
    np.testing.assert_allclose(np.bincount(a["validation"].labels), total * 0.1, atol=1)
    other = task_for(tmp_path, seed=7).load_splits()
    assert other["validation"].texts != a["validation"].texts


def test_given_validation_file_is_used_and_not_split(tmp_path):
    val = write_csv(tmp_path / "val.csv", sample_rows(10))
    splits = task_for(tmp_path, **{"data.validation_file": str(val)}).load_splits()
    assert splits["validation"].source == str(val) and len(splits["validation"]) == 10
    # train + test come from the sample with the validation fraction dropped.
    assert len(splits["train"]) + len(splits["test"]) == len(sample_rows())
    assert len(splits["test"]) == pytest.approx(len(sample_rows()) / 9, abs=3)


def test_unknown_class_weight_label_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="class_weights: unknown label 'bullish'"):
        task_for(tmp_path, **{"sentiment.class_weights": {"bullish": 2.0}}).load_splits()


def test_balanced_class_weights(tmp_path):
    task = task_for(tmp_path, **{"sentiment.class_weights": "balanced"})
    train = task.load_splits()["train"]
    w = task.class_weight_vector(train)
    counts = np.bincount(train.labels)
    np.testing.assert_allclose(w * counts, len(train) / 3)  # each class weighs the same


def test_length_buckets_cut_padding_and_keep_every_example(tmp_path):
    packer = TextPacker(load_backbone("tiny").tokenizer, 128)
    texts = [r["text"] for r in sample_rows()]
    labels = np.arange(len(texts), dtype=np.int32)

    def stats(boundaries):
        ds = text_dataset(texts, labels, packer, 16, training=True, seed=1,
                          bucket_boundaries=boundaries)
        pad = real = 0
        seen = []
        for x, y in ds:
            mask = x["padding_mask"].numpy().astype(bool)
            pad += (~mask).sum()
            real += mask.sum()
            seen += y.numpy().tolist()
        return pad / (pad + real), sorted(seen)

    exact, seen_e = stats(list(range(2, 128)))  # one bucket per length: no padding at all
    bucketed, seen_b = stats([8, 16, 24, 32, 48])
    plain, seen_p = stats([])
    assert seen_e == seen_b == seen_p == labels.tolist()
    assert exact == 0 and bucketed < 0.8 * plain and plain > 0.2, (exact, bucketed, plain)


def test_truncation_is_counted(tmp_path):
    packer = TextPacker(load_backbone("tiny").tokenizer, 16)
    n, longest = count_truncated(packer, ["short text", "stocks " * 40, "stocks fell"])
    assert n == 1 and longest == 40


def test_static_shapes_for_tpu(tmp_path):
    task = task_for(tmp_path, **{"data.static_shapes": True,
                                 "data.bucket_boundaries": [16, 32, 48]})
    splits = task.load_splits()
    packer = TextPacker(load_backbone("tiny").tokenizer, 64)
    train_shapes = {tuple(x["token_ids"].shape)
                    for x, *_ in task.dataset(splits["train"], packer, 16, training=True)}
    assert {s[0] for s in train_shapes} == {16}  # partial batches dropped
    assert {s[1] for s in train_shapes} <= {16, 32, 48, 64}
    eval_shapes = {tuple(x["token_ids"].shape)[1:]
                   for x, *_ in task.dataset(splits["validation"], packer, 16, training=False)}
    assert eval_shapes == {(64,)}
    task.config.data.static_shapes = False
    long_packer = TextPacker(packer.tokenizer, 256)
    plain = {tuple(x["token_ids"].shape)[1]
             for x, *_ in task.dataset(splits["validation"], long_packer, 16, training=False)}
    assert max(plain) < 256  # without static shapes batches pad only to their longest text


def test_predictions_come_back_in_the_texts_order_after_length_sorting():
    import keras
    import tensorflow as tf

    from tfapp.core.backbone import backbone_inputs
    from tfapp.core.datasets import texts_only_dataset
    from tfapp.core.windows import predict_texts

    packer = TextPacker(load_backbone("tiny").tokenizer, 64)
    texts = [r["text"] for r in sample_rows()][:40]
    texts[3] = "stocks " * 30  # the longest, early in the file
    lengths = packer.token_lengths(texts)
    assert not np.all(np.diff(lengths) >= 0)  # the file is not already in length order
    inputs = backbone_inputs()
    # Per-text outputs that padding cannot change: real-token count and id sum.
    mask = keras.ops.cast(inputs["padding_mask"], "float32")
    ids = keras.ops.cast(inputs["token_ids"], "float32")
    out = keras.layers.Concatenate()([
        keras.ops.sum(mask, axis=1, keepdims=True), keras.ops.sum(ids * mask, axis=1,
                                                                    keepdims=True)])
    model = keras.Model(inputs, {"stats": out})
    got = predict_texts(model, packer, texts, 8, texts_only_dataset)["stats"]
    want = np.array([[float(len(ids_)), float(sum(ids_))] for ids_ in
                     (packer.ragged_ids(tf.constant([t])).to_list()[0] for t in texts)])
    np.testing.assert_allclose(got, want)
    np.testing.assert_array_equal(got[:, 0], np.minimum(lengths, 62) + 2)
