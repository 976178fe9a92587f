"""The exercise: one declaration, and the route of an answer through its hidden cases to an :class:`Outcome`."""

from __future__ import annotations

import collections
import functools
import inspect
import math
import textwrap
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ...devices import devices, move_to
from .compare import compare, describe
from .device import check_second_device, second_device_name
from .guard import _ACTIVE, _Guarded, call_answer
from .inputs import _input_changes, _input_state, _other_changes
from .instructions import check_instructions, python_loop
from .outcome import CheckFailed, Mismatch, NotAttempted, Outcome, Status, Text, TimedOut, _append_to_grade_file, strict
from .state import _global_state, _restore, warm_up
from .values import _printed, _size, _tensors, clone_case, same_storage, show

if TYPE_CHECKING:
    from .chapter import Chapter

# ---------------------------------------------------------------------------------- exercises


Case = tuple[Any, ...]
Property = Callable[[Any, Case], "str | None"]



_PLACEHOLDER = "Your function still returns the `...` placeholder: write its body."


@dataclass
class _Failure:
    label: str
    case: Case
    message: str
    result: Any
    printed: str

    @property
    def raised(self) -> bool:
        return self.message.startswith(("Your function raised", "Your class raised"))


@dataclass
class Exercise:
    """One graded exercise, declared once in its chapter's checks module.

    ``reference(*args)`` is the model answer; ``inputs(generator, device)`` (or ``inputs(generator,
    device, trial)``) builds one random case (a tuple of arguments) so that an answer hard-coded for
    the visible example fails. ``cases`` adds fixed edge cases, each a tuple of arguments (moved to
    every device) or a function ``(device) -> tuple``. ``shares_memory`` demands (True) or forbids
    (False) that the result share storage with the first tensor argument. ``grad`` also compares the
    gradients of ``result.sum()`` with respect to the inputs that require grad. ``properties`` are
    extra checks: each returns a message when the answer breaks a rule the values alone cannot show.
    ``misconceptions`` pair a typical wrong answer with the feedback to give when the learner's
    result matches it on every failing case. ``requires``/``forbids`` are instructions checked by
    what the learner's function calls (:class:`Uses`, a dotted name, or a tuple of alternatives).
    ``time_limit`` bounds each call (seconds, default :data:`DEFAULT_TIME_LIMIT`). ``global_rng=False``
    also rejects drawing from the global random generator (reseeding it is always rejected).
    ``sets_grad`` allows the answer to fill the ``.grad`` of its inputs (it runs backward on them).
    ``second_device=False`` skips the extra run on the ``meta`` device. ``reseeds=True`` lets the answer
    reseed the global generators (a ``worker_init_fn`` runs in a process of its own). ``loops=False``
    rejects a Python loop or comprehension in the answer's own code (a statement's "no loops").
    ``case_names`` names a case's arguments in the feedback where the reference's parameters do not.
    """

    chapter: Chapter
    id: str
    title: str
    points: int
    reference: Callable[..., Any]
    inputs: Callable[..., Case]
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
    cases: Sequence[Any] = ()
    time_limit: float | None = None
    requires: Sequence[Any] = ()
    forbids: Sequence[Any] = ()
    global_rng: bool = True
    sets_grad: bool = False
    second_device: bool | None = None
    reseeds: bool = False
    loops: bool = True
    case_names: Sequence[str] = ()
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

    def make_case(self, trial: int, device: str) -> Case:
        """Hidden case ``trial`` on ``device``: the random trials first, then the declared ``cases``."""
        if trial < self.trials:
            generator = torch.Generator().manual_seed(self.seed(trial))
            if _takes_trial(self.inputs):
                return tuple(self.inputs(generator, device, trial))
            return tuple(self.inputs(generator, device))
        declared = self.cases[trial - self.trials]
        if callable(declared):
            return tuple(declared(device))
        return tuple(move_to(clone_case(tuple(declared)), device))

    @property
    def total_cases(self) -> int:
        return self.trials + len(self.cases)

    def _judge(self, answer: Any) -> tuple[Status, str]:
        if answer is ...:
            return Status.NOT_ATTEMPTED, "Replace the `...` placeholder with your answer, then run the check again."
        if not callable(answer):
            return Status.INCORRECT, (
                f"Expected a function, got {describe(answer)}. Pass the function itself, "
                f"as in `{self.id}.check(my_function)`, not the result of calling it."
            )
        guard = _Guarded(answer, self)
        run_on = [d for d in (self.on or devices()) if d in devices()]
        failures: list[_Failure] = []
        warm_up()
        saved = _global_state()
        _ACTIVE.append(guard)
        try:
            for trial in range(self.total_cases):
                label = f"hidden test {trial + 1} of {self.total_cases}"
                for device in run_on:
                    case = self.make_case(trial, device)
                    guard.printed, guard.last_result = "", None
                    guard.calls = collections.Counter()
                    try:
                        self._check_case(guard, case)
                        self._check_instructions(guard, case)
                    except NotAttempted:
                        return Status.NOT_ATTEMPTED, _PLACEHOLDER
                    except Mismatch as mismatch:
                        failures.append(_Failure(label, case, str(mismatch), guard.last_result, guard.printed))
                        if isinstance(mismatch, TimedOut):
                            return Status.INCORRECT, self._feedback(failures[-1], None, 1)
                        break
                    except Exception as error:  # noqa: BLE001 - a judge or property tripped on an odd answer
                        message = (f"Your result could not be checked ({describe(guard.last_result)}: "
                                   f"{type(error).__name__}): return what the statement asks for.")
                        failures.append(_Failure(label, case, message, guard.last_result, guard.printed))
                        break
                else:
                    try:
                        self._check_second_device(guard, trial)
                    except Mismatch as mismatch:
                        label += f", {second_device_name()}"
                        failures.append(_Failure(label, (), str(mismatch), None, guard.printed))
            if failures:
                # the smallest failing case, among those that fail for a reason other than the values if any
                # (a wrong shape on one case says more than wrong numbers on another)
                smallest = min(failures, key=lambda f: ("values differ" in f.message,
                                                        _size(f.case) if f.case else math.inf))
                return Status.INCORRECT, self._feedback(smallest, self._diagnose(guard, failures), len(failures))
        finally:
            _ACTIVE.remove(guard)
            _restore(saved)
        where = " and ".join(run_on)
        printed = _printed(guard.printed)
        return Status.CORRECT, f"All {self.total_cases} hidden test cases pass on {where}.{printed}"

    def _feedback(self, failure: _Failure, misconception: str | None, count: int) -> str:
        lines = [misconception or failure.message]
        of = f"; {count} of {self.total_cases} tests failed" if count > 1 else ""
        if failure.case:
            names = self._names(len(failure.case))
            args = ", ".join(f"{n}={show(v, 160)}" for n, v in zip(names, failure.case, strict=True))
            lines.append(f"Smallest failing case ({failure.label}{of}): {args}")
            shapes = [f"{n}: {describe(v)}" for n, v in zip(names, failure.case, strict=True) if _tensors(v)]
            if shapes:  # a long tensor is cut short above: its shape is always shown
                lines.append("Shapes: " + "; ".join(shapes))
            if failure.result is not None:
                who = "Your class" if isinstance(self.reference, type) else "Your function"
                shape = f" ({describe(failure.result)})" if _tensors(failure.result) else ""
                lines.append(f"{who} returned: {show(failure.result)}{shape}")
        else:
            lines.append(f"({failure.label}{of})")
        message = "\n".join(lines)
        return message + _printed(failure.printed)

    def _check_case(self, answer: Callable[..., Any], case: Case) -> None:
        learner_case, reference_case = clone_case(case), clone_case(case)
        names = self._names(len(case))
        before, reference_before = _input_state(learner_case), _input_state(reference_case)
        result = call_answer(answer, *learner_case)
        after = _input_state(learner_case)
        expected = self.reference(*reference_case)
        compare(result, expected, "your result", self.atol, self.rtol)
        if not self.mutates_inputs:
            problem = (_input_changes(case, learner_case, before, after, names, self.sets_grad)
                       or _other_changes(before, after, reference_before, _input_state(reference_case), names))
            if problem:
                raise Mismatch(problem)
        if self.grad:
            self._compare_grads(result, expected, learner_case, reference_case)
        if self.shares_memory is not None:
            self._check_sharing(result, learner_case)
        for prop in self.properties:
            problem = prop(result, learner_case)
            if problem:
                raise Mismatch(problem)

    def _names(self, count: int) -> tuple[str, ...]:
        """The names a case's arguments are shown under: ``case_names=``, else the reference's parameters."""
        if len(self.case_names) == count:
            return tuple(self.case_names)
        return _argument_names(self.reference, count)

    def _check_instructions(self, guard: _Guarded, case: Case) -> None:
        if guard.answer is self.reference:  # PyTorch itself, as the ground truth: the instructions bind answers
            return
        check_instructions(self.requires, self.forbids, guard.calls, case)
        if not self.loops:
            loop = python_loop(guard.answer)
            if loop:
                raise Mismatch(f"The values are right, but the statement says no Python loops: your function has "
                               f"{loop}. Express it with tensor operations over whole dimensions.")

    def _check_second_device(self, guard: _Guarded, trial: int) -> None:
        """Run once more with the inputs on a second device (:mod:`.device`)."""
        check_second_device(self, guard, trial)

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
                "with the input."
            )
        if self.shares_memory is False and shares:
            raise Mismatch(
                "The values are right, but your result shares memory with the input, so changing one "
                "changes the other."
            )

    def _diagnose(self, guard: _Guarded, failures: list[_Failure]) -> str | None:
        """The feedback of the first misconception that explains the learner's output on every failing case."""
        if not self.misconceptions or not all(f.case and (f.raised or f.result is not None) for f in failures):
            return None
        if all(f.raised for f in failures):
            return None  # the error message says more than any guess
        for wrong, feedback in self.misconceptions:
            if all(self._explains(wrong, f) for f in failures):
                return feedback
        return None

    def _explains(self, wrong: Callable[..., Any], failure: _Failure) -> bool:
        """Does the misconception ``wrong`` produce what the learner's function did (or raise where it raised)?"""
        saved = _global_state()
        try:
            output = wrong(*clone_case(failure.case))
        except Exception:  # noqa: BLE001 - the misconception fails here too: consistent with a raise
            return failure.raised
        finally:
            _restore(saved)
        if failure.raised:
            return False
        try:
            compare(failure.result, output, "", self.atol, self.rtol)
        except Mismatch:
            return False
        return True




@functools.lru_cache(maxsize=256)
def _argument_names_cached(reference: Callable[..., Any], count: int) -> tuple[str, ...]:
    try:
        names = [p.name for p in inspect.signature(reference).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        names = []
    names = names[:count]
    return tuple(names + [f"argument {i + 1}" for i in range(len(names), count)])


def _argument_names(reference: Callable[..., Any], count: int) -> tuple[str, ...]:
    try:
        return _argument_names_cached(reference, count)
    except TypeError:  # an unhashable reference
        return _argument_names_cached.__wrapped__(reference, count)


def _takes_trial(inputs: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(inputs).parameters
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return "trial" in parameters or len(positional) >= 3




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
