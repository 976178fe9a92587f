"""Exercises of chapter 05 · GPU (``exercises/05_gpu.ipynb``).

Several answers here cannot be judged by comparing a returned tensor alone: a device bug is
invisible on a CPU-only machine, a training state is a model and an optimizer, a timing function
returns a number that varies run to run, and an all-reduce needs other ranks. :class:`GpuExercise`
adds what they need to the core :class:`Exercise`: an extra run on the ``meta`` device (a second
device every machine has, standing in for a GPU), and a ``judge`` that checks a case its own way.
"""

from __future__ import annotations

import contextlib
import copy
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..devices import move_to
from .core import (
    Case,
    Chapter,
    Exercise,
    Mismatch,
    call_answer,
    clone_case,
    compare,
    describe,
    same_storage,
    warm_up_meta,
)
from .core import randint as _randint

chapter = Chapter("05_gpu", "GPU")

Judge = Callable[[Callable[..., Any], Case], None]


@dataclass
class GpuExercise(Exercise):
    """An exercise judged by a custom function, or with a strict run on the meta device.

    The core framework already runs every exercise once more on ``meta`` and treats an operation
    meta cannot run as inconclusive. ``meta=True`` is stricter, for an exercise whose statement
    promises "any device": any failure there, where the reference runs, is wrong.
    """

    judge: Judge | None = None
    meta: bool = False

    def _check_case(self, answer: Callable[..., Any], case: Case) -> None:
        if self.judge is None:
            super()._check_case(answer, case)
        else:
            self.judge(answer, case)
        if self.meta:
            _check_on_meta(answer, case)


def _declare(id: str, title: str, **options: Any) -> GpuExercise:  # noqa: A002
    """Declare a :class:`GpuExercise` of this chapter (``Chapter.exercise`` makes plain ones)."""
    return chapter.register(GpuExercise(chapter, id, title, **options))


def _check_on_meta(answer: Callable[..., Any], case: Case) -> None:
    """Run the answer once more with its tensors on the meta device: it must stay there, error-free."""
    warm_up_meta()
    try:
        result = answer(*move_to(case, "meta"))
    except Exception as error:
        raise Mismatch(
            "The values are right here, but your function fails when its input lives on another device "
            f"(tested on the 'meta' device, which stands in for a GPU): {type(error).__name__}: "
            f"{str(error).splitlines()[0]}. A tensor you create has no device= argument, or you "
            "move something to a fixed device."
        ) from None
    if isinstance(result, torch.Tensor) and result.device.type != "meta":
        raise Mismatch(
            f"With the input on the 'meta' device your result came back on {result.device}: the data moved to the "
            "constants' device, not the constants to the data's."
        )


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return float(torch.empty(()).uniform_(low, high, generator=generator))


# --- q1 · 05.1/05.2 device-agnostic code: a device-mismatch bug -------------------------------


def _images(
    generator: torch.Generator, device: str
) -> tuple[torch.Tensor, list[float], list[float]]:
    n, h, w = _randint(generator, 1, 4), _randint(generator, 2, 6), _randint(generator, 2, 6)
    images = torch.rand(n, 3, h, w, generator=generator).to(device)
    mean = [round(_uniform(generator, 0.3, 0.6), 3) for _ in range(3)]
    std = [round(_uniform(generator, 0.1, 0.3), 3) for _ in range(3)]
    return images, mean, std


def normalize(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - mean_t) / std_t


q1 = _declare(
    "q1",
    "Fix a device-mismatch bug",
    points=1,
    reference=normalize,
    inputs=_images,
    meta=True,
    hints=[
        "`torch.tensor(mean)` is created on the CPU. Subtracting it from a CUDA tensor raises "
        "'Expected all tensors to be on the same device'.",
        "Give the constants the images' device (and dtype): `torch.tensor(mean, "
        "device=images.device, "
        "dtype=images.dtype)`. Never write 'cuda' in the function.",
    ],
    misconceptions=[
        (
            lambda images, mean, std: (
                (images - torch.tensor(std).view(1, -1, 1, 1))
                / torch.tensor(mean).view(1, -1, 1, 1)
            ),
            "You swapped mean and std: you subtracted the standard deviation and divided by the mean.",
        ),
        (
            lambda images, mean, std: (
                (images - torch.tensor(mean).view(1, -1, 1, 1))
                * torch.tensor(std).view(1, -1, 1, 1)
            ),
            "You multiplied by the standard deviation; normalising divides by it.",
        ),
    ],
)


# --- q2 · 05.2 to NumPy: .detach() and .cpu() -----------------------------------------------------


def _grad_tensor(generator: torch.Generator, device: str) -> tuple[torch.Tensor]:
    shape = (_randint(generator, 1, 5), _randint(generator, 1, 5))
    return (torch.randn(shape, generator=generator).to(device).requires_grad_(),)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def _judge_numpy(answer: Callable[..., Any], case: Case) -> None:
    learner = clone_case(case)
    result = call_answer(answer, *learner)
    if not isinstance(result, np.ndarray):
        raise Mismatch(
            f"Expected a NumPy array (numpy.ndarray), got {describe(result)}."
        )
    if not learner[0].requires_grad:
        raise Mismatch(
            "You switched off requires_grad on the caller's tensor, which breaks its training: the original must be "
            "left as it was."
        )
    expected = to_numpy(*clone_case(case))
    compare(torch.from_numpy(result.copy()), torch.from_numpy(expected.copy()), "your array")


q2 = _declare(
    "q2",
    "A tensor to NumPy, from any device",
    points=1,
    reference=to_numpy,
    inputs=_grad_tensor,
    judge=_judge_numpy,
    hints=[
        "Try `tensor.numpy()` on a tensor that requires grad and read the error.",
        "NumPy arrays live in CPU memory and know nothing of autograd: `.detach()` leaves the "
        "graph, "
        "`.cpu()` copies from the GPU (and is free on the CPU).",
    ],
)


# --- q3 · 05.2 move a model and its optimizer state -----------------------------------------------


def _training_state(
    generator: torch.Generator, device: str
) -> tuple[nn.Module, torch.optim.Optimizer, Any]:
    torch_seed = _randint(generator, 0, 2**31)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed)
        model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(2):
            optimizer.zero_grad()
            model(torch.randn(5, 4)).pow(2).mean().backward()
            optimizer.step()
    # On a CPU-only machine the target is a dtype: the same .to() call, and the same trap.
    target: Any = torch.float64 if device == "cpu" else device
    return model, optimizer, target


def move_training(
    model: nn.Module, optimizer: torch.optim.Optimizer, target: Any
) -> tuple[nn.Module, Any]:
    model.to(target)  # in place: the optimizer keeps pointing at the same Parameter objects
    for state in optimizer.state.values():
        for key, value in state.items():
            if (
                isinstance(value, torch.Tensor) and key != "step"
            ):  # Adam keeps its step count on the CPU
                state[key] = value.to(target)
    return model, optimizer


def _placement(t: torch.Tensor) -> str:
    return f"{t.dtype} on {t.device.type}"


def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Every value of the training state on the CPU, for comparing."""
    values = {f"model {k}": v.detach().cpu() for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for p, state in optimizer.state.items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                moved = value.detach().cpu()
                values[f"optimizer state {key} of {names.get(id(p), '?')}"] = (
                    moved.double() if key == "step" else moved
                )
    return values


def _judge_move(answer: Callable[..., Any], case: Case) -> None:
    learner, reference = copy.deepcopy(case), copy.deepcopy(case)
    result = call_answer(answer, *learner)
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise Mismatch(f"Return the pair (model, optimizer); got {describe(result)}.")
    model, optimizer = result
    if not isinstance(model, nn.Module) or not isinstance(optimizer, torch.optim.Optimizer):
        raise Mismatch(
            "Return (model, optimizer): an nn.Module and a torch.optim optimizer; got "
            f"{describe(result)}."
        )
    expected_model, expected_optimizer = move_training(*reference)
    want = _placement(next(expected_model.parameters()))
    for name, p in model.named_parameters():
        if _placement(p) != want:
            raise Mismatch(
                f"Model parameter {name} is {_placement(p)}; it should be {want}."
            )
    params = {id(p) for p in model.parameters()}
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if params != held:
        raise Mismatch(
            "The optimizer does not hold your model's parameters: it would update tensors the model no longer uses."
        )
    for name, p in model.named_parameters():
        state = optimizer.state.get(p)
        if not state:
            raise Mismatch(
                f"The optimizer lost its state (exp_avg, exp_avg_sq) for {name}: a new optimizer restarts Adam's "
                "running averages."
            )
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and key != "step" and _placement(value) != want:
                raise Mismatch(
                    f"The optimizer's state {key!r} for {name} is still {_placement(value)}; it "
                    "should be "
                    f"{want}. Module.to moves parameters and buffers only, not the optimizer's state (the 'step' "
                    "counter may stay on the CPU)."
                )
    compare(
        _snapshot(model, optimizer),
        _snapshot(expected_model, expected_optimizer),
        "your training state",
    )
    x = torch.randn(3, 4).to(next(model.parameters()))
    try:
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()
    except Exception as error:
        raise Mismatch(
            f"One more training step fails after your move: {type(error).__name__}: {error}"
        ) from None


q3 = _declare(
    "q3",
    "Move a model and its optimizer state",
    points=2,
    reference=move_training,
    inputs=_training_state,
    second_device=False,  # the judge sets up what the answer needs (a trained state, a world)
    judge=_judge_move,
    hints=[
        "`model.to(target)` converts the model in place and returns it; the optimizer's state "
        "(Adam's `exp_avg`, `exp_avg_sq`) is not part of the model and stays behind.",
        "`optimizer.state` maps each parameter to a dict of tensors: replace each tensor value by "
        "`value.to(target)`. Do not build a new optimizer: it would forget its running averages.",
    ],
)


# --- q4 · 05.3 CUDA_VISIBLE_DEVICES: physical to logical indices ----------------------------------


def _visible(generator: torch.Generator, device: str) -> tuple[str, int]:
    n = _randint(generator, 3, 9)
    order = torch.randperm(n, generator=generator).tolist()
    shown = order[: _randint(generator, 1, n)]  # never all: some GPUs are always hidden
    return ",".join(map(str, shown)), n


def logical_indices(visible: str, n_physical: int) -> list[int]:
    shown = [int(part) for part in visible.split(",") if part.strip()]
    return [shown.index(gpu) if gpu in shown else -1 for gpu in range(n_physical)]


def _sorted_indices(visible: str, n_physical: int) -> list[int]:
    shown = sorted(int(part) for part in visible.split(","))
    return [shown.index(gpu) if gpu in shown else -1 for gpu in range(n_physical)]


q4 = chapter.exercise(
    "q4",
    "Which cuda:N is physical GPU k?",
    points=1,
    reference=logical_indices,
    inputs=_visible,
    on=["cpu"],
    cases=[("", 3), ("0", 1), ("2,0,1", 3)],  # nothing visible, a single GPU, all of them reordered
    hints=[
        "With `CUDA_VISIBLE_DEVICES=3,1` the process sees two GPUs: cuda:0 is physical GPU 3 and "
        "cuda:1 is physical GPU 1, in the order listed.",
        "Split the string on commas; a GPU's logical index is its position in that list, and -1 "
        "if absent.",
    ],
    misconceptions=[
        (
            lambda visible, n: list(range(n)),
            "Physical and logical numbers differ: the process renumbers the visible GPUs from 0.",
        ),
        (
            lambda visible, n: _sorted_indices(visible, n),
            "The order of the list matters: cuda:0 is the first GPU listed, not the "
            "lowest-numbered one.",
        ),
    ],
)


# --- q5 · 05.7 mixed precision: bfloat16 autocast -------------------------------------------------


def _matmul_inputs(generator: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    n, k, m = _randint(generator, 2, 9), _randint(generator, 8, 33), _randint(generator, 2, 9)
    return torch.randn(n, k, generator=generator).to(device), torch.randn(
        m, k, generator=generator
    ).to(device)


def mixed_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
        y = x @ weight.T
    return y.to(x.dtype)


q5 = chapter.exercise(
    "q5",
    "A bfloat16 autocast region",
    points=1,
    reference=mixed_linear,
    inputs=_matmul_inputs,
    hints=[
        "`with torch.autocast(device_type=..., dtype=torch.bfloat16):` runs matmuls inside it in "
        "bfloat16.",
        "Take `device_type` from the input (`x.device.type`), not a fixed 'cuda'; convert the "
        "result "
        "back with `.to(x.dtype)` after the block.",
    ],
    misconceptions=[
        (
            lambda x, w: x @ w.T,
            "These are full float32 products: the matmul did not run in bfloat16 under autocast.",
        ),
        (
            lambda x, w: (x.half() @ w.half().T).to(x.dtype),
            "That is float16 (10 mantissa bits); the task asks for bfloat16 (8 exponent bits, 7 "
            "mantissa bits).",
        ),
    ],
)


# --- q6 · 05.5 DataParallel: how a batch is split -------------------------------------------------


def _batch_split(generator: torch.Generator, device: str) -> tuple[int, int]:
    n = _randint(generator, 3, 9)
    return _randint(generator, n + 1, 4 * n), n


def scatter_sizes(batch: int, n_devices: int) -> list[int]:
    size = -(
        -batch // n_devices
    )  # ceil: torch.chunk makes equal chunks of this size, the last smaller
    return [min(size, batch - start) for start in range(0, batch, size)]


q6 = chapter.exercise(
    "q6",
    "How DataParallel splits a batch",
    points=1,
    reference=scatter_sizes,
    inputs=_batch_split,
    on=["cpu"],
    cases=[(3, 8), (8, 4), (1, 1), (7, 7)],  # fewer samples than GPUs, an even split, one each
    hints=[
        "DataParallel scatters the batch with the semantics of `tensor.chunk(n_devices)`; try "
        "`torch.arange(6).chunk(4)` and count the chunks.",
        "chunk makes pieces of ceil(batch / n) items, the last one smaller, so it can return "
        "fewer than n.",
    ],
    misconceptions=[
        (
            lambda b, n: [b // n + (1 if i < b % n else 0) for i in range(n)],
            "That is numpy.array_split's rule (sizes differ by at most one, always n pieces). "
            "chunk uses "
            "ceil(batch / n) per piece, so some devices can get nothing.",
        ),
        (
            lambda b, n: [b // n] * n,
            "Floor division drops the remainder: every sample must go to some device.",
        ),
    ],
)


# --- q7 · 05.5 the all-reduce inside a DDP step ---------------------------------------------------


def _ensure_group() -> None:
    """A real process group of one (gloo, in this process), so dist calls work outside the check "
    "too."""
    if dist.is_available() and not dist.is_initialized():
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)


def _world_of(case: Case) -> int:
    """The size of a case's simulated world, 2 to 5 ranks (read off the case, so that it varies by trial)."""
    return 2 + case[0][0].shape[1] % 4


@contextlib.contextmanager
def _simulated_world(peers: int) -> Iterator[None]:
    """Make ``torch.distributed`` look like ``peers`` ranks; rank r holds (r+1) x rank 0's values.

    Scaling is linear, so dividing before or after the reduction, or bucketing tensors, all give
    what a real job would: the average (peers + 1) / 2 times rank 0's gradient. An asynchronous
    all_reduce (``async_op=True``) applies only when its work handle's ``wait()`` is called.
    """
    saved = {name: getattr(dist, name) for name in ("all_reduce", "get_world_size", "get_rank")}

    def all_reduce(
        tensor: torch.Tensor, op: Any = dist.ReduceOp.SUM, group: Any = None, async_op: bool = False
    ) -> Any:
        contributions = torch.stack([tensor.detach() * (r + 1) for r in range(peers)])
        if op == dist.ReduceOp.SUM:
            reduced = contributions.sum(0)
        elif op == dist.ReduceOp.AVG:
            reduced = contributions.mean(0)
        elif op == dist.ReduceOp.MAX:
            reduced = contributions.amax(0)
        elif op == dist.ReduceOp.MIN:
            reduced = contributions.amin(0)
        elif op == dist.ReduceOp.PRODUCT:
            reduced = contributions.prod(0)
        else:
            raise ValueError(f"unsupported reduce op {op}")

        def apply() -> None:
            with torch.no_grad():
                tensor.copy_(reduced)

        if async_op:
            return _PendingWork(apply)
        apply()
        return None

    dist.all_reduce = all_reduce
    dist.get_world_size = lambda group=None: peers
    dist.get_rank = lambda group=None: 0
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(dist, name, value)


class _PendingWork:
    """What all_reduce(..., async_op=True) returns: the result lands in the tensor on wait()."""

    def __init__(self, apply: Callable[[], None]) -> None:
        self._apply: Callable[[], None] | None = apply

    def wait(self, timeout: Any = None) -> bool:
        if self._apply is not None:
            self._apply, apply = None, self._apply
            apply()
        return True

    def is_completed(self) -> bool:
        return self._apply is None


def _grads(generator: torch.Generator, device: str) -> tuple[list[torch.Tensor]]:
    _ensure_group()
    n_out, n_in = _randint(generator, 2, 6), _randint(generator, 2, 6)
    return (
        [
            torch.randn(n_out, n_in, generator=generator).to(device),
            torch.randn(n_out, generator=generator).to(device),
        ],
    )


def average_gradients(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    world = dist.get_world_size()
    for grad in grads:
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # SUM works on every backend
        grad /= world
    return grads


def _judge_allreduce(answer: Callable[..., Any], case: Case) -> None:
    peers = _world_of(case)
    learner, reference = clone_case(case), clone_case(case)
    with _simulated_world(peers):
        result = call_answer(answer, *learner)
    with _simulated_world(peers):
        expected = average_gradients(*reference)
    try:
        compare(result, expected, "your gradients")
    except Mismatch as mismatch:
        if isinstance(result, (list, tuple)) and len(result) == len(expected):
            for got, local, want in zip(result, case[0], expected, strict=False):
                if (
                    isinstance(got, torch.Tensor)
                    and got.layout == torch.strided
                    and got.shape == want.shape
                    and got.device == want.device
                    and got.dtype == want.dtype
                ):
                    for factor, feedback in _allreduce_mistakes(peers):
                        if torch.allclose(got.detach(), local * factor, atol=1e-5):
                            raise Mismatch(feedback) from None
                    break
        raise mismatch from None
    for i, (got, given) in enumerate(zip(result, learner[0], strict=True)):
        if not same_storage(got, given):
            raise Mismatch(
                f"The values are right, but gradient {i} is a new tensor: the optimizer reads "
                "p.grad, and it still holds the old values (all_reduce works in place)."
            )


def _allreduce_mistakes(peers: int) -> tuple[tuple[float, str], ...]:
    total = peers * (peers + 1) / 2
    return (
        (1.0, "Your gradients are unchanged: each rank still has only its own, because the asynchronous all_reduce "
              "had not landed (it lands at its handle's wait())."),
        (1 / peers, "Your gradients are your own divided by the world size: the asynchronous all_reduce had not "
                    "landed (it lands at its handle's wait())."),
        (total, "Your gradients are the sum over the ranks, not their average."),
        (total / 3, "Your gradients are divided by 3 whatever the world size: the check's worlds have "
                    "other sizes too."),
        (total / peers**2, "You divided twice (or by the world size squared)."),
    )


q7 = _declare(
    "q7",
    "Average gradients across ranks by hand",
    points=2,
    reference=average_gradients,
    inputs=_grads,
    second_device=False,  # the judge sets up what the answer needs (a trained state, a world)
    judge=_judge_allreduce,
    hints=[
        "`dist.all_reduce(t)` replaces `t`, in place, by the sum of `t` over all ranks.",
        "DDP averages: after the sum, divide by `dist.get_world_size()`. Keep the same tensors "
        "(in place) so that `p.grad` is what the optimizer sees.",
    ],
)


# --- q8 · 05.6 a correct timing function ----------------------------------------------------------


class SimulatedDevice:
    """An asynchronous device like a GPU: ``run()`` queues work and returns; ``sync()`` waits.

    The first run is slow (caches and autotuning warm up), and every third run is an outlier
    (another process took the device), so only a warmed-up, synchronised median gets it right.
    """

    def __init__(
        self, seconds: float, *, warmup_seconds: float = 0.04, outlier_seconds: float = 0.06
    ) -> None:
        self.seconds, self.warmup_seconds, self.outlier_seconds = (
            seconds,
            warmup_seconds,
            outlier_seconds,
        )
        self.events: list[str] = []
        self.runs = 0
        self._busy_until = 0.0

    def run(self) -> None:
        """Queue one call of the workload and return immediately (a kernel launch)."""
        if self.runs == 0:
            cost = self.warmup_seconds
        else:
            cost = self.seconds + (self.outlier_seconds if self.runs % 3 == 2 else 0.0)
        self._busy_until = max(time.perf_counter(), self._busy_until) + cost
        self.runs += 1
        self.events.append("run")

    def pending(self) -> bool:
        """Is queued work still running (``not torch.cuda.Event.query()``)?"""
        return self._busy_until > time.perf_counter()

    def sync(self) -> None:
        """Wait until every queued call has finished (torch.cuda.synchronize)."""
        wait = self._busy_until - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        self.events.append("sync")


def _timing_case(
    generator: torch.Generator, device: str
) -> tuple[Callable[[], None], Callable[[], None], int]:
    simulated = SimulatedDevice(_uniform(generator, 0.008, 0.012))
    return simulated.run, simulated.sync, _randint(generator, 5, 8)


def time_call(fn: Callable[[], Any], sync: Callable[[], None], repeats: int) -> float:
    fn()  # warm-up: the first calls pay for caches, allocation and autotuning
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()  # wait for the work itself, not just its launch
        times.append(time.perf_counter() - start)
    return statistics.median(times)  # robust to the odd slow run


def _judge_timing(answer: Callable[..., Any], case: Case) -> None:
    fn, sync, repeats = copy.deepcopy(case)
    device: SimulatedDevice = fn.__self__
    result = call_answer(answer, fn, sync, repeats)
    if isinstance(result, bool) or not isinstance(result, (int, float)):
        raise Mismatch(
            f"Return the median time in seconds as a Python float; got {describe(result)}."
        )
    if not math.isfinite(result) or result <= 0:
        raise Mismatch(f"A time must be positive and finite; got {result!r}.")
    if device.runs < repeats:
        raise Mismatch(f"You called fn() {device.runs} times, fewer than `repeats` ({repeats}).")
    if device.runs == repeats:
        raise Mismatch(
            "No warm-up: every call was timed, including the first, which pays for caches and autotuning."
        )
    first_timed = [i for i, e in enumerate(device.events) if e == "run"][device.runs - repeats]
    if "sync" not in device.events[:first_timed]:
        raise Mismatch(
            "You start timing while the warm-up work may still be queued: nothing waits for it to finish before the "
            "first timed call."
        )
    true = device.seconds
    if result < 0.6 * true:
        raise Mismatch(
            "Your time is far shorter than the work takes: you measured only the launch. The device runs "
            "asynchronously, so the clock was read before the work had finished."
        )
    if result > 2.2 * true and _slow_under_load(answer, case, result, true):
        raise Mismatch(
            "Your time is pulled up by a few slow runs (or includes the warm-up): it is not the median of the "
            "per-call times."
        )


def _slow_under_load(answer: Callable[..., Any], case: Case, result: float, true: float) -> bool:
    """Is a time that looks too long still too long when judged against the reference, timed now under the
    same load? A loaded machine oversleeps every wait: the reference and a second try of the answer are
    timed again, and only a time above 2.2 times the device's and 1.6 times the reference's fails (the
    mean of a few runs with outliers stays far above the median however loaded the machine is)."""
    reference = time_call(*copy.deepcopy(case))
    again = call_answer(answer, *copy.deepcopy(case))
    best = min(result, again) if isinstance(again, (int, float)) and not isinstance(again, bool) else result
    return best > 2.2 * true and best > 1.6 * reference


q8 = _declare(
    "q8",
    "A correct timing function",
    points=2,
    reference=time_call,
    inputs=_timing_case,
    judge=_judge_timing,
    on=["cpu"],
    trials=2,
    hints=[
        "On a GPU, `fn()` only queues work: read the clock after `sync()` "
        "(torch.cuda.synchronize), "
        "or you time the launch.",
        "Warm up first (call fn() and sync() once before timing), time each call separately, and "
        "return the median: a few slow runs must not move it.",
    ],
)
