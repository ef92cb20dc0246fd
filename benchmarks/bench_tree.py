"""asv benchmarks for otcore._tree: tree EMD vs the exact LP on the tree metric.

``track_speedup_vs_emd2`` = t(ot.emd2 on tree_metric) / t(tree_emd) for one
pair (target >= 1000 at 1000 nodes); ``track_rel_error_vs_emd2`` the relative
difference of the two values (target <= 1e-12). Times are interleaved, min of
repeats, in one process.
"""


import numpy as np

from benchmarks._problems import histograms
from benchmarks._timing import interleaved_ratio
from otcore._tree import compile_tree, tree_emd, tree_emd_grad, tree_metric


def random_tree(n, seed=0):
    """Random recursive tree: node i hangs below a uniform node in 0..i-1; edge lengths U(0.1, 1.1)."""
    rng = np.random.default_rng(seed)
    parent = np.concatenate([[-1], (rng.random(n - 1) * np.arange(1, n)).astype(np.int64)])
    weight = rng.random(n) + 0.1
    return parent, weight


class TreeEMD:
    params = ([100, 1000],)
    param_names = ["nodes"]
    timeout = 300

    def setup(self, n):
        self.parent, self.weight = random_tree(n)
        self.tree = compile_tree(self.parent, self.weight)
        rng = np.random.default_rng(1)
        self.a, self.b = histograms(rng, (n,)), histograms(rng, (n,))
        self.M = tree_metric(self.tree)

    def time_compile_tree(self, n):
        compile_tree(self.parent, self.weight)

    def time_tree_emd(self, n):
        tree_emd(self.a, self.b, self.tree)

    def time_tree_emd_grad(self, n):
        tree_emd_grad(self.a, self.b, self.tree)

    def time_tree_metric(self, n):
        tree_metric(self.tree)

    def track_speedup_vs_emd2(self, n):
        import ot

        f = lambda: tree_emd(self.a, self.b, self.tree)  # noqa: E731
        g = lambda: ot.emd2(self.a, self.b, self.M, numItermax=10**7)  # noqa: E731
        return 1.0 / interleaved_ratio(f, g, number_f=200, repeat=3)

    track_speedup_vs_emd2.unit = "ratio"

    def track_speedup_vs_linprog(self, n):
        """t(scipy linprog, HiGHS, on the n x n transport LP) / t(tree_emd); n <= 300 only (18 s at 1000)."""
        if n > 300:
            return float("nan")
        import scipy.sparse as sp
        from scipy.optimize import linprog

        one = sp.csr_matrix(np.ones((1, n)))
        A = sp.vstack([sp.kron(sp.eye(n), one), sp.kron(one, sp.eye(n))]).tocsr()[:-1]
        beq = np.concatenate([self.a, self.b])[:-1]
        g = lambda: linprog(self.M.ravel(), A_eq=A, b_eq=beq, bounds=(0, None), method="highs")  # noqa: E731
        return 1.0 / interleaved_ratio(lambda: tree_emd(self.a, self.b, self.tree), g, number_f=200, repeat=1)

    track_speedup_vs_linprog.unit = "ratio"

    def track_rel_error_vs_emd2(self, n):
        import ot

        ref = ot.emd2(self.a, self.b, self.M, numItermax=10**7)
        return abs(float(tree_emd(self.a, self.b, self.tree)) - ref) / ref

    track_rel_error_vs_emd2.unit = "relative error"


class TreeEMDBatch:
    params = ([(10**4, 1000), (10**3, 10**4)],)
    param_names = ["pairs_nodes"]
    timeout = 300

    def setup(self, shape):
        N, n = shape
        self.tree = compile_tree(*random_tree(n))
        rng = np.random.default_rng(2)
        self.A, self.B = histograms(rng, (N, n)), histograms(rng, (N, n))

    def time_tree_emd(self, shape):
        tree_emd(self.A, self.B, self.tree)

    def time_tree_emd_grad(self, shape):
        tree_emd_grad(self.A, self.B, self.tree)

    def peakmem_tree_emd_grad(self, shape):
        tree_emd_grad(self.A, self.B, self.tree)
