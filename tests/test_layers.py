"""The floor plan of the library, checked on its source (AST, nothing imported):
1. core and the shared contracts (the modules of the notebooks numbered 00...) import only each other;
2. the phases 01-10 import only floor 1: never each other, never floor 3;
3. everything else (pipeline, report, reproduce, cli, retrain and any new module) may import anything."""
import json, re
from pathlib import Path

import pytest

from mlops_nb.deps import module_imports

REPO = Path(__file__).resolve().parents[1]
PHASES = {"ingest", "validate", "wrangle", "split", "train", "evaluate", "acceptance", "package", "serve", "monitor"}
# Imports that break the rule today and move down once the branches that edit those cells have merged (see the issue):
# the feature pipeline (wrangle's feature plan, transformers and make_preprocessor) is a shared contract too.
PENDING = {("train", "wrangle"), ("serve", "wrangle"), ("package", "wrangle")}   # package: the ONNX converters of wrangle's transformers (issue 14)


def floors(lib: Path, notebooks: Path) -> dict[str, int]:
    "Each module's floor: 1 for core and the modules of the notebooks numbered 00..., 2 for a phase, else 3."
    first = {"core"}
    for nb in notebooks.glob("00*.ipynb"):
        for cell in json.loads(nb.read_text())["cells"]:
            if m := re.search(r"^#\|\s*default_exp\s+(\S+)", "".join(cell["source"]), re.M): first.add(m.group(1))
    mods = [p.stem for p in lib.glob("*.py") if not p.stem.startswith("_")]
    return {m: 1 if m in first else 2 if m in PHASES else 3 for m in mods}


def violations(lib: Path, notebooks: Path) -> set[tuple[str, str]]:
    "The (importer, imported) pairs that break the floor plan."
    fl, out = floors(lib, notebooks), set()
    for m, f in fl.items():
        for d in module_imports((lib/f"{m}.py").read_text()) & set(fl) - {m}:
            if (f == 1 and fl[d] > 1) or (f == 2 and fl[d] > 1): out.add((m, d))
    return out


def test_floors_are_what_the_design_says():
    fl = floors(REPO/"mlops_nb", REPO/"notebooks")
    assert {m for m, f in fl.items() if f == 1} >= {"core", "contracts", "logstore"}
    assert {m for m, f in fl.items() if f == 2} == PHASES
    assert {"pipeline", "report", "reproduce", "cli", "params", "retrain", "deps"} <= {m for m, f in fl.items() if f == 3}


def test_the_library_keeps_the_floor_plan():
    found = violations(REPO/"mlops_nb", REPO/"notebooks")
    new = sorted(found - PENDING)
    assert not new, ("these imports break the floor plan (a phase imports only core and the shared contracts, "
                     f"notebooks 00...; move what both need down to a contract module): {new}")
    gone = sorted(PENDING - found)
    assert not gone, f"fixed, so take them out of PENDING in tests/test_layers.py: {gone}"


def test_no_phase_runs_the_pipeline():
    for m in PHASES:
        assert not module_imports((REPO/"mlops_nb"/f"{m}.py").read_text()) & {"pipeline", "retrain", "cli", "report"}, m


@pytest.mark.parametrize("source, bad", [
    ("from .split import split_frame\n", {("train", "split")}),                  # a phase into another phase
    ("def f():\n    from mlops_nb.pipeline import run_pipeline\n", {("train", "pipeline")}),   # lazily, into floor 3
    ("from mlops_nb import retrain\n", {("train", "retrain")}),                  # a new module: floor 3 by default
    ("from .contracts import score\nfrom .core import read_json\n", set()),     # the floor below: fine
])
def test_the_check_catches_a_phase_importing_above_floor_1(tmp_path, source, bad):
    lib, nbs = tmp_path/"mlops_nb", tmp_path/"notebooks"
    lib.mkdir(); nbs.mkdir()
    for m in ("core", "contracts", "split", "pipeline", "retrain"): (lib/f"{m}.py").write_text("")
    (lib/"train.py").write_text(source)
    (nbs/"00a_contracts.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["#| default_exp contracts"]}]}))
    assert violations(lib, nbs) == bad
    (lib/"contracts.py").write_text("from .split import x\n")                  # floor 1 reaching up is caught too
    assert ("contracts", "split") in violations(lib, nbs)
