"""The second device: every exercise whose inputs hold tensors runs once more with them elsewhere.

On a machine without a GPU a tensor created without ``device=`` still lands on the right device,
so the first runs cannot show it: this run puts the inputs on a second device and fails an answer
whose result or whose operations end up on another one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .guard import call_answer
from .outcome import Mismatch, NotAttempted, StateChanged, TimedOut
from .state import warm_up
from .values import _tensors, clone_case

if TYPE_CHECKING:
    from .exercise import Exercise
    from .guard import _Guarded

_DEVICE_ERROR = re.compile(
    r"same device|expected device|on device \w+ is not|different from other tensors|device type|"
    r"Expected all tensors|expected to be in the same device|to be on the same device|but got \w+ device",
    re.IGNORECASE,
)


def warm_up_meta() -> None:
    """Pay torch's one-time cost of the first meta operation outside any time limit (see :func:`.state.warm_up`)."""
    warm_up()


def check_second_device(exercise: Exercise, guard: _Guarded, trial: int) -> None:
    """Run once more with the inputs on ``meta``: tensors created without ``device=`` show up here."""
    if exercise.second_device is False or (exercise.second_device is None and exercise.on is not None):
        return
    warm_up_meta()
    try:
        case = exercise.make_case(trial, "meta")
        if not _tensors(case):
            return
        expected = exercise.reference(*clone_case(case))
    except Exception:  # noqa: BLE001 - the reference cannot run on meta: inconclusive
        return
    expected_tensors = _tensors(expected)
    if not expected_tensors or any(t.device.type != "meta" for t in expected_tensors):
        return
    try:
        result = call_answer(guard, *clone_case(case))
    except Mismatch as mismatch:
        text = str(mismatch)
        if text.startswith("Your function raised") and _DEVICE_ERROR.search(text) and "meta tensor" not in text:
            raise Mismatch(
                "The values are right here, but your function fails when its inputs live on another "
                "device (tested on 'meta', which stands in for a GPU): " + text.removeprefix("Your function ")
                + " A tensor you create there has no device= argument, or is moved to a fixed device."
            ) from None
        if isinstance(mismatch, (TimedOut, StateChanged)):
            raise
        return  # an operation meta cannot run (data-dependent, .item(), LAPACK): inconclusive
    except NotAttempted:
        return
    got = _tensors(result)
    if len(got) != len(expected_tensors):
        return
    for i, (a, e) in enumerate(zip(got, expected_tensors, strict=True)):
        if a.device != e.device:
            item = "your result" if len(got) == 1 else f"tensor {i} of your result"
            raise Mismatch(
                f"The values are right here, but with the inputs on the 'meta' device (a stand-in for a "
                f"GPU) {item} came back on {a.device}: a tensor you create lands on the default device "
                "unless you give it the inputs' device."
            )
