"""Inputs left alone (checks/core/inputs.py)."""

from __future__ import annotations

import pytest
import torch

from torchcourse.checks.core import Status

from .conftest import incorrect as _incorrect
from .conftest import randint
from .conftest import vectors as _vectors


@pytest.fixture
def double(chapter):
    return chapter.exercise("q1", "Double it", points=1, reference=lambda x: x * 2, inputs=_vectors,
                            hints=["Multiply."], time_limit=0.3)


# --- inputs left alone --------------------------------------------------------------------------------


def _leaf(generator, device):
    return (torch.randn(4, generator=generator).to(device).requires_grad_(),)


@pytest.fixture
def square(chapter):
    return chapter.exercise("q3", "Square", points=1, reference=lambda x: (x * x).detach(), inputs=_leaf,
                            hints=["-"])


def test_switching_requires_grad_off_is_caught(square):
    _incorrect(square, lambda x: (x.requires_grad_(False) * x).detach(), "requires_grad", "`x`", "off")


def test_filling_the_inputs_grad_is_caught(square):
    def backward_on_input(x):
        (x * x).sum().backward()
        return (x * x).detach()

    _incorrect(square, backward_on_input, ".grad of its input `x`")


def test_a_version_bump_with_the_same_values_is_caught(square):
    def round_trip(x):
        with torch.no_grad():
            x.mul_(1)
        return (x * x).detach()

    _incorrect(square, round_trip, "version counter")


def test_module_parameters_left_alone(chapter):
    def model_case(generator, device):
        torch_seed = randint(generator)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch_seed)
            model = torch.nn.Linear(3, 2)
        return model.to(device), torch.randn(4, 3, generator=generator).to(device)

    ex = chapter.exercise("q4", "Forward", points=1, reference=lambda m, x: m(x).detach(), inputs=model_case,
                          hints=["-"])
    assert ex.grade(lambda m, x: m(x).detach()).status is Status.CORRECT

    def freezes(m, x):
        m.weight.requires_grad_(False)
        return m(x).detach()

    _incorrect(ex, freezes, "parameter weight")
