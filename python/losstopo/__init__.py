"""losstopo: the topography of neural-network loss landscapes, batched.

A compiled C++ engine evaluates the loss and gradient of many parameter vectors
of a network at once over a whole dataset; this package is its thin Python layer.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .curvature import hessian  # noqa: E402
from .ensemble import Ensemble  # noqa: E402
from .geometry import centroid_distances, pairwise_distances, separation, weight_stats  # noqa
from .kpca import KernelPCA  # noqa: E402
from .landscape import Landscape  # noqa: E402
from .models import MLP, autoencoder, fcp  # noqa: E402
from . import analytic  # noqa: E402
from .optimize import OptimizeResult, line_search, minimize  # noqa: E402
from .paths import FourierPath, PathResult, barrier_matrix, find_path  # noqa: E402
from .slices import slice1d, slice2d  # noqa: E402
from .train import train  # noqa: E402


# Submodules the README writes as ``losstopo.<module>.<name>``; imported on first use so
# that a bare ``import losstopo`` stays light (torch_adapter imports torch only when a
# model is built; study pulls in the figures).
_LAZY_MODULES = ("align", "bench", "convergence", "datasets", "plots", "saddles", "stats",
                 "study", "topography", "toy", "torch_adapter", "torch_align")


def __getattr__(name):
    if name in _LAZY_MODULES:  # imported on first use
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name == "certify":  # losstopo.certify is losstopo.saddles.certify
        from .saddles import certify

        return certify
    if name == "TorchLandscape":  # torch is imported only when asked for
        from .torch_adapter import TorchLandscape

        return TorchLandscape
    raise AttributeError(f"module 'losstopo' has no attribute {name!r}")


def cuda_available() -> bool:
    """Whether this build has a CUDA backend and a CUDA device can be used."""
    from ._native import cuda_module

    cuda = cuda_module()
    return cuda is not None and bool(cuda.device_available())


__all__ = [
    "MLP", "Landscape", "Ensemble", "OptimizeResult", "datasets", "fcp", "autoencoder",
    "minimize", "line_search", "train", "FourierPath", "PathResult", "find_path",
    "barrier_matrix", "hessian", "slice1d", "slice2d", "analytic", "KernelPCA",
    "centroid_distances", "pairwise_distances", "separation", "weight_stats", "plots", "stats",
    "certify", "topography", "cuda_available", "__version__",
]
