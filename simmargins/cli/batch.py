"""Batch reanalysis over many data files: which files, their keys, and the combined table.

``--data`` takes files and quoted glob patterns (``--data 'sites/*.csv'``). Each file gets
a key that is unique and readable — its path relative to the folder the files have in
common (``north/site1.csv``, ``south/site1.csv``) — which names its output folder, its row
of the index and its rows of ``combined.csv``: every quantity's ``margins.csv`` of every
file and analysis stacked under the columns ``file``, ``analysis`` and ``quantity``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .spec import SpecError

if TYPE_CHECKING:
    import pandas as pd

    from .jobs import Outcome

COMBINED = "combined.csv"
_MAGIC = frozenset("*?[")


@dataclass(frozen=True)
class DataFile:
    """A data file of a batch: its absolute ``path``, the ``key`` that names it in tables
    (its path relative to the files' common folder) and its output ``folder``."""

    path: Path
    given: str
    key: str
    folder: str


def expand_data(args: Sequence[str]) -> list[str]:
    """``--data`` arguments with glob patterns expanded (sorted); literal files kept as given.

    Parameters
    ----------
    args : sequence of str
        Files and patterns (``*``, ``?``, ``[...]``; ``**`` crosses folders).

    Returns
    -------
    list of str
        The files, in the order given, each pattern's matches sorted.

    Raises
    ------
    SpecError
        A pattern that matches no file (``--data: no file matches 'x*.csv'``).

    Examples
    --------
    >>> expand_data(["no/such/file.csv"])  # a literal path is kept (checked later)
    ['no/such/file.csv']
    """
    files: list[str] = []
    for arg in args:
        if not (_MAGIC & set(arg)) or os.path.exists(arg):
            files.append(arg)
            continue
        matches = sorted(m for m in glob.glob(arg, recursive=True) if os.path.isfile(m))
        if not matches:
            raise SpecError("--data", f"no file matches {arg!r} (in {os.getcwd()!r})")
        files += matches
    return files


def data_files(given: Sequence[str]) -> list[DataFile]:
    """Each file's unique key (its path relative to the common folder) and output folder.

    The folder is the key without its data suffixes (``north/site1``) unless two files
    differ only by suffix (then the key itself); a file given twice is numbered.

    Examples
    --------
    >>> [(f.key, f.folder) for f in data_files(["a/site1.csv", "b/site1.csv", "b/x.csv.gz"])]
    [('a/site1.csv', 'a/site1'), ('b/site1.csv', 'b/site1'), ('b/x.csv.gz', 'b/x')]
    """
    paths = [Path(os.path.abspath(f)) for f in given]
    if not paths:
        return []
    common = Path(os.path.commonpath([p.parent for p in paths]))
    keys = [p.relative_to(common).as_posix() for p in paths]
    stems = [_stem(k, p) for k, p in zip(keys, paths, strict=True)]
    out: list[DataFile] = []
    used_keys: set[str] = set()
    used_folders: set[str] = set()
    for path, f, key, stem in zip(paths, given, keys, stems, strict=True):
        folder = stem if stems.count(stem) == 1 or keys.count(key) > 1 else key
        key, folder = _numbered(key, used_keys, " #"), _numbered(folder, used_folders, "-")
        out.append(DataFile(path, f, key, folder))
    return out


def _stem(key: str, path: Path) -> str:
    """The key without the file's suffixes: ``north/site1.csv.gz`` → ``north/site1``."""
    parent = key.rpartition("/")[0]
    stem = path.name.split(".")[0] or "data"
    return f"{parent}/{stem}" if parent else stem


def _numbered(name: str, used: set[str], sep: str) -> str:
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}{sep}{n}"
    used.add(candidate)
    return candidate


def combined_table(root: Path, outcomes: Sequence[Outcome]) -> pd.DataFrame:
    """Every quantity's ``margins.csv`` under ``root``, stacked in the order of the jobs.

    Parameters
    ----------
    root : Path
        The run's output folder (holding ``<job folder>/<quantity>/margins.csv``).
    outcomes : sequence of Outcome
        The jobs that succeeded, in the order of the jobs.

    Returns
    -------
    pandas.DataFrame
        ``file`` (the data file's key), ``analysis`` and ``quantity``, then the union of the
        tables' columns in order of appearance (empty where a table has no such column).
    """
    import pandas as pd

    parts = []
    for o in outcomes:
        for name in o.results:
            frame = pd.read_csv(root / o.job.folder / name / "margins.csv")
            head = {"file": o.job.data_key, "analysis": o.job.analysis.name, "quantity": name}
            parts.append(frame.assign(**head)[[*head, *frame.columns]])
    if not parts:
        return pd.DataFrame(columns=["file", "analysis", "quantity"])
    return pd.concat(parts, ignore_index=True, sort=False)


def write_combined(root: Path, outcomes: Sequence[Outcome]) -> Path:
    """Write :func:`combined_table` to ``root / 'combined.csv'`` and return its path."""
    path = root / COMBINED
    combined_table(root, outcomes).to_csv(path, index=False)
    return path
