"""A learner runs an answer cell and its check twice: the verdict is the same both times (issue #22).

Every exercise's reference is checked twice in a row, as ``qN.check(answer)`` runs in a notebook
(recording the outcome), and must be correct both times with the same feedback and points: a check
must not count calls, cases or files left over from its previous run. The session's score counts the
exercise once. The notebooks themselves are run cell by cell twice by ``make test-rerun``.
"""

from __future__ import annotations

import pytest

from torchcourse.checks import chapters
from torchcourse.checks.core import Exercise, Status

EXERCISES = [ex for chapter in chapters().values() for ex in chapter.exercises.values()]
IDS = [f"{ex.chapter.name}-{ex.id}" for ex in EXERCISES]


def test_there_are_exercises():
    assert len(EXERCISES) >= 4


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_checking_the_reference_twice_gives_the_same_verdict(ex: Exercise, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ex.chapter, "outcomes", {})  # this session's record, left as it was after the test
    first, second = ex.check(ex.reference), ex.check(ex.reference)
    assert first.status is second.status is Status.CORRECT, second.message
    assert (second.message, second.points) == (first.message, first.points) == (first.message, ex.points)
    report = ex.chapter.report()
    assert [o.id for o in report.outcomes].count(ex.id) == 1 and report.score == ex.points  # counted once
