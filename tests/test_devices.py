"""Device selection, synchronisation, the environment report and the agreement helper."""

from __future__ import annotations

import pytest
import torch

from torchcourse.devices import cuda_available, devices, environment_report, run_on_devices, synchronize


def test_cpu_is_always_first():
    assert devices()[0] == "cpu"
    assert ("cuda" in devices()) == cuda_available()


def test_cuda_can_be_hidden(monkeypatch):
    monkeypatch.setenv("TORCHCOURSE_NO_CUDA", "1")
    assert devices() == ["cpu"]


def test_synchronize_is_a_noop_on_cpu():
    synchronize("cpu")
    synchronize(torch.device("cpu"))


def test_environment_report_names_versions():
    report = environment_report()
    assert report.rows["torch"] == torch.__version__
    assert "CUDA" in report.rows and "CPU threads" in report.rows
    assert "torch" in str(report) and "<table>" in report._repr_html_()


def test_run_on_devices_returns_each_result():
    results = run_on_devices(torch.add, torch.ones(2), torch.ones(2))
    assert list(results) == devices()
    assert torch.equal(results["cpu"], torch.full((2,), 2.0))


def test_run_on_devices_compares_gradients():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    results = run_on_devices(lambda t: (t**2).sum(), x)
    assert results["cpu"].item() == 5.0
    assert x.grad is None  # the caller's tensor is copied, never touched


def test_run_on_devices_detects_disagreement():
    calls = iter([torch.zeros(2), torch.ones(2)])
    with pytest.raises(AssertionError, match="disagrees"):
        run_on_devices(lambda: next(calls), on=["cpu", "cpu:0"])


def test_run_on_devices_handles_nested_results():
    results = run_on_devices(lambda t: {"max": t.max(dim=0)}, torch.arange(6.0).view(3, 2))
    assert results["cpu"]["max"].values.tolist() == [4.0, 5.0]
