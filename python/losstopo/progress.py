"""A minimal progress bar on stderr (no dependencies); silent when disabled. On a
terminal it redraws in place; written to a file or pipe it prints a plain line now
and then, so logs stay readable. A stream that cannot be written (stderr closed, a
full disk, a closed pipe) silences the bar; the work goes on."""

from __future__ import annotations

import sys
import time


def to_stderr(line: str) -> None:
    """One line on stderr; a stderr that cannot be written (closed at start, a full
    disk, a closed pipe) loses the line, never the work."""
    if sys.stderr is None:  # started with stderr closed
        return
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


class Progress:
    """``Progress(total, desc)``; call ``update(k)`` and ``close()``, or use as a context."""

    def __init__(self, total: int, desc: str = "", enabled: bool = True, stream=None):
        self.total = max(int(total), 0)
        self.desc = desc
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream is not None  # None: stderr was closed
        self.n = 0
        self.start = time.perf_counter()
        self.postfix = ""
        self._last = 0.0
        self._drawn = -1  # n at the last drawing
        if self.enabled:
            self._draw(force=True)

    def update(self, k: int = 1, postfix: str = None) -> None:
        self.n = min(self.n + k, self.total) if self.total else self.n + k
        if postfix is not None:
            self.postfix = postfix
        if self.enabled:
            self._draw()

    def set(self, n: int, postfix: str = None) -> None:
        self.update(n - self.n, postfix)

    def _draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        tty = getattr(self.stream, "isatty", lambda: False)()
        # On a terminal redraw in place; in a log, one line at most every 10 seconds.
        if not force and self.n < self.total and now - self._last < (0.2 if tty else 10.0):
            return
        self._last = now
        self._drawn = self.n
        el = now - self.start
        if self.total:
            frac = self.n / self.total
            bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
            eta = el / frac - el if frac > 0 else float("nan")
            msg = (f"\r{self.desc} [{bar}] {self.n}/{self.total} {el:6.1f}s"
                   + (f" eta {eta:6.1f}s" if frac < 1 and frac > 0 else ""))
        else:
            msg = f"\r{self.desc} {self.n} {el:6.1f}s"
        if self.postfix:
            msg += f" {self.postfix}"
        self._write(msg if tty else msg.lstrip("\r") + "\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # unwritable (full, closed): quiet from now on
            self.enabled = False

    def close(self) -> None:
        if self.enabled:
            tty = getattr(self.stream, "isatty", lambda: False)()
            if tty or self._drawn != self.n:
                self._draw(force=True)
            if tty and self.enabled:
                self._write("\n")
            self.enabled = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
