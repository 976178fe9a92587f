"""Small datasets the data chapter (04) loads with real worker processes, and image files it draws.

A ``Dataset`` that ``DataLoader`` workers use must be importable by name: under the ``spawn`` and
``forkserver`` start methods each worker unpickles it, and a class defined in a notebook's
``__main__`` cannot be found there. These live in a module for that reason. Every one is tiny, so
a worker starts and finishes quickly on a small machine. The drawing helpers write real image
files (shapes drawn with PIL) for ``ImageFolder`` and friends: no download is ever needed.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "SHAPES",
    "CountingDataset",
    "FlipImages",
    "NoiseDataset",
    "OwnGeneratorNoise",
    "SharedCountingDataset",
    "SlowReads",
    "WhoLoadedMe",
    "draw_shape",
    "write_image_folder",
]

#: The shape classes :func:`draw_shape` knows, in the order of their labels.
SHAPES = ("circle", "square", "triangle")


def draw_shape(kind: str, size: int = 32, seed: int = 0):
    """A ``size`` x ``size`` RGB PIL image of one filled shape at a random place, size and colour."""
    from PIL import Image, ImageDraw

    rng = random.Random(f"{kind}/{size}/{seed}")
    background = tuple(rng.randrange(0, 80) for _ in range(3))
    colour = tuple(rng.randrange(120, 256) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    r = rng.randrange(size // 5, size // 3)
    cx, cy = rng.randrange(r, size - r), rng.randrange(r, size - r)
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif kind == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        raise ValueError(f"unknown shape {kind!r}; known: {SHAPES}")
    return image


def write_image_folder(
    root: str | os.PathLike[str], per_class: int | Sequence[int] = 4, classes: Sequence[str] = SHAPES,
    size: int = 32, suffix: str = ".png",
) -> Path:
    """Write ``root/<class>/<class>_<i><suffix>`` image files, the layout ``ImageFolder`` reads."""
    root = Path(root)
    counts = [per_class] * len(classes) if isinstance(per_class, int) else list(per_class)
    for kind, count in zip(classes, counts, strict=True):
        (root / kind).mkdir(parents=True, exist_ok=True)
        shape = kind if kind in SHAPES else SHAPES[sum(map(ord, kind)) % len(SHAPES)]
        for i in range(count):
            draw_shape(shape, size, seed=i).save(root / kind / f"{kind}_{i}{suffix}")
    return root


class WhoLoadedMe(Dataset):
    """Item ``i`` is ``tensor([i, pid, worker id])``: which process (and which worker) produced it."""

    def __init__(self, n: int = 8) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> torch.Tensor:
        info = torch.utils.data.get_worker_info()
        return torch.tensor([index, os.getpid(), -1 if info is None else info.id])


class NoiseDataset(Dataset):
    """Item ``i`` is a random augmentation parameter drawn from torch, NumPy and Python's ``random``.

    Random augmentations draw numbers like these: the dataset shows whether two workers draw the
    same ones.
    """

    def __init__(self, n: int = 8) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor([float(torch.rand(())), float(np.random.rand()), random.random()], dtype=torch.float64)


class CountingDataset(Dataset):
    """The notes' ``BadDataset``: it counts how often ``__getitem__`` ran in a plain attribute."""

    def __init__(self, n: int = 8) -> None:
        self.data = range(n)
        self.num = 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> int:
        self.num += 1  # each worker increments its own copy: the parent never sees it
        return self.data[index]


class SharedCountingDataset(Dataset):
    """The fix: the count lives in shared memory (``multiprocessing.Value``), guarded by its lock."""

    def __init__(self, n: int = 8, context: str | None = None) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context(context)
        self.data = range(n)
        self.num = ctx.Value("i", 0)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> int:
        with self.num.get_lock():
            self.num.value += 1
        return self.data[index]


class OwnGeneratorNoise(Dataset):
    """Draws from its own ``numpy.random.Generator``, made in ``__init__``: every worker gets a copy.

    ``rng`` is what a ``worker_init_fn`` should replace in each worker (from ``get_worker_info().seed``).
    """

    def __init__(self, n: int = 8, seed: int = 0) -> None:
        self.n = n
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor(self.rng.random(), dtype=torch.float64)


class FlipImages(Dataset):
    """``n`` random uint8 images (3 x size x size) in memory, each flipped left-right when read.

    Cheap items, so a loader's own per-batch cost (sampling, collating, passing between processes)
    is what a timing of it measures.
    """

    def __init__(self, n: int = 64, size: int = 32, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)
        self.labels = torch.arange(n) % len(SHAPES)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index].flip(-1), self.labels[index]


class SlowReads(Dataset):
    """Item ``i`` is ``tensor(i)``, after waiting ``wait`` seconds: a read from a disk or a network, which waits
    rather than computes.

    A waiting sample costs time but no CPU, so two workers overlap their waits on any machine, one core included:
    the case where ``num_workers`` pays off whatever else the machine runs.
    """

    def __init__(self, n: int = 16, wait: float = 0.002) -> None:
        self.n, self.wait = n, wait

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> torch.Tensor:
        time.sleep(self.wait)
        return torch.tensor(index)
