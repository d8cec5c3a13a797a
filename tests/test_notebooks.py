"""Notebooks are the source: they are clean, the library is in sync with them, and they run top to bottom under nbval."""
import filecmp, shutil
from pathlib import Path

import pytest

from conftest import REPO, copy_project, run, tool


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    return copy_project(tmp_path_factory.mktemp("nbproject"))


def _changed(a: Path, b: Path, pattern: str) -> list[str]:
    return [p.name for p in sorted(a.glob(pattern)) if not filecmp.cmp(p, b/p.name, shallow=False)]


def test_notebooks_are_clean(fresh):
    before = fresh/"_before"; shutil.copytree(fresh/"notebooks", before)
    run([tool("nbdev-clean")], fresh)
    assert _changed(before, fresh/"notebooks", "*.ipynb") == [], "run nbdev-clean and commit"


def test_nbdev_export_leaves_no_diff(fresh):
    before = fresh/"_lib"; shutil.copytree(fresh/"mlops_nb", before)
    run([tool("nbdev-export")], fresh)
    assert _changed(before, fresh/"mlops_nb", "*.py") == [], "run nbdev-export and commit"
    assert sorted(p.name for p in (fresh/"mlops_nb").glob("*.py")) == sorted(p.name for p in before.glob("*.py"))


def test_every_phase_notebook_has_a_parameters_cell():
    import nbformat
    for nb in sorted((REPO/"notebooks").glob("[0-9][0-9]*_*.ipynb")):
        cells = nbformat.read(nb, as_version=4).cells
        assert any("parameters" in c.metadata.get("tags", []) for c in cells), nb.name


def test_notebooks_run_top_to_bottom_under_nbval(fresh):
    # In order, each notebook's Run section makes the next one's inputs: this is also the pipeline, run by hand.
    r = run([tool("python"), "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "notebooks/"], fresh,
            timeout=1200, check=False)
    assert r.returncode == 0, r.stdout[-6000:]
    assert " passed" in r.stdout and " failed" not in r.stdout
