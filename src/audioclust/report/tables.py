"""Tables for the thesis: CSV, Markdown and LaTeX (stage-04/05 results).

The Markdown and LaTeX writers are small and dependency-free (pandas' ``to_markdown``
needs ``tabulate``): numbers are formatted once (:func:`format_frame`), Markdown pipes
and LaTeX special characters (``_ & % $ # { } ~ ^ \\``) are escaped.

:func:`summary_table` builds the table of the original study — *Feature | Type |
Algorithm | k | NMI | ACC | Choice* — from a stage's ``results.csv``: for each feature its
label-free selected row and, marked ``best by NMI (uses labels)``, the row with the
highest NMI.

:func:`write_summaries` writes both stages' summaries from their ``results.csv`` files:
stage 04's table gains stage 05's rows and its *Feature | Embedding | NMI | ACC* section
whichever stage ran last, so re-running one stage never drops the other's rows.

This module reads result tables only and imports no stage module, so the stages
(``cluster``, ``autoencoder``) may use its writers.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from audioclust.core.storage import write_csv, write_text

log = logging.getLogger(__name__)


MISSING = "–"

_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


# --------------------------------------------------------------------------- formatting

def format_value(value: Any, digits: int = 3) -> str:
    """A cell as text: floats with ``digits`` decimals, NaN/None as an en dash, the rest ``str``."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def format_frame(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Every cell of ``frame`` as text (:func:`format_value`)."""
    return frame.apply(lambda col: [format_value(v, digits) for v in col]).astype(str) if len(frame) else \
        frame.astype(str)


def escape_latex(text: str) -> str:
    """Escape LaTeX's special characters (``_`` becomes ``\\_`` ...)."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def markdown_table(frame: pd.DataFrame, digits: int = 3, align: Iterable[str] | None = None) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells escaped); numbers right-aligned.

    Parameters
    ----------
    frame : DataFrame
    digits : decimals of floats.
    align : per column ``l`` | ``r`` | ``c``; None: ``r`` for numeric columns, ``l`` otherwise.

    Returns
    -------
    str ending with a newline.
    """
    cells = format_frame(frame, digits)
    align = list(align) if align is not None else [
        "r" if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) else "l"
        for c in frame.columns]
    rule = {"l": ":---", "r": "---:", "c": ":---:"}

    def line(values: Iterable[Any]) -> str:
        return "| " + " | ".join(str(v).replace("|", r"\|") for v in values) + " |"

    lines = [line(frame.columns), "|" + "|".join(rule[a] for a in align) + "|"]
    lines += [line(row) for row in cells.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def latex_table(frame: pd.DataFrame, caption: str | None = None, label: str | None = None, digits: int = 3,
                align: Iterable[str] | None = None) -> str:
    """A ``booktabs`` LaTeX table (``\\usepackage{booktabs}``), special characters escaped.

    Parameters
    ----------
    frame : DataFrame
    caption, label : ``\\caption`` and ``\\label`` (a table environment is written when either is given).
    digits : decimals of floats.
    align : column alignment letters; None: ``r`` for numeric columns, ``l`` otherwise.

    Returns
    -------
    str ending with a newline.
    """
    cells = format_frame(frame, digits)
    align = "".join(align) if align is not None else "".join(
        "r" if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) else "l"
        for c in frame.columns)
    body = [rf"\begin{{tabular}}{{{align}}}", r"\toprule",
            " & ".join(escape_latex(c) for c in frame.columns) + r" \\", r"\midrule"]
    body += [" & ".join(escape_latex(v) for v in row) + r" \\" for row in cells.itertuples(index=False)]
    body += [r"\bottomrule", r"\end{tabular}"]
    if caption is None and label is None:
        return "\n".join(body) + "\n"
    head = [r"\begin{table}[htbp]", r"\centering"]
    if caption is not None:
        head.append(rf"\caption{{{escape_latex(caption)}}}")
    if label is not None:
        head.append(rf"\label{{{label}}}")
    return "\n".join(head + body + [r"\end{table}"]) + "\n"


def write_table(frame: pd.DataFrame, path: str | Path, caption: str | None = None, label: str | None = None,
                digits: int = 3, title: str | None = None, notes: str | None = None) -> list[Path]:
    """Write ``<path>.csv`` (full precision), ``<path>.md`` and ``<path>.tex`` atomically.

    Parameters
    ----------
    frame : DataFrame
    path : path without suffix.
    caption, label : of the LaTeX table.
    digits : decimals in Markdown and LaTeX.
    title : a Markdown heading above the table.
    notes : Markdown text below the table (not in the .tex).

    Returns
    -------
    [csv, md, tex] paths
    """
    base = Path(path)
    csv, md, tex = (base.with_name(base.name + s) for s in (".csv", ".md", ".tex"))
    write_csv(csv, frame)
    text = (f"# {title}\n\n" if title else "") + markdown_table(frame, digits) + (f"\n{notes}\n" if notes else "")
    write_text(md, text)
    write_text(tex, latex_table(frame, caption=caption, label=label, digits=digits))
    return [csv, md, tex]
