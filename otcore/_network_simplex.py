r"""Network simplex for dense transport problems, compiled C (private).

The transport problem :math:`\min \langle P, M\rangle` s.t. :math:`P 1 = a`,
:math:`P^\top 1 = b`, :math:`P \ge 0` is a minimum-cost flow on the complete
bipartite graph from the ``n`` sources to the ``m`` sinks. The network simplex
(Bonneel et al. 2011, after LEMON's implementation) keeps a *spanning tree* of
``n + m - 1`` basic arcs; the flows on the tree are fixed by the masses alone, so
they are obtained by exact additions and subtractions of masses (no feasibility
tolerance ever touches a mass), and the potentials by
:math:`f_i + g_j = M_{ij}` along the tree arcs.

Design:

* **Start**: the north-west corner rule (a spanning staircase tree). On a Monge
  matrix (:math:`M_{ij} + M_{i'j'} \le M_{ij'} + M_{i'j}` for :math:`i<i'`,
  :math:`j<j'`, e.g. :math:`|t_i - s_j|^p`, :math:`p \ge 1`, on sorted
  supports) it is already optimal (Hoffman 1963): the 1-D closed form.
* **Degeneracy**: Orden's perturbation, carried symbolically: every source gets
  :math:`+\delta` and the last sink :math:`+n\delta`, every flow is a pair
  ``(x, k)`` meaning :math:`x + k\delta`, and the leaving arc is the
  lexicographic minimum. Every basis is then non-degenerate in the perturbed
  problem, so the simplex cannot cycle (the same guarantee as LEMON's strongly
  feasible trees); the ``x`` parts are the exact flows.
* **Pricing**: LEMON's block search: scan about :math:`\sqrt{nm}` arcs from where
  the last scan stopped, enter the most negative reduced cost of the block. An arc
  enters only when its reduced cost is below minus a few ulps of the terms that
  make it, so rounding cannot make the simplex pivot forever.
* **Tree**: parent pointers, depths and doubly linked child lists; a pivot reverses
  the parent pointers on the path to the leaving arc and recomputes the potentials
  of the moved subtree *from the tree arcs* (never by accumulating increments).
* **Certificate** (in the same compiled call): marginal residuals of the plan, the
  largest dual violation :math:`\max_{ij} f_i + g_j - M_{ij}` over all of ``M``
  and the duality gap.

Zero bins are dropped per pair (their potentials are restored afterwards so that
the dual stays feasible on all of ``M``). One call solves a whole batch of pairs
sharing ``M``: no Python runs per pair.

The kernels are plain C (``otcore/_nsimplex.c``), built by setuptools at install
time as the extension module ``otcore._nsimplex``. Its two functions take numpy
arrays through the buffer protocol (no copy, about a microsecond per argument, far
below ctypes' pointer conversions, which dominated small problems), check every
item type, shape and plan index themselves, and release the GIL while they run.
Nothing is compiled at run time: a first call costs milliseconds.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

try:
    from otcore import _nsimplex
except ImportError as exc:  # pragma: no cover - an install without the built extension
    raise ImportError(
        "otcore's exact solver is a C extension (otcore._nsimplex) that is not built in "
        f"{os.path.dirname(os.path.abspath(__file__))}. In a source checkout, build it in place "
        "with python -m pip install -e . (a plain pip install . builds it only for the "
        "installed copy, which a checkout in the current directory shadows); elsewhere install "
        "otcore with a C compiler available."
    ) from exc

__all__ = ["certify", "solve_batch"]


def _f64(x):
    return np.ascontiguousarray(x, dtype=np.float64)


def solve_batch(A, B, M, *, max_iter=None):
    """Solve every pair ``(A[k], B[k])`` on the shared cost ``M`` (host float64 arrays).

    ``A`` (N, n) and ``B`` (N, m) nonnegative with equal row totals (each row with
    at least one positive entry), ``M`` (n, m) finite. Returns ``f`` (N, n) and ``g``
    (N, m), the potentials of the positive bins (NaN on zero bins), the tree arcs
    ``rows, cols, vals`` (N, n + m - 1; unused slots hold zero flow), the pivots (N,)
    and the status (N,): 0 optimal (no reduced cost below rounding level), 1
    ``max_iter`` pivots reached, 2 a row of ``A`` or ``B`` without a positive entry.
    """
    A = _f64(A)
    B = _f64(B)
    M = _f64(M)
    if A.ndim != 2 or B.ndim != 2 or M.ndim != 2:
        raise ValueError("solve_batch: A (N, n), B (N, m) and M (n, m) must be 2-D")
    N, n = A.shape
    m = B.shape[1]
    if B.shape[0] != N or M.shape != (n, m):
        raise ValueError(f"solve_batch: shapes A {A.shape}, B {B.shape}, M {M.shape} do not match")
    f = np.full((N, n), np.nan)
    g = np.full((N, m), np.nan)
    k = n + m - 1
    rows = np.zeros((N, max(k, 0)), dtype=np.int64)
    cols = np.zeros((N, max(k, 0)), dtype=np.int64)
    vals = np.zeros((N, max(k, 0)))
    info = np.zeros((N, 2), dtype=np.int64)
    if N and n and m:
        max_iter = 2**62 if max_iter is None else int(max_iter)
        # the pairs are independent and the C kernel releases the GIL: a batch is cut
        # into contiguous row blocks solved in parallel by a pool that lives for this call
        bounds = np.linspace(0, N, _workers(N) + 1).astype(int)

        def solve(k):
            s = slice(bounds[k], bounds[k + 1])
            _nsimplex.solve(A[s], B[s], M, max_iter, f[s], g[s], rows[s], cols[s], vals[s], info[s])

        if len(bounds) == 2:
            solve(0)
        else:
            with ThreadPoolExecutor(len(bounds) - 1) as pool:
                list(pool.map(solve, range(len(bounds) - 1)))
    return f, g, rows, cols, vals, info[:, 0], info[:, 1]


# a thread is started for at least this many pairs of a batch
_PAIRS_PER_THREAD = 64


def _workers(N: int) -> int:
    """Threads for a batch of ``N`` pairs: the usable cores, at least 64 pairs each."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, N // _PAIRS_PER_THREAD))


def certify(A, B, M, f, g, rows, cols, vals):
    """Potentials completed on zero bins and normalised (``f``, ``g`` in place), and
    ``(cost, max_violation, gap, residual)``, each (N,), for the plans ``(rows, cols,
    vals)`` (host arrays of shapes (N, n), (N, m), (n, m), (N, n), (N, m), (N, K) x 3,
    as returned by :func:`solve_batch`; ``f`` and ``g`` float64 C-contiguous)."""
    A = _f64(A)
    B = _f64(B)
    M = _f64(M)
    if A.ndim != 2 or B.ndim != 2:
        raise ValueError("certify: A (N, n) and B (N, m) must be 2-D")
    N, n = A.shape
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    vals = _f64(vals)
    # f and g are updated in place, so they are not converted: the C side rejects them
    # unless writeable, C-contiguous float64 of the right shapes; it also checks every
    # other shape and every plan index against M before it reads anything
    out = np.zeros((N, 4))
    if N and n and B.shape[1]:
        _nsimplex.certify(A, B, M, f, g, rows, cols, vals, out)
    return out[:, 0], out[:, 1], out[:, 2], out[:, 3]
