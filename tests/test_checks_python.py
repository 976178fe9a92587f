"""Appendix 00 checks: every reference passes, typical wrong answers get the right feedback, and
different correct answers are accepted."""

from __future__ import annotations

import argparse
import ast
import json
import sys

import pytest
import torch
from grading import accepted, rejected

from torchcourse.checks import python as ch


def _cases(exercise):
    return [exercise.inputs(torch.Generator().manual_seed(exercise.seed(t)), "cpu") for t in range(exercise.trials)]




@pytest.mark.parametrize("exercise", list(ch.chapter.exercises.values()), ids=lambda ex: ex.id)
def test_reference_passes(exercise) -> None:
    accepted(exercise, exercise.reference)


def test_chapter_has_at_least_five_exercises_in_order() -> None:
    ids = list(ch.chapter.exercises)
    assert len(ids) >= 5 and ids == [f"q{i}" for i in range(1, len(ids) + 1)]
    assert ch.chapter.name == "00_python"


# --- q1 · log line


def test_q1_wrong_answers() -> None:
    rejected(ch.q1, lambda e, loss, a: f"epoch {e} | loss {loss:.4f} | acc {a:.1%}", "zero-padded")
    rejected(ch.q1, lambda e, loss, a: f"epoch {e:03d} | loss {loss:.4f} | acc {a * 100:.1%}", "multiplies by 100")
    rejected(ch.q1, lambda e, loss, a: f"epoch {e:03d} | loss {loss:.4f} | acc {a:.1f}%", "percentage")
    rejected(ch.q1, lambda e, loss, a: f"epoch {e:03d} | loss {loss:.2f} | acc {a:.1%}", "'loss' part")
    rejected(ch.q1, lambda e, loss, a: f"epoch {e:03d} loss {loss:.4f} acc {a:.1%}", "parts separated")
    rejected(ch.q1, lambda e, loss, a: loss, "expected a str")


def test_q1_other_correct_answers() -> None:
    accepted(ch.q1, lambda e, loss, a: "epoch {:03d} | loss {:.4f} | acc {:.1%}".format(e, loss.item(), a))  # noqa: UP032
    accepted(ch.q1, lambda e, loss, a: "epoch %03d | loss %.4f | acc %.1f%%" % (e, loss, round(a * 100, 1)))  # noqa: UP031
    accepted(ch.q1, lambda e, loss, a: " | ".join([f"epoch {e:0>3}", f"loss {float(loss):.4f}", f"acc {a:.1%}"]))


# --- q2 · *values, scale=


def test_q2_cases_have_several_counts() -> None:
    assert len({len(args) for args in _cases(ch.q2)}) >= 2


def test_q2_wrong_answers() -> None:
    rejected(ch.q2, lambda *values, scale=1.0: sum(values), "ignore `scale`")
    rejected(ch.q2, lambda *values, scale=1.0: scale * values[0] + sum(values[1:]), "first tensor")
    rejected(ch.q2, lambda values, scale=1.0: scale * sum(values), "raised TypeError")
    rejected(ch.q2, lambda *values, scale: scale * sum(values), "raised TypeError")  # no default
    rejected(ch.q2, lambda *values: sum(values[:-1]) * values[-1] if len(values) > 1 else values[0], "values differ")

    def positional_scale(*values, scale=1.0):  # a trailing number taken as the scale: not keyword-only
        if isinstance(values[-1], float):
            return values[-1] * sum(values[:-1])
        return scale * sum(values)

    rejected(ch.q2, positional_scale, "keyword-only")


def test_q2_other_correct_answers() -> None:
    accepted(ch.q2, lambda *values, **options: options.get("scale", 1.0) * sum(values))
    accepted(ch.q2, lambda *values, scale=1.0: sum(v * scale for v in values))

    def looped(*values, scale=1.0):
        out = torch.zeros_like(values[0])
        for v in values:
            out = out + v
        return out * scale

    accepted(ch.q2, looped)


# --- q3 · first, last, *middle


def test_q3_cases_include_tuples_lists_and_an_empty_middle() -> None:
    seqs = [args[0] for args in _cases(ch.q3)]
    assert any(isinstance(s, tuple) for s in seqs) and any(isinstance(s, list) for s in seqs)
    assert any(len(s) == 2 for s in seqs)


def test_q3_wrong_answers() -> None:
    rejected(ch.q3, lambda s: (s[0], s[-1], s[1:-1]), "keeps the input's type")
    rejected(ch.q3, lambda s: (s[0], s[-1], list(s[1:])), "includes the last item")
    rejected(ch.q3, lambda s: (s[0], list(s[1:-1]), s[-1]), "your result")  # wrong order
    rejected(ch.q3, lambda s: (s[0], s[-1], tuple(s[1:-1])), "expected a list")


def test_q3_other_correct_answers() -> None:
    accepted(ch.q3, lambda s: (s[0], s[-1], list(s[1:-1])))
    accepted(ch.q3, lambda s: (lambda first, *rest: (first, rest[-1], list(rest[:-1])))(*s))

    def by_index(s):
        items = list(s)
        return items.pop(0), items.pop(), items

    accepted(ch.q3, by_index)


# --- q4 · Prediction named tuple


def test_q4_wrong_answers() -> None:
    rejected(ch.q4, lambda x: tuple(ch.top_prediction(x)), "got a plain tuple")
    rejected(ch.q4, lambda x: ch.Prediction(torch.max(x, 1).indices, torch.max(x, 1).values), "not a probability")
    rejected(ch.q4, lambda x: ch.Prediction(*torch.max(torch.softmax(x, 1), 1)), "swapped")
    rejected(ch.q4, lambda x: ch.Prediction(*reversed(torch.max(torch.softmax(x, 0), 0))), "wrong shape")


def test_q4_other_correct_answers() -> None:
    from collections import namedtuple
    from typing import NamedTuple

    Mine = namedtuple("Prediction", "label score")  # the learner's own, same fields

    class Typed(NamedTuple):
        label: torch.Tensor
        score: torch.Tensor

    accepted(ch.q4, lambda x: Mine(x.argmax(1), torch.softmax(x, 1).amax(1)))
    accepted(ch.q4, lambda x: Typed(*reversed(torch.softmax(x, 1).max(dim=1))))
    accepted(ch.q4, lambda x: ch.Prediction(score=(x.exp() / x.exp().sum(1, keepdim=True)).max(1).values,
                                            label=x.max(1).indices))


# --- q5 · argparse


def _parser(lr_type=float, required=True, verbose=("-v", "--verbose"), shuffle="store_false"):
    def parse(argv):
        parser = argparse.ArgumentParser(prog="train.py")
        parser.add_argument("--lr", type=lr_type, default=0.1)
        parser.add_argument("--epochs", type=int, required=required)
        parser.add_argument(*verbose, action="store_true")
        parser.add_argument("--no-shuffle", dest="shuffle", action=shuffle)
        return parser.parse_args(argv)

    return parse


def test_q5_cases_vary_the_options() -> None:
    argvs = [args[0] for args in _cases(ch.q5)]
    joined = [" ".join(a) for a in argvs]
    assert any("--no-shuffle" in j for j in joined) and any("--no-shuffle" not in j for j in joined)
    assert any("--lr" in j for j in joined) and any("-v" in j.split() for j in joined)
    assert any("--epochs=" in j for j in joined) and any("--epochs " in j for j in joined)


def test_q5_wrong_answers() -> None:
    rejected(ch.q5, _parser(shuffle="store_true"), "shuffle is the wrong way round")
    rejected(ch.q5, lambda argv: ch._variant(argv, verbose="store_false"), "verbose is the wrong way round")
    rejected(ch.q5, _parser(lr_type=str), "['lr']", "expected a number")
    rejected(ch.q5, _parser(required=False), "--epochs is mandatory")
    rejected(ch.q5, _parser(verbose=("--verbose",)), "SystemExit", "unrecognized arguments")
    rejected(ch.q5, lambda argv: vars(ch.parse_train_args(argv)), "Namespace")


def test_q5_leaves_the_session_as_it_found_it(capsys) -> None:
    argv, stderr = list(sys.argv), sys.stderr
    rejected(ch.q5, _parser(verbose=("--verbose",)), "SystemExit")
    assert sys.argv == argv and sys.stderr is stderr
    assert capsys.readouterr().err == ""  # the parser's usage message did not leak


def test_q5_other_correct_answers() -> None:
    accepted(ch.q5, _parser(verbose=("--verbose", "-v")))

    def with_defaults(argv):
        parser = argparse.ArgumentParser()
        parser.add_argument("--epochs", required=True, type=int)
        parser.add_argument("--lr", default=0.1, type=float, help="rate (default: %(default)s)")
        parser.add_argument("--no-shuffle", action="store_false", dest="shuffle")
        parser.add_argument("--verbose", "-v", action="store_true")
        return parser.parse_args(argv)

    accepted(ch.q5, with_defaults)

    def set_defaults(argv):
        parser = argparse.ArgumentParser()
        parser.add_argument("--lr", type=float)
        parser.add_argument("--epochs", type=int, required=True)
        parser.add_argument("-v", "--verbose", action="store_true")
        parser.add_argument("--no-shuffle", dest="shuffle", action="store_false")
        parser.set_defaults(lr=0.1)
        return parser.parse_args(argv)

    accepted(ch.q5, set_defaults)


# --- q6 · literal_eval


def test_q6_first_trial_is_a_literal_and_payloads_are_among_the_trials() -> None:
    texts = [args[0] for args in _cases(ch.q6)]
    payloads = [t for t in texts if "_SIDE_EFFECTS" in t]
    assert "_SIDE_EFFECTS" not in texts[0] and payloads
    assert any(t.startswith("(") for t in texts) and any(t.startswith("{") for t in texts)
    ch._SIDE_EFFECTS.clear()
    assert eval(payloads[0]) is not None and ch._SIDE_EFFECTS == ["ran"]  # the payload really has an effect
    ch._SIDE_EFFECTS.clear()


def test_q6_wrong_answers() -> None:
    rejected(ch.q6, eval, "ran the text as code", "eval() executes")
    rejected(ch.q6, lambda text: eval(text, {"__builtins__": __builtins__}), "ran the text as code")
    rejected(ch.q6, json.loads, "raised JSONDecodeError")
    rejected(ch.q6, lambda text: text, "expected a")
    rejected(ch.q6, lambda text: ast.literal_eval(text) if "_SIDE" not in text else None, "must raise ValueError")
    assert ch._SIDE_EFFECTS == []  # grading cleans up after the payloads


def test_q6_non_literals_fail_in_more_than_one_way() -> None:
    """Every payload is a call that needs a builtin: a sandboxed eval or a refusal of calls passed them all."""

    def sandboxed(text):  # no builtins: every payload raises NameError, turned into ValueError
        try:
            return eval(text, {"__builtins__": {}})
        except Exception as error:
            raise ValueError(text) from error

    def no_calls(text):  # a call, an attribute or a name is refused, anything else evaluated
        tree = ast.parse(text, mode="eval")
        if any(isinstance(node, (ast.Call, ast.Attribute, ast.Name)) for node in ast.walk(tree)):
            raise ValueError(text)
        return eval(text, {"__builtins__": {}})

    for wrong in (sandboxed, no_calls):
        rejected(ch.q6, wrong, "must raise ValueError", "not a literal")
    assert ch._SIDE_EFFECTS == []


def test_q6_other_correct_answers() -> None:
    accepted(ch.q6, lambda text: ast.literal_eval(text))
    accepted(ch.q6, lambda text: ast.literal_eval(ast.parse(text, mode="eval")))

    def careful(text):
        tree = ast.parse(text, mode="eval")
        if any(isinstance(node, (ast.Call, ast.Attribute, ast.Name)) and not (
            isinstance(node, ast.Name) and node.id in ("True", "False", "None")) for node in ast.walk(tree)):
            raise ValueError("not a literal")
        return ast.literal_eval(tree)

    accepted(ch.q6, careful)
