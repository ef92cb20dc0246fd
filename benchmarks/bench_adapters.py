"""Loss adapters: one training step with the Sinkhorn loss vs the same step with cross-entropy.

Two networks, both trained on K ordered classes with the ground cost
``|i - j|`` (50 fixed Sinkhorn iterations, reg 0.1, float32):

- ``TimeLeNetStepTorch``: a LeNet-sized CNN (LeCun et al. 1998: conv 5x5 x6,
  pool, conv 5x5 x16, pool, 120, 84, 10) on a batch of 128 28x28 images,
  10 classes;
- ``TimeToyStepTorch`` / ``TimeToyStepJax``: the 4-class toy MLP of
  Dhariwal & Inala (100 points in [0, 1]^4, ``4 -> 32 -> 32 -> 4``).

One step = zero_grad, forward, loss, backward, SGD update. ``track_ratio``
is the step-time ratio Sinkhorn / cross-entropy (on the logits), measured in
one process, interleaved, min of repeats (``benchmarks/_timing.py``).
Targets: <= 1.05 (LeNet) and <= 1.3 (toy MLP). With the ``|i - j|`` cost,
``(max M - min M) / reg`` is 90 (10 classes) and 30 (4 classes): above the
float32 limit of the scaling method (25), so the log method runs.

Torch runs with one CPU thread (independent of the machine's core count);
``cuda`` cases are skipped without a CUDA device.
"""

import numpy as np

from benchmarks._timing import interleaved_ratio

N_ITER, REG = 50, 0.1


def _ordinal(k):
    i = np.arange(k, dtype=np.float32)
    return np.abs(i[:, None] - i[None, :])


class _TorchStep:
    """Two copies of one network and optimiser: one trained on the Sinkhorn loss, one on cross-entropy."""

    def _setup(self, device, make_net, X, y, k, lr=0.1):
        try:
            import torch
        except ImportError:
            raise NotImplementedError("torch not installed")
        if device == "cuda" and not torch.cuda.is_available():
            raise NotImplementedError("no CUDA device")
        from otcore.torch import WassersteinLoss

        torch.set_num_threads(1)
        self.torch = torch
        self.X = torch.tensor(X, dtype=torch.float32, device=device)
        self.y = torch.tensor(y, device=device)
        self.Y = torch.nn.functional.one_hot(self.y, k).float()
        self.wloss = WassersteinLoss(_ordinal(k), REG, n_iter=N_ITER).to(device)

        def make():
            torch.manual_seed(0)
            net = make_net(torch).to(device)
            return net, torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)

        self.net_w, self.opt_w = make()
        self.net_c, self.opt_c = make()
        self.sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        self.step_sinkhorn()
        self.step_cross_entropy()

    def step_sinkhorn(self):
        self.opt_w.zero_grad()
        loss = self.wloss(self.torch.softmax(self.net_w(self.X), -1), self.Y)
        loss.backward()
        self.opt_w.step()
        self.sync()

    def step_cross_entropy(self):
        self.opt_c.zero_grad()
        loss = self.torch.nn.functional.cross_entropy(self.net_c(self.X), self.y)
        loss.backward()
        self.opt_c.step()
        self.sync()


def _mlp(torch, k=4, h=32):
    return torch.nn.Sequential(
        torch.nn.Linear(k, h), torch.nn.ReLU(), torch.nn.Linear(h, h), torch.nn.ReLU(), torch.nn.Linear(h, k)
    )


def _lenet(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


class TimeToyStepTorch(_TorchStep):
    params = (["cpu", "cuda"],)
    param_names = ["device"]

    def setup(self, device):
        rng = np.random.default_rng(0)
        X = rng.random((100, 4))
        self._setup(device, _mlp, X, X.argmax(1), 4)

    def time_step_sinkhorn(self, device):
        self.step_sinkhorn()

    def time_step_cross_entropy(self, device):
        self.step_cross_entropy()

    def track_ratio(self, device):
        return interleaved_ratio(self.step_sinkhorn, self.step_cross_entropy, number_f=20, number_g=20, repeat=7)

    track_ratio.unit = "ratio"


class TimeLeNetStepTorch(_TorchStep):
    params = (["cpu", "cuda"],)
    param_names = ["device"]

    def setup(self, device):
        rng = np.random.default_rng(0)
        X = rng.random((128, 1, 28, 28))
        self._setup(device, _lenet, X, rng.integers(0, 10, 128), 10, lr=0.001)

    def time_step_sinkhorn(self, device):
        self.step_sinkhorn()

    def time_step_cross_entropy(self, device):
        self.step_cross_entropy()

    def track_ratio(self, device):
        return interleaved_ratio(self.step_sinkhorn, self.step_cross_entropy, number_f=3, number_g=3, repeat=7)

    track_ratio.unit = "ratio"


class TimeToyStepJax:
    def setup(self):
        try:
            import jax
            import jax.numpy as jnp
        except ImportError:
            raise NotImplementedError("jax not installed")
        from otcore.jax import sinkhorn_loss

        K, H = 4, 32
        rng = np.random.default_rng(0)
        X = rng.random((100, K)).astype(np.float32)
        X, y = jnp.asarray(X), jnp.asarray(X.argmax(1))
        Y = jax.nn.one_hot(y, K)
        M = jnp.asarray(_ordinal(K))
        k = jax.random.split(jax.random.PRNGKey(0), 3)
        params = [
            (jax.random.normal(k[0], (K, H)) * 0.5, jnp.zeros(H)),
            (jax.random.normal(k[1], (H, H)) * 0.2, jnp.zeros(H)),
            (jax.random.normal(k[2], (H, K)) * 0.2, jnp.zeros(K)),
        ]

        def net(params, x):
            for W, b in params[:-1]:
                x = jax.nn.relu(x @ W + b)
            W, b = params[-1]
            return x @ W + b

        def w_obj(params):
            return sinkhorn_loss(jax.nn.softmax(net(params, X)), Y, M, REG, n_iter=N_ITER)

        def ce_obj(params):
            return -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(net(params, X)), -1))

        def make(obj):
            @jax.jit
            def step(params):
                g = jax.grad(obj)(params)
                return jax.tree_util.tree_map(lambda p, gp: p - 0.1 * gp, params, g)

            return step

        self.params = params
        self._w, self._c = make(w_obj), make(ce_obj)
        self.step_sinkhorn()
        self.step_cross_entropy()

    def step_sinkhorn(self):
        import jax

        jax.block_until_ready(self._w(self.params))

    def step_cross_entropy(self):
        import jax

        jax.block_until_ready(self._c(self.params))

    def time_step_sinkhorn(self):
        self.step_sinkhorn()

    def time_step_cross_entropy(self):
        self.step_cross_entropy()

    def track_ratio(self):
        return interleaved_ratio(self.step_sinkhorn, self.step_cross_entropy, number_f=20, number_g=20, repeat=7)

    track_ratio.unit = "ratio"
