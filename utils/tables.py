"""Tables that fit a notebook's output area (no pandas needed), and the same tables in markdown for docs/results/.
The columns of every table that judges designs are :data:`JUDGE_COLUMNS`."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from utils.metrics import DesignMetrics

# What every table that judges designs reports, by their DesignMetrics.summary() names: the distribution of
# signed CE (equal volume unless the row says otherwise), the design's own volume beside it, and the failures.
JUDGE_COLUMNS = {"CE mean": "mean CE", "CE median": "median CE", "CE p90": "p90 CE",
                 "CE > 10 % share": "CE > 10 %", "ΔV median": "median ΔV", "VFE vs target median": "VFE (target)",
                 "floating material share": "floating", "load disrespect share": "load disr."}
# TopoDiff's four figures (utils.judging.topodiff_summary), adapted.
TOPODIFF_COLUMNS = {"CE mean": "mean CE", "CE median": "median CE", "CE p90": "p90 CE", "VFE mean": "mean VFE",
                    "floating material share": "floating", "load disrespect share": "load disr."}
PERCENT = ".1%"


def table_row(metrics: DesignMetrics) -> dict[str, float]:
    """The figures of :data:`JUDGE_COLUMNS` of a set of designs (fractions)."""
    summary = metrics.summary()
    return {key: summary[key] for key in JUDGE_COLUMNS}


NumberFormat = str | Mapping[str, str]


def in_topodiff_columns(metrics: DesignMetrics) -> dict[str, float]:
    """Our figures under :data:`TOPODIFF_COLUMNS`, to sit beside TopoDiff's: the VFE against the target, as
    TopoDiff's is."""
    summary = metrics.summary()
    return {**{key: summary[key] for key in TOPODIFF_COLUMNS if key in summary},
            "VFE mean": summary["VFE vs target mean"]}


def _cells(rows: Mapping[str, Mapping[str, float]], columns: Mapping[str, str],
           number_format: NumberFormat) -> list[list[str]]:
    """Each value formatted by ``number_format`` (one format, or one per column key, percent by default)."""
    formats = {key: number_format if isinstance(number_format, str) else number_format.get(key, PERCENT)
               for key in columns}
    return [[_format(values[key], formats[key]) for key in columns] for values in rows.values()]


def _format(value: float, number_format: str) -> str:
    """``value`` in ``number_format``; a percentage beyond ±10,000 % (a broken design's CE, or a mean that one
    swamps) as "> 10,000%": its digits would say nothing but "broken"."""
    if not np.isfinite(value):
        return "–"
    if number_format.endswith("%") and abs(value) >= 100:
        return "> 10,000%" if value > 0 else "< −10,000%"
    return f"{value:{number_format}}"


def format_value(value: float, number_format: str) -> str:
    """One table cell: ``value`` in ``number_format``, "–" where it is not defined, a broken design's percentage as
    "> 10,000%" (:func:`_format`)."""
    return _format(value, number_format)


def range_cell(values: Sequence[float], number_format: str) -> str:
    """The smallest and the largest of ``values`` (a figure over seeds, say), as "low – high"."""
    return f"{_format(min(values), number_format)} – {_format(max(values), number_format)}"


def format_table(rows: Mapping[str, Mapping[str, float]], columns: Mapping[str, str],
                 number_format: NumberFormat = ".3f", corner: str = "") -> str:
    """One line per entry of ``rows`` (its name, then its values), one column per key of ``columns``, headed by
    that key's value; every column as wide as its widest entry, two spaces apart.

    ``rows``: ``{row name: {column key: value}}``; ``columns``: ``{column key: header}``; ``number_format``: one
    format for every value, or ``{column key: format}`` (columns it omits: percent).
    """
    names = [corner, *rows]
    cells = _cells(rows, columns, number_format)
    headers = list(columns.values())
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    name_width = max(len(name) for name in names)
    lines = [f"{corner:<{name_width}}" + "".join(f"  {h:>{w}}" for h, w in zip(headers, widths, strict=True))]
    lines += [f"{name:<{name_width}}" + "".join(f"  {c:>{w}}" for c, w in zip(row, widths, strict=True))
              for name, row in zip(rows, cells, strict=True)]
    return "\n".join(lines)


def markdown_table(rows: Mapping[str, Mapping[str, float]], columns: Mapping[str, str],
                   number_format: NumberFormat = ".3f", corner: str = "") -> str:
    """The same table as :func:`format_table`, as a GitHub-flavoured markdown table (numbers right-aligned)."""
    def escaped(cells: list[str]) -> str:  # a "|" inside a cell (as in "|CE|") would end it
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    lines = [escaped([corner, *columns.values()]), "| --- |" + " ---: |" * len(columns)]
    lines += [escaped([name, *row]) for name, row in zip(rows, _cells(rows, columns, number_format), strict=True)]
    return "\n".join(lines)
