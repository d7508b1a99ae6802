"""Notebook runs are tests too: every numbered notebook on the demo set, with papermill."""

import shutil
from pathlib import Path

import pytest

from audioclust.notebooks import notebook_files, run_notebooks
from audioclust.paths import ProjectPaths

REPO = Path(__file__).resolve().parents[1]


def test_notebooks_are_committed_without_outputs():
    import nbformat
    files = notebook_files(REPO)
    assert [f.name[:2] for f in files] == [f"{i:02d}" for i in range(len(files))]
    for f in files:
        nb = nbformat.read(f, as_version=4)
        first = nb.cells[[c.cell_type for c in nb.cells].index("code")]
        assert "parameters" in first.metadata.get("tags", []), f.name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f.name
                assert "\ndef " not in "\n" + cell.source and "\nclass " not in "\n" + cell.source, f.name


@pytest.mark.slow
def test_all_notebooks_run_on_the_demo_set(project):
    shutil.copytree(REPO / "notebooks", project / "notebooks")
    paths = ProjectPaths(project, "demo")
    done = run_notebooks(paths, overrides=["parallel.n_jobs=1"], parameters={"MAX_EPOCHS": 2})
    assert [p.name for p in done] == [p.name for p in notebook_files(REPO)]
    assert all(p.is_file() for p in done)
    assert (paths.features_csv).is_file()
