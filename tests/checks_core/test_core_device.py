"""The second device (checks/core/device.py)."""

from __future__ import annotations

import pytest
import torch

from torchcourse.checks.core import Status

from .conftest import incorrect as _incorrect
from .conftest import vectors as _vectors


@pytest.fixture
def double(chapter):
    return chapter.exercise("q1", "Double it", points=1, reference=lambda x: x * 2, inputs=_vectors,
                            hints=["Multiply."], time_limit=0.3)


# --- the second device -----------------------------------------------------------------------------------


def test_a_missing_device_argument_fails_without_a_gpu(chapter):
    def offsets(x):
        return x + torch.arange(len(x), device=x.device)

    ex = chapter.exercise("q11", "Offsets", points=1, reference=offsets, inputs=_vectors, hints=["-"])
    assert ex.grade(offsets).status is Status.CORRECT
    _incorrect(ex, lambda x: x + torch.arange(len(x)), "meta")
    positions = chapter.exercise("q14", "Positions", points=1, inputs=_vectors, hints=["-"],
                                 reference=lambda x: torch.arange(len(x), device=x.device))
    _incorrect(positions, lambda x: torch.arange(len(x)), "came back on cpu")


def test_an_operation_meta_cannot_run_is_inconclusive(chapter):
    def total(x):
        return torch.tensor([x.sum().item()], device=x.device)

    ex = chapter.exercise("q12", "Total", points=1, reference=lambda x: x.sum().reshape(1), inputs=_vectors,
                          hints=["-"], atol=1e-6, rtol=1e-6)
    assert ex.grade(total).status is Status.CORRECT
