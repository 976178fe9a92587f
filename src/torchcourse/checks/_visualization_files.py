"""Folders and files as inputs of chapter 06's TensorBoard exercises (q1 reads a run, q2 writes one).

:func:`snapshot` records every file under a folder (its bytes' digest and its modification time) and
:func:`folder_changes` names, in words, the first file the learner's function deleted, renamed, rewrote or
added: a function that was handed a folder to read leaves it as it found it, and one that writes a run next
to what a folder already holds leaves what was there. :func:`stray_file` puts a file that is not an event
file into a run folder, under a name drawn from the case's generator (a notes file, a checkpoint...), so
that an answer reading every file of the folder as events, or one fixed name, shows. :func:`value_change`
names the first change to a list or dict argument (q2's history, q6's losses), compared with a copy taken
before the call. :func:`scalars` reads
a tag back whichever way it was logged: ``add_scalar`` writes a ``simple_value``, and with ``new_style=True``
a tensor summary of the scalars plugin, which TensorBoard draws as the same chart.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import torch

from .core import randint as _randint

File = tuple[int, int, str]  # size, modification time (ns), digest of the bytes

_STRAY = ("notes.txt", "config.yaml", "best.pt", "metrics.csv", "README.md", "hparams.json", ".DS_Store")


def stray_file(folder: Path, generator: torch.Generator) -> str:
    """Write a file that is not an event file into ``folder``, under a drawn name; its name."""
    name = _STRAY[_randint(generator, 0, len(_STRAY))]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(f"kept by the caller: {name}\n".encode() * _randint(generator, 1, 4))
    return name


def snapshot(folder: Path) -> dict[str, File]:
    """Every file under ``folder`` (its path relative to it, in POSIX form); empty when there is no such folder."""
    files: dict[str, File] = {}
    if not folder.is_dir():
        return files
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            files[path.relative_to(folder).as_posix()] = (len(data), path.stat().st_mtime_ns,
                                                          hashlib.sha256(data).hexdigest())
    return files


def folder_changes(before: dict[str, File], after: dict[str, File], *, may_add: bool) -> str | None:
    """The first change to the files of ``before``, in words (``may_add``: new files are no change)."""
    added = [name for name in after if name not in before]
    for name, (_, _, digest) in before.items():
        if name in after:
            if after[name][2] != digest:
                return f"rewrote `{name}` (its contents changed)"
            if after[name][1] != before[name][1]:
                return f"rewrote `{name}` (the same bytes, but written again: its modification time changed)"
            continue
        moved = [new for new in added if after[new][2] == digest]
        if moved:
            return f"renamed or moved `{name}` to `{moved[0]}`"
        return f"deleted `{name}`"
    if added and not may_add:
        return f"added `{added[0]}`"
    return None


def scalars(logdir: Path, tag: str) -> list[tuple[int, float]] | None:
    """``(step, value)`` of the scalar ``tag`` in the run at ``logdir``, however it was logged; None without it."""
    if not logdir.is_dir():
        return None
    from ..tensorboard import read_run

    run = read_run(logdir)
    tags = run.Tags()
    if tag in tags.get("scalars", ()):
        return [(e.step, e.value) for e in run.Scalars(tag)]
    if tag in tags.get("tensors", ()) and _plugin(run, tag) == "scalars":  # add_scalar(..., new_style=True)
        from tensorboard.util import tensor_util

        return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in run.Tensors(tag)]
    return None


def _plugin(run: Any, tag: str) -> str:
    try:
        return str(run.SummaryMetadata(tag).plugin_data.plugin_name)
    except (KeyError, AttributeError):
        return ""


def value_change(name: str, before: Any, after: Any) -> str | None:
    """The first difference between ``before`` (a deep copy taken before the call) and ``after``, in words."""
    if isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            return f"`{name}`, a list, held {len(before)} items and now holds {len(after)}"
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            change = value_change(f"{name}[{i}]", b, a)
            if change:
                return change
        return None
    if isinstance(before, dict) and isinstance(after, dict):
        for key in before:
            if key not in after:
                return f"`{name}` lost its key {key!r}"
        for key in after:
            if key not in before:
                return f"`{name}` gained a key {key!r}"
        for key in before:
            change = value_change(f"{name}[{key!r}]", before[key], after[key])
            if change:
                return change
        return None
    if type(before) is not type(after):
        return f"`{name}` was {_short(before)} and is now {_short(after)}"
    both_nan = isinstance(before, float) and math.isnan(before) and math.isnan(after)
    if not both_nan and before != after:
        return f"`{name}` was {_short(before)} and is now {_short(after)}"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
