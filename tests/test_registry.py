"""The model registry for real: `mlops-nb models` list / promote / rollback on a copy of a finished project with
extra packaged versions (real skops packages built by `build_package`), the history file, refusals that change
nothing (unknown, tampered, failing the gates), and the history on the report's front page.

The shared `project` is only read: each module builds its own copy with its extra versions once.
"""
import json, shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import copy_finished, mini_project, run, tool


def _model(project: Path, C: float, shuffle: bool = False):
    "A logistic regression on the champion's features (labels shuffled: a model that fails the gates)."
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from mlops_nb.core import read_json
    from mlops_nb.features import feature_columns, make_preprocessor
    pkg = project/"models/package"
    schema = read_json(pkg/read_json(pkg/"current.json")["version"]/"schema.json")
    train = pd.read_parquet(project/"data/processed/train.parquet")
    X, y = train[schema["features"]], train[schema["target"]]
    if shuffle: y = pd.Series(np.random.default_rng(0).permutation(y.to_numpy()), index=y.index)
    pre = make_preprocessor(*feature_columns(schema, X.columns))
    return Pipeline([("features", pre), ("model", LogisticRegression(C=C, max_iter=500))]).fit(X, y), schema


def add_versions(project: Path, root: Path) -> dict:
    """Package three more versions into `root`/models/package next to the pipeline's (good: C=0.37, other: C=3,
    bad: shuffled labels), then put the pipeline's champion back; {name: version} with 'pipeline' for it."""
    from mlops_nb.core import now_utc, read_json, save_model
    from mlops_nb.package import build_package
    pkg = root/"models/package"
    pointer = (pkg/"current.json").read_bytes()
    champion = json.loads(pointer)["version"]
    lineage = read_json(pkg/champion/"lineage.json")
    out = {"pipeline": champion}
    for name, C, shuffle in [("good", 0.37, False), ("other", 3.0, False), ("bad", 1.0, True)]:
        model, schema = _model(project, C, shuffle)
        f = save_model(model, root/f"{name}.skops")
        out[name] = build_package(f, pkg, champion.rsplit("-", 1)[0], schema, lineage["metrics"],
                                  {**lineage, "created": now_utc()}, lineage.get("intervals"))["version"]
    (pkg/"current.json").write_bytes(pointer)          # as if those had been packaged and later replaced
    return out


@pytest.fixture(scope="module")
def built(project, tmp_path_factory):
    "A mini project with the extra versions, built once; tests copy it."
    root = mini_project(project, tmp_path_factory.mktemp("registry")/"p")
    return root, add_versions(project, root)


@pytest.fixture
def reg(built, tmp_path):
    "A fresh copy of the mini project with its versions: (root, versions)."
    root = tmp_path/"p"; shutil.copytree(built[0], root)
    return root, built[1]


def models(root, *args, check=True):
    return run([tool("mlops-nb"), "models", *args, "--project", str(root)], root, check=check, timeout=300)


def state(root: Path) -> tuple:
    "The bytes of the pointer and the history (None when absent)."
    pkg = root/"models/package"
    return tuple((pkg/f).read_bytes() if (pkg/f).exists() else None for f in ("current.json", "history.jsonl"))


def history(root: Path) -> list[dict]:
    f = root/"models/package/history.jsonl"
    return [json.loads(l) for l in f.read_text().splitlines()] if f.exists() else []


def test_models_lists_every_version(reg):
    root, v = reg
    rows = json.loads(models(root, "--json").stdout)
    assert [r["version"] for r in rows][0] == v["pipeline"] and {r["version"] for r in rows} == set(v.values())
    champ = [r for r in rows if r["champion"]]
    assert [r["version"] for r in champ] == [v["pipeline"]]
    r = champ[0]
    assert r["metric"] == "balanced_accuracy" and 0.9 <= r["test"] <= 1 and r["interval"][0] <= r["test"] <= r["interval"][1]
    assert r["accepted"] is True and r["intact"] and len(r["data_sha256"]) == 64 and r["created"]
    table = models(root).stdout
    assert f"* {v['pipeline']}" in table and v["bad"] in table and "95% interval" in table, table


def test_promote_checks_the_gates_and_force_is_recorded(reg):
    root, v = reg
    before = state(root)
    r = models(root, "promote", v["bad"], check=False)
    assert r.returncode == 1 and "not promoted (the champion stays" in r.stderr and "balanced_accuracy on test >= minimum" in r.stderr, r.stderr
    assert state(root)[0] == before[0]                                       # the pointer did not move
    r = models(root, "promote", v["good"], "--why", "a lighter model")
    assert f"champion: {v['good']} (was {v['pipeline']})" in r.stdout, r.stdout
    e = history(root)[-1]
    assert (e["from"], e["to"], e["action"], e["why"], e["forced"]) == (v["pipeline"], v["good"], "promote", "a lighter model", False)
    assert e["checks"] and all(g["passed"] for g in e["checks"]) and any("champion" in g["gate"] for g in e["checks"])
    r = models(root, "promote", v["bad"], "--force")
    assert "FORCED" in r.stdout
    e = history(root)[-1]
    assert e["forced"] is True and e["to"] == v["bad"] and "forced past the failed gates" in e["why"]
    from mlops_nb.serve import load_model
    assert load_model(root/"models/package").version == v["bad"]            # the pointer names it, and it loads
    rows = {r["version"]: r for r in json.loads(models(root, "--json").stdout)}
    assert rows[v["bad"]]["champion"] and rows[v["bad"]]["forced"] and rows[v["good"]]["former_champion"]


def test_rollback_walks_back_the_champions(reg):
    root, v = reg
    models(root, "promote", v["good"]); models(root, "promote", v["other"])
    assert "rolled back from " + v["other"] in models(root, "rollback").stdout
    assert json.loads((root/"models/package/current.json").read_text())["version"] == v["good"]
    models(root, "rollback")
    assert json.loads((root/"models/package/current.json").read_text())["version"] == v["pipeline"]
    before = state(root)
    r = models(root, "rollback", check=False)
    assert r.returncode == 1 and "no earlier champion" in r.stderr and state(root) == before
    assert [(e["to"], e["action"]) for e in history(root)] == [
        (v["pipeline"], "package"), (v["good"], "promote"), (v["other"], "promote"), (v["good"], "rollback"),
        (v["pipeline"], "rollback")]


def test_unknown_or_tampered_versions_change_nothing(reg):
    root, v = reg
    before = state(root)
    r = models(root, "promote", "penguins-species-000000000000", check=False)
    assert r.returncode == 1 and "no packaged version 'penguins-species-000000000000'" in r.stderr and v["good"] in r.stderr
    f = root/"models/package"/v["good"]/"model.skops"
    b = bytearray(f.read_bytes()); b[len(b) // 2] ^= 0xFF; f.write_bytes(bytes(b))
    r = models(root, "promote", v["good"], "--force", check=False)
    assert r.returncode == 1 and "does not match the recorded" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "TAMPERED" in models(root).stdout and state(root) == before      # listing writes nothing
    models(root, "promote", v["other"])                                       # two lines: the pipeline's, this one
    (root/"models/package/history.jsonl").write_text((root/"models/package/history.jsonl").read_text() + "{half a line\n")
    before = state(root)
    r = models(root, "rollback", check=False)
    assert r.returncode == 1 and "history.jsonl: line 3 is not JSON" in r.stderr
    assert state(root) == before


def test_the_front_page_shows_the_history(project, tmp_path):
    "A full copy of the finished project: promote, roll back; the report's front page lists both, newest first."
    root = copy_finished(project, tmp_path/"full")
    v = add_versions(project, root)
    models(root, "promote", v["good"], "--why", "try the lighter model")
    models(root, "rollback", "--why", "undo: <b>too slow</b>")
    page = (root/"reports/index.html").read_text()     # promote and rollback rebuild the front page
    assert "Champion history" in page and "try the lighter model" in page and "undo: &lt;b&gt;too slow&lt;/b&gt;" in page
    assert page.index("undo:") < page.index("try the lighter model")


def test_a_run_after_a_promotion_keeps_the_champion(project, tmp_path):
    """DVC sees models/package changed after a promotion and runs the package step again: packaging the same model
    again must not take the champion back."""
    root = copy_finished(project, tmp_path/"full")
    v = add_versions(project, root)
    models(root, "promote", v["other"])
    run([tool("mlops-nb"), "run"], root, timeout=1200)
    assert json.loads((root/"models/package/current.json").read_text())["version"] == v["other"]
    assert [e["to"] for e in history(root)] == [v["pipeline"], v["other"]]
