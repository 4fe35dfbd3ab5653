"""The README's recommendation command on the real packaged backbone and the built-in sample."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_default_recommend_job(tmp_path):
    run_dir = tmp_path / "run"
    start = time.time()
    result = run_cli("tfapp.train", "--task", "recommend", "--run-dir", run_dir, timeout=900)
    seconds = time.time() - start
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["test"]
    print(f"recommend default job: {seconds:.0f} s, test {test}, "
          f"examples/s {metrics['history']['examples_per_second']}")
    assert test["impressions"] == 48
    # Random ranking gives AUC 0.5; the planted interests should be clearly visible.
    assert test["auc"] >= 0.7 and test["ndcg@10"] >= 0.65, test
    card = (run_dir / "MODEL_CARD.md").read_text()
    assert "listwise loss" in card and "AUC" in card

    # The served scores rank a sports fan's candidates: sports above cooking.
    serve = ("import json, sys, tensorflow as tf, tensorflow_text\n"
             "m = tf.saved_model.load(sys.argv[1])\n"
             "h, c = (tf.constant(v) for v in json.loads(sys.argv[2]))\n"
             "print(json.dumps(m.signatures['score'](history=h, candidates=c)"
             "['scores'].numpy().tolist()))\n")
    history = [["Rovers beat City in a late comeback to top the league. sports",
                "Coach of Dynamo sacked after a run of six defeats. sports", ""]]
    candidates = [["Injury blow for United ahead of the cup final. sports",
                   "The easiest ramen recipe for weeknights. food"]]
    out = subprocess.run([sys.executable, "-c", serve,
                          str(run_dir / "export" / "recommend" / "1"),
                          json.dumps([history, candidates])],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    scores = np.array(json.loads(out.stdout.splitlines()[-1]))
    assert scores[0, 0] > scores[0, 1]
