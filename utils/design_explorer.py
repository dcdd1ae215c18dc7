"""The design explorer of lesson 8: choose a problem (load height, load angle, volume fraction) and see the
conditional VAE's design beside the SIMP design of the same problem, with both compliances. The widget's
callback is :func:`draw_design_explorer`, a plain function."""
from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from utils.cvae import ConditionalVAE, condition_vector
from utils.latent_explorer import load_status
from utils.metrics import threshold
from utils.plotting import draw_problem, show_design
from utils.settings import NELX, NELY
from utils.topopt import cantilever, compliance, optimize


def draw_design_explorer(model: ConditionalVAE, load_y: float, angle_deg: float, volfrac: float,
                         device: torch.device | str = "cpu") -> dict[str, float | str]:
    """Generate the design for one cantilever problem (the prior's mean, decoded), solve the same problem with
    SIMP (the dataset's settings), draw both with the supports and the load, and return the generated design's
    thresholded volume fraction and compliance, SIMP's (thresholded) compliance, CE = C / C_SIMP − 1, whether
    the design carries the load, and the seconds each method took."""
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
        "generation seconds": generation_seconds, "SIMP seconds": simp_seconds}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    show_design(axes[0], design, f"CVAE ({1e3 * generation_seconds:.0f} ms): VF {numbers['volume fraction']:.3f} "
                                 f"(target {volfrac:.2f}), C {design_compliance:.3g}, CE {numbers['CE']:+.1%}\n"
                                 f"{numbers['load']}")
    show_design(axes[1], simp, f"SIMP ({simp_seconds:.2f} s): VF {np.mean(simp_solid):.3f}, C {simp_compliance:.3g}")
    for ax in axes:
        draw_problem(ax, case)
    plt.show()
    return numbers
