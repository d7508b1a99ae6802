"""Where a result came from: the settings, code, libraries and machine of every stage run.

Each run of a stage adds its entry to the experiment's ``provenance.json``
(:attr:`~audioclust.core.paths.ProjectPaths.provenance`), keyed by the stage: when it started
and finished, its wall time, the fully resolved config and its hash, the seeds, the audioclust
version and git commit (with a flag for uncommitted changes), the versions of the libraries
that shape the numbers, the machine (CPU, cores, memory, GPU) and the command line. The latest
run's config is also written as ``config.yaml`` beside it, for reading.

Nothing here reads the config: the stages hand it over as a plain dict.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import yaml

from audioclust import __version__
from audioclust.core.cache import stable_hash
from audioclust.core.storage import read_json, write_json, write_text

log = logging.getLogger(__name__)

#: distributions whose versions shape the numbers (those installed are recorded)
LIBRARIES: tuple[str, ...] = ("numpy", "scipy", "pandas", "scikit-learn", "librosa", "soundfile", "soxr",
                              "scikit-fuzzy", "umap-learn", "torch", "pytorch-lightning", "matplotlib", "pillow",
                              "networkx", "PyYAML", "onnxruntime", "transformers")

#: settings that describe the dataset or where work runs, not how results are made: a difference here is no
#: difference between two runs' results
NEUTRAL_SECTIONS: tuple[str, ...] = ("dataset", "parallel", "report", "segments", "grouping")


@lru_cache(maxsize=1)
def git_state() -> dict[str, Any] | None:
    """``{"commit": full hash, "dirty": bool}`` of the checkout audioclust is imported from; None when it is
    not a git checkout (an installed wheel) or git is missing. ``dirty``: tracked files differ from the commit."""
    source = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None:
        return None
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no", "--",
                                 "."], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Versions of the installed :data:`LIBRARIES` (read from the package metadata: nothing is imported)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _gpus() -> list[str]:
    """The CUDA devices' names: from torch when a stage has imported it, else from ``nvidia-smi``; [] without."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        except (RuntimeError, AssertionError):
            pass
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


@lru_cache(maxsize=1)
def machine() -> dict[str, Any]:
    """The machine: OS, CPU model, logical cores (and those this process may use), memory in GiB, GPUs."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"host": platform.node(), "os": platform.platform(), "cpu": _cpu_model(), "cores": os.cpu_count(),
            "usable_cores": usable, "memory_gib": _memory_gib(), "gpus": _gpus()}


def code() -> dict[str, Any]:
    """audioclust's version and git state."""
    return {"audioclust": __version__, "git": git_state()}


def describe_code(git: dict[str, Any] | None, version: str) -> str:
    """``audioclust 0.9.0, commit 8c3041c (uncommitted changes)`` / ``audioclust 0.9.0 (not a git checkout)``."""
    if not git:
        return f"audioclust {version} (not a git checkout)"
    return f"audioclust {version}, commit {git['commit'][:7]}" + (" (uncommitted changes)" if git["dirty"] else "")


def config_hash(config: dict[str, Any]) -> str:
    """Short hash of a resolved config (a dict)."""
    return stable_hash(config)


#: mapping-valued settings compared as one value (their keys are data, not settings)
_MAPPING_VALUES = ("features.png_ranges", "cluster.grids", "images.per_file")


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"cluster.k": "auto", ...}``: the dotted keys of a nested config dict (lists are values)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and name not in _MAPPING_VALUES:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def differences(configs: dict[str, dict[str, Any]], ignore: tuple[str, ...] = NEUTRAL_SECTIONS
                ) -> dict[str, dict[str, Any]]:
    """The settings on which the configs disagree: ``{dotted key: {name: value, ...}}``, sorted by key.

    Parameters
    ----------
    configs : ``{name: resolved config dict}`` (e.g. one per run).
    ignore : top-level sections (or dotted key prefixes) left out (:data:`NEUTRAL_SECTIONS`).
    """
    flat = {name: flatten(config) for name, config in configs.items()}
    keys = sorted(set().union(*flat.values())) if flat else []
    out = {}
    for key in keys:
        if any(key == p or key.startswith(p + ".") for p in ignore):
            continue
        values = {name: f.get(key, "(absent)") for name, f in flat.items()}
        if len({yaml.safe_dump(v, default_flow_style=True) for v in values.values()}) > 1:
            out[key] = values
    return out


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


@contextmanager
def record_stage(path: Path, stage: str, config: dict[str, Any], seeds: list[int], dataset: str,
                 experiment: str) -> Iterator[None]:
    """Run a stage inside this block; when it finishes, add its entry to ``path`` (``provenance.json``).

    Before the stage runs, a warning names the settings that differ from those an earlier stage of
    the same experiment ran with (their results were made with those). A stage that fails records
    nothing: what is on disk is still the earlier run's.
    """
    path = Path(path)
    earlier = (read_json(path) or {}).get("stages", {})
    others = {name: entry["config"] for name, entry in earlier.items()
              if name != stage and isinstance(entry, dict) and isinstance(entry.get("config"), dict)}
    if others:
        diff = differences({**others, stage: config})
        if diff:
            shown = "; ".join(f"{key} ({', '.join(f'{n}: {v}' for n, v in values.items())})"
                              for key, values in list(diff.items())[:4])
            log.warning("%s of experiment %s runs with settings that differ from those of the stages that ran before "
                        "it in this experiment (their results keep theirs): %s%s; see %s", stage, experiment, shown,
                        f" and {len(diff) - 4} more" if len(diff) > 4 else "", path.name)
    started, clock = _now(), time.perf_counter()
    yield
    entry = {"started": started, "finished": _now(), "wall_s": round(time.perf_counter() - clock, 3),
             "seeds": list(seeds), "config_hash": config_hash(config), "config": config, **code(),
             "libraries": library_versions(), "machine": machine(),
             "command": [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv else []}
    record = read_json(path) or {}   # read again: a stage may have run in between (another process)
    record.update(dataset=dataset, experiment=experiment, updated=entry["finished"])
    record.setdefault("stages", {})[stage] = entry
    write_json(path, record)
    write_text(path.with_name("config.yaml"), f"# resolved config of the last stage run ({stage}, {entry['finished']})\n"
               + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


def read_provenance(path: Path) -> dict[str, Any] | None:
    """``provenance.json`` as a dict, or None when it is missing or unreadable."""
    record = read_json(path)
    return record if isinstance(record, dict) else None
