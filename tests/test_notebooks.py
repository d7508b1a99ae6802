"""Notebook runs are tests too: every numbered notebook on the demo set, with papermill."""

import hashlib
import os
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from audioclust.core.errors import DatasetError
from audioclust.core.paths import ProjectPaths
from audioclust.notebooks import notebook_files, run_notebooks
from audioclust.stages.prepare import generate_demo

REPO = Path(__file__).resolve().parents[1]


def test_notebooks_are_committed_without_outputs():
    files = notebook_files(REPO)
    assert [f.name[:2] for f in files] == [f"{i:02d}" for i in range(len(files))]
    for f in files:
        nb = nbformat.read(f, as_version=4)
        first = nb.cells[[c.cell_type for c in nb.cells].index("code")]
        assert "parameters" in first.metadata.get("tags", []), f.name
        # every notebook after 00 can work in a named experiment (run_notebooks passes it)
        assert f.name.startswith("00") or "\nEXPERIMENT = " in "\n" + first.source, f.name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f.name
                assert "\ndef " not in "\n" + cell.source and "\nclass " not in "\n" + cell.source, f.name


def _tree(folder: Path) -> dict[str, tuple[str, str]]:
    """Every entry under ``folder``: its kind and content hash (or link target)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir", "")
        else:
            out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
    return out


@pytest.mark.slow
def test_all_notebooks_run_on_a_users_dataset_and_leave_its_folder_unchanged(project, tmp_path):
    """`make notebooks DATASET=mine`'s code path: notebook 00 must not write the demo into a user's folder."""
    shutil.copytree(REPO / "notebooks", project / "notebooks")
    generate_demo(tmp_path / "elsewhere", n_per_class=6)
    mine = project / "datasets" / "mine"
    for family in sorted(p for p in (tmp_path / "elsewhere").iterdir() if p.is_dir()):
        for f in sorted(family.glob("*.wav"))[:6]:
            (mine / family.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, mine / family.name / f.name)
    before = _tree(mine)
    paths = ProjectPaths(project, "mine")
    # k given (its estimation has tests of its own) and stage 05 on two inputs (an image, the embedding) at one
    # latent size with a short DCEC: every notebook's path, in a fraction of the time
    overrides = ["parallel.n_jobs=1", "embeddings.models=[aisfx]", "cluster.k=7", "autoencoder.features=[mel,embeddings]",
                 "autoencoder.latent_dims=[10]", "autoencoder.max_iter=50"]
    done = run_notebooks(paths, overrides=overrides, parameters={"MAX_EPOCHS": 2})
    assert [p.name for p in done] == [p.name for p in notebook_files(REPO)]
    assert _tree(mine) == before
    assert len(before) == 7 + 42 and paths.features_csv.is_file()
    # the shipped model ran in notebook 03 and its view was clustered in notebook 04
    assert len(list((paths.features / "aisfx").glob("*/*.npy"))) == 42
    results = pd.read_csv(paths.results / "clustering" / "results.csv")
    assert (results.loc[results["feature"] == "aisfx", "status"] == "ok").sum() >= 1
    # notebook 05 shows its figures: loss, reconstructions, scatters, DCEC history
    shown = [cell for cell in nbformat.read(paths.notebooks_out / "05_autoencoder.ipynb", as_version=4).cells
             if cell.cell_type == "code" and any("image/png" in out.get("data", {}) for out in cell.get("outputs", []))]
    assert len(shown) >= 4
    # notebook 06 writes the HTML report of the label-free pick: one map point per file
    report = paths.results / "report"
    assert (report / "index.html").is_file() and len(pd.read_csv(report / "map.csv")) == 42
    # run again with nothing changed: notebooks 04 and 05 fit nothing, they show what the first run made
    run_notebooks(paths, overrides=overrides, parameters={"MAX_EPOCHS": 2}, only=["04", "05"])
    logged = {name: "".join(out.get("text", "") for cell in nbformat.read(paths.notebooks_out / name, as_version=4).cells
                            for out in cell.get("outputs", []))
              for name in ("04_cluster_audio.ipynb", "05_autoencoder.ipynb")}
    rows = len(results)
    assert f"cluster: {rows} rows, 0 computed, {rows} reused" in logged["04_cluster_audio.ipynb"]
    assert "figures (PNG + PDF), 0 drawn" in logged["04_cluster_audio.ipynb"]
    assert "embeddings, clusterings" in logged["05_autoencoder.ipynb"] and " reused (" in logged["05_autoencoder.ipynb"]


def test_notebook_00_writes_the_demo_only_for_the_demo_dataset(project, capfd):
    shutil.copytree(REPO / "notebooks", project / "notebooks")
    run_notebooks(ProjectPaths(project, "demo"), only=["00"])
    # the kernel's start-up notices (plain TCP on the loopback) stay out of the user's log
    assert "IPKernelApp" not in capfd.readouterr().err
    assert len(list((project / "datasets" / "demo").rglob("*.wav"))) == 140
    with pytest.raises(DatasetError, match="datasets/absent does not exist: put your audio files there"):
        run_notebooks(ProjectPaths(project, "absent"), only=["00"])
    assert not (project / "datasets" / "absent").exists()


def test_notebook_00_shows_an_unlabelled_collection_without_touching_it(project):
    """Files directly in datasets/<name>/ (no label folders) are one row, `(top level)`: the bar chart of an empty
    table failed there ("no numeric data to plot")."""
    shutil.copytree(REPO / "notebooks", project / "notebooks")
    paths = ProjectPaths(project, "flat")
    generate_demo(project / "scratch", n_per_class=1)
    paths.raw.mkdir(parents=True)
    for i, wav in enumerate(sorted((project / "scratch").rglob("*.wav"))[:3]):
        shutil.copy(wav, paths.raw / f"take {i}.wav")
    before = sorted(p.name for p in paths.raw.iterdir())
    run_notebooks(paths, only=["00"])
    shown = [out for cell in nbformat.read(paths.notebooks_out / "00_prepare_datasets.ipynb", as_version=4).cells
             for out in cell.get("outputs", [])]
    table = next(out["data"]["text/plain"] for out in shown if "files" in out.get("data", {}).get("text/plain", ""))
    assert "(top level)" in table and " 3 " in table
    assert "take 0.wav" in "".join(out.get("text", "") for out in shown)  # the example heard
    assert sorted(p.name for p in paths.raw.iterdir()) == before
