"""The REST service follows the champion without a restart, for real: `mlops-nb serve` under uvicorn on 127.0.0.1
while the registry promotes a version; a broken version is refused while the old one keeps serving; the bearer
token and the loopback-only default."""
import json, os, subprocess, threading, time
from pathlib import Path

import pandas as pd
import pytest
import requests

from conftest import REPO, free_port, mini_project, run, tool
from test_registry import add_versions
from test_serve import stop_server

CLIENTS, MAX_REQUESTS, SWITCH_LIMIT_S = 20, 60_000, 2.0
TOKEN = "t0ken-for-tests"


@pytest.fixture(scope="module")
def built(project, tmp_path_factory):
    root = mini_project(project, tmp_path_factory.mktemp("reload")/"p")
    return root, add_versions(project, root)


def start(root: Path, *args, token=None, host="127.0.0.1"):
    "`mlops-nb serve` on a free port (MLOPS_NB_TOKEN set to `token`), answering /health; (url, process)."
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLOPS_NB_TOKEN"}
    if token: env["MLOPS_NB_TOKEN"] = token
    proc = subprocess.Popen([tool("mlops-nb"), "serve", "--host", host, "--port", str(port), "--project", str(root), *args],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=1).status_code == 200: return url, proc
        except requests.ConnectionError:
            if proc.poll() is not None: raise AssertionError(f"server exited: {proc.stdout.read()}")
            time.sleep(0.3)
    proc.kill(); raise AssertionError("server did not answer /health within 60 s")


def _rows(root: Path) -> list[dict]:
    return json.loads(pd.read_parquet(root/"data/processed/batch.parquet").drop(columns="species").to_json(orient="records"))


def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(built, tmp_path):
    import shutil
    from mlops_nb.core import write_json
    from mlops_nb.registry import promote
    root = tmp_path/"p"; shutil.copytree(built[0], root); v = built[1]
    row = _rows(root)[0]
    url, proc = start(root, "--log-db", str(tmp_path/"log.db"), token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        # the token: /health open, the rest asks for it
        assert requests.get(f"{url}/health", timeout=10).json()["model_version"] == v["pipeline"]
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            r = requests.post(f"{url}/predict", json=row, headers=headers, timeout=10)
            assert r.status_code == 401 and r.headers.get("www-authenticate") == "Bearer", (headers, r.text)
            assert requests.post(f"{url}/admin/reload", headers=headers, timeout=10).status_code == 401
            assert requests.get(f"{url}/metadata", headers=headers, timeout=10).status_code == 401
        assert requests.post(f"{url}/predict", json=row, headers=auth, timeout=10).json()["model_version"] == v["pipeline"]
        # a tampered version, named by a pointer written behind the registry's back: refused, the old one serves
        f = root/"models/package"/v["good"]/"model.skops"
        b = bytearray(f.read_bytes()); b[len(b) // 2] ^= 0xFF; f.write_bytes(bytes(b))
        write_json({"version": v["good"]}, root/"models/package/current.json")
        r = requests.post(f"{url}/admin/reload", headers=auth, timeout=30)
        assert r.status_code == 409 and "does not match the recorded" in r.json()["detail"], r.text
        assert r.json()["model_version"] == v["pipeline"]
        time.sleep(1.5)                                   # the poller saw the pointer too, and refused it as well
        h = requests.get(f"{url}/health", timeout=10).json()
        assert h["model_version"] == v["pipeline"] and "does not match the recorded" in h["reload_error"], h
        assert requests.post(f"{url}/predict", json=row, headers=auth, timeout=10).json()["model_version"] == v["pipeline"]
        # a good version promoted through the registry: followed without a request to /admin/reload
        promote(v["other"], root)
        deadline = time.time() + SWITCH_LIMIT_S
        while time.time() < deadline and requests.get(f"{url}/health", timeout=10).json()["model_version"] != v["other"]:
            time.sleep(0.05)
        h = requests.get(f"{url}/health", timeout=10).json()
        assert h == {"status": "ok", "model_version": v["other"]}, h
        assert requests.post(f"{url}/admin/reload", headers=auth, timeout=30).json() == {"changed": False, "model_version": v["other"]}
        m = requests.get(f"{url}/metrics", timeout=10).text
        assert f'mlops_nb_model_info{{model_version="{v["other"]}"}} 1.0' in m and v["pipeline"] not in m
    finally:
        stop_server(proc)


def test_no_token_means_loopback_only(built, tmp_path, monkeypatch):
    root = built[0]
    monkeypatch.delenv("MLOPS_NB_TOKEN", raising=False)
    r = run([tool("mlops-nb"), "serve", "--host", "0.0.0.0", "--port", str(free_port()), "--project", str(root)], root,
            check=False, timeout=120)
    assert r.returncode == 1 and "MLOPS_NB_TOKEN" in r.stderr and "--insecure-listen" in r.stderr and "serving" not in r.stdout, r
    url, proc = start(root, "--insecure-listen", "--log-db", str(tmp_path/"log.db"), host="0.0.0.0")
    try: assert requests.get(f"{url}/health", timeout=10).status_code == 200
    finally: stop_server(proc)
    url, proc = start(root, "--log-db", str(tmp_path/"log2.db"), host="0.0.0.0", token=TOKEN)
    try: assert requests.post(f"{url}/predict", json=_rows(root)[0], timeout=10).status_code == 401
    finally: stop_server(proc)


def _narrower(project: Path, root: Path) -> tuple[str, str]:
    """Package into `root` a version whose model takes one feature fewer than the champion's (its schema changed);
    like a pipeline run, packaging points current.json at it. (version, the dropped feature)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from mlops_nb.core import now_utc, read_json, save_model
    from mlops_nb.package import build_package
    from mlops_nb.features import feature_columns, make_preprocessor
    pkg = root/"models/package"
    champion = read_json(pkg/"current.json")["version"]
    schema, lineage = read_json(pkg/champion/"schema.json"), read_json(pkg/champion/"lineage.json")
    drop = schema["features"][0]
    narrow = {**schema, "features": [f for f in schema["features"] if f != drop],
              "columns": {k: v for k, v in schema["columns"].items() if k != drop}}
    train = pd.read_parquet(project/"data/processed/train.parquet")
    X, y = train[narrow["features"]], train[narrow["target"]]
    model = Pipeline([("features", make_preprocessor(*feature_columns(narrow, X.columns))),
                      ("model", LogisticRegression(max_iter=500))]).fit(X, y)
    v = build_package(save_model(model, root/"narrow.skops"), pkg, champion.rsplit("-", 1)[0], narrow, lineage["metrics"],
                      {**lineage, "created": now_utc()}, lineage.get("intervals"))["version"]
    assert read_json(pkg/"current.json")["version"] == v
    return v, drop


def test_a_version_with_other_inputs_is_refused_by_hot_reload(built, project, tmp_path):
    "A new champion whose schema differs is not swapped in (the request model would be wrong): refused, named; a restart serves it."
    import shutil
    root = tmp_path/"p"; shutil.copytree(built[0], root); v = built[1]
    row = _rows(root)[0]
    url, proc = start(root, "--log-db", str(tmp_path/"log.db"))
    try:
        narrow, dropped = _narrower(project, root)
        r = requests.post(f"{url}/admin/reload", timeout=30)
        assert r.status_code == 409 and r.json()["model_version"] == v["pipeline"], r.text
        detail = r.json()["detail"]
        assert f"its inputs differ from those of {v['pipeline']} (columns no longer taken ['{dropped}'])" in detail, detail
        assert f"restart it to serve {narrow}" in detail, detail
        time.sleep(1.5)                                   # the poller saw the pointer, and refused it as well
        h = requests.get(f"{url}/health", timeout=10).json()
        assert h["model_version"] == v["pipeline"] and "its inputs differ" in h["reload_error"], h
        p = requests.post(f"{url}/predict", json=row, timeout=10)
        assert p.status_code == 200 and p.json()["model_version"] == v["pipeline"], p.text
    finally:
        out = stop_server(proc)
    assert f"its inputs differ from those of {v['pipeline']}" in out and "Traceback" not in out, out
    url, proc = start(root, "--log-db", str(tmp_path/"log2.db"))       # the explicit way: a restart
    try:
        narrow_row = {k: x for k, x in row.items() if k != dropped}
        assert requests.post(f"{url}/predict", json=narrow_row, timeout=10).json()["model_version"] == narrow
        r = requests.post(f"{url}/predict", json=row, timeout=10)
        assert r.status_code == 422 and dropped in r.text, r.text     # the old input is refused by the new request model
    finally:
        stop_server(proc)
