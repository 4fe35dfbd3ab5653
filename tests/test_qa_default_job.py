"""The README's QA commands on the real packaged backbone and the built-in FAQ sample."""
import csv
import json
import time

import pytest

from conftest import REPO, run_cli, serve_fresh, write_csv

pytestmark = [pytest.mark.slow, pytest.mark.integration]
SAMPLES = REPO / "tasks" / "samples"


def default_job(tmp_path, *args):
    run_dir = tmp_path / "run"
    start = time.time()
    result = run_cli("tfapp.train", "--task", "qa", "--run-dir", run_dir, *args, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, json.loads((run_dir / "metrics.json").read_text()), time.time() - start


@pytest.fixture(scope="module")
def retrieval_job(tmp_path_factory):
    return default_job(tmp_path_factory.mktemp("qa_default"))


def test_default_retrieval_job_ranks_held_out_paraphrases(retrieval_job):
    run_dir, metrics, seconds = retrieval_job
    test = metrics["test"]["ranking"]
    print(f"qa retrieval default job: {seconds:.0f} s, test {test}")
    # Held-out questions are paraphrases never seen in training; chance top-1 is 1/32.
    assert test["bank_size"] == 32 and test["examples"] == 64
    assert test["top1_accuracy"] >= 0.75 and test["recall@5"] >= 0.95 and test["mrr"] >= 0.85
    assert metrics["calibration"]["reached"]
    handoff = metrics["test"]["handoff"]
    assert handoff["coverage"] > 0.5 and handoff["precision"] >= 0.8


def test_reindexed_bank_answers_a_new_topic_without_retraining(retrieval_job, tmp_path):
    run_dir, _, _ = retrieval_job
    with open(SAMPLES / "qa_answers.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rows.append({"answer_id": "crypto_not_supported",
                 "answer": "We do not offer buying, selling or holding cryptocurrencies such "
                           "as bitcoin. You can pay a regulated crypto exchange by bank "
                           "transfer."})
    new_faq = write_csv(tmp_path / "new_faq.csv", rows)
    base = run_dir / "export" / "qa"
    result = run_cli("tfapp.qa_index", "--model", base, "--answers", new_faq)
    assert result.returncode == 0, result.stderr[-3000:]
    served = serve_fresh(base / "2", ["Can I buy bitcoin in the app?",
                                      "My debit card was stolen on the train"])
    assert served["answer_ids"][0][0] == "crypto_not_supported"
    assert served["answer_ids"][1][0] == "card_lost_stolen"
    old = serve_fresh(base / "1", ["Can I buy bitcoin in the app?"])
    assert "crypto_not_supported" not in old["answer_ids"][0]


def test_default_intent_job(tmp_path):
    run_dir, metrics, seconds = default_job(tmp_path, "--set", "qa.mode=intent")
    test = metrics["test"]["ranking"]
    print(f"qa intent default job: {seconds:.0f} s, test {test}")
    assert test["bank_size"] == 32
    assert test["top1_accuracy"] >= 0.6 and test["recall@5"] >= 0.85
    served = serve_fresh(run_dir / "export" / "qa" / "1", ["I forgot my PIN"])
    assert served["answer_texts"][0][0].startswith("You can view your PIN")
