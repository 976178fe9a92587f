"""Copying, walking and showing the values a check handles: cases, results and printed output."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch._tensor_str import PRINT_OPTS

from .compare import _is_named_tuple, _is_number, describe


def clone_case(value: Any) -> Any:
    """An independent copy of the inputs (tensors cloned, leaves kept as leaves, modules deep-copied)."""
    if _holds_modules(value):
        try:  # one deepcopy keeps a model and its optimizer pointing at the same parameters
            return copy.deepcopy(value)
        except Exception:  # noqa: BLE001 - non-leaf tensors refuse deepcopy: copy item by item
            pass
    return _clone(value)


def _holds_modules(value: Any) -> bool:
    if isinstance(value, (torch.nn.Module, torch.optim.Optimizer)):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_modules(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_modules(v) for v in value.values())
    return False


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            return torch.empty_like(value).requires_grad_(value.requires_grad)
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, torch.Generator):  # learner and reference must draw the same numbers
        twin = torch.Generator(device=value.device)
        twin.set_state(value.get_state())
        return twin
    if isinstance(value, torch.nn.Module):
        return copy.deepcopy(value)
    if _is_named_tuple(value) and hasattr(value, "_fields"):
        return type(value)(*(_clone(v) for v in value))
    if isinstance(value, tuple):
        return tuple(_clone(v) for v in value)
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _modules(value: Any) -> list[torch.nn.Module]:
    if isinstance(value, torch.nn.Module):
        return [value]
    if isinstance(value, (list, tuple)):
        return [m for v in value for m in _modules(v)]
    if isinstance(value, dict):
        return [m for v in value.values() for m in _modules(v)]
    return []


def same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Do two strided tensors share memory (the same storage)?"""
    if a.layout != torch.strided or b.layout != torch.strided:
        return False
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _size(case: Any) -> float:
    """How big a case is, to pick the smallest failing one: elements, then integer arguments."""
    total = 0.0
    for value in case if isinstance(case, (list, tuple)) else (case,):
        if isinstance(value, torch.Tensor):
            total += value.numel()
        elif isinstance(value, (list, tuple, dict)):
            total += _size(list(value.values()) if isinstance(value, dict) else value)
        elif _is_number(value):
            total += abs(value) * 1e-3
    return total


def show(value: Any, limit: int = 400) -> str:
    """A short printable form of a value (small tensors in full), for feedback."""
    saved = vars(PRINT_OPTS).copy()
    try:
        torch.set_printoptions(precision=4, threshold=24, edgeitems=2, linewidth=100, sci_mode=None)
        if isinstance(value, torch.Generator):
            text = f"torch.Generator(device='{value.device}')"
        elif isinstance(value, torch.nn.Module):
            text = f"{type(value).__name__}(...)"
        elif isinstance(value, torch.Tensor) and value.layout != torch.strided:
            text = f"a {str(value.layout).replace('torch.', '')} tensor{tuple(value.shape)}"
        else:
            text = repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails is described instead
        text = describe(value)
    finally:
        for key, old in saved.items():
            setattr(PRINT_OPTS, key, old)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."



def _printed(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    lines = text.splitlines()
    shown = "\n".join(line[:200] for line in lines[:6])
    more = f"\n... ({len(lines) - 6} more lines)" if len(lines) > 6 else ""
    return f"\nYour function printed:\n{shown}{more}"
