/* Fixed-iteration Sinkhorn for small dense batches, in C (private; see
 * otcore._sinkhorn._host_solve).
 *
 * One call runs, for every pair p of a batch sharing the cost M (n, m), the iterations of
 * otcore._sinkhorn in fixed-iteration mode and the quantities of its finalize, in float64:
 *
 * - the scaling form (Algorithm 1: v = b / (u K), u = a / (K v), K = exp(-(M - min M) / reg))
 *   while the caller's rule allows it; a pair whose scalings leave [2^-250, 2^250] is redone
 *   in the log form;
 * - the log form, g = reg log b + softmin_cols(f~), f~ = reg log a + softmin_rows(g~)
 *   (masked bins: -inf), softmin_rows(h)_i = -reg log sum_j exp((h_j - M_ij) / reg). While
 *   ratio = (max M - min M) / reg <= 600 a soft-min is one product against a kernel shared
 *   by the batch, Kr_ij = exp(-(M_ij - min_j M_ij) / reg), of the max-shifted exponentials
 *   V_j = exp(h_j / reg - t): the largest term of every row is >= exp(-ratio) while a term
 *   lost to underflow is < exp(-708), so the sum is exact to rounding, with m + n
 *   exponentials per half-step instead of n m. Beyond that ratio every term is
 *   exponentiated (exact log-sum-exp).
 *
 * Both start from u = 1/n and stop early, as the Python driver does, at a check iteration
 * (1, 2, 4, then every 8th) that changes the state by at most 4 ulp.
 *
 * Outputs per pair: f (potentials, zero-mass bins hold the c-transform, shifted by
 * reg log sum(a)), g, grad = f - mean f, and stats = (cost <P, M>, reg_cost, marginal error,
 * iterations done, log form used). The inputs are scanned first (sk_accept): anything not
 * finite, negative, of non-positive total or of unequal totals is refused, and the caller
 * takes the general engine, whose checks name the problem. The bindings check item types,
 * contiguity and shapes.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef long long i64;

typedef struct {
    i64 n, m;
    double reg;
    int exact;
    const double *M;     /* (n, m) */
    double *KrT, *KrMT;  /* (m, n): exp(-(M - rmin) / reg) transposed, and times M */
    double *Kc;          /* (n, m): exp(-(M - cmin) / reg) */
    double *rmin, *cmin; /* row and column minima of M */
    double *Kg, *KgT, *KgMT; /* exp(-(M - min M) / reg) (n, m), transposed (m, n), times M (m, n) */
    double kmin;         /* min M */
    int log_ready;       /* KrT, KrMT, Kc built */
} sk_kernel;

/* Every product below is written as a sum of scaled kernel rows (y += x_k K_k.), which
 * compilers vectorise without reassociating a sum, and skips the zero weights (masked or
 * zero-mass bins). */
static void sk_axpy(double *restrict y, const double *restrict K, const double *restrict x,
                    i64 rows, i64 cols)
{
    for (i64 c = 0; c < cols; c++)
        y[c] = 0.0;
    for (i64 r = 0; r < rows; r++) {
        const double xr = x[r];
        if (xr == 0.0)
            continue;
        const double *restrict k = K + r * cols;
        for (i64 c = 0; c < cols; c++)
            y[c] += xr * k[c];
    }
}

/* max over the finite entries of h / reg (0 if none) and V = exp(h / reg - t) */
static double sk_shift(const double *h, i64 k, double reg, double *V)
{
    double t = -INFINITY;
    for (i64 i = 0; i < k; i++) {
        double y = h[i] / reg;
        if (y > t)
            t = y;
    }
    if (!isfinite(t))
        t = 0.0;
    for (i64 i = 0; i < k; i++)
        V[i] = exp(h[i] / reg - t);
    return t;
}

/* -reg log sum_t exp((h_t - c_t) / reg), max-shifted, over the k costs c_t = c[t * step]
 * (a row of M: step 1; a column: step m); *cbar (when not NULL) the mean cost under the
 * softmax. */
static double sk_exact(const double *h, const double *c, i64 step, i64 k, double reg,
                       double *cbar)
{
    double mx = -INFINITY;
    for (i64 t = 0; t < k; t++) {
        double z = (h[t] - c[t * step]) / reg;
        if (z > mx)
            mx = z;
    }
    if (!isfinite(mx))
        mx = 0.0;
    double S = 0.0, C = 0.0;
    for (i64 t = 0; t < k; t++) {
        double e = exp((h[t] - c[t * step]) / reg - mx);
        S += e;
        C += e * c[t * step];
    }
    if (cbar)
        *cbar = C / S;
    return -reg * (mx + log(S));
}

/* out_i = -reg log sum_j exp((h_j - M_ij) / reg); cbar_i = the mean cost of row i's softmax
 * (when cbar is not NULL). h: (m,), -inf on masked bins. R: (n,) scratch. */
static void sk_softmin_rows(const sk_kernel *K, const double *h, double *out, double *cbar,
                            double *V, double *R)
{
    const i64 n = K->n, m = K->m;
    const double reg = K->reg;
    if (K->exact) {
        for (i64 i = 0; i < n; i++)
            out[i] = sk_exact(h, K->M + i * m, 1, m, reg, cbar ? cbar + i : NULL);
        return;
    }
    double t = sk_shift(h, m, reg, V);
    sk_axpy(R, K->KrT, V, m, n);
    for (i64 i = 0; i < n; i++)
        out[i] = K->rmin[i] - reg * (t + log(R[i]));
    if (cbar) {
        sk_axpy(cbar, K->KrMT, V, m, n);
        for (i64 i = 0; i < n; i++)
            cbar[i] /= R[i];
    }
}

/* out_j = -reg log sum_i exp((h_i - M_ij) / reg). h: (n,). R: (m,) scratch. */
static void sk_softmin_cols(const sk_kernel *K, const double *h, double *out, double *V,
                            double *R)
{
    const i64 n = K->n, m = K->m;
    const double reg = K->reg;
    if (K->exact) {
        for (i64 j = 0; j < m; j++)
            out[j] = sk_exact(h, K->M + j, m, n, reg, NULL);
        return;
    }
    double t = sk_shift(h, n, reg, V);
    sk_axpy(R, K->Kc, V, n, m);
    for (i64 j = 0; j < m; j++)
        out[j] = K->cmin[j] - reg * (t + log(R[j]));
}

/* the log form's shared kernels (KrT, KrMT, Kc), once */
static void sk_kernel_log(sk_kernel *K)
{
    const i64 n = K->n, m = K->m;
    if (K->exact || K->log_ready)
        return;
    for (i64 i = 0; i < n; i++)
        for (i64 j = 0; j < m; j++) {
            const double c = K->M[i * m + j], kr = exp(-(c - K->rmin[i]) / K->reg);
            K->KrT[j * n + i] = kr;
            K->KrMT[j * n + i] = kr * c;
            K->Kc[i * m + j] = exp(-(c - K->cmin[j]) / K->reg);
        }
    K->log_ready = 1;
}

static int sk_kernel_init(sk_kernel *K, i64 n, i64 m, const double *M, double reg, int mode)
{
    memset(K, 0, sizeof *K);
    K->n = n;
    K->m = m;
    K->M = M;
    K->reg = reg;
    K->exact = mode == 2;
    /* one block: KrT, KrMT, Kc, Kg, KgT, KgMT (n m each), rmin (n), cmin (m) */
    K->KrT = malloc(sizeof(double) * (size_t)(6 * n * m + n + m));
    if (!K->KrT)
        return -1;
    if (K->exact)
        return 0;
    K->KrMT = K->KrT + n * m;
    K->Kc = K->KrMT + n * m;
    K->Kg = K->Kc + n * m;
    K->KgT = K->Kg + n * m;
    K->KgMT = K->KgT + n * m;
    K->rmin = K->KgMT + n * m;
    K->cmin = K->rmin + n;
    double lo_all = INFINITY;
    for (i64 i = 0; i < n; i++) {
        double lo = INFINITY;
        for (i64 j = 0; j < m; j++)
            lo = M[i * m + j] < lo ? M[i * m + j] : lo;
        K->rmin[i] = lo;
        lo_all = lo < lo_all ? lo : lo_all;
    }
    for (i64 j = 0; j < m; j++) {
        double lo = INFINITY;
        for (i64 i = 0; i < n; i++)
            lo = M[i * m + j] < lo ? M[i * m + j] : lo;
        K->cmin[j] = lo;
    }
    K->kmin = lo_all;
    if (mode == 0) /* the scaling form's kernel; the log form's is built if a pair falls back */
        for (i64 i = 0; i < n; i++)
            for (i64 j = 0; j < m; j++) {
                const double c = M[i * m + j], kg = exp(-(c - lo_all) / reg);
                K->Kg[i * m + j] = kg;
                K->KgT[j * n + i] = kg;
                K->KgMT[j * n + i] = kg * c;
            }
    else
        sk_kernel_log(K);
    return 0;
}

/* The finalize quantities shared by both forms, from the potentials f (shifted to the
 * caller's masses) and g of the normalised problem (masses an, bn; sa the total of a):
 * grad = f - mean f and stats = (cost sa, reg_cost, err, iterations done). */
static void sk_finish(const sk_kernel *K, const double *an, const double *bn, const double *f,
                      const double *g, double sa, double cost, double err, i64 done,
                      double *grad, double *stats)
{
    const i64 n = K->n, m = K->m;
    double fa = 0.0, gb = 0.0, fsum = 0.0;
    for (i64 i = 0; i < n; i++) {
        fa += an[i] * f[i];
        fsum += f[i];
    }
    for (i64 j = 0; j < m; j++)
        gb += bn[j] * g[j];
    const double mean = fsum / (double)n;
    for (i64 i = 0; i < n; i++)
        grad[i] = f[i] - mean;
    stats[0] = cost * sa;
    stats[1] = sa * (fa + gb - K->reg);
    stats[2] = err;
    stats[3] = (double)done;
}

/* one pair: a (n,), b (m,) as given (positive totals); outputs as described above */
static void sk_pair(const sk_kernel *K, const double *a, const double *b, i64 n_iter,
                    double *f, double *g, double *grad, double *stats, double *w)
{
    const i64 n = K->n, m = K->m;
    const double reg = K->reg;
    double *an = w, *loga = an + n, *fm = loga + n, *prev = fm + n, *fnext = prev + n,
           *cbar = fnext + n, *bn = cbar + n, *logb = bn + m, *gm = logb + m,
           *V = gm + m, *R = V + (n > m ? n : m); /* V, R: max(n, m) */
    double sa = 0.0, sb = 0.0;
    for (i64 i = 0; i < n; i++)
        sa += a[i];
    for (i64 j = 0; j < m; j++)
        sb += b[j];
    for (i64 i = 0; i < n; i++) {
        an[i] = a[i] / sa;
        loga[i] = an[i] > 0 ? reg * log(an[i]) : 0.0;
        fm[i] = -reg * log((double)n); /* Algorithm 1's u = 1/n, on every bin */
    }
    for (i64 j = 0; j < m; j++) {
        bn[j] = b[j] / sb;
        logb[j] = bn[j] > 0 ? reg * log(bn[j]) : 0.0;
    }
    i64 done = n_iter;
    for (i64 it = 1; it <= n_iter; it++) {
        const int check = ((it & (it - 1)) == 0 || it % 8 == 0) && it < n_iter;
        if (check)
            memcpy(prev, fm, sizeof(double) * (size_t)n);
        sk_softmin_cols(K, fm, g, V, R);
        for (i64 j = 0; j < m; j++)
            gm[j] = bn[j] > 0 ? logb[j] + g[j] : -INFINITY;
        sk_softmin_rows(K, gm, fnext, NULL, V, R);
        for (i64 i = 0; i < n; i++)
            fm[i] = an[i] > 0 ? loga[i] + fnext[i] : -INFINITY;
        if (check) {
            int same = 1;
            for (i64 i = 0; i < n && same; i++) {
                double d = fabs(fm[i] - prev[i]);
                same = fm[i] == prev[i] || d <= 4.0 * DBL_EPSILON * (fabs(prev[i]) + reg);
            }
            if (same) {
                done = it;
                break;
            }
        }
    }
    /* the last half-step: g of the state, then the row soft-min of g (error, cost) */
    sk_softmin_cols(K, fm, g, V, R);
    for (i64 j = 0; j < m; j++) {
        g[j] += logb[j];
        gm[j] = bn[j] > 0 ? g[j] : -INFINITY;
    }
    sk_softmin_rows(K, gm, fnext, cbar, V, R); /* fnext = s: the soft-min, without reg log a */
    double err = 0.0, cost = 0.0, shift = reg * log(sa);
    for (i64 i = 0; i < n; i++) {
        if (an[i] > 0) {
            err += an[i] * fabs(expm1((fm[i] - (loga[i] + fnext[i])) / reg));
            cost += exp((fm[i] - fnext[i]) / reg) * cbar[i];
            f[i] = fm[i] + shift;
        } else {
            f[i] = loga[i] + fnext[i] + shift;
        }
    }
    sk_finish(K, an, bn, f, g, sa, cost, err, done, grad, stats);
}

/* The scaling form of the same iteration (Algorithm 1: v = b / (u K), u = a / (K v),
 * K = exp(-(M - min M) / reg)), for ratios where K and the scalings stay far from under- and
 * overflow. A block of pairs advances in lockstep, one pass of every pair per sweep: a pass
 * is a chain of dependent products and divisions, and interleaving independent pairs lets the
 * processor overlap them. A pair leaves after its final half-step (n_iter iterations, or the
 * 4-ulp early stop). fb[p] = 0 when every scaling of a positive bin of pair p lies within
 * [2^-250, 2^250] (then u K v equals exp((f + g - M) / reg) to rounding, as the log form's),
 * else 1 (the caller redoes the pair in the log form). */
#define SK_BLOCK 64

static void sk_block_scaling(const sk_kernel *K, i64 P, const double *const *a,
                             const double *const *b, i64 n_iter, double *const *o, char *fb,
                             double *w)
{
    const i64 n = K->n, m = K->m;
    const double reg = K->reg, cmin = K->kmin, lo = 0x1p-250, hi = 0x1p250;
    const double *Kg = K->Kg, *KgT = K->KgT, *KgMT = K->KgMT;
    /* per pair p: an, u, prev, Kv (n each), bn, v, uK (m each) */
    const i64 per = 4 * n + 3 * m;
    i64 left = P, done[SK_BLOCK];
    double sa[SK_BLOCK]; /* the totals of a */
    char state[SK_BLOCK]; /* 0 iterating, 1 next pass is the final half-step, 2 finished */
    for (i64 p = 0; p < P; p++) {
        double *an = w + p * per, *u = an + n, *bn = u + 3 * n;
        double sb = 0.0;
        sa[p] = 0.0;
        for (i64 i = 0; i < n; i++)
            sa[p] += a[p][i];
        for (i64 j = 0; j < m; j++)
            sb += b[p][j];
        for (i64 i = 0; i < n; i++) {
            an[i] = a[p][i] / sa[p];
            u[i] = 1.0 / (double)n;
        }
        for (i64 j = 0; j < m; j++)
            bn[j] = b[p][j] / sb;
        done[p] = n_iter;
        state[p] = 0;
    }
    for (i64 it = 1; left > 0; it++) {
        for (i64 p = 0; p < P; p++) {
            if (state[p] == 2)
                continue;
            double *an = w + p * per, *u = an + n, *prev = u + n, *Kv = prev + n, *bn = Kv + n,
                   *v = bn + m, *uK = v + m;
            sk_axpy(uK, Kg, u, n, m);
            for (i64 j = 0; j < m; j++)
                v[j] = bn[j] / uK[j];
            sk_axpy(Kv, KgT, v, m, n);
            if (state[p] == 1 || it == n_iter + 1) { /* that was the final half-step */
                state[p] = 2;
                left--;
                continue;
            }
            const int check = ((it & (it - 1)) == 0 || it % 8 == 0) && it < n_iter;
            if (check)
                memcpy(prev, u, sizeof(double) * (size_t)n);
            for (i64 i = 0; i < n; i++)
                u[i] = an[i] / Kv[i];
            if (check) {
                int same = 1;
                for (i64 i = 0; i < n && same; i++)
                    same = u[i] == prev[i] || fabs(u[i] - prev[i]) <= 4.0 * DBL_EPSILON * fabs(prev[i]);
                if (same) {
                    done[p] = it;
                    state[p] = 1;
                }
            }
        }
    }
    double *t = w + P * per; /* (n,) scratch */
    for (i64 p = 0; p < P; p++) {
        double *an = w + p * per, *u = an + n, *Kv = u + 2 * n, *bn = Kv + n, *v = bn + m,
               *uK = v + m;
        double *f = o[p], *g = f + n, *grad = g + m, *stats = grad + n;
        fb[p] = 0;
        for (i64 i = 0; i < n && !fb[p]; i++)
            fb[p] = an[i] > 0 && !(u[i] >= lo && u[i] <= hi);
        for (i64 j = 0; j < m && !fb[p]; j++)
            fb[p] = bn[j] > 0 && !(v[j] >= lo && v[j] <= hi);
        if (fb[p])
            continue;
        double err = 0.0, cost = 0.0, shift = reg * log(sa[p]);
        sk_axpy(t, KgMT, v, m, n); /* (K * M) v */
        for (i64 i = 0; i < n; i++) {
            if (an[i] > 0) {
                err += fabs(u[i] * Kv[i] - an[i]);
                cost += u[i] * t[i];
                f[i] = reg * log(u[i]) + cmin + shift;
            } else {
                f[i] = cmin - reg * log(Kv[i]) + shift;
            }
        }
        for (i64 j = 0; j < m; j++)
            g[j] = bn[j] > 0 ? reg * log(v[j]) : -reg * log(uK[j]);
        sk_finish(K, an, bn, f, g, sa[p], cost, err, done[p], grad, stats);
        stats[4] = 0.0;
    }
}

/* 1 when every mass is finite and >= 0, every total positive and below big (the input
 * dtype's range, whose own sums would overflow beyond), every cost finite
 * and >= 0, and every pair's totals within a relative mtol of each other; else 0 (the caller
 * then takes the general path, whose checks name the problem). */
static int sk_accept(i64 N, i64 n, i64 m, i64 Na, i64 Nb, const double *A, const double *B,
                     const double *M, double mtol, double big)
{
    for (i64 t = 0; t < n * m; t++)
        if (!(M[t] >= 0.0 && M[t] < INFINITY))
            return 0;
    for (i64 p = 0; p < N; p++) {
        const double *a = A + (Na == 1 ? 0 : p * n), *b = B + (Nb == 1 ? 0 : p * m);
        double sa = 0.0, sb = 0.0;
        for (i64 i = 0; i < n; i++) {
            if (!(a[i] >= 0.0))
                return 0;
            sa += a[i];
        }
        for (i64 j = 0; j < m; j++) {
            if (!(b[j] >= 0.0))
                return 0;
            sb += b[j];
        }
        if (!(sa > 0.0 && sa < big && sb > 0.0 && sb < big))
            return 0;
        if (!(fabs(sa - sb) <= mtol * (sa > sb ? sa : sb)))
            return 0;
    }
    return 1;
}

/* mode: 0 scaling (falling back to the log form per pair), 1 log form with the shared
 * kernel, 2 log form with an exact log-sum-exp */
static int sk_solve(i64 N, i64 n, i64 m, i64 Na, i64 Nb, const double *A, const double *B,
                    const double *M, double reg, i64 n_iter, int mode, double *out)
{
    sk_kernel K;
    if (sk_kernel_init(&K, n, m, M, reg, mode) != 0)
        return -1;
    const i64 k = n > m ? n : m, per = 4 * n + 3 * m, wlog = 6 * n + 3 * m + 2 * k;
    const i64 ws = mode == 0 ? SK_BLOCK * per + n : wlog;
    double *w = malloc(sizeof(double) * (size_t)(ws > wlog ? ws : wlog));
    if (!w) {
        free(K.KrT);
        return -1;
    }
    const i64 row = 2 * n + m + 5;
    const double *a[SK_BLOCK], *b[SK_BLOCK];
    double *o[SK_BLOCK];
    char fb[SK_BLOCK];
    for (i64 p0 = 0; p0 < N; p0 += SK_BLOCK) {
        const i64 P = N - p0 < SK_BLOCK ? N - p0 : SK_BLOCK;
        for (i64 q = 0; q < P; q++) {
            const i64 p = p0 + q;
            a[q] = A + (Na == 1 ? 0 : p * n);
            b[q] = B + (Nb == 1 ? 0 : p * m);
            o[q] = out + p * row;
            fb[q] = 1;
        }
        if (mode == 0)
            sk_block_scaling(&K, P, a, b, n_iter, o, fb, w);
        for (i64 q = 0; q < P; q++) {
            if (!fb[q])
                continue;
            double *f = o[q], *g = f + n, *grad = g + m, *stats = grad + n;
            sk_kernel_log(&K);
            sk_pair(&K, a[q], b[q], n_iter, f, g, grad, stats, w);
            stats[4] = 1.0;
        }
    }
    free(w);
    free(K.KrT);
    return 0;
}

/* ---------------------------------------------------------------------------------
 * Python binding (buffer protocol):
 *   fixed(A, B, M, reg, n_iter, mtol, big, scaling_ratio, kernel_ratio, ctol, limits, out)
 * A (Na, n), B (Nb, m) with Na, Nb in {1, N}; M (n, m); out (N, 2n + m + 5), one row per
 * pair: f (n), g (m), grad (n), then cost, reg_cost, marginal error, iterations, log form
 * used; all float64, C-contiguous. The inputs are first scanned (sk_accept; None when refused); the
 * form follows ratio = (max M - min M) / reg: scaling up to scaling_ratio, the log form
 * with the shared kernel up to kernel_ratio, the exact log form beyond; a batch of more
 * than limits[form] cost entries (N n m) is refused (None). Returns
 * (iterations done, log form used, every marginal error <= ctol). The GIL is released.
 * ------------------------------------------------------------------------------- */

#define SK_MAXBUF 4

typedef struct {
    Py_buffer v[SK_MAXBUF];
    int k;
} sk_bufs;

static void sk_release(sk_bufs *bs)
{
    for (int i = 0; i < bs->k; i++)
        PyBuffer_Release(&bs->v[i]);
    bs->k = 0;
}

/* a C-contiguous 2-D float64 buffer; d0/d1 >= 0 are required sizes, got0/got1 return them */
static double *sk_take(sk_bufs *bs, PyObject *obj, const char *name, int writable, i64 d0,
                       i64 d1, i64 *got0, i64 *got1)
{
    Py_buffer *b = &bs->v[bs->k];
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, b, flags) != 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "_csinkhorn: %s must be a %sC-contiguous float64 array",
                     name, writable ? "writeable " : "");
        return NULL;
    }
    bs->k++;
    const char *f = b->format ? b->format : "B";
    if (*f == '@' || *f == '=' || *f == '<')
        f++;
    if (f[0] != 'd' || f[1] != '\0' || b->itemsize != 8 || b->ndim != 2) {
        PyErr_Format(PyExc_ValueError, "_csinkhorn: %s must be a 2-D float64 array", name);
        return NULL;
    }
    i64 s0 = (i64)b->shape[0], s1 = (i64)b->shape[1];
    if ((d0 >= 0 && s0 != d0) || (d1 >= 0 && s1 != d1)) {
        PyErr_Format(PyExc_ValueError, "_csinkhorn: %s has shape (%lld, %lld), expected (%lld, %lld)",
                     name, s0, s1, d0, d1);
        return NULL;
    }
    if (got0)
        *got0 = s0;
    if (got1)
        *got1 = s1;
    return (double *)b->buf;
}

static PyObject *py_fixed(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *oA, *oB, *oM, *oO;
    double reg, mtol, big, scaling_ratio, kernel_ratio, ctol;
    long long n_iter, limit[3];
    if (!PyArg_ParseTuple(args, "OOOdLddddd(LLL)O", &oA, &oB, &oM, &reg, &n_iter, &mtol, &big,
                          &scaling_ratio, &kernel_ratio, &ctol, &limit[0], &limit[1], &limit[2],
                          &oO))
        return NULL;
    if (!(reg > 0) || !isfinite(reg) || n_iter < 1) {
        PyErr_SetString(PyExc_ValueError, "_csinkhorn: reg must be finite and > 0, n_iter >= 1");
        return NULL;
    }
    sk_bufs bs = {.k = 0};
    i64 Na, n, Nb, m, N;
    const double *A = sk_take(&bs, oA, "A", 0, -1, -1, &Na, &n);
    const double *B = A ? sk_take(&bs, oB, "B", 0, -1, -1, &Nb, &m) : NULL;
    const double *M = B ? sk_take(&bs, oM, "M", 0, n, m, NULL, NULL) : NULL;
    double *out = M ? sk_take(&bs, oO, "out", 1, -1, 2 * n + m + 5, &N, NULL) : NULL;
    if (out && ((Na != 1 && Na != N) || (Nb != 1 && Nb != N) || n < 1 || m < 1)) {
        PyErr_SetString(PyExc_ValueError, "_csinkhorn: A and B must hold 1 or N pairs of >= 1 bins");
        out = NULL;
    }
    if (!out) {
        sk_release(&bs);
        return NULL;
    }
    int rc = 0, ok = 0, mode = 0, used_log = 0, converged = 1;
    i64 done = 0;
    Py_BEGIN_ALLOW_THREADS
    ok = sk_accept(N, n, m, Na, Nb, A, B, M, mtol, big);
    if (ok && N > 0) {
        double lo = INFINITY, hi = -INFINITY;
        for (i64 t = 0; t < n * m; t++) {
            lo = M[t] < lo ? M[t] : lo;
            hi = M[t] > hi ? M[t] : hi;
        }
        const double ratio = (hi - lo) / reg;
        mode = ratio <= scaling_ratio ? 0 : ratio <= kernel_ratio ? 1 : 2;
        ok = N * n * m <= limit[mode];
    }
    if (ok && N > 0) {
        rc = sk_solve(N, n, m, Na, Nb, A, B, M, reg, (i64)n_iter, mode, out);
        for (i64 p = 0; p < N && rc == 0; p++) {
            const double *stats = out + p * (2 * n + m + 5) + 2 * n + m;
            done = stats[3] > done ? (i64)stats[3] : done;
            used_log |= stats[4] != 0.0;
            converged &= stats[2] <= ctol;
        }
    }
    Py_END_ALLOW_THREADS
    sk_release(&bs);
    if (rc != 0)
        return PyErr_NoMemory();
    if (!ok)
        Py_RETURN_NONE;
    return Py_BuildValue("(LOO)", (long long)done, (mode == 0 && !used_log) ? Py_False : Py_True,
                         converged ? Py_True : Py_False);
}

static PyMethodDef csinkhorn_methods[] = {
    {"fixed", py_fixed, METH_VARARGS,
     "fixed(A, B, M, reg, n_iter, mtol, big, scaling_ratio, kernel_ratio, ctol, limits, out): "
     "fixed-iteration Sinkhorn on every pair, outputs written in place; returns None for "
     "inputs it does not accept, else (iterations done, log form used, converged)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef csinkhorn_module = {
    PyModuleDef_HEAD_INIT, "_csinkhorn",
    "Fixed-iteration Sinkhorn kernel in C (private; see otcore._sinkhorn).", -1,
    csinkhorn_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__csinkhorn(void) { return PyModule_Create(&csinkhorn_module); }
