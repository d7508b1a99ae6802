"""Stage 05 before and after its training schedule and latent choice, next to stage 04's best rows.

Usage::

    .venv/bin/python benchmarks/bench_autoencoder.py --root ROOT --sets NAME:K[:EXP] [NAME:K[:EXP] ...]
        [--inputs] [--table-only] [--out FILE] [--set KEY=VALUE ...]

ROOT/NAME must hold stage 03's outputs and stage 04's results at k = K (in experiment EXP, default
``default``). For each set, two stage-05 runs, each a process of its own and an experiment of its own,
one after the other: ``ae_before`` with the earlier defaults (:data:`BEFORE`: latent 10, at most 25 epochs,
early stopping after 2 epochs without improvement, learning rate halved after 1) and ``ae_after`` with
today's (the training profile of the device, latents 10 and 32 chosen by stability). Both with
``cluster.k=K``, the mel and MFCC models, no figures. ``--table-only`` reads runs made before.

The table gives per set and run: the AE + K-Means and DCEC rows of each feature's chosen model (NMI /
ACC, latent size, epochs of the limit, training time), the label-free stage-05 row (the best internal
criterion among the selected rows, as the report picks it), and stage 04's rows at the same k: its
label-free pick, and the best NMI among the eligible rows of the hand-made features and of every view
(these two chosen by the labels). The labels only score.

``--inputs`` instead runs one experiment ``ae_inputs`` per set with every candidate input (:data:`INPUTS`: the
mel, MFCC and spectrogram images and DEC on the two shipped embeddings; checkpoints of the same settings are
reused) and tabulates each input's chosen model, then stage 05's label-free pick over several sets of inputs by
two rules: the best criterion (silhouette) among the selected rows (the rule before ``pick``) and the most stable
model, ties within 0.02 to the partition the other inputs' rows agree with most, then to the criterion
(:func:`audioclust.clustering.structures.picked_model`, today's).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from audioclust.clustering.metrics import oriented  # noqa: E402
from audioclust.clustering.selection import autoencoder_criterion  # noqa: E402
from audioclust.clustering.structures import picked_model  # noqa: E402
from audioclust.config import load_config  # noqa: E402
from audioclust.core.paths import ProjectPaths  # noqa: E402
from audioclust.core.provenance import read_provenance  # noqa: E402
from audioclust.report.summary import best_by_nmi  # noqa: E402
from audioclust.results import STAGE_NAMES, choose_result, read_partitions, read_results, true_flags  # noqa: E402
from audioclust.stages.compare import parse_run  # noqa: E402

#: the defaults stage 05 had before the training profiles (its results.csv has no max_epochs column)
BEFORE_MAX_EPOCHS = 25
BEFORE = ["autoencoder.latent_dims=[10]", f"autoencoder.max_epochs={BEFORE_MAX_EPOCHS}", "autoencoder.patience=2",
          "autoencoder.lr_patience=1"]
RUNS: dict[str, list[str]] = {"ae_before": BEFORE, "ae_after": []}
#: the features the autoencoders train on, and stage 04's hand-made ones
FEATURES = ["mel", "mfcc"]
#: --inputs: every candidate input, and the sets of inputs the pick is compared over
INPUTS = ["mel", "mfcc", "spectrogram", "aisfx", "resemblyzer"]
INPUT_SETS = [["mel", "mfcc"], ["mel", "mfcc", "spectrogram"], ["mel", "mfcc", "aisfx", "resemblyzer"], INPUTS]
HAND_MADE = {"spectrogram", "mel", "chroma", "mfcc", "mfcc_no_c0", "descriptors"}


def run(root: Path, dataset: str, k: int, experiment: str, overrides: list[str],
        features: list[str] | None = FEATURES) -> None:
    """One ``audioclust autoencoder`` process (its stage's wall time goes to the experiment's ``provenance.json``),
    at ``cluster.k=k``, without figures, on ``features`` (None: the config's)."""
    chosen = [] if features is None else [f"autoencoder.features=[{','.join(features)}]"]
    sets = [f"cluster.k={k}", *chosen, "cluster.figures=false", *overrides]
    command = [sys.executable, "-m", "audioclust.cli", "autoencoder", "--dataset", dataset, "--root", str(root),
               "--experiment", experiment, *[arg for item in sets for arg in ("--set", item)]]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "AUDIOCLUST_PROGRESS": "off"})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")


def stage_wall(root: Path, dataset: str, experiment: str) -> float:
    """The wall time of the experiment's last stage-05 run, from its ``provenance.json``."""
    provenance = read_provenance(ProjectPaths(root, dataset, experiment).provenance)
    return float(provenance["stages"]["autoencoder"]["wall_s"])


def _nmi_acc(row: pd.Series) -> str:
    return f"{row['nmi']:.3f} / {row['acc']:.3f}"


def stage05_rows(root: Path, dataset: str, experiment: str) -> list[dict[str, str]]:
    """One line per feature of a stage-05 run: its chosen model's two rows, and the run's label-free row."""
    paths = ProjectPaths(root, dataset, experiment)
    results = pd.read_csv(paths.results / "autoencoder" / "results.csv")
    cfg = load_config(root, dataset, experiment=experiment)
    criterion = autoencoder_criterion(cfg.cluster.criterion, cfg.cluster.tune_criterion)
    pick, _ = choose_result(results, criterion)
    picked = results.set_index("id").loc[pick]
    chosen = results[true_flags(results, "latent_chosen")] if "latent_chosen" in results else results
    lines = []
    for feature, rows in chosen.groupby("feature", sort=False):
        by_stage = rows.set_index("stage")
        model = by_stage.loc["ae_kmeans"]
        trained = results[results["feature"] == feature].drop_duplicates("latent_dim")
        lines.append({
            "feature": feature, "latents": "/".join(str(z) for z in trained["latent_dim"]),
            "latent": str(model["latent_dim"]), "epochs": f"{model['epochs']} / {model.get('max_epochs', BEFORE_MAX_EPOCHS):.0f}",
            "train s": f"{trained['train_s'].sum():.0f}", "AE + K-Means": _nmi_acc(model),
            "DCEC": _nmi_acc(by_stage.loc["dcec"]),
            "label-free row": f"{picked['nmi']:.3f} ({picked['feature']} z{picked['latent_dim']} "
                              f"{STAGE_NAMES[picked['stage']]})"})
    return lines


def classical(root: Path, dataset: str, experiment: str) -> dict[str, str]:
    """Stage 04's label-free pick and its best eligible rows by NMI (hand-made features; every view)."""
    paths = ProjectPaths(root, dataset, experiment)
    results = pd.read_csv(paths.results / "clustering" / "results.csv")
    pick = results[true_flags(results, "pick")]

    def shown(row: pd.Series | None) -> str:
        return "n/a" if row is None else f"{row['nmi']:.3f} ({row['id']})"

    return {"pick": shown(pick.iloc[0] if len(pick) else None),
            "best hand-made": shown(best_by_nmi(results[results["feature"].isin(HAND_MADE)])),
            "best": shown(best_by_nmi(results))}


def input_lines(root: Path, dataset: str, k: int) -> list[str]:
    """The ``--inputs`` table's lines of one set: each input's chosen model, then the pick over each set of inputs."""
    paths = ProjectPaths(root, dataset, "ae_inputs")
    results, partitions = read_results(paths, "autoencoder"), read_partitions(paths, "autoencoder")
    cfg = load_config(root, dataset, experiment="ae_inputs")
    criterion = autoencoder_criterion(cfg.cluster.criterion, cfg.cluster.tune_criterion)
    selected = results[true_flags(results, "selected")].assign(selected=True).set_index("feature")
    lines = []
    for feature, row in selected.iterrows():
        kmeans = results[(results["view"] == row["view"]) & (results["stage"] == "ae_kmeans")].iloc[0]
        lines.append(f"| {dataset} (k={k}) | {feature} | z{row['latent_dim']} | {row['latent_stability']:.3f} | "
                     f"{row['silhouette']:.3f} | {kmeans['nmi']:.3f} | {row['nmi']:.3f} ({STAGE_NAMES[row['stage']]}) |")
    for inputs in INPUT_SETS:
        rows = selected.loc[[f for f in inputs if f in selected.index]]
        by_criterion = oriented(rows[criterion], criterion).idxmax()
        by_stability = rows.index[picked_model(rows, criterion, partitions).to_numpy()][0]
        lines.append(f"| {dataset} (k={k}) | pick over {' + '.join(inputs)} | | | | "
                     f"{criterion}: {by_criterion} {rows.loc[by_criterion, 'nmi']:.3f} | "
                     f"**stability: {by_stability} {rows.loc[by_stability, 'nmi']:.3f}** |")
    return lines


def run_arguments(description: str, sets: str) -> argparse.ArgumentParser:
    """The arguments of a benchmark of stage-05 runs: ``--root``, ``--sets`` (named as ``sets`` says),
    ``--table-only``, ``--out`` and ``--set``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--sets", nargs="+", required=True, metavar=sets)
    parser.add_argument("--table-only", action="store_true", help="read the runs made before; run nothing")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override of every run, e.g. autoencoder.num_threads=1 beside another job")
    return parser


def main() -> None:
    parser = run_arguments(__doc__.split("\n\n")[0], "NAME:K[:EXP]")
    parser.add_argument("--inputs", action="store_true", help="every candidate input in one run, and the pick")
    args = parser.parse_args()
    if args.inputs:
        lines = ["| set (k) | input | chosen latent | stability gain | silhouette | AE + K-Means NMI | selected row NMI |",
                 "|---|---|---|---:|---:|---:|---|"]
        for item in args.sets:
            name, k, *_ = item.split(":")
            if not args.table_only:
                run(args.root, name, int(k), "ae_inputs", args.overrides, features=INPUTS)
            lines += input_lines(args.root, name, int(k))
        emit("\n".join(lines), args.out)
        return
    lines = ["| set | run | feature | latents | chosen | epochs / limit | train s | stage 05 s | AE + K-Means NMI / ACC "
             "| DCEC NMI / ACC | label-free stage-05 row | stage 04: label-free pick | best hand-made row (by NMI) |",
             "|---|---|---|---|---:|---:|---:|---:|---|---|---|---|---|"]
    for item in args.sets:
        name, k, *rest = item.split(":")
        reference = classical(args.root, name, rest[0] if rest else "default")
        for experiment, overrides in RUNS.items():
            if not args.table_only:
                run(args.root, name, int(k), experiment, [*overrides, *args.overrides])
            elif not (ProjectPaths(args.root, name, experiment).results / "autoencoder" / "results.csv").is_file():
                continue
            wall = f"{stage_wall(args.root, name, experiment):.0f}"
            for line in stage05_rows(args.root, *parse_run(f"{name}:{experiment}")):
                lines.append(f"| {name} (k={k}) | {experiment.removeprefix('ae_')} | {line['feature']} | "
                             f"{line['latents']} | {line['latent']} | {line['epochs']} | {line['train s']} | {wall} | "
                             f"{line['AE + K-Means']} | {line['DCEC']} | {line['label-free row']} | {reference['pick']} "
                             f"| {reference['best hand-made']} |")
    emit("\n".join(lines), args.out)


def emit(table: str, out: Path | None) -> None:
    """Print a benchmark's Markdown table, and write it to ``out`` when given."""
    print(table)
    if out:
        out.write_text(table + "\n")


if __name__ == "__main__":
    main()
