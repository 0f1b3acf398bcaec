"""The ``simmargins`` command: ``demo``, ``run SPEC.toml`` and ``report RESULT.nc``.

Exit status: 0 on success; 2 for a bad spec, bad arguments or an output folder that
exists (one line on stderr naming the key, column or folder, no traceback); 1 when the
run itself fails (a model that cannot be fitted, a bootstrap whose workers die); 130
when interrupted. Outputs are written to a hidden folder beside the destination and
renamed into place only when complete, so a failed or interrupted run leaves nothing
behind, and an existing destination is only replaced with ``--force``.

The library never prints; this module does (summaries on stdout, warnings, errors and
progress bars on stderr).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..results.atomic import OutputExists, OutputFolder
from .spec import AnalysisSpec, OutputSpec, RunSpec, SpecError, data_format

SUMMARY_MAX_LABELS = 20  # longer summaries go to summary.txt only


# -- console --------------------------------------------------------------------------------
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


# -- jobs -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One analysis on one data file, written to ``folder`` (relative to the output)."""

    analysis: AnalysisSpec
    folder: str
    context: str


@dataclass
class Outcome:
    job: Job
    fit: Any
    results: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def plan_jobs(spec: RunSpec, data_files: Sequence[str] = ()) -> list[Job]:
    """One job per analysis, or per data file × analysis when ``--data`` is given."""
    if not data_files:
        return [Job(a, a.name, a.context) for a in spec.analyses]
    jobs = []
    used: set[str] = set()
    for f in data_files:
        path = Path(os.path.abspath(f))
        fmt = data_format(path, "--data")
        stem = path.name.split(".")[0] or "data"
        folder, n = stem, 1
        while folder in used:
            n += 1
            folder = f"{stem}-{n}"
        used.add(folder)
        for a in spec.analyses:
            data = replace(a.data, path=path, format=fmt)
            jobs.append(
                Job(replace(a, data=data), f"{folder}/{a.name}", f"{a.context} (data {f!r})")
            )
    return jobs


def override(spec: RunSpec, seed: int | None, jobs: int | None) -> RunSpec:
    """Apply ``--seed`` and ``--jobs`` to every analysis."""
    changes: dict[str, Any] = {}
    if seed is not None:
        changes["seed"] = seed
    if jobs is not None:
        changes["n_jobs"] = jobs
    if not changes:
        return spec
    analyses = tuple(replace(a, inference=replace(a.inference, **changes)) for a in spec.analyses)
    return replace(spec, analyses=analyses)


def check_data(jobs: Sequence[Job]) -> None:
    """The data pass of the spec check, for every job, before anything is fitted."""
    from .pipeline import load_data
    from .spec_data import check_against_data

    for job in jobs:
        try:
            frame = load_data(job.analysis.data)
        except SpecError as exc:
            raise exc.within(job.context) from None
        check_against_data(job.analysis, frame, job.context)


def _model_facts(a: AnalysisSpec) -> list[tuple[str, str]]:
    m = a.model
    rows = [("model", f"{m.kind}: `{m.formula}`")]
    if m.kind == "glm":
        rows.append(("family / link", f"{m.family} / {m.link or 'canonical'}"))
    if m.re_formula:
        rows.append(("random effects", f"`{m.re_formula}` by {m.groups}"))
    rows += [(k, v) for k, v in m.columns().items() if not (k == "groups" and m.re_formula)]
    if m.fit:
        rows.append(("fit options", ", ".join(f"{k} = {v!r}" for k, v in m.fit.items())))
    i = a.inference
    draws = f"{i.n_boot} bootstrap refits" if i.method == "bootstrap" else f"{i.n_sims} draws"
    rows.append(("inference", f"{i.method}, {draws}, level {i.level:g}, seed {i.seed}"))
    rows.append(("scale / at", f"{i.scale} / {i.at}"))
    for k in ("weights", "cluster"):
        if getattr(i, k) is not None:
            rows.append((k, str(getattr(i, k))))
    return rows


def run_job(
    job: Job, root: Path, console: Console, output: OutputSpec, bar: Any, shown_root: Path
) -> Outcome:
    """Fit one analysis, compute and write its quantities; print as it goes."""
    from .._errors import ConvergenceWarning
    from .pipeline import (
        RunFailure,
        collect_warnings,
        compute_quantity,
        converged,
        describe_quantity,
        draw_coefficients,
        fit_model,
        load_data,
        make_session,
    )
    from .report import QuantitySection, analysis_markdown, relative, write_result

    a = job.analysis
    folder = root / job.folder
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    outcome = Outcome(job, None)
    warns = outcome.warnings
    printed = 0

    def flush_warnings() -> None:
        nonlocal printed
        for w in warns[printed:]:
            console.warn(f"{job.context}: {w}")
        printed = len(warns)

    sections = []
    try:
        frame = load_data(a.data)
        bar.set_description(f"{job.folder}: fit")
        with collect_warnings(warns, "model fit"):
            try:
                fit = fit_model(a.model, frame)
            except Exception as exc:
                if type(exc).__name__ == "PatsyError":  # the formula fails on the full data
                    raise SpecError("model.formula", getattr(exc, "message", str(exc))) from None
                raise RunFailure(f"model: the fit failed: {type(exc).__name__}: {exc}") from exc
        outcome.fit = fit
        if not converged(fit):
            warns.append("model fit: the optimiser did not report convergence; see model.txt")
        bar.set_description(f"{job.folder}: draws")
        with collect_warnings(warns, "inference"):
            with warnings.catch_warnings():
                # reported once above, under "model fit", with a pointer to model.txt
                warnings.simplefilter("ignore", ConvergenceWarning)
                m = make_session(fit, a.inference, progress=console.tty)
            draw_coefficients(m)
        flush_warnings()
        bar.update(1)
        for q in a.quantities:
            bar.set_description(f"{job.folder}: {q.name}")
            desc = describe_quantity(q)
            with collect_warnings(warns, q.name):
                res = compute_quantity(m, q)
                written = write_result(
                    res,
                    folder / q.name,
                    title=f"{a.name} / {q.name}",
                    lines=[desc + "."],
                    plots=output.plots,
                    dpi=output.dpi,
                )
            for note in written.notes:
                warns.append(f"{q.name}: {note}")
            outcome.results[q.name] = res
            sections.append(QuantitySection(q.name, desc, res, written))
            _show(
                console, f"{job.folder} / {q.name}: {desc}", res, shown_root / job.folder / q.name
            )
            flush_warnings()
            bar.update(1)
    except SpecError as exc:
        raise exc.within(job.context) from None
    except RunFailure as exc:
        raise RunFailure(f"{job.context} → {exc}") from exc
    outcome.seconds = time.perf_counter() - start
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the summary's own numerics chatter
            fit_text = fit.summary().as_text()
    except Exception as exc:  # a summary is a courtesy; the results are saved already
        fit_text = f"(the model's summary could not be rendered: {exc})\n{fit.params}"
    (folder / "model.txt").write_text(fit_text + "\n", encoding="utf-8")
    data_link = relative(a.data.path, folder)
    facts = [
        ("data", f"[{a.data.path.name}]({data_link}) ({int(fit.nobs)} rows used)"),
        *_model_facts(a),
        ("fitted model", "[model.txt](model.txt)"),
        ("converged", str(converged(fit))),
        ("time", f"{outcome.seconds:.1f} s"),
    ]
    (folder / "report.md").write_text(
        analysis_markdown(f"Analysis {a.name!r}", facts, sections, warns, folder), "utf-8"
    )
    return outcome


def _show(console: Console, heading: str, res: Any, where: Path) -> None:
    console.out(f"── {heading} ──")
    if len(res.labels) <= SUMMARY_MAX_LABELS:
        console.out(res.summary())
    else:
        console.out(f"({len(res.labels)} rows: see {where / 'summary.txt'})")
    console.out()


def execute(
    jobs: Sequence[Job], root: Path, console: Console, output: OutputSpec, shown_root: Path
) -> list[Outcome]:
    total = sum(1 + len(j.analysis.quantities) for j in jobs)
    with console.progress(total, "simmargins") as bar:
        return [run_job(j, root, console, output, bar, shown_root) for j in jobs]


def write_index(
    root: Path,
    title: str,
    command: str,
    outcomes: Sequence[Outcome],
    extra: Sequence[str] = (),
) -> None:
    from .report import index_markdown

    rows = [
        (
            o.job.analysis.name,
            o.job.analysis.data.path.name,
            ", ".join(o.results),
            f"{o.job.folder}/report.md",
        )
        for o in outcomes
    ]
    lines = [f"Command: `{command}`", "", "The spec: [spec.toml](spec.toml)."]
    after = list(extra)
    warned = [f"- {o.job.context}: {w}" for o in outcomes for w in o.warnings]
    if warned:
        after += ["", "## Warnings", "", *warned]
    (root / "report.md").write_text(index_markdown(title, lines, rows, after), "utf-8")


# -- commands ---------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace, console: Console, command: str) -> int:
    from .spec_read import read_spec

    start = time.perf_counter()
    spec = override(read_spec(Path(args.spec)), args.seed, args.jobs)
    jobs = plan_jobs(spec, args.data or ())
    out = Path(args.out) if args.out else Path(f"{spec.path.stem}_results")
    folder = OutputFolder(out, args.force, [spec.path, *(j.analysis.data.path for j in jobs)])
    folder.check()
    check_data(jobs)
    with folder as tmp:
        (tmp / "spec.toml").write_text(spec.text, encoding="utf-8")
        outcomes = execute(jobs, tmp, console, spec.output, out)
        write_index(tmp, f"simmargins run: {spec.path.name}", command, outcomes)
    n = sum(len(o.results) for o in outcomes)
    console.out(
        f"{_count(len(jobs), 'analysis', 'analyses')}, {_count(n, 'quantity', 'quantities')} "
        f"written to {out}/ "
        f"in {time.perf_counter() - start:.1f} s (open {out / 'report.md'})"
    )
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
        help="rerun every analysis on each of these data files (one subfolder per file)",
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
