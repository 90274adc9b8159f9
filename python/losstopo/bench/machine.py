"""The machine and the software a measurement ran on, as a dict and as one line."""

from __future__ import annotations

import os
import platform

import numpy as np


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def machine_info() -> dict:
    """CPU model, core counts and OS of this machine."""
    from .._native import cores

    usable = cores()
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "os": f"{platform.system()} {platform.release()}",
        "architecture": platform.machine(),
    }


def machine() -> str:
    """One line: CPU model, logical cores, OS."""
    m = machine_info()
    return f"{m['cpu']}, {m['logical_cores']} logical cores, {m['os']}"


def version_info(*modules) -> dict:
    """Versions of python, numpy, losstopo and of ``modules`` (None entries skipped)."""
    from .. import __version__

    out = {"python": platform.python_version(), "numpy": np.__version__,
           "losstopo": __version__}
    for m in modules:
        if m is not None:
            out[m.__name__] = m.__version__
    return out


def software(versions: dict) -> str:
    """One line from a dict of versions, e.g. ``python 3.12.3, numpy 2.1.0, jax not installed``."""
    return ", ".join(f"{name} {v}" for name, v in versions.items())


def versions(*modules) -> str:
    """One line with the versions of python, numpy, losstopo and ``modules``."""
    return software(version_info(*modules))
