"""Clustering quality with and without pretrained embeddings, on several kinds of audio.

Usage::

    .venv/bin/python benchmarks/bench_embeddings.py --root /tmp/bench_embed \\
        [--sets fsdd:digit fsdd:speaker demo:label instruments:instrument ...] \\
        [--corpora results/bench/corpora] [--models aisfx resemblyzer] [--limit N] [--out embed_quality.json]

For each dataset and label set it builds a project in ``--root`` and runs metadata → transform →
extract → embed → cluster with ``configs/default.yaml`` plus ``embeddings.models`` = ``--models``
and ``cluster.k`` = the number of classes (the benchmarks' convention: the researcher types k;
labels choose nothing else). Label sets:

- ``fsdd:digit``, ``fsdd:speaker``: ``../shared/datasets/fsdd/recordings`` (``--limit N``: a
  seeded sample);
- ``demo:label``: the embedded demo;
- ``<corpus>:<column>`` for the corpora of :mod:`audioclust.corpora` made under ``--corpora``
  (``python -m audioclust.corpora instruments results/bench/corpora/instruments --size bench``): the
  label CSV ``<corpus>.<column>.csv`` beside the corpus folder, brought in with the ``csv``
  adapter.

One stage-04 run gives both answers, because each row is computed on its own view and the
label-free selection (:func:`~audioclust.clustering.selection.mark_selected`) only compares
rows: the pick *without* embeddings is the selection redone on the rows of the hand-made
features alone, exactly what a run without the models would select. Reported per label set:
the overall label-free pick and the best eligible row (by NMI, which uses the labels) without
and with the embeddings, each model's own label-free row, and the embed stage's time.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
FSDD = REPO.parent / "shared" / "datasets" / "fsdd" / "recordings"
sys.path.insert(0, str(REPO / "src"))

from audioclust.cli import run_stage  # noqa: E402
from audioclust.clustering.metrics import oriented  # noqa: E402
from audioclust.clustering.selection import mark_selected  # noqa: E402
from audioclust.config import load_config  # noqa: E402
from audioclust.core.paths import ProjectPaths  # noqa: E402
from audioclust.report.summary import best_by_nmi  # noqa: E402
from audioclust.stages.prepare import generate_demo, prepare  # noqa: E402

log = logging.getLogger("bench_embeddings")
CHAIN = ["metadata", "transform", "extract", "embed", "cluster"]


def make_project(root: Path) -> None:
    """``root`` as a project folder with this checkout's ``configs/default.yaml`` (rewritten each time: a new key
    must not meet an old file)."""
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "configs" / "default.yaml").write_text((REPO / "configs" / "default.yaml").read_text())


def bring(root: Path, corpus: str, column: str, corpora: Path, limit: int | None) -> ProjectPaths:
    """The dataset folder of one label set, made ready in ``root``."""
    paths = ProjectPaths(root, f"{corpus}_{column}")
    if paths.raw.is_dir():
        return paths
    if corpus == "fsdd":
        source = FSDD
        if limit is not None:
            source = root / f"fsdd_sample_{limit}"
            if not source.is_dir():
                files = sorted(FSDD.glob("*.wav"))
                chosen = np.random.default_rng(0).choice(len(files), size=min(limit, len(files)), replace=False)
                source.mkdir(parents=True)
                for i in sorted(chosen):
                    (source / files[i].name).symlink_to(files[i])
        prepare("fsdd", source, paths.raw, label=column)
    elif corpus == "demo":
        generate_demo(paths.raw)
    else:
        # the corpus' label CSV holds paths relative to the corpus folder; the csv adapter wants them
        # relative to the CSV or absolute
        listed = corpora / f"{corpus}.{column}.csv"
        if listed.is_file():
            labels = pd.read_csv(listed, dtype=str, keep_default_na=False)
            labels["path"] = [str(corpora / corpus / p) for p in labels["path"]]
        else:  # a corpus with one label set: its folders are the labels
            wavs = sorted((corpora / corpus).glob("*/*.wav"))
            labels = pd.DataFrame({"path": [str(p) for p in wavs], "label": [p.parent.name for p in wavs]})
        table = root / f"{corpus}.{column}.csv"
        labels[["path", "label"]].to_csv(table, index=False)
        prepare("csv", table, paths.raw, label="label")
    return paths


def marked(results: pd.DataFrame, criterion: str, k: int) -> pd.DataFrame:
    """A copy of ``results`` with the label-free selection redone on exactly these rows."""
    rows = results.copy()
    mark_selected(rows, criterion, k)
    return rows


def pick(results: pd.DataFrame, criterion: str, k: int) -> pd.Series:
    """The overall label-free row of ``results``."""
    rows = marked(results, criterion, k)
    chosen = rows[rows["selected"].astype(bool)]
    return chosen.loc[oriented(chosen[criterion], criterion).idxmax()]


def _brief(row: pd.Series | None) -> dict:
    if row is None:
        return {}
    return {"feature": row["feature"], "type": row["type"], "algorithm": row["algorithm"],
            "nmi": float(row["nmi"]), "acc": float(row["acc"])}


def run_chain(root: Path, name: str, corpora: Path, models: list[str], limit: int | None, n_jobs: int,
              analyse_only: bool = False):
    """Bring the label set ``corpus:column`` into ``root`` and run :data:`CHAIN` on it with ``cluster.k`` = its
    number of classes; return (config, paths, k, seconds per stage)."""
    corpus, column = name.split(":")
    paths = bring(root, corpus, column, corpora, limit)
    k = sum(1 for p in paths.raw.iterdir() if p.is_dir())
    cfg = load_config(root, paths.dataset, overrides=[f"cluster.k={k}", f"parallel.n_jobs={n_jobs}",
                                                      f"embeddings.models=[{', '.join(models)}]"])
    times = {}
    for stage in [] if analyse_only else CHAIN:
        start = time.perf_counter()
        run_stage(stage, cfg, paths)
        times[stage] = round(time.perf_counter() - start, 1)
    return cfg, paths, k, times


def run_set(root: Path, name: str, corpora: Path, models: list[str], limit: int | None, n_jobs: int,
            analyse_only: bool = False, dec: bool = False) -> dict:
    cfg, paths, k, times = run_chain(root, name, corpora, models, limit, n_jobs, analyse_only)
    results = pd.read_csv(paths.results / "clustering" / "results.csv", keep_default_na=False,
                          na_values=[""])
    results = results[results["status"] == "ok"]
    hand = results[~results["feature"].isin(models)]
    crit = cfg.cluster.criterion
    out = {"set": name, "k": k, "files": int(len(pd.read_csv(paths.features_csv))), "seconds": times,
           "without": {"pick": _brief(pick(hand, crit, k)), "best": _brief(_best(hand, crit, k))},
           "with": {"pick": _brief(pick(results, crit, k)), "best": _brief(_best(results, crit, k))},
           "models": {}}
    for model in models:
        own = results[results["feature"] == model]
        if len(own):
            out["models"][model] = {"pick": _brief(pick(own, crit, k)), "best": _brief(_best(own, crit, k))}
    out["views"] = view_ranking(results, crit, k)
    if dec:
        out["dec"] = dec_rows(cfg, paths, models, results, k, times)
    return out


def dec_rows(cfg, paths: ProjectPaths, models: list[str], results: pd.DataFrame, k: int, times: dict) -> dict:
    """Stage 05 on each model's embedding view (DEC's autoencoder, then K-Means and DEC's clustering)
    next to K-Means on the view itself: does the refinement earn its place?"""
    cfg.autoencoder.features = list(models)
    start = time.perf_counter()
    run_stage("autoencoder", cfg, paths)
    times["autoencoder"] = round(time.perf_counter() - start, 1)
    ae = pd.read_csv(paths.results / "autoencoder" / "results.csv")
    out = {}
    for model in models:
        km = results[(results["feature"] == model) & (results["algorithm"] == "kmeans")]
        rows = ae[ae["feature"] == model].set_index("stage")
        out[model] = {"view_kmeans": float(km["nmi"].max()) if len(km) else None,
                      **{stage: {"nmi": float(r["nmi"]), "acc": float(r["acc"]), "epochs": int(r["epochs"]),
                                 "train_s": float(r["train_s"]), "runtime_s": float(r["runtime_s"])}
                         for stage, r in rows.iterrows()}}
    return out


def view_ranking(results: pd.DataFrame, criterion: str, k: int) -> list[dict]:
    """Each feature's label-free row with its criterion and NMI: does the criterion rank the views
    (embeddings and hand-made features alike) as their agreement with the labels does?"""
    rows = marked(results, criterion, k)
    chosen = rows[rows["selected"].astype(bool)]
    return [{"feature": r["feature"], "type": r["type"], "algorithm": r["algorithm"], "n_dims": int(r["n_dims"]),
             criterion: float(r[criterion]), "nmi": float(r["nmi"])} for _, r in chosen.iterrows()]


def ranking_markdown(runs: list[dict], criterion: str) -> str:
    """Spearman's rho between the criterion and NMI over each set's per-feature rows, and where the
    embeddings stand in both orders."""
    lines = ["| labels | views | Spearman rho (criterion, NMI) | embeddings: rank by criterion / by NMI |",
             "|:---|---:|---:|:---|"]
    for run in runs:
        views = pd.DataFrame(run["views"])
        rho = views[criterion].rank().corr(views["nmi"].rank())
        by_crit = views[criterion].rank(ascending=False)
        by_nmi = views["nmi"].rank(ascending=False)
        places = ", ".join(f"{f} {int(by_crit[i])} / {int(by_nmi[i])}" for i, f in views["feature"].items()
                           if f in run["models"])
        lines.append(f"| {run['set']} | {len(views)} | {rho:.2f} | {places} |")
    return "\n".join(lines) + "\n"


def _best(results: pd.DataFrame, criterion: str, k: int) -> pd.Series | None:
    return best_by_nmi(marked(results, criterion, k))


def dec_markdown(runs: list[dict]) -> str:
    lines = ["| labels | model | K-Means on the view | AE + K-Means | DEC | epochs | train (s) | DEC (s) |",
             "|:---|:---|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        for model, r in run.get("dec", {}).items():
            km, dec = r["ae_kmeans"], r["dcec"]
            lines.append(f"| {run['set']} | {model} | {r['view_kmeans']:.2f} | {km['nmi']:.2f} / {km['acc']:.2f} | "
                         f"{dec['nmi']:.2f} / {dec['acc']:.2f} | {km['epochs']} | {km['train_s']:.0f} | "
                         f"{dec['runtime_s']:.0f} |")
    return "\n".join(lines) + "\n"


def markdown(runs: list[dict], models: list[str]) -> str:
    head = ["labels", "k", "files", "pick without", "NMI / ACC", "pick with", "NMI / ACC",
            "best without", "best with"] + [f"{m} pick" for m in models] + ["embed (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":---"] + ["---:"] * 2 + [":---", "---:"] * 2
                                                              + ["---:"] * (2 + len(models) + 1)) + "|"]

    def nmi_acc(row: dict) -> str:
        return f"{row['nmi']:.2f} / {row['acc']:.2f}" if row else "–"

    for run in runs:
        w, e = run["without"], run["with"]
        cells = [run["set"], str(run["k"]), str(run["files"]),
                 f"{w['pick']['feature']} {w['pick']['type']}, {w['pick']['algorithm']}", nmi_acc(w["pick"]),
                 f"{e['pick']['feature']} {e['pick']['type']}, {e['pick']['algorithm']}", nmi_acc(e["pick"]),
                 nmi_acc(w["best"]), nmi_acc(e["best"])]
        cells += [nmi_acc(run["models"].get(m, {}).get("pick", {})) for m in models]
        cells.append(str(run["seconds"].get("embed", "–")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def save_runs(path: Path | None, runs: list[dict], **extra) -> None:
    """The runs so far as JSON at ``path`` (none: nothing), with the machine and the date."""
    if path:
        path.write_text(json.dumps({"machine": platform.platform(), "date": time.strftime("%Y-%m-%d"), **extra,
                                    "runs": runs}, indent=1))


def project_arguments(description: str, sets: list[str]) -> argparse.ArgumentParser:
    """The command line this benchmark shares with :mod:`bench_selection` and :mod:`bench_cluster_stability`: the
    folder, the label sets and how to run the stages on them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--root", type=Path, required=True, help="project folder to build in (kept: re-runs reuse it)")
    parser.add_argument("--sets", nargs="+", default=sets,
                        help="corpus:label pairs (fsdd:digit, demo:label, instruments:instrument, ...)")
    parser.add_argument("--corpora", type=Path, default=Path("results/bench/corpora"),
                        help="folder of the generated corpora and their label CSVs")
    parser.add_argument("--models", nargs="+", default=["aisfx", "resemblyzer"])
    parser.add_argument("--limit", type=int, help="FSDD: a seeded sample of this many recordings")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the numbers as JSON here")
    parser.add_argument("--analyse-only", action="store_true",
                        help="read the results an earlier run left in --root instead of running the stages")
    return parser


def parse_project_arguments(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The arguments of :func:`project_arguments`, logging set up and ``--root`` made a project folder."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.root, args.corpora = args.root.resolve(), args.corpora.resolve()  # the label CSVs list absolute paths
    make_project(args.root)
    return args


def main(argv: list[str] | None = None) -> int:
    parser = project_arguments(__doc__.split("\n\n")[0], ["demo:label", "fsdd:digit", "fsdd:speaker"])
    parser.add_argument("--dec", action="store_true",
                        help="also run stage 05 on each model's embedding view (DEC) and report it")
    args = parse_project_arguments(parser, argv)
    runs = []
    for name in args.sets:
        runs.append(run_set(args.root, name, args.corpora, args.models, args.limit, args.n_jobs, args.analyse_only,
                            args.dec))
        print(markdown(runs, args.models), flush=True)
        print(ranking_markdown(runs, "stability"), flush=True)
        if args.dec:
            print(dec_markdown(runs), flush=True)
        save_runs(args.out, runs, models=args.models)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
