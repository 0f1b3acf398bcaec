"""The docs show real output: every page's code runs and prints what its output blocks hold.

``docs/scripts/regenerate.py`` holds the machinery and its convention (a ```python block
runs; the ```text block right after it is its output; ``<!-- no-run -->`` above a block
skips it). When a page fails here, rerun ``python docs/scripts/regenerate.py`` and review
the diff before committing it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))


def _load_regenerate():
    spec = importlib.util.spec_from_file_location(
        "docs_regenerate", ROOT / "docs" / "scripts" / "regenerate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


regen = _load_regenerate()


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_docs_page_output_is_current(page):
    res = regen.check_page(page)
    assert not res.changed, (
        f"{page.name}: the output blocks differ from what the code prints now; run "
        f"`python docs/scripts/regenerate.py {page.relative_to(ROOT)}` and review:\n{res.diff()}"
    )


# -- the machinery, on small pages -------------------------------------------------------------
PAGE = """\
# A page

```python
x = 6 * 7
print(x)
```

```text
stale
```

Prose.

```python
y = x + 1     # same namespace as the block above
print(f"{y}   ")
print()
```

<!-- no-run -->
```python
raise SystemExit("never run")
```

```text
left alone
```

```bash
echo not python
```

```python
z = 0         # prints nothing
```

```text
should go
```
"""


def _run(tmp_path: Path, text: str):
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    (tmp_path / "images").mkdir(exist_ok=True)
    return regen.run_page(page, tmp_path)


def test_outputs_are_replaced_added_and_removed(tmp_path):
    res = _run(tmp_path, PAGE)
    assert res.ran == 3
    new = res.new
    assert "```text\n42\n```" in new and "stale" not in new
    # added after the second block, trailing spaces and blank lines dropped
    assert "print()\n```\n\n```text\n43\n```\n\n<!-- no-run -->" in new
    assert "left alone" in new and "echo not python" in new
    assert "should go" not in new and new.endswith("z = 0         # prints nothing\n```\n")
    # a second pass changes nothing: the rewrite is a fixed point
    again = _run(tmp_path, new)
    assert not again.changed, again.diff()


def test_check_reports_a_diff(tmp_path):
    res = _run(tmp_path, PAGE)
    assert res.changed
    assert "-stale" in res.diff() and "+42" in res.diff()


def test_a_raising_block_names_the_page_line(tmp_path):
    text = "Intro\n\n```python\nx = 1\n1 / 0\n```\n"
    with pytest.raises(regen.DocsError, match=r"page\.md:3: the code block raised ZeroDivision"):
        _run(tmp_path, text)
    try:
        _run(tmp_path, text)
    except regen.DocsError as exc:
        assert 'page.md", line 5' in str(exc)  # the traceback points into the page


def test_an_unclosed_fence_is_an_error(tmp_path):
    with pytest.raises(regen.DocsError, match="never closed"):
        _run(tmp_path, "```python\nprint(1)\n")


def test_code_runs_in_the_given_folder(tmp_path):
    text = '```python\nopen("images/x.txt", "w").write("hi")\nprint("done")\n```\n'
    res = _run(tmp_path, text)
    assert (tmp_path / "images" / "x.txt").read_text() == "hi"
    assert res.new.endswith("```text\ndone\n```\n")
