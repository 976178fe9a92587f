"""Chapter 06 · Visualization: references pass, typical wrong answers get the right feedback, other answers pass."""

from __future__ import annotations

import math
import os
import shutil
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from grading import accepted, rejected
from torch.utils.tensorboard import SummaryWriter

from torchcourse.checks import visualization as viz
from torchcourse.checks.core import Status


def cases(exercise):
    return [exercise.make_case(t, "cpu") for t in range(exercise.trials)]


def test_the_chapter_has_seven_exercises_in_order():
    assert list(viz.chapter.exercises) == [f"q{i}" for i in range(1, 8)]
    assert viz.chapter.max_score == 9


# --- q1 · best step from event files --------------------------------------------------------------


def test_q1_other_right_answers():
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def with_accumulator(logdir, tag):
        run = EventAccumulator(logdir, size_guidance={"scalars": 0}).Reload()
        events = run.Scalars(tag)
        values = [e.value for e in events]
        return events[values.index(min(values))].step

    def with_sort(logdir, tag):
        run = EventAccumulator(logdir).Reload()
        return sorted(run.Scalars(tag), key=lambda e: (e.value, e.step))[0].step

    def with_tensor(logdir, tag):
        events = EventAccumulator(logdir).Reload().Scalars(tag)
        return [e.step for e in events][int(torch.tensor([e.value for e in events]).argmin())]

    for answer in (with_accumulator, with_sort, with_tensor):
        accepted(viz.q1, answer)


def _events(logdir, tag):
    return viz._read(__import__("pathlib").Path(logdir)).Scalars(tag)


def test_q1_index_instead_of_step():
    def index(logdir, tag):
        values = [e.value for e in _events(logdir, tag)]
        return values.index(min(values))

    rejected(viz.q1, index, "position of the best value", "the two differ")


def test_q1_largest_value_last_step_other_tag_and_float():
    rejected(viz.q1, lambda d, t: max(_events(d, t), key=lambda e: e.value).step, "largest value")
    rejected(viz.q1, lambda d, t: _events(d, t)[-1].step, "last step")
    rejected(viz.q1, lambda d, t: min(_events(d, "loss/train"), key=lambda e: e.value).step, "another tag")
    rejected(viz.q1, lambda d, t: float(min(_events(d, t), key=lambda e: e.value).step), "Python int")


def test_q1_several_event_files_and_another_tag():
    """Every random run was one event file whose tag was always "loss/val": reading a single file, or
    that tag whatever the argument, passed."""
    from pathlib import Path

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def written(path):  # events.out.tfevents.<time>.<host>.<pid>.<writer number>: by name, .10 sorts before .9
        stamp = path.name.removeprefix("events.out.tfevents.")
        return int(stamp.split(".", 1)[0]), int(stamp.rsplit(".", 1)[1])

    def in_file(pick):
        def answer(logdir, tag):
            files = sorted(Path(logdir).glob("events.out.tfevents.*"), key=written)
            events = EventAccumulator(str(pick(files))).Reload().Scalars(tag)
            return min(events, key=lambda e: e.value).step

        return answer

    rejected(viz.q1, in_file(lambda files: files[0]), "its value is not the smallest")
    rejected(viz.q1, in_file(lambda files: files[-1]), "its value is not the smallest")
    rejected(viz.q1, lambda d, t: min(_events(d, "loss/val"), key=lambda e: e.value).step, "raised KeyError")

    def every_file(logdir, tag):
        events = [e for f in sorted(Path(logdir).glob("events.out.tfevents.*"))
                  for e in EventAccumulator(str(f)).Reload().Scalars(tag)]
        return min(events, key=lambda e: e.value).step

    accepted(viz.q1, every_file)


def test_q1_steps_are_not_indices_in_every_case():
    for logdir, tag in cases(viz.q1):
        steps = [e.step for e in _events(logdir, tag)]
        assert steps != list(range(len(steps)))


# --- q2 · logging train and val in one chart -------------------------------------------------------


def test_q2_other_right_answers():
    def two_writers(logdir, history):
        writer = SummaryWriter(logdir)
        for row in history:
            writer.add_scalars("loss", {"val": row["val_loss"], "train": row["train_loss"]}, row["epoch"])
        for row in history:
            writer.add_scalar("lr", torch.tensor(row["lr"]), row["epoch"])
        writer.close()

    def flushed(logdir, history):
        writer = SummaryWriter(log_dir=logdir, flush_secs=1)
        for row in history:
            writer.add_scalar("lr", row["lr"], global_step=row["epoch"])
            writer.add_scalars("loss", {"train": row["train_loss"], "val": row["val_loss"]}, global_step=row["epoch"])
        writer.flush()
        writer.close()

    for answer in (viz.log_history, two_writers, flushed):
        accepted(viz.q2, answer)


def test_q2_separate_tags_instead_of_one_chart():
    def separate(logdir, history):
        with SummaryWriter(logdir) as writer:
            for row in history:
                writer.add_scalar("loss/train", row["train_loss"], row["epoch"])
                writer.add_scalar("loss/val", row["val_loss"], row["epoch"])
                writer.add_scalar("lr", row["lr"], row["epoch"])

    rejected(viz.q2, separate, "loss_train", "was not logged there")


def test_q2_index_as_step_and_wrong_values_and_wrong_folder(tmp_path):
    def by_index(logdir, history):
        with SummaryWriter(logdir) as writer:
            for i, row in enumerate(history):
                writer.add_scalars("loss", {"train": row["train_loss"], "val": row["val_loss"]}, i)
                writer.add_scalar("lr", row["lr"], i)

    def swapped(logdir, history):
        with SummaryWriter(logdir) as writer:
            for row in history:
                writer.add_scalars("loss", {"train": row["val_loss"], "val": row["train_loss"]}, row["epoch"])
                writer.add_scalar("lr", row["lr"], row["epoch"])

    def elsewhere(logdir, history):
        viz.log_history(str(tmp_path / "runs"), history)

    rejected(viz.q2, by_index, "epoch number")
    rejected(viz.q2, swapped, "not its values")
    rejected(viz.q2, elsewhere, "No event file")


def test_q2_no_lr():
    def no_lr(logdir, history):
        with SummaryWriter(logdir) as writer:
            for row in history:
                writer.add_scalars("loss", {"train": row["train_loss"], "val": row["val_loss"]}, row["epoch"])

    rejected(viz.q2, no_lr, "'lr'")


def test_q2_a_writer_left_open_is_named_and_closed_by_the_check():
    left_open = []

    def never_closed(logdir, history):
        writer = SummaryWriter(logdir)
        left_open.append(writer)
        for row in history:
            writer.add_scalars("loss", {"train": row["train_loss"], "val": row["val_loss"]}, row["epoch"])
            writer.add_scalar("lr", row["lr"], row["epoch"])
        writer.flush()  # everything on disk: only the open writer is wrong

    rejected(viz.q2, never_closed, "still open")
    assert left_open and all(writer.all_writers is None for writer in left_open)  # the check closed them
    assert SummaryWriter.__init__.__qualname__ == "SummaryWriter.__init__"  # and took its spy out again


# --- q3 · a grid with a given number of rows ---------------------------------------------------------


def test_q3_other_right_answers():
    def with_divmod(images, rows):
        per_row = -(-len(images) // rows)
        return torchvision.utils.make_grid(images, per_row, 1, pad_value=1)

    def with_keywords(images, rows):
        return torchvision.utils.make_grid(
            tensor=list(images), nrow=int(math.ceil(images.shape[0] / rows)), padding=1, pad_value=1.0
        )

    for answer in (viz.grid_with_rows, with_divmod, with_keywords):
        accepted(viz.q3, answer)


def test_q3_nrow_as_rows_black_padding_default_padding():
    grid = torchvision.utils.make_grid
    rejected(viz.q3, lambda im, r: grid(im, nrow=r, padding=1, pad_value=1.0), "not the number of rows")
    rejected(viz.q3, lambda im, r: grid(im, nrow=math.ceil(len(im) / r), padding=1), "not white")
    rejected(viz.q3, lambda im, r: grid(im, nrow=math.ceil(len(im) / r), pad_value=1.0), "default 2 pixels, not 1")


def test_q3_rounding_to_the_nearest_is_not_rounding_up():
    """N was a multiple of rows, or exactly half a row past one: rounding N / rows to the nearest
    (half up) gave the same images per row as rounding up."""
    grid = torchvision.utils.make_grid
    rejected(viz.q3, lambda im, r: grid(im, nrow=int(len(im) / r + 0.5), padding=1, pad_value=1.0))
    rejected(viz.q3, lambda im, r: grid(im, nrow=math.floor(len(im) / r + 0.5), padding=1, pad_value=1.0))
    accepted(viz.q3, lambda im, r: grid(im, nrow=(len(im) + r - 1) // r, padding=1, pad_value=1.0))


def test_q3_cases_are_never_square_and_cover_grey_and_colour():
    seen = cases(viz.q3) + [viz.q3.make_case(t, "cpu") for t in range(viz.q3.trials, viz.q3.total_cases)]
    assert all(math.ceil(len(im) / math.ceil(len(im) / r)) == r != math.ceil(len(im) / r) for im, r in seen)
    assert {im.shape[1] for im, _ in seen} == {1, 3}


# --- q4 · a forward hook --------------------------------------------------------------------------------


def test_q4_other_right_answers():
    def with_dict(model, layer, x):
        found = {}
        handle = dict(model.named_modules())[layer].register_forward_hook(
            lambda m, i, o: found.setdefault("out", o.detach())
        )
        model(x)
        handle.remove()
        return found["out"]

    def with_context(model, layer, x):
        from torch.nn.modules.module import register_module_forward_hook

        target, out = model.get_submodule(layer), []
        handle = register_module_forward_hook(lambda m, i, o: out.append(o) if m is target else None)
        with torch.inference_mode():
            model(x)
        handle.remove()
        return out[0].clone()

    for answer in (viz.capture, with_dict, with_context):
        accepted(viz.q4, answer)


def test_q4_without_a_hook_is_ruled_out():
    def by_walking(model, layer, x):
        with torch.no_grad():
            for name, module in model.named_children():
                x = module(x)
                if name == layer:
                    return x
        return None

    rejected(viz.q4, by_walking, "use a forward hook")


def test_q4_model_output_layer_input_hook_left_behind():
    rejected(viz.q4, viz._model_output, "model's output")
    rejected(viz.q4, viz._layer_input, "layer's input")

    def leaves_hook(model, layer, x):
        out = []
        model.get_submodule(layer).register_forward_hook(lambda m, i, o: out.append(o))
        with torch.no_grad():
            model(x)
        return out[0]

    rejected(viz.q4, leaves_hook, "still registered")

    def with_grad(model, layer, x):
        out = []
        handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: out.append(o))
        model(x)
        handle.remove()
        return out[0]

    rejected(viz.q4, with_grad, "attached to the graph")


# --- q5 · a confusion matrix --------------------------------------------------------------------------


def test_q5_other_right_answers():
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    def with_torchmetrics(predicted, target, num_classes):
        return multiclass_confusion_matrix(predicted, target, num_classes).long()

    def with_index_put(predicted, target, num_classes):
        matrix = torch.zeros(num_classes, num_classes, dtype=torch.long, device=target.device)
        return matrix.index_put_((target, predicted), torch.ones_like(target), accumulate=True)

    for answer in (viz.confusion_matrix, with_torchmetrics, with_index_put):
        accepted(viz.q5, answer)


def test_q5_transposed_float_and_no_minlength():
    rejected(viz.q5, lambda p, t, c: viz.confusion_matrix(t, p, c), "transposed")
    rejected(viz.q5, lambda p, t, c: viz.confusion_matrix(p, t, c).float(), "dtype")

    def no_minlength(p, t, c):
        counts = torch.bincount(t * c + p)
        side = math.isqrt(counts.numel())
        return counts[: side * side].view(side, side)

    rejected(viz.q5, no_minlength, "shape")


def test_q5_some_cases_never_see_the_last_class():
    assert any(int(max(p.max(), t.max())) < c - 1 for p, t, c in cases(viz.q5))


# --- q6 · a running-mean postfix --------------------------------------------------------------------------


def test_q6_other_right_answers():
    def with_str(losses, progress):
        bar, total = progress(losses), 0.0
        for i, loss in enumerate(bar):
            total += loss
            bar.set_postfix_str(f"loss={total / (i + 1):.6f}")
        return total / len(losses)

    def with_tensor(losses, progress):
        seen = []
        with progress(losses, desc="epoch") as bar:
            for loss in bar:
                seen.append(loss)
                bar.set_postfix({"loss": torch.tensor(seen).mean()})
        return float(torch.tensor(seen).mean())

    for answer in (viz.train_with_bar, with_str, with_tensor):
        accepted(viz.q6, answer)


def _bar_answer(show):
    def answer(losses, progress):
        bar, seen = progress(losses), []
        for loss in bar:
            seen.append(loss)
            bar.set_postfix(loss=show(seen, losses))
        return sum(losses) / len(losses)

    return answer


def test_q6_last_loss_overall_mean_sum_and_lag():
    rejected(viz.q6, _bar_answer(lambda seen, losses: seen[-1]), "each batch's own loss")
    rejected(viz.q6, _bar_answer(lambda seen, losses: sum(losses) / len(losses)), "not seen yet")
    rejected(viz.q6, _bar_answer(lambda seen, losses: sum(seen)), "running sum")
    rejected(viz.q6, _bar_answer(lambda seen, losses: sum(seen[:-1]) / max(len(seen) - 1, 1)), "lags one batch")


def test_q6_no_bar_and_a_bar_not_iterated():
    def no_bar(losses, progress):
        return sum(losses) / len(losses)

    def not_iterated(losses, progress):
        bar = progress(losses)
        for i, _ in enumerate(losses):
            bar.set_postfix(loss=sum(losses[: i + 1]) / (i + 1))
        return sum(losses) / len(losses)

    rejected(viz.q6, no_bar, "No progress bar")
    rejected(viz.q6, not_iterated, "did not go through the bar itself")


# --- q7 · an AverageValueMeter ---------------------------------------------------------------------------


class WelfordMeter:
    def __init__(self):
        self.reset()

    def reset(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, value, n=1):
        for _ in range(n):
            self.count += 1
            delta = float(value) - self.mean
            self.mean += delta / self.count
            self.m2 += delta * (float(value) - self.mean)

    def value(self):
        if self.count == 0:
            return math.nan, math.nan
        return self.mean, math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else math.nan


class ListMeter:
    def __init__(self):
        self.values = []

    def reset(self):
        self.values = []

    def add(self, value, n=1):
        self.values += [float(value)] * n

    def value(self):
        t = torch.tensor(self.values, dtype=torch.float64)
        mean = t.mean().item() if len(self.values) else math.nan
        return mean, t.std().item() if len(self.values) > 1 else math.nan


def test_q7_other_right_answers_and_torchmetrics_agrees():
    for answer in (viz.make_meter, WelfordMeter, ListMeter):
        accepted(viz.q7, answer)
    import torchmetrics

    meter, metric = viz.make_meter(), torchmetrics.MeanMetric()
    for value, n in [(0.5, 2), (1.5, 1), (-0.25, 3)]:
        meter.add(value, n)
        metric.update(torch.tensor(value), weight=n)
    assert math.isclose(meter.value()[0], metric.compute().item(), rel_tol=1e-6)


def _meter(**changes):
    class Broken(viz.AverageValueMeter):
        pass

    for name, method in changes.items():
        setattr(Broken, name, method)
    return Broken


def test_q7_population_std_ignoring_n_and_a_partial_reset():
    def population(self):
        mean = self.sum / self.n if self.n else math.nan
        return (mean, math.sqrt(max(self.squares / self.n - mean * mean, 0.0))) if self.n > 1 else (mean, math.nan)

    def ignores_n(self, value, n=1):
        viz.AverageValueMeter.add(self, value, 1)

    def partial_reset(self):
        self.n, self.sum = 0, 0.0
        self.squares = getattr(self, "squares", 0.0)  # kept from before the reset

    rejected(viz.q7, _meter(value=population), "population standard deviation")
    rejected(viz.q7, _meter(add=ignores_n), "counts the value n times")
    rejected(viz.q7, _meter(reset=partial_reset), "reset()")


def test_q7_empty_meter_single_value_and_tensor_results():
    def divides_by_zero(self):
        return self.sum / self.n, 0.0

    def zero_std(self):
        mean, std = viz.AverageValueMeter.value(self)
        return mean, 0.0 if self.n == 1 else std

    def tensors(self):
        return tuple(torch.tensor(v) for v in viz.AverageValueMeter.value(self))

    rejected(viz.q7, _meter(value=divides_by_zero), "ZeroDivisionError")
    rejected(viz.q7, _meter(value=zero_std), "fewer than two values")
    rejected(viz.q7, _meter(value=tensors), "Python floats")
    rejected(viz.q7, lambda: object(), "no add() method")


def test_q7_a_method_that_never_returns_is_stopped_and_named(monkeypatch):
    def hangs(self, value, n=1):
        while True:
            pass

    monkeypatch.setattr(viz.q7, "time_limit", 0.3)
    message = rejected(viz.q7, _meter(add=hangs), "add() method", "did not return")
    assert "ZeroDivisionError" not in message


def test_q7_cases_add_tensors_counts_and_resets():
    ops = [op for (sequence,) in cases(viz.q7) for op in sequence]
    assert any(isinstance(value, torch.Tensor) for _, value, _ in ops)
    assert any(n > 1 for name, _, n in ops if name == "add") and any(name == "reset" for name, _, _ in ops)


# --- three different correct answers per exercise --------------------------------------------------------------------


def _q1_accumulator_item(logdir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(logdir, size_guidance={"scalars": 0}).Reload().Scalars(tag)
    return events[torch.tensor([e.value for e in events]).argmin().item()].step


def _q1_file_loader_numpy(logdir, tag):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    steps, values = [], []
    for name in sorted(os.listdir(logdir)):
        if "tfevents" not in name:
            continue
        for event in EventFileLoader(os.path.join(logdir, name)).Load():
            for value in event.summary.value:
                if value.tag == tag:
                    steps.append(event.step)
                    values.append(tensor_util.make_ndarray(value.tensor))
    return np.asarray(steps)[np.argmin(np.asarray(values, dtype=np.float64))]


def _q1_raw_records(logdir, tag):
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2

    found = []
    for path in Path(logdir).glob("events.out.tfevents.*"):
        for record in RawEventFileLoader(str(path)).Load():
            event = event_pb2.Event.FromString(record)
            found += [(v.simple_value, event.step) for v in event.summary.value if v.tag == tag]
    return min(found)[1]


def _q2_subrun_writers(logdir, history):
    writers = {name: SummaryWriter(os.path.join(logdir, name)) for name in ("loss_train", "loss_val")}
    writers["lr"] = SummaryWriter(logdir)
    try:
        for row in history:
            step = int(row["epoch"])
            writers["loss_train"].add_scalar("loss", torch.tensor(row["train_loss"]).item(), global_step=step)
            writers["loss_val"].add_scalar("loss", torch.tensor(row["val_loss"]).item(), global_step=step)
            writers["lr"].add_scalar("lr", row["lr"], global_step=step)
    finally:
        for writer in writers.values():
            writer.close()


def _q2_numpy_walltime(logdir, history):
    epochs = np.array([row["epoch"] for row in history])
    columns = {key: np.array([row[key] for row in history]) for key in ("train_loss", "val_loss", "lr")}
    start = time.time()
    writer = SummaryWriter(log_dir=logdir, flush_secs=5)
    try:
        for i, epoch in enumerate(epochs.tolist()):
            pair = {"train": columns["train_loss"][i], "val": columns["val_loss"][i]}
            writer.add_scalars("loss", pair, global_step=epoch, walltime=start + i)
            writer.add_scalar("lr", columns["lr"][i], global_step=epoch, walltime=start + i)
    finally:
        writer.close()


def _q2_one_pass_per_curve(logdir, history):
    with SummaryWriter(logdir, comment="ignored when log_dir is given") as writer:
        for key, curve in (("train_loss", "train"), ("val_loss", "val")):
            for row in sorted(history, key=lambda r: r["epoch"]):
                writer.add_scalars("loss", {curve: float(row[key])}, row["epoch"])
        for row in history:
            writer.add_scalar(tag="lr", scalar_value=row["lr"], global_step=row["epoch"], new_style=True)


def _q3_item(images, rows):
    per_row = torch.tensor(len(images)).add(rows - 1).div(rows, rounding_mode="floor").item()
    return torchvision.utils.make_grid(images, per_row, 1, False, None, False, 1.0)


def _q3_numpy(images, rows):
    return torchvision.utils.make_grid(list(images), nrow=int(np.ceil(images.shape[0] / rows)), padding=1,
                                       pad_value=1.0)


def _q3_by_hand(images, rows):
    n, channels, h, w = images.shape
    per_row = -(-n // rows)
    used = -(-n // per_row)
    if channels == 1:  # make_grid shows a grey batch as RGB
        images = images.expand(n, 3, h, w)
    grid = images.new_ones(images.shape[1], used * (h + 1) + 1, per_row * (w + 1) + 1)
    for k, image in enumerate(images):
        r, c = divmod(k, per_row)
        grid[:, 1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w] = image
    return grid


def _q4_with_kwargs(model, layer, x):
    seen = {}

    def hook(module, args, kwargs, output):
        seen["output"] = output.detach().clone()

    handle = dict(model.named_modules())[layer].register_forward_hook(hook, with_kwargs=True)
    try:
        model(x)
    finally:
        handle.remove()
    return seen["output"]


def _q4_global_hook(model, layer, x):
    from torch.nn.modules.module import register_module_forward_hook

    target, out = model.get_submodule(layer), []
    handle = register_module_forward_hook(lambda m, i, o: out.append(o) if m is target else None)
    try:
        with torch.inference_mode():
            model(x)
    finally:
        handle.remove()
    return out[0].clone()


class _Recorder:
    def __init__(self):
        self.outputs = []

    def __call__(self, module, inputs, output):
        self.outputs.append(output)


def _q4_callable_object(model, layer, x):
    recorder = _Recorder()
    module = next(m for name, m in model.named_modules() if name == layer)
    handle = module.register_forward_hook(recorder, always_call=True)
    with torch.no_grad():
        model.forward(x)
    handle.remove()
    return recorder.outputs[-1]


def _q5_item(predicted, target, num_classes):
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=target.device)
    for i in range(len(target)):
        matrix[target[i].item(), predicted[i].item()] += 1
    return matrix


def _q5_numpy(predicted, target, num_classes):
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (target.cpu().numpy(), predicted.cpu().numpy()), 1)
    return torch.from_numpy(matrix).to(target.device)


def _q5_sparse(predicted, target, num_classes):
    indices = torch.stack([target, predicted])
    counts = torch.sparse_coo_tensor(indices, torch.ones_like(target), (num_classes, num_classes))
    return counts.coalesce().to_dense()


def _q6_item(losses, progress):
    seen = []
    with progress(losses) as bar:
        for loss in bar:
            seen.append(loss)
            bar.set_postfix(loss=torch.tensor(seen, dtype=torch.float64).mean().item())
    return torch.tensor(losses, dtype=torch.float64).mean().item()


def _q6_numpy(losses, progress):
    bar = progress(losses, unit="batch")
    running = np.cumsum(losses) / np.arange(1, len(losses) + 1)
    for i, _ in enumerate(bar):
        bar.set_postfix(OrderedDict(loss=f"{running[i]:.4f}"), refresh=False)
    bar.close()
    return np.mean(losses)


def _q6_welford_str(losses, progress):
    bar, mean = progress(losses, leave=False), 0.0
    for count, loss in enumerate(bar, start=1):
        mean += (loss - mean) / count
        bar.set_postfix_str(f"loss={mean:.6f}")
    return mean


class _TensorMeter:
    def __init__(self):
        self.reset()

    def reset(self):
        self.totals = torch.zeros(3, dtype=torch.float64)  # count, sum, sum of squares

    def add(self, value, n=1):
        v = torch.as_tensor(value, dtype=torch.float64).reshape(())
        self.totals += torch.stack([torch.ones((), dtype=torch.float64), v, v * v]) * n

    def value(self):
        n, total, squares = self.totals
        if n.item() == 0:
            return math.nan, math.nan
        mean = total / n
        if n.item() == 1:
            return mean.item(), math.nan
        return mean.item(), ((squares - n * mean * mean).clamp_min(0) / (n - 1)).sqrt().item()


class _NumpyMeter:
    def __init__(self):
        self.values = np.empty(0)

    def reset(self):
        self.values = np.empty(0)

    def add(self, value, n=1):
        self.values = np.append(self.values, np.repeat(float(value), n))

    def value(self):
        mean = self.values.mean() if self.values.size else np.float64(np.nan)
        std = self.values.std(ddof=1) if self.values.size > 1 else np.float64(np.nan)
        return mean, std


class _ChanMeter:
    """Chan et al.'s pairwise update: merge a batch of n equal values into (count, mean, M2)."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def reset(self):
        self.__init__()

    def add(self, value, n=1):
        value, total = float(value), self.count + n
        delta = value - self.mean
        self.mean += delta * n / total
        self.m2 += delta * delta * self.count * n / total
        self.count = total

    def value(self):
        if not self.count:
            return (float("nan"),) * 2
        return self.mean, (self.m2 / (self.count - 1)) ** 0.5 if self.count > 1 else float("nan")


CORRECT = {
    "q1": [_q1_accumulator_item, _q1_file_loader_numpy, _q1_raw_records],
    "q2": [_q2_subrun_writers, _q2_numpy_walltime, _q2_one_pass_per_curve],
    "q3": [_q3_item, _q3_numpy, _q3_by_hand],
    "q4": [_q4_with_kwargs, _q4_global_hook, _q4_callable_object],
    "q5": [_q5_item, _q5_numpy, _q5_sparse],
    "q6": [_q6_item, _q6_numpy, _q6_welford_str],
    "q7": [lambda: _TensorMeter(), lambda: _NumpyMeter(), lambda: _ChanMeter()],
}


@pytest.mark.parametrize(("qid", "index"), [(q, i) for q in CORRECT for i in range(3)])
def test_three_correct_answers_are_accepted(qid, index):
    outcome = viz.chapter.exercises[qid].grade(CORRECT[qid][index])
    assert outcome.status is Status.CORRECT, outcome.message


# --- inputs left as they were: folders, lists, models, tensors -----------------------------------------------------


def _q1_reference_then(change):
    """The reference answer to q1, which then does ``change(logdir)`` to the run folder it was handed."""

    def answer(logdir, tag):
        step = viz.best_step(logdir, tag)
        change(Path(logdir))
        return step

    return answer


def _event_files(folder):
    return sorted(folder.glob("events.out.tfevents.*"))


def test_q1_a_run_folder_it_only_reads_is_left_as_it_was():
    def delete_stray(folder):
        for path in folder.iterdir():
            if path.is_file() and "tfevents" not in path.name:
                path.unlink()

    def rename(folder):
        first = _event_files(folder)[0]
        first.rename(first.with_name(first.name + ".read"))

    def rewrite(folder):
        first = _event_files(folder)[0]
        first.write_bytes(first.read_bytes()[:-8])

    def rewrite_same(folder):
        first = _event_files(folder)[-1]
        data = first.read_bytes()
        time.sleep(0.02)  # a new modification time, even on a coarse clock
        first.write_bytes(data)

    def open_writer(folder):
        SummaryWriter(str(folder)).close()  # a writer on a run to read adds an event file to it

    rejected(viz.q1, _q1_reference_then(delete_stray), "changed the run folder `logdir`", "deleted `")
    rejected(viz.q1, _q1_reference_then(rename), "renamed or moved `events.out.tfevents.", ".read`")
    rejected(viz.q1, _q1_reference_then(rewrite), "rewrote `events.out.tfevents.", "contents changed")
    rejected(viz.q1, _q1_reference_then(rewrite_same), "rewrote `events.out.tfevents.", "modification time")
    rejected(viz.q1, _q1_reference_then(open_writer), "added `events.out.tfevents.")


def test_q1_what_else_a_run_folder_holds_is_not_read_as_events():
    """TensorBoard's loaders read a stray file as an empty record stream (so reading every file is no mistake),
    but a folder in the run cannot be opened, and the first name in the folder need not be an event file."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    def scalars_in(path, tag):
        return [(v.tensor.float_val[0], event.step) for event in EventFileLoader(path).Load()
                for v in event.summary.value if v.tag == tag]

    def every_entry(logdir, tag):
        return min(pair for name in os.listdir(logdir) for pair in scalars_in(os.path.join(logdir, name), tag))[1]

    def first_entry(logdir, tag):
        return min(scalars_in(os.path.join(logdir, sorted(os.listdir(logdir))[0]), tag))[1]

    rejected(viz.q1, every_entry, "IsADirectoryError")
    rejected(viz.q1, first_entry, "raised")


def test_q1_cases_span_event_files_and_stray_files():
    seen = [viz.q1.make_case(t, "cpu") for t in range(viz.q1.total_cases)]
    files = [len(_event_files(Path(logdir))) for logdir, _ in seen]
    strays = [sorted(p.name for p in Path(logdir).iterdir() if "tfevents" not in p.name) for logdir, _ in seen]
    assert files.count(1) >= 1 and sum(n > 1 for n in files) >= 2  # one file, and runs resumed once or twice
    assert [] in strays and len({name for names in strays for name in names}) >= 3  # none, and several names
    assert len({tag for _, tag in seen}) > 1


def test_q2_the_history_and_the_files_already_in_logdir_are_left_as_they_were():
    def pops_epoch(logdir, history):
        with SummaryWriter(logdir) as writer:
            for row in history:
                epoch = row.pop("epoch")
                writer.add_scalars("loss", {"train": row["train_loss"], "val": row["val_loss"]}, epoch)
                writer.add_scalar("lr", row["lr"], epoch)

    def starts_clean(logdir, history):
        shutil.rmtree(logdir, ignore_errors=True)  # the caller's files go with any old run
        viz.log_history(logdir, history)

    rejected(viz.q2, pops_epoch, "changed its input: `history[0]` lost its key 'epoch'")
    rejected(viz.q2, starts_clean, "changed what `logdir` held before it ran: it deleted `")


def test_q2_points_in_any_order_and_double_precision_are_the_same_chart():
    def backwards_double(logdir, history):
        with SummaryWriter(logdir) as writer:
            for row in reversed(history):
                writer.add_scalars("loss", {"train": row["train_loss"], "val": row["val_loss"]}, row["epoch"])
                writer.add_scalar("lr", row["lr"], row["epoch"], new_style=True, double_precision=True)

    accepted(viz.q2, backwards_double)


def test_q2_cases_span_an_empty_a_missing_and_a_used_log_folder():
    folders = [Path(logdir) for logdir, _ in cases(viz.q2)]
    assert not folders[1].exists()
    assert [list(f.iterdir()) == [] for f in folders if f.exists()].count(False) >= 1
    assert [list(f.iterdir()) == [] for f in folders if f.exists()].count(True) >= 1


def test_q4_a_global_hook_or_a_pre_hook_left_behind_is_named_and_removed():
    from torch.nn.modules import module

    def global_hook(model, layer, x):
        target, out = model.get_submodule(layer), []
        module.register_module_forward_hook(lambda m, i, o: out.append(o) if m is target else None,
                                            always_call=True)
        with torch.no_grad():
            model(x)
        return out[0]

    def pre_hook_left(model, layer, x):
        model.register_forward_pre_hook(lambda m, i: None)
        return viz.capture(model, layer, x)

    hooks = {name: dict(registry) for name, registry in vars(module).items()
             if name.startswith("_global_") and isinstance(registry, dict)}
    rejected(viz.q4, global_hook, "registered for every module", "every later forward pass")
    assert hooks == {name: dict(getattr(module, name)) for name in hooks}  # the check took the hook out again
    rejected(viz.q4, pre_hook_left, "still registered on the model")


def test_q5_a_matrix_built_on_the_cpu_is_caught_on_the_second_device():
    from torchcourse import simcuda

    def on_cpu(predicted, target, num_classes):
        matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        return matrix.index_put_((target.cpu(), predicted.cpu()), torch.ones_like(target).cpu(), accumulate=True)

    if torch.cuda.is_available() or not simcuda.available():
        pytest.skip("the simulated GPU runs only on a machine without one")
    rejected(viz.q5, on_cpu, "came back on cpu")


def test_q6_the_list_of_losses_is_left_as_it_was():
    def consumes(losses, progress):
        bar, total, count = progress(losses), 0.0, 0
        for loss in bar:
            total, count = total + loss, count + 1
            bar.set_postfix(loss=total / count)
        losses.clear()
        return total / count

    rejected(viz.q6, consumes, "changed its input: `losses`, a list, held")


def test_q7_add_leaves_the_tensor_it_is_given_as_it_was():
    def scales_in_place(self, value, n=1):
        if isinstance(value, torch.Tensor):
            value = value.mul_(1)  # the same values, but written in place
        viz.AverageValueMeter.add(self, value, n)

    rejected(viz.q7, _meter(add=scales_in_place), "changed the tensor add() was given, in place")


def test_q7_cases_add_scalar_and_one_element_tensors():
    ops = [op for (sequence,) in cases(viz.q7) for op in sequence]
    assert {value.dim() for _, value, _ in ops if isinstance(value, torch.Tensor)} == {0, 1}


@pytest.mark.parametrize("ex", list(viz.chapter.exercises.values()), ids=lambda ex: ex.id)
def test_solution_shows_runnable_code(ex):
    code = str(ex.solution()).split("```python\n", 1)[1].rsplit("```", 1)[0]
    compile(code, ex.id, "exec")
