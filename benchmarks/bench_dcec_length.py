"""DCEC's NMI along a long run, from a stage-05 model already trained: does its batch limit end it too soon?

Usage::

    .venv/bin/python benchmarks/bench_dcec_length.py --root ROOT --experiment EXP --batches N
        --models NAME:K:FEATURE:LATENT [NAME:K:FEATURE:LATENT ...] [--out FILE]

ROOT/NAME must hold experiment EXP's stage-05 run with that model (its checkpoint is reused, nothing is
pre-trained; the run's ``config.yaml`` gives every other setting). DCEC starts from the same seeded K-Means as
in the stage and runs N batches with ``tol`` 0 and ``tol_files`` 0, so nothing ends it early; after each target update the NMI of
its labels with the files' labels is recorded (the labels only score). The table gives the NMI at the stage's
batch limits (400: ``cpu``; 1,600: ``gpu``) and at the end, the share of labels the last update changed
(``tol`` is 0.1 %), and DCEC's time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from audioclust.config import load_config  # noqa: E402
from audioclust.core.paths import ProjectPaths  # noqa: E402
from audioclust.deep.dcec import DCECModule  # noqa: E402
from audioclust.deep.train import embed, run_dcec, train_autoencoder  # noqa: E402
from audioclust.represent.views import stored_ae_images  # noqa: E402
from audioclust.results import read_table  # noqa: E402
from audioclust.stages._shared import views_settings  # noqa: E402
from audioclust.stages._autoencoder_inputs import input_dataset  # noqa: E402

#: the batch limits reported: the profiles' (``cpu``, ``gpu``)
MARKS = (400, 1_600)


@contextlib.contextmanager
def nmi_at_updates(truth: np.ndarray, record: list[dict]) -> Iterator[None]:
    """While open, every DCEC target update also appends its iteration, label change and NMI to ``record``."""
    update = DCECModule.update_targets

    def recorded(self: DCECModule) -> float:
        delta = update(self)
        record.append({"iteration": int(self.global_step), "delta": delta,
                       "nmi": normalized_mutual_info_score(truth, self.labels)})
        return delta

    DCECModule.update_targets = recorded
    try:
        yield
    finally:
        DCECModule.update_targets = update


def measure(root: Path, experiment: str, batches: int, name: str, k: int, feature: str, latent: int) -> dict:
    paths = ProjectPaths(root, name, experiment)
    cfg = load_config(root, name, config_file=paths.results / "config.yaml", experiment=experiment)
    table = read_table(paths)
    truth = table["label"].fillna("").astype(str).to_numpy()
    dataset = input_dataset(cfg, paths, table, feature, stored_ae_images(views_settings(cfg), paths, table, feature))
    ae = cfg.autoencoder
    trained = train_autoencoder(ae.architecture, dataset, ae, cfg.seed, log_dir=paths.logs,
                                ckpt_dir=paths.checkpoints, latent_dim=latent)
    if not trained.reused:
        print(f"{name} {feature} z{latent}: no checkpoint of experiment {experiment}; it was trained now",
              file=sys.stderr)
    kmeans = KMeans(n_clusters=k, n_init=ae.kmeans_n_init, random_state=cfg.seed).fit(
        embed(trained.module.model, trained.datamodule))
    record: list[dict] = []
    with nmi_at_updates(truth, record):
        result = run_dcec(trained.module, trained.datamodule, k, replace(ae, tol=0.0, tol_files=0, max_iter=batches), cfg.seed,
                          log_dir=None, start=(kmeans.cluster_centers_, kmeans.labels_))
    at = {row["iteration"]: row for row in record}
    return {"set": name, "model": f"{feature} z{latent}", "n": len(dataset),
            "kmeans": normalized_mutual_info_score(truth, kmeans.labels_),
            **{f"at_{m}": at[m]["nmi"] for m in MARKS if m in at},
            "end": normalized_mutual_info_score(truth, result.labels), "batches": batches,
            "last_change": record[-1]["delta"], "seconds": result.seconds, "updates": record}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--batches", type=int, default=1_600)
    parser.add_argument("--models", nargs="+", required=True, help="NAME:K:FEATURE:LATENT")
    parser.add_argument("--out", type=Path, help="the rows and every update's NMI as JSON")
    args = parser.parse_args()
    rows = []
    for spec in args.models:
        name, k, feature, latent = spec.split(":")
        rows.append(measure(args.root, args.experiment, args.batches, name, int(k), feature, int(latent)))
    lines = ["| set | model | files | K-Means | " + " | ".join(f"DCEC at {m}" for m in MARKS)
             + " | at the end (batches) | last label change | DCEC time |", "|---|---|---:|---:|" + "---:|" * (len(MARKS) + 3)]
    for r in rows:
        marks = " | ".join(f"{r[f'at_{m}']:.3f}" if f"at_{m}" in r else "—" for m in MARKS)
        lines.append(f"| {r['set']} | {r['model']} | {r['n']} | {r['kmeans']:.3f} | {marks} | {r['end']:.3f} "
                     f"({r['batches']}) | {100 * r['last_change']:.1f} % | {r['seconds']:.0f} s |")
    print("\n".join(lines))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
