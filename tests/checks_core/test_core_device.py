"""The second device (checks/core/device.py): simulated CUDA without a GPU, ``meta`` where it cannot be simulated.

Class 1 of the graders' issues (mistakes that only show on a GPU) must fail here, on a CPU-only machine;
class 2 (correct answers the simulation cannot run: ``.item()``, NumPy results, backward) must pass.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchcourse import simcuda
from torchcourse.checks.core import Status
from torchcourse.devices import devices

from .conftest import incorrect as _incorrect
from .conftest import vectors as _vectors

pytestmark = pytest.mark.skipif("cuda" in devices(), reason="with a GPU the real device is the second device")
SIMULATED = simcuda.available()
WHERE = "simulated GPU" if SIMULATED else "meta"


def _correct(exercise, answer):
    outcome = exercise.grade(answer)
    assert outcome.status is Status.CORRECT, outcome.message


def _offsets(x):
    return x + torch.arange(len(x), device=x.device)


def test_a_missing_device_argument_fails_without_a_gpu(chapter):
    ex = chapter.exercise("q11", "Offsets", points=1, reference=_offsets, inputs=_vectors, hints=["-"])
    _correct(ex, _offsets)
    message = _incorrect(ex, lambda x: x + torch.arange(len(x)), WHERE, "no device= argument")
    assert "FakeTensor" not in message and "SimulatedDeviceError" not in message  # named as a GPU names it
    positions = chapter.exercise("q14", "Positions", points=1, inputs=_vectors, hints=["-"],
                                 reference=lambda x: torch.arange(len(x), device=x.device))
    _incorrect(positions, lambda x: torch.arange(len(x)), "came back on cpu")
    _correct(positions, lambda x: torch.arange(x.numel()).to(x.device))


def test_an_operation_the_simulation_cannot_run_is_inconclusive(chapter):
    """Class 2: .item(), NumPy integers and backward are right answers that the simulation cannot run."""
    ex = chapter.exercise("q12", "Total", points=1, reference=lambda x: x.sum().reshape(1), inputs=_vectors,
                          hints=["-"], atol=1e-6, rtol=1e-6)
    _correct(ex, lambda x: torch.tensor([x.sum().item()], device=x.device))
    _correct(ex, lambda x: torch.full((1,), float(x.sum()), device=x.device, dtype=x.dtype))
    count = chapter.exercise("q15", "Count", points=1, reference=lambda x: int((x > 0).sum()), inputs=_vectors,
                             hints=["-"])
    _correct(count, lambda x: int((x > 0).sum().item()))
    _correct(count, lambda x: int(np.count_nonzero(x.detach().cpu().numpy() > 0)))

    def grad_of_square(x):
        x = x.detach().requires_grad_()
        (x * x).sum().backward()
        return x.grad

    grads = chapter.exercise("q16", "Gradient", points=1, reference=lambda x: 2 * x, inputs=_vectors, hints=["-"])
    _correct(grads, grad_of_square)


@pytest.mark.skipif(not SIMULATED, reason="needs simulated CUDA")
def test_numpy_without_cpu_fails_as_on_a_gpu(chapter):
    ex = chapter.exercise("q17", "To NumPy", points=1, reference=lambda x: x.detach().cpu().numpy(),
                          inputs=_vectors, hints=["-"])
    _correct(ex, lambda x: x.detach().cpu().numpy())
    _correct(ex, lambda x: np.array(x.tolist(), dtype=np.float32))
    _incorrect(ex, lambda x: x.detach().numpy(), "simulated GPU", "TypeError", "cpu()")


@pytest.mark.skipif(not SIMULATED, reason="needs simulated CUDA")
def test_a_device_mistake_is_caught_even_where_the_reference_cannot_run(chapter):
    """The reference reads a value (.item()): the learner's own device mismatch is still proof."""
    def reference(x):
        return x * x.max().item()

    ex = chapter.exercise("q18", "Scale", points=1, reference=reference, inputs=_vectors, hints=["-"])
    _correct(ex, lambda x: x * x.max())
    _incorrect(ex, lambda x: x * x.max() + torch.zeros(len(x)), "simulated GPU")


class _Scaled(torch.nn.Module):
    def __init__(self, n: int, as_buffer: bool = True) -> None:
        super().__init__()
        if as_buffer:
            self.register_buffer("scale", torch.arange(1.0, n + 1))
        else:
            self.scale = torch.arange(1.0, n + 1)  # a plain attribute: .to() leaves it behind

    def forward(self, x):
        return x * self.scale


def _rows(generator, device):
    n = int(torch.randint(2, 6, (1,), generator=generator))
    return (torch.randn(3, n, generator=generator).to(device),)


@pytest.mark.skipif(not SIMULATED, reason="needs simulated CUDA")
def test_a_buffer_left_on_the_cpu_is_caught(chapter):
    def reference(x):
        return _Scaled(x.shape[1]).to(x.device)(x)

    ex = chapter.exercise("q19", "Scale the columns", points=1, reference=reference, inputs=_rows, hints=["-"])
    _correct(ex, reference)
    _incorrect(ex, lambda x: _Scaled(x.shape[1], as_buffer=False).to(x.device)(x), "simulated GPU")


def test_meta_stands_in_where_cuda_cannot_be_simulated(chapter, monkeypatch):
    monkeypatch.setattr(simcuda, "available", lambda: False)
    ex = chapter.exercise("q20", "Offsets", points=1, reference=_offsets, inputs=_vectors, hints=["-"])
    _correct(ex, _offsets)
    _incorrect(ex, lambda x: x + torch.arange(len(x)), "meta")
