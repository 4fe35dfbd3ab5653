"""The benchmark harness runs end to end (quick suite, tiny backbone). No timing asserts."""
import json

import pytest

from conftest import run_cli

pytest.importorskip("transformers", reason="needs the hf extra: pip install -e .[hf]")


@pytest.mark.integration  # the bench harness over a whole run
def test_quick_suite_writes_json_and_markdown(tmp_path):
    result = run_cli("bench.run", "--suite", "quick", "--out", tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (json_file,) = tmp_path.glob("quick-*.json")
    data = json.loads(json_file.read_text())
    for side in ("ours", "theirs"):
        assert data["train"][side]["examples_per_s"] > 0
        assert data["train"][side]["real_tokens_per_s"] > 0
        assert 0 < data["inference"][side]["p50_ms"] <= data["inference"][side]["p99_ms"]
        assert data["inference"][side]["batch32_examples_per_s"] > 0
    assert data["train"]["ratio"] > 0 and 0 < data["flops"]["fraction_of_peak"] < 1
    waste = data["padding_waste_pct"]
    assert waste["bucketed"] < waste["padded_to_batch_max"]
    assert data["machine"]["tensorflow"] and data["machine"]["torch"]
    from tfapp.core.distribute import cpu_supports_bf16

    bf16 = cpu_supports_bf16()  # the defaults follow the CPU's flags
    assert data["precision"] == {"train": "mixed_bfloat16" if bf16 else "float32",
                                 "export": "bfloat16" if bf16 else "float32"}
    (md_file,) = tmp_path.glob("quick-*.md")
    assert "| training examples/s |" in md_file.read_text()
    assert "| training examples/s |" in result.stdout


def test_machine_facts_name_the_cpu_and_its_matrix_flags():
    from bench.machine import cpu_facts, describe, label

    amx = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8488C\n"
           "flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n")
    facts = cpu_facts(amx)
    assert facts == {"cpu": "Intel(R) Xeon(R) Platinum 8488C",
                     "flags": ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile",
                               "amx_bf16", "amx_int8"]}
    plain = cpu_facts("model name\t: AMD EPYC\nflags\t: fpu sse2 avx2\n")
    assert plain == {"cpu": "AMD EPYC", "flags": ["avx2"]}
    info = describe(amx)
    assert info["cores"] >= 1 and info["tensorflow"]
    assert label(info).startswith("Intel(R) Xeon(R) Platinum 8488C, ")
    assert label(info).endswith("amx_bf16 amx_int8")


@pytest.mark.integration  # the bench harness over a whole run
@pytest.mark.parametrize("cache", [False, True])
def test_per_epoch_pipeline_timing_covers_every_epoch(cache):
    from bench.run import SUITES, sentiment_config, train_epochs_on_dataset
    from tfapp.core.backbone import TextPacker, load_backbone
    from tfapp.core.task_contract import get_task

    suite = SUITES["quick"]
    cfg = sentiment_config("tiny", **{"trainer.global_batch_size": suite.batch,
                                      "data.cache": cache})
    task = get_task("sentiment")(cfg)
    splits = task.load_splits()
    packer = TextPacker(load_backbone("tiny").tokenizer, cfg.backbone.max_seq_length)
    epochs = train_epochs_on_dataset(cfg, suite, task, splits, packer, epochs=2)
    assert len(epochs) == 2
    # Each epoch is the whole training split once (length buckets leave partial batches).
    assert epochs[0]["steps"] == epochs[1]["steps"] >= -(-len(splits["train"]) // suite.batch)
    assert all(rate["examples_per_s"] > 0 for rate in epochs)


def test_results_go_to_one_section_per_machine_kind(tmp_path):
    from bench.run_results import machine_kind, write_results

    def result(cpu, flags, ratio):
        side = {"examples_per_s": 10.0, "real_tokens_per_s": 100.0, "p50_ms": 5.0,
                "p99_ms": 9.0, "batch32_examples_per_s": 50.0}
        return {"suite": "full", "date": "2026-11-26T08:00:00", "batch": 32,
                "backbone": "default",
                "machine": {"cpu": cpu, "flags": flags, "cores": 2, "tensorflow": "x",
                            "keras": "x", "keras-hub": "x", "torch": "x",
                            "transformers": "x"},
                "train": {"ours": side, "theirs": side, "ratio": ratio},
                "inference": {"ours": side, "theirs": side, "p50_ratio": 1.0,
                              "batch32_ratio": 1.0},
                "flops": {"train_achieved_gflops": 1, "matmul_peak_gflops": 2,
                          "fraction_of_peak": 0.5},
                "padding_waste_pct": {"padded_to_batch_max": 20, "bucketed": 10},
                "precision": {"train": "mixed_bfloat16", "export": "bfloat16"}}

    amd = result("AMD EPYC 9R14", ["avx2", "avx512f", "avx512_bf16"], 2.0)
    intel = result("Intel(R) Xeon(R) Platinum 8488C", ["avx512f", "amx_bf16"], 1.5)
    assert machine_kind(amd["machine"]) == "amd-epyc-9r14-2c-avx512_bf16"
    assert machine_kind(intel["machine"]) == "intel-r-xeon-r-platinum-8488c-2c-amx_bf16"
    (tmp_path / "RESULTS.md").write_text("# Benchmark results\n")
    write_results(amd, tmp_path)
    write_results(intel, tmp_path)
    amd["train"]["ratio"] = 2.5  # a rerun on the same kind replaces its own section only
    write_results(amd, tmp_path)
    text = (tmp_path / "RESULTS.md").read_text()
    assert text.count("## Side by side on") == 2
    assert "| training examples/s | 10.0 | 10.0 | 2.5 |" in text
    assert "| training examples/s | 10.0 | 10.0 | 1.5 |" in text
    assert "| 2.0 |" not in text and "export precision bfloat16" in text
    assert json.loads((tmp_path / "run-amd-epyc-9r14-2c-avx512_bf16.json").read_text())[
        "train"]["ratio"] == 2.5
