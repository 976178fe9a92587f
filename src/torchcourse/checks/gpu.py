"""Exercises of chapter 05 · GPU (``exercises/05_gpu.ipynb``).

Several answers here cannot be judged by comparing a returned tensor alone: a device bug is
invisible on a CPU-only machine, a training state is a model and an optimizer, a timing function
returns a number that varies run to run, and an all-reduce needs other ranks. :class:`GpuExercise`
adds what they need to the core :class:`Exercise`: an extra run on the ``meta`` device (a second
device every machine has, standing in for a GPU), and a ``judge`` that checks a case its own way.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..devices import move_to
from ._gpu_allreduce import _grads, _judge_allreduce, average_gradients
from ._gpu_calls import _NORM_CASES, _NORM_FORBIDS, _NORM_MISCONCEPTIONS, _judge_norms, _rows_case, row_norms_batched
from ._gpu_dcp import _dcp_case, _judge_resume, resume
from ._gpu_oom import _judge_oom, _oom_case, _Step, largest_batch
from ._gpu_timing import SimulatedDevice, _judge_timing, _timing_case, time_call  # noqa: F401 - 05.2 and 05.6 import SimulatedDevice from here
from .core import (
    Case,
    Chapter,
    Exercise,
    Mismatch,
    call_answer,
    clone_case,
    compare,
    describe,
    warm_up_meta,
)
from .core import randint as _randint
from .core import uniform as _uniform

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
    k = _randint(generator, 1, n)
    shown, hidden = order[:k], order[k:]  # never all: some GPUs are always hidden
    kind = _randint(generator, 0, 4)
    if kind == 2:  # an entry that names no GPU ends the list: the GPUs listed after it stay hidden
        bad = "-1" if _randint(generator, 0, 2) else str(n + _randint(generator, 0, 3))
        return ",".join(map(str, [*shown, bad, *hidden])), n
    if kind == 3:  # a GPU listed twice hides every GPU
        return ",".join(map(str, [*shown, shown[_randint(generator, 0, k)], *hidden[:1]])), n
    return ",".join(map(str, shown)), n


def _cuda_visible_order(visible: str, n_physical: int) -> list[int]:
    """The physical GPUs a process sees, in cuda:N order, as CUDA reads ``CUDA_VISIBLE_DEVICES`` (lesson 05.3)."""
    shown: list[int] = []
    for part in visible.split(","):
        try:
            gpu = int(part)
        except ValueError:  # a word or an empty entry names no GPU
            break
        if gpu in shown:  # a GPU listed twice: CUDA sees no GPU at all
            return []
        if not 0 <= gpu < n_physical:  # the first entry that names no GPU ends the list
            break
        shown.append(gpu)
    return shown


def logical_indices(visible: str, n_physical: int) -> list[int]:
    shown = _cuda_visible_order(visible, n_physical)
    return [shown.index(gpu) if gpu in shown else -1 for gpu in range(n_physical)]


def _sorted_indices(visible: str, n_physical: int) -> list[int]:
    shown = sorted(_cuda_visible_order(visible, n_physical))
    return [shown.index(gpu) if gpu in shown else -1 for gpu in range(n_physical)]


def _skips_invalid(visible: str, n_physical: int) -> list[int]:
    """Every valid entry kept, invalid ones skipped: the list does not end at the first invalid entry."""
    shown = [int(p) for p in visible.split(",") if p.strip().lstrip("-").isdigit() and 0 <= int(p) < n_physical]
    if len(set(shown)) < len(shown):
        shown = []
    return [shown.index(gpu) if gpu in shown else -1 for gpu in range(n_physical)]


def _ignores_repeats(visible: str, n_physical: int) -> list[int]:
    """A repeated GPU counted once (its first position), instead of hiding every GPU."""
    shown: list[int] = []
    for part in visible.split(","):
        if not part.strip().lstrip("-").isdigit() or not 0 <= int(part) < n_physical:
            break
        if int(part) not in shown:
            shown.append(int(part))
    return [shown.index(gpu) if gpu in shown else -1 for gpu in range(n_physical)]


q4 = chapter.exercise(
    "q4",
    "Which cuda:N is physical GPU k?",
    points=1,
    reference=logical_indices,
    inputs=_visible,
    on=["cpu"],
    # nothing visible, a single GPU, all of them reordered, an invalid entry (negative, then too large), a repeat
    cases=[("", 3), ("0", 1), ("2,0,1", 3), ("2,-1,0", 4), ("1,5,0", 4), ("0,2,0", 3)],
    hints=[
        "With `CUDA_VISIBLE_DEVICES=3,1` the process sees two GPUs: cuda:0 is physical GPU 3 and "
        "cuda:1 is physical GPU 1, in the order listed.",
        "Read the list from the left: the first entry that names no GPU of the machine (a negative "
        "number, a number >= n_physical, an empty entry) ends it, and a GPU listed twice hides every "
        "GPU. A GPU's logical index is its position in what is left, and -1 if absent.",
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
        (
            _skips_invalid,
            "An entry that names no GPU is not skipped: it ends the list, and every GPU listed "
            "after it stays hidden.",
        ),
        (
            _ignores_repeats,
            "A GPU listed twice is not counted once: CUDA then sees no GPU at all.",
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


# --- q7 · 05.5 the all-reduce inside a DDP step (judged in _gpu_allreduce.py) ---------------------

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


# --- q8 · 05.6 a correct timing function (judged in _gpu_timing.py) ---------------------------------

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


# --- q9 · 05.10 resume from a distributed checkpoint (judged in _gpu_dcp.py) ----------------------------

q9 = _declare(
    "q9",
    "Resume from a distributed checkpoint",
    points=2,
    reference=resume,
    inputs=_dcp_case,
    judge=_judge_resume,
    on=["cpu"],
    second_device=False,  # the judge sets up what the answer needs (a checkpoint folder)
    trials=3,  # Adam with a lowered learning rate, SGD with momentum, Adam as built
    time_limit=20,
    hints=[
        "`dcp.load(state, checkpoint_id=folder)` returns nothing: it fills, in place, the tensors of the dict it is "
        "given, which must have the layout that was saved: {'model': ..., 'optim': ...}.",
        "A fresh optimizer has no state yet: `get_state_dict(model, optimizer)` (torch.distributed.checkpoint."
        "state_dict) makes it and returns both state dicts as templates to load into.",
        "After `dcp.load`, `set_state_dict(model, optimizer, model_state_dict=..., optim_state_dict=...)` puts them "
        "into the model and the optimizer (the learning rate is in the optimizer's param_groups).",
    ],
)


# --- q10 · out of memory: halve the batch until a step fits (judged in _gpu_oom.py) ----------------------

q10 = _declare(
    "q10",
    "Halve the batch until a step fits",
    points=2,
    reference=largest_batch,
    inputs=_oom_case,
    judge=_judge_oom,
    on=["cpu"],
    second_device=False,  # the steps are simulated: torch.OutOfMemoryError is raised by hand
    trials=3,  # fits somewhere below start, fits at 1 only, a bug at the size that would fit
    # nothing fits (from an odd start, and from 1), start fits at once (1, and a power of two), many halvings
    cases=[lambda d: (_Step(fits=0), 37), lambda d: (_Step(fits=0), 1), lambda d: (_Step(fits=1), 1),
           lambda d: (_Step(fits=64), 64), lambda d: (_Step(fits=3), 101)],
    hints=[
        "`torch.OutOfMemoryError` (the same class as torch.cuda.OutOfMemoryError) is a subclass of RuntimeError: "
        "catch it by name, so that other errors still reach the caller.",
        "While an `except` block runs, the exception and its traceback are alive, and the traceback keeps the "
        "failed step's frames and their tensors. Halve and retry after the block has ended.",
        "When batch 1 fails too, a bare `raise` inside the `except` block re-raises the error being handled.",
    ],
)


# --- q11 · 05.8 fewer, bigger calls: a loop over rows as batched calls (judged in _gpu_calls.py) ---------------

q11 = _declare(
    "q11", "Fewer, bigger calls: the norms of many rows", points=1,
    reference=row_norms_batched,
    inputs=_rows_case,
    judge=_judge_norms,
    trials=2,  # float32, then float64; the cases: one row (of one value, of many), 300 rows, float64 rows of one value
    cases=_NORM_CASES,
    forbids=_NORM_FORBIDS,  # stay in torch: no .item(), .tolist() or NumPy
    misconceptions=_NORM_MISCONCEPTIONS,
    hints=["`torch.stack(rows)` makes one (k, n) tensor of the k rows, in one call: row i is `stacked[i]`.",
           "A reduction with `dim=` works along that dimension for every row at once: one call for all k rows "
           "(`torch.linalg.vector_norm` squares, sums and takes the root)."],
)
