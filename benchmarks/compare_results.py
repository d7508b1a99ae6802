#!/usr/bin/env python3
"""Compare two audioclust results folders table by table: a run before and after a change that must not change them.

usage: compare_results.py GOLDEN_DIR NEW_DIR [--tol 1e-9] [--ignore COL ...] [--stages clustering autoencoder] [--all]

Each DIR is a ``results/<dataset>`` folder or a copy holding ``clustering/`` and
``autoencoder/`` sub-folders with ``results.csv`` and ``labels.csv``. For every table
present in GOLDEN_DIR it checks: same columns (names and order), same number of rows,
text columns equal cell by cell, numeric columns equal to ``--tol`` (|a - b| <= tol *
max(1, |a|, |b|); NaN equals NaN). Columns that are wall times are ignored (listed in
the output): the names in WALL_TIME_COLUMNS (runtime_s, fit_s, stability_s, train_s) plus any
column ending in ``_seconds`` or ``_time`` or holding ``timestamp`` (``gap_s`` in k_selection.csv is the
gap statistic's s_k, a number that must match, so ``_s`` alone is not a wall-time marker). Exit status 0 when all match, 1 otherwise.
Standard library only (runs with any python3).
"""
from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from pathlib import Path

WALL_TIME_COLUMNS = {"runtime_s", "fit_s", "stability_s", "train_s"}
WALL_TIME_PATTERN = re.compile(r"(_seconds|_time)$|timestamp")  # not "_s$": k_selection.csv has gap_s (the s_k of the gap statistic)
TABLES = ("results.csv", "labels.csv")


def is_wall_time(col: str, extra: set[str]) -> bool:
    return col in WALL_TIME_COLUMNS or col in extra or bool(WALL_TIME_PATTERN.search(col))


def read(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return (rows[0], rows[1:]) if rows else ([], [])


def as_float(text: str) -> float | None:
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


def same_number(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def compare_table(a: Path, b: Path, tol: float, extra_ignore: set[str]) -> tuple[bool, list[str]]:
    lines: list[str] = []
    if not b.is_file():
        return False, [f"  MISSING in new: {b}"]
    ha, ra = read(a)
    hb, rb = read(b)
    ok = True
    if ha != hb:
        ok = False
        lines.append(f"  columns differ: only golden {sorted(set(ha) - set(hb))}, only new {sorted(set(hb) - set(ha))}"
                     + ("" if set(ha) != set(hb) else " (same set, other order)"))
    if len(ra) != len(rb):
        ok = False
        lines.append(f"  rows differ: golden {len(ra)}, new {len(rb)}")
    ignored = [c for c in ha if is_wall_time(c, extra_ignore)]
    if ignored:
        lines.append(f"  ignored (wall times): {', '.join(ignored)}")
    cols_b = {c: i for i, c in enumerate(hb)}
    for j, col in enumerate(ha):
        if col in ignored or col not in cols_b:
            continue
        jb = cols_b[col]
        n_bad, max_diff, example = 0, 0.0, None
        for r, (row_a, row_b) in enumerate(zip(ra, rb)):
            x, y = row_a[j], row_b[jb]
            if x == y:
                continue
            fx, fy = as_float(x), as_float(y)
            if fx is not None and fy is not None and same_number(fx, fy, tol):
                continue
            n_bad += 1
            if fx is not None and fy is not None and not (math.isnan(fx) or math.isnan(fy)):
                max_diff = max(max_diff, abs(fx - fy))
            if example is None:
                example = (r, x, y)
        if n_bad:
            ok = False
            r, x, y = example
            lines.append(f"  column {col!r}: {n_bad} cell(s) differ (max |diff| {max_diff:.3g}); "
                         f"first at row {r}: golden {x!r} new {y!r}")
    return ok, lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("golden", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--tol", type=float, default=1e-9)
    p.add_argument("--ignore", nargs="*", default=[], help="more columns to ignore")
    p.add_argument("--stages", nargs="*", default=["clustering", "autoencoder"])
    p.add_argument("--all", action="store_true",
                   help="compare every *.csv under GOLDEN_DIR (grids, k_selection, summary, map ...)")
    args = p.parse_args(argv)
    all_ok, compared = True, 0
    if args.all:
        pairs = [(a.parent.relative_to(args.golden).as_posix(), a.name) for a in sorted(args.golden.rglob("*.csv"))]
    else:
        pairs = [(stage, table) for stage in args.stages for table in TABLES]
    for stage, table in pairs:
            a = args.golden / stage / table
            if not a.is_file():
                continue
            compared += 1
            ok, lines = compare_table(a, args.new / stage / table, args.tol, set(args.ignore))
            all_ok &= ok
            print(f"{stage}/{table}: {'IDENTICAL' if ok else 'DIFFERENT'} (tol {args.tol:g})")
            for line in lines:
                print(line)
    if not compared:
        print(f"no results.csv / labels.csv under {args.golden}/{{{','.join(args.stages)}}}")
        return 1
    print("ALL IDENTICAL" if all_ok else "DIFFERENCES FOUND")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
