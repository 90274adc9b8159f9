"""Shared pieces of the benchmark scripts: the results log benchmarks/RESULTS.md, and
the timing, table, machine and data helpers, which live in the package
(losstopo.bench) so that `losstopo bench` and these scripts measure alike."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from losstopo.bench import (  # noqa: F401  (re-exported for the scripts)
    best_time,
    fmt,
    machine,
    markdown_table,
    mnist_like,
    software,
    suite_markdown,
    version_info,
    versions,
)

RESULTS = Path(__file__).with_name("RESULTS.md")


def append_results(title: str, body: str, extra_modules=(), software_line=None) -> None:
    """Appends a section to RESULTS.md: the title, the machine, the software (the
    versions of ``extra_modules``, or ``software_line`` when given) and ``body``."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = (
        f"\n## {title} ({stamp})\n\nMachine: {machine()}  \n"
        f"Software: {software_line or versions(*extra_modules)}\n\n{body}\n"
    )
    with open(RESULTS, "a") as f:
        f.write(text)
    print(f"appended to {RESULTS}")


def suite_parser(doc: str) -> argparse.ArgumentParser:
    """The command line of a script that runs one of the package's suites."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    return ap


def report_suite(title: str, result: dict, append: bool) -> None:
    """Prints a suite's result and, when ``append``, logs it in RESULTS.md."""
    body = suite_markdown(result)
    print(body)
    if append:
        append_results(title, body,
                       software_line=software(dict(version_info(), **result["versions"])))
