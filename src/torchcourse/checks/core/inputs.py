"""Inputs left alone: what a check records of the arguments before and after the learner's call.

Per tensor its ``requires_grad``, ``.grad`` and version counter; per module its parameters'
``requires_grad``. :func:`_input_changes` names the first change in words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .values import _modules, _tensors

Case = tuple[Any, ...]


def _input_state(case: Case) -> list[tuple[Any, ...]]:
    """What a check compares of its inputs: per tensor requires_grad, .grad and _version; per module parameter."""
    state: list[tuple[Any, ...]] = []
    for t in _tensors(case):
        grad = t.grad.detach().clone() if t.is_leaf and t.grad is not None else None
        state.append(("tensor", t.requires_grad, grad, t._version if t.layout == torch.strided else 0))
    for module in _modules(case):
        for name, p in module.named_parameters():
            state.append(("parameter", name, p.requires_grad))
    for path, value in _walk(case, ()):
        if isinstance(value, list):
            state.append(("container", path, "list", len(value), tuple(map(id, value))))
        elif isinstance(value, dict):
            state.append(("container", path, "dict", len(value), tuple((k, id(v)) for k, v in value.items())))
        elif isinstance(value, torch.nn.Module):
            state.append(("module", path, tuple(m.training for m in value.modules()),
                          tuple(t._version for t in value.parameters()), tuple(t._version for t in value.buffers())))
    return state


def _walk(value: Any, path: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], Any]]:
    """Every list, dict and module in a case, with its path (argument index, then keys)."""
    found: list[tuple[tuple[Any, ...], Any]] = []
    if isinstance(value, (list, dict, torch.nn.Module)) and path:
        found.append((path, value))
    if isinstance(value, (list, tuple)) and not isinstance(value, torch.nn.Module):
        for i, item in enumerate(value):
            found += _walk(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _walk(item, (*path, key))
    return found


def _other_changes(before: list[tuple[Any, ...]], after: list[tuple[Any, ...]], reference_before: list[tuple[Any, ...]],
                   reference_after: list[tuple[Any, ...]], names: Sequence[str]) -> str | None:
    """Lists, dicts and modules among the inputs that the learner changed and the reference left alone."""
    kinds = ("container", "module")
    rows = zip(*([s for s in state if s[0] in kinds] for state in (before, after, reference_before, reference_after)),
               strict=False)
    for b, a, rb, ra in rows:
        reference_changed = rb[2:] != ra[2:]  # what the reference itself changes may change
        name = _path_name(b[1], names)
        if b[0] == "container" and b[3:] != a[3:] and not reference_changed:
            if b[3] != a[3]:
                return (f"Your function changed its input {name}, a {b[2]}: it held {b[3]} items and now holds "
                        f"{a[3]}. The caller's {b[2]} must be left as it was: build a new one.")
            return (f"Your function changed its input {name}, a {b[2]}: its items were replaced in place. The "
                    f"caller's {b[2]} must be left as it was: build a new one.")
        if b[0] == "module" and not reference_changed:
            if b[2] != a[2]:
                mode = "evaluation (eval())" if not all(a[2]) and all(b[2]) else "another"
                return (f"Your function left the model {name} in {mode} mode: the caller's model must come back in "
                        "the mode it had (remember model.training, and call model.train(that) at the end).")
            if b[3] != a[3] or b[4] != a[4]:
                which = "parameters" if b[3] != a[3] else "buffers (running statistics)"
                return f"Your function changed the {which} of the model {name} in place."
    return None


def _path_name(path: tuple[Any, ...], names: Sequence[str]) -> str:
    head = names[path[0]] if path and path[0] < len(names) else f"argument {path[0] + 1 if path else 1}"
    return "`" + head + "".join(f"[{k!r}]" for k in path[1:]) + "`"


def _input_changes(case: Case, learner_case: Case, before: list[tuple[Any, ...]], after: list[tuple[Any, ...]],
                   names: Sequence[str], grads_may_change: bool) -> str | None:
    """The first way the learner's function changed one of its inputs, in words."""
    where = {}
    for arg_name, value in zip(names, case, strict=False):
        for _ in _tensors(value):
            where[len(where)] = f"`{arg_name}`"
    tensors_before = [s for s in before if s[0] == "tensor"]
    tensors_after = [s for s in after if s[0] == "tensor"]
    pairs = zip(_tensors(case), _tensors(learner_case), tensors_before, tensors_after, strict=False)
    for i, (original, given, b, a) in enumerate(pairs):
        name = where.get(i, f"(tensor argument {i})")
        if b[1] != a[1]:
            return (f"Your function switched requires_grad of its input {name} "
                    f"{'off' if b[1] else 'on'}: the caller's tensor is no longer what it was.")
        if not grads_may_change and not _same_grad(b[2], a[2]):
            return f"Your function changed the .grad of its input {name} (backward on it, or an assignment)."
        same = (original.device.type == "meta" or original.layout != torch.strided
                or (original.shape == given.shape and bool(torch.equal(original.detach(), given.detach()))))
        if not same:
            return (f"Your function changed its input {name} in place: the caller's tensor is no longer "
                    "what it was.")
        if b[3] != a[3]:
            return (f"Your function changed its input {name} in place (its version counter went up, even "
                    "though the values ended up the same).")
    for b, a in zip([s for s in before if s[0] == "parameter"], [s for s in after if s[0] == "parameter"],
                    strict=False):
        if b[2] != a[2]:
            return f"Your function switched requires_grad of the module's parameter {b[1]} {'off' if b[2] else 'on'}."
    return None


def _same_grad(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.shape == b.shape and a.device == b.device and bool(torch.equal(a, b)) if a.device.type != "meta" else True
