"""asv benchmarks of otcore._sinkhorn (scaling / log, single pair / batched, float32 / float64).

``track_*`` methods return speed ratios measured in the same process against POT
(interleaved, min of several repeats, CPU time on one BLAS thread), so they stay
meaningful on a shared machine:

- ``track_single_time_ratio_vs_pot``: our time / POT ``ot.sinkhorn2`` time, one pair
  n = m = 1000, 100 fixed iterations (target <= 1.0);
- ``track_batched_speedup_vs_pot_loop``: POT looped over pairs / ours, N = 4096 pairs of
  100 bins, 50 iterations (target >= 20; the POT loop is timed on 256 pairs and scaled);
- ``track_log_time_ratio_vs_scaling``: log-stable / scaling, n = 1000, reg = 1e-2, cost
  max 1, run to tol 1e-9 (target <= 1.5);
- ``track_batched_ratio_vs_plain_gemm_loop``: ours / a plain numpy GEMM loop of Algorithm 1,
  N = 4096 pairs of 100 bins, 50 fixed iterations (target <= 1.2);
- ``track_float32_time_ratio_vs_float64``: float32 / float64, each at its default tol,
  n = 1000 and a batch of 256 x 64 (target <= 2, both converged);
- ``TrackSinkhornPairwise.track_pairwise_seconds``: ``pairwise_distances`` of 200
  histograms x 32 ordered bins (cost |t_i - t_j| on [0, 1]), reg 0.5, default tol
  (target <= 5 s, every pair converged, no warning; the integer cost |i - j| is the
  hard family, reported alongside);
- ``track_first_call_seconds``: the first small call in a fresh process (target < 1 s).

cupy variants skip (``NotImplementedError`` in ``setup``) without a CUDA device.
"""

import contextlib
import subprocess
import sys
import time
import warnings

import numpy as np

from benchmarks._problems import batch_problem, euclidean_problem, histograms
from benchmarks._timing import interleaved_times
from otcore._sinkhorn import sinkhorn, sinkhorn2

try:
    import ot
except ImportError:  # pragma: no cover
    ot = None


def _cupy():
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:
        pass
    raise NotImplementedError("cupy with a CUDA device not available")


def _single_thread():
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1)
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()


def _interleaved(fa, fb, rounds=3, repeat=3, cpu=True):
    """Min times of fa and fb, measured alternately.

    ``cpu=True``: CPU time on one BLAS thread, which measures the work done and is
    robust to other jobs on a shared machine (wall-clock ratios there drift by a
    factor of 2 or more). ``cpu=False``: wall-clock (for GPU runs).
    """
    timer = time.process_time if cpu else time.perf_counter
    with _single_thread() if cpu else contextlib.nullcontext():
        return interleaved_times(fa, fb, repeat=rounds * repeat, timer=timer)


def _single(n, dtype, seed=0):
    a, b, M = euclidean_problem(n, seed=seed)
    M = M / M.max()
    return a.astype(dtype), b.astype(dtype), M.astype(dtype)


class TimeSinkhornSingle:
    """One pair, n = m bins, 100 fixed iterations (Algorithm 1)."""

    params = ([100, 1000], ["scaling", "log"], [1e-1, 1e-2], ["float64", "float32"])
    param_names = ["bins", "method", "reg", "dtype"]

    def setup(self, n, method, reg, dtype):
        self.a, self.b, self.M = _single(n, np.dtype(dtype))

    def time_sinkhorn2_fixed(self, n, method, reg, dtype):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sinkhorn2(self.a, self.b, self.M, reg, n_iter=100, tol=None, method=method)


class TimeSinkhornBatched:
    """N pairs of k-bin histograms, one shared cost, 50 fixed iterations."""

    params = ([256, 4096], ["scaling", "log"], [1e-1, 1e-2], ["float64", "float32"])
    param_names = ["pairs", "method", "reg", "dtype"]

    def setup(self, N, method, reg, dtype):
        self.a, self.b, self.M = batch_problem(N, 100, dtype=np.dtype(dtype))

    def time_sinkhorn_batched_fixed(self, N, method, reg, dtype):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sinkhorn(self.a, self.b, self.M, reg, n_iter=50, tol=None, method=method)

    def peakmem_sinkhorn_batched_fixed(self, N, method, reg, dtype):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sinkhorn(self.a, self.b, self.M, reg, n_iter=50, tol=None, method=method)


class TimeSinkhornTolerance:
    """Run to tol = 1e-9: n = 1000, cost max 1 (POT's stabilised method fails at 1e-2)."""

    params = ([1e-1, 1e-2], ["scaling", "log"])
    param_names = ["reg", "method"]
    timeout = 300

    def setup(self, reg, method):
        self.a, self.b, self.M = _single(1000, np.float64)

    def time_sinkhorn_to_tol(self, reg, method):
        sinkhorn(self.a, self.b, self.M, reg, tol=1e-9, method=method)


class TrackSinkhornRatios:
    """Speed ratios against POT and between our methods, measured in one process."""

    timeout = 600

    def setup(self):
        if ot is None:  # pragma: no cover
            raise NotImplementedError("POT not installed")
        self.single = _single(1000, np.float64)
        self.batch = batch_problem(4096, 100)

    def track_single_time_ratio_vs_pot(self):
        a, b, M = self.single

        def ours():
            sinkhorn2(a, b, M, 0.1, n_iter=100, tol=None, method="scaling")

        def pot():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ot.sinkhorn2(a, b, M, 0.1, method="sinkhorn", numItermax=100, stopThr=0.0)

        t_ours, t_pot = _interleaved(ours, pot, rounds=5, repeat=5)
        return t_ours / t_pot

    track_single_time_ratio_vs_pot.unit = "ratio"

    def track_batched_speedup_vs_pot_loop(self):
        a, b, M = self.batch
        sub = 256

        def ours():
            sinkhorn(a, b, M, 0.1, n_iter=50, tol=None, method="scaling")

        def pot():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for i in range(sub):
                    ot.sinkhorn2(a[i], b[i], M, 0.1, method="sinkhorn", numItermax=50, stopThr=0.0)

        t_ours, t_pot = _interleaved(ours, pot, rounds=2, repeat=2)
        return t_pot * (a.shape[0] / sub) / t_ours

    track_batched_speedup_vs_pot_loop.unit = "ratio"

    def track_log_time_ratio_vs_scaling(self):
        a, b, M = self.single

        def log():
            r = sinkhorn(a, b, M, 1e-2, tol=1e-9, method="log")
            assert r.converged

        def scaling():
            sinkhorn(a, b, M, 1e-2, tol=1e-9, method="scaling")

        t_log, t_sc = _interleaved(log, scaling, rounds=2, repeat=1)
        return t_log / t_sc

    track_log_time_ratio_vs_scaling.unit = "ratio"


class TrackSinkhornEngine:
    """The engine's targets: batched overhead, float32 vs float64, first call, pairwise."""

    timeout = 900

    def setup(self):
        self.batch = batch_problem(4096, 100, seed=3)
        self.single = euclidean_problem(1000, seed=1)

    def track_batched_ratio_vs_plain_gemm_loop(self):
        A, B, M = self.batch
        reg = 0.1

        def plain():  # Algorithm 1 of Dhariwal & Inala, batched, numpy
            K = np.exp(-M / reg)
            KM = K * M
            u = np.ones_like(A) / A.shape[1]
            for _ in range(50):
                u = A / ((B / (u @ K)) @ K.T)
            v = B / (u @ K)
            return np.sum(u * (v @ KM.T), axis=1)

        def ours():
            sinkhorn(A, B, M, reg, n_iter=50, tol=None)

        t_ours, t_plain = _interleaved(ours, plain, rounds=2, repeat=2)
        return t_ours / t_plain

    track_batched_ratio_vs_plain_gemm_loop.unit = "ratio"

    def track_float32_time_ratio_vs_float64(self):
        worst = 0.0
        for a, b, M in (self.single, batch_problem(256, 64, seed=2)):
            a32, b32, M32 = (x.astype(np.float32) for x in (a, b, M))
            assert sinkhorn(a32, b32, M32, 0.05).converged and sinkhorn(a, b, M, 0.05).converged
            t32, t64 = _interleaved(lambda: sinkhorn(a32, b32, M32, 0.05), lambda: sinkhorn(a, b, M, 0.05),
                                    rounds=1, repeat=3)
            worst = max(worst, t32 / t64)
        return worst

    track_float32_time_ratio_vs_float64.unit = "ratio"

    def track_first_call_seconds(self):
        code = (
            "import time, otcore; t = time.perf_counter(); "
            "otcore.sinkhorn([.5, .5], [.25, .75], [[0., 1.], [1., 0.]], 0.1); "
            "print(time.perf_counter() - t)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return float(out.stdout.split()[-1])

    track_first_call_seconds.unit = "seconds"


class TrackSinkhornPairwise:
    """``pairwise_distances`` of 200 histograms x 32 ordered bins, reg 0.5, default tol."""

    params = (["line", "integer"],)
    param_names = ["cost"]
    timeout = 900

    def setup(self, cost):
        from otcore import pairwise_distances

        self.pairwise = pairwise_distances
        self.A = histograms(np.random.default_rng(0), (200, 32))
        t = np.linspace(0.0, 1.0, 32) if cost == "line" else np.arange(32.0)
        self.M = np.abs(t[:, None] - t[None, :])

    def track_pairwise_seconds(self, cost):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a ConvergenceWarning fails the benchmark
            t = time.perf_counter()
            D = self.pairwise(self.A, M=self.M, method="sinkhorn", reg=0.5)
            t = time.perf_counter() - t
        assert np.all(np.isfinite(D))
        return t

    track_pairwise_seconds.unit = "seconds"


class TimeSinkhornCupy:
    """The batched case on the GPU (cupy); skipped without a CUDA device."""

    params = (["scaling", "log"], ["float64", "float32"])
    param_names = ["method", "dtype"]

    def setup(self, method, dtype):
        cp = _cupy()
        a, b, M = batch_problem(4096, 100, dtype=np.dtype(dtype))
        self.cp = cp
        self.a, self.b, self.M = cp.asarray(a), cp.asarray(b), cp.asarray(M)

    def time_sinkhorn_batched_cupy(self, method, dtype):
        r = sinkhorn(self.a, self.b, self.M, 0.1, n_iter=50, tol=None, method=method)
        self.cp.cuda.Device().synchronize()
        return r

    def track_batched_speedup_vs_pot_numpy(self, method, dtype):
        a, b, M = (self.cp.asnumpy(x) for x in (self.a, self.b, self.M))
        sub = 256

        def gpu():
            sinkhorn(self.a, self.b, self.M, 0.1, n_iter=50, tol=None, method=method)
            self.cp.cuda.Device().synchronize()

        def pot():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for i in range(sub):
                    ot.sinkhorn2(a[i], b[i], M, 0.1, method="sinkhorn", numItermax=50, stopThr=0.0)

        t_gpu, t_pot = _interleaved(gpu, pot, rounds=2, repeat=2, cpu=False)
        return t_pot * (a.shape[0] / sub) / t_gpu

    track_batched_speedup_vs_pot_numpy.unit = "ratio"


class TimeLogOneHotBatch:
    """Log method, training-sized batch: 1024 predictions x 64 ordered bins against one-hot (or
    label-smoothed) targets, cost ``|i - j|``, ``(max M - min M) / reg = 630``, 50 fixed
    iterations. One shared absorbed kernel cannot represent such a batch: the kernel switches to
    per-pair absorbed kernels (was 16 s per call when every pair took the exact fallback)."""

    params = (["float64", "float32"], ["one-hot", "smoothed"])
    param_names = ["dtype", "target"]
    timeout = 300

    def setup(self, dtype, target):
        rng = np.random.default_rng(0)
        N, n = 1024, 64
        i = np.arange(n, dtype=np.float64)
        M = np.abs(i[:, None] - i[None, :])
        self.reg = float(M.max()) / 630
        a = rng.random((N, n))
        a /= a.sum(1, keepdims=True)
        b = np.eye(n)[rng.integers(0, n, N)]
        if target == "smoothed":
            b = 0.9 * b + 0.1 / n
        self.a, self.b, self.M = (x.astype(dtype) for x in (a, b, M))

    def time_log_fixed_50(self, dtype, target):
        sinkhorn(self.a, self.b, self.M, self.reg, n_iter=50, tol=None, method="log")


class TrackSinkhornTrainingBatch:
    """Training-sized batches, 50 fixed iterations: the compiled driver (``otcore/_csinkhorn.c``)
    against the general engine and against POT looped over the pairs.

    Families: three costs (``|i - j|`` on ordered classes, uniform random entries, squared
    Euclidean between random points of the plane), one-hot or label-smoothed targets
    (0.9 one-hot + 0.1 uniform), ``(max M - min M) / reg`` of 30 and 90 (``method="auto"``:
    the scaling form) and 300 (``method="log"``: the log form); batches of 100 x 4 and
    128 x 10 bins. ``track_speedup_vs_general`` = general engine time / compiled driver time
    (the driver must never be the slower: target >= 1); ``track_speedup_vs_pot_loop`` = POT
    ``ot.sinkhorn2`` looped over the pairs (timed on 32 of them, scaled) / ours. CPU time on
    one BLAS thread, interleaved, min of repeats.
    """

    params = (["ordinal", "uniform", "sqeuclidean"], ["100x4", "128x10"], ["one-hot", "smoothed"],
              ["30", "90", "300"])
    param_names = ["cost", "batch", "target", "ratio"]

    def setup(self, cost, batch, target, ratio):
        rng = np.random.default_rng(0)
        N, k = (int(s) for s in batch.split("x"))
        if cost == "ordinal":
            i = np.arange(k, dtype=np.float64)
            M = np.abs(i[:, None] - i[None, :])
        elif cost == "uniform":
            M = rng.random((k, k))
        else:
            x = rng.random((k, 2))
            M = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        a = rng.dirichlet(np.ones(k), N)
        b = np.eye(k)[rng.integers(0, k, N)]
        if target == "smoothed":
            b = 0.9 * b + 0.1 / k
        self.a, self.b, self.M = a, b, M
        self.reg = float(M.max() - M.min()) / float(ratio)
        self.method = "auto" if ratio != "300" else "log"

    def _ours(self):
        sinkhorn(self.a, self.b, self.M, self.reg, n_iter=50, tol=None, method=self.method)

    def _general(self):
        import otcore._sinkhorn as S

        limits, S._HOST_WORK = S._HOST_WORK, (0, 0, 0)
        try:
            self._ours()
        finally:
            S._HOST_WORK = limits

    def track_speedup_vs_general(self, cost, batch, target, ratio):
        t_ours, t_general = _interleaved(self._ours, self._general)
        return t_general / t_ours

    track_speedup_vs_general.unit = "ratio"

    def track_speedup_vs_pot_loop(self, cost, batch, target, ratio):
        if ot is None:
            raise NotImplementedError("POT not installed")
        sub = 32
        pot_method = "sinkhorn_log" if self.method == "log" else "sinkhorn"

        def pot():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for p in range(sub):
                    ot.sinkhorn2(self.a[p], self.b[p], self.M, self.reg, method=pot_method, numItermax=50,
                                 stopThr=0.0)

        t_ours, t_pot = _interleaved(self._ours, pot)
        return t_pot * (self.a.shape[0] / sub) / t_ours

    track_speedup_vs_pot_loop.unit = "ratio"
