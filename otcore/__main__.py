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
``--metric ordinal`` is ``|i - j|**p`` on the line (the ordinal cost of
Dhariwal & Inala). Exit status: 0 on success, 2 on usage or input errors
(the message names the file, the line and the fix; nothing is computed or
written), 1 when the computation fails (a non-finite distance) or on an
internal error (a traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import csv
import sys
import time

import numpy as np

from otcore import __version__
from otcore._validate import check_cost, check_histograms, check_int, check_power, check_scalar

__all__ = ["main", "InputError", "ComputationError", "read_histograms", "read_matrix"]

_EQUAL_MASS = ("exact", "sinkhorn", "cdf", "tree")
_METHODS = ("exact", "sinkhorn", "1d", "cdf", "tree")
_METRICS = ("ordinal", "euclidean", "sqeuclidean", "cityblock", "chebyshev", "minkowski", "cosine")


class InputError(ValueError):
    """Bad input file or option: printed as ``otcore: error: ...``, exit status 2.

    Raised before anything is computed or written."""


class ComputationError(RuntimeError):
    """The computation failed on valid input (a non-finite distance) or its result
    could not be written: printed as ``otcore: error: ...``, exit status 1."""


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


_TEXT_EXT = (".csv", ".txt", ".tsv", ".dat")
_INPUT_EXT = (".npy",) + _TEXT_EXT
_OUTPUT_EXT = {".npy": None, ".csv": ",", ".tsv": "\t", ".txt": " "}  # extension -> delimiter
_SEPARATORS = {";": "semicolons", ",": "commas", "\t": "tabs", None: "spaces"}


def _ext(path: str) -> str:
    """The extension of ``path``, lower case (``D.NPY`` -> ``.npy``)."""
    return os.path.splitext(path)[1].lower()


def _check_input_path(path: str, what: str) -> None:
    """An existing, readable regular file with a known extension (checked before any reading)."""
    if not os.path.exists(path):
        raise InputError(f"{what} file {path!r} does not exist")
    if os.path.isdir(path):
        raise InputError(f"{what} file {path!r} is a directory; give a .npy, .csv or .txt file")
    ext = _ext(path)
    if ext not in _INPUT_EXT:
        raise InputError(
            f"{path}: unknown file type {ext or '(no extension)'!r}; use .npy, .csv, .tsv or .txt "
            "(one row per line)"
        )
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read {what} file {path!r}: permission denied")


def _check_output_path(path: str, inputs: list[tuple[str, str]]) -> None:
    """``--output``: a known extension, an existing writable folder, not a directory and
    not one of the ``inputs`` ((option, path) pairs). Checked before anything is computed."""
    ext = _ext(path)
    if os.path.isdir(path):
        raise InputError(
            f"--output {path!r} is a directory; give a file name in it, e.g. "
            f"{os.path.join(path, 'distances' + (ext if ext in _OUTPUT_EXT else '.npy'))!r}"
        )
    if ext not in _OUTPUT_EXT:
        raise InputError(
            f"--output {path!r}: unknown file type {ext or '(no extension)'!r}; write to a .npy, .csv, "
            ".tsv or .txt file (the extension, in any case, picks the format)"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"--output {path!r}: the folder {folder!r} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"--output {path!r}: cannot write in the folder {folder!r} (permission denied)")
    if os.path.exists(path):
        for flag, inp in inputs:
            if os.path.samefile(path, inp):
                raise InputError(
                    f"--output {path!r} is the input file {flag} {inp!r}; refusing to write over an "
                    "input: choose another output file"
                )


def _read_npy(path: str, what: str) -> _Table:
    try:
        x = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError, OSError, EOFError, ... for a bad file
        raise InputError(f"{path}: cannot read as a .npy array ({exc}); save it with numpy.save") from None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
        raise InputError(f"{path}: holds {getattr(x, 'dtype', type(x).__name__)} values; {what} must be real numbers")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise InputError(f"{path}: array of shape {x.shape}; {what} must be 2-D (one row per line) or 1-D")
    if x.shape[0] == 0:
        raise InputError(f"{path}: array of shape {x.shape} has no rows; {what} needs at least one row")
    if x.shape[1] == 0:
        raise InputError(f"{path}: array of shape {x.shape} has rows of 0 values; each row needs at least one")
    return _Table(path, np.asarray(x, dtype=np.float64), None)


def _separator(line: str):
    """The field separator of a text file, from its first non-blank line: semicolon,
    comma, tab, else runs of spaces (``None``)."""
    for sep in (";", ",", "\t"):
        if sep in line:
            return sep
    return None


def _fields(line: str, sep) -> list[str]:
    """The fields of one line (comment and surrounding blanks removed), read by :mod:`csv`."""
    if sep is None:
        return line.split()
    fields = [f.strip() for f in next(csv.reader([line], delimiter=sep, skipinitialspace=True))]
    if len(fields) > 1 and fields[-1] == "":
        fields.pop()  # a trailing separator
    return fields


def _read_text(path: str, what: str) -> _Table:
    """Rows of numbers from a delimited text file (.csv, .tsv, .txt, .dat).

    UTF-8 with or without a byte-order mark; the separator (``;``, ``,``, tab or
    spaces) is that of the first non-blank line, whatever the extension. Blank
    lines, ``#`` comments and header lines before the first row are skipped.
    """
    rows: list[list[float]] = []
    lines: list[int] = []
    sep = None
    seen = False
    try:
        f = open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"cannot open {what} file {path!r}: {exc.strerror}") from None
    with f:
        try:
            for lineno, raw in enumerate(f, 1):
                line = raw.split("#", 1)[0].strip()
                if not line:
                    continue
                if not seen:
                    sep, seen = _separator(line), True
                toks = _fields(line, sep)
                try:
                    vals = [float(t) for t in toks]
                except ValueError:
                    bad = [k for k, t in enumerate(toks) if _parse_float(t) is None]
                    if not rows and len(bad) == len(toks):
                        continue  # a header line
                    col = bad[0]
                    if toks[col] == "":
                        raise InputError(
                            f"{path}, line {lineno}, column {col + 1}: empty field; write a number "
                            "(0 for an empty bin) in every column"
                        ) from None
                    raise InputError(
                        f"{path}, line {lineno}, column {col + 1}: cannot read {toks[col]!r} as a number; "
                        f"each line must hold numbers separated by {_SEPARATORS[sep]} (the separator "
                        "of the file's first line)"
                    ) from None
                if rows and len(vals) != len(rows[0]):
                    raise InputError(
                        f"{path}, line {lineno}: {len(vals)} value{'s' if len(vals) != 1 else ''}, but line "
                        f"{lines[0]} has {len(rows[0])}; every row must be one histogram with the same "
                        "number of bins (ragged rows)"
                    )
                rows.append(vals)
                lines.append(lineno)
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 "
                "text or as .npy"
            ) from None
    if not rows:
        raise InputError(f"{path}: no numbers found; write one row of numbers per line")
    return _Table(path, np.array(rows, dtype=np.float64), lines)


def _parse_float(tok: str) -> float | None:
    try:
        return float(tok)
    except ValueError:
        return None


def _read_table(path: str, what: str) -> _Table:
    """A 2-D float64 table from .npy, .csv, .tsv or .txt, with line numbers."""
    _check_input_path(path, what)
    return _read_npy(path, what) if _ext(path) == ".npy" else _read_text(path, what)


def _first(t: _Table, bad: np.ndarray, msg: str) -> None:
    """Raise at the first True entry of ``bad`` (file, line and column); ``msg`` is
    formatted with ``v``, the value."""
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(f"{t.where(i)}, column {j + 1}: " + msg.format(v=t.values[i, j]))


def read_histograms(path: str, *, name: str = "histograms") -> _Table:
    """Histograms (one per row) from ``path``, checked: finite, >= 0, not all zero.

    The verdict is :func:`otcore._validate.check_histograms`'s; this function
    only names the file, line and column of the first bad entry.
    """
    t = _read_table(path, name)
    x = t.values
    try:
        check_histograms(x, check_mass=False, names=(name, "B", "M"))
    except ValueError as exc:
        _first(t, ~np.isfinite(x), "{v} is not a finite mass; replace it with a number (0 for an empty bin)")
        _first(t, x < 0, "negative mass {v:g}; masses must be >= 0 (counts or probabilities)")
        zero = x.sum(1) <= 0
        if zero.any():
            raise InputError(
                f"{t.where(int(np.argmax(zero)))}: all-zero histogram; every row needs positive total "
                "mass (remove the row)"
            ) from None
        raise InputError(f"{path}: {exc}") from None
    return t


def read_matrix(path: str, *, name: str = "cost") -> _Table:
    """A finite, non-negative 2-D matrix (a ground cost) from ``path``
    (:func:`otcore._validate.check_cost`, with the file, line and column of the first bad entry)."""
    t = _read_table(path, name)
    try:
        check_cost(t.values, np, name=name)
    except ValueError as exc:
        _first(t, ~np.isfinite(t.values), f"{{v}} in the {name}; costs must be finite")
        _first(t, t.values < 0, f"negative {name} {{v:g}}; costs must be >= 0")
        raise InputError(f"{path}: {exc}") from None
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
        d = np.abs(np.arange(n, dtype=np.float64)[:, None] - np.arange(m, dtype=np.float64)[None, :])
        return np.where(d == 0, 0.0, d**p)  # p = 0: the 0-1 cost
    from otcore._cost import cost_matrix

    xa = _positions(n, args, names[0])
    xb = _positions(m, args, names[1])
    kw = {"metric": metric}
    if metric == "minkowski":
        kw["p"] = 2.0 if args.p is None else args.p
    try:
        return np.asarray(cost_matrix(xa, xb, **kw), dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"--metric {metric}: {exc}") from None


# --------------------------------------------------------------------------------------
# distance


def _check_mass(tables) -> None:
    """Every row of every table has the total mass of the first row of the first.

    The verdict (and its tolerance) is :func:`otcore._validate.check_histograms`'s;
    this only names the file and line of the row that is furthest off.
    """
    ref_t = tables[0]
    ref = ref_t.values[0]
    for t in tables:
        try:
            check_histograms(ref, t.values)
        except ValueError:
            s, r = t.values.sum(1), ref.sum()
            i = int(np.argmax(np.abs(s - r) / np.maximum(s, r)))
            raise InputError(
                f"{t.where(i)} sums to {s[i]:.10g} but {ref_t.where(0)} sums to {r:.10g}; this "
                "method compares histograms of equal total mass: pass --normalize to divide each "
                "row by its total, or fix the file"
            ) from None


def _option(check, *args, hint: str = "", **kwargs):
    """A library scalar check (``check_power`` / ``check_scalar`` / ``check_int``) whose
    ValueError is an input error naming the option (and ``hint``)."""
    try:
        return check(*args, **kwargs)
    except ValueError as exc:
        raise InputError(f"{exc}{hint}") from None


def _check_options(args, method: str) -> None:
    """Options that fit together and numbers in range, before any file is read."""
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
    metric = args.metric or ("euclidean" if method in ("exact", "sinkhorn") and args.cost is None else None)
    if args.p is not None:
        if method == "1d" or metric == "minkowski":
            what = "the 1D cost |x - y|**p" if method == "1d" else "the Minkowski distance"
            _option(check_power, "--p", args.p, reason=f"{what} is a transport cost only for p >= 1")
        elif metric == "ordinal":
            _option(check_scalar, "--p", args.p, nonneg=True,
                    hint="; --metric ordinal is the cost abs(i - j)**p (p = 0: every mistake costs 1)")
        else:
            raise InputError(
                "--p is the exponent of --metric ordinal, of --metric minkowski and of --method 1d; "
                + (f"it is not used by --metric {metric}" if metric else f"it is not used by --method {method}")
                + (" (the cost file is used as it is)" if args.cost is not None else "")
            )
    if method in ("cdf", "tree"):
        _option(check_power, "--rho", args.rho,
                reason=f"--method {method} sums abs(difference)**rho, a transport cost only for rho >= 1 (2: the squared EMD)")
    elif args.rho != 1.0:
        raise InputError(f"--rho is the exponent of --method cdf and --method tree, not of --method {method}")
    if args.n_iter is not None:
        _option(check_int, "--n-iter", args.n_iter, minimum=1)
    if args.tol is not None:
        _option(check_scalar, "--tol", args.tol, nonneg=True)
    if method != "sinkhorn" and (args.n_iter is not None or args.tol is not None):
        raise InputError(f"--n-iter and --tol set Sinkhorn's iterations; they have no meaning with --method {method}")
    if args.chunk_size is not None:
        _option(check_int, "--chunk-size", args.chunk_size, minimum=1)


def _check_paths(args) -> None:
    """Every input exists and has a known format, and ``--output`` can be written
    without touching an input: all checked before anything is read or computed."""
    inputs = [
        (flag, path)
        for flag, path in (("A", args.a), ("B", args.b), ("--cost", args.cost),
                           ("--positions", args.positions), ("--tree", args.tree))
        if path is not None
    ]
    for flag, path in inputs:
        _check_input_path(path, {"A": "A", "B": "B"}.get(flag, flag.lstrip("-")))
    if args.output is not None:
        _check_output_path(args.output, inputs)


def _check_finite(D: np.ndarray, method: str) -> None:
    """Distances must be finite: a NaN or inf is a failed computation, never a result."""
    bad = ~np.isfinite(D)
    if bad.any():
        idx = tuple(int(k) for k in np.argwhere(bad)[0])
        where = f"row {idx[0]}" if len(idx) == 1 else f"row {idx[0]}, column {idx[1]}"
        hint = (
            "Sinkhorn failed, most likely because --reg is too small for these costs: "
            "increase --reg, or use --method exact"
            if method == "sinkhorn"
            else "please report this with the input files"
        )
        raise ComputationError(
            f"{int(bad.sum())} of {D.size} distances are not finite (the first, {where}, is "
            f"{D[idx]}); {hint}. Nothing was written"
        )


def _write(path: str, D: np.ndarray) -> None:
    """``D`` to exactly ``path``, in the format of its extension (any case)."""
    ext = _ext(path)
    try:
        with open(path, "wb") as f:
            if ext == ".npy":
                np.save(f, D)  # to a file object: no ".npy" appended to the name
            else:
                np.savetxt(f, np.atleast_1d(D), delimiter=_OUTPUT_EXT[ext], fmt="%.17g")
    except OSError as exc:
        raise ComputationError(f"cannot write --output {path!r}: {exc.strerror}") from None


def _distance(args) -> int:
    from otcore._pairwise import _make_kernel, pairwise_distances

    method = args.method
    if method is None:
        method = "tree" if args.tree is not None else "sinkhorn" if args.reg is not None else "exact"
    _check_options(args, method)
    _check_paths(args)

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
    if B is not None and not args.pairwise:
        na, nb = A.values.shape[0], B.values.shape[0]
        if na != nb and 1 not in (na, nb):
            raise InputError(
                f"{A.path} has {na} histograms and {B.path} has {nb}; compare row i "
                "with row i (same number of rows), one row with many, or pass --pairwise for all pairs"
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
        except ValueError as exc:
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
        N = max(a.shape[0], b.shape[0])
        a = np.broadcast_to(a, (N, n))
        b = np.broadcast_to(b, (N, m))
        kernel = _make_kernel(method, np, M, args.reg, tree, kwargs, n, m)
        D = np.asarray(kernel(np.ascontiguousarray(a), np.ascontiguousarray(b)), dtype=np.float64)
        D = np.reshape(D, (N,))

    _check_finite(D, method)
    if args.output is not None:
        _write(args.output, D)
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
        print(json.dumps(out, allow_nan=False))
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
        epilog="Exit status: 0 success, 1 failed computation or internal error, 2 usage or input error.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
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
    d.add_argument("--output", metavar="FILE", help="write the distances to FILE (.npy, .csv, .tsv or .txt, any case)")
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
    except InputError as exc:  # checked before computing: nothing was computed or written
        print(f"otcore: error: {exc}", file=sys.stderr)
        return 2
    except ComputationError as exc:
        print(f"otcore: error: {exc}", file=sys.stderr)
        return 1
    # anything else (a TypeError, a ValueError from inside a solver) is a bug: it
    # propagates with its traceback and Python's exit status 1
    except BrokenPipeError:  # e.g. `otcore distance ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
