"""The benchmark suites that ship with the package (``losstopo bench``).

Each suite (:mod:`.landscape`, :mod:`.train`, :mod:`.paths`) times losstopo and the
peers installed beside it (JAX, PyTorch, scipy) in the same process on the same data,
and returns a JSON-ready dict of its numbers, notes and table. :func:`run` runs a
choice of suites and adds the machine's description; :func:`report_markdown` renders
the result and :func:`write_json` saves it. Peers are imported inside the suites, only
when one runs, so importing losstopo never imports them.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os

from .data import mnist_like
from .machine import machine, machine_info, software, version_info, versions
from .table import NOT_INSTALLED, fmt, markdown_table, report_markdown, suite_markdown
from .timing import best_time, gemm_ceiling, timed

#: The suites, in the order ``all`` runs them.
SUITES = ("landscape", "train", "paths")
#: Size presets of every suite: the full sizes, --quick, and a tiny one for tests.
SIZES = ("full", "quick", "tiny")


def preset(table: dict, size: str) -> dict:
    """``table[size]``; a ValueError naming the presets when ``size`` is not one."""
    if size not in table:
        raise ValueError(f"size: expected one of {list(table)}, got {size!r}")
    return dict(table[size])


def suite(name: str):
    """The module of suite ``name``."""
    if name not in SUITES:
        raise ValueError(f"suite: expected one of {list(SUITES)}, got {name!r}")
    return importlib.import_module(f".{name}", __name__)


def run(suites=SUITES, size: str = "quick", threads=None, progress: bool = True) -> dict:
    """Runs ``suites`` at ``size`` ("full", "quick" or "tiny") and returns the report:
    the machine, the versions of everything measured, and each suite's result."""
    from .._checks import check_int
    from .._native import core

    if isinstance(suites, str):
        suites = (suites,)
    modules = [suite(s) for s in suites]
    if size not in SIZES:
        raise ValueError(f"size: expected one of {list(SIZES)}, got {size!r}")
    threads = check_int("threads", threads, maximum=core.MAX_THREADS, allow_none=True)
    report = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "size": size,
        "threads": threads,
        "machine": dict(machine_info(), description=machine()),
        "versions": version_info(),
        "ratio": "peer seconds / losstopo seconds, measured in the same process "
                 "(above 1: losstopo is faster)",
        "suites": {},
    }
    for name, mod in zip(suites, modules):
        result = mod.run(size=size, threads=threads, progress=progress)
        report["suites"][name] = result
        report["versions"].update(result["versions"])
    return report


def _finite(x, where="report"):
    """``x`` with every float checked finite (JSON has no NaN or Infinity)."""
    if isinstance(x, float) and not math.isfinite(x):
        raise ValueError(f"{where}: a measurement is {x}; nothing was written")
    if isinstance(x, dict):
        for k, v in x.items():
            _finite(v, f"{where}.{k}")
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            _finite(v, f"{where}[{i}]")
    return x


def write_json(path, report: dict) -> None:
    """The report as JSON at ``path``, written atomically (a temporary file, then a rename)."""
    from .._io import atomic_write_text

    atomic_write_text(path, json.dumps(_finite(report), indent=2) + "\n")


def json_file(text: str) -> str:
    """argparse type of ``--json FILE``: refuses a folder, or a file inside a file."""
    path = os.path.abspath(text)
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text} is a folder; name a file")
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise argparse.ArgumentTypeError(f"{text}: {parent} is a file, not a folder")
    return text


def thread_count(text: str) -> int:
    """argparse type of ``--threads N``: an int in [1, losstopo._core.MAX_THREADS]."""
    from .._native import core

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 1 <= n <= core.MAX_THREADS:
        raise argparse.ArgumentTypeError(f"expected an integer in [1, {core.MAX_THREADS}], "
                                         f"got {n}")
    return n


__all__ = [
    "SUITES", "SIZES", "NOT_INSTALLED", "run", "suite", "preset", "write_json",
    "report_markdown", "suite_markdown", "markdown_table", "fmt", "machine", "machine_info",
    "version_info", "versions", "software", "best_time", "timed", "gemm_ceiling",
    "mnist_like", "json_file", "thread_count",
]
