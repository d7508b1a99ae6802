"""Shared fixtures: a temporary project root and tiny synthetic audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FSDD = REPO.parent / "shared" / "datasets" / "fsdd"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project root with the repository's configs/ copied in."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "default.yaml").write_text((REPO / "configs" / "default.yaml").read_text())
    return tmp_path


@pytest.fixture
def fsdd() -> Path:
    """The FSDD recordings folder; the test is skipped when it is absent."""
    folder = FSDD / "recordings"
    if not folder.is_dir():
        pytest.skip(f"FSDD not found at {folder}")
    return folder


def tone(freq: float, seconds: float = 0.5, sr: int = 22050, amp: float = 0.5) -> np.ndarray:
    """A float32 sine of ``freq`` Hz."""
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow end-to-end runs first: with ``pytest -n 2`` (make test) one worker starts on them at once."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
