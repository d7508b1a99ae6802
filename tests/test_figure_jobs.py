"""Figures drawn as jobs: in worker processes, the same files as in the stage's own process."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audioclust.core.parallel import Workers
from audioclust.report import figures as plots
from audioclust.report.figure_jobs import FigureJob, draw_jobs


def _jobs() -> list[FigureJob]:
    epochs = np.repeat(np.arange(6), 2)
    metrics = pd.DataFrame({"epoch": epochs, "train_loss": np.where(np.arange(12) % 2 == 0, 1.0 / (epochs + 1), np.nan),
                            "val_loss": np.where(np.arange(12) % 2 == 1, 1.2 / (epochs + 1), np.nan)})
    rng = np.random.default_rng(0)
    Y, clusters = rng.normal(size=(30, 2)), np.repeat([0, 1, 2], 10)
    return [FigureJob("loss_a", plots.loss_curves, {"metrics": metrics, "title": "model a"}),
            FigureJob("scatter_pca_a", plots.scatter_2d, {"Y": Y, "clusters": clusters, "labels": None,
                                                          "method": "PCA", "title": "model a, K-Means"}),
            FigureJob("contingency_a", plots.contingency_heatmap, {"labels_true": np.repeat(list("xyz"), 10),
                                                                   "labels_pred": clusters, "title": "model a"})]


def test_draw_jobs_in_worker_processes_writes_the_same_files_in_job_order(tmp_path):
    here = draw_jobs(_jobs(), tmp_path / "here", Workers(n_jobs=1))
    workers = draw_jobs(_jobs(), tmp_path / "workers", Workers(n_jobs=2))
    stems = ["loss_a", "scatter_pca_a", "contingency_a"]
    assert [p.name for p in workers] == [f"{stem}{suffix}" for stem in stems for suffix in (".png", ".pdf")]
    assert [p.relative_to(tmp_path / "workers") for p in workers] == [p.relative_to(tmp_path / "here") for p in here]
    for a, b in zip(here, workers):
        if a.suffix == ".png":   # the PDF carries its creation date; the pixels must not differ
            assert a.read_bytes() == b.read_bytes(), a.name
        else:
            assert b.read_bytes()[:5] == b"%PDF-" and b.stat().st_size > 1000
    # nothing else is written: draw_jobs keeps no record (stage 05's memo does)
    assert sorted(p.name for p in (tmp_path / "workers").iterdir()) == sorted(p.name for p in workers)
