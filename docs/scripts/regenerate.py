"""Rerun the Python code of the docs pages and rewrite the output shown under it.

    python docs/scripts/regenerate.py                 # rewrite every docs/*.md page
    python docs/scripts/regenerate.py docs/glm.md     # only these pages
    python docs/scripts/regenerate.py --check         # compare only: exit 1 with a diff

The convention (``tests/test_docs.py`` runs ``--check`` on every page):

* A fenced block opened with a line ```` ```python ```` is code. The code blocks of a page
  run in order, in one namespace per page, like a doctest session, with ``docs/`` as the
  working directory (so ``images/x.png`` is ``docs/images/x.png``). Nothing is
  imported for them: each page's code does its own imports and builds its own data.
* A fenced block opened with ```` ```text ```` directly after a code block (only blank
  lines between) is that code's output: exactly what it printed to stdout, with trailing
  whitespace removed from each line and blank lines removed from the end. A rewrite
  replaces it, adds one where code prints and has none, and removes one where code prints
  nothing. Warnings and stderr are not part of the output (they are reported, not shown).
* A code block whose nearest non-blank line above its opening fence is
  ``<!-- no-run -->`` is shown but never run (it needs a Dask cluster, a terminal, ...);
  a ```` ```text ```` block after it is left alone.
* Every other fenced block (```` ```bash ````, ```` ```toml ````, a bare ```` ``` ````, a
  ```` ```text ```` block that follows no code) is neither run nor touched. A page with
  no code blocks is left as it is.

Runs are deterministic: seeds are in the pages' code, figures use matplotlib's Agg
backend, pandas and numpy print with their default (non-terminal) widths, and BLAS runs
one thread unless the environment says otherwise. ``--check`` writes nothing into the
repository: figures go to a temporary folder.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads BLAS (only when run as a script)
os.environ.setdefault("MPLBACKEND", "Agg")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import difflib  # noqa: E402
import io  # noqa: E402
import itertools  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

DOCS = Path(__file__).resolve().parents[1]
NO_RUN = "<!-- no-run -->"
FENCE = re.compile(r"^```([\w+-]*)\s*$")
CLOSE = "```"


@dataclass
class Block:
    """A fenced block: ``start`` is the index of its opening fence, ``end`` of its closing."""

    lang: str
    start: int
    end: int
    lines: list[str]
    no_run: bool = False
    output: Block | None = None  # the ```text block that follows a code block


@dataclass
class PageResult:
    page: Path
    old: str
    new: str
    seconds: float
    warnings: list[str] = field(default_factory=list)
    ran: int = 0  # code blocks run
    timings: list[tuple[int, float]] = field(default_factory=list)  # (line, seconds) per block

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def diff(self) -> str:
        name = self.page.name
        return "".join(
            difflib.unified_diff(
                self.old.splitlines(keepends=True),
                self.new.splitlines(keepends=True),
                f"{name} (committed)",
                f"{name} (what the code prints now)",
            )
        )


class DocsError(Exception):
    """A page is malformed or its code raised."""


def parse(text: str, name: str = "<page>") -> list[Block]:
    """The fenced blocks of a page, with code blocks linked to their output blocks."""
    lines = text.split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != CLOSE:
            j += 1
        if j == len(lines):
            raise DocsError(f"{name}:{i + 1}: the fenced block opened here is never closed")
        above = next((s.strip() for s in reversed(lines[:i]) if s.strip()), "")
        blocks.append(Block(m.group(1), i, j, lines[i + 1 : j], above == NO_RUN))
        i = j + 1
    for prev, nxt in itertools.pairwise(blocks):
        between = lines[prev.end + 1 : nxt.start]
        if prev.lang == "python" and nxt.lang == "text" and not any(s.strip() for s in between):
            prev.output = nxt
    return blocks


def normalise(out: str) -> list[str]:
    """Printed text as an output block holds it: no trailing spaces, no trailing blanks."""
    lines = [s.rstrip() for s in out.expandtabs().split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


@contextlib.contextmanager
def _session(workdir: Path):  # type: ignore[no-untyped-def]
    """The environment every page runs in: working directory, print widths, figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    before = Path.cwd()
    os.chdir(workdir)
    try:
        with (
            np.printoptions(),  # numpy's defaults, whatever the caller set
            pd.option_context("display.width", 80, "display.max_columns", 20),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("default")
            yield caught
    finally:
        os.chdir(before)
        plt.close("all")


def run_page(page: Path, workdir: Path | None = None) -> PageResult:
    """Run a page's code blocks in order and return the page with its outputs rewritten.

    ``workdir`` is where the code runs (default: the page's folder, so figures land in
    ``docs/images``); it must hold an ``images`` folder if the code writes figures there.
    """
    page = Path(page).resolve()
    text = page.read_text(encoding="utf-8")
    blocks = parse(text, page.name)
    code = [b for b in blocks if b.lang == "python" and not b.no_run]
    start = time.perf_counter()
    outputs: dict[int, list[str]] = {}
    found: list[str] = []
    timings: list[tuple[int, float]] = []
    if code:
        namespace: dict[str, object] = {"__name__": "__docs__"}
        with _session(workdir or page.parent) as caught:
            for b in code:
                # pad with blank lines so tracebacks name the page's own line numbers
                source = "\n" * (b.start + 1) + "\n".join(b.lines) + "\n"
                buffer = io.StringIO()
                t0 = time.perf_counter()
                try:
                    compiled = compile(source, str(page), "exec")
                    with contextlib.redirect_stdout(buffer):
                        exec(compiled, namespace)
                except Exception as exc:
                    tb = "".join(traceback.format_exception(exc))
                    raise DocsError(
                        f"{page.name}:{b.start + 1}: the code block raised "
                        f"{type(exc).__name__}: {exc}\n{tb}"
                    ) from exc
                outputs[b.start] = normalise(buffer.getvalue())
                timings.append((b.start + 1, time.perf_counter() - t0))
            found = [f"{w.category.__name__}: {' '.join(str(w.message).split())}" for w in caught]
    new = rewrite(text, blocks, outputs)
    seconds = time.perf_counter() - start
    return PageResult(page, text, new, seconds, found, len(code), timings)


def rewrite(text: str, blocks: list[Block], outputs: dict[int, list[str]]) -> str:
    """``text`` with each run code block's output block replaced, added or removed."""
    lines = text.split("\n")
    # edit from the bottom up so earlier indices stay valid
    for b in sorted((b for b in blocks if b.start in outputs), key=lambda b: -b.start):
        out = outputs[b.start]
        if b.output is not None:
            if out:
                lines[b.output.start + 1 : b.output.end] = out
            else:  # prints nothing: the output block and the blank lines before it go
                del lines[b.end + 1 : b.output.end + 1]
        elif out:
            lines[b.end + 1 : b.end + 1] = ["", "```text", *out, CLOSE]
    return "\n".join(lines)


def check_page(page: Path) -> PageResult:
    """Run a page without touching the repository (figures go to a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="docs-check-") as tmp:
        (Path(tmp) / "images").mkdir()
        return run_page(page, Path(tmp))


def pages(names: list[str]) -> list[Path]:
    if names:
        return [Path(n).resolve() for n in names]
    return sorted(DOCS.glob("*.md"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pages", nargs="*", help="docs pages (default: docs/*.md)")
    parser.add_argument(
        "--check", action="store_true", help="compare only; exit 1 and show a diff when stale"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="time each code block")
    args = parser.parse_args(argv)
    stale = 0
    for page in pages(args.pages):
        try:
            res = check_page(page) if args.check else run_page(page)
        except DocsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for w in res.warnings:
            print(f"{page.name}: warning: {w}", file=sys.stderr)
        if not res.ran:
            status = "no code to run"
        elif not res.changed:
            status = "up to date"
        elif args.check:
            status = "STALE"
            stale += 1
            sys.stdout.write(res.diff())
        else:
            page.write_text(res.new, encoding="utf-8")
            status = "rewritten"
        print(f"{page.name}: {res.ran} code blocks, {res.seconds:.1f} s, {status}")
        if args.verbose:
            for line, seconds in res.timings:
                print(f"  {page.name}:{line}: {seconds:.2f} s")
    if stale:
        print(f"{stale} page(s) out of date: run python docs/scripts/regenerate.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
