"""Physics metrics on designs whose answers are known."""
from __future__ import annotations

import numpy as np
import pytest

from utils.metrics import (
    compliance_error,
    evaluate_designs,
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
from utils.topopt import cantilever, compliance


def test_iou_of_known_masks() -> None:
    a = np.zeros((4, 4))
    a[:2] = 1
    b = np.zeros((4, 4))
    b[1:3] = 1
    assert solid_iou(a, b) == 4 / 12
    assert solid_iou(a, a) == 1.0


def test_errors_are_relative() -> None:
    assert compliance_error(110.0, 100.0) == 0.10000000000000009
    assert abs(volume_fraction_error(np.full((2, 2), 0.33), 0.3) - 0.1) < 1e-12


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


def test_evaluate_designs_on_the_reference_itself_gives_zero_error() -> None:
    case = cantilever(16, 8, 0.5, load_y=4.0, angle_deg=-90.0)
    design = np.zeros((8, 16))
    design[2:6] = 1.0
    metrics = evaluate_designs(design[None], [case], design[None], np.array([compliance(design, case)]))
    assert abs(metrics.compliance_error[0]) < 1e-12
    assert metrics.volume_fraction_error[0] == 0.0
    assert not metrics.floating_material[0] and not metrics.load_disrespect[0]
    assert set(metrics.summary()) >= {"|CE| median", "VFE median", "floating material share"}


def test_volume_fraction_error_compares_thresholded_design_with_thresholded_reference() -> None:
    case = cantilever(16, 8, 0.5, load_y=4.0, angle_deg=-90.0)  # volume target 0.5
    reference = np.zeros((8, 16))
    reference[2:6] = 0.9
    reference[6] = 0.4  # thresholded volume 0.5
    grey_copy = np.where(reference > 0.5, 0.6, 0.1)  # other grey values, the same thresholded design
    thicker = reference.copy()
    thicker[6, :8] = 0.7  # 8 more solid elements: volume 72/128
    metrics = evaluate_designs(np.stack([grey_copy, thicker]), [case, case], np.stack([reference, reference]),
                               np.full(2, compliance(threshold(reference), case)))
    np.testing.assert_allclose(metrics.volume_fraction_error, [0.0, (72 / 128 - 0.5) / 0.5])


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
