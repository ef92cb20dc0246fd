"""Noisy labels on a d x d grid (Dhariwal & Inala, section 4.2): Wasserstein loss vs KL.

Each grid cell ``(i, j)`` (spacing 1) emits 2-D points from a Gaussian with
sigma = 0.2 around it. In the training set (2000 points) a fraction ``t`` of
the labels is flipped to a uniformly chosen 4-neighbour of the true cell on
the grid; the test set (200 points) is clean. An MLP ``2 -> 64 -> 64 -> d^2``
is trained with SGD (lr 0.001, as Dhariwal & Inala) on either the Wasserstein loss
(Euclidean ground metric on the grid, 50 Sinkhorn iterations) or on
cross-entropy (KL), and scored by the **mean Euclidean distance between the
predicted and the true grid cell** on the test set (lower is better).

Deviations from Dhariwal & Inala, to get converged networks in a CPU budget: SGD with
momentum 0.9 and minibatches of 100; the ground metric normalised to
``[0, 10]`` (``otcore.normalize_cost(M, scale=10)``, as Dhariwal & Inala
suggest) with ``reg = 1`` (``lambda = 1``; their ``lambda = 0.1`` with
distances in grid units blurs the plan over the whole grid). Defaults: d in
{3, 5}, t in {0.1, 0.5, 0.9}, one run each, 3000 iterations. ``--full``:
d = 3..7, t = 0.1..0.9, 10 runs each, 10 000 iterations (the paper's sizes).

Writes ``noisy_grid.csv`` (one row per run), ``noisy_grid.png`` (distance vs
noise per grid size, and vs grid size averaged over noise) and
``noisy_grid_data.png`` (the 3 x 3 training set at t = 0.1 and 0.5).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402,F401  (also makes otcore importable from a source checkout)
from _common import apply_full, ensure_out, make_parser, mlp, progress, pyplot, setup_torch, write_csv  # noqa: E402

FULL = {"d": [3, 4, 5, 6, 7], "noise": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], "repeats": 10,
        "iters": 10000}


def coords(d):
    import numpy as np

    k = np.arange(d * d)
    return np.stack([k // d, k % d], axis=1).astype(float)  # row-major, as otcore.grid_cost


def make_data(d, n, noise, rng, sigma=0.2):
    """Points around the cells, labels flipped to a random grid neighbour for a fraction ``noise``."""

    c = coords(d)
    y = rng.integers(0, d * d, size=n)
    X = c[y] + sigma * rng.standard_normal((n, 2))
    y_noisy = y.copy()
    flip = rng.choice(n, size=int(round(noise * n)), replace=False)
    for idx in flip:
        i, j = divmod(int(y[idx]), d)
        nbrs = [(i + di, j + dj) for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)) if 0 <= i + di < d and 0 <= j + dj < d]
        ni, nj = nbrs[rng.integers(len(nbrs))]
        y_noisy[idx] = ni * d + nj
    return X, y, y_noisy


def run_one(d, noise, seed, args, torch, pbar=None):
    import numpy as np
    import torch.nn.functional as F

    from otcore._cost import grid_cost, normalize_cost
    from otcore.torch import WassersteinLoss

    rng = np.random.default_rng(seed)
    Xtr, _, ytr = make_data(d, args.n_train, noise, rng)
    Xte, yte, _ = make_data(d, args.n_test, 0.0, rng)
    mean = Xtr.mean(0)
    Xtr = torch.tensor(Xtr - mean, dtype=torch.float32)
    Xte = torch.tensor(Xte - mean, dtype=torch.float32)
    ytr_t = torch.tensor(ytr)
    K = d * d
    Ytr = F.one_hot(ytr_t, K).float()
    G = grid_cost(d)
    np.testing.assert_allclose(G, np.linalg.norm(coords(d)[:, None] - coords(d)[None], axis=-1), atol=1e-12)
    wloss = WassersteinLoss(normalize_cost(G, scale=args.scale), args.reg, n_iter=args.n_iter)
    out = {}
    torch.manual_seed(seed)
    init = mlp([2, 64, 64, K]).state_dict()
    for name in ("wasserstein", "kl"):
        model = mlp([2, 64, 64, K])
        model.load_state_dict(init)
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
        g = torch.Generator().manual_seed(seed)
        for it in range(args.iters):
            idx = torch.randint(0, args.n_train, (args.batch,), generator=g)
            logits = model(Xtr[idx])
            if name == "wasserstein":
                loss = wloss(torch.softmax(logits, -1), Ytr[idx])
            else:
                loss = F.cross_entropy(logits, ytr_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if pbar is not None and it % 100 == 0:
                pbar.update(100)
        with torch.no_grad():
            pred = model(Xte).argmax(1).numpy()
        dist = np.linalg.norm(coords(d)[pred] - coords(d)[yte], axis=1)
        out[name] = {"mean_dist": float(dist.mean()), "acc": float((pred == yte).mean())}
    return out


def main(argv=None):
    p = make_parser(__doc__.splitlines()[0])
    p.add_argument("--d", type=int, nargs="+", default=[3, 5], help="grid sizes")
    p.add_argument("--noise", type=float, nargs="+", default=[0.1, 0.5, 0.9], help="label-noise levels t")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--iters", type=int, default=3000, help="SGD iterations per run")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--reg", type=float, default=1.0, help="Sinkhorn reg = 1/lambda, in units of the scaled metric")
    p.add_argument("--scale", type=float, default=10.0, help="ground metric normalised to [0, scale]")
    p.add_argument("--n-iter", type=int, default=50, help="Sinkhorn iterations")
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-test", type=int, default=200)
    args = p.parse_args(argv)
    apply_full(args, FULL, argv)
    torch = setup_torch(args.threads, args.seed)
    import numpy as np

    out = ensure_out(args.out)
    rows = []
    configs = [(d, t, r) for d in args.d for t in args.noise for r in range(args.repeats)]
    total = len(configs) * 2 * args.iters
    with progress(total=total, desc="noisy grid", quiet=args.quiet) as pbar:
        for d, t, r in configs:
            res = run_one(d, t, args.seed + 1000 * r + 17 * d + int(100 * t), args, torch, pbar)
            for name, v in res.items():
                rows.append({"d": d, "noise": t, "repeat": r, "loss": name, **v})
    write_csv(os.path.join(out, "noisy_grid.csv"), rows)

    def avg(name, d=None, t=None):
        v = [x["mean_dist"] for x in rows if x["loss"] == name and (d is None or x["d"] == d)
             and (t is None or x["noise"] == t)]
        return float(np.mean(v))

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, d in enumerate(args.d):
        c = colors[k % len(colors)]
        axes[0].plot(args.noise, [avg("wasserstein", d, t) for t in args.noise], "-o", color=c, label=f"W, {d}x{d}")
        axes[0].plot(args.noise, [avg("kl", d, t) for t in args.noise], "--s", color=c, label=f"KL, {d}x{d}")
    axes[0].set_xlabel("label noise t")
    axes[0].set_ylabel("mean distance predicted-true cell (test)")
    axes[0].legend(fontsize=8, ncol=2)
    axes[1].plot(args.d, [avg("wasserstein", d) for d in args.d], "-o", label="Wasserstein")
    axes[1].plot(args.d, [avg("kl", d) for d in args.d], "--s", label="KL (cross-entropy)")
    axes[1].set_xlabel("grid size d")
    axes[1].set_ylabel("mean distance (averaged over t)")
    axes[1].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(f"Noisy grid labels: {args.repeats} run(s) per point, {args.iters} SGD iterations")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "noisy_grid.png"), dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    for ax, t in zip(axes, (0.1, 0.5)):
        X, _, y = make_data(3, 2000, t, np.random.default_rng(args.seed))
        ax.scatter(X[:, 0], X[:, 1], c=y, cmap="tab10", s=4)
        ax.set_title(f"3x3 grid, training labels, t = {t}")
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "noisy_grid_data.png"), dpi=100)
    plt.close(fig)

    for d in args.d:
        for t in args.noise:
            print(f"d={d} t={t:.1f}: mean distance W {avg('wasserstein', d, t):.3f}  KL {avg('kl', d, t):.3f}")
    return {
        "rows": rows,
        "mean_dist": {n: avg(n) for n in ("wasserstein", "kl")},
        "acc": {n: float(np.mean([x["acc"] for x in rows if x["loss"] == n])) for n in ("wasserstein", "kl")},
        "files": [os.path.join(out, f) for f in ("noisy_grid.csv", "noisy_grid.png", "noisy_grid_data.png")],
    }


if __name__ == "__main__":
    main(sys.argv[1:])
