"""The REST service under uvicorn on 127.0.0.1, pushed: schemathesis against its own OpenAPI document finds no 5xx,
a bounded load test (20 clients, 5,000 requests) gets no error and loses no prediction-log row, and a locked log
database delays the log, never a response."""
import json, sqlite3, time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import requests

from conftest import run, tool
from test_serve import start_server, stop_server

CLIENTS, REQUESTS = 20, 5000


def _rows(project) -> list[dict]:
    batch = pd.read_parquet(project/"data/processed/batch.parquet").drop(columns="species")
    return json.loads(batch.to_json(orient="records"))


def test_schemathesis_finds_no_server_error(project, tmp_path):
    url, proc = start_server(project, "--log-db", str(tmp_path/"log.db"))
    try:
        r = run([tool("schemathesis"), "run", f"{url}/openapi.json", "--checks", "not_a_server_error",
                 "--max-examples", "300", "--seed", "1", "--workers", "1", "--no-color", "--generation-database", "none",
                 "--request-timeout", "20"], tmp_path, timeout=600, check=False)
        metrics = requests.get(f"{url}/metrics", timeout=10).text
    finally:
        stop_server(proc)
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-2000:]
    from prometheus_client.parser import text_string_to_metric_families
    seen = {(s.labels["path"], s.labels["status"]): s.value for f in text_string_to_metric_families(metrics)
            if f.name == "mlops_nb_requests" for s in f.samples}
    assert sum(v for (p, _), v in seen.items() if p == "/predict") >= 200, seen     # it did fuzz the endpoint
    assert not [k for k in seen if k[1].startswith("5")], seen


def test_load_loses_no_prediction_log_row(project, tmp_path):
    from mlops_nb.serve import load_model
    rows, log = _rows(project), tmp_path/"log.db"
    expected = [str(p) for p in load_model(project/"models/package").predict(pd.DataFrame(rows))["prediction"]]
    url, proc = start_server(project, "--log-db", str(log))
    errors, answers = [], {}

    def client(k: int):
        with requests.Session() as s:
            for i in range(k, REQUESTS, CLIENTS):
                rid = f"load-{i}"
                try:
                    r = s.post(f"{url}/predict", json=rows[i % len(rows)], headers={"X-Request-ID": rid}, timeout=30)
                    if r.status_code != 200: errors.append((i, r.status_code, r.text[:300]))
                    else: answers[rid] = r.json()["predictions"][0]["prediction"]
                except requests.RequestException as e: errors.append((i, type(e).__name__, str(e)[:300]))

    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(CLIENTS) as ex: list(ex.map(client, range(CLIENTS)))
        seconds = time.perf_counter() - t0
        metrics = requests.get(f"{url}/metrics", timeout=10).text
    finally:
        stop_server(proc)                      # SIGTERM: the app's shutdown writes what is still queued
    print(f"\n{REQUESTS} requests from {CLIENTS} clients in {seconds:.1f} s ({REQUESTS / seconds:.0f}/s)")
    assert errors == [], errors[:5]
    assert "mlops_nb_prediction_log_dropped 0.0" in metrics
    with sqlite3.connect(log) as con:
        logged = dict(con.execute("select request_id, prediction from prediction_log").fetchall())
        n = con.execute("select count(*) from prediction_log").fetchone()[0]
    assert n == REQUESTS and len(logged) == REQUESTS
    assert all(json.loads(logged[f"load-{i}"]) == answers[f"load-{i}"] == expected[i % len(rows)] for i in range(REQUESTS))


def test_a_locked_log_database_delays_the_log_not_the_response(project, tmp_path):
    rows, log = _rows(project), tmp_path/"log.db"
    url, proc = start_server(project, "--log-db", str(log))
    try:
        lock = sqlite3.connect(log, isolation_level=None, timeout=30)
        lock.execute("BEGIN EXCLUSIVE")                     # no one else can write until we let go
        took = []
        for i in range(50):
            t0 = time.perf_counter()
            r = requests.post(f"{url}/predict", json=rows[i % len(rows)], headers={"X-Request-ID": f"locked-{i}"}, timeout=10)
            took.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
        time.sleep(0.5)
        pending = requests.get(f"{url}/metrics", timeout=10).text
        lock.execute("ROLLBACK"); lock.close()
    finally:
        stop_server(proc)
    assert max(took) < 1.0, max(took)                      # the writer waits on the lock; the responses did not
    assert "mlops_nb_prediction_log_written 0.0" in pending
    with sqlite3.connect(log) as con:
        assert con.execute("select count(*) from prediction_log where request_id like 'locked-%'").fetchone()[0] == 50
