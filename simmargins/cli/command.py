"""The ``simmargins`` command: ``demo``, ``run SPEC.toml`` and ``report RESULT.nc``.

Exit status: 0 on success; 2 for a bad spec, bad arguments or an output folder that
exists (one line on stderr naming the key, column or folder, no traceback); 1 when the
run itself fails (a model that cannot be fitted, a bootstrap whose workers die); 130
when interrupted. Outputs are written to a hidden folder beside the destination and
renamed into place only when complete, so a failed or interrupted run leaves nothing
behind, and an existing destination is only replaced with ``--force``.

This module holds the commands, their arguments and the entry point :func:`main`; the
jobs a run is made of are in :mod:`.jobs`, and what is printed goes through
:mod:`.console` (the library never prints).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..results.atomic import OutputExists, OutputFolder
from .console import Console
from .jobs import check_data, execute, plan_jobs, write_index
from .spec import SpecError


# -- commands ---------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace, console: Console, command: str) -> int:
    from .cluster import run_batch

    run = run_batch(
        args.spec,
        args.data or (),
        scheduler=args.scheduler,
        out=args.out,
        force=args.force,
        seed=args.seed,
        n_jobs=args.jobs,
        console=console,
        command=command,
    )
    out, outcomes = run.out, run.outcomes
    n = sum(len(o.results) for o in outcomes)
    combined = f", combined in {run.combined}" if run.combined else ""
    console.out(
        f"{_count(len(outcomes), 'analysis', 'analyses')}, {_count(n, 'quantity', 'quantities')} "
        f"written to {out}/ in {run.seconds:.1f} s (open {out / 'report.md'}{combined})"
    )
    if run.failures:
        total = len(outcomes) + len(run.failures)
        console.error(
            f"{len(run.failures)} of {total} tasks failed (listed above and in "
            f"{out / 'report.md'}); the others are written"
        )
        return 1
    return 0


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def cmd_demo(args: argparse.Namespace, console: Console, command: str) -> int:
    from .demo import lme4_comparison, write_inputs
    from .spec_read import read_spec

    start = time.perf_counter()
    out = Path(args.out)
    with OutputFolder(out, args.force) as tmp:
        spec = read_spec(write_inputs(tmp))
        jobs = plan_jobs(spec)
        check_data(jobs)
        outcomes = execute(jobs, tmp, console, spec.output, out)
        sleep = next(o for o in outcomes if o.job.analysis.name == "sleepstudy")
        table = lme4_comparison(sleep.fit, sleep.results.get("days_slope"))
        console.out(table)
        (tmp / "sleepstudy" / "lme4_comparison.txt").write_text(table + "\n", encoding="utf-8")
        check = [
            "## sleepstudy against lme4",
            "",
            "```text",
            table,
            "```",
            "",
            "Also in [sleepstudy/lme4_comparison.txt](sleepstudy/lme4_comparison.txt).",
        ]
        write_index(tmp, "simmargins demo", command, outcomes, check)
    console.out()
    console.out(
        f"demo finished in {time.perf_counter() - start:.1f} s; results in {out}/ "
        f"(open {out / 'report.md'}; rerun with: simmargins run {out / 'spec.toml'} --out rerun)"
    )
    return 0


def cmd_report(args: argparse.Namespace, console: Console, command: str) -> int:
    from .._errors import SimMarginsError
    from ..results.result import load
    from .report import relative, write_result

    path = Path(args.result)
    try:
        res = load(path)
    except SimMarginsError as exc:
        raise SpecError("RESULT", str(exc).removeprefix("path: ")) from None
    if args.level is not None:
        try:
            res = res.with_level(args.level)
        except SimMarginsError as exc:
            raise SpecError("--level", str(exc).removeprefix("level: ")) from None
    out = Path(args.out) if args.out else path.parent / f"report-{res.level:g}"
    name = path.parent.name or path.stem
    with OutputFolder(out, args.force, [path]) as tmp:
        source = relative(Path(os.path.abspath(path)), tmp)
        write_result(
            res,
            tmp,
            title=f"{name} at level {res.level:g}",
            lines=[f"Re-rendered from [{path.name}]({source}) with no refit (`{command}`)."],
            dpi=args.dpi,
        )
    console.out(res.summary())
    console.out()
    console.out(f"written to {out}/ (open {out / 'report.md'})")
    return 0


# -- arguments -------------------------------------------------------------------------------
def _nonzero_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError("must not be 0 (-1 uses all cores)")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be non-negative, got {value}")
    return value


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {value:g}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="simmargins",
        description="Marginal effects, predictions and contrasts of statsmodels fits, with "
        "simulation or bootstrap draws and the delta method side by side.",
        epilog="Exit status: 0 success, 1 the run failed, 2 bad spec or arguments. "
        "See docs/cli.md for the spec format.",
    )
    parser.add_argument("--version", action="version", version=f"simmargins {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the embedded example end to end (under a minute)")
    demo.add_argument(
        "--out", default="simmargins_demo", metavar="DIR", help="output folder (simmargins_demo)"
    )
    demo.add_argument("--force", action="store_true", help="replace DIR if it exists")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="run the analyses of a TOML spec")
    run.add_argument("spec", metavar="SPEC.toml", help="the spec file (docs/cli.md)")
    run.add_argument("--out", metavar="DIR", help="output folder (default: SPEC_results)")
    run.add_argument(
        "--jobs", type=_nonzero_int, metavar="N", help="bootstrap worker processes (-1: all cores)"
    )
    run.add_argument("--seed", type=_seed, metavar="S", help="seed for every analysis")
    run.add_argument("--force", action="store_true", help="replace DIR if it exists")
    run.add_argument(
        "--data",
        action="extend",
        nargs="+",
        metavar="FILE",
        help="rerun every analysis on each of these data files or quoted glob patterns "
        "('sites/*.csv'); one subfolder per file, and combined.csv over all",
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run each analysis × file as a Dask task: a scheduler's address "
        "(tcp://host:8786), or 'local' ('local:N') for a LocalCluster on this machine",
    )
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="re-render a saved draws.nc without refitting")
    report.add_argument("result", metavar="RESULT.nc", help="a draws.nc written by simmargins")
    report.add_argument("--level", type=_level, metavar="L", help="confidence level, e.g. 0.9")
    report.add_argument(
        "--out", metavar="DIR", help="output folder (default: report-LEVEL beside RESULT.nc)"
    )
    report.add_argument("--dpi", type=int, default=100, help=argparse.SUPPRESS)
    report.add_argument("--force", action="store_true", help="replace DIR if it exists")
    report.set_defaults(func=cmd_report)
    return parser


class Interrupted(KeyboardInterrupt):
    """^C (SIGINT) or SIGTERM during a command, raised by :func:`_interrupt`.

    A subclass rather than KeyboardInterrupt itself, so that ``except KeyboardInterrupt``
    and the output folder's cleanup treat it alike while CPython does not: a bare
    KeyboardInterrupt that passes out of ``exec``/``eval`` of a source string (which
    imports do whenever they build a namedtuple, a dataclass or scipy's distribution
    methods) sets the interpreter's "unhandled ^C" flag even when caught later, and at
    exit the interpreter then kills itself with SIGINT instead of returning our 130. The
    flag is raised only for that exact type.
    """


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextmanager
def _interrupts_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` inside; the old handlers after.

    A SIGINT ignored by the parent (a background job of a non-interactive shell) stays
    ignored, as Python itself leaves it at start-up. Outside the main thread (``main``
    called from a worker thread) handlers cannot be set and nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        old = signal.getsignal(sig)
        if sig == signal.SIGINT and old == signal.SIG_IGN:
            continue
        previous[sig] = old
        signal.signal(sig, _interrupt)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``simmargins`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with _interrupts_raise():
        try:
            return _main(argv)
        except KeyboardInterrupt:  # Interrupted, or ^C before the command started
            Console.error("interrupted; no output was written")
            return 130


def _main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window
    console = Console()
    from .pipeline import RunFailure

    try:
        return int(args.func(args, console, shlex.join(["simmargins", *argv])))
    except (SpecError, OutputExists) as exc:
        console.error(str(exc))
        return 2
    except RunFailure as exc:
        console.error(str(exc))
        return 1
    except Exception as exc:
        if os.environ.get("SIMMARGINS_DEBUG"):
            raise
        console.error(
            f"unexpected {type(exc).__name__}: {exc} (set SIMMARGINS_DEBUG=1 for a traceback)"
        )
        return 1
