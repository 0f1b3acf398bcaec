"""Console output of the ``simmargins`` command.

The library never prints; the command does, through :class:`Console`: summaries on
stdout, warnings, errors and progress bars on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SUMMARY_MAX_LABELS = 20  # longer summaries go to summary.txt only


class Console:
    """stdout for results, stderr for warnings, errors and (on a terminal) progress bars."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._bar: Any = None

    def out(self, text: str = "") -> None:
        if self._bar is not None:
            from tqdm import tqdm

            tqdm.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def warn(self, text: str) -> None:
        line = "simmargins: warning: " + " ".join(text.split())
        if self._bar is not None:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    @staticmethod
    def error(text: str) -> None:
        print("simmargins: error: " + " ".join(str(text).split()), file=sys.stderr, flush=True)

    @contextmanager
    def progress(self, total: int, desc: str) -> Iterator[Any]:
        """A tqdm bar on stderr when it is a terminal; a do-nothing bar otherwise."""
        if not self.tty:
            yield _NoBar()
            return
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr, leave=False)
        self._bar = bar
        try:
            yield bar
        finally:
            bar.close()
            self._bar = None


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, desc: str) -> None:
        pass


def show_result(console: Console, heading: str, res: Any, where: Path) -> None:
    """A result's summary on stdout, or where to find it when it is long."""
    console.out(f"── {heading} ──")
    if len(res.labels) <= SUMMARY_MAX_LABELS:
        console.out(res.summary())
    else:
        console.out(f"({len(res.labels)} rows: see {where / 'summary.txt'})")
    console.out()
