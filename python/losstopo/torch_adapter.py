"""Optional PyTorch adapter: any torch module as a batched landscape.

``TorchLandscape(module, X, y, loss)`` evaluates many flat parameter vectors per call
with torch.func (``functional_call`` under ``vmap``) and offers the same methods as
the native :class:`~losstopo.Landscape`, so it plugs into ``train``, ``minimize``,
``find_path``, ``barrier_matrix`` and the study. torch is imported only here.
"""

from __future__ import annotations

import copy
import functools
import warnings
from typing import Optional

import numpy as np

from ._checks import check_int, check_labels, check_real, check_samples
from .torch_norm import HeldStatistics, Norms, batchnorm_layers, running_statistics


def require_torch():
    try:
        import torch
        import torch.func  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "this needs the optional PyTorch extra: pip install 'losstopo[torch]'") from e
    return torch


# Sample chunks at least this large take gradients one vector at a time (no vmap).
PLAIN_GRAD_SAMPLES = 256


def theta_names(module, options: dict) -> list:
    """The names of what theta holds, in order: the parameters (with
    ``requires_grad=False`` ones only when ``frozen="theta"``), then, with
    ``buffers="theta"``, the floating-point buffers (BatchNorm's running statistics
    only under ``batchnorm="module"``). Tied tensors appear once."""
    names = [k for k, p in module.named_parameters()
             if p.requires_grad or options["frozen"] == "theta"]
    if options["buffers"] == "theta":
        running = set()
        if options["batchnorm"] == "data":
            running = running_statistics(name for name, _ in batchnorm_layers(module))
        names += [k for k, b in module.named_buffers()
                  if b.is_floating_point() and k not in running]
    if not names:
        raise ValueError("module: has no parameters (nothing to make a landscape of)")
    return names


def refuse_randomness(module) -> None:
    """A ValueError naming the first module that draws random numbers in training mode."""
    from torch.nn.modules.dropout import _DropoutNd

    for name, m in module.named_modules():
        if m.training and isinstance(m, _DropoutNd) and m.p > 0:
            raise ValueError(
                f"module: {f'layer {name!r}' if name else 'the module'} ({type(m).__name__}, "
                f"p={m.p}) draws random "
                "numbers in training mode, so the loss is not a function of theta; call "
                "module.eval() first, or pass randomness='eval'")


def refuse_random_forward(module, x) -> None:
    """A ValueError when one forward of ``module`` (in its mode) on ``x`` draws from
    torch's random number generator (functional dropout, RReLU, noise): the loss would
    not be a function of theta. The generator's state is put back."""
    import torch

    state = torch.get_rng_state()
    try:
        with torch.no_grad():
            module(x)
    finally:
        drew = not torch.equal(state, torch.get_rng_state())
        torch.set_rng_state(state)
    if drew:
        mode = "training" if module.training else "eval"
        cure = ("call module.eval() first, or pass randomness='eval'" if module.training
                else "the landscape needs a forward without random draws")
        raise ValueError(f"module: its forward draws random numbers in {mode} mode, so the "
                         f"loss is not a function of theta; {cure}")


RANDOM_OP = "random operation"  # in torch's message when vmap meets one


def _deterministic(method):
    """Turns torch's error on a random operation under vmap into one naming the cure."""

    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except RuntimeError as e:
            if RANDOM_OP not in str(e):
                raise
            raise ValueError(
                f"module: its forward calls a random operation ({str(e).splitlines()[0]}), "
                "so the loss is not a function of theta; call module.eval() first, or pass "
                "randomness='eval'") from e

    return wrapped


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
    chunk : at most this many samples per vmapped call.
    memory_mb : what one vmapped call may hold, in MiB. Calls are cut over parameter
        vectors as well as samples so that (vectors x samples) x the bytes one sample
        keeps for the backward pass (measured once, on the module itself) stays
        within it: memory no longer grows with the number of vectors of a call
        (the points of a path, its 10x refinement grid). Results do not depend on it
        beyond rounding.
    batchnorm : "data" (default) or "module". "data": the landscape of the function the
        weights define; every BatchNorm layer normalizes with its inputs' mean and
        (biased) variance over all samples (or the ``samples=`` subset), for each
        vector: as one batch of all of them would in training mode. They are computed
        in chunked passes first and then held, so the loss does not depend on
        ``chunk``, ``memory_mb`` or how many vectors share a call, and the gradient
        includes their dependence on theta (it is the gradient of that loss). A model
        with L BatchNorm layers costs L forward passes more per loss and L + 1
        gradient passes per gradient. ``evaluate_each`` (SGD's minibatches) uses each
        minibatch's own statistics, as training does. "module": the module's own
        running buffers for every vector (its ``eval()`` behaviour); they do not follow
        theta, so a point between two solutions uses statistics of neither.
    randomness : "refuse" (default) or "eval". A module with Dropout in training mode
        (or any random operation in its forward) does not define one function of
        theta: "refuse" raises a ValueError naming it (call ``module.eval()``);
        "eval" evaluates the landscape's copy in eval mode.
    frozen : "fixed" (default) or "theta": parameters with ``requires_grad=False`` are
        held at the module's values, or are part of theta.
    buffers : "fixed" (default) or "theta": floating-point buffers (other than
        BatchNorm's running statistics under ``batchnorm="data"``, which are not used)
        are held at the module's values, or are part of theta.
    Tied parameters (one tensor under two names) appear once in theta.
    compile : run the batched passes (loss, gradient, accuracy, SGD's minibatches)
        through ``torch.compile`` (opt-in: each new call shape costs a compilation,
        about a minute for LeNet on 2 cores, and needs a C++ compiler; see
        RESULTS.md for what it gains). The held-statistics passes of BatchNorm models
        and the Hessian-vector products stay eager.
    """

    def __init__(self, module, X, y=None, loss: str = "cross_entropy", dtype="float32",
                 chunk: int = 2048, threads: Optional[int] = None, memory_mb: float = 256,
                 batchnorm: str = "data", randomness: str = "refuse", frozen: str = "fixed",
                 buffers: str = "fixed", compile: bool = False):
        torch = require_torch()
        for name, value, allowed in (("randomness", randomness, ("refuse", "eval")),
                                     ("frozen", frozen, ("fixed", "theta")),
                                     ("buffers", buffers, ("fixed", "theta"))):
            if value not in allowed:
                raise ValueError(f"{name}: expected one of {allowed}, got {value!r}")
        if loss not in ("cross_entropy", "mse"):
            raise ValueError(f"loss: expected 'cross_entropy' or 'mse', got {loss!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected float32 or float64, got {self.dtype}")
        tdt = torch.float32 if self.dtype == np.float32 else torch.float64
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
        X = np.asarray(X)
        if X.ndim < 2 or X.shape[0] == 0:
            raise ValueError(f"X: expected shape (n, ...), got {X.shape}")
        X = check_real("X", X, self.dtype)  # the same checks as the native engine's
        # The user's module is never changed: this landscape works on its own copy.
        self.module = copy.deepcopy(module).to(tdt)
        if randomness == "eval":
            self.module.eval()
        else:
            refuse_randomness(self.module)
        self.options = dict(batchnorm=batchnorm, randomness=randomness, frozen=frozen,
                            buffers=buffers)
        self.norms = Norms(self.module, batchnorm)
        self.loss_name = loss
        self.X = torch.from_numpy(X)
        n = X.shape[0]
        training = self.module.training
        self.module.eval()  # a probe: no running statistics move, one sample is enough
        try:
            with torch.no_grad():  # one sample's output: the labels' range, the targets' shape
                out = self.module(self.X[:1])
        except (RuntimeError, ValueError, TypeError, IndexError) as e:  # torch's own words
            raise ValueError(f"X: the module cannot take inputs of shape {X.shape[1:]} per "
                             f"sample ({str(e).splitlines()[0]})") from e
        finally:
            self.module.train(training)
        refuse_random_forward(self.module, self.X[:2])
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"module: its forward must return one tensor, got "
                            f"{type(out).__name__}")
        if loss == "cross_entropy":
            if out.ndim != 2:
                raise ValueError(f"module: cross_entropy needs outputs of shape (n, classes), "
                                 f"got {tuple(out.shape)} for one sample")
            self.y = torch.from_numpy(check_labels(y, n, int(out.shape[1])).astype(np.int64))
        elif y is None:
            if out[0].numel() != self.X[0].numel():
                raise ValueError("y: mse without targets reconstructs the input, which needs "
                                 "outputs of the input's size")
            self.y = None
        else:
            t = check_real("y", y, self.dtype)
            want = (n,) + tuple(out.shape[1:])
            if t.shape != want:  # never broadcast (n,) against (n, 1)
                raise ValueError(f"y: targets must have the outputs' shape {want}, got {t.shape}")
            self.y = torch.from_numpy(t)
        self.names = theta_names(self.module, self.options)
        tensors = self._tensors()
        self.shapes = [tuple(tensors[k].shape) for k in self.names]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.num_params = int(sum(self.sizes))
        self.num_samples = n
        if int(chunk) < 1:
            raise ValueError(f"chunk: must be a positive integer, got {chunk!r}")
        if not (isinstance(memory_mb, (int, float)) and np.isfinite(memory_mb)
                and memory_mb > 0):
            raise ValueError(f"memory_mb: must be a positive number, got {memory_mb!r}")
        self.chunk = int(chunk)
        self.memory_mb = float(memory_mb)
        self._sample_bytes = None  # bytes one (vector, sample) keeps for backward
        # A path's maximum is located on a grid 2x (not 10x) finer than the path's, then
        # refined around the highest point: its passes cost ~10x the native engine's.
        self.measure_grid = dict(factor=2, rounds=3, per_round=8)
        self.threads = check_int("threads", threads, allow_none=True)
        self.net = None  # not a native MLP
        f = self._loss_fn
        self._g = torch.func.grad_and_value(f)
        self._vg = torch.func.vmap(self._g, in_dims=(0, None, None))
        self._v = torch.func.vmap(f, in_dims=(0, None, None))
        self._vg_each = torch.func.vmap(torch.func.grad_and_value(f), in_dims=(0, 0, 0))
        self._v_each = torch.func.vmap(f, in_dims=(0, 0, 0))
        self._out = torch.func.vmap(self._forward, in_dims=(0, None))
        # Passes with the data's BatchNorm statistics held (torch_norm.HeldStatistics).
        held_grad = torch.func.grad(self._held_chunk, argnums=(0, 1), has_aux=True)
        self._held_g = held_grad
        self._held_vg = torch.func.vmap(held_grad, in_dims=(0, 0, 0, None, None))
        self._held_v = torch.func.vmap(self._held_chunk, in_dims=(0, 0, 0, None, None))
        self._held_out = torch.func.vmap(self._held_forward, in_dims=(0, 0, None))
        if not isinstance(compile, bool):
            raise TypeError(f"compile: expected True or False, got {compile!r}")
        self.compiled = compile
        if compile:
            with warnings.catch_warnings():  # torch's compiler imports deprecated parts
                warnings.simplefilter("ignore", DeprecationWarning)
                for name in ("_g", "_vg", "_v", "_vg_each", "_out"):
                    setattr(self, name, torch.compile(getattr(self, name)))
        self.fingerprint = self._fingerprint()

    def _fingerprint(self) -> str:
        """What this landscape's numbers depend on, hashed (the key of its path files and
        checkpoints, as a Landscape's data fingerprint is): the data as held, the
        module's structure, class and forward code, its parameters' names and shapes, its
        buffers (running statistics), the loss and the dtype."""
        import hashlib
        import inspect

        h = hashlib.sha256()
        for t in (self.X, self.y):
            if t is not None:
                h.update(t.numpy().tobytes())
        m = self.module
        try:
            code = inspect.getsource(type(m).forward)
        except (OSError, TypeError):  # defined where no source is kept
            code = ""
        for part in (type(m).__module__, type(m).__qualname__, str(m), code, self.loss_name,
                     self.dtype.name, repr(list(zip(self.names, self.shapes))),
                     repr(sorted(self.options.items()))):
            h.update(part.encode())
        for name, b in m.named_buffers():
            h.update(name.encode())
            h.update(b.detach().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    @property
    def classifier(self) -> bool:
        return self.loss_name == "cross_entropy"

    # ---------------------------------------------------------------- core
    def _tensors(self) -> dict:
        """The module copy's parameters and buffers by name (tied ones once)."""
        return dict(list(self.module.named_buffers()) + list(self.module.named_parameters()))

    def unused_tensors(self) -> set:
        """Names of the copy's tensors its forward does not read: BatchNorm's running
        statistics under ``batchnorm="data"``."""
        return running_statistics(self.norms.names if self.norms.mode == "data" else ())

    def _params(self, flat):
        out, k = {}, 0
        for name, shape, size in zip(self.names, self.shapes, self.sizes):
            out[name] = flat[k:k + size].reshape(shape)
            k += size
        return out

    def _forward(self, flat, xb):
        torch = require_torch()
        return torch.func.functional_call(self.module, self._params(flat), (xb,))

    def _loss_fn(self, flat, xb, yb):
        torch = require_torch()
        out = self._forward(flat, xb)
        if self.loss_name == "cross_entropy":
            return torch.nn.functional.cross_entropy(out, yb)
        target = xb.reshape(out.shape) if yb is None else yb
        return torch.mean((out - target) ** 2)

    def _held_chunk(self, flat, raw, lam, xb, yb):
        """One chunk's loss with the BatchNorm statistics ``raw`` held, and the raw
        moments of every BatchNorm input: (G, (loss, moments)) with G = loss +
        <lam, moments>, the function whose gradients the held passes accumulate."""
        with self.norms.using(raw, record=True) as ctx:
            loss = self._loss_fn(flat, xb, yb)
            rec = self.norms.recorded(ctx, raw)
        return loss.double() + (lam * rec).sum(), (loss, rec)

    def _held_forward(self, flat, raw, xb):
        with self.norms.using(raw):
            return self._forward(flat, xb)

    def _held_pass(self, t, samples, raw, lam, grad: bool, plan):
        """One chunked pass over the samples with statistics ``raw`` held: the loss
        (P,), the raw moments (P, W) and, with ``grad``, the gradients of G in theta
        (P, D) and in the moments (P, W), all weighted by each chunk's share. Sums are
        formed out of place (forward-mode autodiff runs through them for Hessian-vector
        products)."""
        n = self.num_samples if samples is None else len(samples)
        pv, ps = plan
        plain = grad and ps >= PLAIN_GRAD_SAMPLES
        if plain:
            pv = 1
        if lam is None:
            lam = raw.new_zeros(raw.shape)
        blocks = []
        for v in range(0, t.shape[0], pv):
            tv, rv, lv = t[v:v + pv], raw[v:v + pv], lam[v:v + pv]
            acc = None
            for m, xb, yb in self._batches(samples, ps):
                if not grad:
                    parts = self._held_v(tv, rv, lv, xb, yb)[1]
                elif plain:
                    (gt, gr), (lb, rec) = self._held_g(tv[0], rv[0], lv[0], xb, yb)
                    parts = (lb[None], rec[None], gt[None], gr[None])
                else:
                    (gt, gr), (lb, rec) = self._held_vg(tv, rv, lv, xb, yb)
                    parts = (lb, rec, gt, gr)
                w = m / n
                acc = [w * p for p in parts] if acc is None else [
                    a + w * p for a, p in zip(acc, parts)]
            blocks.append(acc)
        cat = require_torch().cat
        out = [cat([b[k] for b in blocks]) for k in range(len(blocks[0]))]
        return tuple(out) if grad else (out[0], out[1], None, None)

    def _held_run(self, t, samples, grad: bool, plan=None):
        """Loss (and gradient) of the vectors ``t`` with the data's BatchNorm statistics."""
        n = self.num_samples if samples is None else len(samples)
        plan = self._plan(t.shape[0], n) if plan is None else plan

        def run_pass(raw, lam, g):
            return self._held_pass(t, samples, raw, lam, g, plan)

        held = HeldStatistics(self.norms)
        if grad:
            return held.loss_and_grad(t, run_pass)
        return held.loss(t, run_pass)[0], None

    def _theta(self, theta, name: str = "theta"):
        torch = require_torch()
        theta = np.asarray(theta)
        single = theta.ndim == 1
        if theta.ndim not in (1, 2) or theta.shape[-1] != self.num_params:
            raise ValueError(f"{name}: expected shape ({self.num_params},) or (P, "
                             f"{self.num_params}), got {theta.shape}")
        t = np.ascontiguousarray(theta.reshape(-1, self.num_params), dtype=self.dtype)
        if not np.isfinite(t).all():
            raise ValueError(f"{name}: contains NaN or Inf")
        return torch.from_numpy(t), single

    def sample_bytes(self) -> int:
        """Bytes one (parameter vector, sample) keeps for the backward pass: what
        autograd saves for one gradient of the loss on a few samples, per sample,
        counted once with saved-tensor hooks."""
        if self._sample_bytes is None:
            torch = require_torch()
            b = min(8, self.num_samples)
            flat = self._current().requires_grad_(True)
            total = [0]

            def pack(t):
                total[0] += t.numel() * t.element_size()
                return t

            yb = None if self.y is None else self.y[:b]
            kept = {k: v.clone() for k, v in self.module.named_buffers()}
            try:
                with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(
                        pack, lambda t: t):
                    self._loss_fn(flat, self.X[:b], yb)
            finally:  # the measurement leaves running statistics as they were
                with torch.no_grad():
                    for k, v in self.module.named_buffers():
                        v.copy_(kept[k])
            # The saved tensors, their gradients in the backward pass and the
            # forward's temporaries: about three times what is saved.
            self._sample_bytes = max(1, 3 * total[0] // b)
        return self._sample_bytes

    def _plan(self, P: int, n: int):
        """(vectors, samples) per vmapped call within ``memory_mb``. A forward pass
        without gradients is given the same budget per (vector, sample): under vmap
        it was measured to hold nearly as much (LeNet: 2.25 GB at three times it)."""
        pairs = max(1, int(self.memory_mb * 2**20 / self.sample_bytes()))
        s = max(1, min(n, self.chunk, pairs))
        return max(1, min(P, pairs // s)), s

    def _batches(self, samples, size):
        torch = require_torch()
        idx = torch.arange(self.num_samples) if samples is None else torch.from_numpy(
            check_samples(samples, self.num_samples))
        for s in range(0, len(idx), size):
            j = idx[s:s + size]
            yield len(j), self.X[j], (None if self.y is None else self.y[j])

    def _threads(self):
        """A context that runs torch with this landscape's threads (when set)."""
        import contextlib

        torch = require_torch()

        @contextlib.contextmanager
        def ctx():
            before = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                yield
            finally:
                torch.set_num_threads(before)

        return ctx()

    def _current(self):
        """The module copy's own values as a flat vector (theta's layout)."""
        torch = require_torch()
        tensors = self._tensors()
        with torch.no_grad():
            return torch.cat([tensors[k].detach().reshape(-1).to(self.X.dtype)
                              for k in self.names])

    def _run(self, theta, grad: bool, samples=None):
        torch = require_torch()
        t, single = self._theta(theta)
        samples = check_samples(samples, self.num_samples)
        if self.norms.held:
            with self._threads(), (torch.enable_grad() if grad else torch.no_grad()):
                loss, g = self._held_run(t, samples, grad)
            loss = loss.numpy()
            g = None if g is None else g.numpy()
            return (loss[0], None if g is None else g[0]) if single else (loss, g)
        n = self.num_samples if samples is None else len(samples)
        P = t.shape[0]
        loss = torch.zeros(P, dtype=t.dtype)
        g = torch.zeros_like(t) if grad else None
        pv, ps = self._plan(P, n)
        # Gradients on large sample chunks go vector by vector: the chunk is batch
        # enough, and vmap's batching rules can cost several times the plain pass
        # (measured: 3-6x for the LSTM's recurrence, up to 1.6x for LeNet's convolutions).
        plain = grad and ps >= PLAIN_GRAD_SAMPLES
        if plain:
            pv = 1
        with self._threads(), (torch.enable_grad() if grad else torch.no_grad()):
            for v in range(0, P, pv):
                tv = t[v:v + pv]
                for m, xb, yb in self._batches(samples, ps):
                    if grad:
                        gb, lb = self._g(tv[0], xb, yb) if plain else self._vg(tv, xb, yb)
                        g[v:v + pv] += (m / n) * gb
                    else:
                        lb = self._v(tv, xb, yb)
                    loss[v:v + pv] += (m / n) * lb
        loss = loss.numpy()
        g = None if g is None else g.numpy()
        if single:
            return loss[0], (None if g is None else g[0])
        return loss, g

    # ----------------------------------------------------------- interface
    @_deterministic
    def loss(self, theta, samples=None):
        return self._run(theta, False, samples)[0]

    @_deterministic
    def loss_and_grad(self, theta, samples=None):
        return self._run(theta, True, samples)

    @_deterministic
    def accuracy(self, theta, samples=None):
        torch = require_torch()
        if not self.classifier:
            raise ValueError("accuracy: only defined for cross_entropy (classifier) landscapes")
        t, single = self._theta(theta)
        P = t.shape[0]
        correct = torch.zeros(P, dtype=torch.float64)
        n = self.num_samples if samples is None else len(samples)
        pv, ps = self._plan(P, n)
        with self._threads(), torch.no_grad():
            for v in range(0, P, pv):
                if self.norms.held:  # the statistics of these vectors on these samples
                    tv = t[v:v + pv]
                    raw = HeldStatistics(self.norms).statistics(
                        tv, lambda r, lam, g, tv=tv: self._held_pass(tv, samples, r, lam, g,
                                                                      (pv, ps)))
                for _, xb, yb in self._batches(samples, ps):
                    out = (self._held_out(t[v:v + pv], raw, xb) if self.norms.held
                           else self._out(t[v:v + pv], xb))
                    correct[v:v + pv] += (out.argmax(-1) == yb).sum(-1).double()
        acc = (correct / n).numpy().astype(self.dtype)
        return acc[0] if single else acc

    @_deterministic
    def hessian_vector(self, theta, v, samples=None):
        """Exact Hessian-vector products (forward-over-reverse: torch.func.jvp of
        grad), direction by direction on chunks of samples within the memory budget:
        theta (D,) or (P, D), v (D,) or (P, D) -> H(theta) v with v's shape."""
        torch = require_torch()
        t, _ = self._theta(theta)
        V, _ = self._theta(v, "v")
        if t.shape[0] not in (1, V.shape[0]):
            raise ValueError(f"theta: expected one point or one per direction ({V.shape[0]}), "
                             f"got {t.shape[0]}")
        samples = check_samples(samples, self.num_samples)
        n = self.num_samples if samples is None else len(samples)
        # jvp of grad keeps about twice what a gradient keeps
        ps = max(1, self._plan(1, n)[1] // 2)
        out = torch.zeros_like(V)
        with self._threads(), torch.enable_grad(), warnings.catch_warnings():
            # torch's forward-mode rules script their decompositions on first use
            warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated",
                                    category=DeprecationWarning)
            for p in range(V.shape[0]):
                tp = t[0 if t.shape[0] == 1 else p]
                if self.norms.held:  # through the statistics' passes too
                    out[p] = torch.func.jvp(
                        lambda w: self._held_run(w[None], samples, True, (1, ps))[1][0],
                        (tp,), (V[p],))[1]
                    continue
                for m, xb, yb in self._batches(samples, ps):
                    g = torch.func.grad(lambda w: self._loss_fn(w, xb, yb))
                    out[p] += (m / n) * torch.func.jvp(g, (tp,), (V[p],))[1]
        return out.numpy().reshape(np.shape(v))

    @_deterministic
    def evaluate_each(self, theta, samples):
        """Vector p on its own samples[p] (P, B): losses (P,), grads (P, D)."""
        torch = require_torch()
        t, _ = self._theta(theta)
        s = np.asarray(samples)
        if s.ndim != 2 or s.shape[0] != t.shape[0] or s.shape[1] < 1:
            raise ValueError(f"samples: expected shape ({t.shape[0]}, B) with B >= 1, got "
                             f"{s.shape}")
        s = torch.from_numpy(check_samples(s.reshape(-1), self.num_samples).reshape(s.shape))
        P, B = s.shape
        pv = self._plan(P, B)[0] if B <= self.chunk else 1
        losses, grads = np.empty(P, dtype=self.dtype), np.empty(t.shape, dtype=self.dtype)
        with self._threads():
            for v in range(0, P, pv):
                sv = s[v:v + pv]
                yb = None if self.y is None else self.y[sv]
                g, lossv = self._vg_each(t[v:v + pv], self.X[sv], yb)
                losses[v:v + pv], grads[v:v + pv] = lossv.numpy(), g.numpy()
        return losses, grads

    def __call__(self, theta):
        return self.loss_and_grad(theta)

    def init(self, count: int = 1, seed: int = 0, first: int = 0, dtype=None) -> np.ndarray:
        """PyTorch's default initialization of the module, one stream per vector."""
        torch = require_torch()
        out = np.empty((count, self.num_params), dtype=self.dtype)
        kept = copy.deepcopy(self.module.state_dict())  # fixed values and buffers stay
        try:
            for r in range(count):
                torch.manual_seed(int(np.random.SeedSequence(
                    int(seed), spawn_key=(first + r,)).generate_state(1)[0]))
                for m in self.module.modules():
                    if hasattr(m, "reset_parameters"):  # the top-level module too
                        m.reset_parameters()
                out[r] = self._current().numpy()
        finally:
            self.module.load_state_dict(kept)
        return out

    def __repr__(self) -> str:
        return (f"TorchLandscape({type(self.module).__name__}, n={self.num_samples}, "
                f"D={self.num_params}, loss={self.loss_name!r})")


ACTIVATIONS = ("softplus", "relu", "tanh", "sigmoid")
# The pixel permutation of the authors' LSTM: torch.randperm(784) drawn from a
# generator seeded with this (their NN_arch.py), so that the solutions published with
# the paper evaluate as they should.
AUTHORS_PERMUTATION_SEED = 1234


def _activation(name: str):
    torch = require_torch()
    layers = dict(softplus=torch.nn.Softplus, relu=torch.nn.ReLU, tanh=torch.nn.Tanh,
                  sigmoid=torch.nn.Sigmoid)
    if name not in layers:
        raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {name!r}")
    return layers[name]()


def lenet(activation: str = "softplus"):
    """The paper's LeNet: conv 6@5x5 pad 2, avgpool 2; conv 16@5x5, avgpool 2;
    FC 400-120-84-10, biases (61,706 parameters). Takes flat 784-pixel rows.

    ``activation`` after each conv and hidden FC layer: softplus, as in the authors'
    code (the paper's text says ReLU: ``activation="relu"``). The parameters are laid
    out as in the authors' module (conv1, conv2, fc1, fc2, fc3; weight, then bias), so
    their flat vectors load directly.
    """
    torch = require_torch()
    nn = torch.nn

    class LeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 6, 5, padding=2), _activation(activation), nn.AvgPool2d(2),
                nn.Conv2d(6, 16, 5), _activation(activation), nn.AvgPool2d(2))
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(400, 120), _activation(activation), nn.Linear(120, 84),
                _activation(activation), nn.Linear(84, 10))

        def forward(self, x):
            return self.classifier(self.features(x.reshape(-1, 1, 28, 28)))

    return LeNet()


def lstm_permutation(seed: int = AUTHORS_PERMUTATION_SEED) -> np.ndarray:
    """The LSTM's pixel order: ``torch.randperm(784)`` from a generator seeded with
    ``seed`` (the authors' default 1234 gives their permutation)."""
    torch = require_torch()
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(784, generator=g).numpy()


def lstm(seed: int = AUTHORS_PERMUTATION_SEED, perm=None):
    """The paper's LSTM: pixels permuted by a fixed permutation, read as 28 steps of 28
    features, hidden 48, last state -> linear 10 without bias (15,456 parameters).
    Takes flat 784-pixel rows.

    The permutation is ``perm`` (784 indices) when given, else
    :func:`lstm_permutation` of ``seed``; the default is the authors' (seed 1234), under
    which their published solutions reach the paper's training loss.

    The recurrence is written out with tensor operations (same parameters, names,
    layout, gate order i, f, g, o and initialization as ``nn.LSTM``), because
    ``torch.func.vmap`` has no batching rule for the fused LSTM kernel.
    """
    torch = require_torch()
    nn = torch.nn
    if perm is None:
        perm = lstm_permutation(seed)
    perm = np.asarray(perm)
    if perm.shape != (784,) or perm.dtype.kind not in "iu" or not np.array_equal(
            np.sort(perm), np.arange(784)):
        raise ValueError("perm: expected a permutation of the 784 pixel indices")
    perm = torch.from_numpy(perm.astype(np.int64))

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
