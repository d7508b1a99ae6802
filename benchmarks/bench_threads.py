"""Stage 05's training speed with OpenMP threads that spin or sleep while they wait, alone and beside other work.

torch's CPU kernels run on OpenMP (libgomp). Left to itself, each libgomp thread that runs out
of work spins for a while before it sleeps: on idle cores the next parallel step starts sooner,
but beside another process the spinning thread holds a core that the other one needs. audioclust therefore sets ``OMP_WAIT_POLICY=PASSIVE`` when it is
imported (unless the variable is set), before torch loads libgomp. This benchmark trains the
stage's two models for a fixed number of batches in worker processes, with libgomp's own
default (the worker imports torch before audioclust) and with audioclust's (audioclust first),
in three settings:

- ``alone``: nothing else runs;
- ``twin``: two identical workers at once (two experiments run side by side);
- ``busy core``: beside one process that keeps one core busy (any other job).

Models: ``conv``, the convolutional autoencoder (``dcec``) on batches of 64 images of 96 × 48;
``mlp``, DEC's fully connected autoencoder on batches of 64 vectors of 512 values. Each worker
uses every core (``torch.set_num_threads``, as ``autoencoder.num_threads: 0`` does) and prints
its median seconds per batch after a warm-up; the spin count in effect is read from libgomp itself
(``OMP_DISPLAY_ENV``: 300,000 spins by default, 0 when passive). Rounds alternate the two
policies, so a drift of the machine's speed falls on both.

``--stage05 ROOT [ROOT2]`` times the whole of stage 05 instead (``audioclust autoencoder
--recompute``: every model trained anew, then its clusterings and stability gains, whose
scikit-learn K-Means also runs on libgomp) on finished projects, alone on ROOT and, given ROOT2,
beside the same run on ROOT2 (two copies of a project, so the twins share no files). libgomp's
default is restored there with ``GOMP_SPINCOUNT=300000``, which overrides the policy.

    .venv/bin/python benchmarks/bench_threads.py [--batches 40] [--rounds 3] [--models conv mlp]
    .venv/bin/python benchmarks/bench_threads.py --stage05 ROOT ROOT2 [--dataset demo] [--rounds 1]
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHAPES = {"conv": ("dcec", (1, 96, 48)), "mlp": ("mlp", (1, 1, 512))}
POLICIES = {"libgomp's default": "torch-first", "audioclust's (PASSIVE)": "audioclust-first"}
SETTINGS = ("alone", "twin", "busy core")


def worker(model: str, batches: int, order: str) -> None:
    """Train ``model`` for ``batches`` batches of 64 and print the median seconds per batch."""
    if order == "torch-first":
        importlib.import_module("torch")  # loads libgomp before audioclust can set its wait policy
    from audioclust.deep.components import build_model  # audioclust, then torch, unless torch came first
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    name, shape = SHAPES[model]
    net = build_model(name, shape, 10)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.rand(64, *shape)
    times = []
    for i in range(batches + 5):
        t = time.perf_counter()
        opt.zero_grad()
        out = net(x)
        loss = ((out[0] if isinstance(out, tuple) else out) - x).pow(2).mean()
        loss.backward()
        opt.step()
        if i >= 5:
            times.append(time.perf_counter() - t)
    print(f"s_per_batch={statistics.median(times):.5f}")


def _spin_count(stderr: str) -> str:
    """libgomp's spin count before a waiting thread sleeps: 0 is passive (it shows PASSIVE when unset too)."""
    found = re.search(r"GOMP_SPINCOUNT = '(\d+)'", stderr)
    return found.group(1) if found else "?"


def without_wait_settings() -> dict[str, str]:
    """This environment without a caller's OpenMP wait settings, so each measurement sets its own."""
    return {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}


def measure(model: str, batches: int, order: str, setting: str) -> tuple[float, str]:
    """Median seconds per batch of one worker (the mean of the twins'), and libgomp's spin count."""
    env = {**without_wait_settings(), "OMP_DISPLAY_ENV": "VERBOSE"}
    cmd = [sys.executable, __file__, "--worker", model, "--batches", str(batches), "--order", order]
    busy = None
    if setting == "busy core":
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    n = 2 if setting == "twin" else 1
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parent) for _ in range(n)]
    outs = [p.communicate() for p in procs]
    if busy:
        busy.kill()
        busy.wait()
    values = []
    for (out, err), p in zip(outs, procs):
        if p.returncode:
            raise SystemExit(f"worker failed:\n{err}")
        values.append(float(re.search(r"s_per_batch=([\d.]+)", out).group(1)))
    return statistics.mean(values), _spin_count(outs[0][1])


def time_stage05(roots: list[Path], dataset: str, spin_count: str | None) -> float:
    """Wall seconds of ``audioclust autoencoder --recompute`` on each root at once (their mean)."""
    env = without_wait_settings()
    if spin_count is not None:
        env["GOMP_SPINCOUNT"] = spin_count
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "audioclust.cli", "autoencoder", "--dataset", dataset,
                               "--root", str(root), "--recompute"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for root in roots]
    ends = []
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"stage 05 failed:\n{err[-2000:]}")
        ends.append(time.perf_counter() - start)
    return statistics.mean(ends)


def stage05_table(roots: list[Path], dataset: str, rounds: int) -> str:
    settings = {"alone": roots[:1], "twin": roots[:2]} if len(roots) > 1 else {"alone": roots[:1]}
    lines = ["| stage 05 | libgomp's default (spins 300000): s | audioclust's (PASSIVE): s | ratio |", "|---|---:|---:|---:|"]
    for setting, used in settings.items():
        before, after = [], []
        for _ in range(rounds):
            before.append(time_stage05(used, dataset, "300000"))
            after.append(time_stage05(used, dataset, None))
            print(f"{setting}: {before[-1]:.0f} s / {after[-1]:.0f} s", flush=True)
        a, b = statistics.median(before), statistics.median(after)
        lines.append(f"| {setting} | {a:.0f} | {b:.0f} | {a / b:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--stage05", nargs="+", type=Path, metavar="ROOT",
                    help="time the whole of stage 05 on these finished projects (one alone; two: also side by side)")
    ap.add_argument("--dataset", default="demo", help="with --stage05: the dataset of those projects")
    ap.add_argument("--out", type=Path, help="also write the Markdown table here")
    ap.add_argument("--worker", choices=list(SHAPES), help=argparse.SUPPRESS)
    ap.add_argument("--order", choices=list(POLICIES.values()), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.batches, args.order)
        return
    from bench_autoencoder import emit  # imports audioclust, which a torch-first worker must not have loaded

    if args.stage05:
        emit(stage05_table(args.stage05, args.dataset, args.rounds), args.out)
        return
    results: dict[tuple[str, str, str], list[float]] = {}
    seen: dict[str, str] = {}
    for _ in range(args.rounds):
        for model in args.models:
            for setting in SETTINGS:
                for label, order in POLICIES.items():
                    value, policy = measure(model, args.batches, order, setting)
                    results.setdefault((model, setting, label), []).append(value)
                    seen[label] = policy
    labels = list(POLICIES)
    lines = [f"| model | setting | {labels[0]} (spins {seen[labels[0]]}): s/batch | {labels[1]} (spins {seen[labels[1]]}): s/batch | ratio |",
             "|---|---|---:|---:|---:|"]
    for model in args.models:
        for setting in SETTINGS:
            a, b = (statistics.median(results[(model, setting, label)]) for label in labels)
            lines.append(f"| {model} | {setting} | {a:.3f} | {b:.3f} | {a / b:.2f} |")
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
