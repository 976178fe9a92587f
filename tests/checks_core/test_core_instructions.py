"""Instructions checked by the calls (checks/core/instructions.py)."""

from __future__ import annotations

import pytest
import torch

from torchcourse.checks.core import Status, Uses

from .conftest import incorrect as _incorrect
from .conftest import vectors as _vectors


@pytest.fixture
def double(chapter):
    return chapter.exercise("q1", "Double it", points=1, reference=lambda x: x * 2, inputs=_vectors,
                            hints=["Multiply."], time_limit=0.3)


# --- instructions ------------------------------------------------------------------------------------------


def _labels(generator, device):
    return torch.randint(0, 4, (5,), generator=generator).to(device), 4


def _one_hot(labels, n):
    return torch.zeros(len(labels), n, device=labels.device).scatter_(1, labels.unsqueeze(1), 1.0)


def test_an_instruction_is_checked_by_the_calls(chapter):
    ex = chapter.exercise("q7", "One-hot", points=1, reference=_one_hot, inputs=_labels, hints=["-"],
                          requires=[Uses("torch.Tensor.scatter_", "torch.Tensor.scatter",
                                         says="build it with scatter_")])
    assert ex.grade(_one_hot).status is Status.CORRECT
    _incorrect(ex, lambda labels, n: torch.nn.functional.one_hot(labels, n).float(), "build it with scatter_",
               "never called it")


def test_a_forbidden_call_and_a_counted_one(chapter):
    def grad_case(generator, device):
        return (torch.randn(3, generator=generator).to(device), 2)

    def by_hand(x, k):
        return 2 * x * k

    ex = chapter.exercise("q8", "Grad", points=1, reference=by_hand, inputs=grad_case, hints=["-"],
                          forbids=["torch.autograd.grad", "torch.Tensor.backward"])
    assert ex.grade(by_hand).status is Status.CORRECT

    def with_autograd(x, k):
        x = x.detach().requires_grad_()
        (g,) = torch.autograd.grad((x * x * k).sum(), x)
        return g

    _incorrect(ex, with_autograd, "rules this out", "`torch.autograd.grad`")

    def twice(x, k):
        x = x.detach().requires_grad_()
        for _ in range(k):
            (x * x / k * k).sum().backward()
        return x.grad.detach() / 1

    counted = chapter.exercise("q9", "Counted", points=1, reference=by_hand, inputs=grad_case, hints=["-"],
                               requires=[Uses("torch.Tensor.backward", count=lambda x, k: k)])
    assert counted.grade(twice).status is Status.CORRECT

    def once(x, k):
        x = x.detach().requires_grad_()
        (x * x * k).sum().backward()
        return x.grad.detach()

    _incorrect(counted, once, "called it 1 times, not 2")


def test_python_level_calls_are_recorded_too(chapter):
    def model_case(generator, device):
        return (torch.randn(2, 3, generator=generator).to(device),)

    def with_hook(x):
        seen = []
        layer = torch.nn.Identity()
        layer.register_forward_hook(lambda m, i, o: seen.append(o))
        layer(x)
        return seen[0] * 1

    ex = chapter.exercise("q10", "Hook", points=1, reference=with_hook, inputs=model_case, hints=["-"],
                          requires=["torch.nn.Module.register_forward_hook"])
    assert ex.grade(with_hook).status is Status.CORRECT
    _incorrect(ex, lambda x: x * 1, "register_forward_hook")
    assert "register_forward_hook" not in vars(torch.nn.Identity)  # the recorder is gone again
