"""The two losses of chapter 03 (q5 binary cross-entropy on logits, q6 label smoothing): cases, references and the
wrong formulas the feedback names. :mod:`.nn` declares the exercises."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._nn_modules import _choice, _uniform
from .core import randint as _randint

__all__ = ["bce_with_logits", "smoothed_cross_entropy"]


# --- q5 · 03.4 binary cross-entropy on logits, stably ----------------------------------------------


def _logits_case(generator: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    n = _randint(generator, 3, 12)
    logits = torch.randn(n, generator=generator) * _choice(generator, [2.0, 20.0])
    logits[0], logits[1] = 120.0, -150.0  # confident: a naive sigmoid overflows here
    targets = torch.rand(n, generator=generator)
    if _randint(generator, 0, 2):
        targets = targets.round()
    return logits.to(device), targets.to(device)


def bce_with_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, targets)


def _naive_bce(logits, targets):
    p = torch.sigmoid(logits)
    return -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p)).mean()


# --- q6 · 03.4 cross-entropy with label smoothing ---------------------------------------------------


def _smoothing_case(generator: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    n, c = _randint(generator, 2, 9), _randint(generator, 2, 7)
    logits = torch.randn(n, c, generator=generator) * 3
    labels = torch.randint(0, c, (n,), generator=generator)
    return logits.to(device), labels.to(device), round(_uniform(generator, 0.05, 0.5), 3)


def smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)


def _smoothing_spread_to_others(logits, labels, smoothing):
    c = logits.shape[1]
    target = torch.full_like(logits, smoothing / (c - 1))
    target.scatter_(1, labels.unsqueeze(1), 1 - smoothing)
    return -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()
