"""bench.onednn_kernels: oneDNN's verbose execution lines grouped by primitive,
implementation and data type, only between the timed calls' markers."""
import pytest

from conftest import run_cli

PRE = "onednn_verbose,v1,primitive,exec,cpu,"
AMX = "matmul,brg_matmul:avx10_1_512_amx,undef,src:bf16::blocked:ab::f0 wei:bf16::blocked:ab::f0"
GEMM = "gemm_api,,undef,src_f32::blocked:ab:f0 wei_f32::blocked:ab:f0"
SHAPE = ",,,128x384:384x1536,"
LINES = [PRE + AMX + SHAPE + "9.0", "tfapp-bench-begin", PRE + AMX + SHAPE + "0.5",
         PRE + AMX + SHAPE + "0.25", PRE + GEMM + SHAPE + "1.25",
         "onednn_verbose,v1,primitive,info,template:operation,engine,primitive",
         "tfapp-bench-end [0.01]", PRE + GEMM + SHAPE + "7.0"]


def test_executions_are_grouped_between_the_markers_only():
    from bench.onednn_kernels import parse

    groups = parse(LINES)
    assert groups == {("matmul", "brg_matmul:avx10_1_512_amx", "bf16"): [2, 0.75],
                      ("gemm_api", "-", "f32"): [1, 1.25]}


def test_a_folder_without_a_saved_model_is_a_one_line_error(tmp_path):
    result = run_cli("bench.onednn_kernels", "--export", tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path}: not a SavedModel directory (no saved_model.pb)")


@pytest.mark.integration  # a tiny export and a fresh process (~40 s)
def test_a_tiny_export_reports_its_primitives(tmp_path):
    import json

    run = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", 1,
                  "--run-dir", tmp_path / "run")
    assert run.returncode == 0, run.stderr[-2000:]
    result = run_cli("bench.onednn_kernels", "--export", tmp_path / "run" / "export" /
                     "sentiment" / "1", "--calls", 2, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((tmp_path / "out" / "onednn_kernels.json").read_text())[0]["rows"]
    assert any(r["kind"] in ("matmul", "inner_product", "gemm_api") for r in rows)
    assert abs(sum(r["share"] for r in rows) - 1.0) < 1e-6
