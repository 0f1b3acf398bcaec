"""The ``simmargins`` command, run as users run it: ``python -m simmargins`` in a subprocess.

Values in the outputs are checked against independent routes (statsmodels fitted here,
numpy quantiles of the saved draws, lme4's published table), not against the library.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
import xarray as xr

from simmargins import load, sleepstudy_data

# lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy), REML, as published in
# Bates, Mächler, Bolker & Walker (2015), J. Stat. Softw. 67(1): estimate, std. error
LME4_SLEEPSTUDY = {"(Intercept)": (251.405, 6.825), "Days": (10.467, 1.546)}
LINK = re.compile(r"\]\(([^)]+)\)")
ROOT = Path(__file__).resolve().parents[2]


def simmargins(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    env.pop("SIMMARGINS_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "simmargins", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def _default_sigint() -> None:
    # a test run started in the background of a non-interactive shell ignores SIGINT, and
    # children inherit that; the command rightly keeps an ignored ^C ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _popen(*args: str | Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "simmargins", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint if sys.platform != "win32" else None,
    )


def no_leftovers(folder: Path) -> list[str]:
    """Hidden temporary folders an atomic write could have left behind."""
    return [p.name for p in folder.iterdir() if ".partial" in p.name or ".old-" in p.name]


def broken_links(root: Path) -> list[str]:
    """Relative links in every report.md under ``root`` that point at nothing."""
    bad = []
    for md in root.rglob("report.md"):
        for target in LINK.findall(md.read_text(encoding="utf-8")):
            if not (md.parent / target).exists():
                bad.append(f"{md.relative_to(root)} → {target}")
    return bad


def make_frame(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 240
    df = pd.DataFrame(
        {
            "age": rng.integers(20, 70, n),
            "t": rng.integers(0, 2, n),
            "g": rng.choice(["a", "b", "c"], n),
            "e": rng.uniform(0.5, 2.0, n),
        }
    )
    df["y"] = 2.0 + 0.05 * df["age"] + 0.8 * df["t"] + (df["g"] == "b") * 1.2 + rng.normal(size=n)
    return df


OLS_FORMULA = "y ~ age + t + C(g)"
OLS_SPEC = f"""\
data = "data.csv"

[model]
kind = "ols"
formula = "{OLS_FORMULA}"

[inference]
method = "simulation"
n_sims = 400
seed = 11

[[quantity]]
name = "slopes"
kind = "dydx"
variables = ["age", "g"]

[[quantity]]
name = "arms"
kind = "predict"
atexog = {{ t = [0, 1] }}

[[quantity]]
name = "groups"
kind = "contrasts"
type = "reference"
var = "g"
levels = ["a", "b", "c"]
ref_level = "a"
"""


@pytest.fixture(scope="module")
def ols_run(tmp_path_factory):
    """An OLS spec written here, run once: (folder, data, completed process)."""
    root = tmp_path_factory.mktemp("run")
    df = make_frame(1)
    df.to_csv(root / "data.csv", index=False)
    (root / "spec.toml").write_text(OLS_SPEC)
    proc = simmargins("run", "spec.toml", "--out", "out", cwd=root)
    return root, df, proc


# -- demo ---------------------------------------------------------------------------------------
def test_demo_in_a_fresh_folder(tmp_path):
    start = time.perf_counter()
    proc = simmargins("demo", cwd=tmp_path, timeout=300)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 60, f"the demo took {elapsed:.0f} s"
    out = tmp_path / "simmargins_demo"
    for name in ("report.md", "spec.toml", "data/classroom.csv", "data/sleepstudy.csv"):
        assert (out / name).is_file(), name
    quantities = {
        "classroom": ["age_effect", "treatment_arms", "treatment_effect", "school_contrasts"],
        "sleepstudy": ["days_slope", "day9_vs_day0"],
    }
    for analysis, names in quantities.items():
        assert (out / analysis / "report.md").is_file()
        assert (out / analysis / "model.txt").is_file()
        for q in names:
            folder = out / analysis / q
            for f in ("summary.txt", "margins.csv", "draws.nc", "report.md", "dist.png"):
                assert (folder / f).is_file(), folder / f
            assert (folder / "forest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for curve in ("classroom/age_by_sex", "sleepstudy/reaction_over_days"):
        assert (out / curve / "curve.png").is_file()
    assert (out / "sleepstudy" / "lme4_comparison.txt").is_file()
    assert broken_links(out) == []
    assert no_leftovers(tmp_path) == []
    assert "Margins Result (simulation, level=0.95)" in proc.stdout

    # the printed fixed effects next to lme4's published table (an independent fit)
    table = proc.stdout.split("sleepstudy: fixed effects (REML)", 1)[1].splitlines()
    for name, (est, se) in LME4_SLEEPSTUDY.items():
        line = next(ln for ln in table if ln.startswith(name + " "))
        ours_est, ours_se, lme4_est, lme4_se = (float(v) for v in line.split()[1:5])
        assert abs(ours_est - est) < 5e-4 and abs(ours_se - se) < 5e-4, line
        assert (lme4_est, lme4_se) == (est, se)
    slope = pd.read_csv(out / "sleepstudy" / "days_slope" / "margins.csv")
    assert abs(slope["estimate"].iloc[0] - 10.467) < 5e-4
    assert abs(slope["delta_std_err"].iloc[0] - 1.546) < 5e-4


# -- run ----------------------------------------------------------------------------------------
def test_run_matches_statsmodels(ols_run):
    root, df, proc = ols_run
    assert proc.returncode == 0, proc.stderr
    fit = smf.ols(OLS_FORMULA, df).fit()
    out = root / "out"
    for name in ("report.md", "spec.toml", "main/report.md", "main/model.txt"):
        assert (out / name).is_file(), name
    assert broken_links(out) == []
    assert no_leftovers(root) == []

    slopes = pd.read_csv(out / "main" / "slopes" / "margins.csv").set_index("label")
    # a linear model's AME is its coefficient, and the delta SE is the coefficient's SE
    np.testing.assert_allclose(slopes.loc["age", "estimate"], fit.params["age"], rtol=1e-6)
    np.testing.assert_allclose(slopes.loc["age", "delta_std_err"], fit.bse["age"], rtol=1e-6)
    for lv in ("b", "c"):
        row = slopes.loc[f"g={lv} - g=a"]
        np.testing.assert_allclose(row["estimate"], fit.params[f"C(g)[T.{lv}]"], rtol=1e-9)
        np.testing.assert_allclose(row["delta_std_err"], fit.bse[f"C(g)[T.{lv}]"], rtol=1e-9)

    arms = pd.read_csv(out / "main" / "arms" / "margins.csv")
    for _, row in arms.iterrows():
        expected = fit.predict(df.assign(t=int(row["t"]))).mean()
        np.testing.assert_allclose(row["estimate"], expected, rtol=1e-9)

    groups = pd.read_csv(out / "main" / "groups" / "margins.csv")
    np.testing.assert_allclose(
        groups["estimate"], fit.params[["C(g)[T.b]", "C(g)[T.c]"]].to_numpy(), rtol=1e-9
    )
    # the saved draws hold the same numbers as the table
    res = load(out / "main" / "groups" / "draws.nc")
    np.testing.assert_allclose(res.estimate, groups["estimate"], rtol=1e-12)
    assert res.n_draws == 400 and res.attrs["seed"] == 11
    assert "main / slopes" in proc.stdout


def test_report_at_another_level(ols_run, tmp_path):
    root, _, proc = ols_run
    assert proc.returncode == 0, proc.stderr
    source = root / "out" / "main" / "arms"
    rep = simmargins(
        "report", source / "draws.nc", "--level", "0.9", "--out", tmp_path / "r", cwd=root
    )
    assert rep.returncode == 0, rep.stderr
    assert "level=0.9)" in rep.stdout
    before = pd.read_csv(source / "margins.csv")
    after = pd.read_csv(tmp_path / "r" / "margins.csv")
    np.testing.assert_array_equal(after["estimate"], before["estimate"])  # no refit
    assert (after["ci_lower"] > before["ci_lower"]).all()
    assert (after["ci_upper"] < before["ci_upper"]).all()
    # the 90% percentile interval, straight from the saved draws
    draws = xr.load_dataset(source / "draws.nc")["draws"].transpose("draw", "label").to_numpy()
    np.testing.assert_allclose(after["ci_lower"], np.quantile(draws, 0.05, axis=0), rtol=1e-12)
    np.testing.assert_allclose(after["ci_upper"], np.quantile(draws, 0.95, axis=0), rtol=1e-12)
    for f in ("summary.txt", "draws.nc", "report.md", "dist.png", "forest.png"):
        assert (tmp_path / "r" / f).is_file(), f
    assert "level=0.9" in (tmp_path / "r" / "summary.txt").read_text()
    assert load(tmp_path / "r" / "draws.nc").level == 0.9
    assert broken_links(tmp_path / "r") == []

    # the default destination sits beside the result; it is never overwritten silently
    first = simmargins("report", source / "draws.nc", cwd=root)
    assert first.returncode == 0, first.stderr
    assert (source / "report-0.95" / "report.md").is_file()
    again = simmargins("report", source / "draws.nc", cwd=root)
    assert again.returncode == 2 and "report-0.95" in again.stderr and "--force" in again.stderr


FAST_SPEC = """\
data = "data.csv"
[output]
plots = false
[model]
kind = "ols"
formula = "y ~ age + t"
[inference]
n_sims = 50
[[quantity]]
kind = "dydx"
variables = "age"
"""


def test_existing_output_needs_force(tmp_path):
    make_frame(2).to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "spec.toml").write_text(FAST_SPEC)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")

    refused = simmargins("run", "spec.toml", "--out", "out", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "simmargins: error: output folder 'out' already exists; pass --force to replace it, "
        "or choose another --out"
    )
    assert (out / "keep.txt").read_text() == "mine"  # untouched

    forced = simmargins("run", "spec.toml", "--out", "out", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert not (out / "keep.txt").exists()
    assert (out / "main" / "dydx" / "margins.csv").is_file()
    assert not (out / "main" / "dydx" / "dist.png").exists()  # [output] plots = false
    assert no_leftovers(tmp_path) == []

    # --force never replaces a folder holding the run's own inputs
    (out / "spec.toml").write_text(FAST_SPEC.replace('"data.csv"', '"../data.csv"'))
    inside = simmargins("run", out / "spec.toml", "--out", "out", "--force", cwd=tmp_path)
    assert inside.returncode == 2 and "refusing to replace output folder 'out'" in inside.stderr
    assert (out / "spec.toml").is_file()


def test_batch_over_data_files(tmp_path):
    pytest.importorskip("pyarrow")
    frames = {"site1.csv": make_frame(3), "site2.parquet": make_frame(4)}
    spec = """\
data = "site1.csv"
[output]
plots = false
[inference]
n_sims = 50
seed = 1

[[analysis]]
name = "linear"
model = { kind = "ols", formula = "y ~ age + t" }
quantity = [{ kind = "dydx", variables = "age" }]

[[analysis]]
name = "counts"
model = { kind = "poisson", formula = "n ~ age + t", exposure = "e" }
inference = { scale = "linear", n_sims = 50 }
quantity = [{ kind = "dydx", variables = "t" }]
"""
    for df in frames.values():
        rng = np.random.default_rng(0)
        df["n"] = rng.poisson(df["e"] * np.exp(0.1 + 0.3 * df["t"]))
    for name, df in frames.items():
        path = tmp_path / name
        df.to_csv(path, index=False) if name.endswith(".csv") else df.to_parquet(path)
    (tmp_path / "spec.toml").write_text(spec)
    proc = simmargins(
        "run", "spec.toml", "--out", "batch", "--data", *frames, "--seed", "5", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    for name, df in frames.items():
        stem = name.split(".")[0]
        linear = pd.read_csv(tmp_path / "batch" / stem / "linear" / "dydx" / "margins.csv")
        ols = smf.ols("y ~ age + t", df).fit()
        np.testing.assert_allclose(linear["estimate"].iloc[0], ols.params["age"], rtol=1e-6)
        counts = pd.read_csv(tmp_path / "batch" / stem / "counts" / "dydx" / "margins.csv")
        pois = smf.poisson("n ~ age + t", df, exposure=df["e"]).fit(disp=0)
        np.testing.assert_allclose(counts["estimate"].iloc[0], pois.params["t"], rtol=1e-5)
        assert load(tmp_path / "batch" / stem / "linear" / "dydx" / "draws.nc").attrs["seed"] == 5
    index = (tmp_path / "batch" / "report.md").read_text()
    assert "site2.parquet" in index and "site1/counts/report.md" in index
    assert broken_links(tmp_path / "batch") == []


def test_runtime_failure_exits_1_and_leaves_nothing(tmp_path):
    make_frame(5).to_csv(tmp_path / "data.csv", index=False)
    spec = FAST_SPEC.replace('kind = "ols"', 'kind = "logit"')
    (tmp_path / "spec.toml").write_text(spec)  # y is not binary: statsmodels refuses the fit
    proc = simmargins("run", "spec.toml", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "simmargins: error: analysis 'main' → model: the fit failed: ValueError: "
        "endog must be in the unit interval."
    ]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() and no_leftovers(tmp_path) == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_interrupted_run_leaves_no_partial_output(tmp_path):
    sleepstudy_data().to_csv(tmp_path / "sleep.csv", index=False)
    (tmp_path / "spec.toml").write_text(
        """\
data = "sleep.csv"
model = { kind = "mixedlm", formula = "Reaction ~ Days", groups = "Subject", re_formula = "~Days" }
inference = { method = "bootstrap", n_boot = 200000, n_jobs = 1 }
quantity = [{ kind = "dydx", variables = "Days" }]
"""
    )
    # 200,000 replicates: minutes even on the sufficient-statistics route (~2 ms each), so the
    # run is certainly still going when the interrupt arrives
    proc = _popen("run", "spec.toml", "--out", "out", cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not no_leftovers(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)  # wait until the run writes into its temporary folder
    assert no_leftovers(tmp_path), "the run never started writing"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # once: one ^C must be enough
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"one ^C went unanswered for 60 s; stderr:\n{err}")
    assert proc.returncode == 130, err  # not -2: see test_interrupt_inside_exec_of_a_string
    assert err.strip().splitlines()[-1] == "simmargins: error: interrupted; no output was written"
    assert not (tmp_path / "out").exists()
    assert no_leftovers(tmp_path) == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_interrupt_inside_exec_of_a_string(tmp_path, monkeypatch, capsys):
    """^C that surfaces inside exec() of a source string (imports run many: namedtuples,
    dataclasses, scipy's distribution methods) exits 130 and leaves CPython's "unhandled ^C"
    flag alone. With a bare KeyboardInterrupt the flag stayed set although main() caught
    it, and the interpreter then killed itself with SIGINT at exit (status -2, not 130)."""
    import ctypes

    from simmargins.cli import command as _cli

    def interrupted_import(args, console, command):
        exec("import os, signal\nos.kill(os.getpid(), signal.SIGINT)\nfor _ in range(9): pass")
        return 0

    monkeypatch.setattr(_cli, "cmd_demo", interrupted_import)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert _cli.main(["demo", "--out", str(tmp_path / "out")]) == 130
    assert capsys.readouterr().err == "simmargins: error: interrupted; no output was written\n"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    try:  # CPython 3.11's flag behind its exit via SIGINT (moved into the runtime in 3.12)
        flag = ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt")
    except (ValueError, AttributeError):
        return
    assert flag.value == 0


def test_interrupt_is_not_a_bare_keyboardinterrupt():
    from simmargins.cli.command import Interrupted, _interrupt

    with pytest.raises(KeyboardInterrupt) as info:
        _interrupt(signal.SIGTERM, None)
    assert type(info.value) is Interrupted and str(info.value) == "SIGTERM"


def test_docs_example_runs_as_written(tmp_path):
    import statsmodels.api as sm

    from simmargins import classroom_data, sleepstudy_data

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    found = re.search(r"## A full example.*?```toml\n(.*?)```", text, re.S)
    assert found, "docs/cli.md lost its full example"
    (tmp_path / "data").mkdir()
    df = classroom_data(seed=42)  # the data files `simmargins demo` writes
    df.to_csv(tmp_path / "data" / "classroom.csv", index=False)
    sleepstudy_data().to_csv(tmp_path / "data" / "sleepstudy.csv", index=False)
    (tmp_path / "analyses.toml").write_text(found.group(1))
    proc = simmargins("run", "analyses.toml", "--out", "analyses", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "analyses"
    expected = {
        "classroom": ["effects", "age_by_sex", "treatment_by_sex", "schools",
                      "treated_woman_vs_untreated_man"],
        "classroom_ols": ["dydx"],
        "classroom_gamma": ["dydx", "predict", "older"],
        "sleepstudy": ["slope", "week"],
    }  # fmt: skip
    for analysis, names in expected.items():
        for q in names:
            assert (out / analysis / q / "margins.csv").is_file(), (analysis, q)
    assert broken_links(out) == []

    boot = load(out / "classroom_ols" / "dydx" / "draws.nc")
    assert boot.attrs["cluster"] == "student" and boot.attrs["n_boot"] == 200
    # the gamma GLM's predictive margins: statsmodels' own predictions, averaged
    glm = smf.glm(
        "score ~ age + female + treated", df, family=sm.families.Gamma(sm.families.links.Log())
    ).fit()
    arms = pd.read_csv(out / "classroom_gamma" / "predict" / "margins.csv")
    for _, row in arms.iterrows():
        expected_mean = glm.predict(df.assign(treated=int(row["treated"]))).mean()
        np.testing.assert_allclose(row["estimate"], expected_mean, rtol=1e-8)
    schools = pd.read_csv(out / "classroom" / "schools" / "margins.csv")
    assert len(schools) == 6  # all pairs of four schools
    older = pd.read_csv(out / "classroom_gamma" / "older" / "margins.csv")
    ratio = glm.predict(df.assign(age=df["age"] + 10)).mean() / glm.predict(df).mean()
    np.testing.assert_allclose(older["estimate"].iloc[0], ratio, rtol=1e-8)
    slope = pd.read_csv(out / "sleepstudy" / "slope" / "margins.csv")
    assert abs(slope["df"].iloc[0] - 17.0) < 1e-3  # pbkrtest's Kenward-Roger df for Days


# -- bad specs ----------------------------------------------------------------------------------
BASE = """\
data = "data.csv"

[model]
kind = "ols"
formula = "y ~ age + t + C(g)"

[inference]
n_sims = 50

[[quantity]]
kind = "dydx"
variables = ["age"]

[[quantity]]
kind = "predict"
atexog = { t = [0, 1] }

[[quantity]]
kind = "contrasts"
type = "reference"
var = "g"
levels = ["a", "b", "c"]
"""

# (case, (old, new) replacements in BASE or text to append, fragments the message must hold)
BAD_SPECS = [
    ("unknown key", ('kind = "ols"', 'kind = "ols"\nformla = "y ~ age"'),
     ["analysis 'main' → model.formla: unknown key", "did you mean 'formula'?"]),
    ("unknown top-level table", ("", "\n[outputs]\nplots = false\n"),
     ["outputs: unknown key", "did you mean 'output'?"]),
    ("missing required key", ('formula = "y ~ age + t + C(g)"', ""),
     ["model.formula: required key is missing"]),
    ("wrong type", ("n_sims = 50", 'n_sims = "50"'),
     ["inference.n_sims: expected an integer, got the string '50'"]),
    ("data file not found", ('"data.csv"', '"nowhere.csv"'),
     ["data.path: file", "nowhere.csv", "not found"]),
    ("formula column not in data", ("y ~ age + t", "y ~ agee + t"),
     ["model.formula: 'agee' is not a column of the data; did you mean 'age'?"]),
    ("formula does not parse", ("y ~ age + t + C(g)", "y ~ age + (t"),
     ["model.formula:", "does not parse"]),
    ("formula does not evaluate", ("y ~ age + t", "y ~ np.nosuch(age) + t"),
     ["model.formula:", "cannot be evaluated", "nosuch"]),
    ("by column not in data", ('variables = ["age"]', 'variables = ["age"]\nby = "gg"'),
     ["quantity[0].by: 'gg' is not a column of the data; did you mean 'g'?"]),
    ("dydx variable not in model", ('variables = ["age"]', 'variables = ["e"]'),
     ["quantity[0].variables: column 'e' is not in the model's formula"]),
    ("level not in data", ('levels = ["a", "b", "c"]', 'levels = ["a", "b", "z"]'),
     ["quantity[2].levels[2]: 'z' is not a value of column 'g'"]),
    ("numeric column given text", ("t = [0, 1]", 't = ["yes", "no"]'),
     ["quantity[1].atexog.t: column 't' is numeric, got the string 'yes'"]),
    ("bad choice", ('kind = "ols"', 'kind = "olss"'),
     ["model.kind: got 'olss'", "did you mean 'ols'?"]),
    ("key of another model kind", ('kind = "ols"', 'kind = "ols"\ngroups = "g"'),
     ["model.groups: only used by model kind 'mixedlm'"]),
    ("key of another quantity kind",
     ('variables = ["age"]', 'variables = ["age"]\nshift = { age = 1 }'),
     ["quantity[0].shift: only used by quantity kind 'contrasts'"]),
    ("level out of range", ("n_sims = 50", "n_sims = 50\nlevel = 95"),
     ["inference.level: must lie strictly between 0 and 1"]),
    ("at column unknown", ("n_sims = 50", "n_sims = 50\nat = { ag = 30 }"),
     ["inference.at.ag: 'ag' is not a column of the data; did you mean 'age'?"]),
    ("invalid TOML", ("", "\n[model\n"), ["is not valid TOML", "line"]),
]  # fmt: skip


# Each of these also runs as its own process; the rest go through main() in this process.
SUBPROCESS_CASES = (
    "unknown key",
    "missing required key",
    "wrong type",
    "data file not found",
    "formula column not in data",
    "formula does not parse",
    "formula does not evaluate",
    "by column not in data",
    "level not in data",
    "invalid TOML",
)

MIXEDLM = ('kind = "ols"', 'kind = "mixedlm"\ngroups = "g"')
CUSTOM = 'type = "reference"\nvar = "g"\nlevels = ["a", "b", "c"]'
MORE_BAD_SPECS = [
    ("no response", ("y ~ age + t + C(g)", "~ age + t"),
     ["model.formula: '~ age + t' has no response"]),
    ("fit option of another kind", ("[inference]", "fit = { reml = true }\n[inference]"),
     ["model.fit.reml: unknown key (accepted here: cov_type)"]),
    ("exposure for ols", ('kind = "ols"', 'kind = "ols"\nexposure = "e"'),
     ["model.exposure: only used by model kind 'glm' or 'poisson' or 'negativebinomial'"]),
    ("mixedlm without groups", ('kind = "ols"', 'kind = "mixedlm"'),
     ["model.groups: required key is missing"]),
    ("re_formula with a response",
     ('kind = "ols"', 'kind = "mixedlm"\ngroups = "g"\nre_formula = "y ~ age"'),
     ["model.re_formula: 'y ~ age' must be one-sided"]),
    ("cluster with mixedlm", [MIXEDLM, ("n_sims = 50", 'n_sims = 50\ncluster = "g"')],
     ["inference.cluster: a mixedlm bootstrap resamples the model's own groups"]),
    ("n_jobs zero", ("n_sims = 50", "n_sims = 50\nn_jobs = 0"),
     ["inference.n_jobs: must be at least -1 and not 0"]),
    ("unknown data format", ('"data.csv"', '"data.txt"'),
     ["data.path: cannot tell the format of 'data.txt'", "data.format"]),
    ("categorical column missing",
     ('data = "data.csv"', 'data = { path = "data.csv", categorical = ["grp"] }'),
     ["data.categorical[0]: 'grp' is not a column of the data"]),
    ("pairwise of three levels", ('type = "reference"', 'type = "pairwise"'),
     ["quantity[2].levels: type 'pairwise' compares exactly two levels, got 3"]),
    ("ref_level not a level", ('levels = ["a", "b", "c"]', 'levels = ["a", "b"]\nref_level = "d"'),
     ["quantity[2].ref_level: 'd' is not one of the levels"]),
    ("empty atexog values", ("t = [0, 1]", "t = []"),
     ["quantity[1].atexog.t: expected at least one value"]),
    ("quantity name not a folder name", ('kind = "dydx"', 'kind = "dydx"\nname = "a/b"'),
     ["quantity[0].name: 'a/b' cannot name an output folder"]),
    ("two quantities, one name",
     [('kind = "dydx"', 'kind = "dydx"\nname = "q"'),
      ('kind = "predict"', 'kind = "predict"\nname = "q"')],
     ["quantity[1].name: 'q' names two quantities of this analysis"]),
    ("custom weights of the wrong length",
     (CUSTOM, 'type = "custom"\nscenarios = [{t = 1}, {t = 0}]\nweights = [[1, -1, 0]]'),
     ["quantity[2].weights[0]: expected 2 numbers (one per scenario)"]),
    ("custom scenario column unknown",
     (CUSTOM, 'type = "custom"\nscenarios = [{tt = 1}, {t = 0}]\nweights = [1, -1]'),
     ["quantity[2].scenarios[0].tt: 'tt' is not a column of the data; did you mean 't'?"]),
    ("duplicate analysis names",
     ("", '\n[[analysis]]\nname = "a"\n[[analysis]]\nname = "a"\n'),
     ["analysis 'a': the name is used by two analyses"]),
    # the keys of the comparisons, representative values, new data and small-sample df
    ("df of an ols", ("n_sims = 50", 'n_sims = 50\ndf = "satterthwaite"'),
     ["inference.df: 'satterthwaite' is for linear mixed models (model kind 'mixedlm')"]),
    ("df misspelt", [MIXEDLM, ("n_sims = 50", 'n_sims = 50\ndf = "kenward_roger"')],
     ["inference.df: got 'kenward_roger'", "did you mean 'kenward-roger'?"]),
    ("kenward-roger on an ML fit",
     [MIXEDLM, ("[inference]", "fit = { reml = false }\n[inference]\ndf = 'kenward-roger'")],
     ["inference.df: 'kenward-roger' needs a REML fit"]),
    ("df with the bootstrap",
     [MIXEDLM, ("n_sims = 50", 'n_sims = 50\nmethod = "bootstrap"\ndf = "satterthwaite"')],
     ["inference.df: 'satterthwaite' applies to the simulation and delta routes"]),
    ("at misspelt", ("n_sims = 50", 'n_sims = 50\nat = "medain"'),
     ["inference.at: got 'medain'", "did you mean 'median'?"]),
    ("at mean of a factor", ("n_sims = 50", 'n_sims = 50\nat = { g = "mean" }'),
     ["inference.at.g: 'mean' summarises numeric columns and 'g' is categorical"]),
    ("comparison misspelt", (CUSTOM, CUSTOM + '\ncomparison = "ratios"'),
     ["quantity[2].comparison: got 'ratios'", "did you mean 'ratio'?"]),
    ("comparison of a prediction", ("t = [0, 1] }", 't = [0, 1] }\ncomparison = "ratio"'),
     ["quantity[1].comparison: only used by quantity kind 'dydx' or 'contrasts'"]),
    ("ratio of a numeric dydx",
     ('variables = ["age"]', 'variables = ["age"]\ncomparison = "ratio"'),
     ["quantity[0].comparison: 'ratio' compares two averaged predictions", "'age' is numeric"]),
    ("dydx atexog with an elasticity",
     ('variables = ["age"]', 'variables = ["age"]\nslope = "eyex"\natexog = { t = [0, 1] }'),
     ["quantity[0].atexog: not available with slope 'eyex'"]),
    ("dydx atexog value not a level",
     ('variables = ["age"]', 'variables = ["age"]\natexog = { g = [1] }'),
     ["quantity[0].atexog.g: 1 is not a value of column 'g'"]),
    ("lnor of margins outside (0, 1)", (CUSTOM, CUSTOM + '\ncomparison = "lnor"'),
     ["quantity[2].comparison: 'lnor' is undefined"]),
    ("shift of a factor", (CUSTOM, 'type = "shift"\nshift = { g = 1 }'),
     ["quantity[2].shift.g: shift moves a numeric column, and 'g' is categorical"]),
    ("shift by a word", (CUSTOM, 'type = "shift"\nshift = { age = "sdd" }'),
     ["quantity[2].shift.age: expected a finite number or 'sd', got the string 'sdd'"]),
    ("scale by sd", (CUSTOM, 'type = "shift"\nscale = { age = "sd" }'),
     ["quantity[2].scale.age: expected a finite number, got the string 'sd'"]),
    ("shift without amounts", (CUSTOM, 'type = "shift"'),
     ["quantity[2].shift: type 'shift' needs shift = { x = 1 }"]),
    ("shift with levels", ('type = "reference"', 'type = "shift"\nshift = { age = 1 }'),
     ["quantity[2].var: only used by type", "this one is 'shift'"]),
    ("shift of a column not in the model", (CUSTOM, 'type = "shift"\nshift = { e = 1 }'),
     ["quantity[2].shift.e: column 'e' is not in the model's formula"]),
    ("newdata not found", ('variables = ["age"]', 'variables = ["age"]\nnewdata = "pop.csv"'),
     ["quantity[0].newdata.path: file", "pop.csv", "not found"]),
    ("newdata weights column missing",
     ('variables = ["age"]', 'variables = ["age"]\nnewdata = { path = "data.csv", weights = "w" }'),
     ["quantity[0].newdata.weights: 'w' is not a column of the data"]),
    ("newdata key misspelt",
     ('variables = ["age"]', 'variables = ["age"]\nnewdata = { path = "data.csv", weight = "e" }'),
     ["quantity[0].newdata.weight: unknown key; did you mean 'weights'?"]),
    ("weights beside newdata", ("t = [0, 1] }", 't = [0, 1] }\nweights = "e"'),
     ["quantity[1].weights: the weights of a newdata population go in its table"]),
    # the keys of issue 14: bootstrap kind and random effects
    ("bootstrap misspelt", [MIXEDLM, ("n_sims = 50", 'n_sims = 50\nbootstrap = "parametrc"')],
     ["inference.bootstrap: got 'parametrc'", "did you mean 'parametric'?"]),
    ("parametric bootstrap of an ols",
     ("n_sims = 50", 'n_sims = 50\nmethod = "bootstrap"\nbootstrap = "parametric"'),
     ["inference.bootstrap: 'parametric' simulates responses from a linear mixed model"]),
    ("parametric without the bootstrap",
     [MIXEDLM, ("n_sims = 50", 'n_sims = 50\nbootstrap = "parametric"')],
     ["inference.bootstrap: 'parametric'", "method = 'bootstrap'"]),
    ("studentized interval of a cluster bootstrap",
     [MIXEDLM, ("n_sims = 50", 'n_sims = 50\nmethod = "bootstrap"\ninterval = "studentized"')],
     ["inference.interval: 'studentized' needs each replicate's standard error"]),
    ("random effects of an ols", ("n_sims = 50", 'n_sims = 50\nrandom_effects = "new"'),
     ["inference.random_effects: 'new' is for model kind 'mixedlm'"]),
    ("new cluster with the bootstrap",
     [MIXEDLM, ("n_sims = 50", 'n_sims = 50\nmethod = "bootstrap"\nrandom_effects = "new"')],
     ["inference.random_effects: 'new' takes its uncertainty from the fitted variance"]),
]  # fmt: skip


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """The subprocess cases, run a few at a time (each is a separate process start-up)."""

    def run(case: str, change: tuple) -> tuple[Path, int, str]:
        folder = tmp_path_factory.mktemp("bad")
        (folder / "spec.toml").write_text(_bad_spec(folder, case, change))
        proc = simmargins("run", "spec.toml", "--out", "out", cwd=folder)
        return folder, proc.returncode, proc.stderr

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {
            case: pool.submit(run, case, change)
            for case, change, _ in BAD_SPECS
            if case in SUBPROCESS_CASES
        }
        return {case: f.result() for case, f in futures.items()}


def _bad_spec(folder: Path, case: str, change: tuple | list) -> str:
    """BASE with each (old, new) replaced once; an empty old appends new."""
    make_frame(6).to_csv(folder / "data.csv", index=False)
    text = BASE
    for old, new in [change] if isinstance(change, tuple) else change:
        text = text + new if old == "" else text.replace(old, new, 1)
    assert text != BASE, case
    return text


def _check_one_line(err: str, code: int, fragments: list[str], folder: Path) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("simmargins: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert not (folder / "out").exists() and no_leftovers(folder) == []


@pytest.mark.parametrize(
    ("case", "fragments"), [(c, f) for c, _, f in BAD_SPECS if c in SUBPROCESS_CASES]
)
def test_bad_spec_exits_2_with_one_line(bad_runs, case, fragments):
    folder, code, err = bad_runs[case]
    _check_one_line(err, code, fragments, folder)


@pytest.mark.parametrize(("case", "change", "fragments"), BAD_SPECS + MORE_BAD_SPECS)
def test_bad_spec_in_process(tmp_path, capsys, case, change, fragments):
    from simmargins.cli.command import main  # the console script's entry point

    text = _bad_spec(tmp_path, case, change)
    (tmp_path / "spec.toml").write_text(text)
    code = main(["run", str(tmp_path / "spec.toml"), "--out", str(tmp_path / "out")])
    _check_one_line(capsys.readouterr().err, code, fragments, tmp_path)


def test_usage_errors(tmp_path):
    proc = simmargins(cwd=tmp_path)
    assert proc.returncode == 2 and "usage: simmargins" in proc.stderr
    missing = simmargins("run", "nothing.toml", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "simmargins: error: 'nothing.toml': spec file not found"


def test_a_fit_that_did_not_converge_is_reported_once(tmp_path, capsys):
    """The session's note, under "model fit", and no second copy."""
    from simmargins.cli.command import main

    rng = np.random.default_rng(2)
    df = pd.DataFrame({"x": rng.normal(size=300), "z": rng.normal(size=300)})
    df["y"] = (rng.random(300) < 1 / (1 + np.exp(-(0.5 * df["x"] - 0.3 * df["z"])))).astype(int)
    df.to_csv(tmp_path / "data.csv", index=False)
    spec = (
        'data = "data.csv"\n\n[model]\nkind = "logit"\nformula = "y ~ x + z"\n\n'
        "[model.fit]\nmaxiter = 1\n\n[inference]\nmethod = \"delta\"\nseed = 1\n\n"
        '[[quantity]]\nname = "slopes"\nkind = "dydx"\nvariables = ["x"]\n'
    )
    (tmp_path / "spec.toml").write_text(spec)
    code = main(["run", str(tmp_path / "spec.toml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.count("convergence") + err.count("did not converge") == 1, err
    assert "model fit: ConvergenceWarning: fit: statsmodels reports that this Logit fit" in err


@pytest.mark.parametrize("method", [None, "powell"])
def test_a_mixedlm_fit_short_of_its_optimum_is_reported_with_the_fix(tmp_path, capsys, method):
    """statsmodels' default fit stops short of the REML optimum on this near-boundary data
    (tests/resampling/test_lmm_optimum.py); the spec's fit method is the remedy."""
    from simmargins.cli.command import main

    rng = np.random.default_rng(5)
    df = pd.DataFrame({"x": rng.normal(size=100), "g": np.repeat(np.arange(10), 10)})
    df["y"] = 1 + 0.5 * df["x"] + 0.3 * rng.normal(size=10)[df["g"]] + 2 * rng.normal(size=100)
    df.to_csv(tmp_path / "data.csv", index=False)
    fit = f'\n[model.fit]\nmethod = "{method}"\n' if method else ""
    spec = (
        'data = "data.csv"\n\n[model]\nkind = "mixedlm"\nformula = "y ~ x"\ngroups = "g"\n'
        f'{fit}\n[inference]\nmethod = "delta"\ndf = "kenward-roger"\n\n'
        '[[quantity]]\nname = "slopes"\nkind = "dydx"\nvariables = ["x"]\n'
    )
    (tmp_path / "spec.toml").write_text(spec)
    code = main(["run", str(tmp_path / "spec.toml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0, err
    if method is None:
        assert err.count("short of its REML optimum") == 1, err
        assert "model fit: ConvergenceWarning" in err and "method=['powell']" in err
    else:
        assert "optimum" not in err and "converge" not in err, err


def test_mixedlm_blup_by_its_group_column_with_satterthwaite_df(tmp_path, capsys):
    """The CLI fits MixedLM with missing='drop', whose model frame keeps only the formula's
    columns; the session still finds the group column (and any by= column) in the loaded
    data. A delta-only result draws its forest plot with the t intervals and no dist.png."""
    from simmargins.cli.command import main

    df = sleepstudy_data()
    df["site"] = np.where(df["Subject"].astype(int) % 2 == 0, "even", "odd")  # not in formula
    df.loc[5, "Reaction"] = np.nan  # a row statsmodels drops
    df.to_csv(tmp_path / "sleep.csv", index=False)
    spec = (
        'data = "sleep.csv"\n\n[model]\nkind = "mixedlm"\nformula = "Reaction ~ Days"\n'
        'groups = "Subject"\nre_formula = "~Days"\n\n[model.fit]\nmethod = "powell"\n\n'
        '[inference]\nmethod = "delta"\ndf = "satterthwaite"\nrandom_effects = "blup"\n\n'
        '[[quantity]]\nname = "slopes"\nkind = "dydx"\nvariables = ["Days"]\nby = ["Subject"]\n'
        '\n[[quantity]]\nname = "sites"\nkind = "predict"\nby = ["site"]\n'
    )
    (tmp_path / "spec.toml").write_text(spec)
    code = main(["run", str(tmp_path / "spec.toml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0 and "warning" not in err, err
    out = tmp_path / "out" / "main"
    slopes = pd.read_csv(out / "slopes" / "margins.csv")
    fit = smf.mixedlm("Reaction ~ Days", df.dropna(), groups="Subject", re_formula="~Days").fit(
        method=["powell"]
    )
    # each subject's slope: the population slope plus its predicted random slope
    re = {str(k): float(v.iloc[1]) for k, v in fit.random_effects.items()}
    expect = [fit.fe_params["Days"] + re[str(s)] for s in slopes["Subject"]]
    np.testing.assert_allclose(slopes["estimate"], expect, rtol=1e-6)
    assert (slopes["df"] > 1).all() and len(slopes) == 18
    assert sorted(pd.read_csv(out / "sites" / "margins.csv")["site"]) == ["even", "odd"]
    assert (out / "slopes" / "forest.png").is_file()
    assert not (out / "slopes" / "dist.png").exists()
