"""Chapter 06 · Visualization: references pass, typical wrong answers get the right feedback, other answers pass."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from grading import accepted, rejected
from torch.utils.tensorboard import SummaryWriter

from torchcourse.checks import visualization as viz


def cases(exercise):
    return [exercise.inputs(torch.Generator().manual_seed(exercise.seed(t)), "cpu") for t in range(exercise.trials)]


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

    def in_file(pick):
        def answer(logdir, tag):
            files = sorted(Path(logdir).glob("events.out.tfevents.*"))
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


def test_q7_cases_add_tensors_counts_and_resets():
    ops = [op for (sequence,) in cases(viz.q7) for op in sequence]
    assert any(isinstance(value, torch.Tensor) for _, value, _ in ops)
    assert any(n > 1 for name, _, n in ops if name == "add") and any(name == "reset" for name, _, _ in ops)


@pytest.mark.parametrize("ex", list(viz.chapter.exercises.values()), ids=lambda ex: ex.id)
def test_solution_shows_runnable_code(ex):
    code = str(ex.solution()).split("```python\n", 1)[1].rsplit("```", 1)[0]
    compile(code, ex.id, "exec")
