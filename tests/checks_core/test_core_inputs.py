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


# --- inputs beyond tensors: lists, dicts, a model's mode and state ------------------------------------


def _lists(generator, device):
    n = int(torch.randint(2, 5, (1,), generator=generator))
    return ([torch.randn(3, generator=generator).to(device) for _ in range(n)],)


def _popper(xs):
    total = xs.pop()
    while xs:
        total = total + xs.pop()
    return total


def test_a_callers_list_emptied_is_named(chapter):
    ex = chapter.exercise("q20", "Sum a list", points=1, reference=lambda xs: torch.stack(xs).sum(0), inputs=_lists,
                          hints=["-"])
    _incorrect(ex, _popper, "changed its input `xs`, a list", "held")
    assert ex.grade(lambda xs: sum(xs[1:], xs[0])).status is Status.CORRECT
    assert ex.grade(lambda xs: torch.stack(list(reversed(xs))).sum(0)).status is Status.CORRECT


def _model_and_batch(generator, device):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(randint(generator))
        model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.5))
    return model.to(device), torch.randn(4, 3, generator=generator).to(device)


def _predict(model, x):
    was = model.training
    model.eval()
    try:
        return model(x).detach()
    finally:
        model.train(was)


def test_a_model_left_in_eval_mode_is_named(chapter):
    ex = chapter.exercise("q21", "Predict", points=1, reference=_predict, inputs=_model_and_batch, hints=["-"])

    def left_in_eval(model, x):
        model.eval()
        return model(x).detach()

    _incorrect(ex, left_in_eval, "left the model `model` in evaluation (eval()) mode")
    assert ex.grade(_predict).status is Status.CORRECT

    def copy_then_eval(model, x):
        import copy

        return copy.deepcopy(model).eval()(x).detach()

    assert ex.grade(copy_then_eval).status is Status.CORRECT


def test_what_the_reference_changes_may_change(chapter):
    """A list the statement asks to fill is changed by the reference too: not the learner's fault."""
    def append_total(xs):
        xs.append(torch.stack(xs).sum(0))
        return xs[-1]

    ex = chapter.exercise("q22", "Append", points=1, reference=append_total, inputs=_lists, hints=["-"])
    assert ex.grade(append_total).status is Status.CORRECT
