"""The coverage report and its gate: every inventory row of a chapter that exists runs in a lesson."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from torchcourse import coverage
from torchcourse.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "api-inventory.tsv"
HEADER = "api\tchapter\tnotes\tstatus\tmodern\tdevice\n"
INVENTORY = HEADER + "".join(
    "\t".join(row) + "\n"
    for row in [
        ("torch.zeros", "01_tensors", "002", "ok", "", "both"),
        ("torch.range", "01_tensors", "002", "deprecated", "torch.arange", "both"),
        ("torch.eig", "01_tensors", "002", "removed", "torch.linalg.eig", "both"),
        ("torch.Tensor.names", "01_tensors", "003", "removed", "positional dims via torch.Tensor.shape", "both"),
        ("torch.cuda.set_device", "05_gpu", "000", "needs-cuda", "", "cuda"),
        ("torch.nn.Linear", "03_nn", "001", "ok", "", "both"),
        ("visdom.Visdom", "01_tensors", "000", "external", "torch.utils.tensorboard.SummaryWriter", "cpu"),
    ]
)


def write_records(folder: Path, cwd: str, calls: dict, shown=(), cuda=False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"format": 1, "cwd": cwd, "cuda_available": cuda, "calls": calls, "shown": list(shown)}
    (folder / f"trace-{len(list(folder.iterdir()))}.json").write_text(json.dumps(data))


def report(records: Path, exclusions: str = "api\treason\n", existing=None):
    return coverage.compute(
        coverage.load_records(records),
        inventory=coverage.load_inventory(INVENTORY),
        exclusions=coverage.load_exclusions(exclusions),
        existing=existing if existing is not None else {"01_tensors": 1, "05_gpu": 1},
    )


def test_inventory_copy_matches_shared():
    if not SHARED.exists():
        pytest.skip("../shared/api-inventory.tsv is not here (a learner's clone)")
    ours = (ROOT / "src" / "torchcourse" / "data" / "api-inventory.tsv").read_text(encoding="utf-8")
    assert ours == SHARED.read_text(encoding="utf-8"), "copy ../shared/api-inventory.tsv to src/torchcourse/data/"


def test_exclusions_are_few_reasoned_and_name_real_rows():
    exclusions = coverage.load_exclusions()
    apis = {row["api"] for row in coverage.load_inventory()}
    assert len(exclusions) <= 10
    for api, reason in exclusions.items():
        assert api in apis, f"{api} is not in the inventory"
        assert len(reason.split()) >= 6, f"{api}: give a reason"


def test_modern_names():
    assert coverage.modern_names("torch.Tensor.permute / torch.Tensor.movedim (positional)") == [
        "torch.Tensor.permute",
        "torch.Tensor.movedim",
    ]
    assert coverage.modern_names("torch.profiler.profile / python -m cProfile") == [
        "torch.profiler.profile",
        "cProfile",
    ]
    assert coverage.modern_names("torchmetrics.MeanMetric / a hand-written meter") == ["torchmetrics.MeanMetric"]


def test_gate_counts_cpu_runs_shown_removed_rows_and_chapters_that_exist(tmp_path):
    lesson = "/repo/notebooks/01_tensors"
    write_records(
        tmp_path,
        lesson,
        {"torch.zeros": ["cpu"], "torch.range": ["none"], "torch.eig": ["none"], "torch.linalg.eig": ["cpu"]},
        shown=["torch.eig", "*.Tensor.names"],
    )
    write_records(tmp_path, "/repo/solutions", {"torch.Tensor.shape": ["cpu"]})  # not a lesson: ignored
    result = report(tmp_path)
    assert [row.api for row in result.failures] == ["torch.Tensor.names"]  # shown, but its replacement never ran
    write_records(tmp_path, lesson, {"torch.Tensor.shape": ["cpu"]})
    result = report(tmp_path)
    assert result.failures == []  # 03_nn has no lessons; needs-cuda and external rows are not gated
    table = result.table()
    assert (
        "| 01_tensors | 1 | 5 | 4 | 3 | 0 | 2/3 | 0 | 0 |" in table
        and "| 03_nn | 0 | 1 | 1 | 0 | 0 | 0/0 | 0 | - |" in table
    )


def test_deleting_a_demonstrated_call_fails_the_gate(tmp_path):
    write_records(
        tmp_path,
        "/repo/notebooks/01_tensors",
        {"torch.range": ["cpu"], "torch.linalg.eig": ["cpu"], "torch.Tensor.shape": ["cpu"]},
        shown=["torch.eig", "*.Tensor.names"],
    )
    result = report(tmp_path)
    assert [row.api for row in result.failures] == ["torch.zeros"]
    assert "torch.zeros  · notes 002 · ok" in result.report()
    assert report(tmp_path, "api\treason\ntorch.zeros\tbecause a test says so\n").failures == []


def test_a_removed_row_run_live_on_a_torch_that_still_has_it_counts_with_its_replacement(tmp_path):
    lesson = "/repo/notebooks/01_tensors"
    calls = {"torch.zeros": ["cpu"], "torch.range": ["cpu"], "torch.linalg.eig": ["cpu"], "torch.Tensor.names": ["cpu"]}
    write_records(tmp_path, lesson, calls, shown=["torch.eig"])  # torch 2.11: names runs, the lesson shows it
    assert [row.api for row in report(tmp_path).failures] == ["torch.Tensor.names"]  # its replacement never ran
    write_records(tmp_path, lesson, {"torch.Tensor.shape": ["cpu"]})
    assert report(tmp_path).failures == []


def test_cuda_column_and_html_and_json(tmp_path, capsys):
    write_records(
        tmp_path,
        "/repo/notebooks/05_gpu",
        {"torch.zeros": ["cpu", "cuda"], "torch.cuda.set_device": ["none"]},
        cuda=True,
    )
    result = report(tmp_path)
    assert {row.api for row in result.rows if row.cuda} == {"torch.zeros", "torch.cuda.set_device"}
    assert "<table>" in result.html() and json.loads(json.dumps(result.to_dict()))["kernels"] == 1
    assert main(["coverage", "--records", str(tmp_path), "--json", "--root", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["kernels"] == 1


@pytest.mark.skipif(
    "TORCHCOURSE_COVERAGE_RECORDS" not in os.environ,
    reason="needs the records of a traced notebook run (make test sets TORCHCOURSE_COVERAGE_RECORDS)",
)
def test_gate_every_row_of_every_existing_chapter_runs_on_the_cpu():
    result = coverage.compute(coverage.load_records(os.environ["TORCHCOURSE_COVERAGE_RECORDS"]), ROOT)
    print(result.report())
    assert result.records.kernels or not result.existing, "no lesson kernel wrote records"
    assert not result.stale_exclusions, f"exclusions name no inventory row: {result.stale_exclusions}"
    assert not result.failures, (
        "rows no lesson runs on the CPU (add a demonstration, or a reasoned exclusion): "
        + ", ".join(f"{row.api} ({row.chapter}, notes {row.notes})" for row in result.failures)
    )
