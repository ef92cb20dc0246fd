"""asv benchmarks of the exact EMD (otcore._exact) against POT's network simplex.

Problem: random 2-D points, Euclidean cost, random histograms, float64
(``benchmarks._problems.euclidean_problem``), the same problem for both sides.
The ``track_*`` benchmarks return time ratios measured in one process,
interleaved, min of several repeats, so they are meaningful on a shared machine.
"""


import numpy as np

from benchmarks._problems import euclidean_problem
from benchmarks._timing import interleaved_ratio
from otcore._exact import emd, emd2

try:
    import ot
except ImportError:  # pragma: no cover - POT is in the bench extra
    ot = None


class TimeEMD:
    """emd2 by method and size (the full LP only where it fits in seconds)."""

    params = ([100, 400, 1000, 2000], ["auto", "sparse", "linprog"])
    param_names = ["n", "method"]
    timeout = 300

    def setup(self, n, method):
        if method == "linprog" and n > 400:
            raise NotImplementedError("the full LP is the reference; too slow beyond n = 400")
        self.a, self.b, self.M = euclidean_problem(n)

    def time_emd2(self, n, method):
        emd2(self.a, self.b, self.M, method=method)


class TimeEMDUniform:
    """Uniform square problems (assignment path)."""

    params = ([100, 400], ["auto", "assignment", "sparse"])
    param_names = ["n", "method"]

    def setup(self, n, method):
        _, _, self.M = euclidean_problem(n)
        self.a = np.full(n, 1.0 / n)

    def time_emd2(self, n, method):
        emd2(self.a, self.a, self.M, method=method)


class TimeEMDPlan:
    """emd with the dense plan and the certificate."""

    params = [400, 1000]
    param_names = ["n"]

    def setup(self, n):
        self.a, self.b, self.M = euclidean_problem(n)

    def time_emd_plan(self, n):
        res = emd(self.a, self.b, self.M)
        res.plan  # noqa: B018 - build the dense plan


class PeakMemSparse:
    """Peak memory of the sparse method on large problems (no dense constraint matrix)."""

    params = [2000, 5000]
    param_names = ["n"]
    timeout = 600

    def setup(self, n):
        self.a, self.b, self.M = euclidean_problem(n)

    def peakmem_emd2_sparse(self, n):
        emd2(self.a, self.b, self.M, method="sparse")


class TrackRatioVsPOT:
    """Time of emd2(method="auto") over POT's ot.emd2 (lower is better; target <= 10 at 1000)."""

    params = [400, 1000, 2000]
    param_names = ["n"]
    timeout = 300

    def setup(self, n):
        if ot is None:
            raise NotImplementedError("POT not installed")
        self.a, self.b, self.M = euclidean_problem(n)

    def track_auto_over_pot(self, n):
        a, b, M = self.a, self.b, self.M
        return interleaved_ratio(
            lambda: emd2(a, b, M), lambda: ot.emd2(a, b, M, numItermax=10**8), repeat=5 if n <= 1000 else 2
        )

    track_auto_over_pot.unit = "ratio"


class TrackSpeedupOverLinprog:
    """Speed-up of emd2(method="auto") over the full LP (higher is better; target >= 50 at 400)."""

    params = [400]
    param_names = ["n"]
    timeout = 300

    def setup(self, n):
        self.a, self.b, self.M = euclidean_problem(n)

    def track_linprog_over_auto(self, n):
        a, b, M = self.a, self.b, self.M
        return interleaved_ratio(lambda: emd2(a, b, M, method="linprog"), lambda: emd2(a, b, M), repeat=3)

    track_linprog_over_auto.unit = "ratio"


def _pairs(n, k, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.random((k, n))
    B = rng.random((k, n))
    return A / A.sum(1, keepdims=True), B / B.sum(1, keepdims=True)


class TrackSmallRatioVsPOT:
    """Small problems (the full-LP path of "auto" up to n*m = 3000): time of emd2 over a
    loop of distinct pairs over POT's ot.emd2 on the same pairs (lower is better)."""

    params = [8, 32, 100]
    param_names = ["n"]

    def setup(self, n):
        if ot is None:
            raise NotImplementedError("POT not installed")
        _, _, self.M = euclidean_problem(n)
        self.k = 40 if n <= 32 else 10
        self.A, self.B = _pairs(n, self.k)

    def time_emd2_loop(self, n):
        for i in range(self.k):
            emd2(self.A[i], self.B[i], self.M)

    def track_auto_over_pot(self, n):
        A, B, M, k = self.A, self.B, self.M, self.k

        def ours():
            for i in range(k):
                emd2(A[i], B[i], M)

        def pot():
            for i in range(k):
                ot.emd2(A[i], B[i], M)

        return interleaved_ratio(ours, pot, repeat=5)

    track_auto_over_pot.unit = "ratio"


class TrackBatchRatioVsPOT:
    """A batch of 200 pairs of 32-bin histograms (one model reused, only the masses
    change): batched emd2 over a Python loop of ot.emd2 (lower is better)."""

    def setup(self):
        if ot is None:
            raise NotImplementedError("POT not installed")
        x = np.linspace(0.0, 1.0, 32)
        self.M = np.abs(x[:, None] - x[None, :])
        self.A, self.B = _pairs(32, 200, seed=1)

    def time_emd2_batch(self):
        emd2(self.A, self.B, self.M)

    def track_batch_over_pot_loop(self):
        A, B, M = self.A, self.B, self.M
        return interleaved_ratio(
            lambda: emd2(A, B, M), lambda: [ot.emd2(A[i], B[i], M) for i in range(200)], repeat=3
        )

    track_batch_over_pot_loop.unit = "ratio"
