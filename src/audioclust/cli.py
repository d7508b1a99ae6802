"""Command line: ``audioclust <stage> --dataset NAME [--root DIR] [--config FILE] [--set key=value]``.

Every stage module exposes ``run(cfg, paths)``; ``audioclust run`` chains them.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from audioclust import __version__
from audioclust.config import Config, load_config
from audioclust.core.errors import AudioclustError
from audioclust.core.paths import DEFAULT_EXPERIMENT, ProjectPaths

log = logging.getLogger(__name__)


# Each stage is imported when it runs: stage 05 brings torch and Lightning, seconds to import,
# which `audioclust --help` and the light stages should not pay.
def _metadata(cfg: Config, paths: ProjectPaths) -> None:
    from audioclust.stages import metadata
    metadata.run(cfg, paths, return_table=False)  # streamed to disk: not read back


def _transform(cfg: Config, paths: ProjectPaths) -> None:
    from audioclust.stages import transform
    transform.run(cfg, paths, return_table=False)


def _extract(cfg: Config, paths: ProjectPaths) -> None:
    from audioclust.stages import extract
    extract.run(cfg, paths, return_table=False)


def _embed(cfg: Config, paths: ProjectPaths) -> None:
    from audioclust.stages import embed
    embed.run(cfg, paths, return_table=False)


def _cluster(cfg: Config, paths: ProjectPaths, recompute: bool = False) -> None:
    from audioclust.stages import cluster
    cluster.run(cfg, paths, recompute=recompute)


def _autoencoder(cfg: Config, paths: ProjectPaths, recompute: bool = False) -> None:
    from audioclust.stages import autoencoder
    autoencoder.run(cfg, paths, recompute=recompute)


def _report(cfg: Config, paths: ProjectPaths) -> None:
    from audioclust.stages import report
    report.run(cfg, paths)


# (name, stage function, one-line help), in pipeline order
STAGES: list[tuple[str, Callable[[Config, ProjectPaths], None], str]] = [
    ("metadata", _metadata, "stage 01: scan audio files into metadata/<name>/metadata.csv"),
    ("transform", _transform, "stage 02: decode, mono, resample, low-pass, write datasets/<name>_wav/"),
    ("extract", _extract, "stage 03: spectrogram, mel, chroma, MFCC (NPY + PNG) and descriptors"),
    ("embed", _embed, "stage 03: embeddings of the pretrained models of embeddings.models (aisfx, resemblyzer, "
                      "local checkpoints)"),
    ("cluster", _cluster, "stage 04: cluster every feature view with every algorithm; tables, summary, figures"),
    ("autoencoder", _autoencoder, "stage 05: DCEC convolutional autoencoder: embeddings + K-Means, and DCEC's own clustering"),
    ("report", _report, "write results/<name>/report/index.html: tables, figures, clusters, sound map"),
]


#: stages that keep whole-dataset results between runs (memoised rows, trained models, figures): --recompute
#: makes them ignore what they kept; the per-file stages re-check each file anyway
RECOMPUTABLE = ("cluster", "autoencoder")


def run_stage(name: str, cfg: Config, paths: ProjectPaths, recompute: bool = False) -> None:
    """Run one stage by name; its outputs are on disk (a streaming stage does not read its table back).

    ``recompute`` (stages of :data:`RECOMPUTABLE`) ignores what earlier runs kept."""
    run = {n: func for n, func, _ in STAGES}[name]
    start = time.perf_counter()
    log.info("== %s: dataset %s ==", name, paths.dataset)
    if name in RECOMPUTABLE:
        run(cfg, paths, recompute=recompute)
    else:
        run(cfg, paths)
    log.info("== %s done in %.1f s ==", name, time.perf_counter() - start)


def run_chain(cfg: Config, paths: ProjectPaths, stages: list[str] | None = None, recompute: bool = False) -> None:
    for name, _, _ in STAGES:
        if stages is None or name in stages:
            run_stage(name, cfg, paths, recompute=recompute)


def _common(p: argparse.ArgumentParser, dataset_required: bool = True) -> None:
    p.add_argument("--dataset", "-d", required=dataset_required, default=None if dataset_required else "demo",
                   help="dataset name: the folder datasets/<NAME>/" + ("" if dataset_required else " (default: demo)"))
    p.add_argument("--root", default=".", help="project folder (default: the current folder)")
    p.add_argument("--experiment", "-e", default=DEFAULT_EXPERIMENT,
                   help="a name for this run's settings: results go to results/<NAME>/experiments/<EXPERIMENT>/ and "
                        "configs/experiments/<EXPERIMENT>.yaml is merged when it exists (default: 'default', "
                        "results/<NAME>/); metadata, WAV, features and checkpoints are shared by the experiments")
    p.add_argument("--config", help="YAML file of config overrides (after configs/default.yaml, configs/<NAME>.yaml "
                                    "and configs/experiments/<EXPERIMENT>.yaml)")
    p.add_argument("--seeds", type=_seed_list, metavar="S1,S2,...",
                   help="replicates: stages 04 and 05 run once per seed and report mean ± sd (shortcut for "
                        "--set experiment.seeds=[S1,S2,...]); the first seed's partitions are the ones shown")
    p.add_argument("--profile", choices=["auto", "cpu", "gpu"],
                   help="stage 05's training schedule by device (shortcut for --set autoencoder.profile=P; auto: gpu "
                        "when CUDA or MPS trains, else cpu)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one dotted config key, e.g. --set features.n_fft=1024 (repeatable)")
    p.add_argument("--n-jobs", type=int, help="worker processes (shortcut for --set parallel.n_jobs=N; -1: all cores)")
    p.add_argument("--scheduler", help="address of a Dask scheduler (tcp://host:port) to run per-file stages on")
    p.add_argument("--recompute", action="store_true",
                   help="ignore the results earlier runs kept (stage 04's rows and figures, stage 05's models) and "
                        "compute them anew; without it only what changed is recomputed")


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds expects whole numbers separated by commas, e.g. 0,1,2; got {text!r}")
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"--seeds expects seeds >= 0 separated by commas, e.g. 0,1,2; got {text!r}")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audioclust",
        description="Cluster audio recordings without labels. Stages read and write the project folders "
                    "(datasets/, metadata/, features/, results/ ...); see README.md.",
    )
    parser.add_argument("--version", action="version", version=f"audioclust {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and Lightning's own progress bars and notices in stage 05")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, _, help_text in STAGES:
        _common(sub.add_parser(name, help=help_text, description=help_text))

    p = sub.add_parser("run", help="run the whole chain of stages on one dataset",
                       description="Run every stage in order (or those named by --stages) on one dataset.")
    _common(p)
    p.add_argument("--stages", nargs="+", choices=[n for n, _, _ in STAGES], help="only these stages")

    p = sub.add_parser("demo", help="generate the embedded demo dataset and run the whole chain on it",
                       description="Write the synthetic demo dataset into datasets/<NAME>/ and run every stage.")
    _common(p, dataset_required=False)

    p = sub.add_parser("generate-demo", help="only write the synthetic demo dataset into datasets/<NAME>/")
    _common(p, dataset_required=False)

    p = sub.add_parser("prepare", help="stage 00: bring a known corpus into datasets/<NAME>/<label>/",
                       description="Link (or copy) a corpus into datasets/<NAME>/<label>/ without touching the source.")
    _common(p)
    p.add_argument("corpus", choices=["fsdd", "urbansound8k", "esc50", "csv"], help="which adapter")
    p.add_argument("--source", required=True, help="the corpus folder (or, for csv, the CSV file)")
    p.add_argument("--label", default=None,
                   help="fsdd: digit (default) or speaker; esc50: category (default) or target; csv: column name")
    p.add_argument("--mode", choices=["symlink", "copy"], default="symlink",
                   help="symlink (default, no extra disk) or copy the files")

    p = sub.add_parser("compare", help="one table of NMI and ACC (mean ± sd) over datasets × experiments",
                       description="Collect runs into comparisons/<NAME>/comparison.csv|md|tex and nmi/acc heat-maps "
                                   "(PNG + PDF): rows feature × method, columns run → NMI | ACC. Refuses runs made "
                                   "with different settings unless each is named with --allow.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="DATASET or DATASET:EXPERIMENT, in column order")
    p.add_argument("--root", default=".", help="project folder (default: the current folder)")
    p.add_argument("--name", help="folder name under comparisons/ (default: made from the runs)")
    p.add_argument("--rows", choices=["choices", "all"], default="choices",
                   help="choices (default): the label-free pick, each feature's label-free choice and best row; "
                        "all: also every view × algorithm and autoencoder row")
    p.add_argument("--allow", action="append", default=[], metavar="KEY",
                   help="a setting (dotted key, or a whole section) that may differ between the runs (repeatable)")
    p.add_argument("--stages", nargs="+", choices=["clustering", "autoencoder"],
                   default=["clustering", "autoencoder"], help="whose results to compare (default: both, when run)")

    p = sub.add_parser("notebooks", help="run notebooks 00.. in order with papermill into results/<NAME>/notebooks/")
    _common(p)
    return parser


def _overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` items, with the shortcut options as the keys they stand for."""
    overrides = list(args.overrides)
    if args.n_jobs is not None:
        overrides.append(f"parallel.n_jobs={args.n_jobs}")
    if args.scheduler:
        overrides.append(f"parallel.scheduler={args.scheduler}")
    if args.seeds:
        overrides.append(f"experiment.seeds={args.seeds}")
    if args.profile:
        overrides.append(f"autoencoder.profile={args.profile}")
    return overrides


def _setup(args: argparse.Namespace) -> tuple[Config, ProjectPaths]:
    paths = ProjectPaths(Path(args.root), args.dataset, args.experiment)   # checks the names first
    cfg = load_config(root=args.root, dataset=args.dataset, config_file=args.config, overrides=_overrides(args),
                      experiment=args.experiment)
    return cfg, paths


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        if args.command == "compare":
            from audioclust.stages import compare
            compare.run(args.root, args.runs, name=args.name, rows=args.rows, allow=args.allow,
                        sources=tuple(args.stages))
            return 0
        cfg, paths = _setup(args)
        if args.command in [n for n, _, _ in STAGES]:
            run_stage(args.command, cfg, paths, recompute=args.recompute)
        elif args.command == "run":
            run_chain(cfg, paths, args.stages, recompute=args.recompute)
        elif args.command in ("demo", "generate-demo"):
            from audioclust.stages.prepare import generate_demo
            generate_demo(paths.raw, seed=cfg.seed)  # logs how many files, and where
            if args.command == "demo":
                run_chain(cfg, paths, recompute=args.recompute)
                _print_outputs(paths)
        elif args.command == "prepare":
            from audioclust.stages.prepare import prepare
            prepare(args.corpus, Path(args.source), paths.raw, label=args.label, mode=args.mode)  # logs what it did
        elif args.command == "notebooks":
            from audioclust.notebooks import run_notebooks
            for out in run_notebooks(paths, overrides=_overrides(args),
                                     parameters={"RECOMPUTE": True} if args.recompute else None):
                log.info("executed %s", out)
    except AudioclustError as exc:
        log.error("%s", exc)
        return 2
    return 0


def _print_outputs(paths: ProjectPaths) -> None:
    """The closing summary of ``make demo``: where each stage's outputs are."""
    lines = [f"\nOutputs for dataset '{paths.dataset}':"]
    for label, path in [("audio (input)", paths.raw), ("metadata", paths.metadata), ("WAV (stage 02)", paths.wav),
                        ("features", paths.features), ("results", paths.results),
                        ("checkpoints", paths.checkpoints), ("logs", paths.logs)]:
        if path.exists():
            n = sum(1 for p in path.rglob("*") if p.is_file())
            lines.append(f"  {label:<16} {paths.rel(path)}/  ({n} files)")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
