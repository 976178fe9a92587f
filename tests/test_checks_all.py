"""Every exercise of every chapter survives bad input and accepts its own reference.

Chapter-specific wrong answers live in test_checks_<chapter>.py; this file feeds each exercise
the input any learner can produce: None, a wrong type, the placeholder, a function that raises,
NaN, the wrong device, and checks that strict mode raises.
"""

from __future__ import annotations

import collections
import functools
import importlib
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from torchcourse.checks import chapters
from torchcourse.checks.core import CheckFailed, Exercise, Status

EXERCISES = [ex for chapter in chapters().values() for ex in chapter.exercises.values()]
IDS = [f"{ex.chapter.name}-{ex.id}" for ex in EXERCISES]


def _map_tensors(value, fn):
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_map_tensors(v, fn) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(v, fn) for v in value)
    return value


def _reference_result(ex: Exercise):
    case = ex.make_case(0, "cpu")
    return ex.reference(*case)


def _one_case(monkeypatch: pytest.MonkeyPatch, ex: Exercise) -> None:
    """Grade on the first hidden case only: these answers are wrong (or right) on every case alike,
    and grading the rest would add time, not truth. The full set runs in
    test_reference_is_correct_in_a_fresh_process."""
    monkeypatch.setattr(ex, "trials", 1)
    monkeypatch.setattr(ex, "cases", ())


def test_there_are_exercises():
    assert len(EXERCISES) >= 4


# Each reference is graded in a process of its own, forked from one that has imported the chapter and
# done the checks' warm-up and nothing else: torch's lazy set-up (the first optimizer, the first meta or
# fake-tensor operation) happens inside that exercise's check, as in a kernel restarted just before it.
# One process for every chapter (a torch import costs seconds); each exercise still gets a fork of its own.
_FRESH = r"""
import json, os, sys
from torchcourse.checks import chapters
from torchcourse.checks.core import warm_up

warm_up()
results = {}
exercises = [(name, ex) for name, chapter in chapters().items() for ex in chapter.exercises.values()]
for name, ex in reversed(exercises):  # last first: nothing set up before
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            outcome = ex.grade(ex.reference)
            text = json.dumps([outcome.status.value, outcome.points, ex.points, outcome.message])
        except BaseException as error:  # a crash of the check itself
            text = json.dumps(["crashed", 0, ex.points, repr(error)])
        os.write(write, text.encode())
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 1 << 16):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    results.setdefault(name, {})[ex.id] = json.loads(data) if data else ["died", 0, ex.points, ""]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def fresh_results() -> dict:
    env = {**os.environ, "TORCHCOURSE_NO_CUDA": "1", "PYTHONHASHSEED": "0"}
    env.pop("TORCHCOURSE_STRICT", None)
    env.pop("TORCHCOURSE_GRADE_FILE", None)
    run = subprocess.run([sys.executable, "-c", _FRESH], capture_output=True, text=True, env=env,
                         timeout=900, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a fresh process per exercise")
@pytest.mark.parametrize("name", list(chapters()))
def test_reference_is_correct_in_a_fresh_process(name: str, fresh_results: dict):
    results = fresh_results.get(name, {})
    assert set(results) == set(chapters()[name].exercises)
    wrong = {id_: message for id_, (status, points, most, message) in results.items()
             if status != "correct" or points != most or most <= 0}
    assert not wrong, "\n\n".join(f"{id_}: {message}" for id_, message in wrong.items())


INSTRUCTED = [ex for ex in EXERCISES if ex.requires or ex.forbids or not ex.loops]


@pytest.mark.parametrize("ex", INSTRUCTED, ids=[f"{ex.chapter.name}-{ex.id}" for ex in INSTRUCTED])
def test_the_solution_shown_follows_the_instructions(ex: Exercise):
    """The reference may be PyTorch itself (the ground truth), exempt from the statement's instructions; the
    solution a learner is shown is not: it is graded as an answer, instructions included."""
    if ex.solution_code:
        namespace = {"torch": torch, "nn": torch.nn, "F": torch.nn.functional, "math": math}
        exec(ex.solution_code, namespace)  # noqa: S102 - the course's own solution text
        answer = namespace[ex.reference.__name__]
    else:
        answer = functools.wraps(ex.reference)(lambda *args, **kwargs: ex.reference(*args, **kwargs))
    outcome = ex.grade(answer)
    assert outcome.status is Status.CORRECT, outcome.message


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_declaration_is_complete(ex: Exercise):
    assert ex.title and ex.hints, "every exercise needs a title and at least one hint"
    assert "```python" in str(ex.solution())
    first = str(ex.hint())
    assert "Hint 1/" in first


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_placeholder_is_not_attempted(ex: Exercise):
    assert ex.grade(...).status is Status.NOT_ATTEMPTED
    assert ex.grade(lambda *args: ...).status is Status.NOT_ATTEMPTED


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
@pytest.mark.parametrize("answer", [None, 42, "torch.zeros(3)", torch.zeros(3)], ids=["None", "int", "str", "tensor"])
def test_non_function_answer_is_incorrect(ex: Exercise, answer):
    outcome = ex.grade(answer)
    assert outcome.status is Status.INCORRECT
    assert "Expected a function" in outcome.message


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_exception_in_learner_code_is_feedback(ex: Exercise, monkeypatch: pytest.MonkeyPatch):
    _one_case(monkeypatch, ex)

    def broken(*args):
        raise ValueError("boom")

    outcome = ex.grade(broken)
    assert outcome.status is Status.INCORRECT
    assert "raised ValueError: boom" in outcome.message


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_returning_none_is_incorrect(ex: Exercise, monkeypatch: pytest.MonkeyPatch):
    _one_case(monkeypatch, ex)
    outcome = ex.grade(lambda *args: None)
    assert outcome.status is Status.INCORRECT


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_nan_result_is_incorrect(ex: Exercise, monkeypatch: pytest.MonkeyPatch):
    _one_case(monkeypatch, ex)
    result = _reference_result(ex)
    if not any(t.is_floating_point() for t in _flatten(result)):
        pytest.skip("no floating-point output to poison")

    def nan_answer(*args):
        def poison(t):
            return torch.full_like(t, float("nan")) if t.is_floating_point() else t

        return _map_tensors(ex.reference(*args), poison)

    outcome = ex.grade(nan_answer)
    assert outcome.status is Status.INCORRECT
    assert "NaN" in outcome.message or "differ" in outcome.message


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_wrong_device_is_incorrect(ex: Exercise, monkeypatch: pytest.MonkeyPatch):
    _one_case(monkeypatch, ex)
    if not _flatten(_reference_result(ex)):
        pytest.skip("no tensor output")

    def meta_answer(*args):
        return _map_tensors(ex.reference(*args), lambda t: t.detach().to("meta"))

    outcome = ex.grade(meta_answer)
    assert outcome.status is Status.INCORRECT
    assert "device" in outcome.message


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_strict_mode_raises(ex: Exercise, monkeypatch: pytest.MonkeyPatch):
    _one_case(monkeypatch, ex)
    monkeypatch.setenv("TORCHCOURSE_STRICT", "1")
    with pytest.raises(CheckFailed, match="Not attempted"):
        ex.check(...)
    assert ex.check(ex.reference).status is Status.CORRECT


def _flatten(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flatten(v)]
    return []


# --- the classes of weakness the framework defends every exercise against -------------------------


def _forever(*args):
    while True:
        pass


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_a_function_that_never_returns_is_stopped(ex: Exercise, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ex, "time_limit", 0.1)
    outcome = ex.grade(_forever)
    assert outcome.status is Status.INCORRECT
    assert "did not return within" in outcome.message


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_system_exit_is_feedback(ex: Exercise, monkeypatch: pytest.MonkeyPatch):
    _one_case(monkeypatch, ex)
    outcome = ex.grade(lambda *args: exit(1))
    assert outcome.status is Status.INCORRECT
    assert "raised SystemExit" in outcome.message


_GLOBAL_CHANGES = {
    "default dtype": lambda: torch.set_default_dtype(torch.float64),
    "grad mode": lambda: torch.set_grad_enabled(False),
    "seed": lambda: torch.manual_seed(0),
    "default device": lambda: torch.set_default_device("meta"),
}


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
@pytest.mark.parametrize("change", list(_GLOBAL_CHANGES))
def test_an_answer_that_changes_global_state_is_rejected_and_undone(
    ex: Exercise, change: str, monkeypatch: pytest.MonkeyPatch
):
    _one_case(monkeypatch, ex)

    def changer(*args):
        result = ex.reference(*args)
        _GLOBAL_CHANGES[change]()
        return result

    before = (torch.get_default_dtype(), torch.is_grad_enabled(), torch.initial_seed(), torch.get_default_device())
    outcome = ex.grade(changer)
    if change == "seed" and ex.reseeds:  # a worker_init_fn may seed its own process's generators
        assert outcome.status is Status.CORRECT, outcome.message
    else:
        assert outcome.status is Status.INCORRECT and "changed global state" in outcome.message
        assert change in outcome.message
    assert before == (torch.get_default_dtype(), torch.is_grad_enabled(), torch.initial_seed(),
                      torch.get_default_device())


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
@pytest.mark.parametrize(
    "convert",
    ["sparse", "numpy", "list", "scalar", "0-d", "named tuple"],
)
def test_an_answer_of_the_wrong_kind_is_rejected_without_a_crash(
    ex: Exercise, convert: str, monkeypatch: pytest.MonkeyPatch
):
    _one_case(monkeypatch, ex)
    result = _reference_result(ex)
    tensors = _flatten(result)
    if not tensors or not all(t.layout == torch.strided for t in tensors):
        pytest.skip("no plain tensor output to convert")

    def one(t: torch.Tensor):
        t = t.detach()
        if convert == "sparse":
            return t.to_sparse() if t.dim() else t.reshape(1).to_sparse()
        if convert == "numpy":
            return t.cpu().numpy()
        if convert == "list":
            return t.tolist()
        if convert == "scalar":
            return float(t.flatten()[0]) if t.numel() else 0.0
        if convert == "0-d":
            return t.flatten()[0] if t.numel() and t.dim() else t.reshape(1)
        return t

    def answer(*args):
        out = ex.reference(*args)
        if convert == "named tuple":
            Pair = collections.namedtuple("Pair", "first second")
            if isinstance(out, (list, tuple)) and len(out) == 2 and not _is_plain_tuple_expected(out):
                return Pair(*out)
            return Pair(out, out)
        return _map_tensors(out, one)

    outcome = ex.grade(answer)
    if convert == "named tuple" and isinstance(result, tuple) and len(result) == 2 and not hasattr(result, "_fields"):
        assert outcome.status is Status.CORRECT, outcome.message  # a named tuple is a tuple
        return
    assert outcome.status is Status.INCORRECT, outcome.message


def _is_plain_tuple_expected(out) -> bool:
    return isinstance(out, list)


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_printed_output_is_captured(ex: Exercise, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    _one_case(monkeypatch, ex)

    def chatty(*args):
        print("learner says hello")
        return None

    outcome = ex.grade(chatty)
    assert outcome.status is Status.INCORRECT
    assert "learner says hello" in outcome.message
    assert "learner says hello" not in capsys.readouterr().out


@pytest.mark.parametrize("name", list(chapters()))
def test_every_exercise_has_three_correct_answers(name):
    """Each chapter's test file grades three different correct answers per exercise (its CORRECT dict)."""
    module = importlib.import_module(f"test_checks_{name.split('_', 1)[1]}")
    correct = module.CORRECT
    assert set(correct) == set(chapters()[name].exercises), sorted(set(chapters()[name].exercises) ^ set(correct))
    assert all(len(answers) == 3 and len(set(map(id, answers))) == 3 for answers in correct.values())
