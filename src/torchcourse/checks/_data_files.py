"""Files the hidden cases of chapter 04 write (``_folder``), and q9's IDX file: its case, reference and judge.

:mod:`.data` declares the exercises. ``_judge_idx`` reads the learner's file byte by byte (size, magic number,
big-endian dimensions) to name the defect, then with torchvision's own MNIST reader.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..lesson import workdir
from ._data_workers import _first_line
from .core import Case, Mismatch, call_answer, compare
from .core import randint as _randint

__all__ = ["write_idx"]


def _folder(kind: str, generator: torch.Generator) -> Path:
    """A fresh, empty scratch folder for one hidden case (named by the case's random draw)."""
    tag = _randint(generator, 0, 2**31)
    path = workdir() / "checks" / f"{kind}-{tag}"
    if path.exists():
        import shutil

        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


# --- q9 · 04.4 write an IDX file that torchvision's MNIST reads ------------------------------------


def _idx_case(generator: torch.Generator, device: str) -> tuple[str, torch.Tensor]:
    root = _folder("idx", generator)
    if _randint(generator, 0, 2):
        shape: tuple[int, ...] = (_randint(generator, 1, 6), _randint(generator, 2, 30), _randint(generator, 2, 30))
    else:
        shape = (_randint(generator, 1, 300),)
    array = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8).to(device)
    return str(root / "data-idx-ubyte"), array


def write_idx(path, array):
    array = array.cpu().contiguous()
    header = bytes([0, 0, 0x08, array.dim()]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with open(path, "wb") as f:
        f.write(header + array.numpy().tobytes())


def _judge_idx(answer: Callable[..., Any], case: Case) -> None:
    path, array = case
    Path(path).unlink(missing_ok=True)
    call_answer(answer, path, array.clone())
    if not Path(path).exists():
        raise Mismatch("Your function wrote no file at `path`.")
    data = Path(path).read_bytes()
    header = 4 + 4 * array.dim()
    if len(data) != header + array.numel():
        raise Mismatch(
            f"Your file has {len(data)} bytes; a {array.dim()}-d uint8 IDX file of shape {tuple(array.shape)} "
            f"has {header + array.numel()}: a 4-byte magic number, 4 bytes per dimension, then one byte per value."
        )
    if data[:3] != bytes([0, 0, 0x08]) or data[3] != array.dim():
        raise Mismatch("The magic number is wrong: two zero bytes, 0x08 (uint8), then the number of dimensions.")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(array.dim())]
    if dims != list(array.shape):
        little = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "little") for i in range(array.dim())]
        if little == list(array.shape):
            raise Mismatch("The dimensions are little-endian; IDX stores them big-endian.")
        raise Mismatch(f"The header says shape {dims}; the array's shape is {list(array.shape)}.")
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    try:
        read = read_sn3_pascalvincent_tensor(path, strict=False)
    except Exception as error:
        raise Mismatch(f"torchvision could not read your file: {type(error).__name__}: {_first_line(error)}") from None
    compare(read, array.cpu(), "the array torchvision read back from your file")
