"""Plots several notebooks share: benchmark sweeps and small tensor pictures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from .bench import BenchResult

__all__ = ["plot_bench", "show_matrix"]


def plot_bench(result: BenchResult, ax: Any = None) -> Any:
    """Time per device (left) and GPU/CPU speed-up (right) against size, on log axes."""
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    time_ax, speed_ax = ax
    for device, timings in result.timings.items():
        time_ax.loglog(result.sizes, [t.median * 1e3 for t in timings], "o-", label=device)
    time_ax.set(xlabel="size", ylabel="median ms per call", title=result.label)
    time_ax.legend()
    speedup = result.speedup()
    if speedup is None:
        speed_ax.text(0.5, 0.5, "CUDA not available:\nno speed-up to plot", ha="center", va="center")
        speed_ax.set_axis_off()
    else:
        speed_ax.semilogx(result.sizes, speedup, "o-", color="tab:green")
        speed_ax.axhline(1.0, color="grey", linestyle="--", label="break-even")
        speed_ax.set(xlabel="size", ylabel="GPU/CPU speed-up", title="speed-up")
        speed_ax.legend()
    plt.tight_layout()
    return ax


def show_matrix(matrix: Any, title: str = "", ax: Any = None) -> Any:
    """Draw a 2-D tensor as an annotated grid of its values (small tensors only)."""
    values = matrix.detach().cpu().float()
    if ax is None:
        _, ax = plt.subplots(figsize=(0.6 * values.shape[1] + 1, 0.6 * values.shape[0] + 0.5))
    ax.imshow(values, cmap="Blues")
    for (i, j), v in zip(
        ((i, j) for i in range(values.shape[0]) for j in range(values.shape[1])), values.flatten(), strict=True
    ):
        ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=8)
    ax.set(title=title, xticks=[], yticks=[])
    return ax
