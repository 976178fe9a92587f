"""Types and layouts before values (checks/core/compare.py), declared edge cases (exercise.py)."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from torchcourse.checks.core import Mismatch, Status, compare

from .conftest import incorrect as _incorrect
from .conftest import vectors as _vectors


@pytest.fixture
def double(chapter):
    return chapter.exercise("q1", "Double it", points=1, reference=lambda x: x * 2, inputs=_vectors,
                            hints=["Multiply."], time_limit=0.3)


# --- types and layouts before values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda x: (x * 2).to_sparse(), "sparse"),
        (lambda x: (x * 2).numpy(), "NumPy"),
        (lambda x: (x * 2).tolist(), "list"),
        (lambda x: float((x * 2).sum()), "Python number"),
        (lambda x: (x * 2).to(torch.complex64), "complex"),
        (lambda x: (x * 2).unsqueeze(0), "wrong shape"),
    ],
    ids=["sparse", "numpy", "list", "scalar", "complex", "shape"],
)
def test_types_and_layouts_get_clear_messages(double, answer, needle):
    _incorrect(double, answer, needle)


def test_zero_d_versus_one_element():
    with pytest.raises(Mismatch, match="0-d tensor"):
        compare(torch.ones(1), torch.tensor(1.0))


def test_named_tuple_versus_plain():
    Pair = collections.namedtuple("Pair", "values indices")
    compare(Pair(torch.ones(1), torch.ones(1)), (torch.ones(1), torch.ones(1)))  # a named tuple is a tuple
    with pytest.raises(Mismatch, match="named tuple with the fields values, indices"):
        compare((torch.ones(1), torch.ones(1)), Pair(torch.ones(1), torch.ones(1)))
    compare(torch.ones(3).topk(2), torch.ones(3).topk(2))


def test_a_comparison_that_fails_is_a_mismatch_not_a_crash():
    class Weird:
        def __eq__(self, other):
            raise RuntimeError("no")

    with pytest.raises(Mismatch, match="could not be compared"):
        compare(Weird(), object())


def test_what_is_wrong_not_the_fix():
    with pytest.raises(Mismatch, match="255 times the right one"):
        compare(torch.tensor([255.0, 510.0]), torch.tensor([1.0, 2.0]))
    with pytest.raises(Mismatch, match="wrong sign"):
        compare(torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 2.0]))
    with pytest.raises(Mismatch, match="off by the same amount"):
        compare(torch.tensor([2.0, 3.0, 7.0]), torch.tensor([1.0, 2.0, 6.0]))
    with pytest.raises(Mismatch, match="wrong places"):
        compare(torch.tensor([2.0, 1.0, 3.0]), torch.tensor([1.0, 2.0, 3.0]))


# --- declared edge cases and the trial number -------------------------------------------------------------


def test_declared_cases_run_on_every_device(chapter):
    ex = chapter.exercise("q5", "Abs", points=1, reference=torch.abs, inputs=_vectors, hints=["-"],
                          cases=[(torch.tensor([-1.0]),), lambda device: (torch.zeros(0, device=device),)])
    assert ex.total_cases == 5
    assert ex.grade(lambda x: x.abs()).status is Status.CORRECT
    assert "5 hidden test cases" in ex.grade(lambda x: x.abs()).message
    _incorrect(ex, lambda x: x if len(x) == 1 else x.abs(), "hidden test 4 of 5")


def test_inputs_may_take_the_trial(chapter):
    seen = []

    def by_trial(generator, device, trial):
        seen.append(trial)
        return (torch.randn(trial + 1, generator=generator).to(device),)

    ex = chapter.exercise("q6", "Neg", points=1, reference=torch.neg, inputs=by_trial, hints=["-"])
    assert ex.grade(torch.neg).status is Status.CORRECT
    assert {0, 1, 2} <= set(seen)


# --- the type the statement names, exactly ---------------------------------------------------------------


def test_a_list_is_not_a_tuple_and_a_float_is_not_an_int():
    with pytest.raises(Mismatch, match="expected a tuple of 2 items, got a list"):
        compare([1, 2], (1, 2))
    with pytest.raises(Mismatch, match="expected a list of 2 items, got a tuple"):
        compare((1, 2), [1, 2])
    with pytest.raises(Mismatch, match="expected an int, got a float"):
        compare(3.0, 3)
    with pytest.raises(Mismatch, match="expected a Python number"):
        compare(np.int64(3), 3)
    with pytest.raises(Mismatch, match="expected a number, got str"):
        compare("3", 3.0)
    compare((1, 2.0), (1, 2.0))


def test_numpy_results_are_compared_as_arrays():
    compare(np.arange(3.0), np.arange(3.0))
    with pytest.raises(Mismatch, match="wrong dtype"):
        compare(np.arange(3.0, dtype=np.float32), np.arange(3.0))
    with pytest.raises(Mismatch, match="expected a NumPy array"):
        compare(torch.arange(3.0), np.arange(3.0))
    with pytest.raises(Mismatch, match="values differ"):
        compare(np.arange(3.0) * 2, np.arange(3.0))
