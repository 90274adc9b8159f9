"""BatchNorm in a TorchLandscape: the statistics each parameter vector defines.

A BatchNorm layer normalizes with statistics of its inputs, so the loss of a parameter
vector depends on which samples those statistics come from. ``batchnorm="data"`` (the
landscape of the function the weights define) takes them over all the landscape's
samples, or the ``samples=`` subset, for each vector: each channel's mean and biased
variance, as one batch of all those samples would give in training mode. They come
from chunked passes and are then held fixed, so the loss does not depend on how
samples or vectors are cut into calls. The gradient carries their dependence on theta:
an adjoint of the statistics accumulated in the same chunked passes (see
:class:`HeldStatistics`), so it is the gradient of that loss.

``batchnorm="module"`` normalizes with the module's own running buffers, whatever the
vector (the module's ``eval()`` behaviour): they do not follow theta, so a point
between two solutions uses statistics that belong to neither.

The layers of the landscape's copy of the module get a forward that reads its
statistics from the call in progress (:meth:`Norms.held`); the user's module is never
touched.
"""

from __future__ import annotations

import contextlib
import functools
from types import SimpleNamespace

BATCHNORM_MODES = ("data", "module")


def batchnorm_layers(module) -> list:
    """(name, layer) of every BatchNorm layer of ``module``, in module order."""
    from torch.nn.modules.batchnorm import _BatchNorm

    return [(name, m) for name, m in module.named_modules() if isinstance(m, _BatchNorm)]


def running_statistics(names) -> set:
    """The running-statistics buffers of the BatchNorm layers named ``names``."""
    return {f"{n}.{k}" if n else k for n in names for k in ("running_mean", "running_var")}


def _forward(norms, i: int, layer, x):
    """A BatchNorm layer's forward under a landscape."""
    import torch

    name = norms.names[i] or "the module"
    if x.ndim < 2:
        raise ValueError(f"{name}: BatchNorm needs inputs (n, channels, ...), got "
                         f"{tuple(x.shape)}")
    shape = (1, -1) + (1,) * (x.ndim - 2)
    dims = (0,) + tuple(range(2, x.ndim))
    ctx = norms.ctx
    if norms.mode == "module":
        mean, var = layer.running_mean, layer.running_var
    elif ctx is None or ctx.raw is None:  # the samples of this call (a minibatch)
        mean = x.mean(dims)
        var = ((x - mean.reshape(shape)) ** 2).mean(dims)
    else:  # the statistics held for this vector: E[x], E[x^2] per channel
        o, c, half = norms.offsets[i], norms.sizes[i], norms.width // 2
        e1, e2 = ctx.raw[..., o:o + c], ctx.raw[..., half + o:half + o + c]
        mean = e1.to(x.dtype)
        var = (e2 - e1 * e1).clamp_min(0.0).to(x.dtype)
    if ctx is not None and ctx.record is not None:
        if ctx.record[i] is not None:
            raise ValueError(f"{name}: this BatchNorm layer is called more than once in one "
                             "forward; its statistics would be ambiguous (use one layer "
                             "per call site)")
        xd = x.double()  # moments in float64: the variance is E[x^2] - E[x]^2
        ctx.record[i] = (xd.mean(dims), (xd * xd).mean(dims))
    y = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + layer.eps)
    if layer.weight is not None:
        y = y * layer.weight.reshape(shape)
    if layer.bias is not None:
        y = y + layer.bias.reshape(shape)
    return y


class Norms:
    """The BatchNorm layers of a landscape's module copy, with the forward above.

    The held statistics of a vector are one float64 vector of ``width`` raw moments:
    E[x] of every layer's channels, then E[x^2] of every layer's channels (raw moments
    add up over chunks of samples; the variance is formed from them in float64)."""

    def __init__(self, module, mode: str):
        if mode not in BATCHNORM_MODES:
            raise ValueError(f"batchnorm: expected one of {BATCHNORM_MODES}, got {mode!r}")
        layers = batchnorm_layers(module)
        self.mode = mode
        self.names = [name for name, _ in layers]
        self.sizes = [int(m.num_features) for _, m in layers]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(layers))]
        self.width = 2 * sum(self.sizes)
        self.ctx = None
        for name, m in layers:
            if mode == "module" and m.running_mean is None:
                raise ValueError(f"batchnorm='module': {name or 'the module'} keeps no "
                                 "running statistics "
                                 "(track_running_stats=False); use batchnorm='data'")
        for i, (_, m) in enumerate(layers):
            m.forward = functools.partial(_forward, self, i, m)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def held(self) -> bool:
        """Whether the statistics are the data's per vector (computed in passes)."""
        return self.mode == "data" and len(self) > 0

    @contextlib.contextmanager
    def using(self, raw=None, record: bool = False):
        """Forwards inside normalize with ``raw`` (None: each call's own samples) and,
        with ``record``, keep the raw moments of every layer's input (:meth:`recorded`)."""
        before = self.ctx
        self.ctx = SimpleNamespace(raw=raw, record=[None] * len(self) if record else None)
        try:
            yield self.ctx
        finally:
            self.ctx = before

    def recorded(self, ctx, like):
        """The raw moments recorded in ``ctx`` as one vector (a layer not called in the
        forward records zeros)."""
        import torch

        parts = [[], []]
        for i, r in enumerate(ctx.record):
            for k in (0, 1):
                parts[k].append(r[k] if r is not None else like.new_zeros(
                    self.sizes[i], dtype=torch.float64))
        return torch.cat(parts[0] + parts[1])

    def start(self, P: int, like):
        """Raw moments to start the passes from: mean 0, variance 1 in every channel."""
        import torch

        raw = like.new_zeros((P, self.width), dtype=torch.float64)
        raw[:, self.width // 2:] = 1.0
        return raw


class HeldStatistics:
    """The loss of vectors whose BatchNorm statistics are the data's, and its gradient.

    With r the raw moments, the chunked loss is F(theta, r) and the moments are a
    fixed point r = R(theta, r) (layer k's moments depend on the statistics of the
    layers before it, so k passes make the first k layers exact). L layers take L
    forward passes. The gradient of F(theta, r(theta)) is dF/dtheta + lam^T dR/dtheta
    with lam = dF/dr + (dR/dr)^T lam; dR/dr is strictly lower block-triangular, so L+1
    gradient passes of G = F + <lam, R>, each giving the next lam as dG/dr, end with
    the exact lam and the gradient. All sums run over the same chunks as the loss.

    ``run_pass(raw, lam, grad)`` is the landscape's chunked pass: it returns the
    loss, the moments R, and with ``grad`` the gradients of G in theta and in r.
    """

    def __init__(self, norms: Norms):
        self.norms = norms

    def loss(self, t, run_pass):
        raw = self.statistics(t, run_pass)
        return run_pass(raw, None, False)[0], raw

    def loss_and_grad(self, t, run_pass):
        raw = self.statistics(t, run_pass)
        lam = raw.new_zeros(raw.shape)
        for _ in range(len(self.norms) + 1):
            loss, _, g, lam = run_pass(raw, lam, True)
        return loss, g

    def statistics(self, t, run_pass):
        raw = self.norms.start(t.shape[0], t)
        for _ in range(len(self.norms)):
            raw = run_pass(raw, None, False)[1]
        return raw
