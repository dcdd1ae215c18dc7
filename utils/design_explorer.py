"""The design explorer of lesson 8: choose a problem (load height, load angle, volume fraction) and see the
conditional VAE's design beside the SIMP design of the same problem, with both compliances, and a warning when the
query lies outside the training ranges (utils.settings.PARAMETER_RANGES, the angle read as a line of action, as the
condition reads it). The widget's callback is :func:`draw_design_explorer`, a plain function."""
from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from utils.cvae import ConditionalVAE, condition_vector
from utils.judging import inside_training_ranges
from utils.metrics import load_status, threshold
from utils.plotting import draw_problem, show_design
from utils.settings import NELX, NELY, PARAMETER_RANGES
from utils.topopt import cantilever, compliance, optimize


def range_warning(load_y: float, angle_deg: float, volfrac: float) -> str:
    """"" inside the training ranges; otherwise a sentence naming the parameters outside them (the angle counts as
    inside when its line of action is that of an angle in range: θ and θ ± 180° are one problem)."""
    if bool(inside_training_ranges(volfrac, load_y, angle_deg)):
        return ""
    outside = []
    low, high = PARAMETER_RANGES["volfrac"]
    if not low <= volfrac <= high:
        outside.append(f"volume fraction {volfrac:.2f} (trained on {low:.2f}–{high:.2f})")
    low, high = PARAMETER_RANGES["load_y"]
    if not low <= load_y <= high:
        outside.append(f"load height {load_y:g} (trained on {low:g}–{high:g})")
    if not bool(inside_training_ranges(sum(PARAMETER_RANGES["volfrac"]) / 2, sum(PARAMETER_RANGES["load_y"]) / 2,
                                       angle_deg)):
        low, high = PARAMETER_RANGES["angle_deg"]
        outside.append(f"load angle {angle_deg:g}° (trained on {low:g}° to {high:g}°, or the opposite direction)")
    return "outside the training ranges: " + "; ".join(outside) + ". The design is an extrapolation."


def draw_design_explorer(model: ConditionalVAE, load_y: float, angle_deg: float, volfrac: float,
                         device: torch.device | str = "cpu") -> dict[str, float | str]:
    """Generate the design for one cantilever problem (the prior's mean, decoded), solve the same problem with
    SIMP (the dataset's settings), draw both with the supports and the load, and return the generated design's
    thresholded volume fraction and compliance, SIMP's (thresholded) compliance, CE = C / C_SIMP − 1 (the design
    thresholded at 0.5, its own volume beside it), whether the design carries the load, the seconds each method
    took, and ``warning``: :func:`range_warning` ("" inside the training ranges; printed and shown otherwise)."""
    case = cantilever(NELX, NELY, volfrac, load_y, angle_deg)
    start = time.perf_counter()
    condition = condition_vector(volfrac, load_y, angle_deg).to(device)
    design = model.generate(condition)[0, 0].cpu().numpy()
    generation_seconds = time.perf_counter() - start
    start = time.perf_counter()
    simp = optimize(case).density
    simp_seconds = time.perf_counter() - start
    solid, simp_solid = threshold(design), threshold(simp)
    design_compliance, simp_compliance = compliance(solid, case), compliance(simp_solid, case)
    numbers: dict[str, float | str] = {
        "volume fraction": float(solid.mean()), "compliance": design_compliance, "SIMP compliance": simp_compliance,
        "CE": design_compliance / simp_compliance - 1,
        "load": load_status(solid, case, design_compliance, simp_compliance),
        "generation seconds": generation_seconds, "SIMP seconds": simp_seconds,
        "warning": range_warning(load_y, angle_deg, volfrac)}
    if numbers["warning"]:
        print(numbers["warning"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    show_design(axes[0], design, f"CVAE ({1e3 * generation_seconds:.0f} ms): VF {numbers['volume fraction']:.3f} "
                                 f"(target {volfrac:.2f}), C {design_compliance:.3g}, CE {numbers['CE']:+.1%}\n"
                                 f"{numbers['load']}")
    show_design(axes[1], simp, f"SIMP ({simp_seconds:.2f} s): VF {np.mean(simp_solid):.3f}, C {simp_compliance:.3g}")
    if numbers["warning"]:
        fig.suptitle(str(numbers["warning"]), color="tab:red", fontsize=9)
    for ax in axes:
        draw_problem(ax, case)
    plt.show()
    return numbers
