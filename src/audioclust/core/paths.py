"""Every path of the project layout, from the project root and a dataset name.

Paths written into CSV files are relative to the project root with ``/``
separators (:meth:`ProjectPaths.rel`), so a project folder can move.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from audioclust.core.errors import DatasetError
from audioclust.core.progress import in_kernel

log = logging.getLogger(__name__)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def find_root(root: str | Path | None = None) -> Path:
    """The project folder: ``root`` if given, else the first folder upwards from the
    current one that holds ``configs/default.yaml`` (so notebooks run from ``notebooks/``)."""
    if root is not None:
        return Path(root).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "configs" / "default.yaml").is_file():
            return folder
    raise DatasetError(f"no project folder (one with configs/default.yaml) above {here}: pass ROOT / --root")


def root_hint(root: Path) -> str:
    """For an error about a missing project path: how to point at another project folder, when ``root``
    was taken from the current folder (the command line's default ``--root``, or a notebook's
    ``ROOT = None``, which looks upwards from the notebook); ``""`` when it lies elsewhere."""
    root, here = Path(root).resolve(), Path.cwd().resolve()
    if root != here and root not in here.parents:
        return ""
    how = 'set ROOT = "PROJECT_FOLDER" in the first cell' if in_kernel() else "pass --root PROJECT_FOLDER"
    return f" (the project folder {root} was taken from the current folder; {how} if the project is elsewhere)"


#: The experiment whose results live in ``results/<name>/`` itself (the layout before named experiments).
DEFAULT_EXPERIMENT = "default"


@dataclass(frozen=True)
class ProjectPaths:
    """The folders of one dataset (and one experiment of it) inside one project root.

    The per-file stages' outputs (``datasets/<name>_wav``, ``metadata``, ``features``) and the
    trained checkpoints are the dataset's, shared by its experiments (each is kept under the hash of
    the settings it depends on); the results of stages 04, 05 and the report are the experiment's:
    ``results/<name>/`` for the default experiment, ``results/<name>/experiments/<experiment>/`` for
    a named one, so runs with other settings live side by side.
    """

    root: Path
    dataset: str
    experiment: str = DEFAULT_EXPERIMENT

    def __post_init__(self) -> None:
        for what, name in (("dataset", self.dataset), ("experiment", self.experiment)):
            if not _NAME.match(name):
                raise DatasetError(f"{what} name {name!r} is not allowed: use letters, digits, '_', '-' or '.'")
        object.__setattr__(self, "root", Path(self.root).resolve())

    # raw and transcoded audio
    @property
    def raw(self) -> Path:
        return self.root / "datasets" / self.dataset

    @property
    def wav(self) -> Path:
        return self.root / "datasets" / f"{self.dataset}_wav"

    # stage outputs
    @property
    def metadata(self) -> Path:
        return self.root / "metadata" / self.dataset

    @property
    def metadata_csv(self) -> Path:
        return self.metadata / "metadata.csv"

    @property
    def transformed_csv(self) -> Path:
        return self.metadata / "metadata_transformed.csv"

    @property
    def features(self) -> Path:
        return self.root / "features" / self.dataset

    @property
    def features_csv(self) -> Path:
        return self.features / "features.csv"

    @property
    def embeddings_csv(self) -> Path:
        """``features/<name>/embeddings.csv``: one row per file and embedding model."""
        return self.features / "embeddings.csv"

    @property
    def feature_store(self) -> Path:
        """``features/<name>/store/``: the packed view vectors (:mod:`audioclust.represent.store`)."""
        return self.features / "store"

    def feature_file(self, kind: str, label: str, stem: str, suffix: str) -> Path:
        """``features/<name>/<kind>/<label>/<stem><suffix>`` (suffix ``.npy`` or ``.png``)."""
        return self.features / kind / label / f"{stem}{suffix}"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints" / self.dataset

    @property
    def dataset_results(self) -> Path:
        """``results/<name>/``: the default experiment's results, the named experiments' folder and the caches they share."""
        return self.root / "results" / self.dataset

    @property
    def results(self) -> Path:
        """This experiment's results: ``results/<name>/`` (default) or ``results/<name>/experiments/<experiment>/``."""
        if self.experiment == DEFAULT_EXPERIMENT:
            return self.dataset_results
        return self.dataset_results / EXPERIMENTS / self.experiment

    def memo(self, stage: str) -> Path:
        """``results/<name>/.memo/<stage>/``: a stage's results by content, shared by the dataset's experiments."""
        return self.dataset_results / ".memo" / stage

    @property
    def projections(self) -> Path:
        """``results/<name>/.projections/``: 2-D projections by content, shared by stage 04's figures, the report and
        the dataset's experiments."""
        return self.dataset_results / ".projections"

    @property
    def provenance(self) -> Path:
        """``provenance.json`` of this experiment's results: which settings, code and machine made them."""
        return self.results / "provenance.json"

    def experiments(self) -> list[str]:
        """The experiments of this dataset that have results: ``default`` first, then the named ones."""
        named = self.dataset_results / EXPERIMENTS
        found = sorted(p.name for p in named.iterdir() if p.is_dir()) if named.is_dir() else []
        has_default = any(p.name != EXPERIMENTS and not p.name.startswith(".") for p in self.dataset_results.iterdir()
                          ) if self.dataset_results.is_dir() else False
        return ([DEFAULT_EXPERIMENT] if has_default else []) + found

    @property
    def cli(self) -> str:
        """The command line's options naming this dataset and experiment: ``--dataset NAME [--experiment EXP]``."""
        named = "" if self.experiment == DEFAULT_EXPERIMENT else f" --experiment {self.experiment}"
        return f"--dataset {self.dataset}{named}"

    @property
    def notebooks_out(self) -> Path:
        return self.results / "notebooks"

    @property
    def logs(self) -> Path:
        return self.root / "logs" / self.dataset

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    def generated(self) -> tuple[Path, ...]:
        """Every folder the pipeline writes for this dataset (never ``raw``, the user's)."""
        return (self.wav, self.metadata, self.features, self.checkpoints, self.results, self.logs)

    def rel(self, path: Path) -> str:
        """``path`` relative to the project root, with ``/`` (absolute if outside the root)."""
        path = Path(path).resolve() if not Path(path).is_absolute() else Path(path)
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def abs(self, rel: str) -> Path:
        """Inverse of :meth:`rel`."""
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

#: Folder of the named experiments in ``results/<name>/``.
EXPERIMENTS = "experiments"

#: Output folder name of files without a label.
UNLABELLED = "unlabelled"

_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


def label_folder(label: str) -> str:
    """The folder name of ``label`` in the outputs: the label itself, or ``unlabelled`` when empty."""
    return label or UNLABELLED


def file_key(label: str, stem: str) -> str:
    """The one name of a file across stages: ``<label folder>/<stem>`` (markers, the packed store, the report)."""
    return f"{label_folder(label)}/{stem}"


def split_key(key: str) -> tuple[str, str]:
    """``(label folder, stem)`` of a :func:`file_key`."""
    folder, stem = key.split("/", 1)
    return folder, stem


def key_of(path: Path) -> str:
    """The :func:`file_key` of an output file laid out as ``.../<label folder>/<stem><suffix>``."""
    return f"{path.parent.name}/{path.stem}"


def safe_name(text: str, max_bytes: int = 160) -> str:
    """A file-system-safe file or folder name for ``text``.

    Characters not allowed on common file systems (``/ \\ : * ? " < > |``, control
    characters) become ``_``; a leading ``.`` becomes ``_`` (it would hide the file);
    the text is NFC-normalised (macOS stores names decomposed). Spaces and non-ASCII
    letters are kept. A name longer than ``max_bytes`` in UTF-8 is shortened and gets
    an 8-hex hash of the full text, so distinct long names stay distinct.
    """
    name = _UNSAFE.sub("_", unicodedata.normalize("NFC", text)).strip()
    if name.startswith("."):
        name = "_" + name[1:]
    if not name:
        return "_"
    if len(name.encode("utf-8")) > max_bytes:
        digest = hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        short = name.encode("utf-8")[: max_bytes - 10].decode("utf-8", "ignore").rstrip()
        name = f"{short}__{digest}"
    return name
