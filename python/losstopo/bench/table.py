"""Markdown output: table cells, a table, one suite's section and a whole report."""

from __future__ import annotations

from .machine import software

NOT_INSTALLED = "not installed"


def fmt(x, digits=3):
    """A table cell: floats to ``digits`` significant digits, None as "-"."""
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def ratio(x) -> str:
    """A ratio cell such as ``2.31x``, or "-" when there is none."""
    return "-" if x is None else f"{x:.2f}x"


def markdown_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def suite_markdown(result: dict) -> str:
    """One suite's notes and table (the body the benchmark scripts log)."""
    return "\n".join(result["notes"]) + "\n\n" + markdown_table(result["headers"],
                                                                result["rows"])


def report_markdown(report: dict) -> str:
    """The machine's description, then a section per suite."""
    threads = report["threads"]
    lines = [
        f"# losstopo bench ({report['size']} sizes)",
        "",
        f"Machine: {report['machine']['description']}  ",
        f"Software: {software(report['versions'])}  ",
        "Threads: " + ("the engine's default (all usable cores)" if threads is None
                       else f"{threads} (losstopo and torch; JAX and numpy use their own "
                       "defaults)"),
        "",
        "Ratios are a peer's time over losstopo's, both measured in this process: above "
        "1, losstopo is faster.",
    ]
    for name, result in report["suites"].items():
        lines += ["", f"## {name}: {result['title']}", "", suite_markdown(result)]
    return "\n".join(lines) + "\n"
