"""Shared helpers for the examples that reproduce Dhariwal & Inala's experiments (not part of the otcore API).

Argument parsing (``--full``, ``--out``, ``--seed``, ``--quiet``), a small MLP
builder, CSV writing, progress bars and a headless matplotlib.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import sys
import time

import numpy as np

if importlib.util.find_spec("otcore") is None:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--full", action="store_true", help="the paper's sizes (slow: minutes to hours on a CPU)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"),
                   help="output folder for CSV and PNG files (default: examples/out/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1 is fastest for these tiny networks)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def apply_full(args, full: dict, argv) -> None:
    """With ``--full``, set every option in ``full`` that was not given explicitly on the command line."""
    if not args.full:
        return
    given = {a.split("=")[0] for a in (argv or []) if a.startswith("--")}
    for key, value in full.items():
        if "--" + key.replace("_", "-") not in given:
            setattr(args, key, value)


def setup_torch(threads: int, seed: int):
    import torch

    torch.set_num_threads(max(1, threads))
    torch.manual_seed(seed)
    return torch


def mlp(sizes):
    """``Linear -> ReLU -> ... -> Linear`` (logits; the softmax is applied by the loss)."""
    import torch.nn as nn

    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def progress(iterable=None, *, total=None, desc="", quiet=False):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=quiet, leave=False, dynamic_ncols=True)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_csv(path: str, rows: list[dict]) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fields = list(rows[0]) if rows else []
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return path


def ensure_out(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


class Timer:
    """Accumulates wall time of the timed blocks only (training steps, not evaluation)."""

    def __init__(self):
        self.total = 0.0

    def __enter__(self):
        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.total += time.perf_counter() - self._t


def rng(seed: int):
    return np.random.default_rng(seed)
