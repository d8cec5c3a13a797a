"""Rows are never lost without saying so (issue 13), on real pipeline runs with only params.yaml changed:

- a categorical table where most rows legitimately repeat (many people share the same attributes) and the classes are
  unbalanced: the run completes, the model is fitted on every training row, the front page shows the row flow;
- the same project with `wrangle.drop_duplicates: true`: the number of rows dropped is recorded and shown;
- a table with free text and two features over 90% missing (NaN and empty strings) with the default gates: the run
  completes and the report names what was done with those columns.

Each project runs the pipeline once per module (the second one re-runs from wrangle on a copy of the first).
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import FAST, copy_finished, copy_project, run, tool


def repeated_csv(path: Path, n: int = 1300, seed: int = 3) -> pd.DataFrame:
    """Survey-like records: four categorical attributes (120 combinations), so most of the n rows repeat an earlier
    one; a binary target with about 20% positives, decided by the attributes with some noise."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"age_band": rng.choice(["18-25", "26-35", "36-50", "51-65", "65+"], n, p=[.15, .25, .3, .2, .1]),
                       "sex": rng.choice(["f", "m"], n), "region": rng.choice(["north", "south", "east", "west"], n),
                       "plan": rng.choice(["basic", "plus", "pro"], n, p=[.4, .4, .2])})
    risky = (df.plan == "basic") & df.age_band.isin(["18-25", "26-35"]) | (df.region == "south") & (df.plan == "plus")
    df["churn"] = np.where(rng.random(n) < np.where(risky, 0.85, 0.04), "yes", "no")
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return df


def sparse_csv(path: Path, n: int = 900, seed: int = 4) -> pd.DataFrame:
    "Numeric features, a free-text title, and two features over 90% missing: one numeric (NaN), one text (empty strings)."
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, 1, n).round(3), rng.normal(5, 2, n).round(3)
    genre = rng.choice(["drama", "comedy", "action", "horror"], n)
    words = np.array(["night", "return", "city", "love", "last", "dark", "house", "river", "king", "summer"])
    title = [" ".join(rng.choice(words, rng.integers(1, 4))).title() + f" {k}" for k in range(n)]
    budget = np.where(rng.random(n) < 0.93, np.nan, rng.normal(30, 10, n).round(1))
    awards = np.where(rng.random(n) < 0.95, "", rng.choice(["oscar", "bafta", "cannes"], n))
    hit = (1.5 * x1 + 0.8 * (x2 - 5) + 1.5 * (genre == "action") + rng.normal(0, 0.5, n)) > 0.7
    df = pd.DataFrame({"title": title, "x1": x1, "x2": x2, "genre": genre, "budget": budget, "awards": awards,
                       "hit": np.where(hit, "yes", "no")})
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return df


def configure(root: Path, changes: dict, message: str):
    p = yaml.safe_load((root/"params.yaml").read_text())
    for section, values in changes.items(): p[section].update(values)
    (root/"params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", message], root)


def lineage(root: Path, step: str) -> dict:
    return json.loads((root/"reports/lineage"/f"{step}.json").read_text())


def rowflow_text(root: Path) -> str:
    index = (root/"reports/index.html").read_text()
    assert "<h2 id='rows'>Rows</h2>" in index, "the front page has no Rows section"
    start = index.index("<h2 id='rows'>")
    return index[start:index.find("<h2", start + 5)]


@pytest.fixture(scope="module")
def repeated(tmp_path_factory):
    "(finished project, the generated data): the repeated-records table with the default wrangle (rows kept)."
    root = copy_project(tmp_path_factory.mktemp("repeated"))
    df = repeated_csv(root/"data/user/survey.csv")
    configure(root, {"ingest": {"source": "data/user/survey.csv"}, "project": {"target": "churn"},
                     "acceptance": {"min_primary_metric": 0.6}, "package": {"model_name": "survey"}, **FAST}, "survey data")
    r = run([tool("mlops-nb"), "run"], root, timeout=1200)
    return root, df, r


@pytest.fixture(scope="module")
def deduplicated(repeated, tmp_path_factory):
    "The same project, re-run with wrangle.drop_duplicates: true."
    root = copy_finished(repeated[0], tmp_path_factory.mktemp("dedup")/"p")
    configure(root, {"wrangle": {"drop_duplicates": True}}, "drop duplicates")
    r = run([tool("mlops-nb"), "run"], root, timeout=1200, check=False)
    # with 86% of the rows gone the model may well be no better than the baseline: then acceptance refuses it (the
    # run's exit code says so) -- that is the point of keeping rows by default; every phase before it has run
    assert r.returncode == 0 or "step acceptance failed: AcceptanceError: model rejected" in r.stdout + r.stderr, \
        f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    run([tool("mlops-nb"), "report"], root)       # the front page from the outputs of that run
    return root, repeated[1], r


def test_repeated_rows_are_kept_and_all_training_rows_are_fitted(repeated):
    root, df, _ = repeated
    n, dup = len(df), int(df.duplicated().sum())
    assert dup > 0.8 * n                              # the dataset is what the test is about: most rows repeat
    assert 0.1 < (df.churn == "yes").mean() < 0.35    # unbalanced, but not degenerate
    w = lineage(root, "wrangle")["rows"]
    assert (w["rows_in"], w["rows_out"], w["removed"]) == (n, n, {})
    s = lineage(root, "split")["rows"]
    assert s["rows_in"] == n == sum(s["splits"].values())
    train_rows = len(pd.read_parquet(root/"data/processed/train.parquet"))
    assert train_rows == s["splits"]["train"]
    t = lineage(root, "train")["rows"]
    assert t["rows_in"] == train_rows and t["refit_rows"] == train_rows, t
    flow = rowflow_text(root)
    assert f"<b>source</b> {n}" in flow and f"<b>clean</b> {n}" in flow and f"<b>train</b> {train_rows}" in flow, flow
    assert f"<b>model fitted on</b> {train_rows}" in flow, flow
    assert "No row was removed." in flow and "Warning:" not in flow, flow


def test_dropping_duplicates_on_request_reports_the_count(deduplicated):
    root, df, r = deduplicated
    n, dup = len(df), int(df.duplicated().sum())
    w = lineage(root, "wrangle")
    assert w["params"]["drop_duplicates"] is True
    assert w["rows"]["removed"] == {"duplicates": dup} and w["rows"]["rows_out"] == n - dup, w["rows"]
    assert f"{dup} removed: duplicates" in (root/"reports/steps/03_wrangle.ipynb").read_text()   # printed by the step
    flow = rowflow_text(root)
    assert f"<b>clean</b> {n - dup}" in flow, flow
    assert f"<td>wrangle</td><td>duplicates</td><td>{dup}</td>" in flow.replace("\n", ""), flow
    assert f"wrangle removed {w['rows']['removed_share']:.1%} of its {n} input rows" in flow, flow   # above project.max_removed_share


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    "A finished project on the free-text / mostly-empty table; the gates and wrangle as params.yaml ships them."
    root = copy_project(tmp_path_factory.mktemp("sparse"))
    df = sparse_csv(root/"data/user/films.csv")
    shipped = yaml.safe_load((root/"params.yaml").read_text())
    configure(root, {"ingest": {"source": "data/user/films.csv"}, "project": {"target": "hit"},
                     "acceptance": {"min_primary_metric": 0.75}, "package": {"model_name": "films"}, **FAST}, "films data")
    r = run([tool("mlops-nb"), "run"], root, timeout=1200)
    return root, df, shipped, r


def test_mostly_empty_features_are_dropped_with_a_warning_and_named(sparse):
    root, df, shipped, r = sparse
    now = yaml.safe_load((root/"params.yaml").read_text())
    assert now["validate"] == shipped["validate"] and now["wrangle"] == shipped["wrangle"]   # default gates
    schema = json.loads((root/"data/interim/schema.json").read_text())
    share = {"budget": df.budget.isna().mean(), "awards": (df.awards.fillna("") == "").mean()}
    assert min(share.values()) > 0.9
    for col, s in share.items():
        c = schema["columns"][col]
        assert c["role"] == "mostly_empty" and abs(c["missing_share"] - s) < 1e-3, (col, c)
        assert col in schema["dropped"] and col not in schema["features"]
    assert schema["columns"]["title"]["role"] in ("text", "identifier"), schema["columns"]["title"]
    assert {"x1", "x2", "genre"} <= set(schema["features"])
    gates = json.loads((root/"data/interim/validation.json").read_text())
    gates = gates.get("gates", gates) if isinstance(gates, dict) else gates
    unused = {g["column"]: g for g in gates if g.get("key") == "dropped_columns"}   # reported, not stopping the run
    for col in share:
        g = unused[col]
        assert not g["passed"] and g["level"] == "warning" and str(g["value"]).startswith("mostly_empty:"), g
        assert "above validate.max_missing_share = 0.2" in g["value"], g
    index = (root/"reports/index.html").read_text()
    section = index[index.index("<h3>Columns not used as features</h3>"):]
    for col, s in share.items():
        assert f"<code>{col}</code>" in section and "mostly_empty" in section and f"{s:.1%}" in section, section[:2000]
    assert set(lineage(root, "wrangle")["not_used"]) >= set(share)
