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


class _WrongBackward(torch.autograd.Function):
    """Doubles, like ``2 * x``; its backward triples: a device whose gradients are wrong and outputs right."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad):
        return 3 * grad


def test_run_on_devices_backward_compares_the_gradients_of_a_whole_output():
    x = torch.randn(3, 4, requires_grad=True)
    calls = []

    def double(t):
        calls.append(t)
        return _WrongBackward.apply(t) if len(calls) == 2 else 2 * t

    run_on_devices(double, x, on=["cpu", "cpu:0"])  # a non-scalar output: gradients not compared by default
    calls.clear()
    with pytest.raises(AssertionError, match="gradients on cpu:0 disagree"):
        run_on_devices(double, x, on=["cpu", "cpu:0"], backward=True)
    calls.clear()
    run_on_devices(lambda t: 2 * t, x, on=["cpu", "cpu:0"], backward=True)
    assert x.grad is None  # the caller's tensor is copied, never touched


def test_run_on_devices_detects_disagreement():
    calls = iter([torch.zeros(2), torch.ones(2)])
    with pytest.raises(AssertionError, match="disagrees"):
        run_on_devices(lambda: next(calls), on=["cpu", "cpu:0"])


def test_run_on_devices_handles_nested_results():
    results = run_on_devices(lambda t: {"max": t.max(dim=0)}, torch.arange(6.0).view(3, 2))
    assert results["cpu"]["max"].values.tolist() == [4.0, 5.0]


# Run in a fresh interpreter: counts every call that would start the CUDA driver while the package imports.
_IMPORT_PROBE = """
import json, sys
import torch
calls = []
for owner, name in ((torch.cuda, "is_available"), (torch._C, "_cuda_getDeviceCount"), (torch.cuda, "init")):
    real = getattr(owner, name)
    setattr(owner, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
import torchcourse
import torchcourse.bench, torchcourse.distributed, torchcourse.devices, torchcourse.lesson
report = {"calls": list(calls), "initialized": torch.cuda.is_initialized()}
devices = torchcourse.DEVICES  # the first use asks
report["devices"], report["after_use"] = devices, len(calls) > 0
print(json.dumps(report))
"""


def test_import_does_not_start_cuda():
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import torchcourse

    src = str(Path(torchcourse.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src, "TORCHCOURSE_NO_CUDA": "0"}
    done = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["calls"] == [] and report["initialized"] is False
    assert report["after_use"] and report["devices"][0] == "cpu"


def test_devices_is_lazy_and_stable():
    import sys

    import torchcourse

    devices_module = sys.modules["torchcourse.devices"]  # torchcourse.devices is the function
    assert torchcourse.DEVICES is devices_module.DEVICES  # one list, computed once
    assert torchcourse.DEVICES == devices()
    with pytest.raises(AttributeError):
        _ = torchcourse.NOT_A_NAME


def test_cudnn_spy_sees_convolutions_forward_and_backward_and_not_matmuls():
    from torchcourse.devices import _CudnnSpy

    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    with _CudnnSpy() as spy:
        (x.flatten(1) @ torch.randn(50, 3)).sum().backward()
    assert not spy.seen
    with _CudnnSpy() as spy:
        torch.nn.functional.conv2d(x, torch.randn(3, 2, 3, 3)).sum().backward()
    assert spy.seen


def test_the_tf32_tolerance_is_for_cudnn_work_unless_matmuls_allow_tf32(monkeypatch):
    """On an Ampere GPU with the defaults (cuDNN TF32 on, matmul TF32 off), element-wise work keeps float32's."""
    import importlib

    module = importlib.import_module("torchcourse.devices")
    monkeypatch.setattr(module, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    value = torch.ones(2)
    assert module._tolerance("cuda", value, None, None, cudnn=False) == {"atol": None, "rtol": None}
    assert module._tolerance("cuda", value, None, None, cudnn=True) == module.TF32_TOLERANCE
    assert module._tolerance("cuda", value.double(), None, None, cudnn=True) == {"atol": None, "rtol": None}
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")
    assert module._tolerance("cuda", value, None, None, cudnn=False) == module.TF32_TOLERANCE
