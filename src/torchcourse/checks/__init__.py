"""Graded exercises: the framework in :mod:`.core` and one module per chapter.

A chapter module declares ``chapter = Chapter("01_tensors", ...)`` and its exercises ``q1``, ``q2``...
:func:`chapters` finds every such module, so adding a chapter needs no registration here.
"""

from __future__ import annotations

import importlib
import pkgutil

from .core import Chapter, CheckFailed, Exercise, Outcome, Report, Status

__all__ = ["Chapter", "CheckFailed", "Exercise", "Outcome", "Report", "Status", "chapters"]


def chapters() -> dict[str, Chapter]:
    """Every chapter with exercises, by name (``'01_tensors'``...), in chapter order."""
    found: dict[str, Chapter] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "core":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        chapter = getattr(module, "chapter", None)
        if isinstance(chapter, Chapter):
            found[chapter.name] = chapter
    return dict(sorted(found.items()))
