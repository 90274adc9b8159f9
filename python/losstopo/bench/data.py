"""The benchmarks' data: MNIST when it is cached, else synthetic data of its shape."""

from __future__ import annotations


def mnist_like(n, seed=0):
    """The first ``n`` MNIST training images when MNIST is in the cache
    (:func:`losstopo.datasets.cache_path`), else ``datasets.synthetic(n, 784, 10)``.
    Nothing is downloaded.

    Returns (X (n, 784) float32, y (n,) int64, source), source "MNIST" or "synthetic".
    """
    from .. import datasets

    if datasets.cache_path().exists():
        try:
            X, y = datasets.mnist(download=False, progress=False).train
        except ValueError:  # an unreadable cache: measure on synthetic data instead
            pass
        else:
            if n > len(X):
                raise ValueError(f"n: MNIST has {len(X)} training images, asked for {n}")
            return X[:n], y[:n], "MNIST"
    X, y = datasets.synthetic(n, 784, 10, seed=seed)
    return X, y, "synthetic"


def describe(source: str, n: int) -> str:
    """A sentence for the report saying which data was used."""
    if source == "MNIST":
        return f"Data: the first {n} MNIST training images (from the cache)."
    from .. import datasets

    return (f"Data: {n} synthetic MNIST-shaped samples (no readable MNIST cache at "
            f"{datasets.cache_path()}; `losstopo data fetch mnist` makes one).")
