"""Walk and draw the autograd graph behind a tensor, and measure what it saves for backward."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Graph", "SavedLog", "draw_graph", "format_graph", "saved_tensors", "walk"]


@dataclass
class Graph:
    """The backward nodes reachable from a tensor: labels by node id, edges, depth of each node."""

    labels: dict[int, str] = field(default_factory=dict)
    edges: list[tuple[int, int]] = field(default_factory=list)
    depth: dict[int, int] = field(default_factory=dict)

    def names(self) -> list[str]:
        """Node labels in breadth-first order from the root."""
        return list(self.labels.values())

    def named_edges(self) -> list[tuple[str, str]]:
        """Edges as (label, label) pairs, from a node to the node it passes gradients to."""
        return [(self.labels[a], self.labels[b]) for a, b in self.edges]


def _label(node: Any, names: Mapping[str, torch.Tensor]) -> str:
    """A node's class name; an AccumulateGrad also names (or describes) the leaf it fills."""
    label = type(node).__name__
    leaf = getattr(node, "variable", None)
    if leaf is not None:
        found = [name for name, tensor in names.items() if tensor is leaf]
        label += f"({found[0]})" if found else f"{tuple(leaf.shape)}"
    return label


def _key(node: Any) -> int:
    """Who a node is. An AccumulateGrad is the leaf it fills: before torch 2.14 the graph does not keep its
    Python wrapper alive, so reaching the same leaf by two paths gives two wrappers with different ids."""
    leaf = getattr(node, "variable", None)
    return id(leaf) if leaf is not None else id(node)


def walk(root: torch.Tensor | Any, names: Mapping[str, torch.Tensor] | None = None) -> Graph:
    """Breadth-first walk of ``root.grad_fn`` (or of a node) through ``next_functions``."""
    start = root.grad_fn if isinstance(root, torch.Tensor) else root
    graph = Graph()
    if start is None:
        return graph
    names = names or {}
    queue, seen = [(start, 0)], {_key(start): start}
    graph.labels[_key(start)], graph.depth[_key(start)] = _label(start, names), 0
    while queue:
        node, depth = queue.pop(0)
        for child, _ in node.next_functions:
            if child is None:  # an input that needs no gradient
                continue
            graph.edges.append((_key(node), _key(child)))
            if _key(child) not in seen:
                seen[_key(child)] = child  # keep a reference so ids stay unique during the walk
                graph.labels[_key(child)], graph.depth[_key(child)] = _label(child, names), depth + 1
                queue.append((child, depth + 1))
    return graph


def format_graph(root: torch.Tensor | Any, names: Mapping[str, torch.Tensor] | None = None) -> str:
    """The graph as an indented tree, one node per line; shared nodes are expanded once."""
    start = root.grad_fn if isinstance(root, torch.Tensor) else root
    if start is None:
        return "(no grad_fn: a leaf or a tensor that needs no gradient)"
    names = names or {}
    lines: list[str] = []
    shown: dict[int, Any] = {}  # keeps each node alive: an id must not be reused by a later wrapper

    def visit(node: Any, indent: int) -> None:
        again = _key(node) in shown
        lines.append("    " * indent + _label(node, names) + (" (shown above)" if again else ""))
        if again:
            return
        shown[_key(node)] = node
        for child, _ in node.next_functions:
            if child is not None:
                visit(child, indent + 1)

    visit(start, 0)
    return "\n".join(lines)


def draw_graph(root: torch.Tensor | Any, names: Mapping[str, torch.Tensor] | None = None,
               ax: Any = None) -> Any:
    """Draw the graph with matplotlib, the root on top and leaves below; returns the axes."""
    import matplotlib.pyplot as plt

    graph = walk(root, names)
    by_depth: dict[int, list[int]] = {}
    for node, depth in graph.depth.items():
        by_depth.setdefault(depth, []).append(node)
    width = max((len(nodes) for nodes in by_depth.values()), default=1)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 2.6 * width), 1.1 * (len(by_depth) + 1)))
    where = {
        node: ((i + 1) / (len(nodes) + 1), -depth)
        for depth, nodes in by_depth.items()
        for i, node in enumerate(nodes)
    }
    for a, b in graph.edges:
        ax.annotate("", xy=where[b], xytext=where[a],
                    arrowprops={"arrowstyle": "->", "color": "grey", "shrinkA": 12, "shrinkB": 12})
    for node, (x, y) in where.items():
        ax.text(x, y, graph.labels[node], ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round", "facecolor": "#dbe9f6", "edgecolor": "#4a7bb7"})
    ax.set(xlim=(0, 1), ylim=(-max(by_depth, default=0) - 0.5, 0.5), xticks=[], yticks=[])
    ax.set_title("backward graph: output on top, leaves below", fontsize=10)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return ax


@dataclass
class SavedLog:
    """The tensors autograd saved for backward inside a :func:`saved_tensors` block."""

    count: int = 0
    storages: dict[int, int] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of the distinct storages saved (a storage saved twice counts once)."""
        return sum(self.storages.values())


@contextmanager
def saved_tensors(exclude: Iterable[torch.Tensor] = ()) -> Iterator[SavedLog]:
    """Log what autograd saves for backward in the block, skipping the storages of ``exclude``.

    This measures activation memory on any device, the CPU included, where there is no
    ``max_memory_allocated``: it is what backward will need, as opposed to what the forward pass
    allocated and freed on the way.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    log = SavedLog()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        log.count += 1
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in skip:
            log.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield log
