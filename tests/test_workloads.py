"""The shared bench factories: what each times, and that the lessons import them rather than copy them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from torchcourse import workloads

ROOT = Path(__file__).resolve().parents[1]


def _inputs_then_result(make, n, *shapes):
    """The factory's timed result, and the same inputs drawn again from the same seed."""
    torch.manual_seed(0)
    result = make(n, "cpu")()
    torch.manual_seed(0)
    return result, [torch.randn(*shape) for shape in shapes]


def test_matmul_multiplies_two_random_matrices():
    product, (a, b) = _inputs_then_result(workloads.make_matmul, 5, (5, 5), (5, 5))
    torch.testing.assert_close(product, a @ b)


def test_add_writes_into_one_preallocated_output():
    step = workloads.make_add(64, "cpu")
    first = step()
    assert step() is first and first.shape == (64,)  # the same tensor every call: the allocator is not timed
    total, (a, b) = _inputs_then_result(workloads.make_add, 64, (64,), (64,))
    torch.testing.assert_close(total, a + b)


def test_sum_reduces_to_one_number():
    total, (a,) = _inputs_then_result(workloads.make_sum, 100, (100,))
    assert total.shape == () and torch.equal(total, a.sum())


@pytest.mark.parametrize("name", workloads.__all__)
def test_no_notebook_keeps_its_own_copy(name):
    copies = [str(path.relative_to(ROOT)) for folder in ("notebooks", "solutions", "exercises")
              for path in sorted((ROOT / folder).rglob("*.ipynb"))
              if any(f"def {name}(" in "".join(c["source"]) for c in json.loads(path.read_text())["cells"])]
    assert copies == [], f"{name} is defined in the package (torchcourse.workloads): import it instead"
