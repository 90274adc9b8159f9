"""The peers a suite compares against (JAX, PyTorch, scipy), imported only when a
suite asks for them; one that is not installed is reported, never an error."""

from __future__ import annotations

import contextlib
import importlib

from .table import NOT_INSTALLED

#: The modules each peer needs, its top-level module first.
MODULES = {
    "jax": ("jax", "jax.numpy", "jax.scipy.special"),
    "torch": ("torch", "torch.func"),
    "scipy": ("scipy", "scipy.optimize"),
}


def load(name: str):
    """``(module, status)``: the peer's top-level module and its version, or
    ``(None, "not installed")`` when it cannot be imported, or ``(None, "unusable: ...")``
    when it is installed but its import fails otherwise."""
    if name not in MODULES:
        raise ValueError(f"peer: expected one of {sorted(MODULES)}, got {name!r}")
    try:
        mods = [importlib.import_module(m) for m in MODULES[name]]
    except ImportError:
        return None, NOT_INSTALLED
    except Exception as e:  # a broken installation: say so, measure the rest
        return None, f"unusable ({type(e).__name__}: {e})"
    return mods[0], str(getattr(mods[0], "__version__", "unknown version"))


@contextlib.contextmanager
def torch_threads(torch, threads):
    """torch's intra-op threads set to ``threads`` inside the block (unchanged if None)."""
    if torch is None or threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
