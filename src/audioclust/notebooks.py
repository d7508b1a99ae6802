"""Run the numbered notebooks with papermill for one dataset.

Executed copies go to the experiment's ``notebooks/`` folder (``results/<name>/notebooks/`` for the
default experiment); the committed notebooks stay without outputs. Notebook 00 writes the demo set only for the dataset named ``demo``; a
user's dataset folder is read, never written. Every notebook's first cell is a papermill ``parameters`` cell
with ``DATASET``, ``ROOT``, ``SET`` (config overrides) and, in those that read or write results, ``EXPERIMENT``; extra parameters are
passed only to notebooks that declare them. The kernels show progress as plain log lines
(:mod:`audioclust.core.progress`), which the executed copies keep.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from audioclust.core.errors import AudioclustError, DatasetError
from audioclust.core.paths import ProjectPaths, root_hint
from audioclust.core.progress import ENV as PROGRESS_ENV

log = logging.getLogger(__name__)


def notebook_files(root: Path) -> list[Path]:
    """The numbered notebooks ``notebooks/NN_*.ipynb`` in order."""
    return sorted(p for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def run_notebooks(
    paths: ProjectPaths,
    overrides: list[str] | None = None,
    parameters: dict[str, Any] | None = None,
    only: list[str] | None = None,
) -> list[Path]:
    """Execute the notebooks in order; return the executed copies' paths.

    Parameters
    ----------
    paths : the dataset's paths (its root holds ``notebooks/``).
    overrides : config overrides passed as the ``SET`` parameter.
    parameters : further papermill parameters (e.g. ``{"MAX_EPOCHS": 2}``); each goes
        only to the notebooks whose parameters cell names it.
    only : notebook name prefixes to run (e.g. ``["00", "01"]``); None runs all.
    """
    import papermill as pm

    files = [p for p in notebook_files(paths.root) if only is None or p.name[:2] in only]
    if not files:
        raise AudioclustError(f"no notebooks found in {paths.root / 'notebooks'}{root_hint(paths.root)}")
    if not paths.raw.is_dir() and paths.dataset != "demo" and not (parameters or {}).get("CORPUS"):
        # notebook 00 brings in nothing for a user's dataset: fail before any notebook runs
        raise DatasetError(f"dataset folder {paths.raw} does not exist: put your audio files there"
                           f"{root_hint(paths.root)}")
    out_dir = paths.notebooks_out
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    # the kernels inherit this: nobody watches their widgets, which would be saved as static 0 % bars
    previous = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = previous or "plain"
    try:
        for nb in files:
            declared = set(pm.inspect_notebook(str(nb)))
            params = {"DATASET": paths.dataset, "ROOT": str(paths.root), "SET": list(overrides or [])}
            if "EXPERIMENT" in declared:
                params["EXPERIMENT"] = paths.experiment
            params.update({k: v for k, v in (parameters or {}).items() if k in declared})
            out = out_dir / nb.name
            log.info("running %s", nb.name)
            # the kernel app logs only errors: its start-up notice about plain TCP (a kernel on the loopback
            # interface with signed messages, as every Jupyter server runs it) would follow each notebook's name
            pm.execute_notebook(str(nb), str(out), parameters=params, cwd=str(nb.parent),
                                kernel_name="python3", progress_bar=False,
                                extra_arguments=["--IPKernelApp.log_level=ERROR"])
            done.append(out)
    finally:
        if previous is None:
            del os.environ[PROGRESS_ENV]
    return done
