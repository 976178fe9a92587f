"""Assertions the chapter check tests share: a wrong answer is rejected, with the feedback it deserves."""

from __future__ import annotations

from typing import Any

from torchcourse.checks.core import Exercise, Status


def rejected(exercise: Exercise, answer: Any, *words: str) -> str:
    """Grade ``answer``: it must be incorrect, earn no points, and its feedback must name ``words``."""
    outcome = exercise.grade(answer)
    assert outcome.status is Status.INCORRECT, outcome.message
    assert outcome.points == 0
    for word in words:
        assert word in outcome.message, f"{word!r} not in {outcome.message!r}"
    return outcome.message


def accepted(exercise: Exercise, answer: Any) -> Any:
    """Grade ``answer``: it must be correct and earn every point; returns the outcome."""
    outcome = exercise.grade(answer)
    assert outcome.status is Status.CORRECT, outcome.message
    assert outcome.points == exercise.points
    return outcome
