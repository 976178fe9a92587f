"""The prepared GPU run: tools/gpu_reference.py writes the reference and the record; gpu_run.sh needs CUDA."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from torchcourse.bench import BenchResult, Timing

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
gpu_reference = importlib.import_module("gpu_reference")
bench_module = importlib.import_module("torchcourse.bench")

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="3">
<testcase classname="notebooks.05_gpu.04_speed_features.ipynb" name="Cell 12"/>
<testcase classname="notebooks.05_gpu.05_multi_gpu_and_ddp.ipynb" name="Cell 8"><failure message="x"/></testcase>
<testcase classname="tests.test_x" name="test_y"><skipped message="s"/></testcase>
</testsuite></testsuites>"""


def _sweeps(folder: Path) -> None:
    folder.mkdir()
    timings = {"cpu": [Timing(2e-3, 1e-4, 10, 10), Timing(8e-3, 1e-4, 10, 10)],
               "cuda": [Timing(4e-3, 1e-4, 10, 10), Timing(1e-3, 1e-5, 10, 10)]}
    meta = {"gpu": "NVIDIA H200", "torch": "2.11.0+cu128", "cuda": "12.8", "date": "2026-12-02", "preset": "full"}
    BenchResult("n x n matmul", [64, 4096], ["cpu", "cuda"], timings, flops=[5e5, 1.4e11], meta=meta).save(
        folder / "n-x-n-matmul.json")
    cpu_only = BenchResult("cpu only", [8], ["cpu"], {"cpu": [Timing(1e-3, 1e-4, 10, 10)]}, meta=meta)
    cpu_only.save(folder / "cpu-only.json")


def test_the_reference_and_the_record_are_written_and_read_back(tmp_path, monkeypatch):
    _sweeps(tmp_path / "sweeps")
    (tmp_path / "junit.xml").write_text(JUNIT)
    doc = tmp_path / "gpu-runs.md"
    doc.write_text(f"# GPU runs\n\nintro\n\n{gpu_reference.START}\nNone yet.\n{gpu_reference.END}\n\ntail\n")
    ref = tmp_path / "gpu-reference.json"
    args = ["--sweeps", str(tmp_path / "sweeps"), "--junit", str(tmp_path / "junit.xml"), str(tmp_path / "absent.xml"),
            "--seconds", "321", "--reference", str(ref), "--doc", str(doc), "--write"]
    assert gpu_reference.main(args) == 0
    data = json.loads(ref.read_text())
    assert list(data["sweeps"]) == ["n x n matmul"]  # only sweeps that timed CUDA
    assert data["meta"]["gpu"] == "NVIDIA H200" and data["meta"]["date"] == "2026-12-02"
    text = doc.read_text()
    assert text.startswith("# GPU runs\n\nintro") and text.rstrip().endswith("tail") and "None yet" not in text
    assert "1 passed, 1 failed, 0 errors, 1 skipped; no results from absent.xml" in text
    assert "`notebooks.05_gpu.05_multi_gpu_and_ddp.ipynb::Cell 8`" in text and "321 s" in text
    assert "| n x n matmul | 64, 4,096 | 1 | 8.00x |" in text
    assert gpu_reference.main(args) == 0 and doc.read_text() == text  # a second run replaces, never appends

    monkeypatch.setenv("TORCHCOURSE_GPU_REFERENCE", str(ref))
    recorded = bench_module.reference("n x n matmul")
    assert recorded is not None and recorded.timings["cuda"][-1].median == 1e-3
    assert recorded.meta["gpu"] == "NVIDIA H200"


def test_no_cuda_sweeps_is_an_error(tmp_path):
    (tmp_path / "sweeps").mkdir()
    assert gpu_reference.main(["--sweeps", str(tmp_path / "sweeps")]) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_run_refuses_without_cuda_and_writes_nothing(tmp_path):
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GPU_RUN_")}  # not the rehearsal's
    env = {**inherited, "PYTHON": sys.executable, "GPU_RUN_DIR": str(tmp_path / "run"),
           "GPU_RUN_NOTEBOOKS": "notebooks/05_gpu/01_*.ipynb", "GPU_RUN_TESTS": ""}
    done = subprocess.run(["bash", str(ROOT / "tools" / "gpu_run.sh")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 2 and "no CUDA device" in done.stderr
    assert "preflight passed" in done.stdout  # the wheels and the notebooks were checked before CUDA
    assert not (tmp_path / "run").exists()


def test_a_short_run_merges_into_the_reference(tmp_path):
    _sweeps(tmp_path / "sweeps")
    timings = {"cpu": [Timing(1e-3, 1e-4, 10, 10)], "cuda": [Timing(2e-4, 1e-5, 10, 10)]}
    kept = BenchResult("kept from before", [8], ["cpu", "cuda"], timings, meta={"gpu": "NVIDIA H100"}).to_dict()
    stale = {**kept, "label": "n x n matmul"}
    ref = tmp_path / "gpu-reference.json"
    ref.write_text(json.dumps({"meta": {}, "sweeps": {"kept from before": kept, "n x n matmul": stale}}))
    doc = tmp_path / "gpu-runs.md"
    doc.write_text(f"{gpu_reference.START}\n{gpu_reference.END}\n")
    out = tmp_path / "out"
    out.mkdir()
    args = ["--sweeps", str(tmp_path / "sweeps"), "--reference", str(ref), "--doc", str(doc), "--write",
            "--copy-to", str(out)]
    assert gpu_reference.main(args) == 0
    data = json.loads(ref.read_text())
    assert sorted(data["sweeps"]) == ["kept from before", "n x n matmul"]
    assert data["sweeps"]["kept from before"]["meta"]["gpu"] == "NVIDIA H100"  # kept, with its own environment
    assert data["sweeps"]["n x n matmul"]["sizes"] == [64, 4096]  # replaced by this run's sweep
    assert "| kept from before |" in doc.read_text()
    assert sorted(p.name for p in out.iterdir()) == ["gpu-reference.json", "gpu-runs.md"]


def test_the_docs_keep_the_section_gpu_run_replaces():
    text = (ROOT / "docs" / "gpu-runs.md").read_text()
    assert text.count(gpu_reference.START) == 1 and text.count(gpu_reference.END) == 1


def test_a_sweep_whose_cpu_column_stops_early_is_recorded_with_the_size_of_its_speed_up(tmp_path):
    folder = tmp_path / "sweeps"
    folder.mkdir()
    timings = {"cpu": [Timing(2e-3, 1e-4, 10, 10)], "cuda": [Timing(1e-3, 1e-5, 10, 10), Timing(4e-3, 1e-5, 10, 10)]}
    BenchResult("capped", [2048, 4096], ["cpu", "cuda"], timings, meta={"gpu": "H100", "preset": "full"}).save(
        folder / "capped.json")  # the CPU timed up to bench.CPU_MAX only
    doc = tmp_path / "gpu-runs.md"
    doc.write_text(f"{gpu_reference.START}\n{gpu_reference.END}\n")
    args = ["--sweeps", str(folder), "--reference", str(tmp_path / "ref.json"), "--doc", str(doc), "--write"]
    assert gpu_reference.main(args) == 0
    assert "| capped | 2,048, 4,096 | 4 | 2.00x (at 2,048) |" in doc.read_text()


def test_step_one_takes_every_timed_lesson_the_rerun_suite_knows():
    """gpu_run.sh chooses step 1's notebooks with grep; every notebook with a timed cell (tc.bench or tc.compare,
    tools/rerun.py's one definition) must be among them, or its sweeps run in parallel and are never saved."""
    import nbformat

    rerun = importlib.import_module("rerun")
    script = (ROOT / "tools" / "gpu_run.sh").read_text()
    pattern = script.split("grep -lE '", 1)[1].split("'", 1)[0]
    lessons = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("notebooks/*/*.ipynb"))
    chosen = subprocess.run(["grep", "-lE", pattern, *lessons], cwd=ROOT, capture_output=True, text=True).stdout.split()
    timed = [p for p in lessons if any(c.cell_type == "code" and rerun.is_timed(c.source)
                                       for c in nbformat.read(ROOT / p, as_version=4).cells)]
    assert timed and sorted(chosen) == timed
