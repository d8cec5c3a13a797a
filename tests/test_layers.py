"""The floor plan of the library, checked on its source (AST, nothing imported):
1. core and the shared contracts (the modules of the notebooks numbered 00...) import only each other;
2. the phases 01-10 import only floor 1: never each other, never floor 3;
3. everything else (pipeline, report, reproduce, cli, retrain and any new module) may import anything."""
import ast, json, re
from pathlib import Path

import pytest

from mlops_nb.deps import module_imports

REPO = Path(__file__).resolve().parents[1]
PHASES = {"ingest", "validate", "wrangle", "split", "train", "evaluate", "acceptance", "package", "serve", "monitor"}
PENDING: set[tuple[str, str]] = set()   # imports that break the rule, waiting for a branch to move them down


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


# Rooms a reader can hold in mind: modules up to 400 lines, functions up to 50, lines up to 120 characters (the
# library's generated _modidx.py aside). The rooms still too big are listed with their size today, as ceilings: a
# listed one may shrink (take it out once it fits), never grow, and no new one joins the list.
MODULE_LINES, FUNCTION_LINES, LINE_CHARS = 400, 50, 120
BIG_MODULES = {}
LONG_FUNCTIONS = {}


def sizes(lib: Path) -> tuple[dict, dict, int, int]:
    "Lines per module, the longest definition of each module.function name, library lines, lines over LINE_CHARS."
    mods, funcs, total, wide = {}, {}, 0, 0
    for p in sorted(lib.glob("*.py")):
        if p.stem.startswith("_"): continue
        src = p.read_text(); lines = src.splitlines()
        mods[p.stem], total, wide = len(lines), total + len(lines), wide + sum(len(l) > LINE_CHARS for l in lines)
        for n in ast.walk(ast.parse(src)):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                k = f"{p.stem}.{n.name}"
                funcs[k] = max(funcs.get(k, 0), n.end_lineno - n.lineno + 1)
    return mods, funcs, total, wide


def over(found: dict, limit: int, ceilings: dict) -> list[str]:
    "What breaks the limit: new rooms over it, listed rooms that grew, and listed rooms that now fit (to take out)."
    out = [f"{k}: {v} lines (limit {limit})" for k, v in found.items() if v > limit and k not in ceilings]
    out += [f"{k}: grew to {found[k]} lines (ceiling {c})" for k, c in ceilings.items() if found.get(k, 0) > c]
    out += [f"{k}: fits now ({found.get(k, 0)} lines): take it out of the list" for k, c in ceilings.items()
            if found.get(k, 0) <= limit]
    return out


def test_rooms_stay_small_and_lines_narrow():
    mods, funcs, total, wide = sizes(REPO/"mlops_nb")
    assert wide / total < 0.02, f"{wide} of {total} library lines are over {LINE_CHARS} characters (at most 2%)"
    problems = over(mods, MODULE_LINES, BIG_MODULES) + over(funcs, FUNCTION_LINES, LONG_FUNCTIONS)
    assert not problems, "\n".join(problems)


def test_the_size_check_catches_a_room_that_grows(tmp_path):
    (tmp_path/"a.py").write_text("def f():\n" + "    x = 1\n" * 60 + "\n" + "y = 2\n" * 400)
    mods, funcs, total, wide = sizes(tmp_path)
    assert mods == {"a": 462} and funcs == {"a.f": 61} and wide == 0
    assert over(funcs, 50, {}) == ["a.f: 61 lines (limit 50)"]
    assert over(funcs, 50, {"a.f": 55}) == ["a.f: grew to 61 lines (ceiling 55)"]
    assert over({"a.f": 20}, 50, {"a.f": 55}) == ["a.f: fits now (20 lines): take it out of the list"]


def test_notify_keeps_the_declared_defaults():
    "notify sits on floor 1 and cannot read params' declarations, so its defaults are checked against them here."
    from mlops_nb.notify import NOTIFY_DEFAULTS
    from mlops_nb.project import command_defaults
    assert NOTIFY_DEFAULTS == command_defaults("notify")
