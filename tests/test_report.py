"""Tables: Markdown and LaTeX writers, the summary of the original study's shape."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from audioclust.report import summary
from audioclust.report import tables as report


def test_markdown_table_by_hand():
    frame = pd.DataFrame({"name": ["a|b", "c"], "x": [0.12345, math.nan], "n": [3, 10]})
    assert report.markdown_table(frame) == (
        "| name | x | n |\n"
        "|:---|---:|---:|\n"
        "| a\\|b | 0.123 | 3 |\n"
        "| c | – | 10 |\n")


def test_latex_table_escapes_and_uses_booktabs():
    frame = pd.DataFrame({"feature": ["mfcc_no_c0"], "score %": [0.5]})
    tex = report.latex_table(frame, caption="NMI & ACC", label="tab:x")
    assert r"mfcc\_no\_c0 & 0.500 \\" in tex
    assert r"feature & score \% \\" in tex
    assert r"\caption{NMI \& ACC}" in tex and r"\label{tab:x}" in tex
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    assert r"\begin{tabular}{lr}" in tex
    assert report.escape_latex("a_b&c%d$e#f{g}h~i^j\\") == (
        r"a\_b\&c\%d\$e\#f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}")


def _results() -> pd.DataFrame:
    return pd.DataFrame({
        "feature": ["mel", "mel", "mel", "mfcc"],
        "type": ["stats (Arrays)", "image (Arrays)", "image (Images)", "image (Arrays)"],
        "algorithm": ["kmeans", "gmm", "spectral", "kmeans"],
        "k": [10, 10, 10, 10],
        "nmi": [0.4, 0.7, 0.9, 0.5], "acc": [0.5, 0.8, 0.95, 0.6],
        "selected": [False, True, False, True],
        "status": ["ok", "ok", "skipped", "ok"],
    })


def test_summary_table_has_selected_and_best_rows():
    table = summary.summary_table(_results())
    assert list(table.columns) == summary.SUMMARY_COLUMNS
    assert table.to_dict("records") == [
        {"Feature": "mel", "Type": "image (Arrays)", "Algorithm": "gmm", "k": 10, "NMI": 0.7, "ACC": 0.8,
         "Choice": "label-free (silhouette)"},
        # the skipped spectral row (0.9) does not count
        {"Feature": "mel", "Type": "image (Arrays)", "Algorithm": "gmm", "k": 10, "NMI": 0.7, "ACC": 0.8,
         "Choice": "best by NMI (uses labels)"},
        {"Feature": "mfcc", "Type": "image (Arrays)", "Algorithm": "kmeans", "k": 10, "NMI": 0.5, "ACC": 0.6,
         "Choice": "label-free (silhouette)"},
        {"Feature": "mfcc", "Type": "image (Arrays)", "Algorithm": "kmeans", "k": 10, "NMI": 0.5, "ACC": 0.6,
         "Choice": "best by NMI (uses labels)"},
    ]


def test_best_by_nmi_is_chosen_among_the_eligible_rows():
    # k = 10 was given: an HDBSCAN partition into 73 groups has the higher NMI but is not an answer to compare
    results = pd.DataFrame({
        "feature": ["mel"] * 3, "type": ["image (Arrays)"] * 3, "algorithm": ["hdbscan", "kmeans", "ward"],
        "k": [73, 10, 10], "nmi": [0.52, 0.30, 0.41], "acc": [0.19, 0.35, 0.40],
        "selected": [False, True, False], "eligible": [False, True, True], "status": ["ok"] * 3})
    table = summary.summary_table(results)
    assert table["Algorithm"].tolist() == ["kmeans", "ward"]
    assert table["NMI"].tolist() == [0.30, 0.41]
    # read back from results.csv the column is text
    assert summary.best_by_nmi(results.assign(eligible=results["eligible"].astype(str)))["algorithm"] == "ward"


def test_summary_without_labels_has_no_best_rows():
    results = _results().assign(nmi=np.nan, acc=np.nan)
    table = summary.summary_table(results, criterion="davies_bouldin")
    assert list(table["Choice"]) == ["label-free (davies_bouldin)"] * 2
    assert table["NMI"].isna().all()


def test_write_summary_writes_csv_md_tex(tmp_path):
    paths = summary.write_summary(_results(), tmp_path, dataset="fsdd_digits")
    assert [p.name for p in paths] == ["summary.csv", "summary.md", "summary.tex"]
    md = paths[1].read_text()
    assert md.startswith("# Clustering summary: fsdd_digits\n")
    assert "| mel | image (Arrays) | gmm | 10 | 0.700 | 0.800 | best by NMI (uses labels) |" in md
    tex = paths[2].read_text()
    assert r"fsdd\_digits" in tex and r"\label{tab:clustering-fsdd_digits}" in tex
    assert pd.read_csv(paths[0])["NMI"].tolist() == [0.7, 0.7, 0.5, 0.5]


def test_format_value():
    assert [report.format_value(v) for v in (0.5, np.float32(0.25), 3, None, math.nan, "x", True)] == [
        "0.500", "0.250", "3", "–", "–", "x", "yes"]
