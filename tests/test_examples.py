"""The example script runs end to end and writes its plots; import stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_linear_mixed_effects_example(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "linear_mixed_effects.py"), str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Margins Result (simulation, level=0.95)" in proc.stdout
    assert "treated=1 - treated=0" in proc.stdout
    for name in (
        "age_by_sex.png",
        "school_contrasts.png",
        "curve_age_by_sex.png",
        "forest_school_contrasts.png",
        "dist_school_contrasts.png",
    ):
        png = out / name
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_import_is_light():
    # numba compiles lazily and scipy.stats is never needed: keeps `import simmargins` < 1 s
    code = "import sys, simmargins; print('numba' in sys.modules, 'scipy.stats' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["False", "False"]
