"""Repeating and reproducing runs: a no-op re-run is quick and runs nothing; saving a notebook's outputs
re-runs nothing; a source or parameter change re-runs that stage and those after it only; a model
reproduces from its recorded recipe with identical metrics; a step's inputs load for debugging."""
import json, subprocess, time
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import copy_finished, run, tool

STEPS = ["ingest", "validate", "wrangle", "split", "train", "evaluate", "acceptance", "package", "serve", "monitor"]


@pytest.fixture(scope="module")
def repeat_project(project, tmp_path_factory):
    "A private copy of the finished project: these tests edit notebooks and parameters."
    return copy_finished(project, tmp_path_factory.mktemp("repeat")/"p")


def ran(out: str) -> list[str]:
    return [s for s in STEPS if f"Running stage '{s}'" in out]


def test_a_model_reproduces_from_its_recipe_with_identical_metrics(repeat_project):
    root = repeat_project
    version = json.loads((root/"models/package/current.json").read_text())["version"]
    r = run([tool("mlops-nb"), "reproduce", version], root, timeout=900)
    print(r.stdout)
    assert "environment: identical to the recorded one" in r.stdout
    assert "data: identical" in r.stdout and "all identical" in r.stdout
    result = json.loads((root/f"reports/reproduce/{version}.json").read_text())
    assert result["identical"] is True and result["metrics_compared"] >= 10
    assert result["metric_differences"] == [] and result["environment_differences"] == []
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=root, capture_output=True, text=True).stdout
    assert len(worktrees.strip().splitlines()) == 1                                   # the temporary worktree is gone


def test_reproduce_names_an_unknown_version(repeat_project):
    r = run([tool("mlops-nb"), "reproduce", "v999"], repeat_project, check=False)
    assert r.returncode == 1 and "model version 'v999' not found" in r.stderr and "known versions" in r.stderr


def test_a_no_op_rerun_is_quick_and_runs_nothing(repeat_project):
    t0 = time.perf_counter()
    r = run([tool("mlops-nb"), "run"], repeat_project)
    seconds = time.perf_counter() - t0
    print(f"no-op `mlops-nb run`: {seconds:.2f} s")
    assert ran(r.stdout) == [] and "0 of 10 steps ran" in r.stdout
    Path(repeat_project/"reports/noop_seconds.txt").write_text(f"{seconds:.2f}\n")


def test_saving_outputs_reruns_nothing_but_a_source_change_reruns_that_stage_onwards(repeat_project):
    root = repeat_project
    nb_path = root/"notebooks/06_evaluate.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    for i, c in enumerate(c for c in nb.cells if c.cell_type == "code"):   # as if run in JupyterLab and saved
        c.execution_count = i + 1
        c.outputs = [nbformat.v4.new_output("stream", text=f"output {i}\n")]
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    nbformat.write(nb, nb_path)
    r = run([tool("mlops-nb"), "run"], root)
    assert ran(r.stdout) == [], r.stdout

    code = next(c for c in nb.cells if c.cell_type == "code" and "#| export" in c.source)
    code.source += "\n# a comment is a source change"
    nbformat.write(nb, nb_path)
    r = run([tool("mlops-nb"), "run"], root, timeout=900)
    # evaluate re-runs; a later stage re-runs only if evaluate's outputs changed (here they do not: same model, seed)
    assert ran(r.stdout)[:1] == ["evaluate"], r.stdout
    assert set(ran(r.stdout)) <= {"evaluate", "acceptance", "package", "serve", "monitor"}, r.stdout


def test_a_parameter_change_reruns_that_stage_and_those_after_it_only(repeat_project):
    root = repeat_project
    p = yaml.safe_load((root/"params.yaml").read_text())
    p["monitor"]["p_value"] = 0.02
    (root/"params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    r = run([tool("mlops-nb"), "run"], root)
    assert ran(r.stdout) == ["monitor"], r.stdout


def test_load_step_gives_the_parameters_the_pipeline_injected(repeat_project):
    code = ("import os, json\nfrom mlops_nb.reproduce import load_step\nns = {}\n"
            "load_step('train', namespace=ns)\nprint(json.dumps({'cwd': os.getcwd(), **ns}))")
    r = run([tool("python"), "-c", code], repeat_project/"notebooks")
    out = r.stdout.strip().splitlines()
    assert out[0].startswith("train: parameters as injected into reports/steps/05_train.ipynb")
    values = json.loads(out[-1])
    injected = nbformat.read(repeat_project/"reports/steps/05_train.ipynb", as_version=4).metadata.papermill.parameters
    assert values.pop("cwd") == str(repeat_project)                                  # paths resolve as in the pipeline
    assert values == dict(injected) and values["cv_folds"] == 5
