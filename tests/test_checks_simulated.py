"""GPU-only mistakes, caught on a machine without a GPU, in every chapter (checks/core/device.py).

On a CPU a tensor created without ``device=`` lands where the inputs are, so every value check passes. The
second run puts the inputs on simulated CUDA (fake tensors): each wrong answer below is right on the CPU and
fails on a GPU, and its feedback must say what was simulated. Each correct answer below reads values
(``.item()``, ``.tolist()``), which the simulation cannot run: that run is inconclusive and costs no point.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from grading import accepted, rejected

from torchcourse import simcuda
from torchcourse.checks import autograd, data, nn, python, tensors, visualization

pytestmark = pytest.mark.skipif(not simcuda.available(), reason="this torch cannot simulate CUDA")

WHERE = "simulated GPU"


def _total_into_cpu_zeros(*values, scale=1.0):
    out = torch.zeros(values[0].shape)  # on the CPU, whatever the inputs' device
    for v in values:
        out += v
    return scale * out


def _one_hot_cpu(labels, num_classes):
    return torch.zeros(len(labels), num_classes).scatter_(1, labels.unsqueeze(1), 1.0)


def _smoothed_with_cpu_targets(logits, labels, smoothing):
    n, c = logits.shape
    soft = torch.full((n, c), smoothing / c)  # no device=
    soft[torch.arange(n), labels] += 1 - smoothing
    return -(soft * logits.log_softmax(1)).sum(1).mean()


def _stats_into_cpu_zeros(batches):
    channels = batches[0].shape[1]
    total, squares, count = torch.zeros(channels, dtype=torch.float64), torch.zeros(channels, dtype=torch.float64), 0
    for batch in batches:
        x = batch.double()
        total += x.sum(dim=(0, 2, 3))  # a CUDA sum into a CPU tensor
        squares += x.pow(2).sum(dim=(0, 2, 3))
        count += x.numel() // channels
    mean = total / count
    return mean, (squares / count - mean**2).sqrt()


def _confusion_on_cpu(predicted, target, num_classes):
    out = torch.zeros(num_classes, num_classes, dtype=torch.long)  # no device=
    return out.index_put_((target, predicted), torch.ones_like(target), accumulate=True)


def _confusion_indexing_cpu(predicted, target, num_classes):
    flat = torch.arange(num_classes * num_classes).view(num_classes, num_classes)  # no device=
    return torch.bincount(flat[target, predicted], minlength=num_classes * num_classes).view(num_classes, -1)


WRONG = [
    pytest.param(python.q2, _total_into_cpu_zeros, id="00-q2-a-sum-started-on-the-cpu"),
    pytest.param(tensors.q7, _one_hot_cpu, id="01-q7-zeros-without-device"),
    pytest.param(autograd.q8, lambda w, b, x: torch.sigmoid(x.cpu() @ w.detach().cpu() + b.detach().cpu()).to("cpu"),
                 id="02-q8-moved-to-a-fixed-device"),
    pytest.param(nn.q6, _smoothed_with_cpu_targets, id="03-q6-soft-targets-without-device"),
    pytest.param(data.q5, _stats_into_cpu_zeros, id="04-q5-sums-into-cpu-zeros"),
    pytest.param(visualization.q5, _confusion_on_cpu, id="06-q5-matrix-without-device"),
    pytest.param(visualization.q5, _confusion_indexing_cpu, id="06-q5-cpu-tensor-indexed-by-cuda-indices"),
]


@pytest.mark.parametrize(("exercise", "answer"), WRONG)
def test_a_gpu_only_mistake_is_caught_without_a_gpu(exercise, answer):
    rejected(exercise, answer, WHERE)


def _one_hot_validated(labels, num_classes):
    if labels.numel() and labels.max().item() >= num_classes:  # a value read back: the simulation cannot
        raise ValueError("a label is out of range")
    return torch.zeros(len(labels), num_classes, device=labels.device).scatter_(1, labels[:, None], 1.0)


def _smoothed_validated(logits, labels, smoothing):
    if (labels >= logits.shape[1]).sum().item():
        raise ValueError("a label is out of range")
    log_p = logits.log_softmax(1)
    return ((1 - smoothing) * F.nll_loss(log_p, labels) - smoothing * log_p.mean(1).mean())


def _weights_through_item(labels):
    counts = torch.bincount(labels)
    return torch.tensor([1.0 / counts[k].item() for k in labels.tolist()], dtype=torch.float64, device=labels.device)


def _confusion_through_tolist(predicted, target, num_classes):
    out = torch.zeros(num_classes, num_classes, dtype=torch.long, device=target.device)
    for t, p in zip(target.tolist(), predicted.tolist(), strict=True):
        out[t, p] += 1
    return out


READS_VALUES = [
    pytest.param(python.q1, lambda epoch, loss, acc: f"epoch {epoch:03d} | loss {loss.item():.4f} | acc {acc:.1%}",
                 id="00-q1-item"),
    pytest.param(tensors.q7, _one_hot_validated, id="01-q7-item"),
    pytest.param(autograd.q8, lambda w, b, x: torch.sigmoid(x @ w.detach() + b.item()), id="02-q8-item"),
    pytest.param(nn.q6, _smoothed_validated, id="03-q6-item"),
    pytest.param(data.q3, _weights_through_item, id="04-q3-item-and-tolist"),
    pytest.param(visualization.q5, _confusion_through_tolist, id="06-q5-tolist"),
]


@pytest.mark.parametrize(("exercise", "answer"), READS_VALUES)
def test_a_correct_answer_that_reads_values_is_not_blamed_for_the_simulation(exercise, answer):
    accepted(exercise, answer)
