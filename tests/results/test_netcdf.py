"""netCDF round trips, arviz export and refusal of files that are not ours."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

from simmargins import Margins, MarginsValueError, load, reference


@pytest.fixture(scope="module")
def results(lmm_ri):
    m = Margins.linear_scale(lmm_ri, seed=17, n_sims=300)
    scen, W = reference("school", ["A", "B", "C", "D"])
    return {
        "grid": m.predict(atexog={"age": [20, 50], "school": ["A", "C"], "female": [0, 1]}),
        "dydx": m.dydx(["age", "school"]),
        "contrast": m.contrasts(scenarios=scen, contrasts=W).adjust("holm"),
    }


@pytest.mark.parametrize("name", ["grid", "dydx", "contrast"])
def test_netcdf_round_trip_is_exact(results, name, tmp_path):
    res = results[name]
    path = res.to_netcdf(tmp_path / "r.nc")
    back = load(path)
    a, b = res.to_dataset(), back.to_dataset()
    assert set(a.variables) == set(b.variables)
    for v in a.variables:
        np.testing.assert_array_equal(a[v].to_numpy(), b[v].to_numpy(), err_msg=v)
        assert a[v].dims == b[v].dims
    assert a.attrs == b.attrs
    for key in (
        "method",
        "level",
        "seed",
        "n_sims",
        "model_class",
        "formula",
        "versions",
        "data_fingerprint",
    ):
        assert key in b.attrs
    assert back.summary() == res.summary()
    assert back.to_frame().equals(res.to_frame())
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_loaded_result_changes_level_without_the_model(results, tmp_path):
    res = results["grid"]
    back = load(res.to_netcdf(tmp_path / "g.nc")).with_level(0.8)
    np.testing.assert_array_equal(back.conf_int(), res.with_level(0.8).conf_int())
    assert "level=0.8" in back.summary()
    assert back.to_frame()["school"].tolist() == res.to_frame()["school"].tolist()


def test_refuses_foreign_and_truncated_files(results, tmp_path):
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"x": ("t", [1.0, 2.0])}).to_netcdf(foreign)
    with pytest.raises(MarginsValueError, match="is a netCDF file but not a simmargins result"):
        load(foreign)
    good = results["dydx"].to_netcdf(tmp_path / "good.nc")
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(MarginsValueError, match="could not be read as netCDF"):
        load(truncated)
    with pytest.raises(MarginsValueError, match=re.escape("does not exist or is not a file")):
        load(tmp_path / "nope.nc")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(MarginsValueError, match="could not be read"):
        load(text)
    with pytest.raises(MarginsValueError, match="does not exist"):
        results["dydx"].to_netcdf(tmp_path / "missing_dir" / "x.nc")


def test_to_inference_data(results):
    import arviz as az

    res = results["dydx"]
    idata = res.to_inference_data()
    post = idata.posterior["dydx"]
    assert post.sizes == {"chain": 1, "draw": res.n_draws, "label": len(res.labels)}
    np.testing.assert_array_equal(post.to_numpy()[0], res.draws.to_numpy())
    summ = az.summary(idata, kind="stats", hdi_prob=0.9, round_to="none")
    np.testing.assert_allclose(summ["sd"].to_numpy(), res.draws_std_err, rtol=2e-3)
