"""The report page, ``index.html``, rendered from Jinja2 templates.

The markup is in ``templates/`` (``report.html.j2``, one partial per section, the table
macro of ``_table.html.j2``) and the style and script in ``static/`` (``report.css``,
``report.js``), all package data. This module gathers what each section shows and renders
the page; the CSS and JS are read with :mod:`importlib.resources` and inlined, so the page
opens from disk with no server and its Content-Security-Policy allows no other origin.
Every text from the data (file names, labels, result ids, the config) is escaped by the
environment's autoescaping; only HTML built and escaped here is marked safe.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
import platform
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import numpy as np
import pandas as pd
import soundfile as sf
import yaml
from markupsafe import Markup

from audioclust import __version__
from audioclust.clustering.metrics import NOISE
from audioclust.core import provenance
from audioclust.core.paths import ProjectPaths, label_folder
from audioclust.report import explore
from audioclust.report import figures as plots
from audioclust.report import names
from audioclust.report.summary import (
    FOLLOWS,
    FOLLOWS_NOTE,
    STRUCTURE_WORDS,
    focus_of,
    followed_traits,
    structure_table,
)
from audioclust.report.tables import format_frame, format_value
from audioclust.results import REPLICATES, RESULT_COLUMNS, Result

#: stages whose folders ``results/<name>/<stage>/`` hold tables and figures, with their titles
STAGE_TITLES = {"clustering": "Stage 04 · classical clustering", "autoencoder": "Stage 05 · autoencoder (DCEC)"}

NOISE_GREY = "#9E9E9E"

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("audioclust.report", "templates"),
    # "report.html.j2" ends in ".j2", not ".html": name the double suffix, and escape by default anyway
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=True, default_for_string=True),
    trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,  # a misspelt name fails the render instead of leaving a blank
)
# the map's JSON as before: compact, non-ASCII kept (``tojson`` still escapes < > & ' for the <script>)
_ENV.policies["json.dumps_kwargs"] = {"separators": (",", ":"), "ensure_ascii": False}


@functools.cache
def _static(name: str) -> Markup:
    """The text of ``static/<name>``, marked safe: it goes unescaped into a ``<style>`` or ``<script>``."""
    text = importlib.resources.files("audioclust.report").joinpath("static", name).read_text(encoding="utf-8")
    return Markup(text)


def _url(parts: list[str]) -> str:
    """A relative URL from path parts, each percent-encoded."""
    return "/".join(quote(p) for p in parts)


# --------------------------------------------------------------------------- tables

def _table(frame: pd.DataFrame, digits: int = 3, caption: str | None = None, cls: str = "",
           row_attrs: list[str] | None = None) -> dict[str, Any]:
    """What the ``table`` macro of ``_table.html.j2`` draws: see :func:`html_table`."""
    cells = format_frame(frame, digits)
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    rows = [(Markup(f" {row_attrs[i]}") if row_attrs else "", list(zip(row, numeric)))
            for i, row in enumerate(cells.itertuples(index=False))]
    return {"caption": caption, "cls": cls, "columns": list(zip(frame.columns, numeric)), "rows": rows}


def html_table(frame: pd.DataFrame, digits: int = 3, caption: str | None = None, cls: str = "",
               row_attrs: list[str] | None = None) -> str:
    """A plain HTML table: numbers formatted (:func:`audioclust.report.tables.format_frame`) and right-aligned.

    Parameters
    ----------
    frame : the table; its column names and cells are escaped.
    digits : significant digits of the numbers.
    caption : text above the table; None: no caption.
    cls : the ``class`` of the ``<table>`` element.
    row_attrs : extra attribute text per row (already escaped), e.g. ``data-member="3"``.

    Returns
    -------
    str of HTML: a ``div.tablewrap`` holding the table.
    """
    macro = _ENV.get_template("_table.html.j2").module.table
    return str(macro(_table(frame, digits, caption, cls, row_attrs)))


def _read_csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, keep_default_na=True)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None


# --------------------------------------------------------------------------- what each section shows

def _tables_context(paths: ProjectPaths) -> list[dict[str, Any]]:
    """The summary and result tables of each stage that has them."""
    stages = []
    for stage, title in STAGE_TITLES.items():
        folder = paths.results / stage
        summary, results = _read_csv(folder / "summary.csv"), _read_csv(folder / "results.csv")
        if summary is None and results is None:
            continue
        entry: dict[str, Any] = {"stage": stage, "title": title, "summary": None, "results": None, "n_results": 0,
                                 "replicates": None}
        if summary is not None:
            entry["summary"] = _table(summary, caption=f"{stage}/summary.csv")
        replicated = _read_csv(folder / REPLICATES / "summary.csv")
        if replicated is not None:
            seeds = int(replicated["Seeds"].max()) if len(replicated) else 0
            entry["replicates"] = _table(replicated, caption=f"{stage}/replicates/summary.csv: over {seeds} seeds")
        if results is not None:
            shown = results[[c for c in RESULT_COLUMNS if c in results.columns]]
            entry["results"] = _table(shown, caption=f"{stage}/results.csv (main columns)")
            entry["n_results"] = len(results)
        stages.append(entry)
    return stages


def _figures_context(paths: ProjectPaths) -> dict[str, Any]:
    """Every figure PNG of the stages, linked relatively, grouped by stage and kind (the file name's
    prefix, :func:`audioclust.report.names.figure_kind`), kinds in the order of ``names.FIGURE_KINDS``."""
    stages, n = [], 0
    order = list(names.FIGURE_KINDS)
    for stage, title in STAGE_TITLES.items():
        pngs = sorted((paths.results / stage / "figures").glob("*.png"))
        if not pngs:
            continue
        families: dict[str, list[Path]] = {}
        for png in pngs:
            families.setdefault(names.figure_kind(png.stem), []).append(png)
        entries = []
        for family in sorted(families, key=lambda f: (order.index(f) if f in order else len(order), f)):
            figs = []
            for png in families[family]:
                n += 1
                pdf = png.with_suffix(".pdf")
                figs.append({"n": n, "anchor": f"fig-{n}", "file": png.name, "name": png.stem,
                             "short": names.figure_subject(png.stem) or png.stem,
                             "src": _url(["..", stage, "figures", png.name]),
                             "pdf": _url(["..", stage, "figures", pdf.name]) if pdf.is_file() else None})
            entries.append({"name": names.FIGURE_KINDS.get(family, family.replace("_", " ")), "figures": figs})
        stages.append({"stage": stage, "title": title, "families": entries})
    return {"n": n, "stages": stages}


def _grouping_context(grouping: dict[str, Any] | None, out: Path) -> dict[str, Any] | None:
    """The comparison with the external grouping: its error, or its summary table and figure."""
    if grouping is None:
        return None
    if "error" in grouping:
        return {"error": grouping["error"]}
    return {"error": None, "summary": _table(grouping["summary"]),
            "figure": (out / "grouping" / "grouping_contingency.png").is_file()}


def package_versions() -> dict[str, str]:
    """Python, audioclust, libsndfile and the installed :data:`audioclust.core.provenance.LIBRARIES` (read from
    metadata, not imported).

    Returns
    -------
    dict of name to version, in that order.
    """
    found = provenance.library_versions()
    return {"python": found["python"], "audioclust": __version__, "libsndfile": str(sf.__libsndfile_version__),
            **{k: v for k, v in found.items() if k != "python"}}


def _provenance_context(config: dict[str, Any], paths: ProjectPaths) -> dict[str, Any]:
    """When, where and with what the page was written, the stage runs that made its numbers
    (``provenance.json``), and the merged config as YAML."""
    found = package_versions()
    record = provenance.read_provenance(paths.provenance) or {}
    runs = [{"stage": stage, "finished": e.get("finished", ""), "wall s": e.get("wall_s"),
             "seeds": ", ".join(map(str, e.get("seeds", []))), "config": e.get("config_hash", ""),
             "code": provenance.describe_code(e.get("git"), e.get("audioclust", "?"))}
            for stage, e in record.get("stages", {}).items() if isinstance(e, dict)]
    machine = provenance.machine()
    return {"when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "platform": platform.platform(),
            "machine": f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB"
                       + (f", GPU {', '.join(machine['gpus'])}" if machine["gpus"] else ", no GPU"),
            "experiment": paths.experiment, "provenance_file": paths.rel(paths.provenance),
            "runs": _table(pd.DataFrame(runs, columns=["stage", "finished", "wall s", "seeds", "config", "code"]))
            if runs else None,
            "versions": _table(pd.DataFrame({"package": list(found), "version": list(found.values())})),
            "config": yaml.safe_dump(config, sort_keys=False, allow_unicode=True, default_flow_style=None)}


def _cards(part: pd.DataFrame, table: pd.DataFrame, cluster: int, mime: str) -> list[Markup]:
    """The cards (:func:`audioclust.report.explore.member_card`) of the ranked members ``part``."""
    out = []
    for pos, dist in zip(part["position"], part["distance"]):
        t = table.iloc[int(pos)]
        # member_card escapes its text itself
        out.append(Markup(explore.member_card(t["stem"], t["label"], cluster, t["thumb"] or None,
                                              t["audio"] or None, mime, note=f"distance {dist:.2f}")))
    return out


def _clusters_context(report: Any, result: Result, X: np.ndarray, table: pd.DataFrame,
                      full: Result) -> dict[str, Any]:
    """Overview and one entry per cluster: sizes and make-up of ``full``, members from ``result``."""
    clusters = explore.cluster_table(full)
    makeup = explore.label_makeup(full)
    rows = [f'data-cluster="{int(c)}"' for c in clusters["cluster"]]
    overview = clusters[["name", "size", "share", "n_labels", "majority", "majority_share", "makeup"]]
    mime = explore.AUDIO_FORMATS[explore.audio_format(report.audio_format)][1]
    entries = []
    for _, info in clusters.iterrows():
        c, size = int(info["cluster"]), int(info["size"])
        ranked = explore.members_by_distance(X, result.clusters, c)
        closest, farthest = explore.closest_and_farthest(ranked, report.n_members)
        counts = makeup.loc[c]
        counts = counts[counts > 0].sort_values(ascending=False, kind="stable")
        makeup_frame = pd.DataFrame({"label": counts.index, "files": counts.to_numpy(),
                                     "share": counts.to_numpy() / size})
        members = []
        for rank, (pos, dist) in enumerate(zip(ranked["position"], ranked["distance"]), start=1):
            m = table.iloc[int(pos)]
            members.append({"position": int(pos), "rank": rank, "stem": m["stem"], "audio": m["audio"],
                            "label": label_folder(m["label"]), "distance": float(dist)})
        entries.append({"cluster": c, "name": explore.cluster_name(c), "size": size, "share": float(info["share"]),
                        "makeup": _table(makeup_frame, caption="Label make-up"),
                        "closest": _cards(closest, table, c, mime), "farthest": _cards(farthest, table, c, mime),
                        "members": members})
    return {"result": result.id, "overview": _table(overview, caption="Size and label make-up", row_attrs=rows),
            "links": [(int(c), explore.cluster_name(int(c))) for c in clusters["cluster"]], "clusters": entries}


def _map_data(result: Result, table: pd.DataFrame, structures: pd.DataFrame | None,
              alternatives: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    """The data behind the sound map (columns of equal length), written as JSON by the template.

    ``alternatives`` are the other structures' maps (a radio button each): the same files, by
    representative id, with that row's ``cluster`` and its own layout ``x``, ``y``.
    """
    alts = []
    if structures is not None:
        for _, s in structures.iterrows():
            alt = alternatives.get(s["representative"])
            if alt is not None:
                alts.append({"key": f"structure-{int(s['structure'])}",
                             "title": f"structure {int(s['structure'])}: {s['features']}",
                             "cluster": np.asarray(alt["cluster"]).astype(int).tolist(),
                             "x": np.asarray(alt["x"]).tolist(), "y": np.asarray(alt["y"]).tolist()})
    return {
        "alternatives": alts,
        "x": table["x"].tolist(), "y": table["y"].tolist(), "name": table["stem"].tolist(),
        "label": [label_folder(lab) for lab in table["label"]], "cluster": table["cluster"].astype(int).tolist(),
        "audio": table["audio"].tolist(), "thumb": table["thumb"].tolist(),
        "palette": list(plots.OKABE_ITO), "noise": NOISE_GREY, "noiseCluster": NOISE,
        "result": result.id,
    }


def _headline(result: Result) -> dict[str, Any]:
    """The result in one paragraph: id, type, algorithm, sizes, scores."""
    r = result.row
    scores = []
    for key, name in (("silhouette", "silhouette"), ("nmi", "NMI"), ("acc", "ACC"), ("ari", "ARI")):
        value = r.get(key)
        if value is not None and pd.notna(value):
            scores.append(f"{name} {format_value(float(value))}")
    return {"id": result.id, "type": r.get("type", ""), "algorithm": r.get("algorithm", ""),
            "n_clusters": len(result.cluster_ids), "n_files": len(result.files), "how": result.how,
            "scores": " · ".join(scores), "labelled": bool(pd.notna(r.get("nmi")))}


def _follows_shown(result: Result, structures: pd.DataFrame | None) -> str:
    """The recording traits the shown result's clusters follow when it represents a structure (``follows`` of
    ``structures.csv``), "" otherwise."""
    if structures is None:
        return ""
    follows = followed_traits(structures)[structures["representative"] == result.id]
    return next((text for text in follows if text), "")


def _structures_context(result: Result, structures: pd.DataFrame) -> dict[str, Any]:
    """The Structures section: the table in words and what to say under it (the note on recording traits when the
    table has their column, as the summaries decide)."""
    words = structure_table(structures)
    return {"table": _table(words, caption=f"{result.source}/structures.csv"), "n": len(structures),
            "labelled": bool(pd.to_numeric(structures["nmi"], errors="coerce").notna().any()),
            "focus": focus_of(structures), "follows": FOLLOWS_NOTE if FOLLOWS in words else "",
            **STRUCTURE_WORDS[result.source]}


# --------------------------------------------------------------------------- the page

def render(paths: ProjectPaths, result: Result, X: np.ndarray, table: pd.DataFrame, *, report: Any,
           seed: int, config: dict[str, Any], grouping: dict[str, Any] | None = None,
           full: Result | None = None, structures: pd.DataFrame | None = None,
           alternatives: dict[str, dict[str, np.ndarray]] | None = None) -> str:
    """The whole page as text (see :mod:`audioclust.stages.report`).

    Parameters
    ----------
    paths : the project; its results folder holds the stages' tables and figures.
    result : the result shown (possibly a sample of ``full``'s files).
    X : ndarray of shape (n_files, n_dims), the clustered matrix, rows as ``result.files``.
    table : the map table (:data:`audioclust.results.MAP_COLUMNS`), rows as ``result.files``.
    report : the report settings (projection, audio, members shown).
    seed : the projection's seed.
    config : the merged configuration, shown under Provenance.
    grouping : the comparison with the external grouping (its ``summary`` or ``error``); None: no section.
    full : the whole result when ``result`` and ``table`` hold a sample of its files
        (:func:`~audioclust.represent.projection.sample_positions`); None: ``result``.
    structures : the ``structures.csv`` of the result's stage; None: no Structures section.
    alternatives : each other structure's representative, by id: its ``cluster``, ``x`` and ``y`` (rows as
        ``result.files``; the layout is the projection of the matrix it clustered).

    Returns
    -------
    str, the HTML document.
    """
    full = result if full is None else full
    nav = [("map", "Sound map")] + ([("structures", "Structures")] if structures is not None else []) + [
        ("clusters", "Clusters"), ("tables", "Tables"), ("figures", "Figures")]
    if grouping is not None:
        nav.append(("grouping", "Grouping"))
    nav.append(("provenance", "Provenance"))
    context = {
        "dataset": paths.dataset, "nav": nav, "headline": _headline(full),
        "follows_shown": _follows_shown(full, structures), "n": len(table),
        "n_full": len(full.files), "css": _static("report.css"), "js": _static("report.js"),
        "soundmap": {"projection": {"tsne": "t-SNE", "pca": "PCA", "umap": "UMAP"}[report.projection],
                     "seed": seed, "seconds": report.audio_seconds, "n_audio": int((table["audio"] != "").sum()),
                     "data": _map_data(result, table, structures, alternatives or {})},
        "structures": None if structures is None else _structures_context(result, structures),
        "clusters": _clusters_context(report, result, X, table, full),
        "tables": _tables_context(paths), "figures": _figures_context(paths),
        "grouping": _grouping_context(grouping, report_folder(paths)),
        "provenance": _provenance_context(config, paths), "result": result,
    }
    return _ENV.get_template("report.html.j2").render(context)


def report_folder(paths: ProjectPaths) -> Path:
    """``results/<name>/report/``."""
    return paths.results / "report"
