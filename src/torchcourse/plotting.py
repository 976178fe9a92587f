"""Plots several notebooks share: benchmark sweeps and small tensor pictures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from .bench import BenchResult

__all__ = ["plot_bench", "show_matrix"]


def plot_bench(result: BenchResult, ax: Any = None) -> Any:
    """Time per device (left) and GPU/CPU speed-up (right) against size, on log axes.

    Each device is drawn at the sizes it was timed at (``BenchResult.sizes_on``: the CPU's column of a ``full``
    sweep stops at ``bench.CPU_MAX``). Medians have error bars spanning the interquartile range; the fastest blocks
    are drawn dotted beside them (the figure to compare). Without CUDA, a recorded GPU run (when the course has
    one) is drawn dashed and labelled "recorded", with its own machine's speed-up on the right.
    """
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    time_ax, speed_ax = ax
    for device, timings in result.timings.items():
        medians = [t.median * 1e3 for t in timings]
        drawn = time_ax.errorbar(result.sizes_on(device), medians, yerr=[[t.iqr / 2 * 1e3 for t in timings]] * 2,
                                 fmt="o-", capsize=3, label=f"{device} median (this machine)")
        if all(t.best is not None for t in timings):  # the figure to compare with, beside the typical run
            time_ax.plot(result.sizes_on(device), [t.best * 1e3 for t in timings], "v:", color=drawn[0].get_color(),
                         label=f"{device} fastest block")
    reference = result._overlay()
    if reference is not None:
        gpu = reference.meta.get("gpu", "GPU")
        for device, timings in reference.timings.items():
            time_ax.plot(reference.sizes_on(device), [t.median * 1e3 for t in timings], "s--", alpha=0.7,
                         label=f"{device}, recorded on {gpu}")
    time_ax.set(xscale="log", yscale="log", xlabel="size", ylabel="ms per call", title=result.label)
    time_ax.legend(fontsize="small")
    speedup, source = result.speedup(), result
    if speedup is None and reference is not None and reference.speedup() is not None:
        speedup, source = reference.speedup(), reference
    if speedup is None:
        why = "no GPU run recorded" if reference is None else "the recorded run has no CPU column"
        speed_ax.text(0.5, 0.5, f"CUDA not available here, {why}:\nno speed-up to plot", ha="center", va="center")
        speed_ax.set_axis_off()
    else:
        recorded = source is not result
        speed_ax.semilogx(source.sizes[:len(speedup)], speedup, "s--" if recorded else "o-", color="tab:green",
                          label=f"recorded on {source.meta.get('gpu', 'GPU')}" if recorded else "measured here")
        speed_ax.axhline(1.0, color="grey", linestyle="--", label="break-even")
        speed_ax.set(xlabel="size", ylabel="GPU/CPU speed-up", title="speed-up")
        speed_ax.legend(fontsize="small")
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
