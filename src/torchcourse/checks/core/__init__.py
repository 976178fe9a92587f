"""The exercise-check framework: declare an exercise once, check any answer without crashing.

An exercise is a function the learner writes. Its check runs the learner's function and a
reference on freshly randomised inputs and declared edge cases (on every available device, then
once more on a second device), compares in a fixed order and says what is wrong on the smallest
failing case, showing that case and what the learner's function returned on it, never the
expected output. Outcomes are correct, incorrect or not attempted (the ``...`` placeholder); with
``TORCHCOURSE_STRICT=1`` anything but correct raises :class:`CheckFailed`, and with
``TORCHCOURSE_GRADE_FILE=path`` every outcome is appended there as a JSON line.

The route of an answer, one module per step::

    qN.check(answer)                                    exercise.Exercise.check
      └─ grade(answer) → _judge(answer)                 exercise: placeholder? callable?
           for each hidden case (trials, then cases=) and device:
             make_case(trial, device)                   exercise (seeded per exercise and trial)
             _check_case(guard, case)                   exercise (JudgedExercise: judge(answer, case))
               ├─ call_answer(answer, *case)            guard: time limit, printed output, exceptions
               │    ├─ _global_state() / _restore()     state: recorded, compared, put back
               │    └─ _Recorder, _Patches              instructions: what the answer called
               ├─ reference(*case); compare(...)        compare: type, layout, shape, dtype, device, values
               ├─ _input_changes(...)                   inputs: arguments left as they were
               └─ grads, memory sharing, properties     exercise
             _check_instructions(guard, case)           instructions: requires= / forbids=
           _check_second_device(guard, trial)           device: simulated CUDA (or meta) run
           failures → smallest case, misconception      exercise: _feedback, _diagnose
      └─ Outcome(status, message, points)               outcome: shown, recorded, grade file
    Chapter.report() → Report                           chapter

Every name that chapter modules, tests and notebooks import from ``torchcourse.checks.core`` is
re-exported here, private helpers included.
"""

# ruff: noqa: F401 - private helpers are re-exported for the chapter modules and tests that import them
from __future__ import annotations

from .chapter import Chapter, Report
from .compare import (
    _compare,
    _compare_tensors,
    _fields,
    _how_values_differ,
    _is_named_tuple,
    _is_number,
    _shape_text,
    _type_hint,
    compare,
    describe,
    randint,
    uniform,
)
from .device import _DEVICE_ERROR, check_second_device, warm_up_meta
from .exercise import (
    _PLACEHOLDER,
    Case,
    Exercise,
    Judge,
    JudgedExercise,
    Property,
    _argument_names,
    _Failure,
    _takes_trial,
)
from .guard import (
    _ACTIVE,
    DEFAULT_TIME_LIMIT,
    TimeLimitExceeded,
    _Guarded,
    _learner_frame,
    _Stopwatch,
    call_answer,
    last_calls,
    time_scale,
)
from .inputs import _input_changes, _input_state, _same_grad
from .instructions import (
    GRAPH,
    NO_GRAPH,
    Uses,
    _as_uses,
    _call_key,
    _keys_for,
    _keys_of,
    _Patches,
    _Recorder,
    _resolve,
    check_instructions,
    python_loop,
)
from .outcome import (
    CheckFailed,
    Mismatch,
    NotAttempted,
    Outcome,
    StateChanged,
    Status,
    Text,
    TimedOut,
    _append_to_grade_file,
    strict,
)
from .state import (
    _ABSENT,
    _global_state,
    _process_group,
    _read_default_device,
    _read_device_context,
    _restore,
    _state_changes,
    _write_device_context,
    warm_up,
)
from .values import _clone, _holds_modules, _modules, _printed, _size, _tensors, clone_case, same_storage, show

__all__ = [
    "DEFAULT_TIME_LIMIT",
    "Case",
    "Property",
    "Report",
    "Text",
    "check_instructions",
    "check_second_device",
    "strict",
    "time_scale",
    "warm_up",
    "warm_up_meta",
    "CheckFailed",
    "Chapter",
    "Exercise",
    "Judge",
    "JudgedExercise",
    "Mismatch",
    "NotAttempted",
    "Outcome",
    "StateChanged",
    "Status",
    "TimeLimitExceeded",
    "TimedOut",
    "NO_GRAPH",
    "NO_GRAPH",
    "Uses",
    "call_answer",
    "clone_case",
    "compare",
    "describe",
    "last_calls",
    "randint",
    "uniform",
    "same_storage",
    "show",
]
