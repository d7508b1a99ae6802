"""Stage 05's label-free answer with one setting changed, from a run with today's defaults and a run of the variant.

Usage::

    .venv/bin/python benchmarks/bench_stage05_variants.py --root ROOT --sets NAME:K[:stemN] [...]
        --base EXP --variant EXP [--models] [--out FILE]

ROOT/NAME must hold both experiments' stage-05 runs at ``cluster.k=K`` (made with ``audioclust autoencoder``; the
commands are on the benchmarks page). The variant may train fewer inputs than the base, e.g. only the DEC models
with another ``autoencoder.latent_dims``, or inputs the base did not train: its rows replace the base's rows of the
inputs it trained (or join them), and the stage's label-free choices
(:func:`audioclust.clustering.structures.mark_autoencoder_choices`: latent size, selected row, pick) are made again
on the merged rows. ``stemN`` scores against the N-th ``_``-separated field of each file's
stem instead of its label (FSDD: ``stem1``, the speaker). The labels only score.

The table gives per set the base's and the variant's pick (model, row, NMI), and for each input the variant trained
its selected row's NMI in both runs. ``--models`` instead lists each model the variant trained anew (not reused from
the base's checkpoint), beside the base's model of the same input and latent size: its best validation loss,
epochs, training seconds, stability (its most stable clusterer's gain) and the NMI of its K-Means and spectral rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import normalized_mutual_info_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from bench_autoencoder import emit  # noqa: E402

from audioclust.clustering.selection import autoencoder_criterion  # noqa: E402
from audioclust.clustering.structures import mark_autoencoder_choices  # noqa: E402
from audioclust.config import load_config  # noqa: E402
from audioclust.core.paths import ProjectPaths  # noqa: E402
from audioclust.results import read_partitions, read_results, true_flags  # noqa: E402


def truth_of(paths: ProjectPaths, stem_field: int | None, source: str = "autoencoder") -> np.ndarray:
    """Each file's label, or the ``stem_field``-th field of its stem, in the order of ``source``'s ``labels.csv``."""
    labels = pd.read_csv(paths.results / source / "labels.csv", dtype=str, keep_default_na=False)
    return (labels["label"] if stem_field is None else labels["stem"].str.split("_").str[stem_field]).to_numpy()


def set_label(dataset: str, stem_field: int | None) -> str:
    """A set's name in the tables: the dataset, and the stem field it is scored against when not its labels."""
    return dataset if stem_field is None else f"{dataset} (stem field {stem_field})"


def scored(results: pd.DataFrame, partitions: dict[str, np.ndarray], truth: np.ndarray) -> pd.DataFrame:
    """``results`` with the NMI of their ``partitions`` against ``truth``."""
    return results.assign(nmi=[normalized_mutual_info_score(truth, partitions[i]) for i in results["id"]])


def merged_choices(root: Path, dataset: str, k: int, base: str, variant: str,
                   truth: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The base run's rows as the stage chose them, the merged rows (the variant's inputs from the variant) with
    the choices made again, both scored against ``truth``, and the inputs the variant trained."""
    cfg = load_config(root, dataset, experiment=base, overrides=[f"cluster.k={k}"])
    criterion = autoencoder_criterion(cfg.cluster.criterion, cfg.cluster.tune_criterion)
    runs = {name: ProjectPaths(root, dataset, name) for name in (base, variant)}
    rows = {name: read_results(paths, "autoencoder") for name, paths in runs.items()}
    own = {name: read_partitions(paths, "autoencoder") for name, paths in runs.items()}
    partitions = {**own[base], **own[variant]}   # a row of both runs (same id) is the variant's in the merge
    trained = list(pd.unique(rows[variant]["feature"]))
    merged = pd.concat([rows[base][~rows[base]["feature"].isin(trained)], rows[variant]], ignore_index=True)
    mark_autoencoder_choices(merged, criterion, k, partitions)
    return scored(rows[base], own[base], truth), scored(merged, partitions, truth), trained


def lines_of(root: Path, dataset: str, k: int, base: str, variant: str, stem_field: int | None) -> list[str]:
    truth = truth_of(ProjectPaths(root, dataset, base), stem_field)
    before, after, trained = merged_choices(root, dataset, k, base, variant, truth)

    def pick(rows: pd.DataFrame) -> str:
        row = rows[true_flags(rows, "pick")].iloc[0]
        return f"{row['feature']} z{int(row['latent_dim'])} {row['stage']} {row['nmi']:.3f}"

    def selected(rows: pd.DataFrame, feature: str) -> str:
        found = rows[true_flags(rows, "selected") & (rows["feature"] == feature)]
        if found.empty:   # an input the base did not train
            return "—"
        row = found.iloc[0]
        return f"z{int(row['latent_dim'])} {row['stage']} {row['nmi']:.3f}"

    name = set_label(dataset, stem_field)
    per_input = "; ".join(f"{f}: {selected(before, f)} → {selected(after, f)}" for f in trained)
    return [f"| {name} (k={k}) | {pick(before)} | **{pick(after)}** | {per_input} |"]


def _value(model: pd.DataFrame, column: str, form: str) -> str:
    """A model's ``column`` (the same on each of its rows), formatted."""
    return format(model[column].iloc[0], form)


def _row_nmi(model: pd.DataFrame, stage: str) -> str:
    """The NMI of a model's ``stage`` row, or a dash where it has none."""
    found = model[model["stage"] == stage]
    return "—" if found.empty else f"{found['nmi'].iloc[0]:.3f}"


def model_lines(root: Path, dataset: str, k: int, base: str, variant: str, stem_field: int | None) -> list[str]:
    """One line per model the variant trained anew: base → variant, matched by input and latent size."""
    truth = truth_of(ProjectPaths(root, dataset, base), stem_field)
    runs = {name: ProjectPaths(root, dataset, name) for name in (base, variant)}
    rows = {name: scored(read_results(paths, "autoencoder"), read_partitions(paths, "autoencoder"), truth)
            for name, paths in runs.items()}
    name = set_label(dataset, stem_field)
    lines = []
    for (feature, latent), model in rows[variant].groupby(["feature", "latent_dim"], sort=False):
        before = rows[base][(rows[base]["feature"] == feature) & (rows[base]["latent_dim"] == latent)]
        if before.empty or set(model["checkpoint"]) == set(before["checkpoint"]):
            continue
        cells = [f"{_value(before, c, f)} → {_value(model, c, f)}" for c, f in
                 (("val_loss", ".3f"), ("epochs", ".0f"), ("train_s", ".0f"), ("latent_stability", ".3f"))]
        cells += [f"{_row_nmi(before, s)} → {_row_nmi(model, s)}" for s in ("ae_kmeans", "ae_spectral")]
        lines.append(f"| {name} (k={k}) | {feature} z{int(latent)} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--sets", nargs="+", required=True, metavar="NAME:K[:stemN]")
    parser.add_argument("--base", required=True, help="the experiment run with today's defaults")
    parser.add_argument("--variant", required=True, help="the experiment run with the setting changed")
    parser.add_argument("--models", action="store_true", help="each model the variant trained anew, beside the base's")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()
    if args.models:
        lines = ["| set (k) | model | best val loss | epochs | training s | stability | K-Means NMI | spectral NMI |",
                 "|---|---|---|---|---|---|---|---|"]
    else:
        lines = ["| set (k) | pick, base | pick, variant "
                 "| selected row of each input the variant trained: base → variant |", "|---|---|---|---|"]
    for item in args.sets:
        name, k, *rest = item.split(":")
        stem_field = int(rest[0].removeprefix("stem")) if rest else None
        lines += (model_lines if args.models else lines_of)(args.root, name, int(k), args.base, args.variant,
                                                             stem_field)
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
