"""Real data for the visualization chapter: scikit-learn's 8x8 handwritten digits, as tensors.

1,797 grey-scale images of the digits 0-9 (the UCI optical digits set, shipped inside
scikit-learn, so nothing is downloaded). Small enough that a convolutional net trains on the
CPU in about a second, real enough that its curves, feature maps and confusion matrix are worth
looking at.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["CLASSES", "SmallNet", "load", "loaders", "split"]

CLASSES = tuple(str(d) for d in range(10))


@functools.lru_cache(maxsize=1)
def _arrays() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images).float().div_(16.0).unsqueeze(1)  # pixel values 0..16 -> [0, 1]
    return images, torch.from_numpy(digits.target).long()


def load() -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)``: float32 (1797, 1, 8, 8) in [0, 1] and int64 (1797,)."""
    images, labels = _arrays()
    return images.clone(), labels.clone()


def split(n_val: int = 360, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """A fixed, seeded train/validation split of the digits."""
    images, labels = load()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    val, train = order[:n_val], order[n_val:]
    return TensorDataset(images[train], labels[train]), TensorDataset(images[val], labels[val])


def loaders(batch_size: int = 64, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Train (shuffled with its own seeded generator) and validation loaders over :func:`split`."""
    train, val = split(seed=seed)
    generator = torch.Generator().manual_seed(seed)
    return (
        DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator),
        DataLoader(val, batch_size=256),
    )


class SmallNet(nn.Module):
    """Two 3x3 convolutions and a linear head: 8x8 digits in, 10 logits out."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(2 * channels * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.head(x.flatten(1))
