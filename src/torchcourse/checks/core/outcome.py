"""What a check hands back: the three statuses, the feedback exceptions, the :class:`Outcome` and the grade file."""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Status(str, Enum):
    """The three outcomes of a check."""

    CORRECT = "correct"
    INCORRECT = "incorrect"
    NOT_ATTEMPTED = "not attempted"


class CheckFailed(AssertionError):
    """Raised by a check in strict mode when the answer is not correct."""


class Mismatch(Exception):
    """A difference between the learner's answer and the reference; its text is the feedback."""


class TimedOut(Mismatch):
    """The learner's function went over its time limit: the check stops at the first such case."""


class StateChanged(Mismatch):
    """The learner's function changed global state (the check has put it back)."""


_COLOURS = {Status.CORRECT: "#1a7f37", Status.INCORRECT: "#cf222e", Status.NOT_ATTEMPTED: "#9a6700"}
_ICONS = {Status.CORRECT: "✔", Status.INCORRECT: "✘", Status.NOT_ATTEMPTED: "…"}


@dataclass
class Outcome:
    """The result of one check: status, points earned and the feedback message."""

    chapter: str
    id: str
    title: str
    status: Status
    message: str
    points: int
    max_points: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``torchcourse grade``."""
        return {
            "chapter": self.chapter,
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "message": self.message,
            "points": self.points,
            "max_points": self.max_points,
        }

    def __str__(self) -> str:
        head = f"{_ICONS[self.status]} {self.id} · {self.title}: {self.status.value.capitalize()}"
        return f"{head} ({self.points}/{self.max_points} points)\n{self.message}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = _COLOURS[self.status]
        return (
            f"<div style='border-left:4px solid {colour};padding:4px 10px'>"
            f"<b style='color:{colour}'>{_ICONS[self.status]} {html.escape(self.id)} · "
            f"{html.escape(self.title)}: {self.status.value.capitalize()}</b> "
            f"({self.points}/{self.max_points} points)<br>{html.escape(self.message)}</div>"
        )


@dataclass
class Text:
    """Markdown shown by ``hint()`` and ``solution()``; plain text outside Jupyter."""

    text: str

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        return self.text


def strict() -> bool:
    """True when a failed check must raise (``TORCHCOURSE_STRICT=1``)."""
    return os.environ.get("TORCHCOURSE_STRICT", "") not in ("", "0")


class NotAttempted(Exception):
    """The learner's function still returns the placeholder."""


def _append_to_grade_file(outcome: Outcome) -> None:
    path = os.environ.get("TORCHCOURSE_GRADE_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(outcome.to_dict()) + "\n")
