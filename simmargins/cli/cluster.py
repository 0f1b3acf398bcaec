"""``simmargins run --scheduler``: the jobs of a run as Dask tasks, and :func:`run_batch`.

Each job (one analysis on one data file) is one task. A task runs on a worker exactly what
the serial run runs (data check, fit, draws, quantities, reports) into a scratch folder
there, and sends the finished files back; the client writes them into the run's hidden
output folder, which is renamed into place at the end as always. So a worker that dies
mid-task leaves nothing behind (Dask runs the task again elsewhere, up to its
``distributed.scheduler.allowed-failures``, then reports it), workers need no write
access to the output, and a task that fails is reported with the spec's one-line error
while the others are written. Workers must read the data files at the paths the client
sees (a shared filesystem).

Dask is imported only here, and only when a run asks for a scheduler.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..results.atomic import OutputFolder
from .batch import expand_data, write_combined
from .console import Console
from .jobs import Job, Outcome, check_data, execute, override, plan_jobs, write_index
from .spec import OutputSpec, RunSpec, SpecError

if TYPE_CHECKING:
    from distributed import Client


@dataclass(frozen=True)
class TaskFailure:
    """A job that failed: ``message`` is the one line the command prints for it."""

    job: Job
    message: str


@dataclass
class BatchRun:
    """What :func:`run_batch` did: ``out`` holds the results of ``outcomes``."""

    out: Path
    outcomes: list[Outcome]
    failures: list[TaskFailure] = field(default_factory=list)
    combined: Path | None = None
    seconds: float = 0.0


@dataclass
class _TaskDone:
    files: dict[str, bytes]
    results: list[str]
    warnings: list[str]
    seconds: float
    printed: list[tuple[str, str]]


class _Recorder(Console):
    """A console that keeps what it is given, for the client to show (or a silent one)."""

    def __init__(self, keep: bool = True) -> None:
        super().__init__()
        self.tty = False
        self.keep = keep
        self.lines: list[tuple[str, str]] = []

    def out(self, text: str = "") -> None:
        if self.keep:
            self.lines.append(("out", text))

    def warn(self, text: str) -> None:
        if self.keep:
            self.lines.append(("warn", text))

    @staticmethod
    def error(text: str) -> None:
        pass


# -- on a worker ------------------------------------------------------------------------------
def _scratch() -> str | None:
    try:  # the worker's own folder: Dask purges what a killed worker left there
        from distributed import get_worker

        return str(get_worker().local_directory)
    except (ImportError, ValueError):
        return None


def run_task(job: Job, output: OutputSpec, shown_root: Path, link_root: Path) -> _TaskDone | str:
    """Run one job into a scratch folder; the files it wrote, or its one-line error.

    ``link_root`` is the absolute path the output folder will have (for relative links).
    """
    import matplotlib

    matplotlib.use("Agg")
    from .jobs import run_job
    from .pipeline import RunFailure

    console = _Recorder()
    with tempfile.TemporaryDirectory(prefix="simmargins-task-", dir=_scratch()) as scratch:
        root = Path(scratch)
        try:
            check_data([job])
            outcome = run_job(job, root, console, output, _NoBar(), shown_root, link_root)
        except (SpecError, RunFailure) as exc:
            return str(exc)
        except Exception as exc:  # reported with the job; the other tasks go on
            return f"{job.context} → unexpected {type(exc).__name__}: {' '.join(str(exc).split())}"
        files = {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }
    return _TaskDone(files, list(outcome.results), outcome.warnings, outcome.seconds, console.lines)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, desc: str) -> None:
        pass


# -- on the client ----------------------------------------------------------------------------
@contextmanager
def connect(scheduler: str | Client) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler``, or of a new ``LocalCluster``.

    ``"local"`` starts one worker process per core (``"local:N"``: N), one thread each;
    the cluster stops on leaving. Any other string is a scheduler address
    (``tcp://host:8786``), waited for as long as Dask's
    ``distributed.comm.timeouts.connect`` (30 s by default). A ``Client`` is used as is.

    Raises
    ------
    SpecError
        ``--scheduler`` when the address cannot be reached or ``local:N`` is malformed.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise SpecError(
            "--scheduler", f"needs dask.distributed (pip install 'dask[distributed]'): {exc}"
        ) from None
    if isinstance(scheduler, Client):
        yield scheduler
        return
    text = str(scheduler).strip()
    if text == "local" or text.startswith("local:"):
        n = text.partition(":")[2] or str(os.cpu_count() or 2)
        if not n.isdigit() or int(n) < 1:
            raise SpecError(
                "--scheduler", f"expected 'local' or 'local:N' with N ≥ 1, got {text!r}"
            )
        with (
            LocalCluster(
                n_workers=int(n), threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            Client(cluster, set_as_default=False) as client,
        ):
            yield client
        return
    try:
        client = Client(text, set_as_default=False)  # leave the caller's dask config alone
    except Exception as exc:  # OSError (unreachable, timed out), ValueError (bad address)
        raise SpecError(
            "--scheduler",
            f"cannot reach a Dask scheduler at {text!r} ({type(exc).__name__}: {exc}); give "
            "its address (tcp://host:8786) or 'local' for a cluster on this machine",
        ) from None
    with client:
        yield client


def execute_on_cluster(
    jobs: Sequence[Job],
    root: Path,
    console: Console,
    output: OutputSpec,
    shown_root: Path,
    client: Client,
) -> tuple[list[Outcome], list[TaskFailure]]:
    """Run every job as a task; write each finished one's files under ``root``.

    Returns the outcomes (in the order of ``jobs``) and the failures, each already shown.
    """
    from distributed import as_completed

    run = uuid.uuid4().hex[:8]
    link_root = Path(os.path.abspath(shown_root))
    futures = {}
    for i, job in enumerate(jobs):  # keys name the job, for the dashboard
        key = f"simmargins-{run}-{i}:{job.folder}"
        args = (run_task, job, output, shown_root, link_root)
        futures[client.submit(*args, key=key, pure=False)] = (i, job)
    done: dict[int, Outcome] = {}
    failures: list[TaskFailure] = []
    with console.progress(len(jobs), "simmargins") as bar:
        for future in as_completed(futures, loop=client.loop):
            i, job = futures[future]
            try:
                result = future.result()
            except Exception as exc:
                result = f"{job.context} → {_lost(exc)}"
            future.release()
            if isinstance(result, str):
                failures.append(TaskFailure(job, result))
                console.error(result)
            else:
                for rel, data in result.files.items():
                    path = root / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
                for kind, text in result.printed:
                    (console.out if kind == "out" else console.warn)(text)
                outcome = Outcome(job, None, dict.fromkeys(result.results), result.warnings)
                outcome.seconds = result.seconds
                done[i] = outcome
            bar.set_description(job.folder)
            bar.update(1)
    order = {id(j): i for i, j in enumerate(jobs)}
    failures.sort(key=lambda f: order[id(f.job)])
    return [done[i] for i in sorted(done)], failures


def _lost(exc: BaseException) -> str:
    if type(exc).__name__ == "KilledWorker":
        return (
            "the worker running this task died each time it was tried (KilledWorker; Dask's "
            "distributed.scheduler.allowed-failures sets how often it is retried)"
        )
    return f"the task was lost: {type(exc).__name__}: {' '.join(str(exc).split())}"


def run_batch(
    spec: str | os.PathLike[str],
    data: Sequence[str] = (),
    *,
    scheduler: str | Client | None = None,
    out: str | os.PathLike[str] | None = None,
    force: bool = False,
    seed: int | None = None,
    n_jobs: int | None = None,
    console: Console | None = None,
    command: str = "simmargins.cli.run_batch",
) -> BatchRun:
    """Run a spec's analyses over data files, serially or as Dask tasks on a cluster.

    What ``simmargins run SPEC --data ... [--scheduler ADDRESS]`` does, from Python.

    Parameters
    ----------
    spec : path
        The TOML spec (``docs/cli.md``).
    data : sequence of str
        Data files or glob patterns, each rerunning every analysis (``--data``); with
        several, ``combined.csv`` stacks all ``margins.csv`` tables.
    scheduler : str, distributed.Client or None
        None runs the jobs one after another here; a failure stops the run and nothing
        is written. Otherwise each job is a Dask task: ``"local"`` (``"local:N"``) starts
        a ``LocalCluster``, a string is a scheduler's address, a ``Client`` is used as is.
        A task that fails is reported in ``failures`` and the others are written.
        Analyses that do not set ``inference.n_jobs`` (nor ``n_jobs`` here) bootstrap
        with one process per task: the cluster's workers are the parallelism.
    out : path, optional
        Output folder (default ``SPEC_results``); replaced only with ``force``.
    seed, n_jobs : int, optional
        ``--seed`` and ``--jobs``: override every analysis's.
    console : Console, optional
        Where summaries, warnings and progress go (default: nowhere).
    command : str
        The command line recorded in the index ``report.md``.

    Returns
    -------
    BatchRun
        The output folder, the outcomes and failures per job, ``combined.csv``'s path.

    Raises
    ------
    SpecError
        A bad spec, data file (serial run), pattern or scheduler: nothing is written.
    RunFailure
        A serial job failed, or every task did: nothing is written.

    Examples
    --------
    With a spec and data files at hand (docs/scale.md runs a whole example)::

        run = run_batch("spec.toml", ["sites/**/*.csv"], scheduler="local:2", out="all")
        print([f.message for f in run.failures], run.combined)
    """
    from .pipeline import RunFailure
    from .spec_read import read_spec

    start = time.perf_counter()
    console = console if console is not None else _Recorder(keep=False)
    run = override(read_spec(Path(spec)), seed, n_jobs)
    if scheduler is not None:
        run = _one_process_per_task(run)
    files = expand_data(data)
    jobs = plan_jobs(run, files)
    target = Path(out) if out is not None else Path(f"{run.path.stem}_results")
    folder = OutputFolder(target, force, [run.path, *(j.analysis.data.path for j in jobs)])
    folder.check()
    if scheduler is None:
        check_data(jobs)
    failures: list[TaskFailure] = []
    with connect(scheduler) if scheduler is not None else nullcontext() as client, folder as tmp:
        (tmp / "spec.toml").write_text(run.text, encoding="utf-8")
        if client is None:
            outcomes = execute(jobs, tmp, console, run.output, target)
        else:
            outcomes, failures = execute_on_cluster(jobs, tmp, console, run.output, target, client)
            if not outcomes:
                raise RunFailure(f"all {len(jobs)} tasks failed; nothing was written")
        extra: list[str] = []
        combined = None
        if files:
            combined = target / write_combined(tmp, outcomes).name
            extra += ["Every quantity of every file in one table: [combined.csv](combined.csv)."]
        if failures:
            extra += ["", "## Failed tasks", "", *[f"- {f.message}" for f in failures]]
        write_index(tmp, f"simmargins run: {run.path.name}", command, outcomes, extra)
    return BatchRun(target, outcomes, failures, combined, time.perf_counter() - start)


def _one_process_per_task(run: RunSpec) -> RunSpec:
    analyses = tuple(
        a
        if a.inference.n_jobs is not None
        else replace(a, inference=replace(a.inference, n_jobs=1))
        for a in run.analyses
    )
    return replace(run, analyses=analyses)
