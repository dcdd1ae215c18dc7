"""Prose bound to results: every figure a lesson's text quotes from a generated results page (docs/results/*.md) is
read back from that page here, and the test fails when they disagree (to the precision the lesson quotes)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from utils.paths import REPO_ROOT

LATENT = REPO_ROOT / "docs" / "results" / "latent.md"
LESSON9 = REPO_ROOT / "lessons" / "09_designing_in_latent_space.py"
# Lesson 9's goal table: its columns, as (caption prefix of the results table, budget).
GOAL_COLUMNS = (("95th percentile of CE", 20), ("share of designs more than 10 % worse", 20),
                ("share with floating material", 20), ("share with load disrespect", 20),
                ("95th percentile of CE", 10))


def budget_tables(markdown: str, section: str) -> dict[str, dict[str, dict[int, float]]]:
    """The budget tables of one section (``## <section>…``) of a results page: {caption: {method: {budget: value}}}."""
    part = markdown.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, dict[str, dict[int, float]]] = {}
    for caption, body in re.findall(r"\*\*([^*]+)\*\* \(columns: budget[^\n]*\n\n((?:\|[^\n]*\n)+)", part):
        lines = body.strip().splitlines()
        budgets = [int(cell) for cell in lines[0].strip("| ").split(" | ")[1:]]
        cells = [row.strip("| ").split(" | ") for row in lines[2:]]
        tables[caption] = {row[0]: dict(zip(budgets, map(cell_value, row[1:]), strict=True)) for row in cells}
    return tables


def cell_value(cell: str) -> float:
    """A results page's cell as a fraction: "+1.07 %" → 0.0107; "broken" (C / C_ref > 10³) → infinity."""
    return float("inf") if cell.strip() == "broken" else quoted_number(cell)[0]


def quoted_number(cell: str) -> tuple[float, float]:
    """A quoted cell ("+1.07 %", "0", "5.3 %") as a fraction and half a unit of its last digit (as a fraction)."""
    text = cell.strip().replace("−", "-")
    percent = text.endswith("%")
    number = text.rstrip("% ").strip()
    decimals = len(number.split(".")[1]) if "." in number else 0
    scale = 0.01 if percent else 1.0
    return float(number) * scale, 0.5 * 10.0 ** -decimals * scale


# Lesson 9's short names for the differences it quotes: {short name: "A − B" as the results page writes it}.
LESSON9_PAIRS = {
    "z − pixels": "CVAE latent, sharpening − Adam on the pixels, sharpening",
    "CVAE start − retrieved start": "SIMP from the CVAE's design − SIMP from the nearest training design",
    "sampled − retrieved": "best of b (CVAE) − best of the b nearest training designs",
    "blend − CVAE start": "SIMP from the CVAE's design blended with uniform − SIMP from the CVAE's design",
    "pre-step − CVAE start": "CVAE latent, then SIMP − SIMP from the CVAE's design",
    "baseline − CVAE start": "SIMP from the baseline's design − SIMP from the CVAE's design",
    "z search − CVAE start": "CVAE latent, sharpening − SIMP from the CVAE's design",
    "CVAE start − uniform": "SIMP from the CVAE's design − SIMP, uniform start",
    "z − pixels (L-BFGS)": "CVAE latent, L-BFGS, sharpening − L-BFGS on the pixels, sharpening",
    "L-BFGS − Adam (z)": "CVAE latent, L-BFGS, sharpening − CVAE latent, sharpening",
    "L-BFGS − Adam (pixels)": "L-BFGS on the pixels, sharpening − Adam on the pixels, sharpening"}


def lesson9_table(header: str, skip: int) -> dict[str, list[str]]:
    """The rows of the lesson 9 table whose header line starts with ``header``, after ``skip`` lines below it:
    {first cell: the other cells}."""
    lines = LESSON9.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = {}
    for line in lines[start + skip + 1:]:
        if not line.startswith("# |"):
            break
        cells = line[2:].strip("| ").split(" | ")
        rows[cells[0]] = cells[1:]
    return rows


def lesson9_goal_rows() -> dict[str, list[str]]:
    """The rows of lesson 9's table of the goals on all test problems: {method label: cells}."""
    return {label.removesuffix(" (no SIMP)"): cells
            for label, cells in lesson9_table("# | at 20 solves (10 for the last column)", 2).items()}


def test_the_studys_hyperparameters_are_the_ones_chosen_on_validation() -> None:
    """studies.latent_study.CHOICES (what lesson 9 runs with) is what `make evaluate-latent`'s sweeps chose on the
    validation problems, as docs/results/latent.md records them; every hyperparameter has its sweep there."""
    from studies.latent_study import CANDIDATES, CHOICES
    rows = {line.split(" | ")[0].strip("|` "): line.strip("| ").split(" | ")[-1]
            for line in LATENT.read_text().splitlines() if line.startswith("| `")}
    assert set(rows) == set(CANDIDATES)
    for name, chosen in rows.items():
        assert getattr(CHOICES, name) == pytest.approx(float(chosen)), name


def test_lesson9s_goal_table_is_the_results_page() -> None:
    tables = budget_tables(LATENT.read_text(), "150 test problems")
    rows = lesson9_goal_rows()
    assert len(rows) >= 5
    for label, cells in rows.items():
        assert len(cells) == len(GOAL_COLUMNS), label
        for cell, (prefix, budget) in zip(cells, GOAL_COLUMNS, strict=True):
            caption = next(c for c in tables if c.startswith(prefix))
            value, half_unit = quoted_number(cell)
            assert tables[caption][label][budget] == pytest.approx(value, abs=half_unit + 1e-12), \
                f"lesson 9 quotes {cell} for {label}, {prefix} at {budget}; docs/results/latent.md has " \
                f"{tables[caption][label][budget]}"


def test_a_changed_figure_is_caught(tmp_path: Path) -> None:
    """The check can fail: one cell of the page changed by more than the quoted precision is a disagreement."""
    page = LATENT.read_text()
    tables = budget_tables(page, "150 test problems")
    caption = next(c for c in tables if c.startswith("95th percentile of CE"))
    value = tables[caption]["SIMP from the baseline's design"][20]
    value_shifted, half_unit = quoted_number("+3.50 %")
    assert value == pytest.approx(value_shifted, abs=half_unit)
    assert value + 0.001 != pytest.approx(value_shifted, abs=half_unit)


CVAE = REPO_ROOT / "docs" / "results" / "cvae.md"
REFERENCES = REPO_ROOT / "docs" / "results" / "references.md"


def interval_directions(markdown: str) -> dict[str, list[int]]:
    """The first differences table of a results page (of its first section that has one): {"A − B, b solves":
    [for each interval: +1 if it lies above 0, −1 if below, 0 if it holds 0]}."""
    part = markdown.split("**Differences the lesson concludes from**", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("| ").split(" | ") for line in part.splitlines() if line.startswith("| ") and " − " in line]
    return {cells[0]: [(1 if not cell.startswith("-") else -1) if cell.endswith("*") else 0 for cell in cells[1:]]
            for cells in rows}


def interval_rows(markdown: str) -> dict[str, list[bool]]:
    """:func:`interval_directions` as whether each interval excludes 0."""
    return {label: [direction != 0 for direction in row] for label, row in interval_directions(markdown).items()}


def test_lesson8s_reading_of_the_intervals_is_the_results_page() -> None:
    """Lesson 8, section 11 ("How sure is that?"): warm-started SIMP beats best of b at 5 and 20 solves on every
    figure; no figure separates the CVAE's start from the baseline's at 20 solves; the dataset's designs lie a few
    tenths of a per cent from the reference in the median and a few per cent in their tail."""
    text = LESSON9.with_name("08_conditional_vae_design.py").read_text()
    assert "every interval excludes zero" in text and "no interval at 20 solves excludes zero" in text
    rows = interval_rows(CVAE.read_text())
    for b in (5, 20):
        assert all(rows[f"SIMP from the CVAE's design − best of b (CVAE), {b} solves"])
    assert not any(rows["SIMP from the baseline's design − SIMP from the CVAE's design, 20 solves"])
    line = next(row for row in REFERENCES.read_text().splitlines() if row.startswith("| test |"))
    median, p95 = (float(cell) for cell in line.strip("| ").split(" | ")[6:8])
    assert 0.001 <= median < 0.01 and 0.01 <= p95 < 0.1


def test_lesson9s_differences_and_the_references_noise_are_the_results_page() -> None:
    """Lesson 9's table of differences with their intervals is rows of the results page's, cell for cell (under the
    lesson's short names); the noise it quotes is the page's."""
    page = LATENT.read_text()
    section = page.split("## 150 test problems", 1)[1].split("\n## ", 1)[0]
    part = section.split("**Differences the lesson concludes from**", 1)[1]
    page_rows = {cells[0]: cells[1:] for cells in (line.strip("| ").split(" | ") for line in part.splitlines()
                                                   if line.startswith("| ") and " − " in line)}
    rows = lesson9_table("# | A − B, b solves |", 1)
    assert len(rows) >= 8
    for label, cells in rows.items():
        short, budget = label.rsplit(", ", 1)
        assert page_rows[f"{LESSON9_PAIRS[short]}, {budget} solves"] == cells, label
    noise = re.search(r"the reference's noise: median CE (\S+ %), p95 (\S+ %), largest \S+ %, (\S+ %) more", section)
    text = " ".join(line.lstrip("# ") for line in LESSON9.read_text().splitlines())
    assert noise and f"median CE {noise[1]}, p95 {noise[2]}, with {noise[3]} of its" in text
    assert f"have a p95 of {noise[2]} against it" in text


def test_lesson9s_reading_of_the_intervals_is_the_results_page() -> None:
    """Lesson 9's closing reading, interval by interval (True: the interval excludes zero; median, p95, share)."""
    page = LATENT.read_text()
    test, ood = (interval_rows(page.split(f"## {title}", 1)[1])
                 for title in ("150 test problems", "24 out-of-distribution problems"))
    pair = {short: lambda b, name=name: f"{name}, {b} solves" for short, name in LESSON9_PAIRS.items()}
    assert test[pair["z − pixels"](10)] == [False, False, True]
    assert not any(test[pair["z − pixels"](20)])
    assert test[pair["z − pixels"](100)][:2] == [True, True]
    # ... and the pixels' median barely moves from 10 solves on (within a tenth of a per cent).
    medians = budget_tables(page, "150 test problems")["median signed CE"]["Adam on the pixels, sharpening"]
    assert max(medians[b] for b in (10, 20, 50, 100)) - min(medians[b] for b in (10, 20, 50, 100)) < 0.001
    for b in (10, 20, 100):
        assert not any(test[pair["CVAE start − retrieved start"](b)])
        assert all(test[pair["sampled − retrieved"](b)])
    assert all(ood[pair["CVAE start − retrieved start"](20)])
    for short in ("blend − CVAE start", "pre-step − CVAE start", "baseline − CVAE start"):
        assert not any(test[pair[short](20)]), short
    assert ood[pair["blend − CVAE start"](10)][2]
    # Section 4: out of distribution, only the blended start leaves no design more than 10 % worse at 10 and 20 solves.
    worse = budget_tables(page, "24 out-of-distribution problems")["share of designs more than 10 % worse than the "
                                                                    "reference"]
    clean = {label for label, row in worse.items() if row[10] == 0 and row[20] == 0}
    assert clean == {"SIMP from the CVAE's design blended with uniform"}
    for b in (20, 100):
        assert test[pair["z search − CVAE start"](b)] == [True, False, False]
    assert test[pair["CVAE start − uniform"](20)][:2] == [True, True]
    # The optimiser's controls: under L-BFGS the pixels are stiffer in the median at every budget and z keeps the
    # thinner tail at 100 solves only; L-BFGS against Adam changes nothing measurable on z, and on the pixels gives a
    # stiffer median with more designs more than 10 % worse at 10 and 100 solves (+1: A − B above 0, −1: below).
    directions = interval_directions(page.split("## 150 test problems", 1)[1])
    for b in (10, 20, 100):
        assert directions[pair["z − pixels (L-BFGS)"](b)][0] == 1
        assert directions[pair["L-BFGS − Adam (z)"](b)] == [0, 0, 0]
        assert directions[pair["L-BFGS − Adam (pixels)"](b)][0] == -1
    assert directions[pair["z − pixels (L-BFGS)"](100)][1:] == [-1, -1]
    assert not any(any(directions[pair["z − pixels (L-BFGS)"](b)][1:]) for b in (10, 20))
    assert [directions[pair["L-BFGS − Adam (pixels)"](b)][2] for b in (10, 20, 100)] == [1, 0, 1]


PUBLISHED = REPO_ROOT / "docs" / "results" / "published.md"


def published_verdict(page: str, claim: str) -> str:
    """The text of a verdict line of docs/results/published.md (``claim``: "their claim", "the first claim", …)."""
    match = re.search(rf"\*\*Verdict on {claim}\*\*([^\n]*(?:\n- [^\n]*)*)", page)
    assert match, f"no verdict on {claim} in {PUBLISHED.name}"
    return match[1]


def test_lesson9s_cited_methods_are_the_published_page() -> None:
    """Section 6's figures are the cells of docs/results/published.md, and its reading of each claim is the page's
    verdict."""
    page = PUBLISHED.read_text()
    text = " ".join(line.lstrip("# ") for line in LESSON9.read_text().splitlines())
    section6 = text.split("6. The cited methods, reproduced", 1)[1].split("What you should take away", 1)[0]

    def quoted(fraction: float) -> str:
        return f"{100 * fraction:+.2f} %".replace("-", "−")

    hoyer = budget_tables(page, "Neural reparametrisation")["median CE"]
    cnn = next(label for label in hoyer if label.startswith("CNN reparametrisation"))
    pixels = next(label for label in hoyer if label.startswith("pixels, L-BFGS, uniform start"))
    assert f"median CE {quoted(hoyer[cnn][1000])} for the CNN and {quoted(hoyer[pixels][1000])} for pixels" in section6
    verdict = published_verdict(page, "their claim")
    difference = re.search(r"median CE difference (\S+ %) \[(\S+ %), (\S+ %)\]", verdict)
    assert difference and "not supported" in verdict
    assert "CNN − pixels {} [{}, {}]".format(*(quoted(cell_value(x)) for x in difference.groups())) in section6
    assert "**Not supported here**" in section6
    seconds = re.search(r"\| CNN reparametrisation[^|]*\|(?: [^|]+ \|){2} (\S+) \|[^\n]*\n\| pixels, L-BFGS, uniform "
                        r"start[^|]*\|(?: [^|]+ \|){2} (\S+) \|", page.split("**Wall time**", 1)[1])
    assert seconds
    assert f"about {float(seconds[1]):.0f} s per problem against about {float(seconds[2]):.1f} s" in section6

    cmaes = budget_tables(page, "Gradient-free search")["median CE"]
    latent = cmaes["CMA-ES on the CVAE's latent"][100]
    assert f"the latent at 100 solves has median CE {quoted(latent)}" in section6
    coarse = cmaes["CMA-ES on 16 × 8 pixels, uniform start"][1000]
    assert f"the coarse pixels at 1,000 solves {quoted(coarse)}" in section6
    assert "supported on these problems: at every pair" in published_verdict(page, "the first claim")
    assert "**supported on these problems**" in section6
    second = published_verdict(page, "the second claim")
    from_cvae = next(line for line in second.splitlines() if line.startswith("- SIMP from the CVAE's design"))
    for budget in (10, 50, 100):
        assert re.search(rf"{budget} solves \S+ % \[\S+ %, \S+ %\] \(SIMP better\)", from_cvae), budget
    assert "at 10, 50 and 100 solves" in section6


LATENT_TRAINING_SEEDS = REPO_ROOT / "docs" / "results" / "latent_training_seeds.md"
CVAE_TRAINING_SEEDS = REPO_ROOT / "docs" / "results" / "cvae_training_seeds.md"


def seed_rows(markdown: str, statistic: str, section: str | None = None) -> dict[str, tuple[list[float], str]]:
    """One statistic's table ("median CE", …) of a training-seeds page, in its section ``## <section>…`` if given:
    {"A − B, b solves": (each seed's estimate, the verdict over the seeds)}."""
    part = markdown.split(f"## {section}", 1)[1].split("\n## ", 1)[0] if section else markdown
    table = part.split(f"\n{statistic}:\n", 1)[1].split("\n\n", 1)[0]
    lines = [line for line in table.splitlines() if line.startswith("|")]
    rows = [line.strip("| ").split(" | ") for line in lines[2:]]  # below the header and its rule
    return {cells[0]: ([quoted_number(cell.split(" [")[0])[0] for cell in cells[1:-1]], cells[-1]) for cells in rows}


def test_lesson9s_reading_over_the_training_seeds_is_the_training_seeds_page() -> None:
    """Lesson 9's "And with another training seed?": what holds on every seed, and the two readings that hold for
    the shipped models only (their estimates the same sign on the other seeds at 10 and 20 solves)."""
    text = " ".join(line.lstrip("# ") for line in LESSON9.read_text().splitlines())
    assert "the first 50 test problems and the 24 out-of-distribution ones, to 50 solves" in text
    page = LATENT_TRAINING_SEEDS.read_text()
    assert "--training-seeds 0 1 2 --problems 50" in page.splitlines()[2]
    median, share = (seed_rows(page, statistic, "test: 50 problems") for statistic in ("median CE",
                                                                                      "share > 10 % worse"))
    ood = seed_rows(page, "median CE", "ood: 24 problems")
    name = {short: lambda b, long=long: f"{long}, {b} solves" for short, long in LESSON9_PAIRS.items()}
    for b in (10, 20, 50):
        for table in (median, share):
            assert table[name["CVAE start − retrieved start"](b)][1] == "no seed excludes 0"
        assert median[name["L-BFGS − Adam (z)"](b)][1] == "no seed excludes 0"
        assert median[name["L-BFGS − Adam (pixels)"](b)][1] == "lower on every seed"
    assert ood[name["CVAE start − retrieved start"](20)][1] == "lower on every seed"
    shipped = interval_directions(LATENT.read_text().split("## 150 test problems", 1)[1])  # seed 0, 150 problems
    for b in (10, 20):
        assert median[name["CVAE start − uniform"](b)][1] == "lower on every seed"
        for short in ("sampled − retrieved", "z − pixels (L-BFGS)"):
            estimates, verdict = median[name[short](b)]
            assert verdict == "seed-dependent" and all(e > 0 for e in estimates), short
            assert shipped[name[short](b)][0] == 1, short


def test_lesson8s_reading_over_the_training_seeds_is_the_training_seeds_page() -> None:
    """Lesson 8's "And with another training seed?": SIMP from the CVAE's design against best of b (every figure
    on every seed at 5 solves; at 20 the shipped seed only, every estimate on the same side); the baseline's start
    against the CVAE's at 20 solves (the lower median estimate on every seed; every figure's interval below zero
    with seed 1)."""
    text = " ".join(line.lstrip("# ") for line in LESSON9.with_name("08_conditional_vae_design.py").read_text()
                    .splitlines())
    assert "beats best of $b$ at 5 solves on every figure with every seed" in text
    page = CVAE_TRAINING_SEEDS.read_text()
    assert "--training-seeds 0 1 2`" in page.splitlines()[2]
    tables = {statistic: seed_rows(page, statistic) for statistic in ("median CE", "p95 CE", "share > 10 % worse")}
    simp_best = "SIMP from the CVAE's design − best of b (CVAE), {} solves"
    baseline = "SIMP from the baseline's design − SIMP from the CVAE's design, 20 solves"
    for table in tables.values():
        assert table[simp_best.format(5)][1] == "lower on every seed"
        estimates, verdict = table[simp_best.format(20)]
        assert verdict == "seed-dependent" and all(e < 0 for e in estimates)
    assert all(e < 0 for e in tables["median CE"][baseline][0])
    seed1 = [row.split(" | ")[2] for row in page.splitlines() if row.startswith(f"| {baseline} |")]
    assert len(seed1) == 3 and all(cell.endswith("*") and cell.startswith("-") for cell in seed1)
    shipped = interval_rows(CVAE.read_text())
    assert all(shipped[simp_best.format(20)]) and not any(shipped[baseline])
