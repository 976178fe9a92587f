"""The API tracer records what lesson code runs, on which devices, and changes nothing it traces."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import torchcourse as tc
from torchcourse import tracing

TARGETS = [
    "torch.zeros",
    "torch.Tensor.view",
    "torch.Tensor.shape",
    "torch.Tensor.__add__",
    "torch.Tensor.add",
    "torch.Tensor.__getitem__",
    "torch.from_numpy",
    "torch.manual_seed",
    "torch.finfo",
    "torch.FloatTensor",
    "torch.Tensor",
    "torch.nn.Linear",
    "torch.nn.Module",
    "torch.nn.Module.state_dict",
    "torch.optim.SGD",
    "torch.optim.Optimizer.step",
    "torch.eig",
    "torch.linalg.eig",
    "torch.fft",
    "torch.fft.fft",
    "torch.ifft",
    "torch.range",
    "torch.utils.data.Dataset",
    "torch.random",
    "torch.lu",
    "torch.sqrt",
    "torch.nn.functional.upsample",
]


@pytest.fixture
def tracer(tmp_path):
    tracing._STATUS.update({"torch.eig": "removed", "torch.fft": "removed", "torch.ifft": "removed"})
    started = tracing.start(tmp_path, TARGETS, on_cells=False)
    try:
        yield started
    finally:
        tracing.stop()


def test_records_calls_properties_operators_and_devices(tracer):
    x = torch.zeros(2, 3)
    y = x + 1
    assert x.view(3, 2).shape == (3, 2) and y[0].tolist() == [1.0, 1.0, 1.0]
    torch.from_numpy(np.ones(2))
    torch.manual_seed(0)
    calls = tracer.calls
    for name in (
        "torch.zeros",
        "torch.Tensor.view",
        "torch.Tensor.shape",
        "torch.Tensor.__add__",
        "torch.Tensor.__getitem__",
        "torch.from_numpy",
        "torch.manual_seed",
    ):
        assert name in calls, name
    assert "torch.Tensor.add" not in calls  # x + 1 is the operator, not the method
    assert calls["torch.zeros"] == {"cpu"} and calls["torch.manual_seed"] == {"none"}


def test_library_internals_are_not_lesson_calls(tracer):
    repr(torch.arange(3.0))  # printing runs many torch ops inside torch
    tc.run_on_devices(lambda t: t * 2, torch.ones(2))  # the helper's own .to()/assert_close do not count
    assert "torch.Tensor.abs" not in tracer.calls and "torch.Tensor.to" not in tracer.calls
    tc.run_on_devices(torch.sqrt, torch.ones(2))  # but a function handed to a helper does
    assert "torch.sqrt" in tracer.calls


def test_names_classes_modules_optimizers(tracer):
    assert torch.finfo(torch.float32).bits == 32 and torch.FloatTensor(2).dtype == torch.float32
    assert torch.Tensor(2).shape == (2,)
    torch.random.manual_seed(1)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 1)

        def forward(self, x):
            return self.fc(x)

    net = Net()
    net(torch.ones(2)).sum().backward()
    net.state_dict()
    torch.optim.SGD(net.parameters(), lr=0.1).step()

    class Data(torch.utils.data.Dataset):
        pass

    for name in (
        "torch.finfo",
        "torch.FloatTensor",
        "torch.Tensor",
        "torch.random",
        "torch.nn.Linear",
        "torch.nn.Module",
        "torch.nn.Module.state_dict",
        "torch.optim.SGD",
        "torch.optim.Optimizer.step",
        "torch.utils.data.Dataset",
    ):
        assert name in tracer.calls, name
    assert tracer.calls["torch.nn.Linear"] == {"cpu"}


def test_removed_apis_are_shown_inside_expect_blocks(tracer):
    with tc.expect_error(RuntimeError, "removed"):
        torch.eig(torch.eye(2))
    with tc.expect_error(TypeError, "not callable"):
        torch.fft(torch.ones(4), 1)
    assert not hasattr(torch, "ifft")
    torch.linalg.eig(torch.eye(2))
    torch.fft.fft(torch.ones(4))
    assert {"torch.eig", "torch.fft", "torch.ifft"} <= tracer.shown
    assert {"torch.linalg.eig", "torch.fft.fft"} <= set(tracer.calls)


def test_results_identity_and_warnings_are_unchanged(tracer, tmp_path):
    # Identity as PyTorch itself leaves it: importing torch._dynamo rebinds torch.manual_seed to a
    # wrapped copy, so the relation is compared with a process that has the same modules loaded.
    same_seed_function = torch.random.manual_seed is torch.manual_seed
    tracing.stop()
    assert same_seed_function == (torch.random.manual_seed is torch.manual_seed)
    tracing.start(tmp_path, TARGETS, on_cells=False)
    assert callable(torch.fft.fft)
    assert isinstance(torch.float16, torch.dtype) and type(torch.ones(1).shape) is torch.Size

    def attributed():
        torch.set_warn_always(True)
        try:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                torch.range(1, 2)  # a warning from C++, attributed to this line
                torch.lu(torch.eye(2))  # a Python function that dispatches itself, then warns in C++
                torch.nn.functional.upsample(torch.ones(1, 1, 2), scale_factor=2)  # warns with stacklevel=2
        finally:
            torch.set_warn_always(False)
        return [(w.filename, w.lineno, str(w.message)[:30]) for w in seen]

    traced = attributed()
    tracing.stop()
    assert attributed() == traced and traced[0][0] == __file__
    assert torch.manual_seed.__module__ == "torch.random" and not hasattr(torch.manual_seed, "__torchcourse_traced__")


def test_records_file_is_written_and_stop_restores(tmp_path):
    tracing.start(tmp_path, ["torch.zeros", "torch.finfo"], on_cells=False)
    torch.zeros(1)
    tracing.stop()
    [path] = tmp_path.glob("trace-*.json")
    data = json.loads(path.read_text())
    assert data["calls"]["torch.zeros"] == ["cpu"] and data["cwd"]
    assert "finfo" in vars(torch) and tracing.active() is None
    assert not torch.overrides._get_current_function_mode_stack()


def test_start_if_enabled_needs_a_kernel(monkeypatch, tmp_path):
    monkeypatch.setenv(tracing.ENV_VAR, str(tmp_path))
    monkeypatch.delenv("TORCHCOURSE_TRACE_ANY", raising=False)
    assert tracing.start_if_enabled() is None  # pytest is not a notebook kernel
