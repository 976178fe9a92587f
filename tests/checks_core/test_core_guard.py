"""The guarded call (checks/core/guard.py): time limits, exceptions, printed output, direct calls."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from torchcourse.checks.core import Mismatch, Status, call_answer

from .conftest import incorrect as _incorrect
from .conftest import vectors as _vectors


@pytest.fixture
def double(chapter):
    return chapter.exercise("q1", "Double it", points=1, reference=lambda x: x * 2, inputs=_vectors,
                            hints=["Multiply."], time_limit=0.3)


# --- time limits ---------------------------------------------------------------------------------


def _forever(x):
    while True:
        pass


def _swallows(x):
    while True:
        try:
            while True:
                pass
        except BaseException:  # noqa: BLE001 - a learner's bare except
            pass


def test_a_function_that_never_returns_is_stopped(double):
    start = time.perf_counter()
    _incorrect(double, _forever, "did not return within 0.3 s", "infinite loop")
    assert time.perf_counter() - start < 5


def test_a_bare_except_cannot_swallow_the_time_limit(double):
    _incorrect(double, _swallows, "did not return within")


def test_sleeping_is_stopped(double):
    _incorrect(double, lambda x: time.sleep(60), "did not return within")


def test_the_time_limit_works_outside_the_main_thread(double):
    outcomes = []
    worker = threading.Thread(target=lambda: outcomes.append(double.grade(_forever)))
    worker.start()
    worker.join(20)
    assert not worker.is_alive()
    assert outcomes[0].status is Status.INCORRECT and "did not return" in outcomes[0].message
    assert double.grade(lambda x: x * 2).status is Status.CORRECT


def test_keyboard_interrupt_propagates(double):
    def interrupted(x):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        double.grade(interrupted)
    assert double.grade(lambda x: x + x).status is Status.CORRECT


def test_a_time_limit_scale_stretches_every_limit(double, monkeypatch):
    monkeypatch.setenv("TORCHCOURSE_TIME_LIMIT_SCALE", "2")
    _incorrect(double, _forever, "within 0.6 s")


# --- exceptions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [SystemExit(1), GeneratorExit(), StopIteration(), BaseException("odd")])
def test_any_base_exception_is_feedback(double, error):
    def raises(x):
        raise error

    message = _incorrect(double, raises, f"raised {type(error).__name__}")
    if isinstance(error, SystemExit):
        assert "sys.exit()" in message


def test_the_error_names_the_learners_line(double):
    def broken(x):
        return x.no_such_method()

    _incorrect(double, broken, "raised AttributeError", "of broken)")


# --- feedback ---------------------------------------------------------------------------------------------


def test_a_misconception_must_explain_every_failing_case(chapter):
    ex = chapter.exercise("q13", "Double", points=1, reference=lambda x: x * 2, inputs=_vectors, hints=["-"],
                          misconceptions=[(lambda x: x + 2, "You added 2.")])
    assert _incorrect(ex, lambda x: x + 2).startswith("You added 2.")
    two_mistakes = _incorrect(ex, lambda x: x + 2 if len(x) < 5 else x * 3)
    assert "You added 2." not in two_mistakes


def test_printed_output_is_captured_and_shown(double, capsys):
    def chatty(x):
        for i in range(100):
            print("step", i)
        return x * 3

    message = _incorrect(double, chatty, "Your function printed:", "step 0", "more lines")
    assert "step 99" not in message
    assert "step" not in capsys.readouterr().out


def test_call_answer_guards_a_direct_call():
    with pytest.raises(Mismatch, match="raised SystemExit"):
        call_answer(lambda: exit(3))
    assert call_answer(lambda: np.int64(3)) == 3


def test_a_warning_is_shown_as_its_message_never_a_line_of_source(double):
    import warnings

    def noisy(x):
        warnings.warn("careful\nsecond line", stacklevel=1)
        return x * 3

    message = _incorrect(double, noisy, "UserWarning: careful")
    assert "second line" not in message and "warnings.warn" not in message and ".py:" not in message


def test_a_result_that_contains_itself_is_feedback_not_a_crash(double):
    def loop(x):
        out = [x * 2]
        out.append(out)
        return out

    def loop_in_dict(x):
        d = {"y": x * 2}
        d["self"] = d
        return (d,)

    _incorrect(double, loop, "list in which a list holds itself")
    _incorrect(double, loop_in_dict, "tuple in which a dict holds itself")
