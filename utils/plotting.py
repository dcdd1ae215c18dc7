"""One plotting helper per kind of figure, in one style.

Densities use one colour map everywhere: solid material dark, void light.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

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
