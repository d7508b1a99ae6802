"""audioclust makes torch's OpenMP threads sleep while they wait, unless the user chose otherwise.

libgomp reads ``OMP_WAIT_POLICY`` once, when it is loaded, so what counts is the spin count the
library itself reports (``OMP_DISPLAY_ENV=VERBOSE``) in a fresh process, not the variable.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

TORCH_OP = "import torch; torch.set_num_threads(2); torch.ones(1000).sum()"


def spin_count(code: str, **env: str) -> tuple[int, str]:
    """libgomp's spin count in a fresh interpreter that runs ``code``, and its OMP_WAIT_POLICY variable."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code + "; import os; print(os.environ.get('OMP_WAIT_POLICY'))"],
                         env={**clean, "OMP_DISPLAY_ENV": "VERBOSE", **env}, capture_output=True, text=True,
                         check=True)
    found = re.search(r"GOMP_SPINCOUNT = '(\d+)'", out.stderr)
    if found is None:
        pytest.skip("torch's OpenMP runtime is not libgomp (no GOMP_SPINCOUNT in its display)")
    return int(found.group(1)), out.stdout.strip().splitlines()[-1]


def test_importing_audioclust_first_makes_waiting_threads_sleep():
    assert spin_count(f"import audioclust.deep.train; {TORCH_OP}") == (0, "PASSIVE")


def test_torch_loaded_before_audioclust_keeps_spinning():
    # the check above can tell the two apart: libgomp's own default spins 300,000 times
    count, _ = spin_count(f"{TORCH_OP}; import audioclust")
    assert count == 300_000


def test_a_policy_the_user_set_wins():
    count, policy = spin_count(f"import audioclust; {TORCH_OP}", OMP_WAIT_POLICY="ACTIVE")
    assert policy == "ACTIVE"
    assert count > 300_000
