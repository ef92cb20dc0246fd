/*
 * Network simplex for dense transport problems, and its certificate pass (private).
 *
 * Plain C over raw float64 / int64 buffers; a small CPython module at the end (buffer
 * protocol, GIL released during the kernels) is called from otcore/_network_simplex.py,
 * where the algorithm, its design notes and the outputs are documented. This file is a
 * line-by-line port of the former numba kernel (Bonneel et al. 2011, after LEMON):
 * north-west corner start, block search pricing, Orden's perturbation carried as an
 * exact integer part, lexicographic leaving arc, subtree potential shifts, exact
 * recompute before the final pricing, zero bins dropped per pair.
 *
 * The bindings check every buffer's item type, contiguity and shape and every plan
 * index before a kernel runs, so nothing here reads outside the buffers it is given.
 * Built with -ffp-contract=off semantics in mind: no fused multiply-adds are needed
 * and none are wanted (the results then match the numba kernel to the last bit).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

typedef int64_t i64;

/* Solve N pairs (A[p], B[p]) on the shared cost M (n x m).
 * Outputs: out_f (N, n), out_g (N, m) potentials of the positive bins (left untouched on
 * zero bins); out_rows, out_cols, out_vals (N, n + m - 1) the tree arcs; out_info (N, 2)
 * pivots and status (0 optimal, 1 max_iter, 2 a side without a positive bin).
 * Returns 0, or -1 when the work memory cannot be allocated. */
static int ns_solve(i64 N, i64 n, i64 m, const double *A, const double *B, const double *M,
                       i64 max_iter, double *out_f, double *out_g, i64 *out_rows, i64 *out_cols,
                       double *out_vals, i64 *out_info)
{
    const double tiny = 8.0 * 2.220446049250313e-16;
    const i64 nn = n + m;
    const i64 K = n + m - 1;
    if (N <= 0)
        return 0;
    if (n <= 0 || m <= 0)
        return -2;
    i64 *ia = malloc(sizeof(i64) * n);
    i64 *jb = malloc(sizeof(i64) * m);
    double *C = malloc(sizeof(double) * n * m);
    i64 *parent = malloc(sizeof(i64) * nn);
    i64 *depth = malloc(sizeof(i64) * nn);
    i64 *first = malloc(sizeof(i64) * nn);
    i64 *nxt = malloc(sizeof(i64) * nn);
    i64 *prv = malloc(sizeof(i64) * nn);
    double *fx = malloc(sizeof(double) * nn);
    i64 *fk = malloc(sizeof(i64) * nn);
    double *pot = malloc(sizeof(double) * nn);
    i64 *stack = malloc(sizeof(i64) * nn);
    int rc = 0;
    if (!ia || !jb || !C || !parent || !depth || !first || !nxt || !prv || !fx || !fk || !pot ||
        !stack) {
        rc = -1;
        goto done;
    }
    for (i64 p = 0; p < N; p++) {
        const double *a = A + p * n;
        const double *b = B + p * m;
        i64 *rows = out_rows + p * K;
        i64 *cols = out_cols + p * K;
        double *vals = out_vals + p * K;
        i64 n2 = 0, m2 = 0;
        for (i64 i = 0; i < n; i++)
            if (a[i] > 0)
                ia[n2++] = i;
        for (i64 j = 0; j < m; j++)
            if (b[j] > 0)
                jb[m2++] = j;
        if (n2 == 0 || m2 == 0) {
            for (i64 k = 0; k < K; k++) {
                rows[k] = 0;
                cols[k] = 0;
                vals[k] = 0.0;
            }
            out_info[2 * p] = 0;
            out_info[2 * p + 1] = 2;
            continue;
        }
        for (i64 i = 0; i < n2; i++) {
            const double *Mi = M + ia[i] * m;
            double *Ci = C + i * m2;
            for (i64 j = 0; j < m2; j++)
                Ci[j] = Mi[jb[j]];
        }
        const i64 N2 = n2 + m2;
        for (i64 v = 0; v < N2; v++) {
            first[v] = -1;
            nxt[v] = -1;
            prv[v] = -1;
        }
        /* --- north-west corner rule on the perturbed masses: a spanning staircase tree */
        parent[0] = -1;
        depth[0] = 0;
        pot[0] = 0.0;
        {
            i64 i = 0, j = 0;
            double sx = a[ia[0]];
            i64 sk = 1;
            double dx = b[jb[0]];
            i64 dk = (m2 == 1) ? n2 : 0;
            i64 cur = n2; /* the node whose arc to its parent is the current cell */
            parent[cur] = 0;
            depth[cur] = 1;
            first[0] = cur;
            pot[cur] = C[0];
            for (i64 step = 0; step < N2 - 1; step++) {
                int down;
                if (sx < dx || (sx == dx && sk <= dk)) {
                    fx[cur] = sx;
                    fk[cur] = sk;
                    dx -= sx;
                    dk -= sk;
                    sx = 0.0;
                    sk = 0;
                    down = 1;
                } else {
                    fx[cur] = dx;
                    fk[cur] = dk;
                    sx -= dx;
                    sk -= dk;
                    dx = 0.0;
                    dk = 0;
                    down = 0;
                }
                if (step == N2 - 2)
                    break;
                i64 par, nw;
                if ((down && i < n2 - 1) || j == m2 - 1) {
                    par = n2 + j;
                    i += 1;
                    nw = i;
                    sx += a[ia[i]];
                    sk += 1;
                } else {
                    par = i;
                    j += 1;
                    nw = n2 + j;
                    dx += b[jb[j]];
                    dk += (j == m2 - 1) ? n2 : 0;
                }
                pot[nw] = C[i * m2 + j] - pot[par];
                parent[nw] = par;
                depth[nw] = depth[par] + 1;
                nxt[nw] = first[par];
                if (first[par] != -1)
                    prv[first[par]] = nw;
                first[par] = nw;
                cur = nw;
            }
        }
        /* --- pivots: block search pricing */
        const i64 E = n2 * m2;
        i64 block = 10;
        while (block * block < E)
            block += 1;
        if (block > E)
            block = E;
        i64 ci = 0, cj = 0, it = 0;
        int exact = 1;
        i64 status = 0;
        for (;;) {
            double minr = 0.0;
            i64 bi = -1, bj = -1;
            i64 left = block, scanned = 0;
            while (scanned < E) {
                /* one row segment: reduced costs C_ij - u_i - v_j, v_j = pot[n2 + j] */
                i64 seg = m2 - cj;
                if (seg > left)
                    seg = left;
                const double ui = pot[ci];
                const double *Ci = C + ci * m2;
                const double *vj = pot + n2;
                for (i64 j = cj; j < cj + seg; j++) {
                    const double c = Ci[j];
                    const double pj = vj[j];
                    const double r = c - ui - pj;
                    if (r < minr) {
                        if (r < -tiny * (fabs(c) + fabs(ui) + fabs(pj))) {
                            minr = r;
                            bi = ci;
                            bj = j;
                        }
                    }
                }
                cj += seg;
                scanned += seg;
                left -= seg;
                if (cj == m2) {
                    cj = 0;
                    ci += 1;
                    if (ci == n2)
                        ci = 0;
                }
                if (left == 0) {
                    if (bi >= 0)
                        break;
                    left = block;
                }
            }
            if (bi < 0) {
                if (exact)
                    break;
                /* recompute every potential from the tree arcs (root first), then price
                 * again: the shifts of the pivots may have drifted by a few ulps */
                i64 top = 0;
                stack[0] = 0;
                while (top >= 0) {
                    i64 x = stack[top--];
                    if (x != 0) {
                        i64 pa = parent[x];
                        if (x < n2)
                            pot[x] = C[x * m2 + (pa - n2)] - pot[pa];
                        else
                            pot[x] = C[pa * m2 + (x - n2)] - pot[pa];
                    }
                    for (i64 c = first[x]; c != -1; c = nxt[c])
                        stack[++top] = c;
                }
                exact = 1;
                continue;
            }
            exact = 0;
            if (it >= max_iter) {
                status = 1;
                break;
            }
            it += 1;
            /* join of the cycle */
            const i64 u = bi, w = n2 + bj;
            i64 x1 = u, x2 = w;
            while (x1 != x2) {
                if (depth[x1] > depth[x2])
                    x1 = parent[x1];
                else if (depth[x2] > depth[x1])
                    x2 = parent[x2];
                else {
                    x1 = parent[x1];
                    x2 = parent[x2];
                }
            }
            const i64 join = x1;
            /* leaving arc: lexicographic minimum (x, k) over the decreasing arcs */
            double tx = INFINITY;
            i64 tk = 0, out = -1;
            int out_u = 1;
            for (x1 = u; x1 != join; x1 = parent[x1]) {
                if (x1 < n2 && (fx[x1] < tx || (fx[x1] == tx && fk[x1] < tk))) {
                    tx = fx[x1];
                    tk = fk[x1];
                    out = x1;
                    out_u = 1;
                }
            }
            for (x2 = w; x2 != join; x2 = parent[x2]) {
                if (x2 >= n2 && (fx[x2] < tx || (fx[x2] == tx && fk[x2] < tk))) {
                    tx = fx[x2];
                    tk = fk[x2];
                    out = x2;
                    out_u = 0;
                }
            }
            /* augment along the cycle */
            for (x1 = u; x1 != join; x1 = parent[x1]) {
                if (x1 < n2) {
                    fx[x1] -= tx;
                    fk[x1] -= tk;
                } else {
                    fx[x1] += tx;
                    fk[x1] += tk;
                }
            }
            for (x2 = w; x2 != join; x2 = parent[x2]) {
                if (x2 >= n2) {
                    fx[x2] -= tx;
                    fk[x2] -= tk;
                } else {
                    fx[x2] += tx;
                    fk[x2] += tk;
                }
            }
            /* re-hang the subtree cut off by the leaving arc below the entering arc */
            const i64 q = out_u ? u : w;
            i64 prev = out_u ? w : u;
            double cx = tx;
            i64 ck = tk;
            i64 x = q;
            for (;;) {
                const i64 up = parent[x];
                const double ox = fx[x];
                const i64 ok = fk[x];
                if (prv[x] != -1)
                    nxt[prv[x]] = nxt[x];
                else
                    first[up] = nxt[x];
                if (nxt[x] != -1)
                    prv[nxt[x]] = prv[x];
                parent[x] = prev;
                fx[x] = cx;
                fk[x] = ck;
                prv[x] = -1;
                nxt[x] = first[prev];
                if (first[prev] != -1)
                    prv[first[prev]] = x;
                first[prev] = x;
                if (x == out)
                    break;
                cx = ox;
                ck = ok;
                prev = x;
                x = up;
            }
            /* depths and potentials of the moved subtree: the potentials shift by the
             * entering arc's reduced cost (sources +d, sinks -d), which makes it tight */
            const double d = out_u ? minr : -minr;
            i64 top = 0;
            stack[0] = q;
            while (top >= 0) {
                const i64 y = stack[top--];
                depth[y] = depth[parent[y]] + 1;
                if (y < n2)
                    pot[y] += d;
                else
                    pot[y] -= d;
                for (i64 c = first[y]; c != -1; c = nxt[c])
                    stack[++top] = c;
            }
        }
        /* --- output: the tree arcs (original bin indices) and the potentials of kept bins */
        double *f = out_f + p * n;
        double *g = out_g + p * m;
        for (i64 i = 0; i < n2; i++)
            f[ia[i]] = pot[i];
        for (i64 j = 0; j < m2; j++)
            g[jb[j]] = pot[n2 + j];
        for (i64 k = 0; k < N2 - 1; k++) {
            const i64 x = k + 1; /* every node but the root (node 0) */
            const i64 pa = parent[x];
            if (x < n2) {
                rows[k] = ia[x];
                cols[k] = jb[pa - n2];
            } else {
                rows[k] = ia[pa];
                cols[k] = jb[x - n2];
            }
            vals[k] = fx[x];
        }
        for (i64 k = N2 - 1; k < K; k++) {
            rows[k] = 0;
            cols[k] = 0;
            vals[k] = 0.0;
        }
        out_info[2 * p] = it;
        out_info[2 * p + 1] = status;
    }
done:
    free(ia);
    free(jb);
    free(C);
    free(parent);
    free(depth);
    free(first);
    free(nxt);
    free(prv);
    free(fx);
    free(fk);
    free(pot);
    free(stack);
    return rc;
}

/* Complete the potentials on zero bins, normalise them and compute the certificate.
 * Per pair: g_j = min over positive rows of M_ij - f_i on zero columns, then
 * f_i = min_j M_ij - g_j on zero rows; the shift that makes <a, f> = <b, g>;
 * out[p] = (cost, max violation, duality gap, max marginal residual).
 * rows (N, K) must lie in [0, n) and cols in [0, m) (checked by the caller).
 * Returns 0, or -1 when the work memory cannot be allocated. */
static int ns_certify(i64 N, i64 n, i64 m, i64 K, const double *A, const double *B,
                         const double *M, double *f, double *g, const i64 *rows, const i64 *cols,
                         const double *vals, double *out)
{
    if (N <= 0)
        return 0;
    double *rs = malloc(sizeof(double) * (n > 0 ? n : 1));
    double *cs = malloc(sizeof(double) * (m > 0 ? m : 1));
    if (!rs || !cs) {
        free(rs);
        free(cs);
        return -1;
    }
    for (i64 p = 0; p < N; p++) {
        const double *a = A + p * n;
        const double *b = B + p * m;
        double *fp = f + p * n;
        double *gp = g + p * m;
        const i64 *rp = rows + p * K;
        const i64 *cp = cols + p * K;
        const double *vp = vals + p * K;
        for (i64 j = 0; j < m; j++) {
            if (!(b[j] > 0)) {
                double v = INFINITY;
                for (i64 i = 0; i < n; i++)
                    if (a[i] > 0 && M[i * m + j] - fp[i] < v)
                        v = M[i * m + j] - fp[i];
                gp[j] = v;
            }
        }
        for (i64 i = 0; i < n; i++) {
            if (!(a[i] > 0)) {
                double v = INFINITY;
                for (i64 j = 0; j < m; j++)
                    if (M[i * m + j] - gp[j] < v)
                        v = M[i * m + j] - gp[j];
                fp[i] = v;
            }
        }
        double sa = 0.0, af = 0.0, bg = 0.0;
        for (i64 i = 0; i < n; i++) {
            sa += a[i];
            af += a[i] * fp[i];
            rs[i] = 0.0;
        }
        for (i64 j = 0; j < m; j++) {
            bg += b[j] * gp[j];
            cs[j] = 0.0;
        }
        const double shift = (bg - af) / (2.0 * sa);
        for (i64 i = 0; i < n; i++)
            fp[i] += shift;
        for (i64 j = 0; j < m; j++)
            gp[j] -= shift;
        double cost = 0.0, neg = 0.0;
        for (i64 k = 0; k < K; k++) {
            const double v = vp[k];
            cost += v * M[rp[k] * m + cp[k]];
            rs[rp[k]] += v;
            cs[cp[k]] += v;
            if (-v > neg)
                neg = -v;
        }
        double dual = 0.0, res = neg, viol = 0.0;
        for (i64 i = 0; i < n; i++) {
            dual += a[i] * fp[i];
            const double r = fabs(rs[i] - a[i]);
            if (r > res)
                res = r;
            const double fi = fp[i];
            const double *Mi = M + i * m;
            for (i64 j = 0; j < m; j++) {
                const double t = fi + gp[j] - Mi[j];
                if (t > viol)
                    viol = t;
            }
        }
        for (i64 j = 0; j < m; j++) {
            dual += b[j] * gp[j];
            const double r = fabs(cs[j] - b[j]);
            if (r > res)
                res = r;
        }
        out[4 * p] = cost;
        out[4 * p + 1] = viol;
        out[4 * p + 2] = fabs(cost - dual);
        out[4 * p + 3] = res;
    }
    free(rs);
    free(cs);
    return 0;
}

/* ---------------------------------------------------------------------------------
 * Python bindings through the buffer protocol: every argument is a C-contiguous buffer
 * whose item type and shape are checked here against (N, n, m), so a wrong array is a
 * ValueError, never a read outside a buffer; the kernels run with the GIL released.
 * ------------------------------------------------------------------------------- */

#define NS_MAXBUF 13

typedef struct {
    Py_buffer v[NS_MAXBUF];
    int k;
} ns_bufs;

static void ns_release(ns_bufs *bs)
{
    for (int i = 0; i < bs->k; i++)
        PyBuffer_Release(&bs->v[i]);
    bs->k = 0;
}

/* Take a C-contiguous buffer of 8-byte items of kind 'd' (float64) or 'q' (int64) with
 * ndim dimensions d0 (, d1); -1 leaves a dimension free and returns it in *got. */
static void *ns_take(ns_bufs *bs, PyObject *obj, const char *name, char kind, int writable,
                     int ndim, i64 d0, i64 d1, i64 *got0, i64 *got1)
{
    Py_buffer *b = &bs->v[bs->k];
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, b, flags) != 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError,
                     "_nsimplex: %s must be a %sC-contiguous %s array", name,
                     writable ? "writeable " : "", kind == 'd' ? "float64" : "int64");
        return NULL;
    }
    bs->k++;
    const char *f = b->format ? b->format : "B";
    if (*f == '@' || *f == '=' || *f == '<')
        f++;
    int ok_kind = (kind == 'd') ? (f[0] == 'd') : (f[0] == 'q' || f[0] == 'l');
    if (!ok_kind || f[1] != '\0' || b->itemsize != 8) {
        PyErr_Format(PyExc_ValueError, "_nsimplex: %s must be %s (got format '%s')", name,
                     kind == 'd' ? "float64" : "int64", b->format ? b->format : "B");
        return NULL;
    }
    i64 s0 = b->ndim >= 1 ? (i64)b->shape[0] : -1, s1 = b->ndim >= 2 ? (i64)b->shape[1] : -1;
    if (b->ndim != ndim || (d0 >= 0 && s0 != d0) || (ndim == 2 && d1 >= 0 && s1 != d1)) {
        PyErr_Format(PyExc_ValueError, "_nsimplex: %s has the wrong shape (%d-D array expected)",
                     name, ndim);
        return NULL;
    }
    if (got0)
        *got0 = s0;
    if (got1)
        *got1 = s1;
    return b->buf;
}

static PyObject *py_solve(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *oA, *oB, *oM, *of, *og, *orr, *oc, *ov, *oi;
    long long max_iter;
    if (!PyArg_ParseTuple(args, "OOOLOOOOOO", &oA, &oB, &oM, &max_iter, &of, &og, &orr, &oc, &ov,
                          &oi))
        return NULL;
    ns_bufs bs = {.k = 0};
    i64 N, n, N2, m;
    const double *A = ns_take(&bs, oA, "A", 'd', 0, 2, -1, -1, &N, &n);
    const double *B = A ? ns_take(&bs, oB, "B", 'd', 0, 2, -1, -1, &N2, &m) : NULL;
    if (B && N2 != N) {
        PyErr_SetString(PyExc_ValueError, "_nsimplex: A and B hold different numbers of pairs");
        B = NULL;
    }
    const i64 K = B ? n + m - 1 : 0;
    const double *M = B ? ns_take(&bs, oM, "M", 'd', 0, 2, n, m, NULL, NULL) : NULL;
    double *f = M ? ns_take(&bs, of, "f", 'd', 1, 2, N, n, NULL, NULL) : NULL;
    double *g = f ? ns_take(&bs, og, "g", 'd', 1, 2, N, m, NULL, NULL) : NULL;
    i64 *rows = g ? ns_take(&bs, orr, "rows", 'q', 1, 2, N, K, NULL, NULL) : NULL;
    i64 *cols = rows ? ns_take(&bs, oc, "cols", 'q', 1, 2, N, K, NULL, NULL) : NULL;
    double *vals = cols ? ns_take(&bs, ov, "vals", 'd', 1, 2, N, K, NULL, NULL) : NULL;
    i64 *info = vals ? ns_take(&bs, oi, "info", 'q', 1, 2, N, 2, NULL, NULL) : NULL;
    if (!info) {
        ns_release(&bs);
        return NULL;
    }
    int rc = 0;
    if (N > 0 && n > 0 && m > 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = ns_solve(N, n, m, A, B, M, (i64)max_iter, f, g, rows, cols, vals, info);
        Py_END_ALLOW_THREADS
    }
    ns_release(&bs);
    if (rc == -1)
        return PyErr_NoMemory();
    return PyLong_FromLong(rc);
}

static PyObject *py_certify(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *oA, *oB, *oM, *of, *og, *orr, *oc, *ov, *oo;
    if (!PyArg_ParseTuple(args, "OOOOOOOOO", &oA, &oB, &oM, &of, &og, &orr, &oc, &ov, &oo))
        return NULL;
    ns_bufs bs = {.k = 0};
    i64 N, n, N2, m, N3, K;
    const double *A = ns_take(&bs, oA, "A", 'd', 0, 2, -1, -1, &N, &n);
    const double *B = A ? ns_take(&bs, oB, "B", 'd', 0, 2, -1, -1, &N2, &m) : NULL;
    if (B && N2 != N) {
        PyErr_SetString(PyExc_ValueError, "_nsimplex: A and B hold different numbers of pairs");
        B = NULL;
    }
    const double *M = B ? ns_take(&bs, oM, "M", 'd', 0, 2, n, m, NULL, NULL) : NULL;
    double *f = M ? ns_take(&bs, of, "f", 'd', 1, 2, N, n, NULL, NULL) : NULL;
    double *g = f ? ns_take(&bs, og, "g", 'd', 1, 2, N, m, NULL, NULL) : NULL;
    const i64 *rows = g ? ns_take(&bs, orr, "rows", 'q', 0, 2, -1, -1, &N3, &K) : NULL;
    if (rows && N3 != N) {
        PyErr_SetString(PyExc_ValueError, "_nsimplex: rows must have one row per pair");
        rows = NULL;
    }
    const i64 *cols = rows ? ns_take(&bs, oc, "cols", 'q', 0, 2, N, K, NULL, NULL) : NULL;
    const double *vals = cols ? ns_take(&bs, ov, "vals", 'd', 0, 2, N, K, NULL, NULL) : NULL;
    double *out = vals ? ns_take(&bs, oo, "out", 'd', 1, 2, N, 4, NULL, NULL) : NULL;
    if (!out) {
        ns_release(&bs);
        return NULL;
    }
    /* every plan index inside the cost matrix: the certificate never reads outside M */
    for (i64 k = 0; k < N * K; k++) {
        if (rows[k] < 0 || rows[k] >= n || cols[k] < 0 || cols[k] >= m) {
            ns_release(&bs);
            PyErr_Format(PyExc_ValueError,
                         "_nsimplex: plan index (%lld, %lld) outside the (%lld, %lld) cost matrix",
                         (long long)rows[k], (long long)cols[k], (long long)n, (long long)m);
            return NULL;
        }
    }
    int rc = 0;
    if (N > 0 && n > 0 && m > 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = ns_certify(N, n, m, K, A, B, M, f, g, rows, cols, vals, out);
        Py_END_ALLOW_THREADS
    }
    ns_release(&bs);
    if (rc == -1)
        return PyErr_NoMemory();
    return PyLong_FromLong(rc);
}

static PyMethodDef nsimplex_methods[] = {
    {"solve", py_solve, METH_VARARGS,
     "solve(A, B, M, max_iter, f, g, rows, cols, vals, info): the network simplex on every "
     "pair, outputs written in place."},
    {"certify", py_certify, METH_VARARGS,
     "certify(A, B, M, f, g, rows, cols, vals, out): potentials completed and normalised in "
     "place, out[p] = (cost, max violation, gap, max residual)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef nsimplex_module = {
    PyModuleDef_HEAD_INIT, "_nsimplex",
    "Network simplex kernels in C (private; see otcore._network_simplex).", -1, nsimplex_methods,
    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__nsimplex(void) { return PyModule_Create(&nsimplex_module); }
