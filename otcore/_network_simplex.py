r"""Network simplex for dense transport problems, compiled with numba (private).

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
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["certify", "solve_batch"]


@numba.njit(cache=True, nogil=True)
def _kernel(A, B, M, max_iter, out_f, out_g, out_rows, out_cols, out_vals, out_info):
    N, n = A.shape
    m = B.shape[1]
    tiny = 8.0 * 2.220446049250313e-16
    ia = np.empty(n, np.int64)
    jb = np.empty(m, np.int64)
    C = np.empty(n * m, np.float64)
    nn = n + m
    parent = np.empty(nn, np.int64)
    depth = np.empty(nn, np.int64)
    first = np.empty(nn, np.int64)
    nxt = np.empty(nn, np.int64)
    prv = np.empty(nn, np.int64)
    fx = np.empty(nn, np.float64)
    fk = np.empty(nn, np.int64)
    pot = np.empty(nn, np.float64)
    stack = np.empty(nn, np.int64)
    for p in range(N):
        a = A[p]
        b = B[p]
        n2 = 0
        for i in range(n):
            if a[i] > 0:
                ia[n2] = i
                n2 += 1
        m2 = 0
        for j in range(m):
            if b[j] > 0:
                jb[m2] = j
                m2 += 1
        for i in range(n2):
            for j in range(m2):
                C[i * m2 + j] = M[ia[i], jb[j]]
        N2 = n2 + m2
        for v in range(N2):
            first[v] = -1
            nxt[v] = -1
            prv[v] = -1
        # --- north-west corner rule on the perturbed masses: a spanning staircase tree
        parent[0] = -1
        depth[0] = 0
        pot[0] = 0.0
        i = 0
        j = 0
        sx = a[ia[0]]
        sk = 1
        dx = b[jb[0]]
        dk = n2 if m2 == 1 else 0
        cur = n2  # the node whose arc to its parent is the current cell
        parent[cur] = 0
        depth[cur] = 1
        first[0] = cur
        pot[cur] = C[0]
        for step in range(N2 - 1):
            if sx < dx or (sx == dx and sk <= dk):
                fx[cur] = sx
                fk[cur] = sk
                dx -= sx
                dk -= sk
                sx = 0.0
                sk = 0
                down = True
            else:
                fx[cur] = dx
                fk[cur] = dk
                sx -= dx
                sk -= dk
                dx = 0.0
                dk = 0
                down = False
            if step == N2 - 2:
                break
            if (down and i < n2 - 1) or j == m2 - 1:
                par = n2 + j
                i += 1
                new = i
                sx += a[ia[i]]
                sk += 1
                pot[new] = C[i * m2 + j] - pot[par]
            else:
                par = i
                j += 1
                new = n2 + j
                dx += b[jb[j]]
                dk += n2 if j == m2 - 1 else 0
                pot[new] = C[i * m2 + j] - pot[par]
            parent[new] = par
            depth[new] = depth[par] + 1
            nxt[new] = first[par]
            if first[par] != -1:
                prv[first[par]] = new
            first[par] = new
            cur = new
        # --- pivots: block search pricing
        E = n2 * m2
        block = 10
        while block * block < E:
            block += 1
        if block > E:
            block = E
        ci = 0
        cj = 0
        it = 0
        exact = True
        status = 0
        while True:
            minr = 0.0
            bi = -1
            bj = -1
            left = block
            scanned = 0
            while scanned < E:
                # one row segment: reduced costs C_ij - u_i - v_j, v_j = pot[n2 + j]
                seg = m2 - cj
                if seg > left:
                    seg = left
                ui = pot[ci]
                base = ci * m2
                for j in range(cj, cj + seg):
                    c = C[base + j]
                    pj = pot[n2 + j]
                    r = c - ui - pj
                    if r < minr:
                        if r < -tiny * (abs(c) + abs(ui) + abs(pj)):
                            minr = r
                            bi = ci
                            bj = j
                cj += seg
                scanned += seg
                left -= seg
                if cj == m2:
                    cj = 0
                    ci += 1
                    if ci == n2:
                        ci = 0
                if left == 0:
                    if bi >= 0:
                        break
                    left = block
            if bi < 0:
                if exact:
                    break
                # recompute every potential from the tree arcs (root first), then price
                # again: the shifts of the pivots may have drifted by a few ulps
                top = 0
                stack[0] = 0
                while top >= 0:
                    x = stack[top]
                    top -= 1
                    if x != 0:
                        pa = parent[x]
                        if x < n2:
                            pot[x] = C[x * m2 + (pa - n2)] - pot[pa]
                        else:
                            pot[x] = C[pa * m2 + (x - n2)] - pot[pa]
                    c = first[x]
                    while c != -1:
                        top += 1
                        stack[top] = c
                        c = nxt[c]
                exact = True
                continue
            exact = False
            if it >= max_iter:
                status = 1
                break
            it += 1
            # join of the cycle
            u = bi
            w = n2 + bj
            x1 = u
            x2 = w
            while x1 != x2:
                if depth[x1] > depth[x2]:
                    x1 = parent[x1]
                elif depth[x2] > depth[x1]:
                    x2 = parent[x2]
                else:
                    x1 = parent[x1]
                    x2 = parent[x2]
            join = x1
            # leaving arc: lexicographic minimum (x, k) over the decreasing arcs
            tx = np.inf
            tk = 0
            out = -1
            out_u = True
            x1 = u
            while x1 != join:
                if x1 < n2 and (fx[x1] < tx or (fx[x1] == tx and fk[x1] < tk)):
                    tx = fx[x1]
                    tk = fk[x1]
                    out = x1
                    out_u = True
                x1 = parent[x1]
            x2 = w
            while x2 != join:
                if x2 >= n2 and (fx[x2] < tx or (fx[x2] == tx and fk[x2] < tk)):
                    tx = fx[x2]
                    tk = fk[x2]
                    out = x2
                    out_u = False
                x2 = parent[x2]
            # augment along the cycle
            x1 = u
            while x1 != join:
                if x1 < n2:
                    fx[x1] -= tx
                    fk[x1] -= tk
                else:
                    fx[x1] += tx
                    fk[x1] += tk
                x1 = parent[x1]
            x2 = w
            while x2 != join:
                if x2 >= n2:
                    fx[x2] -= tx
                    fk[x2] -= tk
                else:
                    fx[x2] += tx
                    fk[x2] += tk
                x2 = parent[x2]
            # re-hang the subtree cut off by the leaving arc below the entering arc
            q = u if out_u else w
            prev = w if out_u else u
            cx = tx
            ck = tk
            x = q
            while True:
                up = parent[x]
                ox = fx[x]
                ok = fk[x]
                if prv[x] != -1:
                    nxt[prv[x]] = nxt[x]
                else:
                    first[up] = nxt[x]
                if nxt[x] != -1:
                    prv[nxt[x]] = prv[x]
                parent[x] = prev
                fx[x] = cx
                fk[x] = ck
                prv[x] = -1
                nxt[x] = first[prev]
                if first[prev] != -1:
                    prv[first[prev]] = x
                first[prev] = x
                if x == out:
                    break
                cx = ox
                ck = ok
                prev = x
                x = up
            # depths and potentials of the moved subtree: the potentials shift by the
            # entering arc's reduced cost (sources +d, sinks -d), which makes it tight
            d = minr if out_u else -minr
            top = 0
            stack[0] = q
            while top >= 0:
                x = stack[top]
                top -= 1
                depth[x] = depth[parent[x]] + 1
                if x < n2:
                    pot[x] += d
                else:
                    pot[x] -= d
                c = first[x]
                while c != -1:
                    top += 1
                    stack[top] = c
                    c = nxt[c]
        # --- output: the tree arcs (original bin indices) and the potentials of kept bins
        f = out_f[p]
        g = out_g[p]
        for i in range(n2):
            f[ia[i]] = pot[i]
        for j in range(m2):
            g[jb[j]] = pot[n2 + j]
        for k in range(N2 - 1):
            x = k + 1  # every node but the root (node 0)
            pa = parent[x]
            if x < n2:
                out_rows[p, k] = ia[x]
                out_cols[p, k] = jb[pa - n2]
            else:
                out_rows[p, k] = ia[pa]
                out_cols[p, k] = jb[x - n2]
            out_vals[p, k] = fx[x]
        for k in range(N2 - 1, n + m - 1):
            out_rows[p, k] = 0
            out_cols[p, k] = 0
            out_vals[p, k] = 0.0
        out_info[p, 0] = it
        out_info[p, 1] = status
    return 0


@numba.njit(cache=True, nogil=True)
def _certify(A, B, M, f, g, rows, cols, vals, out):
    """Complete the potentials on zero bins, normalise them and compute the certificate.

    Per pair: g_j = min over positive rows of M_ij - f_i on zero columns, then
    f_i = min_j M_ij - g_j on zero rows; the shift that makes <a, f> = <b, g>;
    ``out[p] = (cost, max violation, duality gap, max marginal residual)``.
    """
    N, n = A.shape
    m = B.shape[1]
    rs = np.empty(n)
    cs = np.empty(m)
    for p in range(N):
        a = A[p]
        b = B[p]
        fp = f[p]
        gp = g[p]
        for j in range(m):
            if not b[j] > 0:
                v = np.inf
                for i in range(n):
                    if a[i] > 0 and M[i, j] - fp[i] < v:
                        v = M[i, j] - fp[i]
                gp[j] = v
        for i in range(n):
            if not a[i] > 0:
                v = np.inf
                for j in range(m):
                    if M[i, j] - gp[j] < v:
                        v = M[i, j] - gp[j]
                fp[i] = v
        sa = 0.0
        af = 0.0
        bg = 0.0
        for i in range(n):
            sa += a[i]
            af += a[i] * fp[i]
            rs[i] = 0.0
        for j in range(m):
            bg += b[j] * gp[j]
            cs[j] = 0.0
        shift = (bg - af) / (2.0 * sa)
        for i in range(n):
            fp[i] += shift
        for j in range(m):
            gp[j] -= shift
        cost = 0.0
        neg = 0.0
        for k in range(rows.shape[1]):
            v = vals[p, k]
            cost += v * M[rows[p, k], cols[p, k]]
            rs[rows[p, k]] += v
            cs[cols[p, k]] += v
            if -v > neg:
                neg = -v
        dual = 0.0
        res = neg
        viol = 0.0
        for i in range(n):
            dual += a[i] * fp[i]
            res = max(res, abs(rs[i] - a[i]))
            fi = fp[i]
            for j in range(m):
                t = fi + gp[j] - M[i, j]
                if t > viol:
                    viol = t
        for j in range(m):
            dual += b[j] * gp[j]
            res = max(res, abs(cs[j] - b[j]))
        out[p, 0] = cost
        out[p, 1] = viol
        out[p, 2] = abs(cost - dual)
        out[p, 3] = res


def solve_batch(A, B, M, *, max_iter=None):
    """Solve every pair ``(A[k], B[k])`` on the shared cost ``M`` (host float64 arrays).

    ``A`` (N, n) and ``B`` (N, m) nonnegative with equal row totals (each row with
    at least one positive entry), ``M`` (n, m) finite. Returns ``f`` (N, n) and ``g`` (N, m), the potentials of the positive
    bins (NaN on zero bins), the tree arcs ``rows, cols, vals`` (N, n + m - 1; unused
    slots hold zero flow), the pivots (N,) and the status (N,): 0 optimal (no
    reduced cost below rounding level), 1 ``max_iter`` pivots reached.
    """
    A = np.ascontiguousarray(A, dtype=np.float64)
    B = np.ascontiguousarray(B, dtype=np.float64)
    M = np.ascontiguousarray(M, dtype=np.float64)
    N, n = A.shape
    m = B.shape[1]
    f = np.full((N, n), np.nan)
    g = np.full((N, m), np.nan)
    k = n + m - 1
    rows = np.empty((N, k), dtype=np.int64)
    cols = np.empty((N, k), dtype=np.int64)
    vals = np.empty((N, k))
    info = np.empty((N, 2), dtype=np.int64)
    if N:
        max_iter = np.int64(2**62 if max_iter is None else max_iter)
        _kernel(A, B, M, max_iter, f, g, rows, cols, vals, info)
    return f, g, rows, cols, vals, info[:, 0], info[:, 1]


def certify(A, B, M, f, g, rows, cols, vals):
    """Potentials completed on zero bins and normalised (``f``, ``g`` in place), and
    ``(cost, max_violation, gap, residual)``, each (N,), for the plans ``(rows, cols,
    vals)`` (host float64, as returned by :func:`solve_batch`)."""
    out = np.zeros((A.shape[0], 4))
    if A.shape[0]:
        _certify(A, B, M, f, g, rows, cols, vals, out)
    return out[:, 0], out[:, 1], out[:, 2], out[:, 3]
