"""The one judge (utils.judging): its threshold rules, the distribution figures, TopoDiff's adapted metrics, best of
k, and the swapped-condition test (utils.generation), each against an independent reference (a loop over designs with
utils.topopt.compliance and its own finite-element model, or a hand-made design)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from utils.cvae import ConditionalVAE, problem_conditions
from utils.data import TopologyData, load_topology_dataset
from utils.design_explorer import range_warning
from utils.generation import swapped_designs
from utils.judging import Judge, best_of_k, inside_training_ranges, topodiff_load_disrespect, topodiff_summary
from utils.metrics import ce_distribution, solid_components, threshold
from utils.tables import JUDGE_COLUMNS, format_table, markdown_table, table_row
from utils.topopt import cantilever, compliance


@pytest.fixture(scope="module")
def few() -> TopologyData:
    return load_topology_dataset().subset("validation").take(np.arange(4))


def _toy_problems(designs: np.ndarray, volfrac: float = 0.5) -> TopologyData:
    """A TopologyData of small cantilevers (16×8, load at mid-height, downwards) whose SIMP designs are ``designs``."""
    n = len(designs)
    cases = [cantilever(16, 8, volfrac, 4.0, -90.0) for _ in range(n)]
    references = np.array([compliance(threshold(d), c) for d, c in zip(designs, cases, strict=True)])
    return TopologyData(density=designs, volfrac=np.full(n, volfrac), load_y=np.full(n, 4.0),
                        angle_deg=np.full(n, -90.0), compliance=np.zeros(n), compliance_thresholded=references,
                        iterations=np.zeros(n), converged=np.ones(n, bool), split=np.zeros(n, int),
                        problems=np.array([json.dumps(c.to_dict()) for c in cases]))


def test_ce_distribution_against_numpy_by_hand() -> None:
    errors = np.array([-0.05, 0.0, 0.02, 0.08, 0.15, 0.3, 1.0, 0.11, -0.01, 0.04])
    figures = ce_distribution(errors)
    assert figures["CE mean"] == pytest.approx(0.164)
    assert figures["CE median"] == pytest.approx(0.06)
    assert figures["CE > 10 % share"] == pytest.approx(0.4)  # 0.15, 0.3, 1.0, 0.11
    # The 90th percentile by linear interpolation between the 9th and 10th of the sorted values.
    assert figures["CE p90"] == pytest.approx(0.3 + 0.1 * (1.0 - 0.3))


def test_simp_designs_score_zero_at_equal_volume_and_at_half(few) -> None:
    judge = Judge(few)
    for rule in ("at_reference_volume", "at_0.5"):
        metrics = judge(few.density, rule)
        np.testing.assert_allclose(metrics.compliance_error, 0.0, atol=1e-9)
        np.testing.assert_array_equal(metrics.volume_change, 0.0)
        np.testing.assert_allclose(metrics.target_volume_error,
                                   np.abs(threshold(few.density).mean(axis=(1, 2)) / few.volfrac - 1))
    # TopoDiff's void stiffness: recomputed for both sides, so a SIMP design still scores zero.
    np.testing.assert_allclose(Judge(few, e_min=1e-3)(few.density).compliance_error, 0.0, atol=1e-9)


def test_the_judge_matches_a_loop_with_a_fresh_model_per_design(few) -> None:
    rng = np.random.default_rng(3)
    designs = np.clip(few.density + rng.normal(0, 0.3, few.density.shape), 0, 1)
    metrics = Judge(few)(designs)
    for i, design in enumerate(designs):
        case = few.load_case(i)
        reference = threshold(few.density[i])
        order = np.argsort(-design.ravel(), kind="stable")
        solid = np.zeros(design.size)
        solid[order[:int(reference.sum())]] = 1.0
        solid = solid.reshape(design.shape)
        expected = compliance(solid, case) / compliance(reference, case) - 1
        assert metrics.compliance_error[i] == pytest.approx(expected, rel=1e-9)
        assert metrics.volume_change[i] == pytest.approx(threshold(design).mean() / reference.mean() - 1)


def test_equal_volume_takes_the_material_advantage_away() -> None:
    reference = np.zeros((1, 8, 16))
    reference[0, 1:7, :] = 0.9  # 6 of 8 rows solid: volume 0.75
    reference[0, 3:5, 4:12] = 0.2
    heavier = np.full((1, 8, 16), 0.6)  # solid everywhere at 0.5: stiffer than the reference only by its material
    problems = _toy_problems(reference, volfrac=0.7)
    judge = Judge(problems)
    at_half, at_equal = judge(heavier, "at_0.5"), judge(heavier)
    assert at_half.compliance_error[0] < 0 and at_half.volume_change[0] > 0.3
    # At equal volume a uniform design keeps the first pixels in order (ties broken by position): a worse structure.
    assert at_equal.compliance_error[0] > at_half.compliance_error[0]
    assert judge.solid(heavier).sum() == threshold(reference).sum()


def test_judge_rejects_a_wrong_count_and_an_unknown_rule(few) -> None:
    judge = Judge(few)
    with pytest.raises(ValueError, match="designs for"):
        judge(few.density[:2])
    with pytest.raises(ValueError, match="threshold rule"):
        judge(few.density, "0.3")
    part = judge.take(np.array([2, 0]))
    np.testing.assert_array_equal(part.reference_compliances(), judge.reference_compliances()[[2, 0]])
    np.testing.assert_allclose(part(few.density[[2, 0]]).compliance_error, 0.0, atol=1e-9)


def test_topodiff_rules_on_hand_made_designs() -> None:
    reference = np.zeros((3, 8, 16))
    reference[:, 2:6, :] = 1.0
    problems = _toy_problems(reference)
    judge = Judge(problems)
    designs = reference.copy()
    designs[1, 4, 15] = 0.0  # the load's element (row 4, last column) void; its neighbours still solid
    designs[2] = 0.0  # an empty design: zero pieces, which TopoDiff counts as floating
    assert topodiff_load_disrespect(designs[1], problems.load_case(1))
    assert not topodiff_load_disrespect(designs[0], problems.load_case(0))
    summary = topodiff_summary(designs, judge)
    assert summary["floating material share"] == pytest.approx(1 / 3) and solid_components(designs[2]) == 0
    assert summary["load disrespect share"] == pytest.approx(2 / 3)
    # Our floating-material rule (more than one piece) does not count the empty design.
    assert not judge(designs, "at_0.5").floating_material[2]
    # Binarised as TopoDiff's 0–255 images at 127: a density of 0.5 is void, 0.505 solid.
    assert threshold(np.array([0.5, 0.505]), 128 / 255).tolist() == [0.0, 1.0]
    grey = np.where(reference > 0, 0.505, 0.0)
    assert topodiff_summary(grey, judge)["CE mean"] == pytest.approx(0.0, abs=1e-9)


def test_best_of_k_picks_the_stiffest_draw_at_equal_volume(few) -> None:
    judge = Judge(few)
    rng = np.random.default_rng(5)
    samples = np.clip(few.density[None] + rng.normal(0, 0.25, (5, *few.density.shape)), 0, 1)
    chosen, index, compliances = best_of_k(samples, judge)
    for i in range(len(few)):
        by_loop = [compliance(judge.take([i]).solid(samples[k, i:i + 1])[0], few.load_case(i)) for k in range(5)]
        np.testing.assert_allclose(compliances[:, i], by_loop, rtol=1e-9)
        assert index[i] == int(np.argmin(by_loop))
        np.testing.assert_array_equal(chosen[i], samples[index[i], i])


def test_swapped_designs_decode_each_encoding_with_the_next_condition(few) -> None:
    torch.manual_seed(1)
    model = ConditionalVAE(4, 8, "learned").eval()
    swapped, other = swapped_designs(model, few)
    np.testing.assert_array_equal(other, [1, 2, 3, 0])
    images = torch.as_tensor(few.density, dtype=torch.float32)[:, None]
    conditions = problem_conditions(few)
    with torch.no_grad():
        for i in range(len(few)):
            z = model.encoder(images[i:i + 1], conditions[i:i + 1])[0]
            expected = torch.sigmoid(model.decode(z, conditions[(i + 1) % len(few)][None]))[0, 0].numpy()
            np.testing.assert_allclose(swapped[i], expected, atol=1e-6)
    with pytest.raises(ValueError, match="no latent"):
        swapped_designs(ConditionalVAE(0, 8), few)


def test_inside_training_ranges_reads_the_angle_as_a_line_of_action() -> None:
    inside = inside_training_ranges([0.4, 0.4, 0.4, 0.25, 0.4, 0.4], [10, 10, 10, 10, 10, 40],
                                    [-90.0, 60.0, -175.0, -90.0, -30.0, -90.0])
    assert inside.tolist() == [True, True, False, False, True, False]
    assert range_warning(10.0, -90.0, 0.4) == ""
    assert range_warning(10.0, 120.0, 0.4) == ""  # the opposite of −60°, a trained problem
    message = range_warning(10.0, -175.0, 0.55)
    assert "volume fraction 0.55" in message and "load angle -175" in message and "load height" not in message


def test_tables_lay_out_the_judges_columns(few) -> None:
    rows = {"SIMP itself": table_row(Judge(few)(few.density))}
    assert set(rows["SIMP itself"]) == set(JUDGE_COLUMNS)
    text, markdown = format_table(rows, JUDGE_COLUMNS, ".1%"), markdown_table(rows, JUDGE_COLUMNS, ".1%")
    assert "SIMP itself" in text and "0.0%" in text
    lines = markdown.splitlines()
    assert lines[0].count("|") == len(JUDGE_COLUMNS) + 2 and lines[1].startswith("| --- |")
    assert format_table({"a": {"x": 0.5, "y": 12.345}}, {"x": "x", "y": "y"}, {"y": ".1f"}).splitlines()[1].split() \
        == ["a", "50.0%", "12.3"]


def test_our_figures_in_topodiffs_columns_use_the_target_volume() -> None:
    from utils.metrics import DesignMetrics
    from utils.tables import TOPODIFF_COLUMNS, in_topodiff_columns
    metrics = DesignMetrics(np.array([0.0, 0.2]), np.array([0.1, -0.1]), np.array([0.02, 0.04]),
                            np.array([False, True]), np.array([False, False]), np.array([0.0, 0.0]))
    row = in_topodiff_columns(metrics)
    assert set(row) == set(TOPODIFF_COLUMNS)
    assert row["VFE mean"] == pytest.approx(0.03) and row["CE mean"] == pytest.approx(0.1)
    assert row["load disrespect share"] == 0.5


def test_markdown_cells_escape_the_pipe() -> None:
    table = markdown_table({"a": {"x": 0.5}}, {"x": "median |CE|"}, ".2f")
    assert table.splitlines()[0] == "|  | median \\|CE\\| |"
