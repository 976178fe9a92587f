"""Exercises of appendix 00 · The Python the notes rely on (``exercises/00_python.ipynb``).

Each exercise is declared here; what is too long for one module lives in private siblings:
- :mod:`._python_text`: q5's command lines and parser, q6's literals and payloads;
- :mod:`._python_protocols`: q7-q9 (closures, a decorator, a generator), their references and judges.
"""

from __future__ import annotations

import contextlib
import io
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ._python_protocols import (
    _batched_case,
    _evaluating_case,
    _judge_batched,
    _judge_evaluating,
    _judge_warmups,
    _warmup_case,
    batched,
    evaluating,
    warmup_factors,
)
from ._python_text import (
    _SIDE_EFFECTS,
    _argv_case,
    _namespace,
    _ran_code,
    _text_case,
    _variant,
    parse_literal,
    parse_train_args,
)
from .core import (
    Case,
    Chapter,
    Exercise,
    JudgedExercise,
    Mismatch,
    NotAttempted,
    TimedOut,
    _tensors,
    call_answer,
    clone_case,
    compare,
    describe,
    uniform,
)
from .core import randint as _randint

chapter = Chapter("00_python", "The Python the notes rely on")

Prediction = namedtuple("Prediction", ["label", "score"])


class _Raised(Mismatch):
    """The learner's function raised: the feedback, and the error itself."""

    def __init__(self, message: str, error: BaseException) -> None:
        super().__init__(message)
        self.error = error


def _run(answer: Callable[..., Any], args: tuple, kwargs: dict, parser: bool = False) -> Any:
    """Call the learner's function through the framework's guard (time limit, global state, captured
    output); an argparse exit and a raised error keep what the judge needs (the error, the last stderr line)."""
    try:
        return call_answer(answer, *args, **kwargs)
    except Mismatch as mismatch:
        error = getattr(mismatch, "error", None)
        if parser and isinstance(error, SystemExit):
            lines = getattr(mismatch, "printed", "").strip().splitlines()
            said = lines[-1] if lines else f"exit status {error.code}"
            raise Mismatch(
                f"Your function raised SystemExit instead of returning: {said}. A parser exits when it "
                "rejects its arguments: check each option's name, action and type."
            ) from None
        if isinstance(error, Exception):
            raise _Raised(str(mismatch), error) from None
        raise


def _types(value: Any) -> Any:
    """The nesting of container and scalar types, to tell a tuple from a list and an int from a float."""
    if isinstance(value, (list, tuple, set, frozenset)):
        return (type(value).__name__, *(_types(v) for v in value)) if not isinstance(value, (set, frozenset)) else (
            type(value).__name__,
        )
    if isinstance(value, dict):
        return ("dict", *((repr(k), _types(v)) for k, v in value.items()))
    return type(value).__name__


@dataclass
class _Exercise(Exercise):
    """An exercise for functions that format, unpack or parse: stricter comparisons, argparse-safe calls.

    ``view`` turns the learner's result into what is compared (``vars`` of a Namespace);
    ``parts`` compares strings part by part (split on it) and names the first part that differs;
    ``exact_types`` also demands the same container and scalar types (a tuple stays a tuple);
    ``raises``: where the reference raises this error, the answer must raise it too;
    ``after_call`` runs right after the learner's call and returns a message when it did harm.
    """

    view: Callable[[Any], Any] | None = None
    parts: str | None = None
    exact_types: bool = False
    raises: type[Exception] | None = None
    after_call: Callable[[], str | None] | None = None
    parser: bool = False  # an argparse exit is explained as the parser rejecting its arguments

    def _check_case(self, answer: Callable[..., Any], case: Case) -> None:
        self._check_call(answer, case, {})

    def _check_call(self, answer: Callable[..., Any], args: Case, kwargs: dict[str, Any]) -> None:
        expected_error = None
        try:
            expected = self.reference(*clone_case(args), **clone_case(kwargs))
        except Exception as error:  # noqa: BLE001 - only the declared kind is an expected outcome
            if self.raises is None or not isinstance(error, self.raises):
                raise
            expected, expected_error = None, error
        learner_args, learner_kwargs = clone_case(args), clone_case(kwargs)
        try:
            result = _run(answer, learner_args, learner_kwargs, parser=self.parser)
        except Mismatch as mismatch:
            harm = self.after_call() if self.after_call else None
            if harm:
                raise Mismatch(harm) from None
            error = getattr(mismatch, "error", None)
            if expected_error is not None and isinstance(error, self.raises):
                return  # refused with the right kind of error: correct
            if expected_error is not None and isinstance(error, Exception):
                raise Mismatch(_wrong_error(error, self.raises)) from None
            raise
        harm = self.after_call() if self.after_call else None
        if harm:
            raise Mismatch(harm)
        if expected_error is not None:
            raise Mismatch(
                f"For this input your function returned {describe(result)}, but it must raise "
                f"{self.raises.__name__}: the text is not a literal."
            )
        if self.view is not None:
            result, expected = self.view(result), self.view(expected)
        if isinstance(expected, str) and not isinstance(result, str):
            raise Mismatch(f"your result: expected a str, got {describe(result)}.")
        if self.parts and isinstance(expected, str) and isinstance(result, str) and result != expected:
            self._compare_parts(result, expected)
        compare(result, expected, "your result", self.atol, self.rtol)
        if self.exact_types and _types(result) != _types(expected):
            raise Mismatch(
                "The values are right but a type is not: a tuple must stay a tuple and a list a list, "
                "an int an int. Check which containers your code builds."
            )
        for i, (before, after) in enumerate(zip(_tensors(args), _tensors(learner_args), strict=True)):
            if not torch.equal(before.detach(), after.detach()):
                raise Mismatch(f"Your function changed its input (tensor argument {i}) in place.")
        for prop in self.properties:
            problem = prop(result, args)
            if problem:
                raise Mismatch(problem)

    def _compare_parts(self, result: str, expected: str) -> None:
        got, want = result.split(self.parts), expected.split(self.parts)
        if len(got) != len(want):
            raise Mismatch(
                f"your result: expected {len(want)} parts separated by {self.parts!r}, got {len(got)}. "
                "Check the separators and the spaces around them."
            )
        for mine, theirs in zip(got, want, strict=True):
            if mine != theirs:
                label = theirs.split()[0] if theirs.split() else "a"
                raise Mismatch(
                    f"your result: the {label!r} part is {mine!r}, which is not right. Check its "
                    "format spec: width, zero padding, precision and type."
                )

    def _misconception(self, answer: Callable[..., Any], case: Case, kwargs: dict[str, Any]) -> str | None:
        """The first misconception whose output the learner's matches on this call (q2's keyword calls)."""
        for wrong, feedback in self.misconceptions:
            try:
                mine = _run(answer, clone_case(case), clone_case(kwargs))
                if self._same(mine, wrong, case, kwargs):
                    return feedback
            except BaseException:  # noqa: BLE001 - not this misconception (or it exited): keep looking
                continue
            finally:
                _SIDE_EFFECTS.clear()
        return None

    def _explains(self, wrong: Callable[..., Any], failure: Any) -> bool:
        """The core's test of a misconception against one failing case, with this chapter's views and types."""
        if failure.raised:
            return False
        try:
            return self._same(failure.result, wrong, failure.case, {})
        except BaseException:  # noqa: BLE001 - the misconception itself fails here: not this one
            return False
        finally:
            _SIDE_EFFECTS.clear()

    def _same(self, mine: Any, wrong: Callable[..., Any], case: Case, kwargs: dict[str, Any]) -> bool:
        with contextlib.redirect_stderr(io.StringIO()):
            theirs = wrong(*clone_case(case), **clone_case(kwargs))
        if self.view is not None:
            mine, theirs = self.view(mine), self.view(theirs)
        try:
            compare(mine, theirs, "", self.atol, self.rtol)
        except Mismatch:
            return False
        return not (self.exact_types and _types(mine) != _types(theirs))


def _wrong_error(error: Exception, expected: type[Exception]) -> str:
    """Feedback for an answer that refused a non-literal with another kind of error than the statement's."""
    name = type(error).__name__
    said = error.msg if isinstance(error, SyntaxError) and error.msg else str(error).strip()
    said = f" ({said.splitlines()[0]})" if said else ""
    return (
        f"Your function raised {name}{said} for text that is not a literal, but the statement asks for "
        f"{expected.__name__} whenever the text is not a literal, text that is not valid Python included: the "
        f"{name} escaped, and a caller that catches {expected.__name__} would not catch it."
    )


def _exercise(id: str, title: str, kind: type[_Exercise] = _Exercise, **options: Any) -> _Exercise:  # noqa: A002
    reference, inputs, points, hints = (options.pop(k) for k in ("reference", "inputs", "points", "hints"))
    return chapter.register(kind(chapter, id, title, points, reference, inputs, hints, **options))


# --- q1 · 00.1 a training log line ------------------------------------------------------------


def _log_case(generator: torch.Generator, device: str) -> Case:
    epoch = _randint(generator, 0, 100)  # below 100, so the zero padding always shows
    loss = torch.tensor(uniform(generator, 0.0, 3.0), device=device)  # a 0-d tensor, as a loss is
    acc = round(uniform(generator, 0.0, 1.0), 4)
    return epoch, loss, acc


def log_line(epoch: int, loss: torch.Tensor, acc: float) -> str:
    return f"epoch {epoch:03d} | loss {loss:.4f} | acc {acc:.1%}"


q1 = _exercise(
    "q1",
    "A training log line with format specs",
    points=1,
    reference=log_line,
    inputs=_log_case,
    parts=" | ",
    cases=[  # the random trials draw epochs of 10 or more: the statement's example (7 as 007), 0, an accuracy of 1
        (7, torch.tensor(0.12345, dtype=torch.float32), 0.975),
        (0, torch.tensor(2.5, dtype=torch.float32), 1.0),
    ],
    hints=[
        "An f-string takes a format spec after a colon: f'{value:spec}'.",
        "`03d` pads an int to 3 digits with zeros, `.4f` gives 4 decimals, `.1%` multiplies by 100 and adds '%'.",
        "A 0-d tensor formats like its number: f'{loss:.4f}' works, or use loss.item().",
    ],
    misconceptions=[
        (
            lambda e, loss, a: f"epoch {e} | loss {loss:.4f} | acc {a:.1%}",
            "The epoch is not zero-padded: it must always show 3 digits (7 as 007).",
        ),
        (
            lambda e, loss, a: f"epoch {e:03d} | loss {loss:.4f} | acc {a * 100:.1%}",
            "The accuracy is 100 times too large: the `%` type already multiplies by 100, and you multiplied it too.",
        ),
        (
            lambda e, loss, a: f"epoch {e:03d} | loss {loss:.4f} | acc {a:.1f}%",
            "The accuracy shows the fraction itself with a '%' sign after it (0.975 → 1.0%), not the percentage "
            "(0.975 → 97.5%).",
        ),
    ],
)


# --- q2 · 00.2 *values and a keyword-only scale -------------------------------------------------


def _total_case(generator: torch.Generator, device: str) -> Case:
    count, size = _randint(generator, 1, 5), _randint(generator, 1, 5)
    return tuple(torch.randn(size, generator=generator).to(device) for _ in range(count))


def total(*values: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    return scale * sum(values)


class _KeywordExercise(_Exercise):
    """q2: called with the values alone, then with ``scale=`` by keyword, then with a number as one
    more positional value (which must be added, not taken as the scale)."""

    def _check_case(self, answer: Callable[..., Any], case: Case) -> None:
        super()._check_case(answer, case)
        scale = 0.5 + 0.75 * len(case)
        for args, kwargs, how in (
            (case, {"scale": scale}, f"Called as total(..., scale={scale}): "),
            ((*case, 2.0), {}, "Called as total(a, ..., 2.0), where 2.0 is one more value (scale is keyword-only): "),
        ):
            if hasattr(answer, "last_result"):  # the feedback shows what this call returned, never an earlier one
                answer.last_result = None
            try:
                self._check_call(answer, args, kwargs)
            except NotAttempted:
                raise
            except Mismatch as mismatch:
                feedback = how + (self._misconception(answer, args, kwargs) or str(mismatch))
                raise Mismatch(feedback) from None

    def _diagnose(self, guard: Any, failures: list) -> str | None:
        if any(f.message.startswith("Called as total(") for f in failures):
            return None  # the keyword call's own diagnosis is already in the message
        return super()._diagnose(guard, failures)


q2 = _exercise(
    "q2",
    "Any number of tensors and a keyword-only argument",
    kind=_KeywordExercise,
    points=1,
    reference=total,
    inputs=_total_case,
    trials=6,
    cases=[  # the six random trials draw 2 to 4 vectors: one tensor alone ("at least one"), and a 2-D one
        lambda device: (torch.tensor([[1.5, -2.0, 0.25], [3.0, 0.5, -1.0]], dtype=torch.float32, device=device),),
    ],
    atol=1e-6,
    rtol=1e-5,
    hints=[
        "`*values` in the definition collects every positional argument into a tuple.",
        "A parameter written after `*values` can only be passed by keyword; give it a default of 1.0.",
        "def total(*values, scale=1.0): return scale * sum(values)",
    ],
    misconceptions=[
        (lambda *values, scale=1.0: sum(values), "You ignore `scale`: your result is the plain sum, whatever the "
                                                 "scale."),
        (
            lambda *values, scale=1.0: scale * values[0] + sum(values[1:]),
            "Only the first tensor is scaled: the others are added unscaled.",
        ),
    ],
)


# --- q3 · 00.2 starred unpacking ---------------------------------------------------------------


def _sequence_case(generator: torch.Generator, device: str) -> Case:
    length = 2 + _randint(generator, 0, 6)
    items = [_randint(generator, -50, 50) for _ in range(length)]
    return ((tuple(items) if _randint(generator, 0, 2) else items),)


def ends_and_middle(seq: Any) -> tuple[Any, Any, list]:
    first, *middle, last = seq
    return first, last, middle


q3 = _exercise(
    "q3",
    "First, last and the rest, by starred unpacking",
    points=1,
    reference=ends_and_middle,
    inputs=_sequence_case,
    trials=8,
    exact_types=True,
    hints=[
        "A starred name in an assignment takes everything the other names leave: `a, *b = seq`.",
        "The starred name always gets a list, even when the input is a tuple, and an empty one when "
        "the sequence has only two items.",
        "first, *middle, last = seq",
    ],
    misconceptions=[
        (lambda s: (s[0], s[-1], s[1:-1]), "For a tuple your middle is a tuple: `seq[1:-1]` keeps the input's type, "
                                           "but the middle must be a list."),
        (lambda s: (s[0], s[-1], list(s[1:])), "The middle includes the last item, which is already returned as "
                                               "`last`."),
    ],
)


# --- q4 · 00.3 a named tuple, as torch.max returns -----------------------------------------------


def _logits_case(generator: torch.Generator, device: str) -> Case:
    n, classes = _randint(generator, 2, 7), _randint(generator, 2, 6)
    return (torch.randn(n, classes, generator=generator).to(device),)


def top_prediction(logits: torch.Tensor) -> Prediction:
    best = torch.max(torch.softmax(logits, dim=1), dim=1)
    return Prediction(label=best.indices, score=best.values)


def _is_prediction(result: Any, case: Case) -> str | None:
    if getattr(result, "_fields", None) != ("label", "score"):
        return (
            "The values are right, but the result is a plain tuple, not a Prediction (the named tuple "
            "imported above): callers read result.label and result.score."
        )
    return None


q4 = _exercise(
    "q4",
    "The top class and its probability, as a named tuple",
    points=2,
    reference=top_prediction,
    inputs=_logits_case,
    atol=1e-6,
    rtol=1e-5,
    properties=[_is_prediction],
    hints=[
        "torch.softmax(logits, dim=1) turns each row into probabilities.",
        "torch.max(probs, dim=1) returns a named tuple with .values and .indices.",
        "Build the answer with Prediction(label=..., score=...).",
    ],
    misconceptions=[
        (
            lambda logits: Prediction(torch.max(logits, 1).indices, torch.max(logits, 1).values),
            "The score is the largest logit, not a probability: it can be negative or above 1.",
        ),
        (
            lambda logits: Prediction(*torch.max(torch.softmax(logits, 1), 1)),
            "label and score are swapped: your label holds the maxima and your score the indices (torch.max returns "
            "(values, indices)).",
        ),
    ],
)


# --- q5 · 00.4 a training script's parser ------------------------------------------------------


class _ParserExercise(_Exercise):
    """q5 also checks the declared edge case: without --epochs the parser must refuse (exit)."""

    def _check_case(self, answer: Callable[..., Any], case: Case) -> None:
        super()._check_case(answer, case)
        (argv,) = case
        without = [w for i, w in enumerate(argv) if not w.startswith("--epochs") and not (
            i and argv[i - 1] == "--epochs")]
        printed = getattr(answer, "printed", None)  # the usage message of the refusal is expected
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                call_answer(answer, without)
        except TimedOut:
            raise
        except Mismatch:
            return  # it exited or raised: a refusal, argparse's or its own
        finally:
            if printed is not None:
                answer.printed = printed
        raise Mismatch("Your parser accepted arguments without --epochs: --epochs is mandatory, so they must be "
                       "refused.")


q5 = _exercise(
    "q5",
    "A training script's argument parser",
    kind=_ParserExercise,
    parser=True,
    points=2,
    reference=parse_train_args,
    inputs=_argv_case,
    trials=6,
    view=_namespace,
    hints=[
        "argparse.ArgumentParser(), then one add_argument per option, then parser.parse_args(argv).",
        "type=float and type=int convert the text; required=True makes --epochs mandatory.",
        "action='store_true' is False unless the flag is given; for --no-shuffle use dest='shuffle' "
        "with action='store_false'.",
    ],
    misconceptions=[
        (
            lambda argv: _variant(argv, shuffle="store_true"),
            "shuffle is the wrong way round: it must be True unless --no-shuffle is given, and False with it.",
        ),
        (
            lambda argv: _variant(argv, verbose="store_false"),
            "verbose is the wrong way round: it must be False unless -v/--verbose is given, and True with it.",
        ),
    ],
)


# --- q6 · 00.4 parse a literal, never run code ---------------------------------------------------


class _LiteralExercise(_Exercise):
    """Starts every grading with no recorded side effect (the tests check that trial 0 is a literal,
    so an answer that raises everywhere is told so, and that payloads, text that is not valid Python and an
    unhashable key are among the cases)."""

    def _judge(self, answer: Any) -> Any:
        _SIDE_EFFECTS.clear()
        return super()._judge(answer)


q6 = _exercise(
    "q6",
    "Parse a literal, never run code",
    kind=_LiteralExercise,
    points=2,
    reference=parse_literal,
    inputs=_text_case,
    trials=8,
    exact_types=True,
    raises=ValueError,
    after_call=_ran_code,
    cases=[
        # expressions, not literals, that call nothing and need no builtin: eval gives them a value
        ("[0.5] * 3",),
        ("(1, 2) + (3,)",),
        ("{'lr': 0.1, 'wd': 0.0}['lr']",),
        ("-(-4)",),
        # not valid Python as an expression (a config file's assignment): SyntaxError in ast.literal_eval
        ("lr = 0.1",),
        # valid syntax, but a list cannot be a dict key: TypeError (unhashable) in ast.literal_eval
        ("{[1, 2]: 'lr'}",),
    ],
    hints=[
        "The text is a Python literal: a number, string, tuple, list, dict, bool or None, possibly nested.",
        "eval() would run any expression in the text, including a function call.",
        "import ast; ast.literal_eval(text) accepts literals only. For malformed input it raises ValueError, "
        "TypeError, SyntaxError, MemoryError or RecursionError (its documentation lists them): catch them and "
        "raise ValueError from the error.",
    ],
)


# --- q7-q9 · 00.5 and 00.6 closures, a decorator, a generator (judged in _python_protocols) ---------------


def _judged(id: str, title: str, **options: Any) -> JudgedExercise:  # noqa: A002
    return chapter.register(JudgedExercise(chapter, id, title, on=("cpu",), **options))


q7 = _judged(
    "q7",
    "One warm-up factor per parameter group: closures made in a loop",
    points=2,
    reference=warmup_factors,
    inputs=_warmup_case,
    judge=_judge_warmups,
    trials=6,  # one to five lengths: a length of 1, one alone, one twice, the last the shortest
    hints=[
        "A function made inside a loop (a lambda or a def) does not copy the loop variable: it looks it up when "
        "it is called.",
        "Give each function its own binding: a default argument (lambda epoch, w=w: ...), functools.partial, or "
        "a small factory function that returns the lambda.",
        "Bind the length itself, not an index into the list: the caller may change the list afterwards.",
    ],
)

q8 = _judged(
    "q8",
    "A decorator that evaluates, and restores what it changed",
    points=2,
    reference=evaluating,
    inputs=_evaluating_case,
    judge=_judge_evaluating,
    trials=6,  # mixed flags, grad mode already off, fn raising, and combinations
    hints=[
        "Inside evaluating, define wrapper(model, *args, **kwargs), decorate it with @functools.wraps(fn) and "
        "return it.",
        "Record each module's training flag (model.modules()) before model.eval(): model.train(was) would give "
        "every submodule the model's own flag.",
        "Call fn inside `with torch.no_grad():`, in a try block whose finally puts each flag back.",
    ],
)

q9 = _judged(
    "q9",
    "Batches from any iterable, lazily: a generator",
    points=2,
    reference=batched,
    inputs=_batched_case,
    judge=_judge_batched,
    trials=8,  # lists, a range, one-shot and endless iterators; a short last batch, exact batches, none, n=1
    hints=[
        "iter(iterable) gives an iterator for a list, a range or an iterator alike; next() takes one item.",
        "A function with `yield` in it is a generator function: its body runs only as the caller asks for items.",
        "itertools.islice(iterator, n) takes at most n items: make a tuple of them, stop when it is empty.",
    ],
)

