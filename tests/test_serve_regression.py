"""Serving a regression model: the pipeline on the bundled diabetes data (numeric target), then the three patterns."""
import json, sqlite3, subprocess

import numpy as np
import pandas as pd
import pytest
import requests
import yaml

from conftest import run, tool
from test_serve import start_server, stop_server


@pytest.fixture(scope="module")
def reg_project(dataset_project):
    return dataset_project("regression")     # the whole pipeline on bundled:diabetes, shared with test_datasets.py


def _batch(root):
    return pd.read_parquet(root/"data/processed/batch.parquet").drop(columns="target")


def test_library_predicts_numbers_without_probabilities(reg_project):
    from mlops_nb.serve import load_model
    fast, slow = load_model(reg_project/"models/package"), load_model(reg_project/"models/package", fast=False)
    assert fast.task == "regression" and not fast.is_classifier and fast.classes == []
    X = pd.concat([_batch(reg_project), pd.read_parquet(reg_project/"data/processed/train.parquet").drop(columns="target")])
    out = fast.predict(X)
    assert list(out.columns) == ["prediction", "model_version"] and out["prediction"].dtype.kind == "f"
    want = slow.model.predict(X[slow.features])
    assert np.array_equal(out["prediction"].to_numpy(), want)
    rows = json.loads(X.to_json(orient="records", double_precision=15))
    one = [fast.predict_rows([r])[0][0] for r in rows[:100]]
    assert np.allclose(one, slow.model.predict(pd.DataFrame(rows[:100])[slow.features]), rtol=1e-12, atol=1e-9)


def test_service_logs_and_counts_numeric_predictions(reg_project, tmp_path):
    from mlops_nb.serve import load_model
    batch, log = _batch(reg_project), tmp_path/"log.db"
    rows = json.loads(batch.to_json(orient="records", double_precision=15))
    url, proc = start_server(reg_project, "--log-db", str(log))
    try:
        r = requests.post(f"{url}/predict", json=rows, headers={"X-Request-ID": "reg-1"}, timeout=30)
        assert r.status_code == 200, r.text
        preds = [p["prediction"] for p in r.json()["predictions"]]
        assert [set(p) for p in r.json()["predictions"]] == [{"prediction_id", "prediction"}] * len(rows)   # no probabilities
        assert requests.get(f"{url}/metadata", timeout=5).json()["task"] == "regression"
        metrics = requests.get(f"{url}/metrics", timeout=5).text
        assert "mlops_nb_prediction_value_bucket" in metrics and f"mlops_nb_prediction_value_count {float(len(rows))}" in metrics
    finally:
        stop_server(proc)
    want = load_model(reg_project/"models/package").predict(pd.DataFrame(rows))["prediction"]
    assert np.allclose(preds, want, rtol=1e-12)
    with sqlite3.connect(log) as con:
        logged = [json.loads(p) for (p,) in con.execute("select prediction from prediction_log where request_id = 'reg-1' order by id")]
    assert logged == preds and all(isinstance(v, float) for v in logged)


def test_predict_command_stores_numbers_once(reg_project, tmp_path):
    batch = _batch(reg_project)
    src, db = tmp_path/"batch.parquet", tmp_path/"scores.db"
    batch.to_parquet(src)
    for _ in range(2):
        run([tool("mlops-nb"), "predict", "--input", str(src), "--db", str(db), "--chunk-size", "25"], reg_project)
    with sqlite3.connect(db) as con:
        rows = pd.read_sql("select * from predictions", con)
    assert len(rows) == len(batch) and rows["row_key"].is_unique and rows["prediction"].dtype.kind == "f"
