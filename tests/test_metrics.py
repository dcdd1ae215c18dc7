"""Physics metrics on designs whose answers are known."""
from __future__ import annotations

import numpy as np
import pytest

from utils.metrics import (
    DesignMetrics,
    ce_distribution,
    compliance_error,
    floating_material,
    keep_largest_component,
    load_disrespect,
    relative_volume_change,
    solid_components,
    solid_iou,
    threshold,
    threshold_at_volume,
    volume_fraction_error,
)
from utils.topopt import cantilever


def test_iou_of_known_masks() -> None:
    a = np.zeros((4, 4))
    a[:2] = 1
    b = np.zeros((4, 4))
    b[1:3] = 1
    assert solid_iou(a, b) == 4 / 12
    assert solid_iou(a, a) == 1.0


def test_errors_are_relative_and_signed() -> None:
    """CE is signed (a stiffer design is negative) and relative to the reference; VFE is an absolute share."""
    for design, reference in ((110.0, 100.0), (90.0, 100.0), (3.0, 2.0), (1e-3, 4e-3)):
        assert compliance_error(design, reference) == pytest.approx(design / reference - 1, rel=1e-12, abs=1e-15)
    assert compliance_error(90.0, 100.0) < 0 < compliance_error(110.0, 100.0)
    for volume, target in ((0.33, 0.3), (0.27, 0.3), (0.5, 0.5)):
        assert volume_fraction_error(np.full((2, 2), volume), target) == pytest.approx(abs(volume - target) / target,
                                                                                       abs=1e-12)


def test_floating_material_uses_eight_connectivity() -> None:
    design = np.zeros((6, 6))
    design[1, 1] = design[2, 2] = 1.0  # diagonal neighbours: one component
    assert solid_components(design) == 1 and not floating_material(design)
    design[5, 5] = 1.0
    assert solid_components(design) == 2 and floating_material(design)
    cleaned = keep_largest_component(design)
    assert solid_components(cleaned) == 1 and cleaned[5, 5] == 0 and cleaned[1, 1] == 1


def test_load_disrespect_checks_the_elements_at_the_load() -> None:
    case = cantilever(8, 4, 0.5, load_y=2.0, angle_deg=-90.0)
    solid = np.ones((4, 8))
    assert not load_disrespect(solid, case)
    solid[1:3, 7] = 0.0
    assert load_disrespect(solid, case)


def test_design_metrics_summary_reports_the_distribution_and_both_volumes() -> None:
    metrics = DesignMetrics(compliance_error=np.array([-0.1, 0.0, 0.2, 0.5]),
                            volume_change=np.array([0.02, -0.04, 0.0, 0.01]),
                            target_volume_error=np.array([0.01, 0.03, 0.02, 0.0]),
                            load_disrespect=np.array([False, False, True, False]),
                            floating_material=np.array([True, True, False, False]),
                            judged_volume_error=np.array([0.0, 0.001, 0.0, 0.002]))
    summary = metrics.summary()
    assert summary["CE median"] == pytest.approx(0.1) and summary["|CE| median"] == pytest.approx(0.15)
    # numpy's linear interpolation between the 3rd and 4th of four sorted values: 0.2 + 0.85 · 0.3 (p95)
    assert summary["CE p95"] == pytest.approx(0.455) and summary["CE max"] == 0.5
    assert summary["judged VFE max"] == 0.002
    assert summary["CE > 10 % share"] == 0.5 and summary["CE mean"] == pytest.approx(0.15)
    assert summary["ΔV median"] == pytest.approx(0.005)
    np.testing.assert_allclose(metrics.volume_fraction_error, [0.02, 0.04, 0.0, 0.01])
    assert summary["VFE vs target median"] == pytest.approx(0.015)
    assert summary["load disrespect share"] == 0.25 and summary["floating material share"] == 0.5
    assert {k: summary[k] for k in ce_distribution(metrics.compliance_error)} == ce_distribution(
        metrics.compliance_error)


def test_relative_volume_change_is_signed() -> None:
    designs = np.zeros((2, 32, 64))
    designs[0, :16] = 0.8  # half solid after thresholding
    designs[1, :8] = 0.51  # a quarter solid
    np.testing.assert_allclose(relative_volume_change(designs, np.array([0.4, 0.5])), [0.25, -0.5])


def test_threshold_at_volume_keeps_the_densest_pixels_at_exactly_the_asked_volume() -> None:
    rng = np.random.default_rng(0)
    designs = rng.random((5, 8, 16))
    fractions = np.array([0.0, 0.25, 0.3, 0.5, 1.0])
    solid = threshold_at_volume(designs, fractions)
    np.testing.assert_array_equal(solid.sum(axis=(1, 2)), np.round(fractions * 128))
    for design, mask in zip(designs, solid, strict=True):
        if 0 < mask.sum() < mask.size:
            assert design[mask == 1].min() >= design[mask == 0].max()
    # At the volume of the 0.5 threshold, both thresholds agree on a design without ties at 0.5.
    np.testing.assert_array_equal(threshold_at_volume(designs[1], threshold(designs[1]).mean()), threshold(designs[1]))
    with pytest.raises(ValueError, match="volume fractions"):
        threshold_at_volume(designs[0], 1.2)
