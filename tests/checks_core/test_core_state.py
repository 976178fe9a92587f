"""Global state (checks/core/state.py): every change is named and undone, lazy set-up is never blamed."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist

from torchcourse.checks.core import Status

from .conftest import incorrect as _incorrect
from .conftest import vectors as _vectors


@pytest.fixture
def double(chapter):
    return chapter.exercise("q1", "Double it", points=1, reference=lambda x: x * 2, inputs=_vectors,
                            hints=["Multiply."], time_limit=0.3)


# --- global state -------------------------------------------------------------------------------------


def _changer(change):
    def answer(x):
        change()
        return x * 2

    return answer


CHANGES = {
    "default dtype": lambda: torch.set_default_dtype(torch.float64),
    "grad mode": lambda: torch.set_grad_enabled(False),
    "grad mode ": lambda: torch.no_grad().__enter__(),
    "seed": lambda: torch.manual_seed(torch.initial_seed() + 1),  # a new seed whatever an earlier test set
    "default device": lambda: torch.set_default_device("meta"),
    "default device ": lambda: torch.device("meta").__enter__(),
    "thread count": lambda: torch.set_num_threads(max(1, torch.get_num_threads() % 2 + 1)),
    "print options": lambda: torch.set_printoptions(precision=2),
    "deterministic": lambda: torch.use_deterministic_algorithms(True),
    "anomaly": lambda: torch.autograd.set_detect_anomaly(True),
    "environment": lambda: os.environ.__setitem__("TORCHCOURSE_TOY_VARIABLE", "1"),
    "matmul precision": lambda: torch.set_float32_matmul_precision("medium"),
    "autocast": lambda: torch.set_autocast_enabled("cpu", True),
}


def _state():
    return (torch.get_default_dtype(), torch.is_grad_enabled(), torch.initial_seed(), torch.get_default_device(),
            torch.get_num_threads(), torch._tensor_str.PRINT_OPTS.precision,
            torch.are_deterministic_algorithms_enabled(), torch.is_anomaly_enabled(),
            "TORCHCOURSE_TOY_VARIABLE" in os.environ, torch.get_float32_matmul_precision(),
            torch.is_autocast_enabled("cpu"), len(torch.overrides._get_current_function_mode_stack()),
            torch.get_rng_state())


@pytest.mark.parametrize("name", list(CHANGES), ids=[n.strip() + ("-context" if n.endswith(" ") else "")
                                                     for n in CHANGES])
def test_changing_global_state_is_named_and_undone(double, name):
    before = _state()
    _incorrect(double, _changer(CHANGES[name]), "changed global state", name.strip())
    after = _state()
    assert before[:-1] == after[:-1] and torch.equal(before[-1], after[-1])
    assert double.grade(lambda x: x * 2).status is Status.CORRECT


def test_an_initialised_process_group_is_named_and_destroyed(double):
    if dist.is_initialized():  # chapter 05's checks keep a group of one for the session
        dist.destroy_process_group()

    def starts_a_group(x):
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        return x * 2

    _incorrect(double, starts_a_group, "process group")
    assert not dist.is_initialized()


def test_drawing_from_the_global_generator_when_told_not_to(chapter):
    ex = chapter.exercise("q2", "Draw", points=1, reference=lambda g, n: torch.rand(n, generator=g),
                          inputs=lambda g, d: (torch.Generator().manual_seed(randint(g)), 3), hints=["-"],
                          global_rng=False)
    assert ex.grade(lambda g, n: torch.rand(n, generator=g)).status is Status.CORRECT
    state = torch.get_rng_state()

    def also_global(g, n):
        torch.rand(1)
        return torch.rand(n, generator=g)

    _incorrect(ex, also_global, "global random generator's state")
    assert torch.equal(state, torch.get_rng_state())


def randint(g):
    return int(torch.randint(0, 1000, (1,), generator=g))


@pytest.mark.parametrize("context", ["absent", "set"])
def test_the_default_device_context_is_restored_exactly(double, context):
    """torch 2.6-2.10's ``get_default_device()`` raises once ``device_context`` holds ``None``: a restore that
    writes ``None`` where the attribute was absent poisons every later call. Absent stays absent, and a set
    context comes back as the same object."""
    import torch.utils._device as device_module

    holder = torch._GLOBAL_DEVICE_CONTEXT
    had, old = hasattr(holder, "device_context"), getattr(holder, "device_context", None)
    old_current = device_module.CURRENT_DEVICE
    try:
        if context == "absent":
            if hasattr(holder, "device_context"):
                del holder.device_context
        else:
            torch.set_default_device("cpu")
        before = getattr(holder, "device_context", "absent")
        _incorrect(double, _changer(lambda: torch.set_default_device("meta")), "changed global state", "default device")
        assert getattr(holder, "device_context", "absent") is before
        assert torch.get_default_device() == torch.device("cpu")
    finally:
        if context == "set":
            torch.set_default_device(None)  # pops the DeviceContext mode that set_default_device pushed
        if had:
            holder.device_context = old
        elif hasattr(holder, "device_context"):
            del holder.device_context
        device_module.CURRENT_DEVICE = old_current
        assert not any(type(m).__name__ == "DeviceContext" for m in torch.overrides._get_current_function_mode_stack())


def test_a_library_that_sets_a_variable_on_its_first_import_is_not_blamed(double, tmp_path, monkeypatch):
    # scikit-learn's first import sets KMP_* variables: a set-up of its own, like torch's lazy ones
    (tmp_path / "torchcourse_toy_library.py").write_text(
        "import os\nos.environ['TORCHCOURSE_TOY_LIBRARY'] = '1'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "torchcourse_toy_library", raising=False)

    def imports_a_library(x):
        import torchcourse_toy_library  # noqa: F401

        return x * 2

    assert double.grade(imports_a_library).status is Status.CORRECT
    assert "TORCHCOURSE_TOY_LIBRARY" not in os.environ  # still put back
    _incorrect(double, _changer(lambda: (__import__("torchcourse_toy_library"),
                                         os.environ.__setitem__("TORCHCOURSE_TOY_VARIABLE", "1"))),
               "TORCHCOURSE_TOY_VARIABLE")  # the learner's own, once the library is imported
