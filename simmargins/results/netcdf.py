"""Keep results: write a MarginsResult's Dataset to netCDF atomically and read it back.

netCDF attributes hold scalars and strings only, so list- or dict-valued provenance
(e.g. the grid columns) travels as JSON under ``simmargins_json_attrs``. A format marker
lets :func:`load` refuse files that other programs wrote.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._errors import MarginsTypeError, MarginsValueError

FORMAT_KEY = "simmargins_format"
FORMAT_VERSION = 1
_JSON_KEY = "simmargins_json_attrs"
REQUIRED = ("estimate", "delta_std_err", "kappa", "draws", "gradient", "coef_cov")


def _encode_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    packed: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, (bool, np.bool_)):
            packed[key] = bool(value)  # netCDF has no boolean attribute type
        elif isinstance(value, (str, int, float, np.integer, np.floating)):
            plain[key] = value
        else:
            packed[key] = value
    plain[_JSON_KEY] = json.dumps(packed, default=str)
    plain[FORMAT_KEY] = FORMAT_VERSION
    return plain


def _decode_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    out = {
        k: (v.item() if isinstance(v, np.generic) else v)
        for k, v in attrs.items()
        if k not in (_JSON_KEY, FORMAT_KEY)
    }
    out.update(json.loads(attrs.get(_JSON_KEY, "{}")))
    return out


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``ds`` to ``path`` through a temporary file in the same folder, then rename.

    A reader never sees a half-written file, and an interrupted write leaves none behind.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise MarginsTypeError(f"path: expected a file path, got {type(path).__name__}")
    target = Path(path)
    if not target.parent.exists():
        raise MarginsValueError(f"path: folder {str(target.parent)!r} does not exist")
    out = ds.copy()
    out.attrs = _encode_attrs(dict(ds.attrs))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        out.to_netcdf(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_netcdf(path: str | os.PathLike[str]) -> xr.Dataset:
    """Read a result Dataset, refusing truncated files and files from other programs."""
    if not isinstance(path, (str, os.PathLike)):
        raise MarginsTypeError(f"path: expected a file path, got {type(path).__name__}")
    p = Path(path)
    if not p.is_file():
        raise MarginsValueError(f"path: {str(p)!r} does not exist or is not a file")
    try:
        ds = xr.load_dataset(p)
    except Exception as exc:  # engines raise OSError, ValueError, KeyError, ... on bad files
        raise MarginsValueError(
            f"path: {str(p)!r} could not be read as netCDF ({type(exc).__name__}: {exc}); "
            "the file may be truncated or not a netCDF file"
        ) from exc
    if ds.attrs.get(FORMAT_KEY) != FORMAT_VERSION:
        raise MarginsValueError(
            f"path: {str(p)!r} is a netCDF file but not a simmargins result "
            f"(no {FORMAT_KEY}={FORMAT_VERSION} attribute); write results with "
            "MarginsResult.to_netcdf"
        )
    missing = [v for v in REQUIRED if v not in ds]
    if missing:
        raise MarginsValueError(f"path: {str(p)!r} lacks the result variables {missing}")
    ds.attrs = _decode_attrs(dict(ds.attrs))
    return ds
