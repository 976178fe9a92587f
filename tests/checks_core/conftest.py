"""The toy chapter the framework's tests grade against."""

from __future__ import annotations

import pytest
import torch

from torchcourse.checks.core import Chapter, Exercise, Status


def vectors(generator, device):
    """A random 1-D float tensor of 3 to 7 values."""
    n = int(torch.randint(3, 8, (1,), generator=generator))
    return (torch.randn(n, generator=generator).to(device),)


def randint(generator) -> int:
    """A seed in [0, 1000) drawn from ``generator``."""
    return int(torch.randint(0, 1000, (1,), generator=generator))


def incorrect(exercise: Exercise, answer, *words: str) -> str:
    """Grade ``answer``: incorrect, with every word of ``words`` in the feedback."""
    outcome = exercise.grade(answer)
    assert outcome.status is Status.INCORRECT, outcome.message
    for word in words:
        assert word in outcome.message, f"{word!r} not in {outcome.message!r}"
    return outcome.message


@pytest.fixture
def chapter() -> Chapter:
    return Chapter("99_toy", "Toy")
