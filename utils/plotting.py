"""One plotting helper per kind of figure, in one style.

Densities use one colour map everywhere: solid material dark, void light.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

if TYPE_CHECKING:
    from utils.topopt import LoadCase

DENSITY_CMAP = "gray_r"


def use_course_style() -> None:
    """Apply the course's figure style (sizes, grid, fonts)."""
    plt.rcParams.update({
        "figure.figsize": (6.0, 3.8),
        "figure.dpi": 90,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "font.size": 10,
    })


def show_design(ax: plt.Axes, density: np.ndarray, title: str | None = None) -> None:
    """Draw one design ``density: (nely, nelx)`` with values in [0, 1] on ``ax``, equal aspect, no ticks."""
    ax.imshow(np.asarray(density), cmap=DENSITY_CMAP, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_linewidth(0.5)
    if title is not None:
        ax.set_title(title, fontsize=8)


def draw_problem(ax: plt.Axes, load_case: LoadCase, arrow_length: float = 8.0) -> None:
    """Mark a problem on a design drawn by :func:`show_design`: its supports (triangles at the fixed nodes) and
    its loads (red arrows starting at the loaded point, in the load's direction; y points up, so −90° is down)."""
    nely = load_case.nely
    fixed_nodes = sorted({dof // 2 for dof in load_case.fixed_dofs})
    columns = np.array([node // (nely + 1) for node in fixed_nodes], dtype=float) - 0.5
    rows = np.array([node % (nely + 1) for node in fixed_nodes], dtype=float) - 0.5
    ax.plot(columns, rows, ">", color="tab:blue", markersize=3, clip_on=False, label="support")
    for load in load_case.loads:
        dx = arrow_length * np.cos(np.radians(load.angle_deg))
        dy = -arrow_length * np.sin(np.radians(load.angle_deg))  # image rows grow downwards
        ax.annotate("", xy=(load.x - 0.5 + dx, load.y - 0.5 + dy), xytext=(load.x - 0.5, load.y - 0.5),
                    arrowprops={"arrowstyle": "-|>", "color": "tab:red", "lw": 1.5}, annotation_clip=False)


def plot_designs(densities: Sequence[np.ndarray] | np.ndarray, titles: Sequence[str] | None = None,
                 ncols: int = 6, panel_width: float = 1.8, suptitle: str | None = None) -> plt.Figure:
    """A grid of designs, each ``(nely, nelx)``; ``titles`` (optional) go above the panels."""
    densities = [np.asarray(d).reshape(np.asarray(d).shape[-2:]) for d in densities]
    n = len(densities)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    aspect = densities[0].shape[0] / densities[0].shape[1]
    title_height = 0.3 if titles is not None else 0.0  # inches per row, so titles clear the row above
    height = (panel_width * aspect + title_height) * nrows + (0.4 if suptitle else 0.1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_width * ncols, height), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < n:
            show_design(ax, densities[k], None if titles is None else titles[k])
        else:
            ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


# A design whose compliance is more than a thousand times the reference's does not carry its load (a member missing,
# or the load applied to void): it is counted apart, as a share, instead of swamping every axis and mean.
BROKEN_RATIO = 1e3
_LINE_STYLES = ("-", "--", "-.", ":")


def plot_error_distributions(ax: plt.Axes, errors: Mapping[str, np.ndarray], *, worse: float = 0.1,
                             broken_ratio: float = BROKEN_RATIO, population: str = "designs") -> None:
    """The cumulative distribution of each method's signed error ``CE = C / C_ref − 1`` (a fraction per design),
    on a symlog axis in per cent that is linear within ±``worse`` (so 0 and the ``worse`` line stand apart) and
    logarithmic beyond, up to the broken designs: those with C / C_ref > ``broken_ratio`` are left off the axis and
    named as a share in the legend (the curve then ends below 1 by that share)."""
    largest = 0.0
    for index, (name, values) in enumerate(errors.items()):
        values = np.asarray(values, dtype=float)
        broken = values > broken_ratio - 1
        kept = np.sort(values[~broken])
        largest = max(largest, float(kept.max(initial=0.0)))
        label = f"{name} ({broken.mean():.0%} broken)" if broken.any() else name
        ax.step(kept, np.arange(1, kept.size + 1) / values.size, where="post", label=label,
                ls=_LINE_STYLES[index // 10 % len(_LINE_STYLES)], color=f"C{index % 10}")
    ax.axvline(worse, color="k", ls=":", lw=1)
    ax.annotate(f"{worse:.0%} worse", (worse, 0.02), xytext=(3, 0), textcoords="offset points", fontsize=7)
    ax.set_xscale("symlog", linthresh=worse, linscale=1.0)
    ax.set_xlim(-worse, max(10 * worse, largest * 1.5))
    ax.xaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0, decimals=0))
    ax.set_ylim(0, 1.02)
    ax.set(xlabel=f"CE = C / C_ref − 1 (linear within ±{worse:.0%}, logarithmic beyond)",
           ylabel=f"share of {population} with CE ≤ x")
