"""Appendix 00 checks: every reference passes, typical wrong answers get the right feedback, and
different correct answers are accepted."""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import functools
import itertools
import json
import sys
from collections import namedtuple
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from grading import accepted, rejected

from torchcourse.checks import _python_protocols as protocols
from torchcourse.checks import python as ch


def _cases(exercise):
    """The random trials' cases, as grading builds them (q6's inputs also take the trial's number)."""
    return [exercise.make_case(t, "cpu") for t in range(exercise.trials)]


def _statement(qid):
    """The statement of ``qid`` in the exercise notebook (its markdown cell)."""
    notebook = json.loads((Path(__file__).parents[1] / "exercises" / "00_python.ipynb").read_text(encoding="utf-8"))
    texts = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown"]
    return next(t for t in texts if t.startswith(f"## {qid} "))


def _all_cases(exercise):
    """Every hidden case: the random trials, then the declared ones."""
    return [exercise.make_case(t, "cpu") for t in range(exercise.total_cases)]


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


def test_q1_the_statements_example_is_a_hidden_case() -> None:
    """The random trials' epochs are all 10 or more: one zero before the epoch passed them, though 7 gives 07."""
    cases = _all_cases(ch.q1)
    assert any(epoch < 10 for epoch, _, _ in cases) and any(epoch >= 10 for epoch, _, _ in cases)
    assert ch.log_line(*cases[ch.q1.trials]) == "epoch 007 | loss 0.1235 | acc 97.5%"  # the statement's example
    assert any(acc == 1.0 for _, _, acc in cases)  # "between 0 and 1": 100.0% too
    rejected(ch.q1, lambda e, loss, a: f"epoch 0{e} | loss {loss:.4f} | acc {a:.1%}", "'epoch' part")


# --- q2 · *values, scale=


def test_q2_cases_have_several_counts() -> None:
    assert len({len(args) for args in _cases(ch.q2)}) >= 2


def test_q2_one_tensor_alone_is_a_hidden_case() -> None:
    """"any number (at least one)": the random trials draw 2 to 4, so a declared case holds one (2-D) tensor."""
    cases = _all_cases(ch.q2)
    assert any(len(args) == 1 for args in cases) and any(args[0].dim() == 2 for args in cases)

    def pairwise(*values, scale=1.0):  # starts from the first two: breaks on one tensor alone
        out = values[0] + values[1]
        for v in values[2:]:
            out = out + v
        return scale * out

    rejected(ch.q2, pairwise, "IndexError")


def test_q2_wrong_answers() -> None:
    rejected(ch.q2, lambda *values, scale=1.0: sum(values), "ignore `scale`")
    rejected(ch.q2, lambda *values, scale=1.0: scale * values[0] + sum(values[1:]), "first tensor")
    rejected(ch.q2, lambda values, scale=1.0: scale * sum(values), "raised TypeError")
    rejected(ch.q2, lambda *values, scale: scale * sum(values), "raised TypeError")  # no default
    # no scale parameter, the last value taken as the scale: right for one tensor alone, where the call with
    # scale= is what fails (a refused keyword says more than wrong values)
    message = rejected(ch.q2, lambda *values: sum(values[:-1]) * values[-1] if len(values) > 1 else values[0],
                       "unexpected keyword argument 'scale'")
    assert "Your function returned" not in message  # scale= raised: the plain call's result is not shown as its
    rejected(ch.q2, lambda *values, scale=1.0: scale * (sum(values[:-1]) * values[-1] if values[1:] else values[0]),
             "values differ")

    def positional_scale(*values, scale=1.0):  # a trailing number taken as the scale: not keyword-only
        if isinstance(values[-1], float):
            return values[-1] * sum(values[:-1])
        return scale * sum(values)

    rejected(ch.q2, positional_scale, "keyword-only")


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


# --- q4 · Prediction named tuple


def test_q4_wrong_answers() -> None:
    rejected(ch.q4, lambda x: tuple(ch.top_prediction(x)), "got a plain tuple")
    rejected(ch.q4, lambda x: ch.Prediction(torch.max(x, 1).indices, torch.max(x, 1).values), "not a probability")
    rejected(ch.q4, lambda x: ch.Prediction(*torch.max(torch.softmax(x, 1), 1)), "swapped")
    rejected(ch.q4, lambda x: ch.Prediction(*reversed(torch.max(torch.softmax(x, 0), 0))), "wrong shape")


def test_q4_statement_does_not_demand_torch_max() -> None:
    """The statement points at torch.max's fields without requiring them, as the check does: argmax passes."""
    text = _statement("q4")
    assert "use its fields" not in text and "torch.max" in text
    accepted(ch.q4, lambda x: ch.Prediction(torch.argmax(x, dim=1), torch.softmax(x, dim=1).amax(dim=1)))


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


def test_q5_types_are_demanded_exactly() -> None:
    """The statement names an int, a float and two booleans: a float epoch count or a counted -v is wrong."""
    def typed(epochs=int, verbose=None):
        def parse(argv):
            parser = argparse.ArgumentParser()
            parser.add_argument("--lr", type=float, default=0.1)
            parser.add_argument("--epochs", type=epochs, required=True)
            parser.add_argument("-v", "--verbose", **(verbose or {"action": "store_true"}))
            parser.add_argument("--no-shuffle", dest="shuffle", action="store_false")
            return parser.parse_args(argv)

        return parse

    rejected(ch.q5, typed(epochs=float), "['epochs']", "expected an int, got a float")
    rejected(ch.q5, typed(verbose={"action": "count", "default": 0}), "['verbose']", "expected True or False")


# --- q6 · literal_eval


def _literal_eval_fails(text):
    """The kind of error ast.literal_eval raises for ``text``, or None where it returns."""
    try:
        ast.literal_eval(text)
    except Exception as error:  # noqa: BLE001 - which kind is the question
        return type(error)
    return None


def test_q6_first_trial_is_a_literal_and_payloads_are_among_the_trials() -> None:
    texts = [args[0] for args in _cases(ch.q6)]
    payloads = [t for t in texts if "_SIDE_EFFECTS" in t]
    assert "_SIDE_EFFECTS" not in texts[0] and _literal_eval_fails(texts[0]) is None and payloads
    assert "_SIDE_EFFECTS" in texts[1]  # an answer that runs code is told so before anything else
    assert any(t.startswith("(") for t in texts) and any(t.startswith("{") for t in texts)
    ch._SIDE_EFFECTS.clear()
    assert eval(payloads[0]) is not None and ch._SIDE_EFFECTS == ["ran"]  # the payload really has an effect
    ch._SIDE_EFFECTS.clear()


def test_q6_malformed_text_is_among_the_cases_and_the_reference_turns_it_into_value_error() -> None:
    """The statement: anything that is not a literal raises ValueError, text that is not valid Python included;
    ast.literal_eval itself raises SyntaxError or TypeError there (its documentation lists five kinds)."""
    texts = [args[0] for args in _all_cases(ch.q6)]
    kinds = [_literal_eval_fails(t) for t in texts]
    assert kinds.count(SyntaxError) >= 2 and TypeError in kinds  # unhashable key: {[1, 2]: 'lr'}
    assert any(k is SyntaxError for k in kinds[: ch.q6.trials])  # among the random trials too, not only declared
    for text, kind in zip(texts, kinds, strict=True):
        if kind is None:
            assert ch.parse_literal(text) == ast.literal_eval(text)
            continue
        with pytest.raises(ValueError) as caught:
            ch.parse_literal(text)
        assert type(caught.value) is ValueError and isinstance(caught.value.__cause__, kind)
    ch._SIDE_EFFECTS.clear()


def test_q6_hint_and_solution_agree_with_the_statement() -> None:
    hint = ch.q6.hints[-1]
    assert all(kind in hint for kind in ("SyntaxError", "TypeError", "MemoryError", "RecursionError", "ValueError"))
    solution = str(ch.q6.solution())
    assert "except (SyntaxError, TypeError, ValueError, MemoryError, RecursionError)" in solution
    assert "raise ValueError" in solution
    assert "not valid Python" in _statement("q6")


def test_q6_bare_literal_eval_is_rejected_for_the_syntax_error_it_lets_escape() -> None:
    for bare in (ast.literal_eval, lambda text: ast.literal_eval(text)):
        message = rejected(ch.q6, bare, "raised SyntaxError", "asks for ValueError", "SyntaxError escaped")
        assert "was never closed" in message  # what the error said, not where the grader caught it
        assert "except" not in message and "from" not in message and "literal_eval" not in message  # not the code


def test_q6_every_kind_that_escapes_is_named() -> None:
    def syntax_only(text):  # turns a syntax error into ValueError, but not the unhashable key's TypeError
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as error:
            raise ValueError(text) from error
        return ast.literal_eval(tree)

    rejected(ch.q6, syntax_only, "raised TypeError", "unhashable", "TypeError escaped", "asks for ValueError")

    def own_error(text):
        try:
            return ast.literal_eval(text)
        except Exception as error:  # noqa: BLE001
            raise RuntimeError("bad config") from error

    rejected(ch.q6, own_error, "raised RuntimeError (bad config)", "RuntimeError escaped")


def test_q6_wrong_answers() -> None:
    rejected(ch.q6, eval, "ran the text as code", "eval() executes")
    rejected(ch.q6, lambda text: eval(text, {"__builtins__": __builtins__}), "ran the text as code")
    rejected(ch.q6, json.loads, "raised JSONDecodeError")
    rejected(ch.q6, lambda text: text, "expected a")
    rejected(ch.q6, lambda text: ast.literal_eval(text) if "_SIDE" not in text else None, "must raise ValueError")
    assert ch._SIDE_EFFECTS == []  # grading cleans up after the payloads


def test_q6_eval_is_rejected_for_running_code_even_where_it_catches_every_error() -> None:
    def caught_eval(text):  # refuses malformed text as the statement asks, but runs the payloads
        try:
            return eval(text)
        except Exception as error:  # noqa: BLE001
            raise ValueError(text) from error

    rejected(ch.q6, caught_eval, "ran the text as code")
    assert ch._SIDE_EFFECTS == []


def test_q6_non_literals_fail_in_more_than_one_way() -> None:
    """Every payload is a call that needs a builtin: a sandboxed eval or a refusal of calls passed them all."""

    def sandboxed(text):  # no builtins: every payload raises NameError, turned into ValueError
        try:
            return eval(text, {"__builtins__": {}})
        except Exception as error:
            raise ValueError(text) from error

    def no_calls(text):  # a call, an attribute or a name is refused, anything else evaluated
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as error:
            raise ValueError(text) from error
        if any(isinstance(node, (ast.Call, ast.Attribute, ast.Name)) for node in ast.walk(tree)):
            raise ValueError(text)
        try:
            return eval(compile(tree, "<text>", "eval"), {"__builtins__": {}})
        except TypeError as error:
            raise ValueError(text) from error

    for wrong in (sandboxed, no_calls):
        rejected(ch.q6, wrong, "must raise ValueError", "not a literal")
    assert ch._SIDE_EFFECTS == []


# --- q7 · closures made in a loop


def test_q7_cases_hold_one_length_a_repeat_and_a_shortest_last() -> None:
    lengths = [args[0] for args in _all_cases(ch.q7)]
    assert any(len(w) == 1 for w in lengths) and any(len(set(w)) < len(w) for w in lengths)
    assert any(1 in w for w in lengths) and any(w[-1] == min(w) and len(w) > 1 for w in lengths)


def test_q7_wrong_answers() -> None:
    rejected(ch.q7, lambda ws: [lambda e: min(1.0, (e + 1) / w) for w in ws], "the last warm-up length",  # noqa: B023
             "after the loop has ended")
    rejected(ch.q7, lambda ws: [lambda e, i=i: min(1.0, (e + 1) / ws[i]) for i in range(len(ws))],
             "read the list `warmups` when they are called")
    rejected(ch.q7, lambda ws: [lambda e, w=w: min(1.0, e / w) for w in ws], "at epoch 0", "not right")
    rejected(ch.q7, lambda ws: [lambda e, w=w: (e + 1) / w for w in ws], "not right")
    rejected(ch.q7, lambda ws: tuple(lambda e, w=w: min(1.0, (e + 1) / w) for w in ws), "Expected a list")
    rejected(ch.q7, lambda ws: [lambda e, w=w: torch.tensor(min(1.0, (e + 1) / w)) for w in ws], "Python number")
    rejected(ch.q7, lambda ws: [min(1.0, 1 / w) for w in ws], "must be a function")
    rejected(ch.q7, lambda ws: ws.sort() or [lambda e, w=w: min(1.0, (e + 1) / w) for w in ws], "changed the list")


def test_q7_a_closure_that_never_returns_is_stopped(monkeypatch) -> None:
    """The functions the answer returns are called under the time limit too."""
    monkeypatch.setattr(ch.q7, "time_limit", 0.2)

    def forever(epoch):
        while True:
            pass

    rejected(ch.q7, lambda ws: [forever for _ in ws], "did not return within")


# --- q8 · a decorator that restores what it changed


def _decorator(restore="each", grad="no_grad", wraps=True, finally_=True, swallow=False):
    def evaluating(fn):
        def wrapper(model, *args, **kwargs):
            flags = [(m, m.training) for m in model.modules()]
            was = model.training
            model.eval()

            def put_back():
                if restore == "each":
                    for module, flag in flags:
                        module.training = flag
                elif restore == "top":
                    model.train(was)
                elif restore == "train":
                    model.train()

            before = torch.is_grad_enabled()
            try:
                if grad == "no_grad":
                    with torch.no_grad():
                        out = fn(model, *args, **kwargs)
                else:
                    torch.set_grad_enabled(False)
                    out = fn(model, *args, **kwargs)
                    torch.set_grad_enabled(before if grad == "restore" else True)
            except Exception:
                if not finally_:
                    raise
                if grad != "no_grad":
                    torch.set_grad_enabled(before if grad == "restore" else True)
                put_back()
                if swallow:
                    return None
                raise
            put_back()
            return out

        return functools.wraps(fn)(wrapper) if wraps else wrapper

    return evaluating


def test_q8_cases_mix_flags_grad_modes_and_errors() -> None:
    fns = [args[0] for args in _all_cases(ch.q8)]
    assert {fn.grad_before for fn in fns} == {True, False} and {fn.raises for fn in fns} == {True, False}
    assert any(len(set(fn.flags)) > 1 and fn.flags[0] is False for fn in fns)  # model.train(was) overwrites a child
    assert all(callable(ch.evaluating(fn)) for fn in fns)  # the reference takes the case as it is


def test_q8_wrong_answers() -> None:
    rejected(ch.q8, _decorator(wraps=False), "name, docstring, __wrapped__")
    rejected(ch.q8, _decorator(restore="top"), "training flags after the call", "its own flag")
    rejected(ch.q8, _decorator(restore="train"), "training flags after the call")
    rejected(ch.q8, _decorator(finally_=False), "after fn raised")
    rejected(ch.q8, _decorator(grad="always_on"), "Gradient recording was off before the call and is on")
    rejected(ch.q8, _decorator(swallow=True), "the error must reach the caller")
    rejected(ch.q8, lambda fn: fn, "Inside fn, gradient recording was on")
    rejected(ch.q8, lambda fn: functools.wraps(fn)(torch.no_grad()(fn)), "still in training mode")
    rejected(ch.q8, lambda fn: functools.wraps(fn)(lambda model, *a, **k: fn(model)), "raised TypeError")

    def twice(fn):
        @functools.wraps(fn)
        def wrapper(model, *args, **kwargs):
            fn(model, *args, **kwargs)
            return _decorator()(fn)(model, *args, **kwargs)

        return wrapper

    rejected(ch.q8, twice, "called fn 2 times")

    def drops_keywords(fn):
        return _decorator()(functools.wraps(fn)(lambda model, *args, **kwargs: fn(model, *args)))

    rejected(ch.q8, drops_keywords, "fn received scale=1.0")
    rejected(ch.q8, lambda fn: functools.wraps(fn)(lambda m, *a, **k: _decorator()(fn)(copy.deepcopy(m), *a, **k)),
             "another model")
    rejected(ch.q8, lambda fn: _decorator(wraps=False)(functools.wraps(fn)(lambda *a, **k: fn(*a, **k) + 0)),
             "not what fn returned")


def test_q8_leaves_grad_mode_and_the_session_as_it_found_it() -> None:
    before = torch.is_grad_enabled()
    rejected(ch.q8, _decorator(grad="always_on"), "Gradient recording")
    rejected(ch.q8, _decorator(finally_=False), "after fn raised")
    assert torch.is_grad_enabled() == before


# --- q9 · a lazy generator


def test_q9_cases_span_the_sources_and_sizes() -> None:
    cases = _all_cases(ch.q9)
    assert {type(source) for source, _ in cases} == {list, range, protocols._Source}
    sources = [source for source, _ in cases if isinstance(source, protocols._Source)]
    assert any(s.length is None for s in sources) and any(s.length is not None for s in sources)
    finite = [(len(source), n) for source, n in cases if not isinstance(source, protocols._Source)]
    finite += [(s.length, n) for s, n in cases if isinstance(s, protocols._Source) and s.length is not None]
    assert any(length % n for length, n in finite) and any(length and not length % n for length, n in finite)
    assert (0, 2) in finite and any(n == 1 for _, n in finite) and any(n > length > 0 for length, n in finite)


def _eager(iterable, n):
    items = list(iterable)
    yield from (tuple(items[i:i + n]) for i in range(0, len(items), n))


def _lookahead(iterable, n):  # reads one item ahead of the batch it yields
    iterator = iter(iterable)
    batch = [next(iterator, None)]
    for item in iterator:
        if len(batch) == n:
            yield tuple(batch)
            batch = []
        batch.append(item)
    if batch != [None]:
        yield tuple(batch)


def _trailing_empty(iterable, n):
    iterator = iter(iterable)
    while True:
        batch = tuple(itertools.islice(iterator, n))
        yield batch
        if len(batch) < n:
            return


def test_q9_wrong_answers() -> None:
    rejected(ch.q9, _eager, "kept reading", "endless")
    rejected(ch.q9, lambda it, n: [tuple(it[i:i + n]) for i in range(0, len(it), n)], "must come one at a time")
    rejected(ch.q9, lambda it, n: iter(list(zip(*[iter(it)] * n, strict=False))), "kept reading")
    rejected(ch.q9, lambda it, n: zip(*[iter(it)] * n, strict=False), "items at the end are missing")
    rejected(ch.q9, lambda it, n: (list(b) for b in ch.batched(it, n)), "must be a tuple")
    rejected(ch.q9, _lookahead, "reads ahead")
    rejected(ch.q9, _trailing_empty, "an empty batch")
    rejected(ch.q9, lambda it, n: (tuple(it[i:i + n]) for i in range(0, len(it), n)), "raised TypeError")
    rejected(ch.q9, lambda it, n: map(tuple, zip(*[iter(it)] * 1, strict=False)), "one more batch")


def test_q9_a_generator_that_never_ends_is_stopped(monkeypatch) -> None:
    monkeypatch.setattr(ch.q9, "time_limit", 0.2)

    def spin(iterable, n):
        while True:
            yield from ()

    rejected(ch.q9, spin, "did not return within")


# --- three different correct answers for every exercise


def _q2_looped(*values, scale=1.0):
    out = torch.zeros_like(values[0])
    for v in values:
        out = out + v
    return out * scale


def _q3_by_pop(s):
    items = list(s)
    return items.pop(0), items.pop(), items


class _Typed(NamedTuple):  # a learner's own named tuple, with the statement's fields
    label: torch.Tensor
    score: torch.Tensor


_Mine = namedtuple("Prediction", "label score")


def _q5_boolean_optional(argv):  # --shuffle/--no-shuffle in one option; verbose as a stored constant
    parser = argparse.ArgumentParser()
    parser.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--verbose", "-v", action="store_const", const=True, default=False)
    parser.add_argument("--epochs", type=int, required=True, metavar="N")
    parser.add_argument("--lr", type=float, default=0.1)
    return parser.parse_args(argv)


def _q5_with_help(argv):
    parser = argparse.ArgumentParser(description="train a model")
    parser.add_argument("--epochs", required=True, type=int)
    parser.add_argument("--lr", default="0.1", type=float, help="rate (default: %(default)s)")  # a str default
    parser.add_argument("--no-shuffle", action="store_false", dest="shuffle")
    parser.add_argument("--verbose", "-v", action="store_true")
    return parser.parse_args(argv)


def _q5_set_defaults(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--no-shuffle", dest="shuffle", action="store_false")
    parser.set_defaults(lr=0.1)
    return parser.parse_args(argv)


def _q6_any_error(text):  # whatever ast.literal_eval raises, the text is not a literal
    try:
        return ast.literal_eval(text)
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"{text!r} is not a literal") from error


def _q6_parse_then_convert(text):  # two steps, each error turned into ValueError where it arises
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        raise ValueError(f"not valid Python: {error.msg}") from None
    try:
        return ast.literal_eval(tree)
    except TypeError as error:  # an unhashable key, as in {[1]: 2}
        raise ValueError(str(error)) from None


def _q6_by_hand(text):  # the parsed tree converted node by node: only literal nodes have a value
    try:
        body = ast.parse(text, mode="eval").body
    except SyntaxError as error:
        raise ValueError(error.msg) from error

    def value(node):
        if isinstance(node, ast.Constant):
            return node.value
        if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)
                and type(node.operand.value) in (int, float)):
            return -node.operand.value
        if isinstance(node, (ast.Tuple, ast.List)):
            items = [value(item) for item in node.elts]
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.Dict) and None not in node.keys:
            out = {}
            for key_node, value_node in zip(node.keys, node.values, strict=True):
                key = value(key_node)
                try:
                    hash(key)
                except TypeError:
                    raise ValueError(f"a dict key must be hashable, got {key!r}") from None
                out[key] = value(value_node)
            return out
        raise ValueError(f"not a literal: {ast.unparse(node)}")

    return value(body)


def _q7_partial(warmups):
    return [functools.partial(lambda length, epoch: min(1.0, (epoch + 1) / length), w) for w in warmups]


def _q7_def_in_loop(warmups):
    factors = []
    for length in warmups:
        def factor(epoch, length=length):
            return 1.0 if epoch + 1 >= length else (epoch + 1) / length

        factors.append(factor)
    return factors


class _Ramp:
    def __init__(self, length):
        self.length = length

    def __call__(self, epoch):
        return min((epoch + 1) / self.length, 1.0)


def _q8_contextlib(fn):  # a context manager of its own for the flags, torch.inference_mode for the graph
    @contextlib.contextmanager
    def eval_mode(model):
        flags = {m: m.training for m in model.modules()}
        model.eval()
        try:
            yield
        finally:
            for module, flag in flags.items():
                module.training = flag

    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        with eval_mode(model), torch.inference_mode():
            return fn(model, *args, **kwargs)

    return wrapper


def _q8_set_grad(fn):  # set_grad_enabled(False) as a context; train(flag) on each module, parents first
    def wrapper(model, *args, **kwargs):
        flags = [m.training for m in model.modules()]
        model.train(False)
        try:
            with torch.set_grad_enabled(False):
                return fn(model, *args, **kwargs)
        finally:
            for module, flag in zip(model.modules(), flags, strict=True):  # parents first: children override
                module.train(flag)

    functools.update_wrapper(wrapper, fn)
    return wrapper


def _q9_appending(iterable, n):
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == n:
            yield tuple(batch)
            batch = []
    if batch:
        yield tuple(batch)


class _Batches:  # an iterator class, not a generator
    def __init__(self, iterable, n):
        self.iterator, self.n = iter(iterable), n

    def __iter__(self):
        return self

    def __next__(self):
        batch = tuple(itertools.islice(self.iterator, self.n))
        if not batch:
            raise StopIteration
        return batch


def _q9_next_loop(iterable, n):
    iterator = iter(iterable)
    while True:
        batch = []
        for _ in range(n):
            try:
                batch.append(next(iterator))
            except StopIteration:
                break
        if not batch:
            return
        yield tuple(batch)


CORRECT = {
    "q1": [lambda e, loss, a: "epoch {:03d} | loss {:.4f} | acc {:.1%}".format(e, loss.item(), a),  # noqa: UP032
           lambda e, loss, a: "epoch %03d | loss %.4f | acc %.1f%%" % (e, loss, round(a * 100, 1)),  # noqa: UP031
           lambda e, loss, a: " | ".join([f"epoch {e:0>3}", f"loss {float(loss):.4f}", f"acc {a:.1%}"])],
    "q2": [lambda *values, **options: options.get("scale", 1.0) * sum(values),
           lambda *values, scale=1.0: sum(v * scale for v in values),
           _q2_looped],
    "q3": [lambda s: (s[0], s[-1], list(s[1:-1])),
           lambda s: (lambda first, *rest: (first, rest[-1], list(rest[:-1])))(*s),
           _q3_by_pop],
    "q4": [lambda x: _Mine(x.argmax(1), torch.softmax(x, 1).amax(1)),
           lambda x: _Typed(*reversed(torch.softmax(x, 1).max(dim=1))),
           lambda x: ch.Prediction(score=(x.exp() / x.exp().sum(1, keepdim=True)).max(1).values,
                                   label=x.max(1).indices)],
    "q5": [_q5_boolean_optional, _q5_with_help, _q5_set_defaults],
    "q6": [_q6_any_error, _q6_parse_then_convert, _q6_by_hand],
    "q7": [_q7_partial, _q7_def_in_loop, lambda warmups: list(map(_Ramp, warmups))],
    "q8": [_q8_contextlib, _q8_set_grad, _decorator(grad="restore")],
    "q9": [_q9_appending, _Batches, _q9_next_loop],
}


def test_every_exercise_has_three_correct_answers() -> None:
    assert set(CORRECT) == set(ch.chapter.exercises) and all(len(a) == 3 for a in CORRECT.values())


@pytest.mark.parametrize(("qid", "index"), [(q, i) for q in CORRECT for i in range(3)])
def test_three_correct_answers_are_accepted(qid, index) -> None:
    accepted(ch.chapter.exercises[qid], CORRECT[qid][index])
    assert ch._SIDE_EFFECTS == []
