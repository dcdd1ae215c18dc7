"""Plain-text tables that fit a notebook's output area (no pandas needed)."""
from __future__ import annotations

from collections.abc import Mapping


def format_table(rows: Mapping[str, Mapping[str, float]], columns: Mapping[str, str], number_format: str = ".3f",
                 corner: str = "") -> str:
    """One line per entry of ``rows`` (its name, then its values), one column per key of ``columns``, headed by
    that key's value; every column as wide as its widest entry, two spaces apart.

    ``rows``: ``{row name: {column key: value}}``; ``columns``: ``{column key: header}``.
    """
    names = [corner, *rows]
    cells = [[f"{values[key]:{number_format}}" for key in columns] for values in rows.values()]
    headers = list(columns.values())
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    name_width = max(len(name) for name in names)
    lines = [f"{corner:<{name_width}}" + "".join(f"  {h:>{w}}" for h, w in zip(headers, widths, strict=True))]
    lines += [f"{name:<{name_width}}" + "".join(f"  {c:>{w}}" for c, w in zip(row, widths, strict=True))
              for name, row in zip(rows, cells, strict=True)]
    return "\n".join(lines)
