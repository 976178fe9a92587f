"""The cell rewriter behind the tracer's cell hooks (``torchcourse.tracing`` explains why cells are rewritten).

:class:`CellRewriter` is the IPython AST transformer; :class:`_CallSites` passes every call site through
``__torchcourse_call__`` and the left operand of a watched operator through ``__torchcourse_operand__``.
"""

from __future__ import annotations

import ast
import copy
import types
from typing import TYPE_CHECKING

from ._tracing_common import _BINOP_DUNDERS, CALL_HOOK, OPERAND_HOOK

if TYPE_CHECKING:
    from .tracing import Tracer


class _CallSites(ast.NodeTransformer):
    def __init__(self, operators: set[str]) -> None:
        self.operators = operators

    @staticmethod
    def _hook(name: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
        call = ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=args, keywords=[])
        for node in (call, call.func, *(a for a in args if not hasattr(a, "lineno"))):
            ast.copy_location(node, like)
        return call

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("super", CALL_HOOK, OPERAND_HOOK):
            return node  # zero-argument super() stays as the compiler expects it
        node.func = self._hook(CALL_HOOK, [func], func)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        dunder = _BINOP_DUNDERS.get(type(node.op))
        if dunder in self.operators:
            node.left = self._hook(OPERAND_HOOK, [ast.Constant(dunder), node.left], node.left)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.generic_visit(node)  # subclassing a C type (class Pair(tuple)) demonstrates it too
        node.bases = [b if isinstance(b, ast.Starred) else self._hook(CALL_HOOK, [b], b) for b in node.bases]
        return node


class CellRewriter:
    """The IPython AST transformer behind the cell hooks (``shell.ast_transformers``).

    ``visit(tree)`` returns a rewritten copy of a cell's AST, or the tree unchanged if anything
    goes wrong (IPython would otherwise unregister it with a warning in the cell's output).
    """

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self.cells = 0

    def visit(self, tree: ast.AST) -> ast.AST:
        try:
            new = _CallSites(set(self.tracer._operators)).visit(copy.deepcopy(tree))
            ast.fix_missing_locations(new)
        except Exception:  # noqa: BLE001 - a cell the rewriter cannot handle runs as written
            return tree
        self.cells += 1
        return new

    def compile(self, source: str, filename: str = "<lesson>", mode: str = "exec") -> types.CodeType:
        """Compile ``source`` as a rewritten cell (for tests and scripts)."""
        return compile(self.visit(ast.parse(source, filename, mode)), filename, mode)
