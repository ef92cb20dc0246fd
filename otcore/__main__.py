"""Command line: ``otcore distance`` for histogram files, ``otcore demo`` for a tour.

Run ``python -m otcore --help`` (or the installed ``otcore`` script). Two
subcommands:

``otcore demo``
    A short, self-explaining demonstration of every family (exact EMD with its
    optimality certificate, Sinkhorn with its gradient, 1D, CDF/squared EMD,
    tree EMD, pairwise matrices), printing a few histogram distances.

``otcore distance A [B] [options]``
    Distances between the histograms (one per row) of the files ``A`` and
    ``B`` (``.npy``, ``.csv`` or ``.txt``). Row ``i`` of ``A`` against row
    ``i`` of ``B`` (a file with a single row is compared with every row of the
    other), or, with ``--pairwise``, the full matrix between all rows of ``A``
    and ``B`` (all pairs within ``A`` when ``B`` is omitted).

Ground cost: ``--cost FILE`` (an ``n x m`` matrix), or ``--metric`` on bin
positions: by default the bins sit at ``0, 1, ..., k-1`` on a line; with
``--grid`` a ``k = d*d`` histogram is a ``d x d`` grid (row-major), and
``--positions FILE`` gives the coordinates of each bin (one row per bin).
``--metric ordinal`` is ``|i - j|**p`` on the line (the ordinal cost of the
seeds). Exit status: 0 on success, 2 on usage or input errors (the message
names the file, the line and the fix).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time

import numpy as np

from otcore._validate import mass_rtol

__all__ = ["main", "InputError", "read_histograms", "read_matrix"]

_EQUAL_MASS = ("exact", "sinkhorn", "cdf", "tree")
_METHODS = ("exact", "sinkhorn", "1d", "cdf", "tree")
_METRICS = ("ordinal", "euclidean", "sqeuclidean", "cityblock", "chebyshev", "minkowski", "cosine")


class InputError(ValueError):
    """Bad input file or option: printed as ``otcore: error: ...``, exit status 2."""


# --------------------------------------------------------------------------------------
# reading files


class _Table:
    """Numbers read from a file, with the file line of each row for messages."""

    def __init__(self, path: str, values: np.ndarray, lines: list[int] | None):
        self.path = path
        self.values = values
        self.lines = lines  # None for .npy (rows are then 0-based indices)

    def where(self, i: int) -> str:
        if self.lines is None:
            return f"{self.path}, row {i}"
        return f"{self.path}, line {self.lines[i]}"


_SPLIT_CSV = re.compile(r"\s*,\s*|\s*;\s*")
_SPLIT_TXT = re.compile(r"[\s,;]+")


def _parse_float(tok: str) -> float | None:
    try:
        return float(tok)
    except ValueError:
        return None


def _read_table(path: str, what: str) -> _Table:
    """A 2-D float64 table from .npy, .csv or .txt, with line numbers."""
    if not os.path.exists(path):
        raise InputError(f"{what} file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise InputError(f"{path}: cannot read as a .npy array ({exc}); save it with numpy.save") from None
        if x.dtype.kind not in "biuf":
            raise InputError(f"{path}: holds {x.dtype} values; {what} must be real numbers")
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2:
            raise InputError(
                f"{path}: array of shape {x.shape}; {what} must be 2-D (one histogram per row) or 1-D"
            )
        return _Table(path, np.asarray(x, dtype=np.float64), None)
    if ext not in (".csv", ".txt", ".tsv", ".dat"):
        raise InputError(f"{path}: unknown file type {ext!r}; use .npy, .csv or .txt (one histogram per row)")
    split = _SPLIT_CSV if ext == ".csv" else _SPLIT_TXT
    rows: list[list[float]] = []
    lines: list[int] = []
    try:
        f = open(path, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot open {what} file {path!r}: {exc.strerror}") from None
    with f:
        for lineno, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            toks = split.split(line)
            if toks and toks[-1] == "" and ext == ".csv":
                toks = toks[:-1]  # trailing comma
            vals = [_parse_float(t) for t in toks]
            if any(v is None for v in vals):
                if not rows and all(v is None for v in vals):
                    continue  # a header line
                col = next(k for k, v in enumerate(vals) if v is None)
                tok = toks[col]
                if tok == "":
                    raise InputError(
                        f"{path}, line {lineno}, column {col + 1}: empty field; write a number "
                        "(0 for an empty bin) in every column"
                    )
                raise InputError(
                    f"{path}, line {lineno}, column {col + 1}: cannot read {tok!r} as a number; "
                    "each line must hold numbers separated by "
                    + ("commas" if ext == ".csv" else "spaces or commas")
                )
            if rows and len(vals) != len(rows[0]):
                raise InputError(
                    f"{path}, line {lineno}: {len(vals)} value{'s' if len(vals) != 1 else ''}, but line "
                    f"{lines[0]} has {len(rows[0])}; every row must be one histogram with the same number of bins "
                    "(ragged rows)"
                )
            rows.append(vals)
            lines.append(lineno)
    if not rows:
        raise InputError(f"{path}: no numbers found; write one histogram per row")
    return _Table(path, np.array(rows, dtype=np.float64), lines)


def _check_entries(t: _Table, nonfinite: str, negative: str) -> None:
    """Raise at the first non-finite, then the first negative entry of ``t``, naming its
    file, line and column; ``nonfinite`` / ``negative`` are formatted with ``v``, the value."""
    x = t.values
    for bad, msg in ((~np.isfinite(x), nonfinite), (x < 0, negative)):
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise InputError(f"{t.where(i)}, column {j + 1}: " + msg.format(v=x[i, j]))


def read_histograms(path: str, *, name: str = "histograms") -> _Table:
    """Histograms (one per row) from ``path``, checked: finite, >= 0, not all zero."""
    t = _read_table(path, name)
    _check_entries(
        t,
        "{v} is not a finite mass; replace it with a number (0 for an empty bin)",
        "negative mass {v:g}; masses must be >= 0 (counts or probabilities)",
    )
    x = t.values
    tot = x.sum(1)
    if np.any(tot <= 0):
        i = int(np.argmax(tot <= 0))
        raise InputError(
            f"{t.where(i)}: all-zero histogram; every row needs positive total mass (remove the row)"
        )
    return t


def read_matrix(path: str, *, name: str = "cost") -> _Table:
    """A finite, non-negative 2-D matrix (a ground cost) from ``path``."""
    t = _read_table(path, name)
    _check_entries(
        t, f"{{v}} in the {name}; costs must be finite", f"negative {name} {{v:g}}; costs must be >= 0"
    )
    return t


def _read_tree(path: str, n: int):
    """Parent array (and edge weights) from a file with one line per node: ``parent [weight]``."""
    t = _read_table(path, "tree")
    x = t.values
    if x.shape[1] not in (1, 2):
        raise InputError(
            f"{path}: {x.shape[1]} columns; a tree file has one line per node with its parent "
            "(-1 for the root) and optionally the length of the edge to the parent"
        )
    parent = x[:, 0]
    if not np.all(np.isfinite(parent)) or np.any(parent != np.round(parent)):
        i = int(np.argmax(~np.isfinite(parent) | (parent != np.round(parent))))
        raise InputError(f"{t.where(i)}: parent {parent[i]} is not an integer node index (-1 for the root)")
    if x.shape[0] != n:
        raise InputError(
            f"{path}: {x.shape[0]} nodes but the histograms have {n} bins; the tree file needs one "
            "line per bin (node), in the order of the histogram columns"
        )
    weight = x[:, 1] if x.shape[1] == 2 else np.ones(n)
    if np.any(~np.isfinite(weight)) or np.any(weight < 0):
        i = int(np.argmax(~np.isfinite(weight) | (weight < 0)))
        raise InputError(f"{t.where(i)}: edge length {weight[i]} must be a finite number >= 0")
    return parent.astype(np.int64), weight


# --------------------------------------------------------------------------------------
# the ground cost


def _positions(k: int, args, side: str) -> np.ndarray:
    if args.positions is not None:
        t = _read_table(args.positions, "positions")
        pos = t.values
        if not np.all(np.isfinite(pos)):
            raise InputError(f"{args.positions}: positions must be finite numbers")
        if pos.shape[0] == 1 and k > 1 and pos.shape[1] == k:
            pos = pos.T  # one line of k positions on a line
        if pos.shape[0] != k:
            raise InputError(
                f"{args.positions}: {pos.shape[0]} positions but {side} has {k} bins; write one "
                "line per bin with its coordinates"
            )
        return pos
    if args.grid:
        d = math.isqrt(k)
        if d * d != k:
            raise InputError(
                f"--grid needs square histograms (k = d*d bins, row-major), but {side} has {k} bins; "
                "drop --grid (bins on a line) or give --positions FILE"
            )
        ii, jj = np.meshgrid(np.arange(d), np.arange(d), indexing="ij")
        return np.stack([ii.ravel(), jj.ravel()], axis=1).astype(np.float64)
    return np.arange(k, dtype=np.float64)[:, None]


def _ground_cost(args, n: int, m: int, names) -> np.ndarray:
    if args.cost is not None:
        t = read_matrix(args.cost)
        M = t.values
        if M.shape != (n, m):
            raise InputError(
                f"{args.cost}: the cost is {M.shape[0]} x {M.shape[1]} but {names[0]} has {n} bins "
                f"and {names[1]} has {m}; the cost must be (bins of A) x (bins of B) = {n} x {m}"
            )
        return M
    metric = args.metric or "euclidean"
    if metric == "ordinal":
        if args.grid or args.positions is not None:
            raise InputError("--metric ordinal puts the bins on a line 0..k-1; drop --grid/--positions")
        p = 1.0 if args.p is None else args.p
        i = np.arange(n, dtype=np.float64)[:, None]
        j = np.arange(m, dtype=np.float64)[None, :]
        return np.abs(i - j) ** p
    from otcore._cost import cost_matrix

    xa = _positions(n, args, names[0])
    xb = _positions(m, args, names[1])
    kw = {"metric": metric}
    if metric == "minkowski":
        kw["p"] = 2.0 if args.p is None else args.p
    try:
        return np.asarray(cost_matrix(xa, xb, **kw), dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise InputError(f"--metric {metric}: {exc}") from None


# --------------------------------------------------------------------------------------
# distance


def _check_mass(tables) -> None:
    ref_t, ref_s = tables[0], tables[0].values[0].sum()
    for t in tables:
        s = t.values.sum(1)
        rel = np.abs(s - ref_s) / np.maximum(s, ref_s)
        if np.any(rel > mass_rtol(np, np.dtype(np.float64))):  # the library's tolerance
            i = int(np.argmax(rel))
            raise InputError(
                f"{t.where(i)} sums to {s[i]:.10g} but {ref_t.where(0)} sums to {ref_s:.10g}; this "
                "method compares histograms of equal total mass: pass --normalize to divide each "
                "row by its total, or fix the file"
            )


def _distance(args) -> int:
    from otcore._pairwise import _make_kernel, pairwise_distances

    method = args.method
    if method is None:
        method = "tree" if args.tree is not None else "sinkhorn" if args.reg is not None else "exact"
    if args.b is None and not args.pairwise:
        raise InputError("give two files A B, or --pairwise to compare all rows of one file")
    if args.reg is not None and method != "sinkhorn":
        raise InputError(f"--reg is the Sinkhorn regularisation; it has no meaning with --method {method}")
    if method == "sinkhorn":
        if args.reg is None:
            raise InputError(
                "--method sinkhorn needs --reg R, the entropic regularisation (K = exp(-M/R)); "
                "e.g. 0.05 times the largest cost"
            )
        if not (args.reg > 0 and math.isfinite(args.reg)):
            raise InputError(f"--reg must be a positive number, got {args.reg}")
    if method == "tree" and args.tree is None:
        raise InputError("--method tree needs --tree FILE (one line per node: parent [edge length], -1 for the root)")
    if args.tree is not None and method != "tree":
        raise InputError(f"--tree is only used by --method tree, not --method {method}")
    if args.cost is not None and method in ("1d", "cdf", "tree"):
        raise InputError(
            f"--method {method} does not use a cost matrix; drop --cost "
            + ("(give bin coordinates with --positions)" if method != "tree" else "(the tree is the metric)")
        )
    if args.metric is not None and method in ("1d", "cdf", "tree"):
        raise InputError(
            f"--metric is not used by --method {method}: "
            + {
                "1d": "its cost is |x - y|**p between bin positions (set p with --p)",
                "cdf": "it sums |CDF_a - CDF_b|**rho over the ordered bins (set rho with --rho)",
                "tree": "the tree file defines the metric",
            }[method]
        )
    if args.cost is not None and args.metric is not None:
        raise InputError("give either --cost FILE or --metric, not both")
    if args.output is not None and os.path.splitext(args.output)[1].lower() not in (".npy", ".csv", ".txt"):
        raise InputError(f"--output {args.output!r}: write to a .npy, .csv or .txt file")

    A = read_histograms(args.a, name="A")
    B = None if args.b is None else read_histograms(args.b, name="B")
    tables = [A] if B is None else [A, B]
    if args.normalize:
        for t in tables:
            t.values = t.values / t.values.sum(1, keepdims=True)
    elif method in _EQUAL_MASS:
        _check_mass(tables)
    n = A.values.shape[1]
    m = n if B is None else B.values.shape[1]
    names = (A.path, A.path if B is None else B.path)
    if method in ("cdf", "tree") and n != m:
        raise InputError(
            f"{names[1]} has {m} bins per row but {names[0]} has {n}; --method {method} compares "
            "histograms on the same bins"
        )

    params: dict = {}
    M = None
    kwargs: dict = {}
    tree = None
    if method in ("exact", "sinkhorn"):
        M = _ground_cost(args, n, m, names)
        if args.cost is not None:
            params["cost"] = args.cost
        else:
            params.update(metric=args.metric or "euclidean", grid=bool(args.grid), positions=args.positions)
        if args.cost is None and args.p is not None:
            params["p"] = args.p
        if method == "sinkhorn":
            params["reg"] = args.reg
            if args.n_iter is not None:
                kwargs["n_iter"] = args.n_iter
                kwargs["tol"] = args.tol
            elif args.tol is not None:
                kwargs["tol"] = args.tol
            params.update(n_iter=args.n_iter, tol=args.tol)
    elif method == "1d":
        xa, xb = _positions(n, args, names[0]), _positions(m, args, names[1])
        if xa.shape[1] != 1:
            raise InputError("--method 1d needs positions on a line: one number per bin in --positions")
        kwargs["support"] = xa[:, 0]
        if B is not None and (m != n or args.positions is not None):
            kwargs["support_b"] = xb[:, 0]
        kwargs["p"] = 1.0 if args.p is None else args.p
        params.update(p=kwargs["p"], positions=args.positions)
    elif method == "cdf":
        kwargs["rho"] = args.rho
        params["rho"] = args.rho
        if args.positions is not None:
            x = _positions(n, args, names[0])
            if x.shape[1] != 1 or np.any(np.diff(x[:, 0]) < 0):
                raise InputError(
                    f"{args.positions}: --method cdf needs increasing positions on a line, one per bin"
                )
            kwargs["spacing"] = np.diff(x[:, 0])
            params["positions"] = args.positions
    else:  # tree
        parent, weight = _read_tree(args.tree, n)
        from otcore._tree import compile_tree

        try:
            tree = compile_tree(parent, weight)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{args.tree}: {exc}") from None
        kwargs["rho"] = args.rho
        params.update(tree=args.tree, rho=args.rho)
    if args.normalize:
        params["normalize"] = True

    a = A.values
    if args.pairwise:
        b = None if B is None else B.values
        D = pairwise_distances(
            a,
            b,
            M,
            method=method,
            reg=args.reg,
            tree=tree,
            chunk_size=args.chunk_size,
            progress=not args.quiet,
            **kwargs,
        )
        D = np.asarray(D)
    else:
        b = B.values
        if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
            raise InputError(
                f"{A.path} has {a.shape[0]} histograms and {B.path} has {b.shape[0]}; compare row i "
                "with row i (same number of rows), one row with many, or pass --pairwise for all pairs"
            )
        N = max(a.shape[0], b.shape[0])
        a = np.broadcast_to(a, (N, n))
        b = np.broadcast_to(b, (N, m))
        kernel = _make_kernel(method, np, M, args.reg, tree, kwargs, n, m)
        D = np.asarray(kernel(np.ascontiguousarray(a), np.ascontiguousarray(b)), dtype=np.float64)
        D = np.reshape(D, (N,))

    if args.output is not None:
        if args.output.lower().endswith(".npy"):
            np.save(args.output, D)
        else:
            np.savetxt(args.output, np.atleast_1d(D), delimiter="," if args.output.lower().endswith(".csv") else " ", fmt="%.17g")
    if args.json:
        out = {
            "distances": D.tolist(),
            "method": method,
            "params": params,
            "a": args.a,
            "b": args.b,
            "shape": list(D.shape),
            "pairwise": bool(args.pairwise),
        }
        if args.output is not None:
            out["output"] = args.output
        print(json.dumps(out))
    elif args.output is not None:
        print(f"wrote {' x '.join(map(str, D.shape))} distances ({method}) to {args.output}")
    elif D.ndim == 2:
        for row in D:
            print(" ".join(f"{v:.10g}" for v in row))
    else:
        for v in D:
            print(f"{v:.10g}")
    return 0


# --------------------------------------------------------------------------------------
# demo


def _fmt(x) -> str:
    return np.array2string(np.asarray(x, dtype=np.float64), precision=3, suppress_small=True, floatmode="fixed")


def demo(out=None) -> int:
    """Print a short tour of every family of otcore (a few seconds)."""
    out = sys.stdout if out is None else out

    def say(*lines):
        for line in lines:
            print(line, file=out)

    t0 = time.perf_counter()
    from otcore._cost import ordinal_cost
    from otcore._exact import emd, emd2
    from otcore._onedim import cdf_emd, wasserstein_1d
    from otcore._pairwise import pairwise_distances
    from otcore._sinkhorn import sinkhorn
    from otcore._tree import tree_emd, tree_metric

    a = np.array([0.4, 0.3, 0.2, 0.1, 0.0])
    b = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    M = np.asarray(ordinal_cost(5))
    say(
        "otcore demo: optimal-transport distances between histograms",
        "=" * 62,
        "Two histograms over 5 ordered classes (say, ratings 1..5):",
        f"  a = {_fmt(a)}",
        f"  b = {_fmt(b)}",
        "Ground cost M[i, j] = |i - j| (ordinal_cost(5)): moving one unit of mass",
        "one class further costs 1.",
        "",
        "1. Exact EMD (otcore.emd): the Kantorovich linear program",
    )
    r = emd(a, b, M)
    f, g = np.asarray(r.f), np.asarray(r.g)
    viol = float(np.max(f[:, None] + g[None, :] - M))
    say(
        f"   W(a, b) = {float(r.cost):.4f}   (method {r.method!r})",
        "   optimal plan P (rows: from a, columns: to b):",
        *("     " + _fmt(row) for row in np.asarray(r.plan)),
        "   certificate: dual potentials f, g with f_i + g_j <= M_ij everywhere",
        f"     max(f_i + g_j - M_ij) = {viol:+.1e}   (<= 0: feasible)",
        f"     <a, f> + <b, g>      = {float(a @ f + b @ g):.4f}  (= W: optimal)",
        "",
        "2. Sinkhorn distance (otcore._sinkhorn): entropic regularisation, K = exp(-M / reg)",
    )
    for reg in (1.0, 0.1, 0.02):
        s = sinkhorn(a, b, M, reg)
        say(
            f"   reg = {reg:<5}  <P, M> = {float(s.cost):.4f}   converged = {bool(s.converged)} "
            f"after {int(s.n_iter)} iterations"
        )
    s = sinkhorn(a, b, M, 0.1)
    grad = np.asarray(s.grad)
    say(
        "   -> approaches the exact EMD as reg -> 0.",
        f"   Frogner gradient of the loss w.r.t. a (reg 0.1): {_fmt(grad)}",
        f"   (sums to {float(grad.sum()):+.1e}: defined up to a constant on the simplex;",
        "    negative where a should gain mass, i.e. the classes b prefers)",
        "",
        "3. 1D EMD (otcore.wasserstein_1d): closed form from sorted samples / quantiles",
    )
    u, v = np.array([0.0, 1.0, 3.0]), np.array([5.0, 6.0, 8.0])
    say(
        f"   samples {u.tolist()} vs {v.tolist()}:  W1 = {float(wasserstein_1d(u, v)):.4f}, "
        f"W2^2 = {float(wasserstein_1d(u, v, p=2)):.4f}",
    )
    x = np.arange(5.0)
    say(
        f"   a, b as weights on positions 0..4: W1 = {float(wasserstein_1d(x, x, a, b)):.4f} "
        "(= the exact EMD above)",
        "",
        "4. CDF EMD (otcore.cdf_emd): sum_i |CDF_a(i) - CDF_b(i)|^rho on an ordered support",
        f"   rho = 1: {float(cdf_emd(a, b)):.4f}   (the EMD on the line, O(n))",
        f"   rho = 2: {float(cdf_emd(a, b, rho=2)):.4f}   (Hou et al.'s squared EMD for ordinal classes)",
        "",
        "5. Tree EMD (otcore.tree_emd): sum over edges of length * |mass below the edge|",
    )
    #        0
    #      /   \
    #     1     2
    #    / \   / \
    #   3   4 5   6
    parent = np.array([-1, 0, 0, 1, 1, 2, 2])
    weight = np.array([0.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0])
    ta = np.array([0, 0, 0, 0.5, 0.5, 0, 0])
    tb = np.array([0, 0, 0, 0.5, 0, 0.5, 0])
    tw = float(tree_emd(ta, tb, parent, weight))
    tl = float(emd2(ta, tb, np.asarray(tree_metric(parent, weight))))
    say(
        "   a 7-node binary tree (root 0, children 1 and 2 at length 2, leaves at length 1);",
        "   half of the mass moves from leaf 4 to leaf 5 along a path of length",
        "   1 + 2 + 2 + 1 = 6, so the cost is 0.5 * 6:",
        f"   tree EMD = {tw:.4f},  exact EMD under the tree metric = {tl:.4f}",
        "",
        "6. Pairwise matrices (otcore.pairwise_distances): all pairs, chunked and batched",
    )
    H = np.array(
        [
            [0.60, 0.20, 0.10, 0.05, 0.05],
            [0.20, 0.40, 0.20, 0.10, 0.10],
            [0.20, 0.20, 0.20, 0.20, 0.20],
            [0.05, 0.05, 0.10, 0.20, 0.60],
        ]
    )
    say("   4 histograms (rows):", *("     " + _fmt(h) for h in H), "   exact EMD between every pair:")
    for row in np.asarray(pairwise_distances(H, M=M)):
        say("     " + _fmt(row))
    Ds = np.asarray(pairwise_distances(H, M=M, method="sinkhorn", reg=0.5))
    say("   Sinkhorn distances (reg 0.5, the 6 pairs of the upper triangle in one batched call):")
    for row in Ds:
        say("     " + _fmt(row))
    say(
        "   (slightly above the exact values: the entropic blur)",
        "",
        f"done in {time.perf_counter() - t0:.2f} s.  Next: `otcore distance --help`, and the docs.",
    )
    return 0


# --------------------------------------------------------------------------------------
# argument parsing


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="otcore",
        description="Optimal-transport distances between histograms.",
        epilog="Exit status: 0 success, 2 usage or input error.",
    )
    sub = p.add_subparsers(dest="command", metavar="{distance,demo}")
    sub.required = True
    sub.add_parser("demo", help="a short demonstration of every family (a few seconds)")
    d = sub.add_parser(
        "distance",
        help="distances between histograms read from files",
        description=(
            "Distances between the histograms (one per row) of files A and B (.npy, .csv, .txt). "
            "Row i of A is compared with row i of B (a single-row file with every row of the "
            "other); --pairwise gives the full matrix (all pairs within A if B is omitted). "
            "Without --cost, bins sit at positions 0..k-1 on a line (--grid: a d x d grid, "
            "row-major; --positions FILE: one line of coordinates per bin) and --metric turns "
            "positions into the ground cost (ordinal: |i-j|**p on the line)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d.add_argument("a", metavar="A", help="histograms, one per row (.npy, .csv or .txt)")
    d.add_argument("b", metavar="B", nargs="?", default=None, help="second file (optional with --pairwise)")
    c = d.add_mutually_exclusive_group()
    c.add_argument("--cost", metavar="FILE", help="ground cost matrix, (bins of A) x (bins of B)")
    c.add_argument("--metric", choices=_METRICS, default=None, help="ground cost from bin positions (default euclidean)")
    d.add_argument("--p", type=float, default=None, help="exponent: ordinal |i-j|**p, minkowski p, 1d W_p^p")
    d.add_argument("--grid", action="store_true", help="k = d*d bins form a d x d grid (row-major)")
    d.add_argument("--positions", metavar="FILE", help="coordinates of the bins, one line per bin")
    d.add_argument("--method", choices=_METHODS, default=None,
                   help="exact LP, Sinkhorn, 1D closed form, CDF (squared) EMD, tree EMD "
                   "(default: tree with --tree, sinkhorn with --reg, else exact)")
    d.add_argument("--reg", type=float, default=None, help="Sinkhorn regularisation (K = exp(-M/reg))")
    d.add_argument("--n-iter", type=int, default=None, help="Sinkhorn: fixed number of iterations")
    d.add_argument("--tol", type=float, default=None, help="Sinkhorn: marginal tolerance (default the library's)")
    d.add_argument("--rho", type=float, default=1.0, help="cdf/tree exponent (2: squared EMD)")
    d.add_argument("--tree", metavar="FILE", help="tree: one line per node, 'parent [edge length]', -1 for the root")
    d.add_argument("--normalize", action="store_true", help="divide each histogram by its total mass")
    d.add_argument("--pairwise", action="store_true", help="all pairs of rows (full matrix)")
    d.add_argument("--chunk-size", type=int, default=None, help="pairs per batched call (--pairwise)")
    d.add_argument("--output", metavar="FILE", help="write the distances to FILE (.npy, .csv or .txt)")
    d.add_argument("--json", action="store_true", help="print a JSON object {distances, method, params, ...}")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m otcore`` and the ``otcore`` script; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else 2
    try:
        if args.command == "demo":
            return demo()
        return _distance(args)
    except (ValueError, TypeError) as exc:  # InputError and the library's own messages
        print(f"otcore: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `otcore distance ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
