r"""Lazy costs between point clouds: Sinkhorn without an n x m matrix.

A :class:`PointCloud` holds two clouds ``x`` (n, d) and ``y`` (m, d) and a
metric, and stands in for the cost matrix ``M`` (n, m) with
:math:`M_{ij} = s\, d(x_i, y_j)`. It never stores ``M``: every operation the
log-domain Sinkhorn iteration needs is computed in blocks of rows (and, for
very wide problems, of columns), each block's costs built on the fly and
reduced by a max-shifted log-sum-exp (online across column blocks), as in
the online mode of OTT-JAX's ``PointCloud`` and GeomLoss's online backend
(Feydy et al. 2019). Memory is bounded by the ``memory`` budget whatever
``n`` and ``m`` are; time is :math:`O(nm)` per half-iteration, as for a dense
cost.

It implements the kernel protocol of otcore's Sinkhorn engine
(``softmin_rows``, ``softmin_cols``, ``transport_cost``, ``marginals``,
``plan``, ``cost_range``) and the gradient with respect to the positions
(:meth:`PointCloud.position_grads`), so the engine and the adapters use it
wherever a dense ``M`` is accepted.

Public names: :class:`PointCloud`, :data:`POINTCLOUD_METRICS`.
"""

from __future__ import annotations

import math

from otcore._array import Array, as_float, device, float_dtype, is_cupy_namespace, namespace
from otcore._cost import _as_points
from otcore._validate import check_choice, check_int, check_scalar

__all__ = ["POINTCLOUD_METRICS", "PointCloud"]

#: Metrics a :class:`PointCloud` computes lazily.
POINTCLOUD_METRICS = ("sqeuclidean", "euclidean", "cityblock")

# Default memory budget for the temporaries of one block (bytes).
_DEFAULT_MEMORY = 256 * 2**20
# Temporaries of one block of the log-sum-exp (exponents, their exp, costs):
# the budget is divided by this many arrays of the block's size.
_TEMPS = 3
# Upper bound on the elements of one block on the host CPU: blocks that stay
# in the L2 cache make the few passes of a block (GEMM, max, exp, sum) cheaper
# than one huge block; accelerators take the whole budget.
_HOST_BLOCK = 1 << 17


def _fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


class PointCloud:
    r"""A lazy cost :math:`M_{ij} = s\, d(x_i, y_j)` between two point clouds.

    Pass it as ``M`` to :func:`otcore.sinkhorn`, :func:`otcore.sinkhorn2`,
    :func:`otcore.sinkhorn_divergence` or :func:`otcore.pairwise_distances`:
    the log-domain Sinkhorn step then computes the costs block by block and
    never holds an ``n x m`` array.

    Parameters
    ----------
    x : array, shape (n, d) or (n,)
        Source points, one per row (1-D: ``n`` scalar points). Any array-API
        array (numpy, cupy, torch, ...); every computation runs in its
        namespace, on its device.
    y : array, shape (m, d) or (m,), optional
        Target points, same number of features. ``None``: ``x`` itself (the
        cost is then symmetric with an exactly zero diagonal).
    metric : {"sqeuclidean", "euclidean", "cityblock"}
        :math:`d(u, v) = \|u-v\|_2^2`, :math:`\|u-v\|_2` or
        :math:`\|u-v\|_1`.
    scale : float > 0, default 1
        Factor :math:`s` of the cost. GeomLoss and Feydy et al. (2019) use
        :math:`\tfrac12\|x-y\|^2` for ``p = 2``: pass ``scale=0.5`` to match
        them (equivalently, keep ``scale=1`` and double ``reg``: the plan of
        :math:`(s M, \varepsilon)` is the plan of :math:`(M, \varepsilon/s)`,
        and values scale by :math:`s`).
    memory : int, default 256 MiB
        Budget in bytes for the temporaries of one block (about three arrays
        of ``N x rows x cols`` entries for ``N`` potentials). The block size
        follows from it: ``rows = memory / (3 * N * m * itemsize)`` rows of
        all ``m`` columns, or one row and fewer columns (an online
        log-sum-exp across column blocks) when one row does not fit. On the
        host CPU blocks are further capped at 128k entries (they then stay
        in cache). :meth:`plan` refuses plans larger than this budget. In
        :func:`otcore.sinkhorn`, a problem whose dense kernel arrays (four
        ``n x m`` arrays) fit in the budget is solved with the costs built
        once (:meth:`solver_kernel`); pass a smaller ``memory`` to force
        streaming.

    Attributes
    ----------
    x, y : arrays (n, d), (m, d)
        The points (``y is x`` for a symmetric cloud).
    shape : tuple (n, m)
    dtype :
        float64 unless the points are float32.

    Notes
    -----
    **The log-sum-exp in blocks.** For potentials ``h`` of shape (N, m),

    .. math::

        \mathrm{softmin}_\varepsilon(h)_i = -\varepsilon \log \sum_j
            \exp\big((h_j - M_{ij})/\varepsilon\big),

    computed per block of rows as :math:`-\varepsilon(\mu_i + \log\sum_j
    e^{z_{ij} - \mu_i})` with :math:`z_{ij} = (h_j - M_{ij})/\varepsilon` and
    :math:`\mu_i = \max_j z_{ij}`; across column blocks the pair
    :math:`(\mu, S)` is merged online. Entries ``h_j = -inf`` (bins of zero
    mass) contribute nothing; a row with no finite term gives ``+inf``. For
    ``sqeuclidean`` the row-constant :math:`s\|x_i\|^2` is taken out of the
    log-sum-exp and the exponents of a block are one matrix product of the
    centred points (as :func:`otcore.cost_matrix` computes the dense costs,
    so lazy and dense agree to rounding).

    **The plan** :math:`P_{ij} = \exp((f_i + g_j - M_{ij})/\varepsilon)` is
    never needed by the iteration: :meth:`transport_cost`, :meth:`marginals`
    and :meth:`position_grads` reduce it block by block. :meth:`plan`
    returns it as a dense ``(N, n, m)`` array only when that fits in
    ``memory``, and otherwise raises ``ValueError`` stating the bytes it
    would need (a sparse form would not help: an entropic plan has no
    zeros).

    **Gradient with respect to the positions**
    (:meth:`position_grads`): :math:`\partial/\partial x_i = \sum_j P_{ij}\,
    \partial_1 M(x_i, y_j)`, for ``sqeuclidean``
    :math:`2s\sum_j P_{ij}(x_i - y_j)`, for ``euclidean``
    :math:`s\sum_j P_{ij}(x_i - y_j)/\|x_i - y_j\|` (the subgradient 0 at
    coincident points), for ``cityblock`` :math:`s\sum_j P_{ij}
    \operatorname{sign}(x_i - y_j)`.

    Examples
    --------
    >>> import numpy as np
    >>> from otcore import PointCloud, cost_matrix
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((5, 2)), rng.random((4, 2))
    >>> C = PointCloud(x, y)
    >>> C.shape
    (5, 4)
    >>> h = np.zeros((1, 4))
    >>> lazy = C.softmin_rows(h, 0.1)
    >>> M = cost_matrix(x, y)
    >>> dense = -0.1 * np.log(np.exp(-M / 0.1).sum(1))
    >>> bool(np.allclose(lazy[0], dense, rtol=1e-12, atol=0))
    True
    """

    def __init__(self, x, y=None, *, metric: str = "sqeuclidean", scale: float = 1.0, memory: int = _DEFAULT_MEMORY):
        self.metric = check_choice("metric", metric, POINTCLOUD_METRICS)
        self.scale = check_scalar("scale", scale, positive=True)
        self.memory = check_int("memory", memory, minimum=1024)
        xp = namespace(x, y)
        x = as_float(x, xp, name="x")
        y_ = None if y is None else as_float(y, xp, name="y")
        dtype = float_dtype(xp, x, y_)
        if dtype not in (xp.float32, xp.float64):  # float16 / bfloat16: computed in float32
            dtype = xp.float32
        self.x = _as_points(x, "x", xp, dtype)
        self.symmetric = y_ is None
        self.y = self.x if self.symmetric else _as_points(y_, "y", xp, dtype)
        if self.x.shape[1] != self.y.shape[1]:
            raise ValueError(
                f"x and y must have the same number of features (columns): x has shape "
                f"{tuple(self.x.shape)}, y has shape {tuple(self.y.shape)}"
            )
        self._xp = xp
        self.dtype = dtype
        self.shape = (int(self.x.shape[0]), int(self.y.shape[0]))
        self._device = device(self.x)
        self._itemsize = 4 if dtype == xp.float32 else 8
        self._cut = math.log(float(xp.finfo(dtype).smallest_normal)) + 1.0
        self._host = not is_cupy_namespace(xp) and "cpu" in str(self._device).lower()
        # centred coordinates: the costs of the dense cost_matrix, to rounding
        n, m = self.shape
        if self.symmetric:
            c = xp.mean(self.x, axis=0)
        else:
            c = (xp.sum(self.x, axis=0) + xp.sum(self.y, axis=0)) / (n + m)
        self._xc = self.x - c
        self._yc = self._xc if self.symmetric else self.y - c
        self._nx = xp.sum(self._xc * self._xc, axis=1)
        self._ny = self._nx if self.symmetric else xp.sum(self._yc * self._yc, axis=1)
        self._T = None

    def _like(self, x, y) -> "PointCloud":
        """A cloud with the same options over other arrays (e.g. numpy views of torch tensors)."""
        return PointCloud(x, None if self.symmetric else y, metric=self.metric, scale=self.scale, memory=self.memory)

    # -- the Sinkhorn engine's entry points ----------------------------------

    def check_weights(self, a, b, *, check_mass: bool = True):
        """``(xp, a, b)``: weights checked against this cloud (``None``/``[]``: uniform).

        The weights are converted to the cloud's namespace and dtype (the
        computation runs in the dtype of the points); their number of bins
        must be ``(n, m)`` and, with ``check_mass``, their totals equal.
        """
        from otcore._validate import _is_missing, check_histograms

        xp, n, m = self._xp, *self.shape
        if _is_missing(a):
            a = xp.full((n,), 1.0 / n, dtype=self.dtype, device=self._device)
        if _is_missing(b):
            b = xp.full((m,), 1.0 / m, dtype=self.dtype, device=self._device)
        if namespace(a, b) is not xp and namespace(a, b, self.x) is not xp:
            raise TypeError("a and b must come from the same array library as the points of the PointCloud")
        wxp, a, b, _ = check_histograms(a, b, None, check_mass=check_mass)
        for name, w, k, side in (("a", a, n, "x"), ("b", b, m, "y")):
            if w.shape[-1] != k:
                raise ValueError(
                    f"{name} has {w.shape[-1]} bins but the PointCloud has {k} points in {side}; "
                    f"pass one weight per point"
                )
        if a.dtype != self.dtype:
            a = xp.astype(a, self.dtype)
        if b.dtype != self.dtype:
            b = xp.astype(b, self.dtype)
        return xp, a, b

    def solver_kernel(self, *, lazy: bool = False):
        """The kernel object the Sinkhorn engine iterates with (one per call).

        When the arrays of the engine's dense kernel (the costs, a kernel for
        the scaling steps, the absorbed kernel and its cost-weighted copy:
        four ``n x m`` arrays) fit in ``memory``, the costs are built once,
        block by block, and the dense kernel is used (matrix-vector products
        per iteration instead of ``n m`` exponentials); otherwise,
        and inside ``jax.jit``, this cloud itself (every half-step streams
        the costs in blocks).
        """
        n, m = self.shape
        if not lazy and 4 * n * m * self._itemsize <= self.memory:
            from otcore._kernels import DenseKernel

            return DenseKernel(self.to_dense(), xp=self._xp)
        return self

    def take(self, index) -> "PointCloud":
        """The kernel restricted to the pairs ``index``: the cloud is shared by the batch."""
        return self

    # -- the transposed cloud (cost M^T), sharing the arrays ---------------

    @property
    def T(self) -> "PointCloud":
        """The cloud with ``x`` and ``y`` swapped: the lazy cost ``M.T``."""
        if self.symmetric:
            return self
        if self._T is None:
            t = object.__new__(PointCloud)
            t.__dict__.update(self.__dict__)
            t.x, t.y, t._xc, t._yc, t._nx, t._ny = self.y, self.x, self._yc, self._xc, self._ny, self._nx
            t.shape = (self.shape[1], self.shape[0])
            t._T = self
            self._T = t
        return self._T

    def __repr__(self) -> str:
        n, m = self.shape
        return (
            f"PointCloud(n={n}, m={m}, d={self.x.shape[1]}, metric={self.metric!r}, "
            f"scale={self.scale}, symmetric={self.symmetric}, memory={_fmt_bytes(self.memory)})"
        )

    # -- blocks ------------------------------------------------------------

    def _blocks(self, N: int):
        """``(rows, cols)`` of one block for ``N`` potentials within the budget."""
        n, m = self.shape
        elems = max(1, self.memory // (_TEMPS * self._itemsize))
        if self._host:
            elems = min(elems, _HOST_BLOCK)
        elems = max(elems // max(N, 1), 1)
        if elems >= m:
            return max(1, min(n, elems // m)), m
        return 1, elems

    def _cost_block(self, i0: int, i1: int, j0: int, j1: int) -> Array:
        """Costs ``M[i0:i1, j0:j1]``, shape (i1-i0, j1-j0)."""
        xp = self._xp
        if self.metric == "cityblock":
            xb, yb = self.x[i0:i1, :], self.y[j0:j1, :]
            C = None
            for k in range(xb.shape[1]):
                t = xp.abs(xb[:, k : k + 1] - xp.reshape(yb[:, k], (1, j1 - j0)))
                C = t if C is None else C + t
        else:
            C = xp.matmul(self._xc[i0:i1, :] * -2.0, self._yc[j0:j1, :].T)
            C = C + self._nx[i0:i1, None]
            C = C + self._ny[None, j0:j1]
            C = xp.where(C > 0, C, xp.zeros((), dtype=C.dtype, device=self._device))
            if self.metric == "euclidean":
                C = xp.sqrt(C)
        if self.symmetric and i0 < j1 and j0 < i1:
            r = xp.arange(i0, i1, device=self._device)[:, None]
            c = xp.arange(j0, j1, device=self._device)[None, :]
            C = xp.where(r == c, xp.zeros((), dtype=C.dtype, device=self._device), C)
        if self.scale != 1.0:
            C = C * self.scale
        return C

    def to_dense(self) -> Array:
        """The cost matrix ``M`` (n, m), built block by block (small problems, tests).

        >>> import numpy as np
        >>> PointCloud(np.array([[0.0], [1.0]]), np.array([[3.0]]), metric="euclidean").to_dense()
        array([[3.],
               [2.]])
        """
        xp = self._xp
        n, m = self.shape
        rows, cols = self._blocks(1)
        out = []
        for i0 in range(0, n, rows):
            i1 = min(n, i0 + rows)
            out.append(xp.concat([self._cost_block(i0, i1, j0, min(m, j0 + cols)) for j0 in range(0, m, cols)], axis=1))
        return xp.concat(out, axis=0)

    def cost_range(self) -> float:
        """An upper bound on ``max M - min M`` (a host float), from the bounding boxes.

        ``min M >= 0`` and ``max M`` is at most the cost of the diagonal of
        the box holding both clouds' differences; an exact range would cost a
        full pass over the ``n x m`` costs. Used to choose ε-scaling stages.
        """
        xp = self._xp
        span = xp.maximum(xp.max(self.x, axis=0) - xp.min(self.y, axis=0), xp.max(self.y, axis=0) - xp.min(self.x, axis=0))
        span = xp.abs(span)
        if self.metric == "cityblock":
            r = xp.sum(span)
        else:
            r = xp.sum(span * span)
            if self.metric == "euclidean":
                r = xp.sqrt(r)
        return float(r) * self.scale

    # -- the kernel protocol -----------------------------------------------

    def _as_batch(self, h, length: int, name: str):
        xp = self._xp
        h = as_float(h, xp, self.dtype, name=name)
        one = h.ndim == 1
        if one:
            h = h[None, :]
        if h.ndim != 2 or h.shape[1] != length:
            raise ValueError(f"{name} must have shape (N, {length}) (or ({length},)), got {tuple(h.shape)}")
        return h, one

    def _exponents(self, h, eps: float, i0, i1, j0, j1):
        """``(z, row)`` with ``(h_j - M_ij)/eps = z_ij - row_i/eps``; z of shape (N, r, c).

        For sqeuclidean the row constant ``s |x_i - c|^2`` is kept out of the
        exponents (``row``); other metrics return ``row = None``.
        """
        xp = self._xp
        hb = h[:, j0:j1]
        if self.metric == "sqeuclidean":
            s = self.scale
            t = self._xc[i0:i1, :] * (2.0 * s / eps)
            G = xp.matmul(t, self._yc[j0:j1, :].T)  # (r, c)
            w = (hb - s * self._ny[None, j0:j1]) / eps  # (N, c)
            z = G[None, :, :] + w[:, None, :]
            row = s * self._nx[i0:i1]
            if self.symmetric and i0 < j1 and j0 < i1:  # exact zero diagonal: z_ii = h_i/eps + row_i/eps
                r = xp.arange(i0, i1, device=self._device)[:, None]
                c = xp.arange(j0, j1, device=self._device)[None, :]
                diag = hb[:, None, :] / eps + row[None, :, None] / eps
                z = xp.where((r == c)[None, :, :], diag, z)
            return z, row
        C = self._cost_block(i0, i1, j0, j1)
        return (hb[:, None, :] - C[None, :, :]) / eps, None

    def softmin_rows(self, h, eps: float) -> Array:
        r"""``out_i = -eps log sum_j exp((h_j - M_ij)/eps)``: h (N, m) -> (N, n).

        Entries ``h_j = -inf`` contribute nothing; a row without a finite
        term gives ``+inf``. Computed in blocks within ``memory``.
        """
        return self._softmin(h, float(eps), "h")

    def softmin_cols(self, h, eps: float) -> Array:
        r"""``out_j = -eps log sum_i exp((h_i - M_ij)/eps)``: h (N, n) -> (N, m)."""
        return self.T._softmin(h, float(eps), "h")

    def _softmin(self, h, eps: float, name: str) -> Array:
        xp = self._xp
        n, m = self.shape
        h, vec = self._as_batch(h, m, name)
        N = h.shape[0]
        rows, cols = self._blocks(N)
        zero = xp.zeros((), dtype=self.dtype, device=self._device)
        one = xp.ones((), dtype=self.dtype, device=self._device)
        inf = xp.full((), -math.inf, dtype=self.dtype, device=self._device)
        out = []
        for i0 in range(0, n, rows):
            i1 = min(n, i0 + rows)
            mu = S = row = None
            for j0 in range(0, m, cols):
                z, row = self._exponents(h, eps, i0, i1, j0, min(m, j0 + cols))
                mb = xp.max(z, axis=-1)  # (N, r), -inf where no term is finite
                if mu is not None:
                    mb = xp.maximum(mb, mu)
                safe = xp.where(xp.isfinite(mb), mb, zero)
                z -= safe[..., None]
                # exp of arguments below the smallest normal's log is slow on
                # the host (underflow path) and adds < n * 1e-300 to a sum >= 1
                s = xp.sum(xp.exp(xp.clip(z, min=self._cut)), axis=-1)
                S = s if mu is None else s + S * xp.exp(mu - safe)
                mu = mb
            pos = xp.isfinite(mu)  # no finite term in the row: +inf, without a log(0) warning
            lg = xp.where(pos, xp.log(xp.where(pos, S, one)), inf)
            val = -eps * (safe + lg)
            if row is not None:
                val = val + row[None, :]
            out.append(val)
        res = xp.concat(out, axis=1)
        return res[0, :] if vec else res

    def _plan_blocks(self, f, g, eps: float, need_cost: bool = False):
        """Yield ``(i0, i1, j0, j1, P, C)``: blocks of ``P = exp((f_i + g_j - M_ij)/eps)`` (N, r, c)."""
        xp = self._xp
        n, m = self.shape
        f, _ = self._as_batch(f, n, "f")
        g, _ = self._as_batch(g, m, "g")
        N = max(f.shape[0], g.shape[0])
        rows, cols = self._blocks(N)
        for i0 in range(0, n, rows):
            i1 = min(n, i0 + rows)
            for j0 in range(0, m, cols):
                j1 = min(m, j0 + cols)
                C = self._cost_block(i0, i1, j0, j1)
                z = (f[:, i0:i1, None] + g[:, None, j0:j1] - C[None, :, :]) / eps
                yield i0, i1, j0, j1, xp.exp(z), C

    def _batch(self, f, g) -> int:
        return max(1 if f.ndim == 1 else f.shape[0], 1 if g.ndim == 1 else g.shape[0])

    def transport_cost(self, f, g, eps: float) -> Array:
        r"""``sum_ij P_ij M_ij`` with ``P_ij = exp((f_i + g_j - M_ij)/eps)``, shape (N,)."""
        xp = self._xp
        tot = None
        for _, _, _, _, P, C in self._plan_blocks(f, g, float(eps)):
            t = xp.sum(xp.reshape(P * C[None, :, :], (P.shape[0], -1)), axis=1)
            tot = t if tot is None else tot + t
        return tot

    def marginals(self, f, g, eps: float):
        r"""Row and column sums of ``P``: ``((N, n), (N, m))``, block by block."""
        xp = self._xp
        n, m = self.shape
        N = self._batch(f, g)
        rows = xp.zeros((N, n), dtype=self.dtype, device=self._device)
        cols = xp.zeros((N, m), dtype=self.dtype, device=self._device)
        rparts, part = [], None
        for i0, i1, j0, j1, P, _ in self._plan_blocks(f, g, float(eps)):
            r = xp.sum(P, axis=2)
            part = r if (part is None or j0 == 0) else part + r
            if j1 == m:
                rparts.append(part)
            c = xp.sum(P, axis=1)
            pad = [xp.zeros((N, j0), dtype=self.dtype, device=self._device), c, xp.zeros((N, m - j1), dtype=self.dtype, device=self._device)]
            cols = cols + xp.concat(pad, axis=1)
        rows = xp.concat(rparts, axis=1)
        return rows, cols

    def plan(self, f, g, eps: float) -> Array:
        r"""The dense plan ``exp((f_i + g_j - M_ij)/eps)``, shape (N, n, m), if it fits in ``memory``.

        Raises
        ------
        ValueError
            When ``N * n * m`` entries exceed the ``memory`` budget; the
            message states the bytes needed. Use :meth:`marginals`,
            :meth:`transport_cost` or :meth:`position_grads` (block by block)
            instead, or build the cloud with a larger ``memory``.
        """
        xp = self._xp
        n, m = self.shape
        N = self._batch(f, g)
        need = N * n * m * self._itemsize
        if need > self.memory:
            raise ValueError(
                f"the transport plan of this PointCloud problem needs {_fmt_bytes(need)} "
                f"({N} x {n} x {m} entries), more than its memory budget of {_fmt_bytes(self.memory)}; "
                "use the block-wise reductions (result.cost, marginals, gradients) instead of the plan, "
                "or pass PointCloud(..., memory=...) large enough to hold it"
            )
        rowsP = []
        part = []
        for i0, i1, j0, j1, P, _ in self._plan_blocks(f, g, float(eps)):
            part.append(P)
            if j1 == m:
                rowsP.append(xp.concat(part, axis=2) if len(part) > 1 else part[0])
                part = []
        return xp.concat(rowsP, axis=1)

    # -- gradients with respect to the positions ---------------------------

    def position_grads(self, f, g, eps: float):
        r"""Gradients of ``<P, M>`` through the positions, ``P`` held fixed.

        .. math::

            G^x_i = \sum_j P_{ij}\, \partial_1 M(x_i, y_j), \qquad
            G^y_j = \sum_i P_{ij}\, \partial_2 M(x_i, y_j),

        with ``P_ij = exp((f_i + g_j - M_ij)/eps)``: at converged potentials
        this is the gradient of the entropic OT value with respect to ``x``
        and ``y`` (envelope theorem). Computed block by block.

        Returns
        -------
        gx : array (N, n, d)
        gy : array (N, m, d)
            For a symmetric cloud (``y=None``) the gradient with respect to
            the one set of points is ``gx + gy``.
        """
        xp = self._xp
        n, m = self.shape
        d = self.x.shape[1]
        N = self._batch(f, g)
        s = self.scale
        gx_parts, gy = [], xp.zeros((N, m, d), dtype=self.dtype, device=self._device)
        acc = None
        zero = xp.zeros((), dtype=self.dtype, device=self._device)
        for i0, i1, j0, j1, P, C in self._plan_blocks(f, g, float(eps)):
            xb, yb = self._xc[i0:i1, :], self._yc[j0:j1, :]
            if self.metric == "cityblock":
                gxs, gys = [], []
                for k in range(d):
                    sg = xp.sign(xb[:, k : k + 1] - xp.reshape(yb[:, k], (1, j1 - j0)))  # (r, c)
                    W = P * sg[None, :, :]
                    gxs.append(xp.sum(W, axis=2) * s)
                    gys.append(-xp.sum(W, axis=1) * s)
                gxb, gyb = xp.stack(gxs, axis=-1), xp.stack(gys, axis=-1)
            else:
                if self.metric == "euclidean":
                    # d(s |x - y|)/dx = s (x - y) / |x - y| = s^2 (x - y) / C; 0 where C = 0
                    pos = C > 0
                    inv = xp.where(pos, (s * s) / xp.where(pos, C, xp.ones((), dtype=C.dtype, device=self._device)), zero)
                    W = P * inv[None, :, :]
                    c2 = 1.0
                else:
                    W = P
                    c2 = 2.0 * s
                r = xp.sum(W, axis=2)  # (N, r)
                c = xp.sum(W, axis=1)  # (N, c)
                gxb = c2 * (r[..., None] * xb[None, :, :] - xp.matmul(W, yb))
                gyb = c2 * (c[..., None] * yb[None, :, :] - xp.matmul(xp.permute_dims(W, (0, 2, 1)), xb))
            acc = gxb if (acc is None or j0 == 0) else acc + gxb
            if j1 == m:
                gx_parts.append(acc)
            pad = [xp.zeros((N, j0, d), dtype=self.dtype, device=self._device), gyb, xp.zeros((N, m - j1, d), dtype=self.dtype, device=self._device)]
            gy = gy + (xp.concat(pad, axis=1) if (j0 > 0 or j1 < m) else gyb)
        return xp.concat(gx_parts, axis=1), gy
