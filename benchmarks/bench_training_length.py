"""The embedding's K-Means along pre-training: would its stability choose a better training length than early stopping?

Usage::

    .venv/bin/python benchmarks/bench_training_length.py --root ROOT --sets NAME:K[:OTHER:K2] [...]
        [--features mel mfcc spectrogram] [--latents 10 32] [--out FILE] [--table-only]

Each stage-05 model (feature × latent size) of project ROOT/NAME is pre-trained afresh with today's defaults (the
training device's profile, early stopping, the best validation loss kept; ``cluster.k`` = K), into a folder of
the benchmark's own, so no project checkpoint is touched. At the end of the epochs of a geometric grid (1, 2, 3, 5,
8, 12, ...) every file is embedded; after training, each of these snapshots and the kept model are clustered as
stage 05 clusters a pre-trained embedding: K-Means (``autoencoder.kmeans_n_init`` restarts, seeded) and its
stability gain (``autoencoder.stability_resamples``, ``cluster.stability_max_samples``). The labels only score (NMI).
``:OTHER:K2`` also scores the same models against project OTHER's labels (the same files under other label
folders, matched by file name), e.g. FSDD's speakers beside its digits.

Per label set the table compares each model's kept weights (today) with its snapshot of the highest stability
gain, then the label-free pick across models: the most stable kept model (today's pick without its tie rule)
and the most stable (model, epoch). ``--out`` keeps every snapshot's numbers as JSON; ``--table-only`` re-prints its
tables from that file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from audioclust.config import load_config  # noqa: E402
from audioclust.core.paths import ProjectPaths  # noqa: E402
from audioclust.deep.train import cpu_threads, embed, train_autoencoder  # noqa: E402
from audioclust.represent.views import stored_ae_images  # noqa: E402
from audioclust.results import read_table  # noqa: E402
from audioclust.stages._shared import views_settings  # noqa: E402
from audioclust.stages._autoencoder_inputs import input_dataset  # noqa: E402
from audioclust.stages.autoencoder import latent_stability  # noqa: E402


def snapshot_epochs(limit: int = 1_000) -> set[int]:
    """1, 2, 3, 5, 8, 12, 18, 27, ...: each about 1.5 times the one before (epochs counted from 1)."""
    epochs, e = set(), 1.0
    while e <= limit:
        epochs.add(int(round(e)))
        e = max(e * 1.5, e + 1)
    return epochs


class Snapshots(pl.Callback):
    """Embeds every file at the end of the grid's epochs (after validation), with the epoch's validation loss."""

    def __init__(self, epochs: set[int]) -> None:
        self.epochs, self.taken = epochs, []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch in self.epochs:
            val = trainer.callback_metrics.get("val_loss")
            self.taken.append({"epoch": epoch, "val_loss": None if val is None else float(val),
                               "z": embed(pl_module.model, trainer.datamodule)})


def scores(cfg, z: np.ndarray, k: int, truths: dict[str, np.ndarray]) -> dict:
    km = KMeans(n_clusters=k, n_init=cfg.autoencoder.kmeans_n_init, random_state=cfg.seed).fit(z)
    return {"stability": float(latent_stability(cfg, z, k, km.labels_)),
            **{f"nmi_{name}": float(normalized_mutual_info_score(t, km.labels_)) for name, t in truths.items()}}


def other_labels(root: Path, other: str, table) -> np.ndarray:
    """OTHER's label of each file of ``table``, matched by file name."""
    by_stem = read_table(ProjectPaths(root, other, "default")).set_index("stem")["label"]
    return by_stem.reindex(table["stem"]).fillna("").astype(str).to_numpy()


def measure_set(root: Path, spec: str, features: list[str], latents: list[int], work: Path,
                extra: list[str]) -> list[dict]:
    name, k, *other = spec.split(":")
    k = int(k)
    paths = ProjectPaths(root, name, "default")
    cfg = load_config(None, name, overrides=[f"cluster.k={k}", *extra])
    table = read_table(paths)
    truths = {name: table["label"].fillna("").astype(str).to_numpy()}
    if other:
        truths[other[0]] = other_labels(root, other[0], table)
    rows = []
    for feature in features:
        dataset = input_dataset(cfg, paths, table, feature,
                                stored_ae_images(views_settings(cfg), paths, table, feature))
        for latent in latents:
            ae = cfg.autoencoder
            snaps = Snapshots(snapshot_epochs())
            began = time.perf_counter()
            trained = train_autoencoder(ae.architecture, dataset, ae, cfg.seed, log_dir=work / "logs" / name,
                                        ckpt_dir=work / "checkpoints" / name, latent_dim=latent,
                                        callbacks=[snaps], recompute=True)
            seconds = time.perf_counter() - began
            with cpu_threads(ae.num_threads):
                kept = scores(cfg, embed(trained.module.model, trained.datamodule), k, truths)
                taken = [{"epoch": s["epoch"], "val_loss": s["val_loss"], **scores(cfg, s["z"], k, truths)}
                         for s in snaps.taken]
            row = {"set": name, "k": k, "feature": feature, "latent": latent, "epochs": trained.epochs,
                   "stopped_by": trained.stopped_by, "train_s": round(seconds, 1), "kept": kept, "snapshots": taken}
            print(json.dumps({key: row[key] for key in ("set", "feature", "latent", "epochs", "train_s")}
                             | {"kept": kept}), flush=True)
            rows.append(row)
    return rows


def tables(rows: list[dict]) -> str:
    """One line per label set: each model's kept weights against its most stable snapshot, and the two picks."""
    out = ["| labels | models | NMI, kept (mean) | NMI, most stable epoch (mean) | better / worse by > 0.01 "
           "| pick among kept models | pick among (model, epoch) |", "|---|---:|---:|---:|---|---|---|"]
    truths = dict.fromkeys(key.removeprefix("nmi_") for r in rows for key in r["kept"] if key.startswith("nmi_"))
    for truth in truths:
        nmi = f"nmi_{truth}"
        mine = [r for r in rows if nmi in r["kept"]]
        kept = np.array([r["kept"][nmi] for r in mine])
        # the kept weights are a candidate too: the best validation loss, at their own epoch
        tops = [max([*r["snapshots"], {"epoch": r["epochs"], **r["kept"]}], key=lambda s: s["stability"])
                for r in mine]
        chosen = np.array([t[nmi] for t in tops])
        today = max(mine, key=lambda r: r["kept"]["stability"])
        r2, s2 = max(zip(mine, tops), key=lambda pair: pair[1]["stability"])
        out.append(f"| {truth} | {len(mine)} | {kept.mean():.3f} | {chosen.mean():.3f} | "
                   f"{int((chosen > kept + 0.01).sum())} / {int((chosen < kept - 0.01).sum())} | "
                   f"{today['feature']} z{today['latent']} ({today['epochs']} epochs): {today['kept'][nmi]:.3f} | "
                   f"{r2['feature']} z{r2['latent']}, epoch {s2['epoch']}: {s2[nmi]:.3f} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path)
    parser.add_argument("--sets", nargs="+", default=[], help="NAME:K or NAME:K:OTHER:K2")
    parser.add_argument("--features", nargs="+", default=["mel", "mfcc", "spectrogram"])
    parser.add_argument("--latents", nargs="+", type=int, default=[10, 32])
    parser.add_argument("--work", type=Path, default=REPO / "results" / "bench" / "training_length")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--set", action="append", default=[], help="a config override, as the CLI's --set")
    args = parser.parse_args()
    if args.table_only:
        print(tables(json.loads(args.out.read_text())))
        return
    rows = [row for spec in args.sets
            for row in measure_set(args.root, spec, args.features, args.latents, args.work, args.set)]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows))
    print(tables(rows))


if __name__ == "__main__":
    main()
