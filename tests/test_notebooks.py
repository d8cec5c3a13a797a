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


def test_every_phase_notebook_has_a_typed_parameters_cell():
    "The parameters cells are the one typed definition: every parameter has a type, and step parameters a description."
    from mlops_nb.params import STEP_NOTEBOOKS, notebook_spec
    shared = set(__import__("yaml").safe_load((REPO/"params.yaml").read_text())["paths"])
    for nb in STEP_NOTEBOOKS.values():
        spec = notebook_spec(REPO/"notebooks"/f"{nb}.ipynb")
        assert spec, f"{nb}.ipynb has no cell tagged parameters"
        untyped = [n for n, p in spec.items() if not p.type]
        assert not untyped, f"{nb}.ipynb: parameters without a type annotation: {untyped}"
        undocumented = [n for n, p in spec.items() if not p.help and n not in shared]
        assert not undocumented, f"{nb}.ipynb: parameters without a `# description`: {undocumented}"


def test_step_sources_that_dvc_tracks_are_in_sync(fresh):
    "DVC stages depend on .mlops-nb/sources/*.py (notebook sources without outputs); they match the notebooks."
    from mlops_nb.pipeline import write_sources
    assert write_sources(fresh) == [], "run `mlops-nb run` (it rewrites .mlops-nb/sources) and commit"


def test_notebooks_run_top_to_bottom_under_nbval(fresh):
    # In order, each notebook's Run section makes the next one's inputs: this is also the pipeline, run by hand.
    r = run([tool("python"), "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "notebooks/"], fresh,
            timeout=1200, check=False)
    assert r.returncode == 0, r.stdout[-6000:]
    assert " passed" in r.stdout and " failed" not in r.stdout
