"""Appendix 00's text from outside (declared in :mod:`.python`): q5's command lines, the parser and its wrong
variants; q6's literals, text cut short, and payloads that would leave a side effect in ``_SIDE_EFFECTS`` if the
learner's code ran them."""

from __future__ import annotations

import argparse
import ast
from typing import Any

import torch

from .core import Case, Mismatch, describe, uniform
from .core import randint as _randint

_SIDE_EFFECTS: list[str] = []  # what q6's hidden payloads append to, if the learner's code runs them


# --- q5 · 00.4 a training script's parser ------------------------------------------------------


def _argv_case(generator: torch.Generator, device: str) -> Case:
    epochs = _randint(generator, 1, 50)
    argv = [f"--epochs={epochs}"] if _randint(generator, 0, 2) else ["--epochs", str(epochs)]
    if _randint(generator, 0, 3):
        argv += ["--lr", str(round(uniform(generator, 1e-4, 1.0), 5))]
    if _randint(generator, 0, 2):
        argv.append("-v" if _randint(generator, 0, 2) else "--verbose")
    if _randint(generator, 0, 2):
        argv.append("--no-shuffle")
    groups: list[list[str]] = []  # keep each option next to its value while shuffling
    for item in argv:
        if item.startswith("-"):
            groups.append([item])
        else:
            groups[-1].append(item)
    order = torch.randperm(len(groups), generator=generator).tolist()
    return ([word for i in order for word in groups[i]],)


def parse_train_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="train.py")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--no-shuffle", dest="shuffle", action="store_false")
    return parser.parse_args(argv)


def _namespace(value: Any) -> dict[str, Any]:
    if not isinstance(value, argparse.Namespace):
        raise Mismatch(f"your result: expected the Namespace that parse_args returns, got {describe(value)}.")
    return vars(value)


def _variant(argv: list[str], shuffle: str = "store_false", verbose: str = "store_true") -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="train.py")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("-v", "--verbose", action=verbose)
    parser.add_argument("--no-shuffle", dest="shuffle", action=shuffle)
    return parser.parse_args(argv)


# --- q6 · 00.4 parse a literal, never run code ---------------------------------------------------

_PAYLOADS = [
    "__import__('torchcourse.checks.python').checks.python._SIDE_EFFECTS.append('ran') or [1, 2]",
    "[__import__('torchcourse.checks.python').checks.python._SIDE_EFFECTS.append('ran'), 3][1:]",
    "{'lr': __import__('torchcourse.checks.python').checks.python._SIDE_EFFECTS.append('ran') or 0.1}",
]


def _literal(generator: torch.Generator, depth: int = 0) -> Any:
    kind = _randint(generator, 0, 8 if depth < 2 else 5)
    if kind == 0:
        return _randint(generator, -100, 100)
    if kind == 1:
        return round(uniform(generator, -10.0, 10.0), 3)
    if kind == 2:
        return "".join("abcxyz_"[_randint(generator, 0, 7)] for _ in range(_randint(generator, 0, 6)))
    if kind == 3:
        return (True, False, None)[_randint(generator, 0, 3)]
    if kind == 4:
        return _randint(generator, 0, 2) == 1
    if kind == 5:
        return [_literal(generator, depth + 1) for _ in range(_randint(generator, 0, 4))]
    if kind == 6:
        return tuple(_literal(generator, depth + 1) for _ in range(_randint(generator, 0, 4)))
    return {f"k{i}": _literal(generator, depth + 1) for i in range(_randint(generator, 0, 4))}


def _text_case(generator: torch.Generator, device: str, trial: int = 0) -> Case:
    """Trial 0 is a literal (an answer that refuses everything is told so first), trial 1 a payload (an answer
    that runs code is told that before anything else), trial 2 a literal cut short (not valid Python: SyntaxError
    in ``ast.literal_eval``); the others any of the four kinds. Without ``trial`` (a caller that knows only
    ``inputs(generator, device)``) it builds trial 0's kind."""
    if trial == 0:  # kinds: 0 a payload, 1 a tuple, 2 a dict, 3 a tuple or dict cut short
        kind = _randint(generator, 1, 3)
    elif trial in (1, 2):
        kind = 0 if trial == 1 else 3
    else:
        kind = _randint(generator, 0, 4)
    if kind == 0:
        return (_PAYLOADS[_randint(generator, 0, len(_PAYLOADS))],)
    value = [_literal(generator, 1) for _ in range(_randint(generator, 1, 4))]
    text = repr(tuple(value) if kind == 1 else {"values": value, "lr": _literal(generator, 2)})
    if kind == 3:  # cut before its closing bracket: the bracket is never closed, whatever else is left
        text = text[: _randint(generator, 1, len(text))]
    return (text,)


def parse_literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (SyntaxError, TypeError, ValueError, MemoryError, RecursionError) as error:  # its malformed input
        raise ValueError(f"not a Python literal: {text!r}") from error


def _ran_code() -> str | None:
    if _SIDE_EFFECTS:
        _SIDE_EFFECTS.clear()
        return (
            "Your function ran the text as code: a hidden input carried a harmless payload, and its side effect "
            "happened. eval() executes whatever expression the text holds."
        )
    return None
