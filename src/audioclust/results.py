"""The tables that stages write and read, in one place: their columns and their readers.

* stages 01-02: ``metadata.csv`` and ``metadata_transformed.csv`` (:func:`read_metadata`);
* stage 03: ``features.csv`` (:data:`FEATURES_COLUMNS`, :func:`read_table`) and ``embeddings.csv``
  (:data:`EMBEDDINGS_COLUMNS`);
* stages 04-05: ``results.csv`` (:data:`CLUSTER_COLUMNS`, :data:`AUTOENCODER_COLUMNS`, which share
  their identity, choice and score columns) and ``labels.csv``; :func:`read_results`,
  :func:`load_result` (a :class:`Result`: one row with its cluster of every file);
* the report: ``map.csv`` (:data:`MAP_COLUMNS`) and the result columns it shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from audioclust.clustering.metrics import EXTERNAL, INTERNAL, NOISE, oriented
from audioclust.clustering.selection import autoencoder_criterion
from audioclust.core.errors import ConfigError, StageInputError
from audioclust.core.paths import ProjectPaths, root_hint
from audioclust.dsp.descriptors import DESCRIPTORS



# --------------------------------------------------------------------------- stages 01-02: metadata

#: Numeric columns of the metadata tables (stages 01 and 02): the integer ones as Int64; every other column is text.
INT_COLUMNS = ("sample_rate", "channels", "frames", "size", "nonfinite")

FLOAT_COLUMNS = ("duration", "peak_db")

def read_metadata(path: Path) -> pd.DataFrame:
    """Read ``metadata.csv`` or ``metadata_transformed.csv``.

    Text stays text (a label ``0`` or ``NA`` is the string, an empty cell is ``''``);
    the numeric columns are numbers (integers as Int64), missing where the cell is empty.
    """
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in (*INT_COLUMNS, *FLOAT_COLUMNS):
        if col in table:
            table[col] = pd.to_numeric(table[col], errors="coerce")
            if col in INT_COLUMNS:
                table[col] = table[col].astype("Int64")
    return table


def read_recording_traits(paths: ProjectPaths, table: pd.DataFrame, band_limit_hz: float) -> pd.DataFrame:
    """How each file of ``table`` (:func:`read_table`'s rows) was stored, from stage 01's metadata, in its order:

    * ``band``: the band its features can hold in Hz, half its source sample rate up to ``band_limit_hz`` (stage
      02's low-pass or its new Nyquist frequency): a file stored at 8 kHz holds nothing above 4 kHz;
    * ``format``: its file extension; ``channels``: its source's channel count.

    Missing where stage 01's or stage 02's table lacks the file; an empty table when either table is missing.
    """
    if not (paths.metadata_csv.is_file() and paths.transformed_csv.is_file()):
        return pd.DataFrame(index=table.index)
    source = read_metadata(paths.transformed_csv).drop_duplicates("path").set_index("path")["source_path"]
    stored = read_metadata(paths.metadata_csv).drop_duplicates("path").set_index("path")
    found = stored.reindex(table["path"].map(source)).reset_index(drop=True)
    nyquist = pd.to_numeric(found["sample_rate"], errors="coerce").astype(float) / 2
    return pd.DataFrame({"band": nyquist.clip(upper=band_limit_hz).to_numpy(),
                         "format": found["extension"].mask(found["extension"] == "").to_numpy(),
                         "channels": found["channels"].to_numpy()}, index=table.index)


# --------------------------------------------------------------------------- stage 03: features.csv

FEATURES_COLUMNS: list[str] = ["stem", "label", "path", "status", "reason", "n_frames", *DESCRIPTORS]

#: ``features/<name>/embeddings.csv``: one row per file and model (the embedding part of stage 03)
EMBEDDINGS_COLUMNS: list[str] = ["stem", "label", "path", "model", "status", "reason", "n_frames", "dim",
                                  "hop_seconds"]

def read_table(paths: ProjectPaths, ok_only: bool = True) -> pd.DataFrame:
    """The ``ok`` rows of ``features.csv`` in file order (index reset), labels as strings ('' = none).

    ``ok_only=False``: every row, as stage 03 wrote it. Text columns are text, ``n_frames``
    Int64, the descriptors floats (missing where the cell is empty).

    Raises
    ------
    StageInputError
        When ``features.csv`` is missing, lacks a column of the contract or has no ok row.
    """
    source = paths.features_csv
    if not source.is_file():
        raise StageInputError(f"{source} not found: run `audioclust extract {paths.cli}` "
                              f"first{root_hint(paths.root)}")
    table = pd.read_csv(source, dtype={"stem": str, "label": str, "path": str, "status": str, "reason": str},
                        keep_default_na=False, na_values={c: ["", "nan", "NaN"] for c in DESCRIPTORS})
    missing = [c for c in ("stem", "label", "status", *DESCRIPTORS) if c not in table.columns]
    if missing:
        raise StageInputError(f"{paths.rel(source)} lacks the column(s) {', '.join(missing)}: "
                              f"re-run `audioclust extract {paths.cli}`")
    if "n_frames" in table.columns:
        table["n_frames"] = pd.to_numeric(table["n_frames"], errors="coerce").astype("Int64")
    ok = table[table["status"] == "ok"].reset_index(drop=True)
    if not ok_only:
        return table
    if ok.empty:
        raise StageInputError(f"{paths.rel(source)} has no row with status ok ({len(table)} rows): check the "
                              "reasons there and re-run `audioclust extract`")
    return ok


# --------------------------------------------------------------------------- stages 04-05: results.csv, labels.csv

#: Columns that name a result row, common to both stages.
_IDENTITY: tuple[str, ...] = ("id", "feature", "view", "type", "kind", "source")
#: How its number of clusters was chosen, and whether the label-free selection may pick it.
_CHOICE: tuple[str, ...] = ("k", "k_source", "n_clusters", "params", "status", "reason", "selected", "eligible")
#: Its size: rows and columns of the matrix that was clustered.
_SIZE: tuple[str, ...] = ("n_samples", "n_dims")

STABILITY: tuple[str, ...] = ("stability", "stability_raw", "stability_null")

#: ``results.csv`` of stage 04: one row per view x algorithm.
CLUSTER_COLUMNS: list[str] = [
    *_IDENTITY, "algorithm", *_CHOICE, "degenerate", "structure", "pick", *EXTERNAL, *INTERNAL, *STABILITY,
    "partition_coefficient", "partition_entropy", "n_noise", "min_cluster_size", "runtime_s", "fit_s",
    "stability_s", *_SIZE, "seed",
]

#: ``results.csv`` of stage 05: one row per feature x latent size x stage (``ae_<clusterer>`` for each clusterer of
#: ``autoencoder.algorithms`` on the pre-trained embedding, ``dcec``); ``stability`` is an ``ae_`` row's clusterer's
#: stability gain, ``latent_stability`` its model's (the most stable clusterer's).
AUTOENCODER_COLUMNS: list[str] = [
    *_IDENTITY, "architecture", "latent_dim", "stage", "algorithm", *_CHOICE, *EXTERNAL, *INTERNAL,
    "stability", "latent_stability", "latent_chosen", "structure", "pick", "profile", "max_epochs", "epochs",
    "train_stopped_by", "train_s", "reused", "recon_mse", "val_loss", "dcec_iterations", "stopped_by", "runtime_s",
    *_SIZE, "checkpoint", "seed",
]


#: how the Embedding column of the summary names each autoencoder stage
STAGE_NAMES = {"ae_kmeans": "K-Means", "ae_spectral": "Spectral", "dcec": "DCEC"}


#: stages whose results can be explored, and the CLI stage that writes each
SOURCES: dict[str, str] = {"clustering": "cluster", "autoencoder": "autoencoder"}


@dataclass
class Result:
    """One clustering result: its table row and the cluster of every file.

    Attributes
    ----------
    source : ``clustering`` or ``autoencoder``.
    id : the row ``id`` of ``results.csv`` (a column of ``labels.csv``).
    row : the row of ``results.csv``.
    files : DataFrame of shape (n_files, 4)
        ``stem, label`` ('' when unlabelled), ``path`` (the WAV, root-relative; '' when
        unknown) and ``cluster`` (int, ``-1`` = noise), in ``features.csv`` order.
    folder : ``results/<name>/<source>/``.
    how : why this result: ``given`` or the label-free rule that chose it.
    """

    source: str
    id: str
    row: pd.Series
    files: pd.DataFrame
    folder: Path
    how: str

    @property
    def clusters(self) -> np.ndarray:
        """ndarray of shape (n_files,), int: the cluster of each file."""
        return self.files["cluster"].to_numpy(dtype=int)

    @property
    def cluster_ids(self) -> list[int]:
        """The clusters in order, noise (``-1``) last."""
        found = sorted(set(self.clusters.tolist()))
        return [c for c in found if c != NOISE] + ([NOISE] if NOISE in found else [])

    def describe(self) -> str:
        """One line: id, type, algorithm, k and how it was chosen."""
        r = self.row
        k = r.get("n_clusters")
        k_text = f"{int(k)} clusters" if pd.notna(k) else f"{len(self.cluster_ids)} clusters"
        return f"{self.id} ({r.get('type', '')}, {r.get('algorithm', '')}, {k_text}; {self.how})"


def read_results(paths: ProjectPaths, source: str = "clustering") -> pd.DataFrame:
    """A stage's ``results.csv``.

    Raises
    ------
    ConfigError
        ``source`` is neither ``clustering`` nor ``autoencoder``.
    StageInputError
        The stage has not run (the message names the command to run).
    """
    if source not in SOURCES:
        raise ConfigError(f"result source {source!r} is not allowed; use one of {', '.join(SOURCES)}")
    folder = paths.results / source
    missing = [f for f in ("results.csv", "labels.csv") if not (folder / f).is_file()]
    if missing:
        hint = " (or explore source 'clustering')" if source == "autoencoder" else ""
        if not paths.results.is_dir():   # a misspelt experiment is the likelier mistake
            known = paths.experiments()
            hint += f"; experiments of {paths.dataset} with results: {', '.join(known) if known else 'none'}"
        raise StageInputError(f"{paths.rel(folder)} lacks {' and '.join(missing)}: run `audioclust {SOURCES[source]} "
                              f"{paths.cli}` first{hint}")
    results = pd.read_csv(folder / "results.csv", dtype={"id": str})
    if "id" not in results.columns:
        raise StageInputError(f"{paths.rel(folder / 'results.csv')} has no 'id' column: re-run "
                              f"`audioclust {SOURCES[source]} {paths.cli}`")
    return results


#: the columns of a stage's ``labels.csv`` that name the files; every other column is a row id
FILE_COLUMNS = ("stem", "label")


def _read_labels(paths: ProjectPaths, source: str) -> pd.DataFrame:
    """A stage's ``labels.csv``: the files' stems and labels as text, then one column of clusters per row id."""
    return pd.read_csv(paths.results / source / "labels.csv", dtype={"stem": str, "label": str},
                       keep_default_na=False)


def read_partitions(paths: ProjectPaths, source: str = "clustering") -> dict[str, np.ndarray]:
    """Every row's cluster labels from a stage's ``labels.csv``: row id -> labels in the order of its files
    (what :func:`audioclust.clustering.structures.picked_model` compares). Call :func:`read_results` first: it
    says what is missing."""
    labels = _read_labels(paths, source)
    return {column: labels[column].to_numpy() for column in labels.columns if column not in FILE_COLUMNS}


#: a stage's folder of results over several seeds (``results/<name>/<source>/replicates/``)
REPLICATES = "replicates"


def read_results_over_seeds(paths: ProjectPaths, source: str) -> pd.DataFrame | None:
    """A stage's rows of every seed, with a ``seed`` column: ``replicates/results.csv`` after a run with several
    seeds, else ``results.csv`` (one seed; 0 in a table written before the column existed); None when the stage
    has not run in this experiment."""
    folder = paths.results / source
    for path in (folder / REPLICATES / "results.csv", folder / "results.csv"):
        if path.is_file():
            long = pd.read_csv(path, dtype={"id": str})
            return long if "seed" in long.columns else long.assign(seed=0)
    return None


def choose_result(results: pd.DataFrame, criterion: str = "silhouette",
                  available: Iterable[str] | None = None) -> tuple[str, str]:
    """The label-free choice among a stage's results.

    Among the ``ok`` rows (with labels in ``labels.csv`` when ``available`` is given), the
    row marked ``pick`` when there is one (stage 04:
    :func:`audioclust.clustering.structures.mark_structures`; stage 05:
    :func:`audioclust.clustering.structures.picked_model`); otherwise the ``selected`` ones (one
    per feature, chosen by the stage without labels) compete on the internal ``criterion`` and
    the best wins. Without any selected row every ok row competes.

    Parameters
    ----------
    results : a ``results.csv`` table.
    criterion : ``silhouette`` | ``calinski_harabasz`` | ``davies_bouldin`` (lower is better).
    available : the ids that have a column in ``labels.csv``.

    Returns
    -------
    (id, how) with ``how`` a sentence naming the rule.

    Raises
    ------
    StageInputError
        No row qualifies.
    """
    ok = results
    if "status" in ok.columns:
        ok = ok[ok["status"] == "ok"]
    if available is not None:
        ok = ok[ok["id"].isin(set(available))]
    if ok.empty:
        raise StageInputError("no result with status ok and cluster labels: check results.csv (status, reason)")
    picked = ok[true_flags(ok, "pick")]
    if len(picked):
        pick = str(picked["id"].iloc[0])
        total = pd.to_numeric(ok["structure"], errors="coerce").max() if "structure" in ok.columns else np.nan
        others = "; the others are alternatives, see structures.csv" if total > 1 else ""
        if "k_source" in picked.columns and picked["k_source"].iloc[0] == "auto" \
                and "latent_stability" in picked.columns:   # stage 05 at k: auto
            return pick, ("label-free pick: the structure most models' selected rows agree on (k estimated per "
                          f"model){others}")
        if "latent_stability" in picked.columns:   # stage 05: the most stable model, and the next feature's gain
            gains = pd.to_numeric(ok["latent_stability"], errors="coerce")
            rivals = gains[true_flags(ok, "selected") & (ok["id"] != pick)]
            runner_up = (f"; the next feature's, {ok.loc[rivals.idxmax(), 'id']}: {rivals.max():.3f}"
                         if rivals.notna().any() else "")
            return pick, (f"label-free pick: the most stable model (stability gain "
                          f"{gains[picked.index[0]]:.3f}{runner_up}){others}")
        if "structure" in picked.columns:   # stage 04: the first of the structures found
            rank = pd.to_numeric(picked["structure"], errors="coerce").iloc[0]
            return pick, f"label-free pick, structure {rank:.0f} of {total:.0f}{others}"
        return pick, "label-free pick (the row marked pick in results.csv)"
    selected = true_flags(ok, "selected") if "selected" in ok.columns else None
    pool, what = (ok[selected], "selected rows (one per feature)") if selected is not None and selected.any() \
        else (ok, "ok rows")
    score = oriented(pool[criterion], criterion) if criterion in pool.columns else pd.Series(dtype=float)
    if score.notna().any():
        best = score.idxmax()
        how = f"label-free: best {criterion} ({float(pool.loc[best, criterion]):.3f}) among {len(pool)} {what}"
        return str(pool.loc[best, "id"]), how
    return str(pool["id"].iloc[0]), f"label-free: first of {len(pool)} {what} (no {criterion} in results.csv)"


def true_flags(table: pd.DataFrame, column: str) -> pd.Series:
    """A boolean column of a table read from CSV (``True``/``true`` or a bool), False where the column is absent."""
    if column not in table.columns:
        return pd.Series(False, index=table.index)
    return table[column].astype(str).str.lower() == "true"


def load_result(paths: ProjectPaths, result_id: str | None = None, source: str = "clustering",
                criterion: str = "silhouette", tune_criterion: str = "silhouette") -> Result:
    """One result of stage 04 or 05 with the cluster and the WAV of every file.

    Parameters
    ----------
    paths : ProjectPaths
    result_id : a row ``id`` of ``results/<name>/<source>/results.csv``; None: the label-free
        choice (:func:`choose_result`).
    source : ``clustering`` (stage 04) or ``autoencoder`` (stage 05).
    criterion, tune_criterion : ``cluster.criterion`` and ``cluster.tune_criterion``: the label-free
        choice of stage 05's rows uses :func:`audioclust.clustering.selection.autoencoder_criterion` of them, as
        stage 05 does.

    Returns
    -------
    Result

    Raises
    ------
    StageInputError
        The stage has not run, the id is unknown, or ``features.csv`` no longer matches the
        stage's files (re-run the stage).
    """
    results = read_results(paths, source)
    folder = paths.results / source
    labels = _read_labels(paths, source)
    available = [c for c in labels.columns if c not in FILE_COLUMNS]
    if result_id is None:
        if source == "autoencoder":
            criterion = autoencoder_criterion(criterion, tune_criterion)
        result_id, how = choose_result(results, criterion, available)
    else:
        how = "given"
        if result_id not in available:
            shown = ", ".join(available[:8]) + (" ..." if len(available) > 8 else "")
            raise StageInputError(f"result {result_id!r} has no cluster labels in {paths.rel(folder / 'labels.csv')}; "
                                  f"ids with labels: {shown or 'none'}")
    matches = results[results["id"] == result_id]
    if matches.empty:
        raise StageInputError(f"result {result_id!r} is not in {paths.rel(folder / 'results.csv')}")
    table = read_table(paths)
    same = len(table) == len(labels) and (table["stem"].to_numpy() == labels["stem"].to_numpy()).all() and (
        table["label"].to_numpy() == labels["label"].to_numpy()).all()
    if not same:
        raise StageInputError(f"{paths.rel(folder / 'labels.csv')} does not list the files of "
                              f"{paths.rel(paths.features_csv)} (features were re-extracted since): re-run "
                              f"`audioclust {SOURCES[source]} {paths.cli}`")
    clusters = pd.to_numeric(labels[result_id], errors="coerce")
    if clusters.isna().any():
        raise StageInputError(f"result {result_id!r} lacks the cluster of {int(clusters.isna().sum())} files in "
                              f"{paths.rel(folder / 'labels.csv')}: re-run `audioclust {SOURCES[source]}`")
    files = pd.DataFrame({"stem": table["stem"].astype(str), "label": table["label"].astype(str),
                          "path": table["path"].astype(str) if "path" in table.columns else "",
                          "cluster": clusters.astype(int).to_numpy()})
    return Result(source=source, id=result_id, row=matches.iloc[0], files=files, folder=folder, how=how)


# --------------------------------------------------------------------------- the report

#: columns of ``map.csv`` (and of the DataFrame :func:`run` returns)
MAP_COLUMNS = ["stem", "label", "cluster", "x", "y", "audio", "thumb", "audio_status", "reason", "audio_bytes"]

#: result-table columns shown in the report (those present)
RESULT_COLUMNS = ["id", "type", "algorithm", "architecture", "latent_dim", "stage", "k", "n_clusters", "params",
                  "status", "selected", "nmi", "acc", "ari", "silhouette", "calinski_harabasz", "davies_bouldin",
                  "n_noise", "runtime_s", "epochs", "train_s"]
