"""The packaged model served for real: uvicorn on 127.0.0.1, the batch scorer on a SQLite file, the monitor command."""
import json, re, sqlite3, subprocess, time
from pathlib import Path

import pandas as pd
import pytest
import requests

from conftest import free_port, run, tool


def start_server(project, *args):
    "`mlops-nb serve` on a free port of 127.0.0.1, answering /health; returns (url, process)."
    port = free_port()
    proc = subprocess.Popen([tool("mlops-nb"), "serve", "--port", str(port), *args], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=1).status_code == 200: break
        except requests.ConnectionError:
            if proc.poll() is not None: raise AssertionError(f"server exited: {proc.stdout.read()}")
            time.sleep(0.3)
    else:
        proc.kill(); raise AssertionError("server did not answer /health within 60 s")
    return url, proc


def stop_server(proc) -> str:
    "SIGTERM, as a supervisor stops it: uvicorn shuts the app down, which writes the pending prediction log."
    proc.terminate()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode in (0, -15) and "Application shutdown complete" in out, out   # uvicorn re-raises SIGTERM once done
    return out


@pytest.fixture(scope="module")
def log_db(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("log")/"prediction_log.db"


@pytest.fixture(scope="module")
def server(project, log_db):
    url, proc = start_server(project, "--log-db", str(log_db))
    yield url
    stop_server(proc)


def test_health_names_the_champion(server, project):
    version = json.loads((project/"models/package/current.json").read_text())["version"]
    assert requests.get(f"{server}/health", timeout=5).json() == {"status": "ok", "model_version": version}


def test_predict_matches_the_library(server, project):
    from mlops_nb.serve import load_model
    batch = pd.read_parquet(project/"data/processed/batch.parquet").drop(columns="species")
    rows = json.loads(batch.to_json(orient="records"))       # NaN → null, as a client would send it
    r = requests.post(f"{server}/predict", json=rows, timeout=30)
    assert r.status_code == 200, r.text
    got = [p["prediction"] for p in r.json()["predictions"]]
    assert got == load_model(project/"models/package").predict(batch)["prediction"].tolist()
    one = requests.post(f"{server}/predict", json=rows[0], timeout=30).json()
    assert one["predictions"][0]["prediction"] == got[0]


def test_bad_payloads_get_422_naming_the_field(server):
    r = requests.post(f"{server}/predict", json={"island": "Biscoe", "bill_length_mm": "long"}, timeout=5)
    assert r.status_code == 422 and "bill_length_mm" in r.text
    r = requests.post(f"{server}/predict", json={"wings": 2}, timeout=5)
    assert r.status_code == 422 and "wings" in r.text


def test_openapi_names_every_feature(server, project):
    schema = json.loads((project/"data/interim/schema.json").read_text())
    doc = json.dumps(requests.get(f"{server}/openapi.json", timeout=5).json())
    for f in schema["features"]:
        assert f'"{f}"' in doc


def test_predict_command_writes_each_row_once(project, tmp_path):
    batch = pd.read_parquet(project/"data/processed/batch.parquet").drop(columns="species")
    src = tmp_path/"batch.csv"; batch.to_csv(src, index=False)
    db = tmp_path/"scores.db"
    for _ in range(2):
        out = run([tool("mlops-nb"), "predict", "--input", str(src), "--db", str(db)], project).stdout
        assert f"{len(batch)} predictions" in out
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*), count(distinct row_key) from predictions").fetchone() == (len(batch), len(batch))


def test_monitor_command_signals_drift_by_exit_code(project, tmp_path):
    batch = pd.read_parquet(project/"data/processed/batch.parquet")
    same, moved = tmp_path/"same.csv", tmp_path/"moved.csv"
    batch.to_csv(same, index=False)
    shifted = batch.assign(bill_length_mm=batch.bill_length_mm + 15, body_mass_g=batch.body_mass_g * 1.5,
                           flipper_length_mm=batch.flipper_length_mm + 30, island="Dream")
    shifted.to_csv(moved, index=False)
    status = tmp_path/"status.json"
    r = run([tool("mlops-nb"), "monitor", "--current", str(same), "--status-file", str(status), "--out-dir", str(tmp_path/"mon")], project, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(status.read_text())["status"] == "no drift"
    r = run([tool("mlops-nb"), "monitor", "--current", str(moved), "--status-file", str(status), "--out-dir", str(tmp_path/"mon")], project, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    res = json.loads(status.read_text())
    assert res["status"] == "drift: retrain recommended"
    assert {"bill_length_mm", "island"} <= set(res["drifted_features"])
    assert any("above the training maximum" in v for v in res["schema_violations"])


def _rows(project):
    batch = pd.read_parquet(project/"data/processed/batch.parquet").drop(columns="species")
    return batch, json.loads(batch.to_json(orient="records"))


def test_metadata_names_the_model_its_data_and_metrics(server, project):
    from mlops_nb.package import current_package
    lin = json.loads((current_package(project/"models/package")/"lineage.json").read_text())
    m = requests.get(f"{server}/metadata", timeout=5).json()
    assert m["model_version"] == lin["version"] and m["data_sha256"] == lin["data"]["data_sha256"]
    assert m["metrics"] == lin["metrics"] and m["task"] == "multiclass" and m["fast_path"] == "ok"
    assert m["features"]["island"] == "categorical" and m["features"]["bill_length_mm"] == "numeric"


def test_prediction_log_follows_the_contract(server, project, log_db):
    """The table monitoring reads: one row per predicted input row, the row as received, the label as a JSON string."""
    from mlops_nb.serve import load_model
    batch, rows = _rows(project)
    rid = f"contract-{time.time_ns()}"
    r = requests.post(f"{server}/predict", json=rows[:7], headers={"X-Request-ID": rid}, timeout=30)
    assert r.status_code == 200 and r.headers["x-request-id"] == rid and r.json()["request_id"] == rid
    deadline, got = time.time() + 10, []
    while time.time() < deadline and len(got) < 7:
        with sqlite3.connect(log_db) as con:
            got = con.execute("select id, logged_at, model_version, request_id, features, prediction from prediction_log "
                              "where request_id = ? order by id", (rid,)).fetchall()
        time.sleep(0.1)
    assert len(got) == 7
    with sqlite3.connect(log_db) as con:
        cols = {c[1]: (c[2], c[5]) for c in con.execute("pragma table_info(prediction_log)")}
        ddl = con.execute("select sql from sqlite_master where name = 'prediction_log'").fetchone()[0]
    assert cols == {"id": ("INTEGER", 1), "logged_at": ("TEXT", 0), "model_version": ("TEXT", 0), "request_id": ("TEXT", 0),
                    "features": ("TEXT", 0), "prediction": ("TEXT", 0), "prediction_id": ("TEXT", 0)} and "AUTOINCREMENT" in ddl
    with sqlite3.connect(log_db) as con:   # each row's prediction_id is the one /predict returned: <request id>-<row index>
        ids = [i for (i,) in con.execute("select prediction_id from prediction_log where request_id = ? order by id", (rid,))]
    assert ids == [p["prediction_id"] for p in r.json()["predictions"]] == [f"{rid}-{i}" for i in range(7)]
    version = load_model(project/"models/package").version
    expected = load_model(project/"models/package").predict(batch.iloc[:7])["prediction"].tolist()
    for (id_, at, ver, req, feats, pred), sent, label in zip(got, rows[:7], expected):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", at) and ver == version
        assert json.loads(feats) == sent and json.loads(pred) == label


def test_metrics_endpoint_speaks_prometheus(server):
    from prometheus_client.parser import text_string_to_metric_families
    requests.get(f"{server}/health", timeout=5)
    r = requests.get(f"{server}/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    fam = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert {"mlops_nb_requests", "mlops_nb_request_latency_seconds", "mlops_nb_predictions", "mlops_nb_prediction_log_pending"} <= set(fam)
    ok = [s for s in fam["mlops_nb_requests"].samples if s.labels.get("path") == "/predict" and s.labels.get("status") == "200"]
    assert ok and ok[0].value >= 1
    assert sum(s.value for s in fam["mlops_nb_predictions"].samples if s.name.endswith("_total")) >= 1
    assert any(s.name.endswith("_bucket") and s.labels["path"] == "/predict" for s in fam["mlops_nb_request_latency_seconds"].samples)


def test_the_fast_path_predicts_what_the_pipeline_predicts(project):
    """The single-row path (plain lookups instead of scikit-learn's encoders) against the packaged pipeline itself,
    on the training rows, with missing values and unseen categories mixed in."""
    import numpy as np
    from mlops_nb.serve import load_model
    fast, slow = load_model(project/"models/package"), load_model(project/"models/package", fast=False)
    assert fast.fast is not None and slow.fast is None
    X = pd.read_parquet(project/"data/processed/train.parquet").drop(columns="species")
    rng = np.random.default_rng(0)
    odd = X.sample(200, replace=True, random_state=1).reset_index(drop=True)
    for c in odd.columns:
        odd.loc[rng.random(len(odd)) < 0.15, c] = None
    odd.loc[rng.random(len(odd)) < 0.2, "island"] = "Atlantis"
    odd["bill_length_mm"] = odd["bill_length_mm"] * rng.choice([1, 1.5], len(odd))
    X = pd.concat([X, odd], ignore_index=True)
    want = slow.model.predict(X[slow.features])
    proba = slow.model.predict_proba(X[slow.features])
    assert fast.predict(X)["prediction"].tolist() == want.tolist()
    rows = json.loads(X.to_json(orient="records"))
    got, probs = [], []
    for r in rows:
        p, q = fast.predict_rows([r]); got += p; probs += q
    assert got == [str(v) for v in want]
    assert np.allclose([[q[c] for c in fast.classes] for q in probs], proba, atol=1e-6)


def test_predict_command_writes_nothing_when_a_chunk_fails(project, tmp_path):
    batch, _ = _rows(project)
    good, bad = tmp_path/"good.parquet", tmp_path/"bad.csv"
    batch.reset_index(drop=True).to_parquet(good)
    broken = batch.astype({"body_mass_g": object}).reset_index(drop=True)
    broken.loc[len(broken) - 1, "body_mass_g"] = "heavy"        # in the last chunk only
    broken.to_csv(bad, index=False)
    db = tmp_path/"scores.db"
    r = run([tool("mlops-nb"), "predict", "--input", str(bad), "--db", str(db), "--chunk-size", "10"], project, check=False)
    assert r.returncode == 1 and "column 'body_mass_g': expected numbers, got 'heavy'" in r.stderr, r.stderr
    if db.exists():                                              # the transaction was rolled back: no row, no table
        with sqlite3.connect(db) as con:
            assert con.execute("select count(*) from sqlite_master where name = 'predictions'").fetchone()[0] == 0
    # the URL form, Parquet in chunks, probabilities, and again without duplicates
    url = f"sqlite:///{db}"
    for _ in range(2):
        out = run([tool("mlops-nb"), "predict", "--input", str(good), "--db", url, "--chunk-size", "10", "--proba"], project).stdout
        assert f"{len(batch)} predictions" in out
    with sqlite3.connect(db) as con:
        rows = pd.read_sql("select * from predictions", con)
    assert len(rows) == len(batch) and rows["row_key"].is_unique and rows["scored_at"].nunique() == 1
    probs = rows["probabilities"].map(json.loads)
    assert all(abs(sum(p.values()) - 1) < 1e-4 for p in probs)
    assert (probs.map(lambda p: max(p, key=p.get)) == rows["prediction"]).all()
