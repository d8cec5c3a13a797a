"""The packaged model served for real: uvicorn on 127.0.0.1, the batch scorer on a SQLite file, the monitor command."""
import json, sqlite3, subprocess, time

import pandas as pd
import pytest
import requests

from conftest import free_port, run, tool


@pytest.fixture(scope="module")
def server(project):
    port = free_port()
    proc = subprocess.Popen([tool("mlops-nb"), "serve", "--port", str(port)], cwd=project,
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
    yield url
    proc.terminate(); proc.wait(timeout=20)


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
    r = run([tool("mlops-nb"), "monitor", "--current", str(same), "--status-file", str(status)], project, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(status.read_text())["status"] == "no drift"
    r = run([tool("mlops-nb"), "monitor", "--current", str(moved), "--status-file", str(status)], project, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    res = json.loads(status.read_text())
    assert res["status"] == "drift: retrain recommended"
    assert {"bill_length_mm", "island"} <= set(res["drifted_features"])
    assert any("above the training maximum" in v for v in res["schema_violations"])
