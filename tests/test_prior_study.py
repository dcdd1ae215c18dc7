"""Lesson 10's section-4 study (studies.prior_study) and its tool: the diffusion prior's draws per problem are fixed
by (seed, problem), whatever else is drawn; its warm start spends no solve; the study keeps the harness's budget
convention and reports each seed; `make evaluate-priors` writes its page; lesson 10's quoted figures and conclusions
are the page's."""
from __future__ import annotations

import re
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from studies import prior_study
from studies.harness import StudyProblems
from studies.methods import conditional_decoder
from studies.prior_study import (
    DECODED_ROWS,
    PAIR_BUDGETS,
    STATISTICS,
    diffusion_latents,
    latent_start,
    run_prior_study,
    table_cells,
)
from tools import evaluate_priors
from utils.cvae import CONDITION_DIM, ConditionalVAE
from utils.data import load_topology_dataset
from utils.judging import Judge
from utils.paths import REPO_ROOT
from utils.priors import DiffusionPrior


@pytest.fixture(scope="module")
def problems() -> StudyProblems:
    validation = load_topology_dataset().subset("validation")
    return StudyProblems.of(validation.take(np.arange(4)), prior_study.RULE)


def _tiny_prior(seed: int) -> DiffusionPrior:
    torch.manual_seed(seed)
    return DiffusionPrior(latent_dim=16, steps=10, hidden=8, condition_dim=CONDITION_DIM)


def test_a_problems_draws_depend_on_the_seed_and_the_problem_only(problems: StudyProblems) -> None:
    """The last two problems drawn alone, and with fewer draws each, get the same first draws (up to the float32
    rounding of a denoiser run on a batch of another size: 1e-4, where draws differ by about 1); another seed does
    not."""
    latents = diffusion_latents(_tiny_prior(0), seed=3)
    every = latents(problems, 3)
    assert every.shape == (3, 4, 16) and every.dtype == problems.conditions.dtype
    torch.testing.assert_close(latents(problems.take(np.array([2, 3])), 2), every[:2, 2:], rtol=0, atol=1e-4)
    assert not torch.allclose(diffusion_latents(_tiny_prior(0), seed=4)(problems, 1), every[:1])
    assert not torch.allclose(every[0], every[1])


def test_the_warm_start_decodes_the_first_draw_and_spends_no_solve(problems: StudyProblems) -> None:
    torch.manual_seed(5)
    cvae = ConditionalVAE(latent_dim=16, width=4).eval()
    latents, decoder = diffusion_latents(_tiny_prior(1), seed=0), conditional_decoder(cvae)
    with mock.patch.object(Judge, "compliances_at", side_effect=AssertionError("a solve")), \
            mock.patch.object(Judge, "compliances", side_effect=AssertionError("a solve")):
        designs, seconds = latent_start(latents, decoder)(problems)
    with torch.no_grad():
        expected = torch.sigmoid(decoder(problems)(latents(problems, 1)[0])).double().numpy()
    np.testing.assert_array_equal(designs, expected)
    assert designs.shape == (4, 32, 64) and seconds >= 0


def test_the_study_reports_every_seed_at_every_budget(problems: StudyProblems) -> None:
    """Two seeds, budgets 1 and 5 on two problems: the seed-dependent rows hold one entry per seed, the controls and
    μ_p(c) one; every difference (at the budgets run) has one interval per seed; the controls are the same judgements
    for both seeds."""
    torch.manual_seed(6)
    cvae = ConditionalVAE(latent_dim=16, width=4).eval()
    study = run_prior_study(cvae, {0: _tiny_prior(0), 1: _tiny_prior(1)}, problems.take(np.arange(2)), (1, 5))
    rows = study.rows((1, 5))
    assert len(rows) == len(DECODED_ROWS) + 2 * 5
    assert len(rows[DECODED_ROWS[0]]) == 1 and len(rows[DECODED_ROWS[2]]) == 2
    assert len(rows["SIMP, uniform start, b = 5"]) == 1 and len(rows["best of b (CVAE), b = 1"]) == 1
    assert len(rows["best of b (CVAE, diffusion prior), b = 5"]) == 2
    assert study.judgements[0]["simp_uniform"] is study.judgements[1]["simp_uniform"]
    differences = study.differences()
    assert len(differences) == 2 + 2 * len(set(PAIR_BUDGETS) & {1, 5})
    assert all(set(row) == set(STATISTICS) and all(len(v) == 2 for v in row.values())
               for row in differences.values())
    cells = table_cells(rows)
    assert " – " in cells["best of b (CVAE, diffusion prior), b = 5"]["CE median"]
    assert cells[DECODED_ROWS[0]]["ms"] == "–" and " – " not in cells["SIMP, uniform start, b = 1"]["CE median"]


def test_make_evaluate_priors_writes_its_page(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """On the first validation problem with the shipped models: the page names the command, the rule, the test
    split's absence, and holds the table and the intervals."""
    out = tmp_path / "priors.md"
    assert evaluate_priors.main(["--count", "1", "--out", str(out)]) == 0
    page = out.read_text()
    assert page.startswith(evaluate_priors.TITLE) and "make evaluate-priors" in page
    assert "at_reference_volume" in page and "the test split is not read" in page
    assert f"**{evaluate_priors.TABLE_CAPTION}**" in page and "| z ~ diffusion prior decoded (one draw) |" in page
    assert page.count("| best of b (CVAE, diffusion prior) − best of b (CVAE), b = ") == 2 * len(STATISTICS)
    with pytest.raises(SystemExit, match="between 1 and"):
        evaluate_priors.main(["--count", "0", "--out", str(out)])


PAGE = REPO_ROOT / "docs" / "results" / "priors.md"
LESSON10 = REPO_ROOT / "lessons" / "10_the_prior.py"
# What lesson 10's section 4 concludes from the page's intervals: (difference row, statistic) → "every" (all three
# seeds' intervals exclude 0, the same sign) or "none" (no seed's does).
CONCLUSIONS = {
    ("z ~ diffusion prior decoded (one draw) − μ_p(c) decoded (the CVAE's design)", "median CE"): "every",
    ("z ~ diffusion prior decoded (one draw) − μ_p(c) decoded (the CVAE's design)", "share > 10 % worse"): "every",
    ("z ~ diffusion prior decoded (one draw) − μ_p(c) decoded (the CVAE's design)", "floating material share"): "none",
    ("z ~ diffusion prior decoded (one draw) − μ_p(c) decoded (the CVAE's design)", "p90 CE"): "none",
    ("z ~ diffusion prior decoded (one draw) − z ~ p(z | c) decoded (one draw)", "share > 10 % worse"): "every",
    **{("best of b (CVAE, diffusion prior) − best of b (CVAE), b = 10", name): "every"
       for name in ("median CE", "p90 CE", "share > 10 % worse")},
    **{("SIMP from the CVAE's diffusion-prior design − SIMP from the CVAE's design, b = 10", name): "none"
       for name in STATISTICS},
}


def markdown_rows(text: str) -> list[list[str]]:
    """Every row of every markdown table in ``text`` (a lesson's comment lines included), as unescaped cells; the
    separator rows left out."""
    rows = []
    for line in text.splitlines():
        line = line.removeprefix("# ").strip()
        if line.startswith("|") and not set(line) <= set("|-: "):
            cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
            rows.append([cell.strip().replace("\\|", "|") for cell in cells])
    return rows


def test_the_page_tables_have_whole_rows_and_every_figure_the_lesson_quotes() -> None:
    """The page's rows (each as many cells as its table's header) hold, cell for cell, the lesson's table of figures
    on all 150 validation problems; the page covers 150 problems."""
    page = PAGE.read_text()
    assert "The first 150 of the 150 validation problems" in page
    rows = markdown_rows(page)
    widths = {len(row) for row in rows}
    assert widths == {8, 3}, widths  # the figures' table (a name and 7 figures) and the intervals' (3 cells)
    figures = {row[0]: dict(zip(["", *prior_study.COLUMNS.values()], row, strict=True)) for row in rows
               if len(row) == 8}
    lesson = LESSON10.read_text()
    start = lesson.index("# | all 150 validation problems |")
    quoted = markdown_rows(lesson[start:lesson.index("\n#\n", start)])
    header, body = quoted[0], quoted[1:]
    assert len(body) >= 8
    for row in body:
        assert row[0] in figures, row[0]
        for title, cell in zip(header[1:], row[1:], strict=True):
            assert figures[row[0]][title] == cell, f"lesson 10 quotes {cell} for {row[0]}, {title}; the page has " \
                                                   f"{figures[row[0]][title]}"


def test_the_lessons_conclusions_are_the_pages_intervals() -> None:
    intervals = {(row[0], row[1]): row[2].split("; ") for row in markdown_rows(PAGE.read_text()) if len(row) == 3}
    for key, expected in CONCLUSIONS.items():
        seeds = intervals[key]
        assert len(seeds) >= 3, key
        starred = [cell.endswith("*") for cell in seeds]
        signs = {cell.startswith("-") for cell in seeds}
        assert (all(starred) and len(signs) == 1) if expected == "every" else not any(starred), (key, seeds)
