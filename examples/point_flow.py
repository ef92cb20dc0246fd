"""Learning point positions: a 2-D flow from one cloud to another by the Sinkhorn divergence.

Gradient descent on the positions x of a source cloud towards a target cloud y,

    x <- x - lr * grad_x S_eps(a, b) / a,

where S_eps is the Sinkhorn divergence (Feydy et al. 2019) with the cost
|x - y|^2 / 2 (GeomLoss's p = 2), computed on a lazy ``PointCloud`` (no n x m
matrix). Dividing the gradient by the weights a_i makes each point move along
the displacement of its own mass (as in GeomLoss's gradient-flow examples).

Run ``python examples/point_flow.py`` (writes docs/img/point_flow.png).
"""

import argparse
import os

import numpy as np

from otcore import PointCloud, sinkhorn_divergence_value_and_grad

HERE = os.path.dirname(os.path.abspath(__file__))


def clouds(n, seed=0):
    """A Gaussian blob (source) and a ring (target), n points each."""
    rng = np.random.default_rng(seed)
    x = 0.08 * rng.standard_normal((n, 2)) + [0.25, 0.5]
    t = rng.random(n) * 2 * np.pi
    r = 0.25 + 0.02 * rng.standard_normal(n)
    y = np.stack([0.65 + r * np.cos(t), 0.5 + r * np.sin(t)], axis=1)
    return x, y


def flow(x, y, *, blur=0.05, lr=0.25, steps=30, snapshots=(0, 2, 6, 30)):
    """Positions of the source cloud along the flow: {step: x}, and the divergence per step."""
    n, m = len(x), len(y)
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    eps = blur**2  # GeomLoss: blur = eps^(1/p), cost |x - y|^p / p
    keep, values = {0: x.copy()}, []
    for step in range(1, steps + 1):
        C = PointCloud(x, y, scale=0.5)
        value, (_, _, dx, _) = sinkhorn_divergence_value_and_grad(a, b, C, eps, tol=1e-6, warn=False)
        values.append(float(value))
        x = x - lr * dx / a[:, None]
        if step in snapshots:
            keep[step] = x.copy()
    return keep, values


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--out", default=os.path.join(HERE, "..", "docs", "img"))
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    x, y = clouds(args.n)
    snaps = tuple(sorted({0, min(2, args.steps), min(6, args.steps), args.steps}))
    keep, values = flow(x, y, steps=args.steps, snapshots=snaps)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keep) + 1, figsize=(3.2 * (len(keep) + 1), 3.2))
    for ax, (step, xs) in zip(axes, sorted(keep.items())):
        ax.scatter(y[:, 0], y[:, 1], s=4, c="tab:orange", alpha=0.5, label="target")
        ax.scatter(xs[:, 0], xs[:, 1], s=4, c="tab:blue", label="source")
        ax.set_title(f"step {step}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0.1, 0.9)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(loc="lower left", fontsize=7)
    axes[-1].semilogy(np.arange(1, len(values) + 1), np.maximum(values, 1e-12))
    axes[-1].set_title("Sinkhorn divergence")
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "point_flow.png")
    fig.savefig(path, dpi=110)
    if not args.quiet:
        print(f"divergence {values[0]:.4g} -> {values[-1]:.4g}; wrote {path}")
    return {"files": [path], "values": values}


if __name__ == "__main__":
    main()
