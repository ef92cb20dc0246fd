"""asv benchmarks: ground costs (``otcore.cost_matrix``) against POT's ``ot.dist``.

Random points in the unit cube of dimension 8, ``n x n`` costs, float64 and
float32. ``track_ratio_vs_pot`` is ``time(otcore) / time(POT)`` measured in
one process, interleaved, best of several repeats (below 1: otcore faster).
POT's ``ot.dist`` uses the same GEMM expansion for (sq)euclidean and
``scipy.spatial.distance.cdist`` for the other metrics.
"""


import numpy as np

from benchmarks._timing import interleaved_ratio
from otcore._cost import cost_matrix

try:
    import ot
except ImportError:  # pragma: no cover - POT is in the bench extra
    ot = None

METRICS = ["sqeuclidean", "euclidean", "cityblock", "chebyshev", "cosine", "minkowski"]
DIM = 8
P = 3  # order of the minkowski case


def _points(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, DIM)).astype(dtype)
    y = rng.random((n, DIM)).astype(dtype)
    return x, y


def _ours(x, y, metric):
    return cost_matrix(x, y, metric=metric, p=P)


def _pot(x, y, metric):
    if metric == "minkowski":
        return ot.dist(x, y, metric=metric, p=P)
    return ot.dist(x, y, metric=metric)


class TimeCostMatrix:
    params = (METRICS, [1000, 4000], ["float64", "float32"])
    param_names = ["metric", "n", "dtype"]
    timeout = 300

    def setup(self, metric, n, dtype):
        self.x, self.y = _points(n, np.dtype(dtype))

    def time_cost_matrix(self, metric, n, dtype):
        _ours(self.x, self.y, metric)

    def time_pot_dist(self, metric, n, dtype):
        if ot is None:
            raise NotImplementedError("POT not installed")
        _pot(self.x, self.y, metric)

    def track_ratio_vs_pot(self, metric, n, dtype):
        if ot is None:
            raise NotImplementedError("POT not installed")
        return interleaved_ratio(
            lambda: _ours(self.x, self.y, metric),
            lambda: _pot(self.x, self.y, metric),
            repeat=5 if n <= 1000 else 3,
        )

    track_ratio_vs_pot.unit = "ratio"


class TimeCostMatrixClustered:
    """Worst family for the GEMM metrics: two tight clusters far from the common centre.

    Half of the pairs are close against their norms, so whole row blocks are
    recomputed directly (``cdist``) after the GEMM.
    """

    params = (["sqeuclidean", "euclidean"], [4000])
    param_names = ["metric", "n"]
    timeout = 300

    def setup(self, metric, n):
        rng = np.random.default_rng(0)
        side = lambda: np.where(rng.random((n, 1)) < 0.5, -100.0, 100.0)  # noqa: E731
        self.x = side() + 0.01 * rng.random((n, DIM))
        self.y = side() + 0.01 * rng.random((n, DIM))

    def track_ratio_vs_pot(self, metric, n):
        if ot is None:
            raise NotImplementedError("POT not installed")
        return interleaved_ratio(
            lambda: cost_matrix(self.x, self.y, metric=metric),
            lambda: ot.dist(self.x, self.y, metric=metric),
            repeat=3,
        )

    track_ratio_vs_pot.unit = "ratio"


class TimeCostMatrixSelf:
    """``y=None``: symmetric output with an exact zero diagonal (extra passes)."""

    params = (["sqeuclidean", "euclidean", "cosine"], [1000, 4000])
    param_names = ["metric", "n"]

    def setup(self, metric, n):
        self.x, _ = _points(n, np.float64)

    def time_cost_matrix_self(self, metric, n):
        cost_matrix(self.x, metric=metric)


class MemCostMatrix:
    """Peak memory at n = m = 4000 (the output alone is 128 MB in float64)."""

    params = (METRICS,)
    param_names = ["metric"]

    def setup(self, metric):
        self.x, self.y = _points(4000, np.float64)

    def peakmem_cost_matrix(self, metric):
        _ours(self.x, self.y, metric)

    def peakmem_pot_dist(self, metric):
        if ot is None:
            raise NotImplementedError("POT not installed")
        _pot(self.x, self.y, metric)
