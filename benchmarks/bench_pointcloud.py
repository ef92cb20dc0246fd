"""asv benchmarks of otcore._pointcloud: Sinkhorn on lazy point-cloud costs.

Problem: two clouds of n uniform points in the unit square, uniform weights,
squared Euclidean cost, eps = 0.01, tol = 1e-3, float64 (OTT-JAX's online
``PointCloud`` benchmark setting).

- ``track_time_ratio_vs_ott_online``: our time / OTT-JAX ``PointCloud(batch_size=1024)``
  solved by its jitted ``Sinkhorn`` (compile excluded), n = 2000, interleaved in one
  process (target <= 0.5). ``default``: the cloud with its default memory budget (the
  cost then fits, see ``PointCloud``); ``streaming``: a 4 MiB budget, so every
  half-step recomputes the costs block by block, as OTT-JAX's online mode does.
- ``track_peak_mb`` / ``track_seconds``: peak traced memory (MB) and time of one
  solve, streaming, n = 20,000 (target < 600 MB, minutes).

OTT-JAX and JAX are optional (the ratio benchmark skips without them).
"""

import time
import tracemalloc

import numpy as np

from benchmarks._timing import interleaved_times
from otcore import PointCloud, sinkhorn

EPS, TOL = 0.01, 1e-3


def clouds(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 2)), rng.random((n, 2))


def ott_online_solver(x, y, batch_size=1024):
    """A jitted OTT-JAX online solve of the same problem, compiled once (``NotImplementedError`` without OTT)."""
    try:
        import jax
        from jax.interpreters import batching

        jax.config.update("jax_enable_x64", True)
        if not hasattr(batching, "is_vmappable"):  # ott-jax 0.6 on jax >= 0.7
            batching.is_vmappable = lambda _: False
        import jax.numpy as jnp
        from ott.geometry import pointcloud
        from ott.problems.linear import linear_problem
        from ott.solvers.linear import sinkhorn as ott_sinkhorn
    except ImportError as exc:  # pragma: no cover
        raise NotImplementedError(f"OTT-JAX not available: {exc}")

    @jax.jit
    def solve(x, y):
        geom = pointcloud.PointCloud(x, y, epsilon=EPS, batch_size=batch_size)
        out = ott_sinkhorn.Sinkhorn(threshold=TOL, max_iterations=5000)(linear_problem.LinearProblem(geom))
        return out.reg_ot_cost, out.n_iters

    xj, yj = jnp.asarray(x), jnp.asarray(y)
    jax.block_until_ready(solve(xj, yj))  # compile

    def run():
        return jax.block_until_ready(solve(xj, yj))

    return run


class TrackPointCloudVsOTT:
    """Time ratio against OTT-JAX's online PointCloud, n = 2000 per side."""

    params = (["default", "streaming"],)
    param_names = ["memory"]
    timeout = 900

    def setup(self, memory):
        self.x, self.y = clouds(2000)
        self.ott = ott_online_solver(self.x, self.y)
        self.kw = {} if memory == "default" else {"memory": 4 * 2**20}

    def track_time_ratio_vs_ott_online(self, memory):
        C = PointCloud(self.x, self.y, **self.kw)

        def ours():
            sinkhorn(None, None, C, EPS, tol=TOL, warn=False)

        t_ours, t_ott = interleaved_times(ours, self.ott, repeat=3, timer=time.perf_counter)
        return t_ours / t_ott

    track_time_ratio_vs_ott_online.unit = "ratio"


class TrackPointCloudLarge:
    """Streaming solve at n = 20,000 per side: peak traced memory and wall time."""

    timeout = 3600
    number = 1
    repeat = 1

    def setup(self):
        self.x, self.y = clouds(20_000)

    def _solve(self):
        C = PointCloud(self.x, self.y)
        tracemalloc.start()
        t0 = time.perf_counter()
        sinkhorn(None, None, C, EPS, tol=TOL, warn=False)
        dt = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return dt, peak / 1e6

    def track_peak_mb(self):
        return self._solve()[1]

    track_peak_mb.unit = "MB"

    def track_seconds(self):
        return self._solve()[0]

    track_seconds.unit = "s"


class TimePointCloudSoftmin:
    """One lazy half-step (softmin over all rows), n = m."""

    params = ([1000, 4000], ["sqeuclidean", "euclidean", "cityblock"])
    param_names = ["n", "metric"]

    def setup(self, n, metric):
        x, y = clouds(n)
        self.C = PointCloud(x, y, metric=metric)
        self.h = np.zeros((1, n))

    def time_softmin_rows(self, n, metric):
        self.C.softmin_rows(self.h, EPS)
