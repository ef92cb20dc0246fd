"""asv benchmarks for otcore._onedim: wasserstein_1d vs scipy / POT, cdf_emd batches.

``track_*`` methods return time ratios measured in the same process (interleaved,
min of repeats), so they stay meaningful on a shared machine:
``track_time_vs_scipy`` = t(otcore) / t(scipy.stats.wasserstein_distance)
(target <= 1.0 at 10^6 samples); ``track_speedup_vs_emd2`` = t(ot.emd2) / t(otcore).
"""


import numpy as np

from benchmarks._problems import histograms
from benchmarks._timing import interleaved_ratio
from otcore._onedim import cdf_emd, cdf_emd_grad, wasserstein_1d


def _samples(n, case, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=n)
    m = n if case == "equal" else n - n // 7
    v = rng.normal(size=m) + 0.3
    uw = rng.random(n) if case == "weighted" else None
    vw = rng.random(m) if case == "weighted" else None
    return u, v, uw, vw


class Wasserstein1D:
    params = ([10**4, 10**6], ["equal", "unequal", "weighted"])
    param_names = ["samples", "case"]
    timeout = 300

    def setup(self, n, case):
        self.u, self.v, self.uw, self.vw = _samples(n, case)

    def time_wasserstein_1d(self, n, case):
        wasserstein_1d(self.u, self.v, self.uw, self.vw)

    def time_wasserstein_1d_p2(self, n, case):
        wasserstein_1d(self.u, self.v, self.uw, self.vw, p=2)

    def time_scipy(self, n, case):
        import scipy.stats

        scipy.stats.wasserstein_distance(self.u, self.v, self.uw, self.vw)

    def peakmem_wasserstein_1d(self, n, case):
        wasserstein_1d(self.u, self.v, self.uw, self.vw)

    def track_time_vs_scipy(self, n, case):
        import scipy.stats

        return interleaved_ratio(
            lambda: wasserstein_1d(self.u, self.v, self.uw, self.vw),
            lambda: scipy.stats.wasserstein_distance(self.u, self.v, self.uw, self.vw),
            repeat=3,
        )

    track_time_vs_scipy.unit = "ratio"

    def track_time_vs_pot(self, n, case):
        """t(otcore) / t(ot.wasserstein_1d), p = 2 (POT sorts and merges quantiles)."""
        import ot

        uw = np.full(self.u.size, 1 / self.u.size) if self.uw is None else self.uw / self.uw.sum()
        vw = np.full(self.v.size, 1 / self.v.size) if self.vw is None else self.vw / self.vw.sum()
        return interleaved_ratio(
            lambda: wasserstein_1d(self.u, self.v, self.uw, self.vw, p=2),
            lambda: ot.wasserstein_1d(self.u, self.v, uw, vw, p=2),
            repeat=3,
        )

    track_time_vs_pot.unit = "ratio"


class CdfEmdBatch:
    params = ([(10**4, 100), (100, 10**4)],)
    param_names = ["batch_bins"]

    def setup(self, shape):
        rng = np.random.default_rng(1)
        self.a = histograms(rng, shape)
        self.b = histograms(rng, shape)

    def time_cdf_emd(self, shape):
        cdf_emd(self.a, self.b)

    def time_cdf_emd_squared(self, shape):
        cdf_emd(self.a, self.b, rho=2)

    def time_cdf_emd_grad(self, shape):
        cdf_emd_grad(self.a, self.b)


class CdfEmdVsLP:
    params = ([100, 1000],)
    param_names = ["bins"]

    def setup(self, n):
        rng = np.random.default_rng(2)
        self.a, self.b = histograms(rng, (n,)), histograms(rng, (n,))
        x = np.arange(n, dtype=float)
        self.M = np.abs(x[:, None] - x[None, :])

    def time_cdf_emd(self, n):
        cdf_emd(self.a, self.b)

    def track_speedup_vs_emd2(self, n):
        import ot

        return 1.0 / interleaved_ratio(lambda: cdf_emd(self.a, self.b), lambda: ot.emd2(self.a, self.b, self.M), repeat=3)

    track_speedup_vs_emd2.unit = "ratio"
