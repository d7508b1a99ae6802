"""Report stage: ``results/<name>/report/index.html``, an offline page to read, look and listen.

The page opens from disk (``file://``) with no server and no network: its CSS and
JavaScript are inline, a Content-Security-Policy forbids any other origin, and every
link is relative. It holds:

- the **sound map**: a 2-D projection (``report.projection``: t-SNE, PCA or UMAP, seeded)
  of the matrix that was clustered, one point per file of the result, drawn as SVG by
  plain JavaScript, coloured by cluster or by label (a toggle; the Okabe–Ito colours of
  :mod:`audioclust.plots`, the shape changes beyond eight categories); hovering shows a
  file's name, label, cluster and thumbnail, clicking plays it;
- one section per cluster of the result: size, label make-up, the members closest to and
  farthest from the centre (thumbnail and player each), and the list of every member;
- the summary tables of stages 04 and 05 (and their full result tables), every figure of
  ``results/<name>/clustering|autoencoder/figures/`` with an index (linked, not copied: keep
  the report inside ``results/<name>/``), and the grouping comparison when
  ``grouping.pairs_csv`` is set;
- the config (YAML) and the package versions that produced it.

The result shown is ``report.result`` of ``report.source``, or the label-free choice
(:func:`audioclust.explore.choose_result`). Tables and cluster sections are plain HTML
(readable without JavaScript); only the map needs it.

Assets, next to ``index.html``
    ``audio/<label>/<stem>.ogg``: the first ``report.audio_seconds`` of each file, mono at
    ``report.audio_rate`` (16 kHz), OGG Vorbis (16-bit WAV with ``report.audio_format: wav``
    or without Vorbis in libsndfile); ``thumbs/<label>/<stem>.webp``: the
    ``report.thumbnail_feature`` image of stage 03 (:func:`audioclust.explore.thumbnail`,
    lossy WebP);
    ``map.csv``: the table behind the map (also returned by :func:`run`). A re-run remakes
    only the assets whose source or settings changed (``.assets.json``) and deletes the
    ones no file needs any more. Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import html
import importlib.metadata
import io
import json
import logging
import platform
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import soundfile as sf
import yaml
from threadpoolctl import threadpool_limits

from . import __version__, explore, plots
from .views import embed_2d
from .config import Config, section_hash
from .datasets import label_folder
from .errors import AudioclustError
from .metrics import NOISE
from .parallel import parallel_map
from .paths import ProjectPaths
from .report import format_frame, format_value
from .storage import read_json, remove_stale_temps, write_bytes, write_csv, write_json, write_text

log = logging.getLogger(__name__)

#: columns of ``map.csv`` (and of the DataFrame :func:`run` returns)
MAP_COLUMNS = ["stem", "label", "cluster", "x", "y", "audio", "thumb", "audio_status", "reason", "audio_bytes"]
#: result-table columns shown in the report (those present)
RESULT_COLUMNS = ["id", "type", "algorithm", "architecture", "latent_dim", "stage", "k", "n_clusters", "params",
                  "status", "selected", "nmi", "acc", "ari", "silhouette", "calinski_harabasz", "davies_bouldin",
                  "n_noise", "runtime_s", "epochs", "train_s"]
#: distributions whose versions the report lists (those installed)
PACKAGES = ["numpy", "scipy", "pandas", "scikit-learn", "librosa", "soundfile", "soxr", "scikit-fuzzy", "umap-learn",
            "torch", "pytorch-lightning", "matplotlib", "pillow", "networkx", "PyYAML"]
#: stages whose folders ``results/<name>/<stage>/`` hold tables and figures, with their titles
STAGE_TITLES = {"clustering": "Stage 04 · classical clustering", "autoencoder": "Stage 05 · autoencoder (DCEC)"}
NOISE_GREY = "#9E9E9E"
_MANIFEST = ".assets.json"
_PROJECTION_CACHE = ".projection.npz"


def report_folder(paths: ProjectPaths) -> Path:
    """``results/<name>/report/``."""
    return paths.results / "report"


def run(cfg: Config, paths: ProjectPaths) -> pd.DataFrame:
    """Write the report (:func:`write_report`) and return its map table.

    Returns
    -------
    DataFrame with :data:`MAP_COLUMNS`, one row per file of the result (also ``map.csv``).
    """
    remove_stale_temps(*paths.generated())
    return _build(cfg, paths)[1]


def write_report(cfg: Config, paths: ProjectPaths) -> Path:
    """Write ``results/<name>/report/index.html`` and its assets; return the page's path.

    Raises
    ------
    StageInputError
        Stage 04 (or, with ``report.source: autoencoder``, stage 05) has not run.
    """
    return _build(cfg, paths)[0]


def _build(cfg: Config, paths: ProjectPaths) -> tuple[Path, pd.DataFrame]:
    r = cfg.report
    out = report_folder(paths)
    result = explore.load_result(paths, r.result, r.source, cfg.cluster.criterion, cfg.cluster.tune_criterion)
    X = explore.result_matrix(cfg, paths, result)
    full = result
    if r.max_files is not None and len(result.files) > r.max_files:
        keep = sample_positions(result.clusters, r.max_files, cfg.seed)
        result = dataclasses.replace(result, files=result.files.iloc[keep].reset_index(drop=True))
        X = X[keep]
        log.info("report: %d files; the map and the cluster sections show a seeded sample of %d (report.max_files)",
                 len(full.files), len(keep))
    Y = project(X, r.projection, cfg.seed, cache=out / _PROJECTION_CACHE)
    table = _write_assets(cfg, paths, result, out)
    table["x"], table["y"] = _normalise(Y)
    table = table[MAP_COLUMNS]
    write_csv(out / "map.csv", table)

    grouping = _grouping(cfg, paths, result, out)
    page = render(cfg, paths, result, X, table, grouping, full=full)
    index = out / "index.html"
    write_text(index, page)
    _log_summary(out, index, table)
    return index, table


# --------------------------------------------------------------------------- projection

def project(X: np.ndarray, method: str = "tsne", seed: int = 0, cache: Path | None = None) -> np.ndarray:
    """The 2-D projection of the sound map.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_dims)
    method : ``tsne`` / ``pca`` (:func:`audioclust.views.embed_2d`; t-SNE falls back to PCA
        below 5 samples) or ``umap`` (umap-learn, seeded).
    seed : random state.
    cache : an ``.npz`` holding the last projection and the hash of its input; reused when
        ``X``, ``method`` and ``seed`` are unchanged.

    Returns
    -------
    ndarray of shape (n_samples, 2), float32
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    key = hashlib.sha256(X.tobytes() + repr((X.shape, method, seed)).encode()).hexdigest()[:16]
    if cache is not None and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as data:
                if str(data["key"]) == key:
                    return data["Y"]
        except (OSError, ValueError, KeyError):
            pass
    n = X.shape[0]
    if method == "umap" and n > 3 and X.shape[1] > 2:
        import umap as umap_learn  # heavy import (numba), only when asked for
        with warnings.catch_warnings():  # "n_jobs overridden by setting random_state": seeded is the point
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            Y = umap_learn.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed).fit_transform(X)
    elif method == "tsne" and n >= 5:
        # one OpenMP thread: on a busy machine t-SNE's threads spin at every one of its 1000
        # iterations (21 points: 35 s with 2 threads under load, 0.1 s with one)
        with threadpool_limits(limits=1, user_api="openmp"):
            Y = embed_2d(X, "tsne", seed)
    else:
        Y = embed_2d(X, "pca", seed) if n >= 2 else np.zeros((n, 2))
    Y = np.asarray(Y, dtype=np.float32)
    if cache is not None:
        buffer = io.BytesIO()
        np.savez(buffer, Y=Y, key=np.array(key))
        write_bytes(cache, buffer.getvalue())
    return Y


def sample_positions(clusters: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """At most ``n`` positions, a seeded sample with every cluster in proportion to its size (at least one each).

    Parameters
    ----------
    clusters : ndarray of shape (n_files,), int
    n : int

    Returns
    -------
    ndarray of sorted positions into ``clusters``.
    """
    rng = np.random.default_rng(seed)
    ids, sizes = np.unique(clusters, return_counts=True)
    quota = np.maximum(1, np.floor(sizes * n / len(clusters)).astype(int))
    keep = [rng.choice(np.flatnonzero(clusters == c), size=min(q, s), replace=False)
            for c, q, s in zip(ids, quota, sizes)]
    return np.sort(np.concatenate(keep))


def _normalise(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both axes into [0, 1] with one scale (distances keep their proportions), centred."""
    Y = np.asarray(Y, dtype=np.float64)
    if len(Y) == 0:
        return np.zeros(0), np.zeros(0)
    lo, hi = Y.min(axis=0), Y.max(axis=0)
    span = float(max(hi - lo)) or 1.0
    Z = (Y - lo) / span + (1.0 - (hi - lo) / span) / 2.0
    return np.round(Z[:, 0], 4), np.round(Z[:, 1], 4)


# --------------------------------------------------------------------------- assets

@dataclass(frozen=True)
class _Settings:
    seconds: float
    rate: int
    fmt: str
    kind: str | None
    size: tuple[int, int]
    cmap: str


@dataclass(frozen=True)
class _Job:
    key: str
    wav: str
    png: str
    audio_out: str
    thumb_out: str


def _fingerprint(path: str) -> list[int] | None:
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _make_assets(job: _Job, settings: _Settings) -> dict[str, Any]:
    """One file's excerpt and thumbnail; failures become a status, never an exception."""
    row: dict[str, Any] = {"audio_status": "ok", "reason": "", "audio_bytes": 0, "thumb_ok": False}
    if not job.wav:
        row.update(audio_status="missing", reason="no WAV path in features.csv")
    else:
        try:
            data = explore.encode_audio(explore.audio_excerpt(job.wav, settings.seconds, settings.rate),
                                        settings.rate, settings.fmt)
            write_bytes(job.audio_out, data)
            row["audio_bytes"] = len(data)
        except (OSError, RuntimeError, ValueError) as exc:
            row.update(audio_status="error", reason=f"{type(exc).__name__}: {exc}")
    if job.thumb_out:
        try:
            write_bytes(job.thumb_out, explore.image_bytes(explore.thumbnail(job.png, settings.size, settings.cmap)))
            row["thumb_ok"] = True
        except OSError as exc:
            row["reason"] = (row["reason"] + "; " if row["reason"] else "") + f"no thumbnail: {exc}"
    return row


def _url(parts: list[str]) -> str:
    """A relative URL from path parts, each percent-encoded."""
    return "/".join(quote(p) for p in parts)


def _write_assets(cfg: Config, paths: ProjectPaths, result: explore.Result, out: Path) -> pd.DataFrame:
    """Excerpts and thumbnails of every file of the result (reused when up to date)."""
    r = cfg.report
    fmt = explore.audio_format(r.audio_format)
    suffix = explore.AUDIO_FORMATS[fmt][0]
    kind = r.thumbnail_feature
    if not cfg.features.png or kind not in cfg.features.kinds:
        log.warning("report: no thumbnails: report.thumbnail_feature '%s' needs features.png: true and '%s' in "
                    "features.kinds", kind, kind)
        kind = None
    settings = _Settings(seconds=r.audio_seconds, rate=r.audio_rate, fmt=fmt, kind=kind,
                         size=(int(r.thumbnail_size[0]), int(r.thumbnail_size[1])), cmap=plots.SEQUENTIAL)
    # only what changes the assets: another report.result or projection reuses them
    settings_key = section_hash(cfg, extra={"settings": dataclasses.asdict(settings),
                                            "thumbnail": [explore.THUMBNAIL_SUFFIX, explore.THUMBNAIL_QUALITY],
                                            "png_range": cfg.features.png_ranges.get(kind or "", None)})
    manifest = read_json(out / _MANIFEST) or {}
    previous = manifest.get("files", {}) if manifest.get("key") == settings_key else {}

    jobs, rows, todo = [], [], []
    for label, stem, wav in zip(result.files["label"], result.files["stem"], result.files["path"]):
        folder = label_folder(label)
        key = f"{folder}/{stem}"
        job = _Job(key=key, wav=str(paths.abs(wav)) if wav else "",
                   png=str(explore.feature_png(paths, kind, label, stem)) if kind else "",
                   audio_out=str(out / "audio" / folder / f"{stem}{suffix}"),
                   thumb_out=str(out / "thumbs" / folder / f"{stem}{explore.THUMBNAIL_SUFFIX}") if kind else "")
        jobs.append(job)
        old = previous.get(key)
        fresh = (isinstance(old, dict) and old.get("wav") == _fingerprint(job.wav)
                 and old.get("png") == (_fingerprint(job.png) if kind else None)
                 and (old.get("audio_status") != "ok" or Path(job.audio_out).is_file())
                 and (not old.get("thumb_ok") or Path(job.thumb_out).is_file()))
        rows.append(old if fresh else None)
        if not fresh:
            todo.append(len(jobs) - 1)
    if len(jobs) > len(todo):
        log.info("report: assets of %d of %d files are up to date", len(jobs) - len(todo), len(jobs))
    made = parallel_map(functools.partial(_make_assets, settings=settings), [jobs[i] for i in todo], cfg,
                        desc="report assets")
    for i, row in zip(todo, made):
        rows[i] = {**row, "wav": _fingerprint(jobs[i].wav), "png": _fingerprint(jobs[i].png) if kind else None}
    write_json(out / _MANIFEST, {"key": settings_key, "files": {j.key: row for j, row in zip(jobs, rows)}})
    _remove_stale(out, {Path(j.audio_out) for j in jobs} | {Path(j.thumb_out) for j in jobs if j.thumb_out})

    records = []
    for row, cluster, label, stem in zip(rows, result.files["cluster"], result.files["label"], result.files["stem"]):
        folder = label_folder(label)
        records.append({
            "stem": stem, "label": label, "cluster": int(cluster),
            "audio": _url(["audio", folder, f"{stem}{suffix}"]) if row["audio_status"] == "ok" else "",
            "thumb": _url(["thumbs", folder, f"{stem}{explore.THUMBNAIL_SUFFIX}"]) if row.get("thumb_ok") else "",
            "audio_status": row["audio_status"], "reason": row["reason"], "audio_bytes": int(row["audio_bytes"])})
    return pd.DataFrame(records)


def _remove_stale(out: Path, keep: set[Path]) -> None:
    """Delete excerpts and thumbnails that no file of the report uses any more."""
    removed = 0
    for sub in ("audio", "thumbs"):
        for path in (out / sub).rglob("*") if (out / sub).is_dir() else ():
            if path.is_file() and path not in keep:
                path.unlink()
                removed += 1
    if removed:
        log.info("report: removed %d stale asset files", removed)


# --------------------------------------------------------------------------- grouping

def _grouping(cfg: Config, paths: ProjectPaths, result: explore.Result, out: Path) -> dict[str, Any] | None:
    """The comparison with ``grouping.pairs_csv`` (None when not set; the error text when it fails)."""
    if not cfg.grouping.pairs_csv:
        return None
    from .grouping import compare_grouping  # networkx, only when a grouping is given
    clusters = result.files[["stem", "label", "path"]].assign(cluster=result.files["cluster"])
    try:
        found = compare_grouping(paths.abs(cfg.grouping.pairs_csv), clusters, out / "grouping",
                                 n_communities=cfg.grouping.n_communities, seed=cfg.seed, cluster_column="cluster")
    except AudioclustError as exc:
        log.warning("report: grouping comparison failed: %s", exc)
        return {"error": str(exc)}
    return found


# --------------------------------------------------------------------------- HTML pieces

def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def html_table(frame: pd.DataFrame, digits: int = 3, caption: str | None = None, cls: str = "",
               row_attrs: list[str] | None = None) -> str:
    """A plain HTML table: numbers formatted (:func:`audioclust.report.format_frame`) and right-aligned.

    Parameters
    ----------
    row_attrs : extra attribute text per row (already escaped), e.g. ``data-member="3"``.
    """
    cells = format_frame(frame, digits)
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    head = "".join(f'<th scope="col"{" class=num" if num else ""}>{_esc(c)}</th>'
                   for c, num in zip(frame.columns, numeric))
    body = []
    for i, row in enumerate(cells.itertuples(index=False)):
        attrs = f" {row_attrs[i]}" if row_attrs else ""
        tds = "".join(f'<td{" class=num" if num else ""}>{_esc(v)}</td>' for v, num in zip(row, numeric))
        body.append(f"<tr{attrs}>{tds}</tr>")
    cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
    return (f'<div class="tablewrap"><table class="{cls}">{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _read_csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, keep_default_na=True)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None


def _tables_section(paths: ProjectPaths) -> str:
    parts = ['<section id="tables"><h2>Tables</h2>',
             "<p>The same tables are in each stage's folder as CSV, Markdown and LaTeX "
             "(<code>summary.csv|md|tex</code>). <em>label-free</em> rows were chosen without labels; "
             "<em>best by NMI</em> rows use the labels and only show what was reachable.</p>"]
    found = False
    for stage, title in STAGE_TITLES.items():
        folder = paths.results / stage
        summary, results = _read_csv(folder / "summary.csv"), _read_csv(folder / "results.csv")
        if summary is None and results is None:
            continue
        found = True
        parts.append(f'<h3 id="tables-{stage}">{_esc(title)}</h3>')
        if summary is not None:
            parts.append(html_table(summary, caption=f"{stage}/summary.csv"))
        if results is not None:
            shown = results[[c for c in RESULT_COLUMNS if c in results.columns]]
            parts.append(f"<details><summary>All {len(results)} results ({stage}/results.csv)</summary>"
                         f"{html_table(shown, caption=f'{stage}/results.csv (main columns)')}</details>")
    if not found:
        parts.append("<p>No result tables yet.</p>")
    parts.append("</section>")
    return "".join(parts)


def _figures_section(paths: ProjectPaths) -> str:
    """Every figure PNG of the stages, linked relatively, with an index by stage and kind."""
    index, blocks, n = [], [], 0
    for stage, title in STAGE_TITLES.items():
        pngs = sorted((paths.results / stage / "figures").glob("*.png"))
        if not pngs:
            continue
        families: dict[str, list[Path]] = {}
        for png in pngs:
            families.setdefault(png.name.split(".", 1)[0], []).append(png)
        index.append(f"<li>{_esc(title)}<ul>")
        blocks.append(f'<h3 id="figures-{stage}">{_esc(title)}</h3>')
        for family, files in families.items():
            links = []
            for png in files:
                n += 1
                anchor = f"fig-{n}"
                src = _url(["..", stage, "figures", png.name])
                pdf = png.with_suffix(".pdf")
                pdf_link = f' · <a href="{_url(["..", stage, "figures", pdf.name])}">PDF</a>' if pdf.is_file() else ""
                name = png.name[: -len(".png")]
                links.append(f'<a href="#{anchor}">{_esc(name[len(family) + 1:] or name)}</a>')
                blocks.append(f'<figure class="fig" id="{anchor}"><a href="{src}"><img src="{src}" loading="lazy" '
                              f'alt="figure {_esc(name)}"></a><figcaption>Figure {n}. <code>{_esc(stage)}/figures/'
                              f'{_esc(png.name)}</code>{pdf_link}</figcaption></figure>')
            index.append(f"<li><b>{_esc(family.replace('_', ' '))}</b> ({len(files)}): {', '.join(links)}</li>")
        index.append("</ul></li>")
    if not n:
        return '<section id="figures"><h2>Figures</h2><p>No figures (set <code>cluster.figures: true</code>).</p></section>'
    return (f'<section id="figures"><h2>Figures</h2><p>{n} figures (PNG, 300 dpi; PDF beside each), shown from the '
            "stages' folders: keep this report inside <code>results/&lt;name&gt;/</code>.</p>"
            f'<nav class="figindex" aria-label="figure index"><ul>{"".join(index)}</ul></nav>{"".join(blocks)}</section>')


def _grouping_section(grouping: dict[str, Any] | None, out: Path) -> str:
    if grouping is None:
        return ""
    if "error" in grouping:
        return (f'<section id="grouping"><h2>Comparison with the external grouping</h2>'
                f'<p class="warn">{_esc(grouping["error"])}</p></section>')
    figure = out / "grouping" / "grouping_contingency.png"
    img = (f'<figure class="fig"><img src="grouping/grouping_contingency.png" alt="contingency of communities and '
           f'clusters"><figcaption>Communities of the grouping against the audio clusters.</figcaption></figure>'
           if figure.is_file() else "")
    return (f'<section id="grouping"><h2>Comparison with the external grouping</h2>'
            f"<p>Communities of the co-occurrence graph of <code>grouping.pairs_csv</code> (largest connected "
            f"component) against the clusters of this result.</p>{html_table(grouping['summary'])}{img}</section>")


def package_versions() -> dict[str, str]:
    """Python, audioclust, libsndfile and the installed :data:`PACKAGES` (read from metadata, not imported)."""
    versions = {"python": platform.python_version(), "audioclust": __version__,
                "libsndfile": str(sf.__libsndfile_version__)}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _provenance_section(cfg: Config, paths: ProjectPaths, result: explore.Result) -> str:
    found = package_versions()
    versions = pd.DataFrame({"package": list(found), "version": list(found.values())})
    config_text = yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True, default_flow_style=None)
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<section id="provenance"><h2>Provenance</h2><p>Written {when} by <code>audioclust report --dataset '
            f'{_esc(paths.dataset)}</code> on {_esc(platform.platform())}. Result: <code>{_esc(result.id)}</code> '
            f"of <code>{_esc(result.source)}/results.csv</code> ({_esc(result.how)}).</p>"
            f"<h3>Package versions</h3>{html_table(versions)}"
            f'<h3>Config</h3><p>The merged configuration (defaults, <code>configs/{_esc(paths.dataset)}.yaml</code>, '
            f'overrides) as YAML:</p><pre class="config" id="config-yaml">{_esc(config_text)}</pre></section>')


def _cluster_sections(cfg: Config, result: explore.Result, X: np.ndarray, table: pd.DataFrame,
                      full: explore.Result) -> str:
    """Overview and one section per cluster: sizes and make-up of ``full``, members from ``result``."""
    clusters = explore.cluster_table(full)
    makeup = explore.label_makeup(full)
    rows = [f'data-cluster="{int(c)}"' for c in clusters["cluster"]]
    overview = clusters[["name", "size", "share", "n_labels", "majority", "majority_share", "makeup"]]
    links = " · ".join(f'<a href="#cluster-{int(c)}">{_esc(explore.cluster_name(int(c)))}</a>'
                       for c in clusters["cluster"])
    parts = [f'<section id="clusters"><h2>Clusters</h2><p>{len(clusters)} clusters of <code>{_esc(result.id)}</code>. '
             "Closest and farthest: Euclidean distance to the cluster's centre in the matrix that was clustered. "
             f"Jump to: {links}</p>", html_table(overview, caption="Size and label make-up", row_attrs=rows)]
    mime = explore.AUDIO_FORMATS[explore.audio_format(cfg.report.audio_format)][1]
    for _, info in clusters.iterrows():
        c = int(info["cluster"])
        ranked = explore.members_by_distance(X, result.clusters, c)
        closest, farthest = explore.closest_and_farthest(ranked, cfg.report.n_members)

        def cards(part: pd.DataFrame) -> str:
            out = []
            for pos, dist in zip(part["position"], part["distance"]):
                t = table.iloc[int(pos)]
                out.append(explore.member_card(t["stem"], t["label"], c, t["thumb"] or None, t["audio"] or None, mime,
                                               note=f"distance {dist:.2f}"))
            return f'<div class="cards">{"".join(out)}</div>'

        counts = makeup.loc[c]
        counts = counts[counts > 0].sort_values(ascending=False, kind="stable")
        makeup_frame = pd.DataFrame({"label": counts.index, "files": counts.to_numpy(),
                                     "share": counts.to_numpy() / int(info["size"])})
        member_rows = []
        for rank, (pos, dist) in enumerate(zip(ranked["position"], ranked["distance"]), start=1):
            m = table.iloc[int(pos)]
            link = (f'<a class="play" href="{_esc(m["audio"])}" data-i="{int(pos)}">▶ {_esc(m["stem"])}</a>'
                    if m["audio"] else _esc(m["stem"]))
            member_rows.append(f'<tr data-member="{int(pos)}"><td class="num">{rank}</td><td>{link}</td>'
                               f'<td>{_esc(label_folder(m["label"]))}</td><td class="num">{dist:.2f}</td></tr>')
        parts.append(
            f'<section class="cluster" id="cluster-{c}" data-size="{int(info["size"])}">'
            f'<h3>{_esc(explore.cluster_name(c).capitalize())} · {int(info["size"])} files ({info["share"]:.0%})</h3>'
            f'{html_table(makeup_frame, caption="Label make-up")}'
            f'<h4>Closest to the centre</h4>{cards(closest)}'
            + (f'<h4>Farthest from the centre</h4>{cards(farthest)}' if len(farthest) else "")
            + f'<details><summary>All {int(info["size"])} members, closest first</summary><div class="tablewrap">'
              f'<table class="members"><thead><tr><th scope="col" class=num>rank</th><th scope="col">file</th>'
              f'<th scope="col">label</th><th scope="col" class=num>distance</th></tr></thead>'
              f'<tbody>{"".join(member_rows)}</tbody></table></div></details></section>')
    parts.append("</section>")
    return "".join(parts)


def _map_data(result: explore.Result, table: pd.DataFrame) -> str:
    """The JSON behind the sound map (columns of equal length), safe inside a ``<script>`` element."""
    data = {
        "x": table["x"].tolist(), "y": table["y"].tolist(), "name": table["stem"].tolist(),
        "label": [label_folder(lab) for lab in table["label"]], "cluster": table["cluster"].astype(int).tolist(),
        "audio": table["audio"].tolist(), "thumb": table["thumb"].tolist(),
        "palette": list(plots.OKABE_ITO), "noise": NOISE_GREY, "noiseCluster": NOISE,
        "result": result.id,
    }
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")


def _headline(result: explore.Result) -> str:
    r = result.row
    scores = []
    for key, name in (("silhouette", "silhouette"), ("nmi", "NMI"), ("acc", "ACC"), ("ari", "ARI")):
        value = r.get(key)
        if value is not None and pd.notna(value):
            scores.append(f"{name} {format_value(float(value))}")
    return (f"<p>Result <code>{_esc(result.id)}</code>: {_esc(r.get('type', ''))}, {_esc(r.get('algorithm', ''))}, "
            f"{len(result.cluster_ids)} clusters of {len(result.files)} files ({_esc(result.how)}). "
            f"{_esc(' · '.join(scores))}{' (NMI, ACC, ARI use the labels: evaluation only)' if pd.notna(r.get('nmi')) else ''}."
            " Set <code>report.result</code> to show another row.</p>")


def render(cfg: Config, paths: ProjectPaths, result: explore.Result, X: np.ndarray, table: pd.DataFrame,
           grouping: dict[str, Any] | None = None, full: explore.Result | None = None) -> str:
    """The whole page as text (see the module notes); ``full``: the whole result when ``result``
    and ``table`` hold a sample of its files (:func:`sample_positions`)."""
    out = report_folder(paths)
    n = len(table)
    full = result if full is None else full
    sampled = (f'<p class="warn">The result has {len(full.files):,} files; the map and the members of each cluster '
               f"are a seeded sample of {n:,} of them, every cluster in proportion (<code>report.max_files</code>). "
               "Cluster sizes, label make-up and scores are those of all files.</p>" if len(full.files) > n else "")
    n_audio = int((table["audio"] != "").sum())
    nav = [("map", "Sound map"), ("clusters", "Clusters"), ("tables", "Tables"), ("figures", "Figures")]
    if grouping is not None:
        nav.append(("grouping", "Grouping"))
    nav.append(("provenance", "Provenance"))
    projection = {"tsne": "t-SNE", "pca": "PCA", "umap": "UMAP"}[cfg.report.projection]
    body = f"""
<header><h1>audioclust · {_esc(paths.dataset)}</h1>
<nav aria-label="sections">{" · ".join(f'<a href="#{a}">{t}</a>' for a, t in nav)}</nav>
{_headline(full)}{sampled}</header>
<main>
<section id="map"><h2>Sound map</h2>
<p>Every file as a point: a {projection} projection (seed {cfg.seed}) of the matrix that was clustered. Hover a point
to see it, click it to hear its first {cfg.report.audio_seconds:g} s ({n_audio} of {n} files have sound); with the map
focused, the arrow keys step through the files. Hover a legend entry to pick out its points.</p>
<noscript><p class="warn">The sound map needs JavaScript; the cluster sections below work without it.</p></noscript>
<div class="controls" role="group" aria-label="map controls">
<fieldset><legend>Colour by</legend>
<label><input type="radio" name="colour" value="cluster" checked> cluster</label>
<label><input type="radio" name="colour" value="label"> label</label></fieldset>
<label><input type="checkbox" id="hoverplay"> play on hover</label>
</div>
<div class="mapwrap">
<div class="mapbox"><svg id="soundmap" viewBox="0 0 1000 640" role="img" tabindex="0"
 aria-label="Sound map of {n} files; click a point to play it, or focus the map and step through the files with the arrow keys"
 data-points="{n}"></svg>
<div id="tip" class="tip" hidden></div></div>
<aside id="info" aria-live="polite"><p class="hint">Click a point.</p></aside>
</div>
<ul id="legend" class="legend" aria-label="legend"></ul>
</section>
{_cluster_sections(cfg, result, X, table, full)}
{_tables_section(paths)}
{_figures_section(paths)}
{_grouping_section(grouping, out)}
{_provenance_section(cfg, paths, result)}
</main>
<div id="nowplaying" class="nowplaying"><span id="np-text">Nothing playing.</span>
<audio id="player" controls preload="none"></audio></div>
<script type="application/json" id="map-data">{_map_data(result, table)}</script>
<script>{_JS}</script>"""
    csp = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
           "img-src 'self' file: data:; media-src 'self' file: data:")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>audioclust report · {_esc(paths.dataset)}</title>
<link rel="icon" href="data:,">
<style>{_CSS}</style></head>
<body>{body}
</body></html>
"""


def _log_summary(out: Path, index: Path, table: pd.DataFrame) -> None:
    counts = Counter(table["audio_status"])
    for _, bad in table[table["audio_status"] != "ok"].head(3).iterrows():
        log.warning("report: no audio for %s/%s: %s", label_folder(bad["label"]), bad["stem"], bad["reason"])
    sizes = {sub: sum(p.stat().st_size for p in (out / sub).rglob("*") if p.is_file()) if (out / sub).is_dir() else 0
             for sub in ("audio", "thumbs")}
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    ok = max(1, counts.get("ok", 0))
    log.info("report: %d files (audio %s); %.1f MB in all: audio %.1f MB (%.1f kB per file), thumbnails %.1f MB, "
             "page %.0f kB", len(table), ", ".join(f"{s}: {c}" for s, c in sorted(counts.items())), total / 1e6,
             sizes["audio"] / 1e6, sizes["audio"] / ok / 1e3, sizes["thumbs"] / 1e6, index.stat().st_size / 1e3)
    log.info("report: open %s", index.resolve().as_uri())


# --------------------------------------------------------------------------- page style and script

_CSS = """
:root{--fg:#1a1a1a;--muted:#555;--line:#d0d0d0;--bg:#fff;--accent:#0072B2}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
background:var(--bg);padding-bottom:64px}
header,main{max-width:1200px;margin:0 auto;padding:0 16px}
h1{margin:16px 0 4px;font-size:1.6em}h2{border-bottom:2px solid var(--line);padding-bottom:4px;margin-top:40px}
a{color:var(--accent)}a:focus,button:focus,input:focus,#soundmap:focus-visible{outline:3px solid #E69F00;outline-offset:1px}
#soundmap:focus{outline:none}
code{background:#f3f3f3;padding:0 3px;border-radius:3px}
.warn{color:#8a3b00}
.controls{display:flex;gap:24px;align-items:center;flex-wrap:wrap;margin:8px 0}
fieldset{border:1px solid var(--line);padding:2px 10px}
.mapwrap{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}
.mapbox{position:relative;flex:1 1 640px;min-width:300px;border:1px solid var(--line);border-radius:4px}
#soundmap{display:block;width:100%;height:auto;cursor:crosshair}
#soundmap .pt{stroke:rgba(0,0,0,.6);stroke-width:.8;transition:opacity .15s}
#soundmap .pt.sel{stroke:#000;stroke-width:3}
#soundmap .pt.dim{opacity:.12}
.tip{position:absolute;pointer-events:none;background:rgba(255,255,255,.96);border:1px solid #888;border-radius:4px;
padding:4px 6px;font-size:12px;max-width:220px;box-shadow:0 1px 4px rgba(0,0,0,.2)}
.tip img{display:block;width:128px;margin-top:3px}
aside#info{flex:0 1 260px;border:1px solid var(--line);border-radius:4px;padding:8px 12px;min-height:120px}
aside#info img{width:100%}
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:4px 16px}
.legend li{cursor:default;display:flex;align-items:center;gap:4px}
.legend svg{width:16px;height:16px}
.tablewrap{overflow-x:auto}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
caption{text-align:left;color:var(--muted);font-size:12px;padding:2px 0}
th,td{border-bottom:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f6f6}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{margin:0;width:180px;font-size:12px;border:1px solid var(--line);border-radius:4px;padding:4px}
.card img{display:block;width:100%}.card audio{width:100%;height:30px}
.note{color:var(--muted)}.noimg,.noaudio{color:var(--muted);font-style:italic}
section.cluster{border-top:1px solid var(--line);margin-top:24px}
.fig{display:inline-block;margin:8px;max-width:540px;vertical-align:top}.fig img{max-width:100%;border:1px solid #eee}
.fig figcaption{font-size:12px;color:var(--muted)}
.figindex ul{margin:2px 0}
pre.config{background:#f6f6f6;padding:8px;overflow:auto;max-height:480px;font-size:12px}
.nowplaying{position:fixed;left:0;right:0;bottom:0;background:#fafafa;border-top:1px solid var(--line);
display:flex;gap:12px;align-items:center;padding:6px 16px;font-size:13px}
.nowplaying audio{height:32px;flex:0 1 420px}
"""

_JS = r"""
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("map-data").textContent);
  var svg = document.getElementById("soundmap");
  var tip = document.getElementById("tip");
  var info = document.getElementById("info");
  var player = document.getElementById("player");
  var npText = document.getElementById("np-text");
  var legend = document.getElementById("legend");
  var hoverPlay = document.getElementById("hoverplay");
  var W = 1000, H = 640, PAD = 24, R = 6;
  var n = data.x.length, points = [], current = -1, mode = "cluster";
  var SHAPES = ["circle", "square", "triangle", "diamond"];

  function shapePath(shape, x, y, r) {
    if (shape === "square") { var s = r * 0.85; return "M" + (x - s) + " " + (y - s) + "h" + 2 * s + "v" + 2 * s + "h" + (-2 * s) + "Z"; }
    if (shape === "triangle") { return "M" + x + " " + (y - r * 1.1) + "L" + (x + r) + " " + (y + r * 0.75) + "L" + (x - r) + " " + (y + r * 0.75) + "Z"; }
    if (shape === "diamond") { return "M" + x + " " + (y - r * 1.15) + "L" + (x + r) + " " + y + "L" + x + " " + (y + r * 1.15) + "L" + (x - r) + " " + y + "Z"; }
    return "M" + (x - r) + " " + y + "a" + r + " " + r + " 0 1 0 " + 2 * r + " 0a" + r + " " + r + " 0 1 0 " + (-2 * r) + " 0Z";
  }
  function natural(a, b) { return String(a).localeCompare(String(b), undefined, {numeric: true}); }
  function clusterName(c) { return c === data.noiseCluster ? "noise" : "cluster " + c; }

  // categories of both colourings: palette colours first, then the shape changes
  function categories(values, isNoise) {
    var counts = {};
    values.forEach(function (v) { counts[v] = (counts[v] || 0) + 1; });
    var keys = Object.keys(counts).sort(natural);
    var plain = keys.filter(function (k) { return !isNoise(k); });
    var noise = keys.filter(isNoise);
    var style = {};
    plain.forEach(function (k, i) {
      style[k] = {colour: data.palette[i % data.palette.length],
                  shape: SHAPES[Math.floor(i / data.palette.length) % SHAPES.length], count: counts[k]};
    });
    noise.forEach(function (k) { style[k] = {colour: data.noise, shape: "circle", count: counts[k]}; });
    return {order: plain.concat(noise), style: style};
  }
  var modes = {
    cluster: {values: data.cluster.map(String), name: function (k) { return clusterName(Number(k)); },
              cats: categories(data.cluster.map(String), function (k) { return Number(k) === data.noiseCluster; })},
    label: {values: data.label, name: function (k) { return k; },
            cats: categories(data.label, function (k) { return k === "unlabelled"; })}
  };

  function px(i) { return PAD + data.x[i] * (W - 2 * PAD); }
  function py(i) { return H - PAD - data.y[i] * (H - 2 * PAD); }

  for (var i = 0; i < n; i++) {
    var p = document.createElementNS(NS, "path");
    p.setAttribute("class", "pt");
    p.setAttribute("data-i", String(i));
    svg.appendChild(p);
    points.push(p);
  }

  function recolour(newMode) {
    mode = newMode;
    var m = modes[mode];
    points.forEach(function (p, i) {
      var st = m.cats.style[m.values[i]];
      p.setAttribute("d", shapePath(st.shape, px(i), py(i), R));
      p.setAttribute("fill", st.colour);
      p.setAttribute("data-cat", m.values[i]);
    });
    legend.textContent = "";
    m.cats.order.forEach(function (k) {
      var st = m.cats.style[k];
      var li = document.createElement("li");
      var sw = document.createElementNS(NS, "svg");
      sw.setAttribute("viewBox", "0 0 16 16");
      sw.setAttribute("aria-hidden", "true");
      var path = document.createElementNS(NS, "path");
      path.setAttribute("d", shapePath(st.shape, 8, 8, 6));
      path.setAttribute("fill", st.colour);
      sw.appendChild(path);
      li.appendChild(sw);
      li.appendChild(document.createTextNode(m.name(k) + " (" + st.count + ")"));
      li.addEventListener("mouseenter", function () { highlight(k); });
      li.addEventListener("mouseleave", function () { highlight(null); });
      legend.appendChild(li);
    });
  }
  function highlight(cat) {
    points.forEach(function (p) { p.classList.toggle("dim", cat !== null && p.getAttribute("data-cat") !== cat); });
  }

  function describe(i, el) {
    el.textContent = "";
    var b = document.createElement("b");
    b.textContent = data.name[i];
    el.appendChild(b);
    el.appendChild(document.createElement("br"));
    el.appendChild(document.createTextNode("label: " + data.label[i]));
    el.appendChild(document.createElement("br"));
    el.appendChild(document.createTextNode(clusterName(data.cluster[i])));
    if (data.thumb[i]) {
      var img = document.createElement("img");
      img.src = data.thumb[i];
      img.alt = data.name[i] + ": thumbnail";
      el.appendChild(img);
    }
  }
  function showTip(i, evt) {
    describe(i, tip);
    var box = svg.getBoundingClientRect();
    var x = evt.clientX - box.left + 12, y = evt.clientY - box.top + 12;
    if (x > box.width - 230) { x -= 250; }
    tip.style.left = x + "px";
    tip.style.top = y + "px";
    tip.hidden = false;
  }
  function play(i) {
    if (current >= 0) { points[current].classList.remove("sel"); }
    current = i;
    points[i].classList.add("sel");
    svg.appendChild(points[i]);  // drawn last: on top
    describe(i, info);
    var link = document.createElement("a");
    link.href = "#cluster-" + data.cluster[i];
    link.textContent = "go to its cluster";
    info.appendChild(link);
    npText.textContent = data.name[i] + " · " + data.label[i] + " · " + clusterName(data.cluster[i]);
    svg.removeAttribute("data-playing");
    if (!data.audio[i]) { npText.textContent += " (no audio)"; return; }
    player.setAttribute("data-i", String(i));
    player.src = data.audio[i];
    var started = player.play();
    if (started && started.catch) {
      started.catch(function (err) {
        if (err.name !== "AbortError") { npText.textContent += " (cannot play: " + err.message + ")"; }
      });
    }
  }
  player.addEventListener("playing", function () { svg.setAttribute("data-playing", player.getAttribute("data-i")); });

  svg.addEventListener("mouseover", function (evt) {
    var t = evt.target;
    if (!t.classList || !t.classList.contains("pt")) { return; }
    var i = Number(t.getAttribute("data-i"));
    showTip(i, evt);
    if (hoverPlay.checked && i !== current) { play(i); }
  });
  svg.addEventListener("mouseout", function (evt) {
    if (evt.target.classList && evt.target.classList.contains("pt")) { tip.hidden = true; }
  });
  svg.addEventListener("click", function (evt) {
    var t = evt.target;
    if (t.classList && t.classList.contains("pt")) { play(Number(t.getAttribute("data-i"))); }
  });
  document.querySelectorAll('input[name="colour"]').forEach(function (radio) {
    radio.addEventListener("change", function () { if (radio.checked) { recolour(radio.value); } });
  });
  // keyboard: with the map focused, arrow keys step through the files (in table order) and play them
  svg.addEventListener("keydown", function (evt) {
    var step = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1}[evt.key];
    if (step === undefined || n === 0) { return; }
    evt.preventDefault();
    play(current < 0 ? 0 : (current + step + n) % n);
  });
  document.addEventListener("click", function (evt) {
    var a = evt.target.closest ? evt.target.closest("a.play") : null;
    if (a) { evt.preventDefault(); play(Number(a.getAttribute("data-i"))); }
  });
  recolour("cluster");
  svg.setAttribute("data-ready", "true");
})();
"""
