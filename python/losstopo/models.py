"""Network descriptions: the fully connected MLP and its flat parameter layout."""

from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import numpy as np

from ._checks import check_int

ACTIVATIONS = ("identity", "relu", "softplus", "tanh", "sigmoid")
OUTPUTS = ("identity", "sigmoid")
LOSSES = ("cross_entropy", "mse")


def run_rng(seed: int, run: int) -> np.random.Generator:
    """The random stream of run ``run`` in the family ``seed`` (independent of the others)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(run),)))


def check_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


class MLP:
    """A fully connected network ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first, e.g. ``[784, 50, 50, 10]``.
    activation : str or sequence of str
        Hidden-layer activation (identity, relu, softplus, tanh, sigmoid): one name
        for all hidden layers or one per hidden layer.
    bias : bool
        Whether every layer has a bias.
    output : str
        ``identity`` or ``sigmoid``, applied to the last layer.
    loss : str
        ``cross_entropy`` (softmax over the outputs, integer labels, mean over
        samples) or ``mse`` (mean over all outputs and samples).

    The flat parameter vector is PyTorch's ``parameters_to_vector`` of the
    equivalent ``nn.Sequential`` of ``nn.Linear`` layers: per layer the weight
    (out, in) row-major, then the bias (out,).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: Union[str, Sequence[str]] = "relu",
        bias: bool = True,
        output: str = "identity",
        loss: str = "cross_entropy",
    ):
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes: need at least an input and an output size, got {sizes}")
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0:
                raise ValueError(f"sizes: every size must be a positive int, got {sizes}")
        self.sizes = [int(s) for s in sizes]
        n_hidden = len(self.sizes) - 2
        if isinstance(activation, str):
            acts = [activation] * n_hidden
        else:
            acts = list(activation)
            if len(acts) != n_hidden:
                raise ValueError(
                    f"activation: expected one name or {n_hidden} names (one per hidden "
                    f"layer), got {len(acts)}"
                )
        for a in [activation] if isinstance(activation, str) else acts:
            if a not in ACTIVATIONS:
                raise ValueError(f"activation: unknown '{a}', expected one of {ACTIVATIONS}")
        if output not in OUTPUTS:
            raise ValueError(f"output: unknown '{output}', expected one of {OUTPUTS}")
        if loss not in LOSSES:
            raise ValueError(f"loss: unknown '{loss}', expected one of {LOSSES}")
        if loss == "cross_entropy" and self.sizes[-1] < 2:
            raise ValueError("loss: cross_entropy needs at least two outputs")
        self.activations: List[str] = acts
        self.bias = bool(bias)
        self.output = output
        self.loss = loss

    # ------------------------------------------------------------------ layout
    @property
    def num_layers(self) -> int:
        return len(self.sizes) - 1

    def layer_shapes(self) -> List[Tuple[Tuple[int, int], int]]:
        """[((out, in), n_bias), ...] per layer."""
        return [
            ((o, i), o if self.bias else 0) for i, o in zip(self.sizes[:-1], self.sizes[1:])
        ]

    @property
    def num_params(self) -> int:
        return sum(o * i + b for (o, i), b in self.layer_shapes())

    def unflatten(self, theta: np.ndarray) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Split a flat vector (D,) into [(W (out, in), b (out,) or None), ...] views."""
        theta = np.asarray(theta)
        if theta.ndim != 1 or theta.shape[0] != self.num_params:
            raise ValueError(f"theta: expected shape ({self.num_params},), got {theta.shape}")
        out, k = [], 0
        for (o, i), nb in self.layer_shapes():
            W = theta[k : k + o * i].reshape(o, i)
            k += o * i
            b = theta[k : k + nb] if nb else None
            k += nb
            out.append((W, b))
        return out

    def flatten(self, layers: Sequence[Tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Inverse of :meth:`unflatten`."""
        parts = []
        for (W, b), ((o, i), nb) in zip(layers, self.layer_shapes()):
            W = np.asarray(W)
            if W.shape != (o, i):
                raise ValueError(f"layers: expected weight shape {(o, i)}, got {W.shape}")
            parts.append(W.ravel())
            if nb:
                parts.append(np.asarray(b).ravel())
        return np.concatenate(parts)

    def init(self, count: int = 1, seed: int = 0, dtype="float32", first: int = 0) -> np.ndarray:
        """Random parameter vectors drawn like PyTorch's default ``nn.Linear`` init.

        Weights and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Vector i is drawn
        from its own stream, ``run_rng(seed, first + i)``, so it does not depend on
        how many vectors are drawn together.

        Returns
        -------
        ndarray (count, D) of ``dtype``.
        """
        count = check_int("count", count)
        dt = check_dtype(dtype)
        theta = np.empty((int(count), self.num_params), dtype=np.float64)
        for r in range(int(count)):
            rng = run_rng(seed, first + r)
            k = 0
            for (o, i), nb in self.layer_shapes():
                bound = 1.0 / np.sqrt(i)
                n = o * i + nb
                theta[r, k : k + n] = rng.uniform(-bound, bound, size=n)
                k += n
        return theta.astype(dt)

    def to_dict(self) -> dict:
        return dict(
            sizes=self.sizes,
            activation=self.activations,
            bias=self.bias,
            output=self.output,
            loss=self.loss,
        )

    @classmethod
    def from_dict(cls, d: dict) -> "MLP":
        return cls(**d)

    def __repr__(self) -> str:
        act = self.activations[0] if len(set(self.activations)) == 1 else self.activations
        return (
            f"MLP(sizes={self.sizes}, activation={act!r}, bias={self.bias}, "
            f"output={self.output!r}, loss={self.loss!r})"
        )

    def __eq__(self, other) -> bool:
        return isinstance(other, MLP) and self.to_dict() == other.to_dict()


def fcp(activation: str = "relu") -> MLP:
    """The paper's fully connected network: 784-50-50-10, no bias (42,200 params).

    ReLU as the paper's text says; the authors' later code uses softplus
    (``fcp("softplus")``)."""
    return MLP([784, 50, 50, 10], activation=activation, bias=False)


def autoencoder() -> MLP:
    """The paper's autoencoder: 784-32-32-32-784, softplus, no bias, sigmoid + MSE (52,224)."""
    return MLP(
        [784, 32, 32, 32, 784], activation="softplus", bias=False, output="sigmoid", loss="mse"
    )
