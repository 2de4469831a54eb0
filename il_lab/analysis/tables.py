"""Markdown tables: a header, rows of cells the caller has already formatted, column alignment.

Every results table (one sweep, across envs, the published numbers, the benchmark scripts) is
built here, so they share one layout: ``| a | b |`` rows under a ``|---|---:|`` separator.
"""

# column alignment -> its separator cell; "default" has no colon (renderers align it left)
ALIGNMENTS = {"default": "---", "left": ":---", "right": "---:", "center": ":---:"}


def markdown_row(cells: list[str]) -> str:
    """One table row, ``| a | b |``; for printing rows one at a time under a header."""
    return "| " + " | ".join(cells) + " |"


def markdown_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    """The header, the separator and one line per row, joined by newlines (no trailing one).

    Args:
        header: the column names.
        rows: each row's cells, as strings, as many as the header has columns.
        align: per column, one of :data:`ALIGNMENTS`; ``None``: "default" for every column.
    """
    align = ["default"] * len(header) if align is None else align
    if len(align) != len(header):
        raise ValueError(f"align has {len(align)} entries, the header {len(header)} columns")
    if unknown := sorted(set(align) - ALIGNMENTS.keys()):
        raise ValueError(f"align: {', '.join(unknown)}; allowed: {', '.join(ALIGNMENTS)}")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {i} has {len(row)} cells, the header {len(header)} columns")
    separator = "|" + "|".join(ALIGNMENTS[a] for a in align) + "|"
    return "\n".join([markdown_row(header), separator, *(markdown_row(row) for row in rows)])
