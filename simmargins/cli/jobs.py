"""The jobs of ``simmargins run`` and ``simmargins demo``: one analysis on one data file each.

Planned from the spec (and ``--data``), checked against their data before anything is
fitted, then run one by one: fit, draws, quantities, each written to its own folder with
a ``report.md``, and an index ``report.md`` over them all.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .console import Console, show_result
from .spec import AnalysisSpec, OutputSpec, RunSpec, SpecError, data_format


@dataclass(frozen=True)
class Job:
    """One analysis on one data file, written to ``folder`` (relative to the output)."""

    analysis: AnalysisSpec
    folder: str
    context: str
    data_key: str = ""  # with --data: the file's unique key (its path below the common folder)


@dataclass
class Outcome:
    job: Job
    fit: Any
    results: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def plan_jobs(spec: RunSpec, data_files: Sequence[str] = ()) -> list[Job]:
    """One job per analysis, or per data file × analysis when ``--data`` is given."""
    from .batch import data_files as keyed

    if not data_files:
        return [Job(a, a.name, a.context) for a in spec.analyses]
    jobs = []
    for f in keyed(data_files):
        fmt = data_format(f.path, "--data")
        for a in spec.analyses:
            data = replace(a.data, path=f.path, format=fmt)
            context = f"{a.context} (data {f.given!r})"
            jobs.append(Job(replace(a, data=data), f"{f.folder}/{a.name}", context, f.key))
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
    from .pipeline import load_data, load_newdata
    from .spec_data import check_against_data, check_newdata

    for job in jobs:
        try:
            frame = load_data(job.analysis.data)
        except SpecError as exc:
            raise exc.within(job.context) from None
        check_against_data(job.analysis, frame, job.context)
        try:
            for q in job.analysis.quantities:
                population = load_newdata(q, job.analysis.data)
                if population is not None:
                    check_newdata(q, population, f"{q.key}.newdata")
        except SpecError as exc:
            raise exc.within(job.context) from None


def _model_facts(a: AnalysisSpec) -> list[tuple[str, str]]:
    m = a.model
    rows = [("model", f"{m.kind}: `{m.formula}`")]
    if m.kind == "glm":
        rows.append(("family / link", f"{m.family} / {m.link or 'canonical'}"))
    if m.kind == "ordered":
        rows.append(("latent distribution", m.distr))
    if m.re_formula:
        rows.append(("random effects", f"`{m.re_formula}` by {m.groups}"))
    rows += [(k, v) for k, v in m.columns().items() if not (k == "groups" and m.re_formula)]
    if m.fit:
        rows.append(("fit options", ", ".join(f"{k} = {v!r}" for k, v in m.fit.items())))
    i = a.inference
    if i.method == "bootstrap":
        draws = f"{i.n_boot} bootstrap refits"
    elif i.n_sims is None and i.method == "delta":
        draws = "no draws"
    else:
        draws = f"{1000 if i.n_sims is None else i.n_sims} draws"
    rows.append(("inference", f"{i.method}, {draws}, level {i.level:g}, seed {i.seed}"))
    if i.df != "asymptotic":
        rows.append(("degrees of freedom", i.df))
    rows.append(("scale / at", f"{i.scale} / {i.at}"))
    for k in ("weights", "cluster"):
        if getattr(i, k) is not None:
            rows.append((k, str(getattr(i, k))))
    return rows


def run_job(
    job: Job,
    root: Path,
    console: Console,
    output: OutputSpec,
    bar: Any,
    shown_root: Path,
    link_root: Path | None = None,
) -> Outcome:
    """Fit one analysis, compute and write its quantities; print as it goes.

    Links to the data file are relative to ``link_root`` (default ``root``): the folder
    the results will end up in when they are written elsewhere first.
    """
    from .._validate import fit_converged
    from .pipeline import (
        RunFailure,
        collect_warnings,
        compute_quantity,
        describe_quantity,
        draw_coefficients,
        fit_model,
        load_data,
        load_newdata,
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
        with collect_warnings(warns, "model fit"):
            # the session's check of the fit: statsmodels' convergence flag, and for a
            # Gaussian MixedLM whether its criterion still rises beyond the estimates
            m = make_session(fit, a.inference, progress=console.tty, frame=frame)
        bar.set_description(f"{job.folder}: draws")
        with collect_warnings(warns, "inference"):
            draw_coefficients(m)
        flush_warnings()
        bar.update(1)
        for q in a.quantities:
            bar.set_description(f"{job.folder}: {q.name}")
            desc = describe_quantity(q)
            population = load_newdata(q, a.data)
            with collect_warnings(warns, q.name):
                res = compute_quantity(m, q, population)
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
            show_result(
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
    data_link = relative(a.data.path, (link_root or root) / job.folder)
    facts = [
        ("data", f"[{a.data.path.name}]({data_link}) ({int(fit.nobs)} rows used)"),
        *_model_facts(a),
        ("fitted model", "[model.txt](model.txt)"),
        ("converged", str(fit_converged(fit))),
        ("time", f"{outcome.seconds:.1f} s"),
    ]
    (folder / "report.md").write_text(
        analysis_markdown(f"Analysis {a.name!r}", facts, sections, warns, folder), "utf-8"
    )
    return outcome


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
            o.job.data_key or o.job.analysis.data.path.name,
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
