"""The four data phases on their own, as the pipeline runs them (`mlops-nb step`): a SQL source in a real SQLite file,
the task override, the content-addressed snapshot, group and time-ordered splits; and the custom transformers
against scikit-learn's estimator checks."""
import json, sqlite3

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.utils.estimator_checks import parametrize_with_checks

from conftest import copy_project, run, tool
from mlops_nb.features import DatetimeFeatures, TextFeatures


@parametrize_with_checks([DatetimeFeatures(), TextFeatures(n_components=3)])
def test_custom_transformers_follow_the_estimator_contract(estimator, check):
    check(estimator)


def visits(n: int = 600, seed: int = 3) -> pd.DataFrame:
    "Visits of 60 customers over two years; the target is a whole number with 3 values (a class, unless told otherwise)."
    rng = np.random.default_rng(seed)
    cust = rng.integers(0, 60, n)
    return pd.DataFrame({"customer": [f"c{k:02d}" for k in cust], "amount": rng.gamma(2, 30, n).round(2),
                         "channel": rng.choice(["web", "shop"], n),
                         "at": (pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 730, n), unit="D")).strftime("%Y-%m-%d"),
                         "score": (cust % 3 + (rng.random(n) < 0.1)).clip(0, 2)})


def set_params(root, **sections):
    p = yaml.safe_load((root/"params.yaml").read_text())
    for sec, values in sections.items(): p[sec].update(values)
    (root/"params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


NOTEBOOKS = {"ingest": "01_ingest", "validate": "02_validate", "wrangle": "03_wrangle", "split": "04_split"}


def step(root, name, check=True):
    return run([tool("mlops-nb"), "step", name], root, check=check, timeout=600)


def printed(root, name) -> str:
    "What the executed notebook of the step printed."
    nb = json.loads((root/"reports/steps"/f"{NOTEBOOKS[name]}.ipynb").read_text())
    return "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "stream")


@pytest.fixture(scope="module")
def sql_project(tmp_path_factory):
    "A project whose source is a query against a real SQLite file; only the data phases run (no model)."
    root = copy_project(tmp_path_factory.mktemp("sql"))
    (root/"data/user").mkdir(parents=True)
    with sqlite3.connect(root/"data/user/shop.db") as con:
        visits().to_sql("visits", con, index=False)
    set_params(root, project={"target": "score"},
               ingest={"source": "sqlite:///data/user/shop.db", "query": "SELECT * FROM visits WHERE amount > 5", "task": "regression"},
               validate={"profile_minimal": True, "gate_levels": {"duplicates": "off"}},
               split={"method": "group", "group_column": "customer"})
    outs = {}
    for s in ("ingest", "validate", "wrangle", "split"):
        step(root, s); outs[s] = printed(root, s)
    return root, outs


def test_sql_source_lands_in_a_content_addressed_snapshot_with_lineage(sql_project):
    root, outs = sql_project
    with sqlite3.connect(root/"data/user/shop.db") as con:
        expected = pd.read_sql_query("SELECT * FROM visits WHERE amount > 5", con)
    m = json.loads((root/"data/raw/manifest.json").read_text())
    raw = pd.read_parquet(root/"data/raw/raw.parquet")
    assert (m["rows"], m["columns"]) == raw.shape == expected.shape
    assert m["source"] == "sqlite:///data/user/shop.db" and m["query"].startswith("SELECT")
    assert m["snapshot"] == f"raw-{m['data_sha256'][:16]}.parquet" and (root/"data/raw"/m["snapshot"]).is_file()
    lineage = json.loads((root/"reports/lineage/ingest.json").read_text())
    assert lineage["data"]["data_sha256"] == m["data_sha256"] and lineage["data"]["rows"] == len(expected)
    # the same input again: found by its hash, not written again
    mtime = (root/"data/raw"/m["snapshot"]).stat().st_mtime_ns
    step(root, "ingest")
    assert "snapshot already there, not rewritten" in printed(root, "ingest")
    assert (root/"data/raw"/m["snapshot"]).stat().st_mtime_ns == mtime
    assert json.loads((root/"data/raw/manifest.json").read_text())["reused"] is True


def test_task_override_is_used_and_its_reason_printed(sql_project):
    root, outs = sql_project
    assert "task: regression (set by ingest.task" in outs["ingest"]
    schema = json.loads((root/"data/interim/schema.json").read_text())
    assert schema["task"] == "regression" and "ingest.task" in schema["task_reason"]
    assert schema["columns"]["at"]["kind"] == "datetime"


def test_group_split_keeps_each_customer_in_one_split_and_hashes_each(sql_project):
    root, _ = sql_project
    from mlops_nb.core import frame_sha256
    man = json.loads((root/"data/processed/splits.json").read_text())
    assert man["method"] == "group" and man["overlap"] == {}
    frames = {k: pd.read_parquet(root/"data/processed"/v["file"]) for k, v in man["splits"].items()}
    assert {k: frame_sha256(f) for k, f in frames.items()} == {k: v["sha256"] for k, v in man["splits"].items()}
    seen = [set(f.customer) for f in frames.values()]
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1:])


def test_time_split_trains_on_the_past_and_reports_overlap(sql_project):
    root, _ = sql_project
    params = (root/"params.yaml").read_text()
    try:
        set_params(root, split={"method": "time", "time_column": "at", "group_column": None})
        step(root, "split"); out = printed(root, "split")
        man = json.loads((root/"data/processed/splits.json").read_text())
        f = {k: pd.read_parquet(root/"data/processed"/v["file"]) for k, v in man["splits"].items()}
        assert man["method"] == "time"
        t = {k: v["at"] for k, v in f.items()}
        assert t["train"].max() <= t["valid"].min() and t["valid"].max() <= t["test"].min() <= t["test"].max() <= t["batch"].min()
        assert man["overlap"] == {} and "warning" not in out
        set_params(root, split={"time_column": "when"})
        bad = step(root, "split", check=False)
        assert bad.returncode != 0 and "split.time_column: column 'when' is not in the data" in bad.stdout + bad.stderr
    finally:
        (root/"params.yaml").write_text(params)
