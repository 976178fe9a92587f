"""The second device: every exercise whose inputs hold tensors runs once more with them elsewhere.

On a machine without a GPU a tensor created without ``device=`` still lands on the right device,
so the first runs cannot show it: this run puts the inputs on a second device and fails an answer
whose result or whose operations end up on another one.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from typing import TYPE_CHECKING, Any

from ... import simcuda
from ...devices import devices
from .guard import call_answer
from .outcome import Mismatch, NotAttempted, TimedOut
from .state import _global_state, _restore, warm_up
from .values import _modules, _tensors, clone_case

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
    """Run the answer once more with its inputs on a second device: simulated CUDA, or ``meta``.

    On a machine with a GPU the first runs used it and this one is skipped. Without one, the inputs
    become fake CUDA tensors (:mod:`torchcourse.simcuda`); where this torch cannot simulate CUDA,
    they go to ``meta``. Only a proven device mistake fails; what the simulation cannot run is
    inconclusive and costs nothing.
    """
    if exercise.second_device is False or (exercise.second_device is None and exercise.on is not None):
        return
    if "cuda" in [d for d in (exercise.on or devices()) if d in devices()]:
        return  # the real GPU was checked
    if simcuda.available():
        _on_simulated_cuda(exercise, guard, trial)
    else:
        _on_meta(exercise, guard, trial)


def second_device_name() -> str:
    """Where the second run put the inputs, for the feedback."""
    return "on a simulated GPU" if simcuda.available() else "on the meta device"


_SIMULATED = ("with its inputs on a simulated GPU (fake CUDA tensors: shapes and devices without values, "
              "checked as a GPU checks them)")


def _on_simulated_cuda(exercise: Exercise, guard: _Guarded, trial: int) -> None:
    """The run on simulated CUDA: placement is proven, values are not (they were checked already)."""
    if guard.simulation_off:
        return
    case = exercise.make_case(trial, "cpu")
    if not _tensors(case) and not _modules(case):
        return
    sim = simcuda.Simulation()
    saved = _global_state()
    reference_case: Any = None
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            reference_case = sim.to_fake_cuda(case)
            with sim:
                expected: Any = exercise.reference(*reference_case)
    except Exception as error:  # noqa: BLE001 - the simulation cannot run the reference
        if reference_case is None or simcuda.classify(error) == simcuda.MISMATCH:
            return  # the inputs do not belong on one device: nothing here can be proven
        expected = _UNKNOWN
    finally:
        _restore(saved)
    try:
        learner_case = sim.to_fake_cuda(case)
    except Exception:  # noqa: BLE001
        return
    guard.context = lambda: _quietly(sim)
    printed = guard.printed  # what the simulated run prints (fake tensors, torch's warnings) is not shown
    try:
        result = call_answer(guard, *learner_case)
    except Mismatch as mismatch:
        if isinstance(mismatch, TimedOut):
            guard.simulation_off = True  # slower there: one time-out is enough, and proves nothing
        error = getattr(mismatch, "error", None)
        if error is not None and simcuda.classify(error) == simcuda.MISMATCH:
            text = (str(mismatch).removeprefix("Your function ").removeprefix("Your class ")  # as a GPU names it
                    .replace("FakeTensorDeviceMismatchError", "RuntimeError")
                    .replace("SimulatedDeviceError", "TypeError"))
            # torch 2.11's fake tensors word it their own way: put it as CUDA does
            text = re.sub(r"Unhandled FakeTensor Device Propagation for [\w.]+, "
                          r"found two different devices (\S+), (\S+?)\b",
                          r"Expected all tensors to be on the same device, but found at least two devices, \1 and \2!",
                          text)
            raise Mismatch(
                f"The values are right, but {_SIMULATED} your function {text} On a GPU it fails the same way: "
                "a tensor you create has no device= argument, or something is moved to a fixed device, or a "
                "CUDA tensor goes to NumPy without .cpu()."
            ) from None
        return  # inconclusive: the simulation cannot run what the answer does (values, .item(), backward...)
    except NotAttempted:
        return
    finally:
        guard.context, guard.printed = None, printed
    behind = [x for x in simcuda.left_behind(learner_case) + simcuda.left_behind(result)
              if x not in simcuda.left_behind(reference_case)]
    if behind and expected is not _UNKNOWN:
        raise Mismatch(
            f"The values are right, but {_SIMULATED} {behind[0]} stayed on the CPU: a GPU would find it on the "
            "wrong device at the next step. Register a tensor a module needs as a buffer (register_buffer), "
            "and move every part of the state."
        )
    if expected is _UNKNOWN:
        return
    wrong = _misplaced(result, _tensors(expected))
    if wrong:
        item, a, e = wrong
        raise Mismatch(
            f"The values are right, but {_SIMULATED} {item} came back on {a.device}, not {e.device}: a tensor "
            "you create lands on the default device unless you give it the inputs' device."
        )


@contextlib.contextmanager
def _quietly(sim: simcuda.Simulation) -> Any:
    """The simulation, with torch's warnings about fake tensors silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with sim:
            yield


_UNKNOWN = object()  # the reference could not run in the simulation: only the answer's own errors count


def _on_meta(exercise: Exercise, guard: _Guarded, trial: int) -> None:
    """The run on ``meta`` where this torch cannot simulate CUDA."""
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
        return  # an operation meta cannot run (data-dependent, .item(), LAPACK): inconclusive
    except NotAttempted:
        return
    wrong = _misplaced(result, expected_tensors)
    if wrong:
        item, a, e = wrong
        raise Mismatch(
            f"The values are right here, but with the inputs on the 'meta' device (a stand-in for a "
            f"GPU) {item} came back on {a.device}: a tensor you create lands on the default device "
            "unless you give it the inputs' device."
        )


def _misplaced(result: Any, expected: list[Any]) -> tuple[str, Any, Any] | None:
    """The first tensor of ``result`` on another device than its twin in ``expected``: (how to name it, it, the
    twin); None when every one matches, or when the two hold different numbers of tensors (another check's job)."""
    got = _tensors(result)
    if len(got) != len(expected):
        return None
    for i, (a, e) in enumerate(zip(got, expected, strict=True)):
        if a.device != e.device:
            return ("your result" if len(got) == 1 else f"tensor {i} of your result"), a, e
    return None
