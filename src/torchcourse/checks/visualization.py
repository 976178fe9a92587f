"""Exercises of chapter 06 · Visualization (``exercises/06_visualization.ipynb``).

Several answers here are not a returned tensor: a run written to disk, a progress bar, a meter
object. :class:`JudgedExercise` lets such an exercise judge a case its own way (``judge``), reading
the event files back with TensorBoard's ``EventAccumulator``, watching the bar's ``set_postfix``
calls, or driving the meter through random ``add``/``value``/``reset`` sequences (those two judges live in
:mod:`._visualization_loops`). tensorboard and tqdm are imported when a check runs, not when the module is
imported.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import numbers
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._visualization_files import folder_changes, snapshot, stray_file, value_change
from ._visualization_files import scalars as _scalars
from ._visualization_loops import (
    AverageValueMeter,
    _judge_bar,
    _judge_meter,
    _losses,
    _new_meter,
    _operations,
    _uniform,
    make_meter,
    train_with_bar,
)
from .core import Case, Chapter, Exercise, JudgedExercise, Mismatch, Uses, call_answer, describe
from .core import randint as _randint

chapter = Chapter("06_visualization", "Visualization")


def _declare(id: str, title: str, **options: Any) -> JudgedExercise:  # noqa: A002
    return chapter.register(JudgedExercise(chapter, id, title, **options))


def _scratch(prefix: str) -> Path:
    """A fresh folder for one case's event files, inside the session's temporary folder."""
    from ..lesson import workdir

    return Path(tempfile.mkdtemp(prefix=prefix, dir=workdir()))


def _read(logdir: Path) -> Any:
    from ..tensorboard import read_run

    return read_run(logdir)


# --- q1 · 06.1 the step of the best validation loss, read back from the event files ---------------


def _training_run(generator: torch.Generator, device: str, trial: int) -> tuple[str, str]:
    """A random run; from the second trial on it was resumed once (two event files) and its folder also
    holds a file that is not an event file, under a drawn name."""
    from torch.utils.tensorboard import SummaryWriter

    logdir = _scratch("q1-run-")
    every, epochs = _randint(generator, 2, 6), _randint(generator, 6, 16)
    best = _randint(generator, epochs // 2 + 2, epochs)  # in the second half, never the last: the worst is the first
    other = best - 1 - _randint(generator, 0, 2)  # the train loss bottoms out elsewhere (a wrong tag shows)
    resumed = _randint(generator, 2, epochs) if trial % 2 else epochs + 1  # the first epoch of the second file
    for first, last in ((1, resumed - 1), (resumed, epochs)):
        if first > last:
            continue
        writer = SummaryWriter(logdir)
        try:
            for epoch in range(first, last + 1):
                step = epoch * every
                train = 0.3 + 0.02 * (epoch - other) ** 2 + _uniform(generator, 0.0, 0.005)
                val = 0.5 + 0.03 * (epoch - best) ** 2 + _uniform(generator, 0.0, 0.02)
                writer.add_scalar("loss/train", train, global_step=step)
                writer.add_scalar("loss/val", val, global_step=step)
                writer.add_scalar("lr", 0.1 * 0.9**epoch, global_step=step)
        finally:
            writer.close()
    if trial:
        stray_file(logdir, generator)
    return str(logdir), "loss/val"


def _resumed_run(device: str) -> tuple[str, str]:
    """A run resumed twice (three event files in one folder, the best step in the middle one), whose
    tags are not the random runs' names: reading one event file, or one fixed tag, shows. Its folder also
    holds a checkpoint folder, which is no event file either."""
    from torch.utils.tensorboard import SummaryWriter

    logdir = _scratch("q1-resumed-")
    for first, last in ((1, 4), (5, 8), (9, 11)):
        writer = SummaryWriter(logdir)
        try:
            for epoch in range(first, last + 1):
                writer.add_scalar("train/nll", 0.2 + 0.01 * (epoch - 10) ** 2, global_step=3 * epoch + 1)
                writer.add_scalar("valid/nll", 0.4 + 0.02 * (epoch - 6) ** 2, global_step=3 * epoch + 1)
        finally:
            writer.close()
    (logdir / "checkpoints").mkdir()
    (logdir / "checkpoints" / "epoch-6.pt").write_bytes(b"not an event file\n")
    return str(logdir), "valid/nll"


def best_step(logdir: str, tag: str) -> int:
    from ..tensorboard import read_run

    events = read_run(logdir).Scalars(tag)
    return min(events, key=lambda e: e.value).step


def _judge_best_step(answer: Callable[..., Any], case: Case) -> None:
    before = snapshot(Path(case[0]))
    result = call_answer(answer, *case)
    change = folder_changes(before, snapshot(Path(case[0])), may_add=False)
    if change:
        raise Mismatch(f"Your function changed the run folder `logdir`, which it only had to read: it {change}. "
                       "The caller's files must be left as they were.")
    expected = best_step(*case)
    if isinstance(result, torch.Tensor) or not isinstance(result, numbers.Integral) or isinstance(result, bool):
        raise Mismatch(f"Return the step as a Python int; got {describe(result)}.")
    result = int(result)
    if result == expected:
        return
    events = _read(Path(case[0])).Scalars(case[1])
    steps, values = [e.step for e in events], [e.value for e in events]
    best_index = values.index(min(values))
    if result == best_index:
        raise Mismatch(
            "You returned the position of the best value in the list, not its step: runs log every few steps, so "
            "the two differ."
        )
    if result == steps[values.index(max(values))]:
        raise Mismatch("That is the step of the largest value: the best loss is the smallest.")
    if result == max(steps):  # the latest step, whatever order the event files were read in
        raise Mismatch("That is the last step logged, not the one whose value is smallest.")
    train = _scalars(Path(case[0]), "loss/train") or []
    if train and result == min(train, key=lambda sv: sv[1])[0]:
        raise Mismatch(f"You read another tag, not the one the `tag` argument names ({case[1]!r}).")
    if result in steps:
        raise Mismatch("That step was logged, but its value is not the smallest.")
    raise Mismatch("No event of that tag was logged at that step.")


q1 = _declare(
    "q1",
    "The step of the best validation loss",
    points=1,
    reference=best_step,
    inputs=_training_run,
    judge=_judge_best_step,
    cases=[_resumed_run],
    on=["cpu"],
    hints=[
        "`tb.read_run(logdir)` (or `EventAccumulator(logdir, size_guidance={'scalars': 0}).Reload()`) "
        "reads the run; `.Scalars(tag)` is a list of events with `.step` and `.value`.",
        "The run logs every few steps, so the index of the best event is not its step: return `event.step` "
        "of the event with the smallest `.value` (`min(events, key=...)`).",
    ],
)


# --- q2 · 06.1/06.4 log a run so that TensorBoard shows train and val in one chart --------------


def _history(generator: torch.Generator, device: str, trial: int) -> tuple[str, list[dict[str, float]]]:
    """A history, and a log folder: empty (the first trial), not made yet (the second: the writer makes it),
    or holding a file of the caller's under a drawn name (the third on: the run is written next to it)."""
    first = _randint(generator, 1, 4)
    epochs = _randint(generator, 3, 9)
    history = []
    for epoch in range(first, first + epochs):
        history.append(
            {
                "epoch": epoch,
                "train_loss": round(2.0 / epoch + _uniform(generator, 0.0, 0.1), 4),
                "val_loss": round(2.2 / epoch + _uniform(generator, 0.0, 0.2), 4),
                "lr": round(0.1 * 0.5 ** (epoch // 3), 6),
            }
        )
    logdir = _scratch("q2-log-")
    if trial == 1:
        logdir = logdir / "runs" / f"epochs-{first}-{first + epochs - 1}"
    elif trial >= 2:
        stray_file(logdir, generator)
    return str(logdir), history


def log_history(logdir: str, history: list[dict[str, float]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(logdir) as writer:
        for row in history:
            epoch = row["epoch"]
            writer.add_scalars("loss", {"train": row["train_loss"], "val": row["val_loss"]}, global_step=epoch)
            writer.add_scalar("lr", row["lr"], global_step=epoch)


def _float32(value: float) -> float:
    return float(torch.tensor(value, dtype=torch.float32))


@contextlib.contextmanager
def _writers_opened() -> Iterator[list[Any]]:
    """Every ``SummaryWriter`` created inside the block (subclasses too), to see afterwards which were closed."""
    from torch.utils.tensorboard import SummaryWriter

    opened: list[Any] = []
    original = SummaryWriter.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        opened.append(self)

    SummaryWriter.__init__ = init
    try:
        yield opened
    finally:
        SummaryWriter.__init__ = original


def _judge_history(answer: Callable[..., Any], case: Case) -> None:
    logdir, history = case
    given = (logdir, [dict(row) for row in history])
    kept = snapshot(Path(logdir))
    with _writers_opened() as opened:
        try:
            call_answer(answer, *given)
        finally:
            still_open = [writer for writer in opened if writer.all_writers is not None]  # close() sets it to None
            for writer in still_open:
                writer.close()  # the session as it was: no writer thread or open file left behind
    if still_open:
        raise Mismatch(
            "Your function returned with its SummaryWriter still open: events still in its queue may never reach "
            "the file, and the file stays open."
        )
    changed = value_change("history", history, given[1])
    if changed:
        raise Mismatch(f"Your function changed its input: {changed}. The caller's history must be left as it was.")
    change = folder_changes(kept, snapshot(Path(logdir)), may_add=True)
    if change:
        raise Mismatch(f"Your function changed what `logdir` held before it ran: it {change}. Write the run next "
                       "to the files already there, and leave them as they were.")
    root = Path(logdir)
    if not any(root.rglob("events.out.tfevents.*")):
        raise Mismatch(
            "No event file was written under logdir: the writer wrote to another folder, or was never closed."
        )
    epochs = [row["epoch"] for row in history]
    wanted = [
        (root / "loss_train", "loss", "train_loss"),
        (root / "loss_val", "loss", "val_loss"),
        (root, "lr", "lr"),
    ]
    for folder, tag, key in wanted:
        got = _scalars(folder, tag)
        if got is None:
            where = "the run itself" if folder == root else f"the sub-run {folder.name!r}"
            raise Mismatch(f"{where.capitalize()} has no scalar {tag!r}: {key} was not logged there.")
        got = sorted(got, key=lambda point: point[0])  # a chart is its points by step, whatever order they came in
        steps = [step for step, _ in got]
        if steps != epochs:
            if steps == list(range(len(epochs))):
                raise Mismatch(
                    f"{key} is logged at steps 0, 1, 2..., not at the epoch numbers."
                )
            raise Mismatch(f"{key} is logged at the wrong steps (or twice): one point per epoch, at its epoch.")
        values = [_float32(value) for _, value in got]  # TensorBoard keeps float32 (unless double_precision=True)
        if values != [_float32(row[key]) for row in history]:
            raise Mismatch(f"The steps of {key} are right but not its values: they are not the history's {key!r} of "
                           "each epoch.")


q2 = _declare(
    "q2",
    "Log train and val losses in one chart",
    points=2,
    reference=log_history,
    inputs=_history,
    judge=_judge_history,
    on=["cpu"],
    hints=[
        "`writer.add_scalars('loss', {'train': a, 'val': b}, global_step)` draws both curves in one chart; "
        "TensorBoard stores each key as a run of its own (the folders `loss_train` and `loss_val`).",
        "Use `row['epoch']` as `global_step`, log `lr` with `add_scalar`, and close the writer "
        "(`with SummaryWriter(logdir) as writer:` does it for you).",
    ],
)


# --- q3 · 06.2/06.4 an image grid with a given number of rows ------------------------------------


def _batch(generator: torch.Generator, device: str) -> tuple[torch.Tensor, int]:
    while True:
        per_row = _randint(generator, 2, 7)
        n = _randint(generator, per_row + 1, 4 * per_row + 1)
        rows = math.ceil(n / per_row)
        if rows != per_row and math.ceil(n / math.ceil(n / rows)) == rows:
            break
    channels = 1 if _randint(generator, 0, 2) else 3
    h, w = _randint(generator, 3, 7), _randint(generator, 3, 7)
    return torch.rand(n, channels, h, w, generator=generator).to(device), rows


def grid_with_rows(images: torch.Tensor, rows: int) -> torch.Tensor:
    import torchvision

    per_row = math.ceil(len(images) / rows)  # make_grid's nrow is the number of images in each row
    return torchvision.utils.make_grid(images, nrow=per_row, padding=1, pad_value=1.0)


def _make_grid(images: torch.Tensor, **options: Any) -> torch.Tensor:
    import torchvision

    return torchvision.utils.make_grid(images, **options)


q3 = chapter.exercise(
    "q3",
    "An image grid with a given number of rows",
    points=1,
    reference=grid_with_rows,
    inputs=_batch,
    trials=4,
    cases=[  # N / rows with a small remainder (not a half): rounding to the nearest is not rounding up
        (torch.linspace(0.0, 1.0, 10 * 3 * 4 * 5).view(10, 3, 4, 5), 3),
        (torch.linspace(1.0, 0.0, 17 * 1 * 3 * 4).view(17, 1, 3, 4), 4),
    ],
    hints=[
        "`torchvision.utils.make_grid(images, nrow=k)` puts **k images in each row**; it does not set the "
        "number of rows.",
        "For `rows` rows of `len(images)` images you need `ceil(len(images) / rows)` per row; add "
        "`padding=1, pad_value=1.0` for the white 1-pixel border.",
    ],
    misconceptions=[
        (
            lambda images, rows: _make_grid(images, nrow=rows, padding=1, pad_value=1.0),
            "`nrow` is the number of images in each row, not the number of rows (the notes' visdom comment says "
            "otherwise): yours is the number of rows.",
        ),
        (
            lambda images, rows: _make_grid(images, nrow=math.ceil(len(images) / rows), padding=1),
            "The layout is right but the padding is black, not white.",
        ),
        (
            lambda images, rows: _make_grid(images, nrow=math.ceil(len(images) / rows), pad_value=1.0),
            "The layout is right but the border is make_grid's default 2 pixels, not 1.",
        ),
    ],
)


# --- q4 · 06.2 capture a layer's output with a forward hook --------------------------------------


class _Net(nn.Module):
    """A small convolutional net; its layers have names to ask for."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.conv2(self.act(self.conv1(x)))))
        return self.head(x.flatten(1))


def _model_and_batch(generator: torch.Generator, device: str) -> tuple[nn.Module, str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_randint(generator, 0, 2**31))
        model = _Net().to(device)
    layer = ("conv1", "conv2", "pool", "head")[_randint(generator, 0, 4)]
    x = torch.randn(_randint(generator, 1, 5), 1, 8, 8, generator=generator).to(device)
    return model, layer, x


def capture(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    captured = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, inputs, output: captured.append(output))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return captured[0]


_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _no_hooks_left(result: Any, case: Case) -> str | None:
    model = case[0]
    if any(getattr(module, kind, None) for module in model.modules() for kind in _HOOKS):
        return (
            "The values are right, but a hook is still registered on the model: every later forward pass will run it."
        )
    if isinstance(result, torch.Tensor) and result.requires_grad:
        return "The values are right, but the result is still attached to the graph (requires_grad is True)."
    return None


def _global_hooks() -> dict[str, set[int]]:
    """The handles of the hooks registered for every module (``register_module_forward_hook`` and its kin), and
    of their flags (``_global_forward_hooks_with_kwargs``...), per registry of ``torch.nn.modules.module``."""
    from torch.nn.modules import module

    registries = {name: getattr(module, name) for name in dir(module) if name.startswith("_global_")}
    return {name: set(registry) for name, registry in registries.items() if isinstance(registry, dict)}


def _remove_hooks_since(before: dict[str, set[int]]) -> bool:
    """Remove the global hooks registered since ``before`` (a handle's entries in every registry); whether a hook
    was among them."""
    from torch.nn.modules import module

    found = False
    for name, handles in _global_hooks().items():
        for handle in handles - before.get(name, set()):
            getattr(module, name).pop(handle, None)
            found = found or name.endswith("_hooks")
    return found


class _HookExercise(Exercise):
    """q4's exercise: a hook the answer registers for every module (a global hook) and leaves behind runs in
    every later forward pass of every model, this one included: it is named, and removed."""

    def _check_case(self, answer: Callable[..., Any], case: Case) -> None:
        before = _global_hooks()
        try:
            super()._check_case(answer, case)
        finally:
            left = _remove_hooks_since(before)
        if left:
            raise Mismatch("The values are right, but a hook registered for every module (a global one, such as "
                           "register_module_forward_hook makes) is still registered: every later forward pass, of "
                           "every model, will run it.")


def _layer_input(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    captured = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, inputs, output: captured.append(inputs[0]))
    with torch.no_grad():
        model(x)
    handle.remove()
    return captured[0]


def _model_output(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


q4 = chapter.register(_HookExercise(
    chapter,
    "q4",
    "A layer's output, captured with a forward hook",
    points=1,
    reference=capture,
    inputs=_model_and_batch,
    trials=4,
    properties=[_no_hooks_left],
    requires=[Uses("torch.nn.Module.register_forward_hook", "torch.nn.modules.module.register_module_forward_hook",
                   says="use a forward hook")],
    hints=[
        "`model.get_submodule(layer)` finds the layer by name; `layer.register_forward_hook(fn)` calls "
        "`fn(module, inputs, output)` every time that layer runs.",
        "Store `output` from inside the hook, run the model once under `torch.no_grad()`, then remove the "
        "hook with the handle `register_forward_hook` returned.",
    ],
    misconceptions=[
        (_model_output, "That is the model's output, not what the named layer produced."),
        (_layer_input, "That is the layer's input (`inputs[0]`), not its output."),
    ],
))


# --- q5 · 06.2/06.5 a confusion matrix from predictions ------------------------------------------


def _predictions(generator: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    classes = _randint(generator, 3, 8)
    n = _randint(generator, 6, 60)
    present = classes - _randint(generator, 0, 2)  # about half the cases never see the last class
    target = torch.randint(0, present, (n,), generator=generator)
    noise = torch.randint(0, present, (n,), generator=generator)
    predicted = torch.where(torch.rand(n, generator=generator) < 0.6, target, noise)
    return predicted.to(device), target.to(device), classes


def confusion_matrix(predicted: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    pairs = target * num_classes + predicted  # row: true class, column: predicted class
    return torch.bincount(pairs, minlength=num_classes * num_classes).view(num_classes, num_classes)


def _counted_in_place(predicted: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The same matrix, which fake tensors can compute (bincount's output size depends on values): with it as the
    reference, the simulated-GPU run proves where an answer's matrix lands."""
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=target.device)
    return matrix.index_put_((target, predicted), torch.ones_like(target), accumulate=True)


q5 = chapter.exercise(
    "q5",
    "A confusion matrix from predictions",
    points=1,
    reference=_counted_in_place,
    solution_code=inspect.getsource(confusion_matrix),
    inputs=_predictions,
    trials=4,
    hints=[
        "Entry `[i, j]` counts the samples of true class `i` predicted as `j`: rows are the truth.",
        "One `torch.bincount` over `target * num_classes + predicted`, with `minlength=num_classes**2` so "
        "that classes nobody predicted still get their row and column, then `.view(num_classes, num_classes)`.",
    ],
    misconceptions=[
        (
            lambda p, t, c: confusion_matrix(t, p, c),
            "Your matrix is transposed: rows must be the true class and columns the predicted class.",
        ),
    ],
)


# --- q6 · 06.3 a progress bar whose postfix shows the running mean ---------------------------------


q6 = _declare(
    "q6",
    "A progress bar that shows the running mean loss",
    points=1,
    reference=train_with_bar,
    inputs=_losses,
    judge=_judge_bar,
    on=["cpu"],
    hints=[
        "`bar = progress(losses)` is a tqdm bar over the losses; `for loss in bar:` counts each one.",
        "Keep a running total; after adding each loss call `bar.set_postfix(loss=total / count)`. "
        "Return `total / len(losses)` at the end.",
    ],
)


# --- q7 · 06.5 a torchnet-style AverageValueMeter: add, value, reset -------------------------------


q7 = _declare(
    "q7",
    "A torchnet-style AverageValueMeter, by hand",
    points=2,
    reference=_new_meter,
    inputs=_operations,
    judge=_judge_meter,
    on=["cpu"],
    trials=4,
    solution_code=inspect.getsource(AverageValueMeter) + "\n\n" + inspect.getsource(make_meter),
    hints=[
        "Keep three running totals: how many values (n), their sum, and the sum of their squares. "
        "`add(value, n)` adds `n`, `value * n` and `value**2 * n`; `reset()` sets all three to zero.",
        "mean = sum / n; the unbiased std is `sqrt((squares - n * mean**2) / (n - 1))`. With no values return "
        "(nan, nan); with one, (mean, nan). `float(value)` accepts a float or a one-element tensor.",
    ],
)
