"""The figure helpers of utils.plotting draw what their docstrings promise."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from utils.plotting import BROKEN_RATIO, plot_error_distributions  # noqa: E402


def test_the_error_distribution_counts_broken_designs_apart_and_keeps_its_axis_readable() -> None:
    errors = {"method": np.array([-0.02, 0.01, 0.05, 0.3, 2.0, 5e6, 2e9, 0.0]), "clean": np.array([0.0, 0.02, 0.2])}
    fig, ax = plt.subplots()
    plot_error_distributions(ax, errors)
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["method (25% broken)", "clean"]
    low, high = ax.get_xlim()
    assert low == -0.1 and 2.0 <= high < BROKEN_RATIO  # the broken designs swamp no axis
    method = ax.get_lines()[0]
    assert np.isclose(method.get_ydata().max(), 6 / 8)  # the curve ends below 1 by the broken share
    assert ax.get_xscale() == "symlog" and "%" in ax.xaxis.get_major_formatter()(0.1, 0)
    plt.close(fig)
