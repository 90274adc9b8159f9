"""The batched loss landscape of an MLP over a dataset held by the compiled engine."""

from __future__ import annotations

import hashlib
from typing import Optional

import numpy as np

from ._checks import check_int, check_labels, check_samples
from .models import MLP, check_dtype



def check_device(device: str) -> str:
    """``device`` checked: "cpu", or "cuda[:N]" where this build can use a GPU."""
    if not isinstance(device, str):
        raise TypeError(f"device: expected a string such as 'cpu', got {device!r}")
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        from . import cuda_available

        if device.startswith("cuda:") and not device[5:].isdigit():
            raise ValueError(f"device: expected 'cuda:N' with an integer N, got {device!r}")
        if not cuda_available():
            raise RuntimeError(
                f"device={device!r}: this build of losstopo has no usable CUDA backend "
                "(losstopo.cuda_available() is False)"
            )
        return device
    raise ValueError(f"device: expected 'cpu' or 'cuda[:N]', got {device!r}")


def _as_float_matrix(name: str, a, dtype: np.dtype, cols: int) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise TypeError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    if a.ndim != 2 or a.shape[1] != cols:
        raise ValueError(f"{name}: expected shape (n, {cols}), got {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name}: empty array")
    a = np.ascontiguousarray(a, dtype=dtype)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    return a


class Landscape:
    """Loss, gradient and accuracy of many parameter vectors of ``net`` on one dataset.

    Parameters
    ----------
    net : MLP
    X : array (n, sizes[0])
        Inputs; copied once into the engine as ``dtype``.
    y : array (n,) of int, or array (n, sizes[-1]), or None
        Integer labels in ``[0, sizes[-1])`` for cross-entropy; float targets for MSE,
        or None for MSE against the input itself (autoencoder).
    dtype : "float32" or "float64"
        Precision of the data, the parameters and the results.
    device : "cpu", "cuda" or "cuda:N"
    threads : int or None
        Engine threads (None: all available cores), at most ``losstopo._core.MAX_THREADS`` (1024, the core's bound).
    chunk : int or None
        Samples per streamed chunk (None: chosen from the network and P). Results
        are deterministic for a given thread count and chunk size.
    input_products : "auto", "dense" or "sparse"
        How the CPU engine forms the first layer's products with the inputs: from their
        nonzeros alone ("sparse") or as dense products ("dense"); "auto" takes the sparse
        ones where :attr:`panel_density` is below ``losstopo._core.SPARSE_INPUTS_BELOW``
        (the crossover measured by ``benchmarks/bench_sparse_inputs.py``). Both give the
        same results to rounding; :attr:`sparse_inputs` says which one runs. The CUDA
        engine is dense ("sparse" is an error there).
    drop_zero_columns : bool
        Leave out of the first layer the input columns that are zero in every sample
        (MNIST: 67 of 784 pixels), on either device: the same losses to rounding, with
        less work for the dense products, and gradients, Hessian-vector products and
        SGD updates exactly zero in those columns' weights. :attr:`kept_columns` says
        how many columns the engine reads.
    """

    def __init__(
        self,
        net: MLP,
        X,
        y=None,
        dtype="float32",
        device: str = "cpu",
        threads: Optional[int] = None,
        chunk: Optional[int] = None,
        precision: str = "fp32",
        input_products: str = "auto",
        drop_zero_columns: bool = True,
    ):
        from ._native import core, engine_class

        if not isinstance(net, MLP):
            raise TypeError(f"net: expected a losstopo.MLP, got {type(net).__name__}")
        self.net = net
        self.dtype = check_dtype(dtype)
        self.device = check_device(device)
        X = _as_float_matrix("X", X, self.dtype, net.sizes[0])
        n = X.shape[0]
        labels = targets = None
        if net.loss == "cross_entropy":
            labels = check_labels(y, n, net.sizes[-1])
        elif y is not None:
            targets = _as_float_matrix("y", y, self.dtype, net.sizes[-1])
            if targets.shape[0] != n:
                raise ValueError(f"y: expected {n} rows like X, got {targets.shape[0]}")
        elif net.sizes[-1] != net.sizes[0]:
            raise ValueError(
                "y: mse without targets reconstructs the input, which needs "
                f"sizes[-1] == sizes[0] (got {net.sizes[-1]} and {net.sizes[0]})"
            )
        self.fingerprint = _fingerprint(X, labels, targets)
        threads = check_int("threads", threads, maximum=core.MAX_THREADS, allow_none=True)
        chunk = check_int("chunk", chunk, maximum=2**31 - 1, allow_none=True)
        if precision not in ("fp32", "tf32"):
            raise ValueError(f"precision: expected 'fp32' or 'tf32', got {precision!r}")
        _check_input_products(input_products)
        if not isinstance(drop_zero_columns, (bool, np.bool_)):
            raise TypeError("drop_zero_columns: expected True or False, got "
                            f"{drop_zero_columns!r}")
        if input_products == "sparse" and self.device != "cpu":
            raise ValueError("input_products='sparse': the CUDA engine forms its products "
                             "densely")
        args = (net.sizes, net.activations, net.output, net.bias, net.loss, X, labels, targets)
        cls = engine_class(self.device, self.dtype)
        self._densities = None
        self._drop = bool(drop_zero_columns)
        if self.device == "cpu":
            self._engine = cls(*args, threads or 0, chunk or 0, input_products,
                               bool(drop_zero_columns))
        else:
            index = int(self.device[5:]) if self.device.startswith("cuda:") else 0
            self._engine = cls(*args, index, precision == "tf32", chunk or 0,
                               bool(drop_zero_columns))
            self._densities = input_densities(X)  # (the CPU engine reports its own)
        self.num_samples = n
        self.num_params = net.num_params

    @property
    def engine(self):
        """The compiled engine (a ``losstopo._core.Objective*`` of either device), which
        training, ``minimize`` and the path finder drive without leaving C++."""
        return self._engine

    @property
    def classifier(self) -> bool:
        return self.net.loss == "cross_entropy"

    def evaluate_each(self, theta, samples):
        """Vector p on its own samples[p]: theta (P, D), samples (P, B) -> (P,), (P, D)."""
        t, _ = self._theta(theta)
        s = np.asarray(samples)
        if s.ndim != 2 or s.shape[0] != t.shape[0] or s.dtype.kind not in "iu":
            raise ValueError(f"samples: expected an integer array of shape ({t.shape[0]}, B)")
        if s.shape[1] < 1:
            raise ValueError("samples: each vector needs at least one sample (B >= 1)")
        if s.min() < 0 or s.max() >= self.num_samples:
            raise ValueError(f"samples: indices must lie in [0, {self.num_samples})")
        return self._engine.evaluate_each(t, np.ascontiguousarray(s, dtype=np.int64), True)

    def _needs_cpu(self, what: str):
        if self.device != "cpu":
            raise ValueError(f"{what}: a setting of the CPU engine (device is {self.device!r})")

    # -------------------------------------------------------------- settings
    @property
    def threads(self) -> int:
        return getattr(self._engine, "threads", 0)

    @threads.setter
    def threads(self, value: Optional[int]) -> None:
        self._needs_cpu("threads")
        from ._native import core

        self._engine.threads = check_int("threads", value, maximum=core.MAX_THREADS,
                                         allow_none=True) or 0

    @property
    def chunk(self) -> int:
        return getattr(self._engine, "chunk", 0)

    @chunk.setter
    def chunk(self, value: Optional[int]) -> None:
        self._needs_cpu("chunk")
        self._engine.chunk = check_int("chunk", value, maximum=2**31 - 1,
                                       allow_none=True) or 0

    @property
    def input_products(self) -> str:
        """"auto", "dense" or "sparse" (see the class); "dense" on a GPU."""
        return getattr(self._engine, "input_products", "dense")

    @input_products.setter
    def input_products(self, value: str) -> None:
        self._needs_cpu("input_products")
        self._engine.input_products = _check_input_products(value)

    @property
    def input_density(self) -> float:
        """The fraction of the inputs that are nonzero."""
        return self._density(0, "input_density")

    @property
    def panel_density(self) -> float:
        """The fraction of the inputs the sparse products read: the rows in groups of
        four, each over the columns where any of its rows is nonzero. It decides
        ``input_products="auto"``: MNIST's pixels, 19% nonzero, give 0.39 (their zeros
        fall in the same places); independent random zeros give 1 - (1 - density)^4."""
        return self._density(1, "panel_density")

    def _density(self, which: int, name: str) -> float:
        if self._densities is None:  # the CPU engine counted them
            return getattr(self._engine, name)
        return self._densities[which]

    @property
    def kept_columns(self) -> int:
        """The input columns the engine reads: ``sizes[0]`` less those zero in every
        sample (unless made with ``drop_zero_columns=False``)."""
        return int(self._engine.kept_columns)

    @property
    def drop_zero_columns(self) -> bool:
        """Whether input columns zero in every sample are left out (see the class)."""
        return self._drop

    @property
    def sparse_inputs(self) -> bool:
        """Whether the engine forms the first layer's products from the inputs'
        nonzeros (the choice :attr:`input_products` made for these data)."""
        return bool(getattr(self._engine, "sparse_inputs", False))

    # ------------------------------------------------------------ evaluation
    def _theta(self, theta, name: str = "theta"):
        theta = np.asarray(theta)
        if theta.dtype.kind not in "fiu" or theta.dtype == np.bool_:
            raise TypeError(f"{name}: expected a real float array, got dtype {theta.dtype}")
        single = theta.ndim == 1
        if theta.ndim not in (1, 2) or theta.shape[-1] != self.num_params:
            raise ValueError(
                f"{name}: expected shape ({self.num_params},) or (P, {self.num_params}), "
                f"got {theta.shape}"
            )
        t2 = np.ascontiguousarray(theta.reshape(-1, self.num_params), dtype=self.dtype)
        if t2.shape[0] == 0:
            raise ValueError(f"{name}: no parameter vectors")
        if not np.isfinite(t2).all():
            raise ValueError(f"{name}: contains NaN or Inf")
        return t2, single

    def _samples(self, samples):
        return check_samples(samples, self.num_samples)

    def loss(self, theta, samples=None):
        """Mean loss. theta (D,) or (P, D) -> scalar or (P,) of ``dtype``."""
        t, single = self._theta(theta)
        loss, _, _ = self._engine.evaluate(t, False, False, self._samples(samples))
        return loss[0] if single else loss

    def loss_and_grad(self, theta, samples=None):
        """Mean loss and its gradient: (P,), (P, D) (or scalar, (D,) for one vector).

        ``samples`` optionally restricts the mean to a subset of sample indices.
        """
        t, single = self._theta(theta)
        loss, grad, _ = self._engine.evaluate(t, True, False, self._samples(samples))
        return (loss[0], grad[0]) if single else (loss, grad)

    def accuracy(self, theta, samples=None):
        """Fraction of samples whose argmax output is the label: scalar or (P,)."""
        if self.net.loss != "cross_entropy":
            raise ValueError("accuracy: only defined for cross_entropy (classifier) networks")
        t, single = self._theta(theta)
        _, _, acc = self._engine.evaluate(t, False, True, self._samples(samples))
        return acc[0] if single else acc

    def hessian_vector(self, theta, v, samples=None):
        """Exact Hessian-vector products of the mean loss (the R-operator, not finite
        differences): theta (D,) or (P, D), v (D,) or (P, D) -> H(theta) v with v's
        shape. One point with many directions shares the forward pass between them."""
        t, _ = self._theta(theta)
        v2, _ = self._theta(v, "v")
        if t.shape[0] not in (1, v2.shape[0]):
            raise ValueError(f"theta: expected one point or one per direction ({v2.shape[0]}), "
                             f"got {t.shape[0]}")
        _, _, hv = self._engine.hessian_vector(t, v2, False, self._samples(samples))
        return hv.reshape(np.shape(v))

    def __call__(self, theta):
        """``f(X) -> (values, grads)`` form used by the optimizers and path finder."""
        return self.loss_and_grad(theta)

    def __repr__(self) -> str:
        return (
            f"Landscape({self.net!r}, n={self.num_samples}, dtype={self.dtype.name}, "
            f"device={self.device!r})"
        )

    def __reduce__(self):
        """Pickled as its network, data and settings (the engine is rebuilt where it is
        unpickled: a worker process of a cluster, say). CPU landscapes only."""
        if self.device != "cpu":
            raise TypeError(f"a {self.device} Landscape cannot be pickled; build it where it "
                            "runs (its data live on the device)")
        X, labels, targets = self._engine.dataset()
        y = labels if labels is not None else targets
        return (_rebuild, (self.net.to_dict(), X, y, self.dtype.name, self.threads or None,
                           self.chunk or None, self.fingerprint, self.input_products,
                           self._drop))


def _rebuild(net: dict, X, y, dtype, threads, chunk, fingerprint,
             input_products: str = "auto", drop_zero_columns: bool = True) -> "Landscape":
    ls = Landscape(MLP.from_dict(net), X, y, dtype=dtype, threads=threads, chunk=chunk,
                   input_products=input_products, drop_zero_columns=drop_zero_columns)
    if ls.fingerprint != fingerprint:
        raise ValueError("Landscape: the unpickled data do not match their fingerprint "
                         "(corrupted in transit?)")
    return ls


def _check_input_products(value) -> str:
    if not isinstance(value, str) or value not in ("auto", "dense", "sparse"):
        raise ValueError(f"input_products: expected 'auto', 'dense' or 'sparse', got {value!r}")
    return value


def input_densities(X: np.ndarray, group: int = 4):
    """(the fraction of nonzero entries of X, the fraction the sparse products read:
    rows in groups of ``group``, each over the columns where any of its rows is nonzero)."""
    n, d = X.shape
    nz = np.zeros((-(-n // group) * group, d), bool)
    nz[:n] = X != 0
    union = nz.reshape(-1, group, d).any(axis=1).sum(axis=1)
    rows = np.minimum(group, n - group * np.arange(len(union)))
    return float(nz.sum()) / X.size, float((union * rows).sum()) / X.size


def _fingerprint(*arrays) -> str:
    """A short hash of a dataset as the engine holds it (for ensembles and checkpoints)."""
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            h.update(a.tobytes())
    return h.hexdigest()[:16]
