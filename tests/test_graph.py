"""The grad_fn graph helpers: walk, format_graph, draw_graph."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from torchcourse.graph import draw_graph, format_graph, walk  # noqa: E402


def _notes_graph() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor(2.0, requires_grad=True)
    return torch.mul(torch.add(x, 1), torch.add(x, 2)), x


def test_walk_visits_every_node_once_breadth_first() -> None:
    y, x = _notes_graph()
    graph = walk(y, {"x": x})
    assert graph.names() == ["MulBackward0", "AddBackward0", "AddBackward0", "AccumulateGrad(x)"]
    assert len(graph.edges) == 4  # the leaf is reached along both branches
    assert sorted(graph.depth.values()) == [0, 1, 1, 2]


def test_walk_skips_inputs_that_need_no_gradient_and_describes_unnamed_leaves() -> None:
    w = torch.ones(3, requires_grad=True)
    graph = walk((w * torch.ones(3)).sum())
    assert graph.named_edges() == [
        ("SumBackward0", "MulBackward0"),
        ("MulBackward0", "AccumulateGrad(3,)"),
    ]


def test_walk_of_a_leaf_is_empty() -> None:
    assert walk(torch.ones(2, requires_grad=True)).names() == []


def test_format_graph_indents_children_and_marks_shared_nodes() -> None:
    y, x = _notes_graph()
    lines = format_graph(y, {"x": x}).splitlines()
    assert lines[0] == "MulBackward0"
    assert lines[1] == "    AddBackward0"
    assert lines[2] == "        AccumulateGrad(x)"
    assert lines[-1].endswith("(shown above)")
    assert "no grad_fn" in format_graph(torch.ones(2))


def test_draw_graph_places_one_label_per_node() -> None:
    y, x = _notes_graph()
    ax = draw_graph(y, {"x": x})
    labels = sorted(t.get_text() for t in ax.texts if t.get_text())
    assert labels == sorted(walk(y, {"x": x}).names())


def test_saved_tensors_counts_distinct_storages_and_skips_excluded_ones() -> None:
    from torchcourse.graph import saved_tensors

    x = torch.ones(4, 8, requires_grad=True)
    w = torch.ones(8, 8, requires_grad=True)
    with saved_tensors(exclude=[w]) as log:
        h = torch.relu(x @ w)  # mm saves x and w, relu saves its output
        y = h * h  # saves h twice: one storage
    assert log.count == 5  # x and w for mm, relu output once, h twice for the product
    assert log.nbytes == x.numel() * 4 + h.numel() * 4  # w is excluded, h counted once
    with torch.no_grad(), saved_tensors() as nothing:
        torch.relu(x @ w)
    assert nothing.count == 0 and nothing.nbytes == 0
    assert y.requires_grad
