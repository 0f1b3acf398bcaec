"""Output folders that appear whole or not at all, and are replaced only on request.

The command line writes every result into a hidden folder beside the destination and
renames it into place when the run is complete: a reader never sees a half-written
folder, and a failed or interrupted run leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType


class OutputExists(Exception):
    """The destination exists (and ``--force`` was not given), or must not be replaced."""


class OutputFolder:
    """Write into a hidden folder beside ``target``; rename it into place on success.

    ``with OutputFolder(target, force) as tmp:`` yields the temporary folder. On a clean
    exit it replaces ``target`` (which must not exist unless ``force``); on an exception,
    KeyboardInterrupt included, it is deleted and ``target`` is left as it was.
    ``protect`` lists the run's inputs: a folder holding one of them is never replaced.
    """

    def __init__(self, target: Path, force: bool, protect: Sequence[Path] = ()) -> None:
        self.given = str(target)
        self.target = Path(os.path.abspath(target))
        self.force = force
        self.protect = [Path(os.path.abspath(p)) for p in protect]
        self.tmp: Path | None = None

    def check(self) -> None:
        t = self.target
        if not (t.exists() or t.is_symlink()):
            return
        if not t.is_dir():
            raise OutputExists(
                f"output {self.given!r} exists and is not a folder; choose another --out"
            )
        if not self.force:
            raise OutputExists(
                f"output folder {self.given!r} already exists; pass --force to replace it, "
                "or choose another --out"
            )
        real = t.resolve()
        for p in [*self.protect, Path.cwd()]:
            if p.resolve().is_relative_to(real):
                raise OutputExists(
                    f"refusing to replace output folder {self.given!r}: it holds {str(p)!r}, "
                    "which this run reads or runs in; choose another --out"
                )

    def __enter__(self) -> Path:
        self.check()
        self.target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(
            tempfile.mkdtemp(
                prefix=f".{self.target.name}.", suffix=".partial", dir=self.target.parent
            )
        )
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp's 0700 would make the results private
        self.tmp = tmp
        return tmp

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.tmp is not None
        try:
            if exc_type is None:
                self._commit(self.tmp)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _commit(self, tmp: Path) -> None:
        t = self.target
        if not (t.exists() or t.is_symlink()):
            os.replace(tmp, t)
            return
        self.check()  # it may have appeared while we ran
        old = t.parent / f".{t.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(t, old)
        try:
            os.replace(tmp, t)
        except BaseException:
            os.replace(old, t)
            raise
        shutil.rmtree(old, ignore_errors=True)
