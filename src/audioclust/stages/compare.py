"""Compare runs: any datasets × experiments in one table, the seed study's shape, with spread.

``audioclust compare demo fsdd_digit fsdd_digit:seeds5 [--rows all] [--allow KEY ...]`` (and
notebook 08) reads each run's results over seeds (``<stage>/replicates/results.csv``, else
``<stage>/results.csv``) and its ``provenance.json``, and writes into ``comparisons/<name>/``:

* ``comparison.csv`` (numbers: per run ``NMI mean, NMI sd, ACC mean, ACC sd, seeds``),
  ``comparison.md`` and ``comparison.tex`` (booktabs; ``mean ± sd``; the best of each column in
  bold), made by :mod:`audioclust.report.comparison`;
* ``nmi.png|pdf`` and ``acc.png|pdf``: the same as heat-maps;
* ``runs.json``: each run's folder, seeds, config hash, code, and the settings on which they differ.

It refuses to mix runs made with different settings unless told: every setting that differs
between the runs (but those of :data:`audioclust.core.provenance.NEUTRAL_SECTIONS`, which
describe the dataset or where work ran; and ``autoencoder`` when only stage 04 is compared) must
be named with ``allow`` (a dotted key or a section); the table's notes then list them with their
values. Runs with different seeds are compared as they are: each cell is the mean over its run's
seeds, and the notes list every run's seeds. Every check runs before anything is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from audioclust.core.errors import ComparisonError, StageInputError
from audioclust.core.paths import DEFAULT_EXPERIMENT, ProjectPaths, safe_name
from audioclust.core.provenance import NEUTRAL_SECTIONS, describe_code, differences, read_provenance
from audioclust.core.storage import write_csv, write_json, write_text
from audioclust.report import comparison, replicates
from audioclust.report import figures as plots
from audioclust.results import read_results_over_seeds

log = logging.getLogger(__name__)

#: the stages whose results a comparison can hold, and the stage of ``provenance.json`` that made each
SOURCES = {"clustering": "cluster", "autoencoder": "autoencoder"}


def parse_run(text: str) -> tuple[str, str]:
    """``"fsdd"`` → ``("fsdd", "default")``; ``"fsdd:seeds5"`` → ``("fsdd", "seeds5")``."""
    dataset, _, experiment = text.partition(":")
    return dataset, experiment or DEFAULT_EXPERIMENT


def run_label(paths: ProjectPaths) -> str:
    """A run's column heading: the dataset, and the experiment in parentheses unless it is the default one."""
    return paths.dataset if paths.experiment == DEFAULT_EXPERIMENT else f"{paths.dataset} ({paths.experiment})"


def _effective(config: dict[str, Any]) -> dict[str, Any]:
    """A config with ``seed`` and ``experiment.seeds`` replaced by the seeds the run used (``experiment.seeds``)."""
    seeds = (config.get("experiment") or {}).get("seeds") or [config.get("seed", 0)]
    return {**{k: v for k, v in config.items() if k != "seed"}, "experiment": {"seeds": seeds}}


def gather(root: Path, runs: list[str], sources: tuple[str, ...] = tuple(SOURCES)
           ) -> tuple[list[comparison.RunResults], dict[str, dict[str, Any]]]:
    """Each run's results over seeds and its provenance, or a clear error naming what is missing.

    Returns
    -------
    (the runs' results, ``{label: {"paths": ProjectPaths, "provenance": {stage: entry}}}``)

    Raises
    ------
    StageInputError
        An unknown dataset or experiment, or a run without results or provenance.
    """
    gathered, facts = [], {}
    for text in runs:
        dataset, experiment = parse_run(text)
        paths = ProjectPaths(root, dataset, experiment)
        if not paths.results.is_dir():
            known = paths.experiments()
            where = (f"experiments of {dataset}: {', '.join(known)}" if known else
                     f"dataset {dataset} has no results (results/{dataset}/)")
            raise StageInputError(f"run {text!r}: {paths.rel(paths.results)} does not exist; {where}")
        found = {source: read_results_over_seeds(paths, source) for source in sources}
        results = {source: long for source, long in found.items() if long is not None}
        if not results:
            raise StageInputError(f"run {text!r}: no results.csv in {paths.rel(paths.results)}/"
                                  f"{{{','.join(sources)}}}: run `audioclust cluster --dataset {dataset} "
                                  f"--experiment {experiment}` first")
        record = read_provenance(paths.provenance) or {}
        stages = record.get("stages", {})
        missing = [SOURCES[s] for s in results if SOURCES[s] not in stages]
        if missing:
            raise StageInputError(f"run {text!r}: {paths.rel(paths.provenance)} does not record the settings of "
                                  f"stage {', '.join(missing)} (results made before provenance was kept): re-run "
                                  f"`audioclust {missing[0]} --dataset {dataset} --experiment {experiment}` "
                                  "(unchanged rows come from the memo)"
                                  + (", or compare stage 04's results only (--stages clustering)"
                                     if missing == ["autoencoder"] else ""))
        label = run_label(paths)
        if label in facts:
            raise ComparisonError(f"run {text!r} is named twice")
        gathered.append(comparison.RunResults(label=label, results=results))
        facts[label] = {"paths": paths, "provenance": {s: stages[SOURCES[s]] for s in results},
                        "seeds": replicates.seeds_of(next(iter(results.values())))}
    return gathered, facts


def check_settings(facts: dict[str, dict[str, Any]], allow: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The differences between the runs' settings, each of which must be allowed.

    Returns
    -------
    ``{dotted key: {run label: value}}`` of the allowed differences.

    Raises
    ------
    ComparisonError
        A setting differs and is not named in ``allow``: the message lists each with its values.
    """
    sources = {s for f in facts.values() for s in f["provenance"]}
    # the seeds are no setting of how results are made: each cell is a mean over its run's seeds, which the
    # notes list per run
    ignore = NEUTRAL_SECTIONS + ("experiment.seeds",) + (() if "autoencoder" in sources else ("autoencoder",))
    found: dict[str, dict[str, Any]] = {}
    for source in sorted(sources):
        configs = {label: _effective(f["provenance"][source]["config"]) for label, f in facts.items()
                   if source in f["provenance"]}
        found.update(differences(configs, ignore=ignore))
    refused = {k: v for k, v in found.items() if not any(k == a or k.startswith(a + ".") for a in allow)}
    if refused:
        lines = "\n".join(f"  {key}: " + "; ".join(f"{run} = {value}" for run, value in values.items())
                          for key, values in refused.items())
        raise ComparisonError(f"the runs were made with different settings:\n{lines}\nA table would mix them "
                              "silently: compare runs made alike, or name each setting that may differ with --allow "
                              f"KEY (e.g. --allow {next(iter(refused))}); the table's notes then list them.")
    return found


@dataclass
class Comparison:
    """A written comparison: its table of numbers, its folder and its column labels."""

    table: pd.DataFrame
    folder: Path
    labels: list[str]


def run(root: str | Path, runs: list[str], name: str | None = None, rows: str = "choices",
        allow: tuple[str, ...] | list[str] = (), sources: tuple[str, ...] = tuple(SOURCES)) -> Comparison:
    """Compare runs; write ``comparisons/<name>/`` (see the module docstring).

    Parameters
    ----------
    root : the project folder.
    runs : ``DATASET`` or ``DATASET:EXPERIMENT`` each, in the order of the table's columns.
    name : the comparison's folder name; None: made from the runs.
    rows : ``choices`` (the label-free pick, each feature's label-free choice and best row) or ``all``
        (also every method).
    allow : settings that may differ between the runs (dotted keys or sections).
    sources : ``clustering`` (stage 04), ``autoencoder`` (stage 05) or both.

    Returns
    -------
    :class:`Comparison`: the table of numbers (:func:`audioclust.report.comparison.comparison_table`), the
    folder written and the runs' column labels.

    Raises
    ------
    StageInputError, ComparisonError
        Before anything is written: a run is missing, the settings differ, no row is common.
    """
    root = Path(root).resolve()
    if not runs:
        raise ComparisonError("name at least one run: DATASET or DATASET:EXPERIMENT")
    if rows not in comparison.ROW_MODES:
        raise ComparisonError(f"rows must be one of {', '.join(comparison.ROW_MODES)}, not {rows!r}")
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise ComparisonError(f"unknown result source {unknown[0]!r}; use {' or '.join(SOURCES)}")
    gathered, facts = gather(root, list(runs), tuple(sources))
    allowed = check_settings(facts, tuple(allow))
    labels = [r.label for r in gathered]
    try:
        table = comparison.comparison_table(gathered, rows)
    except ValueError as exc:
        raise ComparisonError(f"{exc}: {', '.join(labels)} share no feature × method (compare runs of the same "
                              "stages and features)") from None
    name = safe_name(name or "+".join(r.replace(":", "@") for r in runs))
    out = root / "comparisons" / name
    notes = _notes(facts, allowed)
    caption = f"NMI and ACC (mean ± sd over seeds) of {', '.join(labels)}."
    write_csv(out / "comparison.csv", table)
    write_text(out / "comparison.md", f"# Comparison: {', '.join(labels)}\n\n"
               + comparison.markdown(table, labels) + f"\n{notes}\n")
    write_text(out / "comparison.tex", comparison.latex(table, labels, caption=caption,
                                                        label=f"tab:comparison-{name}"))
    for score in ("NMI", "ACC"):
        plots.save_figure(comparison.heatmap(table, labels, score), out / score.lower())
    write_json(out / "runs.json", {"runs": {label: {
        "results": f["paths"].rel(f["paths"].results), "seeds": f["seeds"],
        "stages": {s: {k: e.get(k) for k in ("finished", "config_hash", "audioclust", "git", "machine")}
                   for s, e in f["provenance"].items()}} for label, f in facts.items()},
        "allowed_differences": allowed, "rows": rows})
    log.info("compare: %d rows × %d runs → %s", len(table), len(labels), out)
    return Comparison(table=table, folder=out, labels=labels)


def _notes(facts: dict[str, dict[str, Any]], allowed: dict[str, dict[str, Any]]) -> str:
    """Below the Markdown table: where each column came from, the allowed differences, the conventions."""
    lines = ["Mean ± sample standard deviation over each run's seeds; the best mean of each column in bold, among "
             "the rows that did not use labels to choose. *label-free pick*, *label-free choice*: chosen without "
             f"labels, in each seed. *{comparison.BEST}*: the row with the best mean NMI of each feature, to show "
             "what was reachable. NMI and ACC use the labels (evaluation only).", "", "Runs:"]
    for label, fact in facts.items():
        entry = next(iter(fact["provenance"].values()))
        seeds = fact["seeds"]
        lines.append(f"- {label}: {fact['paths'].rel(fact['paths'].results)}, {len(seeds)} seed(s) "
                     f"({', '.join(map(str, seeds))}), config {entry.get('config_hash')}, "
                     f"{describe_code(entry.get('git'), entry.get('audioclust', '?'))}, {entry.get('finished')}")
    codes = {(e.get("audioclust"), (e.get("git") or {}).get("commit")) for f in facts.values()
             for e in f["provenance"].values()}
    if len(codes) > 1:
        lines += ["", "The runs were made by different versions of audioclust (see runs.json)."]
    if allowed:
        lines += ["", "Settings that differ between the runs (allowed):"]
        lines += [f"- {key}: " + "; ".join(f"{run} = {value}" for run, value in values.items())
                  for key, values in allowed.items()]
    return "\n".join(lines)
