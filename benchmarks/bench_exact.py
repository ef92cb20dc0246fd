"""asv benchmarks of the exact EMD (otcore._exact, the network simplex) against POT's.

Problem families (``family(name, n)``, seeded, random positive histograms):

- ``"uniform2d"``: uniform points in the unit square, Euclidean cost (overlapping);
- ``"shifted_w1"``: two 2-D Gaussian clouds 4 standard deviations apart, Euclidean;
- ``"shifted_sq3d"``: 3-D Gaussian clouds 3 apart, squared Euclidean;
- ``"highdim"``: 50-D Gaussian clouds, squared Euclidean;
- ``"ties"``: costs drawn from {0, 1, 2} (massive degeneracy);
- ``"rect1d"``: n x n/2 histograms on sorted points of a line, ``|t_i - s_j|``
  (a Monge cost: "auto" certifies the north-west corner plan).

The ``track_*`` benchmarks return time ratios otcore / POT measured in one process,
interleaved, min of several repeats, so they are meaningful on a shared machine
(lower is better; the target is <= 1).
"""

import numpy as np

from benchmarks._problems import histograms
from benchmarks._timing import interleaved_ratio
from otcore._exact import emd, emd2

try:
    import ot
except ImportError:  # pragma: no cover - POT is in the bench extra
    ot = None

FAMILIES = ["uniform2d", "shifted_w1", "shifted_sq3d", "highdim", "ties", "rect1d"]


def _dist(x, y, p):
    d = np.sqrt(np.maximum(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1), 0.0))
    return d**p


def family(name, n, seed=0):
    """``(a, b, M)`` of problem family ``name`` with n sources (float64)."""
    rng = np.random.default_rng(seed)
    if name == "uniform2d":
        M = _dist(rng.random((n, 2)), rng.random((n, 2)), 1)
    elif name == "shifted_w1":
        M = _dist(rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + 4.0, 1)
    elif name == "shifted_sq3d":
        M = _dist(rng.normal(size=(n, 3)), rng.normal(size=(n, 3)) + 3.0, 2)
    elif name == "highdim":
        M = _dist(rng.normal(size=(n, 50)), rng.normal(size=(n, 50)), 2)
    elif name == "ties":
        M = rng.integers(0, 3, size=(n, n)).astype(np.float64)
    elif name == "rect1d":
        M = _dist(np.sort(rng.random(n))[:, None], np.sort(rng.random(n // 2))[:, None], 1)
    else:
        raise ValueError(name)
    a = histograms(rng, (M.shape[0],))
    b = histograms(rng, (M.shape[1],))
    return a, b, np.ascontiguousarray(M)


class TimeEMD:
    """emd2 (auto) by family and size."""

    params = ([100, 1000, 3000], FAMILIES)
    param_names = ["n", "family"]
    timeout = 600

    def setup(self, n, name):
        self.a, self.b, self.M = family(name, n)
        emd2(self.a[:2] / self.a[:2].sum(), self.b[:2] / self.b[:2].sum(), self.M[:2, :2])  # compile

    def time_emd2(self, n, name):
        emd2(self.a, self.b, self.M)


class TrackRatioVsPOT:
    """Time of emd2 (auto) over POT's ot.emd2, per family and size (target <= 1)."""

    params = ([100, 1000, 3000], FAMILIES)
    param_names = ["n", "family"]
    timeout = 900

    def setup(self, n, name):
        if ot is None:
            raise NotImplementedError("POT not installed")
        self.a, self.b, self.M = family(name, n)
        emd2(self.a, self.b, self.M)  # compile / load the kernel

    def track_auto_over_pot(self, n, name):
        a, b, M = self.a, self.b, self.M
        reps = 7 if n <= 100 else 3 if n <= 1000 else 1
        k = 20 if n <= 100 else 1
        return interleaved_ratio(
            lambda: emd2(a, b, M), lambda: ot.emd2(a, b, M, numItermax=10**9), repeat=reps, number_f=k, number_g=k
        )

    track_auto_over_pot.unit = "ratio"


class TimeEMDPlan:
    """emd with the dense plan and the certificate."""

    params = [400, 1000]
    param_names = ["n"]

    def setup(self, n):
        self.a, self.b, self.M = family("uniform2d", n)
        emd2(self.a, self.b, self.M)

    def time_emd_plan(self, n):
        res = emd(self.a, self.b, self.M)
        res.plan  # noqa: B018 - build the dense plan


class TrackSpeedupOverLinprog:
    """Speed-up of emd2 (auto) over the full LP in HiGHS, the reference (higher is better)."""

    params = [200]
    param_names = ["n"]
    timeout = 300

    def setup(self, n):
        self.a, self.b, self.M = family("uniform2d", n)
        emd2(self.a, self.b, self.M)

    def track_linprog_over_auto(self, n):
        a, b, M = self.a, self.b, self.M
        return interleaved_ratio(lambda: emd2(a, b, M, method="linprog"), lambda: emd2(a, b, M), repeat=3)

    track_linprog_over_auto.unit = "ratio"


class TrackBatchRatioVsPOT:
    """2000 pairs of 32-bin histograms in one batched call over a Python loop of ot.emd2
    (target <= 0.2, i.e. >= 5x faster): ``line`` is |x_i - x_j| on a line (Monge),
    ``grid`` the Euclidean cost of 32 random points in the plane (pivots needed)."""

    params = ["line", "grid"]
    param_names = ["cost"]
    timeout = 300

    def setup(self, cost):
        if ot is None:
            raise NotImplementedError("POT not installed")
        rng = np.random.default_rng(1)
        if cost == "line":
            x = np.linspace(0.0, 1.0, 32)[:, None]
        else:
            x = rng.random((32, 2))
        self.M = _dist(x, x, 1)
        self.A = histograms(rng, (2000, 32))
        self.B = histograms(rng, (2000, 32))
        emd2(self.A[:2], self.B[:2], self.M)

    def time_emd2_batch(self, cost):
        emd2(self.A, self.B, self.M)

    def track_batch_over_pot_loop(self, cost):
        A, B, M = self.A, self.B, self.M
        return interleaved_ratio(
            lambda: emd2(A, B, M), lambda: [ot.emd2(A[i], B[i], M) for i in range(len(A))], repeat=3
        )

    track_batch_over_pot_loop.unit = "ratio"
