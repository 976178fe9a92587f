"""The API tracer records what lesson code runs, on which devices, and changes nothing it traces."""

from __future__ import annotations

import argparse
import ast
import json
import traceback
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


def test_paused_takes_the_mode_and_hooks_out_and_puts_them_back(tracer):
    import builtins

    hook = getattr(builtins, tracing.CALL_HOOK, None)
    with tracing.paused():
        assert tracer._mode not in torch.overrides._get_current_function_mode_stack()
        assert getattr(builtins, tracing.CALL_HOOK) is tracing._pass_through
        torch.sqrt(torch.ones(1))  # not recorded
    assert torch.overrides._get_current_function_mode_stack()[-1] is tracer._mode
    assert getattr(builtins, tracing.CALL_HOOK, None) is hook
    torch.zeros(1)
    assert "torch.zeros" in tracer.calls and "torch.sqrt" not in tracer.calls
    with tracing.paused():  # without a tracer it does nothing
        pass


def test_the_bench_records_its_function_once_and_times_it_without_the_tracer(tracer):
    from torchcourse.bench import time_fn

    seen = []

    def fn():
        seen.append(tracer._mode in torch.overrides._get_current_function_mode_stack())
        return torch.sqrt(torch.ones(1))

    time_fn(fn, "cpu", min_run_time=0.01, blocks=2)
    assert seen[0] and not any(seen[1:]) and len(seen) > 3  # recorded once; the timed calls ran without it
    assert "torch.sqrt" in tracer.calls
    assert torch.overrides._get_current_function_mode_stack()[-1] is tracer._mode  # and it is back after


def test_torchscript_compiles_the_functions_not_their_recorders(tmp_path):
    import warnings

    from torch import nn

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    tracing.start(tmp_path, ["torch.nn.functional.relu", "torch.nn.functional.linear", "torch.nn.ReLU"],
                  on_cells=False)
    try:
        assert getattr(torch.nn.functional.relu, "__torchcourse_traced__", False)  # a recorder, not F.relu itself
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.script is deprecated on newer releases
            scripted = torch.jit.script(model)  # nn.ReLU calls F.relu (Python), nn.Linear F.linear (a builtin)
    finally:
        tracing.stop()
    x = torch.randn(2, 3)
    assert torch.equal(scripted(x), model(x))
    assert not getattr(torch.nn.functional.relu, "__torchcourse_traced__", False)  # stop put it back


def test_start_if_enabled_needs_a_kernel(monkeypatch, tmp_path):
    monkeypatch.setenv(tracing.ENV_VAR, str(tmp_path))
    monkeypatch.delenv("TORCHCOURSE_TRACE_ANY", raising=False)
    assert tracing.start_if_enabled() is None  # pytest is not a notebook kernel


# ----------------------------------------------------------------- builtins, through the rewritten cells
PYTHON_ROWS = [
    "eval",
    "tuple",
    "list",
    "str",
    "str.format",
    "str.__mod__",
    "collections.namedtuple",
    "collections.namedtuple._replace",
    "collections.namedtuple._asdict",
    "collections.OrderedDict",
    "argparse.ArgumentParser",
    "argparse.ArgumentParser.add_argument",
    "argparse.ArgumentParser.parse_args",
    "queue.Queue",
    "torch.Tensor.__mod__",
    "torch.zeros",
]

CELL = '''
import argparse
import queue
from collections import OrderedDict, namedtuple

assert "ok%4d" % 19 == "ok  19" and "{}-{name}".format(1, name=2) == "1-2"
remainder = torch.zeros(3) % 2  # a tensor's % is the tensor's row, not str.__mod__
Point = namedtuple("Point", "x y")
moved = Point(1, 2)._replace(x=3)
assert moved._asdict() == {"x": 3, "y": 2} and eval("1 + 2") == 3
assert tuple([1]) == (1,) and list((1,)) == [1] and str(5) == "5"
assert list(OrderedDict(a=1)) == ["a"] and queue.Queue().empty()
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
assert parser.parse_args(["--lr", "0.5"]).lr == 0.5
'''


@pytest.fixture
def python_tracer(tmp_path):
    started = tracing.start(tmp_path, PYTHON_ROWS, on_cells=False)
    try:
        yield started
    finally:
        tracing.stop()


def test_rewritten_cells_see_builtins_c_methods_operators_and_namedtuple_methods(python_tracer):
    exec(python_tracer.rewriter.compile(CELL, "/lesson/cell.py"), {"torch": torch})
    assert set(PYTHON_ROWS) <= set(python_tracer.calls), set(PYTHON_ROWS) - set(python_tracer.calls)
    assert python_tracer.calls["torch.Tensor.__mod__"] == {"cpu"}


def test_only_lesson_code_counts_for_builtins(python_tracer):
    # Not rewritten: library code (argparse formats with % and str.format inside) and plain calls.
    parser = argparse.ArgumentParser(prog="demo")
    parser.add_argument("--lr", type=float, default=0.1, help="rate (default %(default)s)")
    assert "default 0.1" in parser.format_help()
    assert eval("(1, 2)") == (1, 2) and ast.literal_eval("[1]") == [1] and "%d" % 1 == "1"  # noqa: UP031
    calls = set(python_tracer.calls)
    assert not calls & {"eval", "str.__mod__", "str.format", "tuple", "list", "str"}, calls
    assert {"argparse.ArgumentParser", "argparse.ArgumentParser.add_argument"} <= calls  # these are wrapped


def test_rewritten_cells_behave_as_written(python_tracer):
    source = '''
class Base:
    def __init__(self, n):
        self.n = n

class Child(Base):
    def __init__(self, n):
        super().__init__(n)  # zero-argument super() still finds its class
        self.names = sorted(locals())

def scope():
    hidden = 41
    return eval("hidden + 1")  # eval still sees the caller's locals

def fails():
    return {}["missing"]

child, answer = Child(3), scope()
pair = divmod(*(7, 2))
'''
    plain, rewritten = {}, {}
    exec(compile(source, "/lesson/cell.py", "exec"), plain)
    exec(python_tracer.rewriter.compile(source, "/lesson/cell.py"), rewritten)
    for namespace in (plain, rewritten):
        assert namespace["child"].n == 3 and namespace["child"].names == ["__class__", "n", "self"]
        assert namespace["answer"] == 42 and namespace["pair"] == (3, 1)
    errors = []
    for namespace in (plain, rewritten):
        with pytest.raises(KeyError) as caught:
            namespace["fails"]()
        frames = traceback.extract_tb(caught.value.__traceback__)[1:]
        errors.append([(f.name, f.lineno, getattr(f, "colno", None), getattr(f, "end_colno", None)) for f in frames])
    assert errors[0] == errors[1]
    assert "eval" in python_tracer.calls


def test_cells_are_rewritten_in_ipython_and_the_transformer_leaves_with_stop(tmp_path):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        started = tracing.start(tmp_path, PYTHON_ROWS, on_cells=True)
        assert started.rewriter in shell.ast_transformers
        result = shell.run_cell("assert '{}'.format(eval('1')) == str(tuple([1])[0])\nlen('%s' % 1)")
        assert result.success and result.result == 1
        tracing.stop()
        assert started.rewriter not in shell.ast_transformers
        assert {"str.format", "eval", "tuple", "str", "str.__mod__"} <= set(started.calls)
        assert shell.run_cell("f'{len([1])}'").result == "1"  # after stop, cells run as written
    finally:
        tracing.stop()
        InteractiveShell.clear_instance()
