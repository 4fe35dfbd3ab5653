import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfapp.core.errors import TfappError
from tfapp.core.export_layout import existing_versions
from tfapp.serving.saved_model import export_saved_model
from tfapp.training.restore import restore_run

TEXTS = ["Shares of Northwind Bank jumped 9% after earnings beat estimates.",
         "The central bank left interest rates unchanged.",
         "Ünïcode ümlauts and émojis 📉 in a headline",
         "market " * 300]

RELOAD = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
m = tf.saved_model.load(sys.argv[1])
out = m.signatures["serving_default"](text=tf.constant(json.loads(sys.argv[2])))
assert not any(name.split(".")[0] in ("tfapp", "tasks", "keras_hub") for name in sys.modules)
print(json.dumps({k: (v.numpy().astype(str).tolist() if v.dtype == tf.string
                      else v.numpy().tolist()) for k, v in out.items()}))
"""


def test_export_reloads_in_fresh_process_with_same_outputs(tiny_run):
    run_dir, _ = tiny_run
    export = run_dir / "export" / "sentiment" / "1"
    result = subprocess.run([sys.executable, "-c", RELOAD, str(export), json.dumps(TEXTS)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])

    restored = restore_run(run_dir)
    _, task, _, packer = restored
    model = restored.served()  # in the export's precision
    local = task.serving_signatures(model, packer)["serving_default"](tf.constant(TEXTS))
    assert set(served) == set(local)
    for key, value in local.items():
        if value.dtype == tf.string:
            assert served[key] == value.numpy().astype(str).tolist(), key
        else:
            np.testing.assert_allclose(served[key], value.numpy(), atol=1e-5, rtol=0)
    assert np.asarray(served["probabilities"]).shape == (4, 3)


def test_versions_grow_and_are_never_overwritten(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    _, task, model, packer = restore_run(run_dir)
    base = tmp_path / "sentiment"
    assert export_saved_model(task, model, packer, base).name == "1"
    assert export_saved_model(task, model, packer, base).name == "2"
    with pytest.raises(TfappError, match="already exists"):
        export_saved_model(task, model, packer, base, version=2)
    assert existing_versions(base) == [1, 2]
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]  # no temp dirs left


def test_export_that_does_not_match_the_model_is_not_published(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    _, task, model, packer = restore_run(run_dir)

    class Noisy(type(task)):
        def serving_signatures(self, model, packer):
            serve = super().serving_signatures(model, packer)["serving_default"]

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
            def noisy(text):
                out = dict(serve(text))
                # Noise seeded by the clock: every call (in memory or reloaded) differs,
                # whatever global seed earlier tests set.
                seed = tf.stack([tf.cast(tf.timestamp() * 1e6 % 2**31, tf.int64),
                                 tf.constant(0, tf.int64)])
                out["probabilities"] += tf.random.stateless_uniform(
                    tf.shape(out["probabilities"]), seed, 0.01, 1.0)
                return out

            return {"serving_default": noisy}

    base = tmp_path / "sentiment"
    with pytest.raises(TfappError, match="export check failed: .* probabilities differs"):
        export_saved_model(Noisy(task.config), model, packer, base)
    assert not base.exists() or not any(base.iterdir())
