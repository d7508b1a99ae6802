"""The offline HTML report, read without a browser: links, map data, cluster sections, config, audio."""

from __future__ import annotations

import dataclasses
import html
import importlib.resources
import json
import logging
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from PIL import Image

from audioclust import cli, results
from audioclust.config import load_config
from audioclust.core.paths import ProjectPaths
from audioclust.report.html import render
from audioclust.represent import projection
from audioclust.stages import cluster, extract, metadata, transform
from audioclust.stages import report as html_report
from audioclust.stages.prepare import generate_demo

REPO = Path(__file__).resolve().parents[1]
N_PER_CLASS = 3  # 7 demo families: 21 files
FAST = ["parallel.n_jobs=1", "features.kinds=[mel, mfcc]", "views.features=[mfcc]", "views.kinds=[stats]",
        "views.sources=[npy]", "cluster.algorithms=[kmeans, agglomerative]", "cluster.k=3", "cluster.tune=false",
        "cluster.tsne=false", "report.audio_seconds=0.5", "report.n_members=2"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny demo project through stages 01–04 and the report."""
    root = tmp_path_factory.mktemp("report")
    (root / "configs").mkdir()
    shutil.copy(REPO / "configs" / "default.yaml", root / "configs" / "default.yaml")
    cfg = load_config(root, "tiny", overrides=FAST)
    paths = ProjectPaths(root, "tiny")
    generate_demo(paths.raw, n_per_class=N_PER_CLASS, seconds=0.8)
    for stage in (metadata, transform, extract, cluster):
        stage.run(cfg, paths)
    table = html_report.run(cfg, paths)
    return cfg, paths, table


class _Refs(HTMLParser):
    """Every src/href of a page, and the text of elements by id."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append((tag, name, value))


def _page(paths: ProjectPaths) -> str:
    return (html_report.report_folder(paths) / "index.html").read_text(encoding="utf-8")


def _map_data(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))


def test_every_reference_is_a_relative_local_file_that_exists(built):
    cfg, paths, _ = built
    page = _page(paths)
    folder = html_report.report_folder(paths)
    parser = _Refs()
    parser.feed(page)
    files = [v for _, _, v in parser.refs if not v.startswith("#") and not v.startswith("data:")]
    assert len(files) > 2 * 21  # audio links and thumbnails of the cluster sections, figures
    for value in files:
        parsed = urlparse(value)
        assert not parsed.scheme and not parsed.netloc and not value.startswith("/"), value
        assert (folder / unquote(parsed.path)).resolve().is_file(), value
    # nothing is fetched from elsewhere: no external script or style sheet, no URL but the SVG namespace
    assert "<script src" not in page and 'rel="stylesheet"' not in page
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in page
    # every figure of stage 04 is shown once, from its own folder
    figures = sorted(p.name for p in (paths.results / "clustering" / "figures").glob("*.png"))
    assert figures
    shown = sorted(unquote(v).rsplit("/", 1)[-1] for tag, _, v in parser.refs if tag == "img" and "/figures/" in v)
    assert shown == figures
    # the index groups them by kind, named in words, in the order of the analysis
    index = re.search(r'<nav class="figindex".*?</nav>', page, re.S).group(0)
    groups = re.findall(r"<b>(.*?)</b> \((\d+)\)", index)
    assert [g for g, _ in groups] == ["Explained variance", "PCA scatter", "Labels against clusters", "Dendrogram"]
    assert sum(int(n) for _, n in groups) == len(figures)


def test_map_data_has_one_point_per_file_with_its_cluster(built):
    cfg, paths, table = built
    data = _map_data(_page(paths))
    labels = pd.read_csv(paths.results / "clustering" / "labels.csv", keep_default_na=False, dtype={"stem": str})
    result_id = data["result"]
    assert len(labels) == 7 * N_PER_CLASS
    for key in ("x", "y", "name", "label", "cluster", "audio", "thumb"):
        assert len(data[key]) == len(labels), key
    assert data["name"] == labels["stem"].tolist()
    assert data["cluster"] == labels[result_id].astype(int).tolist()
    assert data["label"] == labels["label"].tolist()
    assert min(data["x"]) >= 0 and max(data["x"]) <= 1 and min(data["y"]) >= 0 and max(data["y"]) <= 1
    # one scale for both axes: the wider one spans [0, 1] exactly
    assert max(max(data["x"]) - min(data["x"]), max(data["y"]) - min(data["y"])) == pytest.approx(1.0, abs=1e-3)
    assert table["stem"].tolist() == data["name"] and (table["audio_status"] == "ok").all()
    on_disk = pd.read_csv(html_report.report_folder(paths) / "map.csv", keep_default_na=False)
    assert on_disk["cluster"].tolist() == data["cluster"]


def test_cluster_sections_have_the_right_members(built):
    cfg, paths, _ = built
    page = _page(paths)
    data = _map_data(page)
    sections = re.findall(r'<section class="cluster" id="cluster-(-?\d+)" data-size="(\d+)">(.*?)</section>', page, re.S)
    expected = pd.Series(data["cluster"]).value_counts().to_dict()
    assert {int(c): int(size) for c, size, _ in sections} == expected
    for c, size, body in sections:
        members = [int(i) for i in re.findall(r'<tr data-member="(\d+)">', body)]
        assert sorted(members) == [i for i, k in enumerate(data["cluster"]) if k == int(c)]
        # n_members = 2 closest and up to 2 farthest cards, each with a player
        assert body.count('<figure class="card">') == min(int(size), 4)
        assert body.count("<audio controls") == min(int(size), 4)


def test_config_and_versions_are_in_the_page(built):
    cfg, paths, _ = built
    page = _page(paths)
    match = re.search(r'<pre class="config" id="config-yaml">(.*?)</pre>', page, re.S)
    assert yaml.safe_load(html.unescape(match.group(1))) == cfg.to_dict()
    for name in ("audioclust", "numpy", "librosa", "scikit-learn", "libsndfile"):
        assert f"<td>{name}</td>" in page


def test_page_inlines_the_package_style_and_script_and_escapes_labels(built):
    """The CSS and JS come from the package's data files; a label holding markup is shown as text."""
    cfg, paths, _ = built
    page = _page(paths)
    static = importlib.resources.files("audioclust.report").joinpath("static")
    for name in ("report.css", "report.js"):
        text = static.joinpath(name).read_text(encoding="utf-8")
        assert len(text) > 1000 and text in page, name

    full = results.load_result(paths, None, "clustering", cfg.cluster.criterion)
    files = full.files.copy()
    files.loc[0, "label"] = "<b>x</b>"
    hostile = dataclasses.replace(full, files=files)
    table = pd.read_csv(html_report.report_folder(paths) / "map.csv", keep_default_na=False, dtype={"stem": str})
    table["label"] = files["label"]
    X = np.random.default_rng(0).normal(size=(len(files), 3))
    page = render(paths, hostile, X, table, report=cfg.report, seed=cfg.seed, config=cfg.to_dict())
    assert "<b>x</b>" not in page
    assert "<td>&lt;b&gt;x&lt;/b&gt;</td>" in page          # the member list and the label make-up
    assert _map_data(page)["label"][0] == "<b>x</b>"        # the map's JSON keeps the text, escaped for <script>

def test_audio_excerpts_are_16k_mono_and_short(built):
    cfg, paths, table = built
    folder = html_report.report_folder(paths)
    assert len(table) == 21
    for rel in table["audio"]:
        info = sf.info(folder / unquote(rel))
        assert (info.samplerate, info.channels, info.format) == (16000, 1, "OGG")
        assert 0.4 < info.duration <= cfg.report.audio_seconds  # the demo files last 0.64–0.96 s
        assert rel.endswith(".ogg")
    assert table["audio_bytes"].between(500, 16000).all()  # 0.5 s of 16-bit PCM would be 16 kB
    for rel in table["thumb"]:
        with Image.open(folder / unquote(rel)) as im:
            assert im.size == tuple(cfg.report.thumbnail_size)


def test_rerun_reuses_assets_and_a_changed_setting_remakes_them(built, monkeypatch, caplog):
    cfg, paths, table = built
    folder = html_report.report_folder(paths)
    first = folder / unquote(table["audio"].iloc[0])
    stamp = first.stat().st_mtime_ns

    def no_tsne(*args, **kwargs):
        raise AssertionError("the projection should come from its cache")

    monkeypatch.setattr(projection, "embed_2d", no_tsne)
    root = str(paths.root)
    caplog.set_level(logging.INFO)
    assert cli.main(["report", "--dataset", "tiny", "--root", root, *sum((["--set", s] for s in FAST), [])]) == 0
    assert first.stat().st_mtime_ns == stamp
    monkeypatch.undo()
    # the result is named once, by the stage (notebook 06 loads it too, and shows it itself)
    shown = results.load_result(paths).describe()
    named = [r.getMessage() for r in caplog.records if r.getMessage().startswith(("result", "report: result"))]
    assert named == [f"report: result {shown}"]

    pairs = paths.root / "pairs.csv"
    data = _map_data(_page(paths))
    pd.DataFrame({"group": [f"g{c}" for c in data["cluster"]], "item": data["name"]}).to_csv(pairs, index=False)
    changed = [*FAST, "report.audio_format=wav", "report.audio_seconds=0.25", "grouping.pairs_csv=pairs.csv"]
    assert cli.main(["report", "--dataset", "tiny", "--root", root, *sum((["--set", s] for s in changed), [])]) == 0
    remade = pd.read_csv(folder / "map.csv", keep_default_na=False)
    assert not list(folder.rglob("*.ogg"))  # the old excerpts are gone
    info = sf.info(folder / unquote(remade["audio"].iloc[0]))
    assert (info.format, info.subtype, info.frames) == ("WAV", "PCM_16", 4000)
    page = _page(paths)
    assert 'id="grouping"' in page and "grouping/grouping_contingency.png" in page
    # communities made from the clusters themselves match them exactly
    summary = pd.read_csv(folder / "grouping" / "grouping_comparison.csv")
    assert summary["nmi"].iloc[0] == pytest.approx(1.0)

    # a WAV gone since: its point stays on the map, without sound, and the stage goes on
    gone = paths.abs(pd.read_csv(paths.features_csv, keep_default_na=False)["path"].iloc[4])
    gone.unlink()
    table = html_report.run(load_config(paths.root, "tiny", overrides=changed), paths)
    assert table["audio_status"].tolist().count("error") == 1 and table["audio_status"].iloc[4] == "error"
    assert table["audio"].iloc[4] == "" and table["reason"].iloc[4].startswith("LibsndfileError: Error opening")
    data = _map_data(_page(paths))
    assert len(data["x"]) == 21 and data["audio"][4] == ""


def test_projection_pca_by_hand():
    X = np.array([[0, 0, 1], [2, 0, 1], [4, 0, 1], [6, 0, 1.1]], dtype=np.float32)
    Y = projection.project(X, "tsne", seed=0)  # fewer than 5 points: PCA
    assert Y.shape == (4, 2)
    np.testing.assert_allclose(np.abs(Y[:, 0]), [3, 1, 1, 3], atol=1e-3)
    x, y = projection._normalise(Y)
    assert x.min() == 0 and x.max() == 1


def test_sample_positions_keep_every_cluster_in_proportion():
    clusters = np.repeat([0, 1, 2, -1], [600, 300, 99, 1])
    keep = projection.sample_positions(clusters, 100, seed=0)
    assert np.all(np.diff(keep) > 0)                              # sorted, no repeat
    counts = {c: int((clusters[keep] == c).sum()) for c in (0, 1, 2, -1)}
    assert counts == {0: 60, 1: 30, 2: 9, -1: 1}                  # floor(size * 100 / 1000), at least one
    np.testing.assert_array_equal(keep, projection.sample_positions(clusters, 100, seed=0))


def test_large_result_shows_a_sample_with_true_sizes(built):
    cfg, paths, _ = built
    small = load_config(paths.root, "tiny", overrides=FAST + ["report.max_files=10"])
    table = html_report.run(small, paths)
    page = _page(paths)
    full = results.load_result(paths, None, "clustering", cfg.cluster.criterion)
    assert len(full.files) == 21 and 7 <= len(table) <= 10
    assert "seeded sample of" in page
    assert set(table["cluster"]) == set(full.cluster_ids)          # every cluster kept
    sizes = {int(c): int(n) for c, n in zip(*np.unique(full.clusters, return_counts=True))}
    for c, size in sizes.items():                                  # the sections give the true sizes
        assert f"{size} files (" in page
    html_report.run(cfg, paths)  # the module's other tests expect the full report


def test_structures_section_and_alternative_maps(built):
    cfg, paths, _ = built
    out = paths.results / "clustering"
    assert len(pd.read_csv(out / "structures.csv")) == 1 and 'id="structures"' in _page(paths)
    assert "Follows (AMI)" not in _page(paths)   # no structure follows how the files were stored
    assert "These clusters follow how the files were stored" not in _page(paths)
    # a second feature, and its row made structure 2's representative
    wider = load_config(paths.root, "tiny", overrides=FAST + ["views.features=[mfcc, descriptors]"])
    cluster.run(wider, paths)
    structures = pd.read_csv(out / "structures.csv")
    rows = pd.read_csv(out / "results.csv").set_index("id")
    shown = results.load_result(paths).id
    other = next(i for i in rows.index if rows.loc[i, "view"] != rows.loc[shown, "view"])   # another matrix
    second = structures.iloc[0].copy()
    second.update({"structure": 2, "pick": False, "features": rows.loc[other, "feature"], "representative": other,
                   "follows": "band stored 0.92"})
    first = structures.iloc[0].copy()
    first["follows"] = "file format 0.50"   # the pick's structure follows the files' format: said at the top
    pd.concat([first.to_frame().T, second.to_frame().T]).to_csv(out / "structures.csv", index=False)
    try:
        shutil.rmtree(paths.projections, ignore_errors=True)
        html_report.run(wider, paths)
        page = _page(paths)
        data = _map_data(page)
        labels = pd.read_csv(out / "labels.csv", keep_default_na=False, dtype={"stem": str})
        (alt,) = data["alternatives"]
        assert alt["key"] == "structure-2" and alt["cluster"] == labels[other].astype(int).tolist()
        # its own map: the projection of its view, not of the pick's
        assert len(alt["x"]) == len(alt["y"]) == len(data["x"]) and alt["x"] != data["x"]
        assert min(alt["x"]) >= 0 and max(max(alt["x"]), max(alt["y"])) <= 1
        assert len(list(paths.projections.glob("tsne-*.npz"))) == 2   # the pick's map and the alternative's
        assert f'value="structure-2"> structure 2: {rows.loc[other, "feature"]}' in page
        assert "The files group in 2 distinct ways" in page and "1 (pick)" in page
        # structure 2 follows the band the files were stored with: a column and what it means
        assert '<th scope="col">Follows (AMI)</th>' in page and "<td>band stored 0.92</td>" in page
        assert "such a structure may set the sources apart rather than the sounds" in page
        assert "These clusters follow how the files were stored (AMI with file format 0.50)" in page
    finally:
        cluster.run(cfg, paths)
        html_report.run(cfg, paths)


def test_a_named_experiments_report_shows_its_seeds_and_stage_runs(built):
    cfg, paths, _ = built
    default_page = _page(paths)
    seeds = ProjectPaths(paths.root, "tiny", "seeds2")
    replicated = load_config(paths.root, "tiny", overrides=[*FAST, "experiment.seeds=[0, 1]"])
    cluster.run(replicated, seeds)
    html_report.run(replicated, seeds)
    page = (seeds.results / "report" / "index.html").read_text(encoding="utf-8")
    assert "clustering/replicates/summary.csv: over 2 seeds" in page
    assert "audioclust report --dataset tiny --experiment seeds2" in page
    runs = page[page.index("<h3>Stage runs</h3>"):page.index("<h3>Package versions</h3>")]
    assert "<td>cluster</td>" in runs and "<td>0, 1</td>" in runs and "provenance.json" in runs
    assert _page(paths) == default_page        # the default experiment's report is untouched
