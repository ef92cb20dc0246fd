"""asv benchmarks: pairwise distance matrices (chunked, batched kernels) and their memory.

``TimePairwise``: all pairs within N histograms of K bins, per method.
``PeakmemPairwise``: a larger matrix, to show that memory follows the chunk,
not the number of pairs times the bins.
``TrackPairwise``: time of otcore over the time of POT on the same pairwise
matrix in the same process (POT: ``ot.sinkhorn2`` with all targets of one
source as columns, ``ot.wasserstein_1d`` with all pairs as columns, a loop of
``ot.emd2``); a number above 1 means otcore is slower.
"""


import numpy as np

from benchmarks._problems import histograms
from benchmarks._timing import interleaved_ratio

try:
    from otcore._pairwise import pairwise_distances
except ImportError:  # an old commit without the module: asv skips the benchmarks
    pairwise_distances = None


def _line_cost(k):
    t = np.linspace(0.0, 1.0, k)
    return np.abs(t[:, None] - t[None, :])


def _problem(N, K, seed=0):
    rng = np.random.default_rng(seed)
    return histograms(rng, (N, K)), _line_cost(K)


def _need():
    if pairwise_distances is None:
        raise NotImplementedError("otcore._pairwise not available")


_KW = {
    "sinkhorn": dict(reg=0.05, n_iter=50, tol=None),
    "1d": {},
    "cdf": {},
    "exact": {},
}


class TimePairwise:
    """All pairs within N histograms (N (N - 1) / 2 distances), K bins."""

    params = (["sinkhorn", "1d", "cdf"], [64, 256])
    param_names = ["method", "N"]
    K = 32

    def setup(self, method, N):
        _need()
        self.A, self.M = _problem(N, self.K)

    def time_pairwise(self, method, N):
        pairwise_distances(self.A, M=self.M if method == "sinkhorn" else None, method=method, **_KW[method])

    def time_pairwise_rectangular(self, method, N):
        pairwise_distances(
            self.A, self.A[: N // 2], self.M if method == "sinkhorn" else None, method=method, **_KW[method]
        )


class TimePairwiseExact:
    """The exact EMD loops over pairs: a small matrix."""

    params = [16, 32]
    param_names = ["N"]

    def setup(self, N):
        _need()
        self.A, self.M = _problem(N, 32)

    def time_pairwise_exact(self, N):
        pairwise_distances(self.A, M=self.M, method="exact")


class TimeChunkSize:
    """Effect of the chunk size on the batched Sinkhorn kernel (N = 128, K = 32)."""

    params = [64, 1024, 8128]
    param_names = ["chunk_size"]

    def setup(self, chunk_size):
        _need()
        self.A, self.M = _problem(128, 32)

    def time_sinkhorn_chunks(self, chunk_size):
        pairwise_distances(self.A, M=self.M, method="sinkhorn", chunk_size=chunk_size, **_KW["sinkhorn"])


class PeakmemPairwise:
    """Peak memory of a 2000 x 2000 CDF-EMD matrix (K = 100) with bounded chunks.

    Gathering all 2 million pairs at once would take 2e6 * 200 * 8 B = 3.2 GB;
    with chunks of 20000 pairs the peak is the 32 MB output plus ~32 MB per chunk.
    """

    params = [[2000], [2_000, 20_000]]
    param_names = ["N", "chunk_size"]

    def setup(self, N, chunk_size):
        _need()
        self.A, _ = _problem(N, 100)

    def peakmem_pairwise_cdf(self, N, chunk_size):
        pairwise_distances(self.A, method="cdf", chunk_size=chunk_size)


class PeakmemPairwiseSinkhorn:
    """Peak memory of a 300 x 300 Sinkhorn matrix (K = 64, 10 iterations, chunks of 4096)."""

    def setup(self):
        _need()
        self.A, self.M = _problem(300, 64)

    def peakmem_pairwise_sinkhorn(self):
        pairwise_distances(self.A, M=self.M, method="sinkhorn", reg=0.05, n_iter=10, tol=None, chunk_size=4096)


class TimePairwiseCupy:
    """Batched Sinkhorn / CDF pairwise matrices on the GPU (skipped without cupy and a device)."""

    params = (["sinkhorn", "cdf"], [512])
    param_names = ["method", "N"]

    def setup(self, method, N):
        _need()
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise RuntimeError
        except Exception:
            raise NotImplementedError("cupy with a CUDA device not available") from None
        A, M = _problem(N, 100)
        self.cp = cupy
        self.A, self.M = cupy.asarray(A), cupy.asarray(M)
        self.time_pairwise(method, N)  # warm-up: kernel compilation

    def time_pairwise(self, method, N):
        pairwise_distances(self.A, M=self.M if method == "sinkhorn" else None, method=method, **_KW[method])
        self.cp.cuda.Stream.null.synchronize()


def _pot_pairwise(method, A, M):
    import ot

    N, K = A.shape
    if method == "sinkhorn":
        out = np.zeros((N, N))
        for i in range(N):
            # one source against all targets in one call (POT's batched form); a fixed
            # number of iterations is not symmetric, so otcore computes all N * N pairs too
            out[i] = ot.sinkhorn2(A[i], A.T, M, 0.05, numItermax=50, stopThr=0.0)
        return out
    if method == "1d":
        i, j = np.triu_indices(N, 1)
        x = np.broadcast_to(np.arange(K, dtype=float)[:, None], (K, len(i)))
        return ot.wasserstein_1d(x, x, A[i].T, A[j].T, p=1)
    out = np.zeros((N, N))
    for i in range(N):
        for j in range(i + 1, N):
            out[i, j] = ot.emd2(A[i], A[j], M)
    return out


class TrackPairwise:
    """Time of otcore / time of POT on the same all-pairs matrix (min of 15, interleaved)."""

    params = [["sinkhorn", "1d", "exact"]]
    param_names = ["method"]
    sizes = {"sinkhorn": (64, 32), "1d": (256, 32), "exact": (12, 32)}

    def setup(self, method):
        _need()
        try:
            import ot  # noqa: F401
        except ImportError:
            raise NotImplementedError("POT is not installed (pip install '.[bench]')") from None
        N, K = self.sizes[method]
        self.A, self.M = _problem(N, K)

    def track_ratio_vs_pot(self, method):
        M = None if method == "1d" else self.M

        def ours():
            pairwise_distances(self.A, M=M, method=method, **_KW[method])

        def pot():
            _pot_pairwise(method, self.A, self.M)

        return interleaved_ratio(ours, pot, repeat=15)

    track_ratio_vs_pot.unit = "ratio"
