"""Toy dataset 1 of Dhariwal & Inala (section 3.2): Wasserstein loss vs cross-entropy.

100 points uniform in [0, 1]^4, label = argmax coordinate; a 3-layer MLP
(``4 -> H -> H -> 4``, ReLU) with a softmax output, trained full-batch with
SGD either on the Wasserstein loss (50 Sinkhorn iterations,
:class:`otcore.torch.WassersteinLoss`) or on cross-entropy (the KL /
multinomial logistic loss of Frogner et al. 2015). Writes:

- ``toy_mlp.csv``: accuracy (train, and test on 2000 fresh points) against
  iterations and training time;
- ``toy_mlp_timing.csv``: time of one training step of each loss, measured
  interleaved in one process (min of repeats), and their ratio;
- ``toy_mlp.png``: accuracy vs iterations and vs training time.

Ground metric: the 4 classes have no natural geometry, so ``M`` is the 0-1
metric (``1 - I``; then ``W(p, e_k) = 1 - p_k`` unregularised), with
``reg = 0.1`` (``lambda = 1/reg = 10`` in the notation of Cuturi 2013).

Run ``python examples/toy_mlp.py`` (seconds) or ``--full`` (5000 iterations).
"""

from __future__ import annotations

import os
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402,F401  (also makes otcore importable from a source checkout)

from _common import Timer, apply_full, ensure_out, make_parser, mlp, progress, pyplot, setup_torch, write_csv  # noqa: E402

FULL = {"iters": 5000, "eval_every": 25}


def make_data(n, rng):
    X = rng.random((n, 4))
    return X, X.argmax(1)


def main(argv=None):
    p = make_parser(__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=400, help="SGD iterations (full batch of 100 points)")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--reg", type=float, default=0.1, help="Sinkhorn reg = 1/lambda (cost 1 - I)")
    p.add_argument("--n-iter", type=int, default=50, help="Sinkhorn iterations")
    p.add_argument("--eval-every", type=int, default=5)
    args = p.parse_args(argv)
    apply_full(args, FULL, argv)
    torch = setup_torch(args.threads, args.seed)
    import numpy as np
    import torch.nn.functional as F

    from otcore.torch import WassersteinLoss

    out = ensure_out(args.out)
    rng = np.random.default_rng(args.seed)
    Xtr, ytr = make_data(100, rng)
    Xte, yte = make_data(2000, rng)
    Xtr, Xte = torch.tensor(Xtr, dtype=torch.float32), torch.tensor(Xte, dtype=torch.float32)
    ytr, yte = torch.tensor(ytr), torch.tensor(yte)
    Ytr = F.one_hot(ytr, 4).float()

    wloss = WassersteinLoss(1.0 - torch.eye(4), args.reg, n_iter=args.n_iter)
    losses = {
        "wasserstein": lambda logits: wloss(torch.softmax(logits, -1), Ytr),
        "cross_entropy": lambda logits: F.cross_entropy(logits, ytr),
    }
    wloss(torch.full((2, 4), 0.25), Ytr[:2])  # warm-up (lazy imports) outside the timed steps
    torch.manual_seed(args.seed)
    init = mlp([4, args.hidden, args.hidden, 4]).state_dict()
    models, opts, steps = {}, {}, {}
    for name, loss_fn in losses.items():
        model = mlp([4, args.hidden, args.hidden, 4])
        model.load_state_dict(init)
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)

        def step(model=model, opt=opt, loss_fn=loss_fn):
            opt.zero_grad()
            loss = loss_fn(model(Xtr))
            loss.backward()
            opt.step()
            return loss

        models[name], opts[name], steps[name] = model, opt, step

    def accuracy(model, X, y):
        with torch.no_grad():
            return float((model(X).argmax(1) == y).float().mean())

    rows = []
    timers = {name: Timer() for name in losses}
    for name in losses:
        model, step, timer = models[name], steps[name], timers[name]
        for it in progress(range(1, args.iters + 1), desc=name, quiet=args.quiet):
            with timer:
                loss = step()
            if it % args.eval_every == 0 or it == 1 or it == args.iters:
                rows.append({
                    "loss": name, "iteration": it, "time_s": timer.total, "objective": float(loss.detach()),
                    "train_acc": accuracy(model, Xtr, ytr), "test_acc": accuracy(model, Xte, yte),
                })
    write_csv(os.path.join(out, "toy_mlp.csv"), rows)

    # time per training step: interleaved, min of repeats, one process
    best = {name: float("inf") for name in losses}
    for _ in range(7):
        for name in losses:
            best[name] = min(best[name], min(timeit.repeat(steps[name], number=20, repeat=1)) / 20)
    ratio = best["wasserstein"] / best["cross_entropy"]
    timing = [{"loss": n, "step_us": best[n] * 1e6, "ratio_to_cross_entropy": best[n] / best["cross_entropy"]}
              for n in losses]
    write_csv(os.path.join(out, "toy_mlp_timing.csv"), timing)

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, style in (("wasserstein", "-"), ("cross_entropy", "--")):
        r = [x for x in rows if x["loss"] == name]
        label = {"wasserstein": f"Wasserstein (Sinkhorn, {args.n_iter} it.)", "cross_entropy": "cross-entropy (KL)"}[name]
        axes[0].plot([x["iteration"] for x in r], [x["train_acc"] for x in r], style, label=label)
        axes[1].plot([x["time_s"] for x in r], [x["train_acc"] for x in r], style, label=label)
    axes[0].set_xlabel("SGD iteration")
    axes[1].set_xlabel("training time (s)")
    for ax in axes:
        ax.set_ylabel("training accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    axes[1].set_title(f"step time: W {best['wasserstein'] * 1e6:.0f} us, CE {best['cross_entropy'] * 1e6:.0f} us "
                      f"(x{ratio:.1f})", fontsize=9)
    fig.suptitle("Toy dataset 1: 100 points in [0,1]^4, label = argmax")
    fig.tight_layout()
    png = os.path.join(out, "toy_mlp.png")
    fig.savefig(png, dpi=110)
    plt.close(fig)

    final = {n: [x for x in rows if x["loss"] == n][-1] for n in losses}
    summary = {
        "train_acc": {n: final[n]["train_acc"] for n in losses},
        "test_acc": {n: final[n]["test_acc"] for n in losses},
        "step_us": {n: best[n] * 1e6 for n in losses},
        "ratio": ratio,
        "files": [os.path.join(out, f) for f in ("toy_mlp.csv", "toy_mlp_timing.csv", "toy_mlp.png")],
    }
    for n in losses:
        print(f"{n:14s} train acc {final[n]['train_acc']:.3f}  test acc {final[n]['test_acc']:.3f}  "
              f"step {best[n] * 1e6:.0f} us")
    print(f"Wasserstein / cross-entropy step time: {ratio:.2f}x")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
