"""Bad-input battery: every bad input gets our error type (or warning) naming the argument,
and the caller's DataFrame is never modified (hashed before and after every call)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
import xarray as xr

from simmargins import (
    CovarianceWarning,
    Margins,
    MarginsTypeError,
    MarginsValueError,
    SeparationWarning,
    load,
    pairwise,
    plot_curve,
)
from simmargins.adapters import StatsmodelsOLSAdapter


@dataclass
class Case:
    name: str
    call: Callable[..., Any]  # (frames) or, for CLI cases, (frames, tmp_path) -> exit status
    expect: type  # an error type (raised), a warning category (warned) or CliError
    message: str


class CliError:
    """Expectation for CLI cases: exit status 2 and the message on stderr."""


CLI_SPEC = """\
data = "data.csv"

[model]
kind = "ols"
formula = "y ~ x + z + C(g)"

[inference]
n_sims = 20

[[quantity]]
kind = "dydx"
variables = ["x"]
"""


def _cli(old: str, new: str) -> Callable[[dict[str, Any], Any], int]:
    """A CLI case: the base spec with one edit, run through ``simmargins run``."""

    def run(frames: dict[str, pd.DataFrame], tmp: Any) -> int:
        from simmargins.cli.command import main

        frames["df"].to_csv(tmp / "data.csv", index=False)
        assert old in CLI_SPEC
        (tmp / "spec.toml").write_text(CLI_SPEC.replace(old, new, 1))
        return main(["run", str(tmp / "spec.toml"), "--out", str(tmp / "out")])

    return run


def _frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(3)
    n = 120
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "z": rng.uniform(1, 3, n),
            "age": rng.integers(20, 70, n),
            "g": rng.choice(["a", "b", "c"], n),
            "k": 1.0,
            "cl": np.repeat(np.arange(12), 10),
        }
    )
    df["y"] = 1 + df["x"] + 0.5 * df["z"] + (df["g"] == "b") + rng.normal(size=n)
    df["yb"] = (df["x"] + rng.logistic(size=n) > 0).astype(float)
    sep = pd.DataFrame({"x": np.r_[np.linspace(-3, -0.1, 20), np.linspace(0.1, 3, 20)]})
    sep["yb"] = (sep["x"] > 0).astype(float)
    return {"df": df, "sep": sep}


def _ols(f):
    return Margins(smf.ols("y ~ x + z + C(g) + age", f["df"]).fit(), seed=0, n_sims=20)


def _array_fit(f):
    X = sm.add_constant(f["df"][["x", "z"]])
    return sm.OLS(f["df"]["y"], X).fit()


class _NonPD:
    """Test double: a fit whose covariance has a negative eigenvalue."""

    def __init__(self, fit):
        self.model, self.params = fit.model, fit.params

    def cov_params(self):
        c = np.diag(np.r_[1.0, 1.0, -1e-6]) * 1e-2
        return pd.DataFrame(c, index=self.params.index, columns=self.params.index)


def _nan_training_data(f):
    fit = _array_fit(f)
    bad = f["df"].copy()
    bad.loc[5, "x"] = np.nan
    return StatsmodelsOLSAdapter(fit, training_data=bad)


def _inf_training_data(f):
    fit = _array_fit(f)
    bad = f["df"].copy()
    bad.loc[7, "z"] = np.inf
    return StatsmodelsOLSAdapter(fit, training_data=bad)


def _separated(f):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' own separation warnings during the fit
        fit = smf.glm("yb ~ x", f["sep"], family=sm.families.Binomial()).fit()
    return Margins(fit)


def _write_foreign(tmp: Any) -> str:
    path = tmp / "foreign.nc"
    xr.Dataset({"a": ("t", [1.0])}).to_netcdf(path)
    return str(path)


def _write_truncated(f, tmp: Any) -> str:
    res = _ols(f).dydx("x")
    good = res.to_netcdf(tmp / "good.nc")
    bad = tmp / "bad.nc"
    bad.write_bytes(good.read_bytes()[:200])
    return str(bad)


S = {"seed": 0, "n_sims": 20}
CASES = [
    # -- session arguments ------------------------------------------------------------------
    Case(
        "level=1",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), level=1.0),
        MarginsValueError,
        "level: must lie strictly between 0 and 1",
    ),
    Case(
        "level str",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), level="95%"),
        MarginsTypeError,
        "level: expected a float",
    ),
    Case(
        "n_sims=1",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), n_sims=1),
        MarginsValueError,
        "n_sims: must be at least 2",
    ),
    Case(
        "n_sims float",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), n_sims=2.5),
        MarginsTypeError,
        "n_sims: expected an integer",
    ),
    Case(
        "method misspelt",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), method="bootstap"),
        MarginsValueError,
        "did you mean 'bootstrap'?",
    ),
    Case(
        "scale unknown",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), scale="log"),
        MarginsValueError,
        "scale: got 'log'",
    ),
    Case(
        "at unknown",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), at="modal"),
        MarginsValueError,
        "at: got 'modal'",
    ),
    Case(
        "at misspelt var",
        lambda f: Margins(smf.ols("y ~ x + age", f["df"]).fit(), at={"agee": 3}),
        MarginsValueError,
        "at: 'agee' is not a variable of the model's data; did you mean 'age'?",
    ),
    Case(
        "at list",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), at={"x": [1, 2]}),
        MarginsValueError,
        "at: 'x' must be a single value",
    ),
    Case(
        "at bad level",
        lambda f: Margins(smf.ols("y ~ x + C(g)", f["df"]).fit(), at={"g": "d"}),
        MarginsValueError,
        "at: 'd' is not a level of 'g'; its levels are 'a', 'b', 'c'",
    ),
    Case(
        "at NaN",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), at={"x": np.nan}),
        MarginsValueError,
        "at: value for 'x' must be finite",
    ),
    Case(
        "at type",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), at=3),
        MarginsTypeError,
        "at: expected 'overall', 'mean' or a dict",
    ),
    Case(
        "seed negative",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), seed=-1),
        MarginsValueError,
        "seed: must be non-negative",
    ),
    Case(
        "seed type",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), seed="abc"),
        MarginsTypeError,
        "seed: expected an int",
    ),
    Case(
        "weights column",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), weights="wt"),
        MarginsValueError,
        "weights: 'wt' is not a variable",
    ),
    Case(
        "weights length",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), weights=[1.0, 2.0]),
        MarginsValueError,
        "weights: expected 120 values",
    ),
    Case(
        "weights negative",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), weights=-np.ones(120)),
        MarginsValueError,
        "weights: must be finite, non-negative",
    ),
    Case(
        "adapter type",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), adapter="ols"),
        MarginsTypeError,
        "adapter: expected a simmargins adapter",
    ),
    Case(
        "n_boot=1",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), method="bootstrap", n_boot=1),
        MarginsValueError,
        "n_boot: must be at least 2",
    ),
    Case(
        "cluster missing",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), method="bootstrap", cluster="clx"),
        MarginsValueError,
        "cluster: 'clx' is not a variable of the model's data; did you mean 'cl'?",
    ),
    Case(
        "one cluster",
        lambda f: Margins(
            smf.ols("y ~ x", f["df"]).fit(), method="bootstrap", cluster="k", n_boot=5
        ).predict(),
        MarginsValueError,
        "cluster: 'k' has 1 cluster",
    ),
    Case(
        "interval",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), interval="bca"),
        MarginsValueError,
        "interval: got 'bca'",
    ),
    Case(
        "n_jobs=0",
        lambda f: Margins(smf.ols("y ~ x", f["df"]).fit(), n_jobs=0),
        MarginsValueError,
        "n_jobs: expected a non-zero integer",
    ),
    # -- the model ------------------------------------------------------------------------------
    Case(
        "unfitted model",
        lambda f: Margins(smf.ols("y ~ x", f["df"])),
        MarginsTypeError,
        "call .fit() first",
    ),
    Case(
        "unsupported model",
        lambda f: Margins(smf.quantreg("y ~ x", f["df"]).fit()),
        MarginsTypeError,
        "QuantReg models are not supported; supported model classes are BinomialBayesMixedGLM, GEE",
    ),
    Case(
        "not a fit",
        lambda f: Margins(f["df"]),
        MarginsTypeError,
        "fit: expected a fitted statsmodels results object, got DataFrame",
    ),
    Case(
        "array without data",
        lambda f: Margins(_array_fit(f)),
        MarginsValueError,
        "pass the DataFrame it was fitted on as training_data=",
    ),
    Case(
        "array missing column",
        lambda f: StatsmodelsOLSAdapter(_array_fit(f), training_data=f["df"].drop(columns="z")),
        MarginsValueError,
        "training_data: the model's exog columns ['z'] are not columns of training_data",
    ),
    Case(
        "wrong rows",
        lambda f: StatsmodelsOLSAdapter(_array_fit(f), training_data=f["df"].iloc[::-1]),
        MarginsValueError,
        "training_data: these rows are not the rows the OLS was fitted on",
    ),
    Case(
        "NaN in used column",
        _nan_training_data,
        MarginsValueError,
        "training_data: column 'x' has 1 missing or infinite values (first at row 5)",
    ),
    Case(
        "inf in used column",
        _inf_training_data,
        MarginsValueError,
        "training_data: column 'z' has 1 missing or infinite values (first at row 7)",
    ),
    Case(
        "empty data",
        lambda f: StatsmodelsOLSAdapter(_array_fit(f), training_data=f["df"].iloc[:0]),
        MarginsValueError,
        "training_data: training_data has 0 rows but the fit used 120",
    ),
    Case(
        "training_data type",
        lambda f: StatsmodelsOLSAdapter(_array_fit(f), training_data=f["df"].to_numpy()),
        MarginsTypeError,
        "training_data: expected a pandas DataFrame",
    ),
    Case(
        "non-PD covariance",
        lambda f: Margins(
            StatsmodelsOLSAdapter(_NonPD(smf.ols("y ~ x + z", f["df"]).fit())).fit,
            adapter=StatsmodelsOLSAdapter(_NonPD(smf.ols("y ~ x + z", f["df"]).fit())),
            seed=0,
        ).predict(),
        CovarianceWarning,
        "not positive definite",
    ),
    Case("separated logit", _separated, SeparationWarning, "looks perfectly separated"),
    # -- the verbs ------------------------------------------------------------------------------
    Case(
        "dydx misspelt",
        lambda f: _ols(f).dydx("agge"),
        MarginsValueError,
        "dydx: 'agge' is not a variable of the model's data; did you mean 'age'?",
    ),
    Case(
        "dydx type",
        lambda f: _ols(f).dydx(3),
        MarginsTypeError,
        "dydx: variable names must be strings",
    ),
    Case(
        "dydx empty",
        lambda f: _ols(f).dydx([]),
        MarginsValueError,
        "variables: give at least one variable name",
    ),
    Case(
        "dydx constant",
        lambda f: Margins(smf.ols("y ~ x + k - 1", f["df"]).fit(), **S).dydx("k"),
        MarginsValueError,
        "dydx: 'k' takes a single value (1) in every row the fit used",
    ),
    Case(
        "eyex categorical",
        lambda f: _ols(f).dydx("g", slope="eyex"),
        MarginsValueError,
        "slope='eyex' needs a numeric variable, but 'g' is categorical",
    ),
    Case(
        "eyex non-positive",
        lambda f: _ols(f).eyex("x"),
        MarginsValueError,
        "slope='eyex' scales by 'x', which must be positive in every row",
    ),
    Case(
        "slope unknown",
        lambda f: _ols(f).dydx("x", slope="elast"),
        MarginsValueError,
        "slope: got 'elast'",
    ),
    Case(
        "atexog misspelt",
        lambda f: _ols(f).predict(atexog={"zz": [1]}),
        MarginsValueError,
        "atexog: 'zz' is not a variable of the model's data; did you mean 'z'?",
    ),
    Case(
        "atexog level",
        lambda f: _ols(f).predict(atexog={"g": ["a", "e"]}),
        MarginsValueError,
        "atexog: 'e' is not a level of 'g'",
    ),
    Case(
        "atexog string for numeric",
        lambda f: _ols(f).predict(atexog={"age": ["old"]}),
        MarginsTypeError,
        "atexog: 'age' is numeric, so its values must be numbers",
    ),
    Case(
        "atexog inf",
        lambda f: _ols(f).predict(atexog={"x": [np.inf]}),
        MarginsValueError,
        "atexog: value for 'x' must be finite",
    ),
    Case(
        "atexog empty",
        lambda f: _ols(f).predict(atexog={"x": []}),
        MarginsValueError,
        "atexog: no values given for 'x'",
    ),
    Case(
        "by misspelt",
        lambda f: _ols(f).predict(by="gg"),
        MarginsValueError,
        "by: 'gg' is not a variable of the model's data; did you mean 'g'?",
    ),
    Case(
        "contrast shape",
        lambda f: _ols(f).contrasts(scenarios=[{"g": "a"}, {"g": "b"}], contrasts=[[1, -1, 0]]),
        MarginsValueError,
        "contrasts: the weight matrix has shape (1, 3); it needs one column per scenario (2)",
    ),
    Case(
        "contrast scenario level",
        lambda f: _ols(f).contrasts(*pairwise("g", ["a", "q"])),
        MarginsValueError,
        "scenarios: 'q' is not a level of 'g'",
    ),
    Case(
        "scenarios type",
        lambda f: _ols(f).contrasts(scenarios={"g": "a"}, contrasts=[1]),
        MarginsTypeError,
        "scenarios: expected a non-empty list",
    ),
    Case(
        "pairwise levels",
        lambda f: pairwise("g", ["a", "b", "c"]),
        MarginsValueError,
        "levels: pairwise compares exactly two levels",
    ),
    # -- the command line --------------------------------------------------------------------------
    Case(
        "cli unknown key",
        _cli('kind = "ols"', 'kind = "ols"\nfromula = "y ~ x"'),
        CliError,
        "model.fromula: unknown key",
    ),
    Case(
        "cli misspelt column",
        _cli("y ~ x + z", "y ~ xx + z"),
        CliError,
        "'xx' is not a column of the data; did you mean 'x'?",
    ),
    Case("cli bad formula", _cli("y ~ x + z", "y ~ (x + z"), CliError, "does not parse"),
    Case("cli missing data file", _cli('"data.csv"', '"nofile.csv"'), CliError, "nofile.csv"),
    Case(
        "cli wrong type",
        _cli("n_sims = 20", 'n_sims = "many"'),
        CliError,
        "inference.n_sims: expected an integer",
    ),
    Case(
        "cli bad method",
        _cli("n_sims = 20", 'n_sims = 20\nmethod = "bayes"'),
        CliError,
        "inference.method: got 'bayes'",
    ),
    # -- results ----------------------------------------------------------------------------------
    Case(
        "with_level",
        lambda f: _ols(f).dydx("x").with_level(95),
        MarginsValueError,
        "level: must lie strictly between 0 and 1",
    ),
    Case(
        "adjust method",
        lambda f: _ols(f).dydx("x").adjust("holmes"),
        MarginsValueError,
        "method: got 'holmes'",
    ),
    Case(
        "conf_int kind",
        lambda f: _ols(f).dydx("x").conf_int(kind="joint"),
        MarginsValueError,
        "kind: got 'joint'",
    ),
    Case(
        "plot_curve x",
        lambda f: plot_curve(_ols(f).predict(atexog={"x": [0.0, 1.0]}), x="xx"),
        MarginsValueError,
        "did you mean 'x'?",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case, tmp_path):
    frames = _frames()
    before = {
        k: pd.util.hash_pandas_object(v, index=True).to_numpy().copy() for k, v in frames.items()
    }
    copies = {k: v.copy(deep=True) for k, v in frames.items()}
    if case.expect is CliError:
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = case.call(frames, tmp_path)
        lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
        assert status == 2, err.getvalue()
        assert len(lines) == 1 and case.message in lines[0], lines
        assert not (tmp_path / "out").exists()
    elif issubclass(case.expect, Warning):
        with pytest.warns(case.expect, match=re.escape(case.message)):
            case.call(frames)
    else:
        with pytest.raises(case.expect, match=re.escape(case.message)) as info:
            case.call(frames)
        assert isinstance(info.value, (ValueError, TypeError))
    for k, v in frames.items():
        np.testing.assert_array_equal(
            pd.util.hash_pandas_object(v, index=True).to_numpy(), before[k]
        )
        pd.testing.assert_frame_equal(v, copies[k])


FILE_CASES = [
    ("foreign file", _write_foreign, "is a netCDF file but not a simmargins result"),
    ("truncated file", None, "could not be read as netCDF"),
    ("missing file", lambda tmp: str(tmp / "none.nc"), "does not exist or is not a file"),
]


@pytest.mark.parametrize(("name", "make", "message"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_result_files(name, make, message, tmp_path):
    path = _write_truncated(_frames(), tmp_path) if make is None else make(tmp_path)
    with pytest.raises(MarginsValueError, match=re.escape(message)):
        load(path)


def test_battery_is_big_enough():
    assert len(CASES) + len(FILE_CASES) >= 40
