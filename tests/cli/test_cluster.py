"""Batch runs as Dask tasks (``simmargins run --scheduler``) on a 2-worker LocalCluster.

Every number is checked against another route: the serial run of the same spec (a
separate code path: no Dask, the client writes as it computes), statsmodels' own
marginal effects, and the margins.csv files read back one by one.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from simmargins import sleepstudy_data

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

from simmargins.cli.cluster import run_batch  # noqa: E402
from simmargins.cli.command import main  # noqa: E402
from simmargins.cli.spec import SpecError  # noqa: E402

SPEC = """\
data = "north/site1.csv"
[output]
plots = false
[model]
kind = "logit"
formula = "y ~ age + t + C(g)"
[inference]
n_sims = 200
seed = 3
[[quantity]]
name = "slopes"
kind = "dydx"
variables = ["age", "g"]
[[quantity]]
name = "arms"
kind = "predict"
atexog = { t = [0, 1] }
"""
# two analyses: a bootstrap slow enough (~2 s) to be killed mid-run, and a quick OLS
SLOW_SPEC = """\
data = "sleep.csv"
[output]
plots = false
[inference]
seed = 2
[[analysis]]
name = "slow"
model = { kind = "mixedlm", formula = "Reaction ~ Days", groups = "Subject", re_formula = "~Days" }
inference = { method = "bootstrap", n_boot = 200, seed = 2 }
quantity = [{ kind = "dydx", variables = "Days" }]
[[analysis]]
name = "quick"
model = { kind = "ols", formula = "Reaction ~ Days" }
inference = { n_sims = 100, seed = 2 }
quantity = [{ kind = "dydx", variables = "Days" }]
"""
FILES = ("north/site1.csv", "south/site1.csv", "south/site2.csv")


def make_frame(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 200
    df = pd.DataFrame(
        {
            "age": rng.integers(20, 70, n),
            "t": rng.integers(0, 2, n),
            "g": rng.choice(list("abc"), n),
        }
    )
    eta = -2 + 0.04 * df["age"] + 0.5 * df["t"] + 0.4 * (df["g"] == "b")
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return df


@pytest.fixture(scope="module")
def cluster():
    # one retry after a worker dies, so that both outcomes (retried, reported) are cheap
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as lc:
            yield lc


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    root = tmp_path_factory.mktemp("sites")
    for i, rel in enumerate(FILES):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        make_frame(i).to_csv(root / rel, index=False)
    (root / "spec.toml").write_text(SPEC)
    return root


@pytest.fixture(scope="module")
def serial_and_cluster(sites, cluster):
    pattern = str(sites / "*" / "site*.csv")
    serial = run_batch(sites / "spec.toml", [pattern], out=sites / "serial")
    dask = run_batch(
        sites / "spec.toml", [pattern], out=sites / "dask", scheduler=cluster.scheduler_address
    )
    return serial, dask


def margins_files(root: Path) -> dict[str, pd.DataFrame]:
    return {
        p.relative_to(root).as_posix(): pd.read_csv(p) for p in sorted(root.rglob("margins.csv"))
    }


def no_leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".partial" in p.name or ".old-" in p.name]


def test_cluster_run_equals_serial_run(serial_and_cluster, sites):
    serial, dask = serial_and_cluster
    assert dask.failures == [] and serial.failures == []
    want, got = margins_files(serial.out), margins_files(dask.out)
    assert sorted(got) == sorted(want) and len(got) == 2 * len(FILES)
    for name, frame in want.items():
        numeric = frame.select_dtypes("number").columns
        pd.testing.assert_frame_equal(got[name].drop(columns=numeric), frame.drop(columns=numeric))
        np.testing.assert_allclose(got[name][numeric], frame[numeric], rtol=1e-12, atol=1e-12)
    # and the numbers are statsmodels' AME of age, file by file
    for i, rel in enumerate(FILES):
        fit = smf.logit("y ~ age + t + C(g)", make_frame(i)).fit(disp=0)
        ame = fit.get_margeff(at="overall").margeff[fit.model.exog_names.index("age") - 1]
        folder = rel.rsplit(".", 1)[0]
        slopes = got[f"{folder}/main/slopes/margins.csv"]
        np.testing.assert_allclose(slopes.loc[slopes.label == "age", "estimate"], ame, rtol=1e-7)
    assert no_leftovers(sites) == []


def test_combined_table_stacks_every_margins_csv(serial_and_cluster):
    serial, dask = serial_and_cluster
    combined = pd.read_csv(dask.out / "combined.csv")
    assert list(combined.columns[:3]) == ["file", "analysis", "quantity"]
    parts = []
    for rel in FILES:
        for q in ("slopes", "arms"):
            frame = pd.read_csv(dask.out / rel.rsplit(".", 1)[0] / "main" / q / "margins.csv")
            parts.append(frame.assign(file=rel, analysis="main", quantity=q))
    want = pd.concat(parts, ignore_index=True)[combined.columns]
    pd.testing.assert_frame_equal(combined, want)
    pd.testing.assert_frame_equal(combined, pd.read_csv(serial.out / "combined.csv"))


def test_same_name_in_two_folders_gets_distinct_keys(serial_and_cluster):
    _, dask = serial_and_cluster
    assert [o.job.data_key for o in dask.outcomes] == list(FILES)
    index = (dask.out / "report.md").read_text()
    assert "| main | north/site1.csv |" in index and "| main | south/site1.csv |" in index
    assert "(north/site1/main/report.md)" in index and "(south/site1/main/report.md)" in index


def test_a_failing_task_is_reported_and_the_others_written(sites, cluster, capsys):
    bad = sites / "bad" / "site9.csv"
    bad.parent.mkdir(exist_ok=True)
    make_frame(9).drop(columns="age").to_csv(bad, index=False)
    good = sites / "north" / "site1.csv"
    with pytest.raises(SpecError) as serial:  # the serial run's message for the bad file
        run_batch(sites / "spec.toml", [str(bad)], out=sites / "never")
    out = sites / "mixed"
    argv = ["run", str(sites / "spec.toml"), "--data", str(good), str(bad), "--out", str(out)]
    code = main([*argv, "--scheduler", cluster.scheduler_address])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[0] == f"simmargins: error: {serial.value}"
    assert "bad/site9.csv" in err[0] and "'age' is not a column" in err[0]
    assert err[1].startswith("simmargins: error: 1 of 2 tasks failed")
    assert (out / "north" / "site1" / "main" / "slopes" / "margins.csv").is_file()
    assert not (out / "bad").exists()
    assert str(serial.value) in (out / "report.md").read_text()
    assert pd.read_csv(out / "combined.csv")["file"].unique().tolist() == ["north/site1.csv"]
    assert not (sites / "never").exists() and no_leftovers(sites) == []


def _kill_when_processing(cluster, fragment: str, times: int, done: list[str]) -> None:
    """SIGKILL the worker the task whose key holds ``fragment`` is on, ``times`` times."""
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        for _ in range(times):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                on = [
                    w
                    for w, keys in client.processing().items()
                    if any(fragment in str(k) for k in keys)
                ]
                if on:
                    break
                time.sleep(0.02)
            else:
                return
            time.sleep(0.3)  # the task has started (or sits in that worker's queue)
            pid = client.run(os.getpid, workers=on)[on[0]]
            os.kill(pid, signal.SIGKILL)
            done.append(on[0])
            while on[0] in client.scheduler_info()["workers"]:
                time.sleep(0.02)  # until the scheduler has seen it die


@pytest.mark.parametrize("kills", [1, 2])
def test_a_killed_worker_is_retried_or_reported(tmp_path, cluster, kills):
    sleepstudy_data().to_csv(tmp_path / "sleep.csv", index=False)
    (tmp_path / "spec.toml").write_text(SLOW_SPEC)
    killed: list[str] = []
    killer = threading.Thread(target=_kill_when_processing, args=(cluster, ":slow", kills, killed))
    killer.start()
    run = run_batch(
        tmp_path / "spec.toml", out=tmp_path / "out", scheduler=cluster.scheduler_address
    )
    killer.join()
    assert len(killed) == kills
    quick = tmp_path / "out" / "quick" / "dydx" / "margins.csv"
    ols = smf.ols("Reaction ~ Days", sleepstudy_data()).fit()
    np.testing.assert_allclose(pd.read_csv(quick)["estimate"], ols.params["Days"], rtol=1e-10)
    if kills == 1:  # retried on the other worker: the same answer as a serial run
        assert run.failures == []
        serial = run_batch(tmp_path / "spec.toml", out=tmp_path / "serial")
        rel = Path("slow") / "dydx" / "margins.csv"
        pd.testing.assert_frame_equal(pd.read_csv(run.out / rel), pd.read_csv(serial.out / rel))
    else:  # allowed-failures = 1: the second death is reported, the other task is written
        assert [f.job.analysis.name for f in run.failures] == ["slow"]
        assert "KilledWorker" in run.failures[0].message
        assert not (tmp_path / "out" / "slow").exists()
        assert "## Failed tasks" in (tmp_path / "out" / "report.md").read_text()
    assert no_leftovers(tmp_path) == []


def test_bad_scheduler_and_no_matching_files_are_one_line_errors(sites, capsys):
    spec = str(sites / "spec.toml")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(["run", spec, "--data", str(sites / "north" / "site1.csv"),
                     "--out", str(sites / "x"), "--scheduler", "tcp://127.0.0.1:9"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(
        "simmargins: error: --scheduler: cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'"
    )
    code = main(["run", spec, "--data", str(sites / "*.parquet"), "--out", str(sites / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    pattern = str(sites / "*.parquet")
    want = f"simmargins: error: --data: no file matches {pattern!r} (in {os.getcwd()!r})"
    assert code == 2 and err == [want]
    assert not (sites / "x").exists()
