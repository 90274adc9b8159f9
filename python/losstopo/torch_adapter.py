"""Optional PyTorch adapter: any torch module as a batched landscape.

``TorchLandscape(module, X, y, loss)`` evaluates many flat parameter vectors per call
with torch.func (``functional_call`` under ``vmap``) and offers the same methods as
the native :class:`~losstopo.Landscape`, so it plugs into ``train``, ``minimize``,
``find_path``, ``barrier_matrix`` and the study. torch is imported only here.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def _torch():
    try:
        import torch
        import torch.func  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "this needs the optional PyTorch extra: pip install 'losstopo[torch]'") from e
    return torch


class TorchLandscape:
    """Loss, gradient and accuracy of many parameter vectors of a torch module.

    Parameters
    ----------
    module : torch.nn.Module
        Its parameters define the flat layout (``parameters_to_vector`` order).
    X : array (n, ...) inputs; y : integer labels (n,), float targets, or None
        (MSE against the input).
    loss : "cross_entropy" or "mse"
    dtype : "float32" or "float64"
    chunk : samples per vmapped chunk (bounds memory).
    """

    def __init__(self, module, X, y=None, loss: str = "cross_entropy", dtype="float32",
                 chunk: int = 2048, threads: Optional[int] = None):
        torch = _torch()
        if loss not in ("cross_entropy", "mse"):
            raise ValueError(f"loss: expected 'cross_entropy' or 'mse', got {loss!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected float32 or float64, got {self.dtype}")
        tdt = torch.float32 if self.dtype == np.float32 else torch.float64
        X = np.asarray(X)
        if X.ndim < 2 or X.shape[0] == 0:
            raise ValueError(f"X: expected shape (n, ...), got {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("X: contains NaN or Inf")
        self.module = module.to(tdt)
        self.loss_name = loss
        self.X = torch.from_numpy(np.ascontiguousarray(X, dtype=self.dtype))
        n = X.shape[0]
        if loss == "cross_entropy":
            y = np.asarray(y) if y is not None else None
            if y is None or y.shape != (n,) or y.dtype.kind not in "iu":
                raise ValueError(f"y: cross_entropy needs integer labels of shape ({n},)")
            self.y = torch.from_numpy(y.astype(np.int64))
        else:
            self.y = None if y is None else torch.from_numpy(
                np.ascontiguousarray(y, dtype=self.dtype))
        self.names = [k for k, _ in module.named_parameters()]
        self.shapes = [tuple(p.shape) for _, p in module.named_parameters()]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.num_params = int(sum(self.sizes))
        self.num_samples = n
        self.chunk = int(chunk)
        self.threads = threads
        self.net = None  # not a native MLP
        f = self._loss_fn
        self._vg = torch.func.vmap(torch.func.grad_and_value(f), in_dims=(0, None, None))
        self._v = torch.func.vmap(f, in_dims=(0, None, None))
        self._vg_each = torch.func.vmap(torch.func.grad_and_value(f), in_dims=(0, 0, 0))
        self._v_each = torch.func.vmap(f, in_dims=(0, 0, 0))
        self._out = torch.func.vmap(self._forward, in_dims=(0, None))

    @property
    def classifier(self) -> bool:
        return self.loss_name == "cross_entropy"

    # ---------------------------------------------------------------- core
    def _params(self, flat):
        out, k = {}, 0
        for name, shape, size in zip(self.names, self.shapes, self.sizes):
            out[name] = flat[k:k + size].reshape(shape)
            k += size
        return out

    def _forward(self, flat, xb):
        torch = _torch()
        return torch.func.functional_call(self.module, self._params(flat), (xb,))

    def _loss_fn(self, flat, xb, yb):
        torch = _torch()
        out = self._forward(flat, xb)
        if self.loss_name == "cross_entropy":
            return torch.nn.functional.cross_entropy(out, yb)
        target = xb.reshape(out.shape) if yb is None else yb
        return torch.mean((out - target) ** 2)

    def _theta(self, theta):
        torch = _torch()
        theta = np.asarray(theta)
        single = theta.ndim == 1
        if theta.ndim not in (1, 2) or theta.shape[-1] != self.num_params:
            raise ValueError(f"theta: expected shape ({self.num_params},) or (P, "
                             f"{self.num_params}), got {theta.shape}")
        t = np.ascontiguousarray(theta.reshape(-1, self.num_params), dtype=self.dtype)
        if not np.isfinite(t).all():
            raise ValueError("theta: contains NaN or Inf")
        return torch.from_numpy(t), single

    def _batches(self, samples):
        torch = _torch()
        idx = torch.arange(self.num_samples) if samples is None else torch.from_numpy(
            np.asarray(samples, dtype=np.int64))
        for s in range(0, len(idx), self.chunk):
            j = idx[s:s + self.chunk]
            yield len(j), self.X[j], (None if self.y is None else self.y[j])

    def _run(self, theta, grad: bool, samples=None):
        torch = _torch()
        t, single = self._theta(theta)
        n = self.num_samples if samples is None else len(samples)
        loss = torch.zeros(t.shape[0], dtype=t.dtype)
        g = torch.zeros_like(t) if grad else None
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.no_grad() if not grad else torch.enable_grad():
                for m, xb, yb in self._batches(samples):
                    if grad:
                        gb, lb = self._vg(t, xb, yb)
                        g += (m / n) * gb
                    else:
                        lb = self._v(t, xb, yb)
                    loss += (m / n) * lb
        finally:
            torch.set_num_threads(threads)
        loss = loss.numpy()
        g = None if g is None else g.numpy()
        if single:
            return loss[0], (None if g is None else g[0])
        return loss, g

    # ----------------------------------------------------------- interface
    def loss(self, theta, samples=None):
        return self._run(theta, False, samples)[0]

    def loss_and_grad(self, theta, samples=None):
        return self._run(theta, True, samples)

    def accuracy(self, theta, samples=None):
        torch = _torch()
        if not self.classifier:
            raise ValueError("accuracy: only defined for cross_entropy (classifier) landscapes")
        t, single = self._theta(theta)
        correct = torch.zeros(t.shape[0], dtype=torch.float64)
        n = self.num_samples if samples is None else len(samples)
        with torch.no_grad():
            for _, xb, yb in self._batches(samples):
                correct += (self._out(t, xb).argmax(-1) == yb).sum(-1).double()
        acc = (correct / n).numpy().astype(self.dtype)
        return acc[0] if single else acc

    def evaluate_each(self, theta, samples):
        """Vector p on its own samples[p] (P, B): losses (P,), grads (P, D)."""
        torch = _torch()
        t, _ = self._theta(theta)
        s = torch.from_numpy(np.asarray(samples, dtype=np.int64))
        yb = None if self.y is None else self.y[s]
        g, lossv = self._vg_each(t, self.X[s], yb)
        return lossv.numpy(), g.numpy()

    def __call__(self, theta):
        return self.loss_and_grad(theta)

    def init(self, count: int = 1, seed: int = 0, first: int = 0, dtype=None) -> np.ndarray:
        """PyTorch's default initialization of the module, one stream per vector."""
        torch = _torch()
        out = np.empty((count, self.num_params), dtype=self.dtype)
        for r in range(count):
            torch.manual_seed(int(np.random.SeedSequence(int(seed), spawn_key=(first + r,))
                                  .generate_state(1)[0]))
            for m in self.module.modules():
                if m is not self.module and hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            out[r] = torch.nn.utils.parameters_to_vector(self.module.parameters()).detach().numpy()
        return out

    def __repr__(self) -> str:
        return (f"TorchLandscape({type(self.module).__name__}, n={self.num_samples}, "
                f"D={self.num_params}, loss={self.loss_name!r})")


def lenet():
    """The paper's LeNet: conv 6@5x5 pad 2, avgpool 2; conv 16@5x5, avgpool 2;
    FC 400-120-84-10, ReLU, biases (61,706 parameters). Takes flat 784-pixel rows."""
    torch = _torch()
    nn = torch.nn

    class LeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
                nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2))
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                nn.Linear(84, 10))

        def forward(self, x):
            return self.classifier(self.features(x.reshape(-1, 1, 28, 28)))

    return LeNet()


def lstm(seed: int = 0):
    """The paper's LSTM: pixels permuted by a fixed permutation (``seed``), read as 28
    steps of 28 features, hidden 48, last state -> linear 10 without bias (15,456
    parameters). Takes flat 784-pixel rows.

    The recurrence is written out with tensor operations (same parameters, names,
    layout, gate order i, f, g, o and initialization as ``nn.LSTM``), because
    ``torch.func.vmap`` has no batching rule for the fused LSTM kernel.
    """
    torch = _torch()
    nn = torch.nn
    perm = torch.from_numpy(np.random.RandomState(seed).permutation(784))

    class UnrolledLSTM(nn.Module):
        def __init__(self, n_in=28, hidden=48):
            super().__init__()
            self.hidden = hidden
            self.weight_ih_l0 = nn.Parameter(torch.empty(4 * hidden, n_in))
            self.weight_hh_l0 = nn.Parameter(torch.empty(4 * hidden, hidden))
            self.bias_ih_l0 = nn.Parameter(torch.empty(4 * hidden))
            self.bias_hh_l0 = nn.Parameter(torch.empty(4 * hidden))
            self.reset_parameters()

        def reset_parameters(self):
            bound = 1.0 / np.sqrt(self.hidden)
            for p in self.parameters():
                nn.init.uniform_(p, -bound, bound)

        def forward(self, seq):  # (n, steps, n_in) -> last hidden state (n, hidden)
            H = self.hidden
            h = seq.new_zeros(seq.shape[0], H)
            c = seq.new_zeros(seq.shape[0], H)
            pre = seq @ self.weight_ih_l0.T + self.bias_ih_l0 + self.bias_hh_l0
            for t in range(seq.shape[1]):
                z = pre[:, t] + h @ self.weight_hh_l0.T
                i, f = torch.sigmoid(z[:, :H]), torch.sigmoid(z[:, H:2 * H])
                g, o = torch.tanh(z[:, 2 * H:3 * H]), torch.sigmoid(z[:, 3 * H:])
                c = f * c + i * g
                h = o * torch.tanh(c)
            return h

    class PermutedLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = UnrolledLSTM()
            self.out = nn.Linear(48, 10, bias=False)

        def forward(self, x):
            seq = x[..., perm].reshape(-1, 28, 28)
            return self.out(self.lstm(seq))

    return PermutedLSTM()
