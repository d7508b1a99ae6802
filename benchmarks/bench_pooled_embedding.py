"""A time-invariant embedding from stage 05's own encoders: their convolutional maps pooled over time.

Usage::

    .venv/bin/python benchmarks/bench_pooled_embedding.py --root ROOT --sets NAME:K [NAME:K ...] [--out FILE]

ROOT/NAME must hold the experiment ``ae_inputs`` of ``bench_autoencoder.py --inputs`` (its checkpoints are
read, nothing is trained). For each image model of that run (mel, MFCC and spectrogram; latents 10 and 32)
every file's feature maps after the encoder's second and third convolution, of shape (C, T', F'), are pooled
over time in three ways: the mean (C·F' values), the mean and standard deviation (2·C·F') and both over time
and frequency (2·C). Each matrix is standardised, reduced to 32 principal components and clustered by K-Means
at k = K (10 restarts, seed 0), with its stability gain (:func:`audioclust.clustering.tuning.stability_gain`,
the quantity stage 05's pick ranks by).

The table puts each pooled embedding's NMI and stability gain next to the model's own latent code (its
``ae_kmeans`` row), then the answer of two label-free picks: stage 05's over the image models (today's default
inputs; :func:`audioclust.clustering.structures.picked_model`) and the most stable pooled embedding (mean and sd
over time, third convolution). The labels only score.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import normalized_mutual_info_score
from sklearn.preprocessing import StandardScaler

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from audioclust.clustering.selection import autoencoder_criterion  # noqa: E402
from audioclust.clustering.structures import picked_model  # noqa: E402
from audioclust.clustering.tuning import stability_gain  # noqa: E402
from audioclust.config import load_config  # noqa: E402
from audioclust.core.paths import ProjectPaths  # noqa: E402
from audioclust.deep.reconstruction import AutoencoderModule  # noqa: E402
from audioclust.represent.views import stored_ae_images  # noqa: E402
from audioclust.results import read_partitions, read_table, true_flags  # noqa: E402
from audioclust.stages._shared import views_settings  # noqa: E402
from audioclust.stages._autoencoder_inputs import input_dataset  # noqa: E402

EXPERIMENT = "ae_inputs"
IMAGE_INPUTS = ["mel", "mfcc", "spectrogram"]
#: the encoder's layers whose output is pooled: the number of its leading modules (conv, ReLU pairs)
LAYERS = {"conv2": 4, "conv3": 6}
POOLS = ["mean_t", "meanstd_t", "meanstd_tf"]
COMPONENTS = 32


@torch.no_grad()
def feature_maps(model: torch.nn.Module, images: torch.Tensor, n_modules: int) -> torch.Tensor:
    """The output of the first ``n_modules`` modules of ``model.features``: (N, C, T', F')."""
    head = torch.nn.Sequential(*list(model.features.children())[:n_modules]).eval()
    return torch.cat([head(x) for x in images.split(256)])


def pooled(maps: torch.Tensor, how: str) -> np.ndarray:
    """``maps`` pooled over time (``mean_t``, ``meanstd_t``) or over time and frequency (``meanstd_tf``)."""
    if how == "mean_t":
        parts = [maps.mean(2)]
    elif how == "meanstd_t":
        parts = [maps.mean(2), maps.std(2)]
    else:
        parts = [maps.mean((2, 3)), maps.std((2, 3))]
    return torch.cat([p.flatten(1) for p in parts], 1).double().numpy()


def cluster(X: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """K-Means labels on the standardised, reduced ``X`` and their stability gain."""
    X = X[:, X.std(0) > 0]
    Z = PCA(min(COMPONENTS, X.shape[1], len(X) - 1), random_state=0).fit_transform(StandardScaler().fit_transform(X))
    labels = KMeans(k, n_init=10, random_state=0).fit_predict(Z)
    return labels, stability_gain("kmeans", Z, n_clusters=k, random_state=0, labels=labels)["stability"]


def measure(root: Path, dataset: str, k: int) -> pd.DataFrame:
    paths = ProjectPaths(root, dataset, EXPERIMENT)
    cfg = load_config(root, dataset, config_file=paths.results / "config.yaml", experiment=EXPERIMENT)
    results = pd.read_csv(paths.results / "autoencoder" / "results.csv")
    table = read_table(paths)
    truth = table["label"].fillna("").astype(str).to_numpy()
    rows = []
    for feature in IMAGE_INPUTS:
        images = input_dataset(cfg, paths, table, feature,
                               stored_ae_images(views_settings(cfg), paths, table, feature)).images
        for _, model_row in results[(results["feature"] == feature) & (results["stage"] == "ae_kmeans")].iterrows():
            model = AutoencoderModule.load_from_checkpoint(root / model_row["checkpoint"], map_location="cpu",
                                                           weights_only=True).model
            row = {"set": dataset, "feature": feature, "latent": int(model_row["latent_dim"]),
                   "code_nmi": model_row["nmi"], "code_stability": model_row["latent_stability"]}
            for layer, n_modules in LAYERS.items():
                maps = feature_maps(model, images, n_modules)
                for how in POOLS:
                    labels, gain = cluster(pooled(maps, how), k)
                    row[f"{layer}.{how}"] = normalized_mutual_info_score(truth, labels)
                    row[f"{layer}.{how}.stability"] = gain
            rows.append(row)
            print(f"{dataset} {feature} z{row['latent']}: code {row['code_nmi']:.3f}, pooled conv3 mean+sd "
                  f"{row['conv3.meanstd_t']:.3f}", flush=True)
    # stage 05's answer with today's default inputs: the pick among the image models only
    images_only = results[results["feature"].isin(IMAGE_INPUTS)].copy()
    images_only["selected"] = true_flags(images_only, "selected")
    criterion = autoencoder_criterion(cfg.cluster.criterion, cfg.cluster.tune_criterion)
    picked = images_only[picked_model(images_only, criterion, read_partitions(paths, "autoencoder"))]
    frame = pd.DataFrame(rows)
    frame.attrs["stage05_pick"] = f"{picked['nmi'].iloc[0]:.3f} ({picked['feature'].iloc[0]})" if len(picked) else "-"
    return frame


def markdown(frames: list[pd.DataFrame]) -> str:
    def pair(row: pd.Series, key: str) -> str:
        return f"{row[key]:.3f} / {row[f'{key}.stability']:.2f}"

    lines = ["| set | input | code: NMI / stability | " + " | ".join(f"conv3 {p}" for p in POOLS)
             + " | best conv2 |", "|---|---|---|" + "---|" * (len(POOLS) + 1)]
    picks = ["| set | stage 05's pick | most stable pooled (conv3 mean+sd) |", "|---|---|---|"]
    for frame in frames:
        for _, r in frame.iterrows():
            conv2 = max(POOLS, key=lambda p: r[f"conv2.{p}"])
            lines.append(f"| {r['set']} | {r['feature']} z{r['latent']} | {r['code_nmi']:.3f} / "
                         f"{r['code_stability']:.2f} | " + " | ".join(pair(r, f"conv3.{p}") for p in POOLS)
                         + f" | {r[f'conv2.{conv2}']:.3f} ({conv2}) |")
        best = frame.loc[frame["conv3.meanstd_t.stability"].idxmax()]
        picks.append(f"| {frame['set'].iloc[0]} | {frame.attrs['stage05_pick']} | {best['conv3.meanstd_t']:.3f} "
                     f"({best['feature']} z{best['latent']}) |")
    return "\n".join(lines + [""] + picks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--sets", nargs="+", required=True, help="NAME:K")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    frames = [measure(args.root, name, int(k)) for name, k in (s.split(":") for s in args.sets)]
    table = markdown(frames)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
