"""The exercise-check framework: declare an exercise once, check any answer without crashing.

An exercise is a function the learner writes. Its check runs the learner's function and a
reference on freshly randomised inputs (on every available device), then compares in a fixed
order: type, shape, dtype, device, values, gradients, memory sharing. The first difference found
becomes the feedback, phrased as what is wrong and how to fix it, never as the expected values.

Outcomes are correct, incorrect or not attempted (the answer is still the ``...`` placeholder).
With ``TORCHCOURSE_STRICT=1`` (the test suite) anything but correct raises :class:`CheckFailed`;
with ``TORCHCOURSE_GRADE_FILE=path`` every outcome is also appended to that file as a JSON line,
which is how ``torchcourse grade`` collects a notebook's score.
"""

from __future__ import annotations

import html
import inspect
import json
import math
import os
import textwrap
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch

from ..devices import devices

__all__ = [
    "CheckFailed",
    "Chapter",
    "Exercise",
    "Judge",
    "JudgedExercise",
    "Mismatch",
    "NotAttempted",
    "Outcome",
    "Status",
    "clone_case",
    "compare",
    "describe",
    "randint",
    "same_storage",
]


class Status(str, Enum):
    """The three outcomes of a check."""

    CORRECT = "correct"
    INCORRECT = "incorrect"
    NOT_ATTEMPTED = "not attempted"


class CheckFailed(AssertionError):
    """Raised by a check in strict mode when the answer is not correct."""


class Mismatch(Exception):
    """A difference between the learner's answer and the reference; its text is the feedback."""


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


# ---------------------------------------------------------------- describing and comparing values


def randint(generator: torch.Generator, low: int, high: int) -> int:
    """A random integer in [low, high) drawn from ``generator``: sizes and knobs of hidden cases."""
    return int(torch.randint(low, high, (1,), generator=generator))


def describe(value: Any) -> str:
    """A short description of a value that names its type, shape, dtype and device, never its data."""
    if isinstance(value, torch.Tensor):
        grad = ", requires_grad" if value.requires_grad else ""
        return f"tensor{tuple(value.shape)} {value.dtype} on {value.device}{grad}"
    if isinstance(value, (list, tuple)) and len(value) <= 6:
        return f"{type(value).__name__}[{', '.join(describe(v) for v in value)}]"
    if isinstance(value, (int, float, bool, str)) or value is None:
        return type(value).__name__
    return type(value).__name__


def _type_hint(actual: Any) -> str:
    if actual is None:
        return "Your function returned None: did you forget the `return` statement?"
    if type(actual).__module__ == "numpy":
        return "You returned a NumPy value: keep the computation in torch (or convert with torch.from_numpy)."
    if isinstance(actual, (list, tuple)):
        return f"You returned a {type(actual).__name__}: build the result with torch operations instead."
    return ""


def _compare_tensors(
    actual: torch.Tensor, expected: torch.Tensor, where: str, atol: float | None, rtol: float | None
) -> None:
    if actual.shape != expected.shape:
        raise Mismatch(
            f"{where}: wrong shape. Expected {tuple(expected.shape)}, got {tuple(actual.shape)}. "
            "Check which dimension each operation works along, and any keepdim/unsqueeze."
        )
    if actual.dtype != expected.dtype:
        raise Mismatch(
            f"{where}: wrong dtype. Expected {expected.dtype}, got {actual.dtype}. "
            f"Convert with .to({expected.dtype}) or create the tensor with that dtype."
        )
    if actual.device != expected.device:
        raise Mismatch(
            f"{where}: wrong device. The inputs were on {expected.device} but your result is on "
            f"{actual.device}. Create new tensors with device=<input>.device, or use the *_like functions."
        )
    if (atol is None) != (rtol is None):  # assert_close wants both or neither: the missing one is zero
        atol, rtol = atol or 0.0, rtol or 0.0
    a, e = actual.detach(), expected.detach()
    if a.is_floating_point() or a.is_complex():
        nan_a, nan_e = torch.isnan(a), torch.isnan(e)
        if bool((nan_a & ~nan_e).any()):
            count = int((nan_a & ~nan_e).sum())
            raise Mismatch(
                f"{where}: {count} of {a.numel()} values are NaN. Look for 0/0, the log or square root "
                "of a negative number, or an uninitialised tensor (torch.empty)."
            )
    try:
        torch.testing.assert_close(a, e, atol=atol, rtol=rtol, equal_nan=True)
    except AssertionError:
        raise Mismatch(f"{where}: shape, dtype and device are right, but {_how_values_differ(a, e)}") from None


def _how_values_differ(actual: torch.Tensor, expected: torch.Tensor) -> str:
    """How many values differ and whether only slightly, without revealing any expected value."""
    a, e = actual.to(torch.complex128 if actual.is_complex() else torch.float64), expected.to(
        torch.complex128 if expected.is_complex() else torch.float64
    )
    differ = ~torch.isclose(a, e, equal_nan=True)
    count = int(differ.sum()) or a.numel()
    scale = e.abs().nan_to_num().max().item() if e.numel() else 0.0
    relative = (a - e).abs().nan_to_num().max().item() / (scale or 1.0)
    closeness = (
        "They are close: look for lost precision (a low-precision dtype, integer division, rounding)."
        if relative < 1e-2
        else "Check the formula, the dimension you work along, and the order of the values."
    )
    return f"{count} of {a.numel()} values differ. {closeness}"


def compare(
    actual: Any, expected: Any, where: str = "your result", atol: float | None = None, rtol: float | None = None
) -> None:
    """Raise :class:`Mismatch` at the first difference: type, shape, dtype, device, then values."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(actual, torch.Tensor):
            raise Mismatch(f"{where}: expected a torch.Tensor, got {describe(actual)}. {_type_hint(actual)}".strip())
        _compare_tensors(actual, expected, where, atol, rtol)
    elif isinstance(expected, (tuple, list)):
        if not isinstance(actual, (tuple, list)):
            kind = type(expected).__name__
            raise Mismatch(f"{where}: expected a {kind} of {len(expected)} items, got {describe(actual)}.")
        if len(actual) != len(expected):
            raise Mismatch(f"{where}: expected {len(expected)} items, got {len(actual)}.")
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            compare(a, e, f"{where}, item {i}", atol, rtol)
    elif isinstance(expected, dict):
        if not isinstance(actual, dict):
            raise Mismatch(f"{where}: expected a dict, got {describe(actual)}.")
        if set(actual) != set(expected):
            raise Mismatch(f"{where}: expected the keys {sorted(map(str, expected))}, got {sorted(map(str, actual))}.")
        for key in expected:
            compare(actual[key], expected[key], f"{where}[{key!r}]", atol, rtol)
    elif isinstance(expected, bool):
        if not isinstance(actual, bool):
            raise Mismatch(f"{where}: expected True or False, got {describe(actual)}.")
        if actual != expected:
            raise Mismatch(f"{where}: the answer is the other boolean.")
    elif isinstance(expected, (int, float)):
        if isinstance(actual, torch.Tensor):
            raise Mismatch(f"{where}: expected a Python number, got {describe(actual)}. Use .item().")
        if not isinstance(actual, (int, float)) or isinstance(actual, bool):
            raise Mismatch(f"{where}: expected a number, got {describe(actual)}. {_type_hint(actual)}".strip())
        if isinstance(expected, int) and isinstance(actual, float) and not actual.is_integer():
            raise Mismatch(f"{where}: expected a whole number, got a fraction.")
        if math.isnan(float(actual)):
            raise Mismatch(f"{where}: your number is NaN.")
        if not math.isclose(float(actual), float(expected), rel_tol=rtol or 1e-5, abs_tol=atol or 1e-8):
            raise Mismatch(f"{where}: the type is right but the value is not.")
    elif actual != expected:
        raise Mismatch(f"{where}: the value is not right ({describe(actual)}).")


def clone_case(value: Any) -> Any:
    """An independent copy of the inputs (tensors cloned, leaves kept as leaves)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, torch.Generator):  # learner and reference must draw the same numbers
        copy = torch.Generator(device=value.device)
        copy.set_state(value.get_state())
        return copy
    if isinstance(value, tuple):
        return tuple(clone_case(v) for v in value)
    if isinstance(value, list):
        return [clone_case(v) for v in value]
    if isinstance(value, dict):
        return {k: clone_case(v) for k, v in value.items()}
    return value


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


# ---------------------------------------------------------------------------------- exercises


Case = tuple[Any, ...]
Property = Callable[[Any, Case], "str | None"]


@dataclass
class Exercise:
    """One graded exercise, declared once in its chapter's checks module.

    ``reference(*args)`` is the model answer; ``inputs(generator, device)`` builds one random case
    (a tuple of arguments) so that an answer hard-coded for the visible example fails.
    ``shares_memory`` demands (True) or forbids (False) that the result share storage with the
    first tensor argument. ``grad`` also compares the gradients of ``result.sum()`` with respect to
    the inputs that require grad. ``properties`` are extra checks: each returns a message when the
    answer breaks a rule the values alone cannot show. ``misconceptions`` pair a typical wrong
    answer with the feedback to give when the learner's result matches it.
    """

    chapter: Chapter
    id: str
    title: str
    points: int
    reference: Callable[..., Any]
    inputs: Callable[[torch.Generator, str], Case]
    hints: Sequence[str]
    solution_code: str = ""
    trials: int = 3
    atol: float | None = None
    rtol: float | None = None
    shares_memory: bool | None = None
    grad: bool = False
    mutates_inputs: bool = False
    properties: Sequence[Property] = ()
    misconceptions: Sequence[tuple[Callable[..., Any], str]] = ()
    on: Sequence[str] | None = None
    _hints_shown: int = field(default=0, init=False, repr=False)

    # -- learner-facing --------------------------------------------------------------------

    def hint(self) -> Text:
        """Reveal the next hint (one per call)."""
        if not self.hints:
            return Text(f"No hints for {self.id}. `{self.id}.solution()` shows a solution.")
        if self._hints_shown >= len(self.hints):
            return Text(f"No more hints for {self.id}. `{self.id}.solution()` shows a solution.")
        self._hints_shown += 1
        shown = self._hints_shown
        return Text(f"**Hint {shown}/{len(self.hints)}** for {self.id}: {self.hints[shown - 1]}")

    def solution(self) -> Text:
        """Show a model solution."""
        code = self.solution_code or textwrap.dedent(inspect.getsource(self.reference))
        return Text(f"**Solution to {self.id}** ({self.title}):\n\n```python\n{code.strip()}\n```")

    def check(self, answer: Any) -> Outcome:
        """Grade ``answer`` (the learner's function) and show the outcome; raises in strict mode."""
        outcome = self.grade(answer)
        self.chapter.record(outcome)
        _append_to_grade_file(outcome)
        if strict() and outcome.status is not Status.CORRECT:
            raise CheckFailed(str(outcome))
        return outcome

    # -- grading ---------------------------------------------------------------------------

    def grade(self, answer: Any) -> Outcome:
        """The outcome for ``answer`` without recording or raising: what tests call."""
        status, message = self._judge(answer)
        points = self.points if status is Status.CORRECT else 0
        return Outcome(self.chapter.name, self.id, self.title, status, message, points, self.points)

    def seed(self, trial: int) -> int:
        """The seed of a trial's hidden inputs: fixed per exercise and trial, so grading is repeatable."""
        return zlib.crc32(f"{self.chapter.name}/{self.id}/{trial}".encode())

    def _judge(self, answer: Any) -> tuple[Status, str]:
        if answer is ...:
            return Status.NOT_ATTEMPTED, "Replace the `...` placeholder with your answer, then run the check again."
        if not callable(answer):
            return Status.INCORRECT, (
                f"Expected a function, got {describe(answer)}. Pass the function itself, "
                f"as in `{self.id}.check(my_function)`, not the result of calling it."
            )
        run_on = [d for d in (self.on or devices()) if d in devices()]
        for trial in range(self.trials):
            for device in run_on:
                generator = torch.Generator().manual_seed(self.seed(trial))
                case = self.inputs(generator, device)
                try:
                    self._check_case(answer, case)
                except NotAttempted:
                    return Status.NOT_ATTEMPTED, "Your function still returns the `...` placeholder: write its body."
                except Mismatch as mismatch:
                    feedback = self._diagnose(answer, case) or str(mismatch)
                    return Status.INCORRECT, f"{feedback} (hidden test {trial + 1}, inputs: {describe(case)})"
        where = " and ".join(run_on)
        return Status.CORRECT, f"All {self.trials} hidden test cases pass on {where}."

    def _check_case(self, answer: Callable[..., Any], case: Case) -> None:
        learner_case, reference_case = clone_case(case), clone_case(case)
        result = call_answer(answer, *learner_case)
        expected = self.reference(*reference_case)
        compare(result, expected, "your result", self.atol, self.rtol)
        if self.grad:
            self._compare_grads(result, expected, learner_case, reference_case)
        if not self.mutates_inputs:
            for i, (before, after) in enumerate(zip(_tensors(case), _tensors(learner_case), strict=True)):
                if not torch.equal(before.detach(), after.detach()):
                    raise Mismatch(
                        f"Your function changed its input (tensor argument {i}) in place. "
                        "Work on a copy, or use out-of-place operations (no trailing underscore)."
                    )
        if self.shares_memory is not None:
            self._check_sharing(result, learner_case)
        for prop in self.properties:
            problem = prop(result, learner_case)
            if problem:
                raise Mismatch(problem)

    def _compare_grads(self, result: Any, expected: Any, learner_case: Case, reference_case: Case) -> None:
        leaves = [t for t in _tensors(learner_case) if t.requires_grad]
        ref_leaves = [t for t in _tensors(reference_case) if t.requires_grad]
        if not isinstance(result, torch.Tensor) or not result.requires_grad:
            raise Mismatch(
                "The values are right, but your result is not connected to the inputs by the autograd "
                "graph (requires_grad is False). Avoid .detach(), .data, .item() and torch.no_grad() here."
            )
        expected.sum().backward()
        result.sum().backward()
        for i, (leaf, ref_leaf) in enumerate(zip(leaves, ref_leaves, strict=True)):
            if leaf.grad is None:
                raise Mismatch(f"The gradient reaching input {i} is None: that input is cut off from the result.")
            compare(leaf.grad, ref_leaf.grad, f"the gradient of input {i}", self.atol, self.rtol)

    def _check_sharing(self, result: Any, learner_case: Case) -> None:
        inputs = _tensors(learner_case)
        if not inputs or not isinstance(result, torch.Tensor):
            return
        shares = same_storage(result, inputs[0])
        if self.shares_memory and not shares:
            raise Mismatch(
                "The values are right, but your result is a copy: it must be a view that shares memory "
                "with the input. Avoid clone(), contiguous(), and reshape() on non-contiguous tensors."
            )
        if self.shares_memory is False and shares:
            raise Mismatch(
                "The values are right, but your result shares memory with the input, so changing one "
                "changes the other. Return an independent copy (.clone())."
            )

    def _diagnose(self, answer: Callable[..., Any], case: Case) -> str | None:
        """The feedback of the first declared misconception the answer reproduces, if any."""
        for wrong, feedback in self.misconceptions:
            try:
                compare(answer(*clone_case(case)), wrong(*clone_case(case)), "", self.atol, self.rtol)
            except Exception:  # not this misconception, or the answer raised: keep looking
                continue
            return feedback
        return None


class NotAttempted(Exception):
    """The learner's function still returns the placeholder."""


def call_answer(answer: Callable[..., Any], *args: Any) -> Any:
    """Run the learner's function: an exception becomes feedback, the placeholder "not attempted"."""
    try:
        result = answer(*args)
    except Exception as error:  # the learner's code may raise anything: that is feedback, not a crash
        raise Mismatch(f"Your function raised {type(error).__name__}: {error}") from None
    if result is ...:
        raise NotAttempted
    return result


def _append_to_grade_file(outcome: Outcome) -> None:
    path = os.environ.get("TORCHCOURSE_GRADE_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(outcome.to_dict()) + "\n")


#: A custom judge: raises :class:`Mismatch` (or :class:`NotAttempted`) when the answer fails the case.
Judge = Callable[[Callable[..., Any], Case], None]


@dataclass
class JudgedExercise(Exercise):
    """An exercise whose cases a function of its own judges, for answers that are not a value to
    compare (a class, a module, a checkpoint, files on disk, a loader, a progress bar)."""

    judge: Judge | None = None

    def _check_case(self, answer: Callable[..., Any], case: Case) -> None:
        if self.judge is None:
            super()._check_case(answer, case)
        else:
            self.judge(answer, case)


# ----------------------------------------------------------------------------------- chapters


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
