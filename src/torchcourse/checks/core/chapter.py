"""A chapter's exercises in reading order, and the :class:`Report` of a session's outcomes."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .exercise import Case, Exercise
from .outcome import _COLOURS, _ICONS, Outcome, Status


@dataclass
class Chapter:
    """The exercises of one chapter, in reading order, and the outcomes of this session."""

    name: str
    title: str
    exercises: dict[str, Exercise] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def exercise(self, id: str, title: str, *, points: int, reference: Callable[..., Any],  # noqa: A002
                 inputs: Callable[[torch.Generator, str], Case], hints: Sequence[str], **options: Any) -> Exercise:
        """Declare an exercise of this chapter (see :class:`Exercise` for the options)."""
        return self.register(Exercise(self, id, title, points, reference, inputs, hints, **options))

    def register(self, exercise: Exercise) -> Exercise:
        """Add an exercise (of any :class:`Exercise` subclass) to the chapter, once."""
        if exercise.id in self.exercises:
            raise ValueError(f"{self.name} declares {exercise.id} twice")
        self.exercises[exercise.id] = exercise
        return exercise

    def record(self, outcome: Outcome) -> None:
        """Keep the latest outcome of each exercise for :meth:`report`."""
        self.outcomes[outcome.id] = outcome

    @property
    def max_score(self) -> int:
        """Points available in the chapter."""
        return sum(ex.points for ex in self.exercises.values())

    def report(self) -> Report:
        """A score table for this session: every exercise, checked or not."""
        outcomes = [
            self.outcomes.get(ex.id)
            or Outcome(self.name, ex.id, ex.title, Status.NOT_ATTEMPTED, "not checked yet", 0, ex.points)
            for ex in self.exercises.values()
        ]
        return Report(outcomes)


@dataclass
class Report:
    """Outcomes with a total; a table in Jupyter, text elsewhere, JSON for machines."""

    outcomes: list[Outcome]

    @property
    def score(self) -> int:
        return sum(o.points for o in self.outcomes)

    @property
    def max_score(self) -> int:
        return sum(o.max_points for o in self.outcomes)

    def per_chapter(self) -> dict[str, tuple[int, int]]:
        """(score, max score) for each chapter, in order of first appearance."""
        totals: dict[str, tuple[int, int]] = {}
        for o in self.outcomes:
            score, most = totals.get(o.chapter, (0, 0))
            totals[o.chapter] = (score + o.points, most + o.max_points)
        return totals

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "max_score": self.max_score,
            "chapters": {c: {"score": s, "max_score": m} for c, (s, m) in self.per_chapter().items()},
            "exercises": [o.to_dict() for o in self.outcomes],
        }

    def __str__(self) -> str:
        lines = [f"{'chapter':<12} {'id':<4} {'points':>7}  {'status':<14} message"]
        for o in self.outcomes:
            first = o.message.splitlines()[0] if o.message else ""
            lines.append(f"{o.chapter:<12} {o.id:<4} {o.points:>3}/{o.max_points:<3}  {o.status.value:<14} {first}")
        for chapter, (score, most) in self.per_chapter().items():
            lines.append(f"{chapter:<12} total {score}/{most}")
        lines.append(f"Score: {self.score}/{self.max_score}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(o.id)}</td><td>{html.escape(o.title)}</td>"
            f"<td style='color:{_COLOURS[o.status]}'>{_ICONS[o.status]} {o.status.value}</td>"
            f"<td>{o.points}/{o.max_points}</td><td>{html.escape(o.message)}</td></tr>"
            for o in self.outcomes
        )
        return (
            "<table><tr><th>id</th><th>exercise</th><th>status</th><th>points</th><th>feedback</th></tr>"
            f"{rows}</table><b>Score: {self.score}/{self.max_score}</b>"
        )
