"""Shipping the champion: the image (built and run with podman or docker where one runs, otherwise its build context,
proven self-sufficient in a fresh virtualenv) and the serverless bundle serve what `load_model` predicts on the test
split, reject bad input naming the field, and carry no development tools. On the penguins model (categorical features,
ONNX since issue 14) and on the regression model of bundled:diabetes.

Each model is shipped once per module; the serving virtualenvs are made once and shared."""
import json, os, shutil, subprocess, sys, time, zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from conftest import free_port, run, tool

MODELS = ["penguins", "regression"]
DEV_TOOLS = {"jupyterlab", "notebook", "ipykernel", "dvc", "dvclive", "papermill", "nbdev", "nbval", "pytest",
             "fg-data-profiling", "ydata-profiling", "skl2onnx", "dask", "matplotlib", "mlops-nb"}
LIST_DISTS = "import importlib.metadata as m, json; print(json.dumps(sorted({d.metadata['Name'].lower() for d in m.distributions()})))"


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@pytest.fixture(scope="module")
def roots(project, dataset_project):
    return {"penguins": project, "regression": dataset_project("regression")}


@pytest.fixture(scope="module")
def shipped(roots, tmp_path_factory):
    "Per model: its project, the image context and the bundle, each written once by the `mlops-nb build` command."
    out = {}
    for name in MODELS:
        root, d = roots[name], tmp_path_factory.mktemp(f"ship-{name}")
        run([tool("mlops-nb"), "build", "image", "--out", str(d/"image")], root, timeout=600)
        r = run([tool("mlops-nb"), "build", "bundle", "--out", str(d/"bundle.zip")], root, timeout=600)
        assert "serverless bundle:" in r.stdout and "MiB unpacked" in r.stdout, r.stdout
        out[name] = {"root": root, "context": d/"image", "bundle": d/"bundle.zip", "dir": d}
    return out


def _rows_and_want(root: Path):
    "The test split as JSON rows (features only) and what `load_model` predicts for them."
    from mlops_nb.serve import load_model
    served = load_model(root/"models/package")
    X = pd.read_parquet(root/"data/processed/test.parquet")[served.features]
    rows = json.loads(X.to_json(orient="records", double_precision=15))
    return served, rows, served.predict(pd.DataFrame(rows, columns=served.features))


def _bad_row(served, rows):
    "A test row with text where the first numeric feature expects a number (and that feature's name)."
    num = next(f for f in served.features if served.schema["columns"][f]["kind"] == "numeric")
    return {**rows[0], num: "not a number"}, num


def _check_predictions(got: list, want: pd.DataFrame, served, tol: float):
    "Labels identical; probabilities and regression values within `tol` (0: as the service rounds them, 1e-6)."
    assert len(got) == len(want)
    if served.is_classifier:
        assert [p["prediction"] for p in got] == [str(v) for v in want["prediction"]]
        for c in served.classes:
            np.testing.assert_allclose([p["probabilities"][c] for p in got], want[f"proba_{c}"], atol=max(tol, 1e-6))
    else:
        v, w = np.array([p["prediction"] for p in got]), want["prediction"].to_numpy()
        assert np.all(np.abs(v - w) <= max(tol, 1e-12) * (1 + np.abs(w))), np.max(np.abs(v - w))


def _wait_health(url: str, proc, seconds: float = 120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200: return
        except requests.ConnectionError:
            pass
        if proc.poll() is not None: raise AssertionError(f"the service exited: {proc.stdout.read()[-3000:]}")
        time.sleep(0.5)
    proc.kill(); raise AssertionError(f"no answer on {url}/health within {seconds} s")


def _exercise_service(url: str, served, rows, want):
    "The same requests whatever runs the service: /health, /metadata, the test split, a bad row, /metrics."
    h = requests.get(f"{url}/health", timeout=10).json()
    assert h == {"status": "ok", "model_version": served.version}
    assert requests.get(f"{url}/metadata", timeout=10).json()["data_sha256"] == served.lineage["data"]["data_sha256"]
    r = requests.post(f"{url}/predict", json=rows, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == served.version
    _check_predictions(r.json()["predictions"], want, served, 0)
    bad, field = _bad_row(served, rows)
    r = requests.post(f"{url}/predict", json=bad, timeout=10)
    assert r.status_code == 422 and field in json.dumps(r.json()["detail"]), r.text
    assert "mlops_nb_" in requests.get(f"{url}/metrics", timeout=10).text       # the same Prometheus metrics


def test_context_has_only_serving_requirements_pinned(shipped):
    pins = {}
    for line in (Path(__file__).parents[1]/"constraints.txt").read_text().splitlines():
        if "==" in line: pins[_norm(line.split("==")[0])] = line.split("==")[1].strip()
    for name in MODELS:
        ctx = shipped[name]["context"]
        reqs = [l for l in (ctx/"requirements.txt").read_text().splitlines() if l]
        names = {_norm(l.split("==")[0]): l.split("==")[1] for l in reqs}
        assert {"fastapi", "uvicorn", "scikit-learn", "skops", "pandas"} <= set(names)
        assert not set(names) & DEV_TOOLS, set(names) & DEV_TOOLS
        assert all(pins.get(n, v) == v for n, v in names.items())              # the versions of constraints.txt
        wheels = {_norm(p.name.split("-")[0]) for p in (ctx/"wheelhouse").glob("*.whl")}
        assert wheels == set(names), set(names) ^ wheels                        # one wheel per requirement, no more
        df = (ctx/"Dockerfile").read_text()
        assert "ARG BASE=" in df and "FROM ${BASE}" in df and "USER 10001" in df and "HEALTHCHECK" in df and "--no-index" in df
        version = json.loads((ctx/"app/package/current.json").read_text())["version"]
        assert f'org.opencontainers.image.version="{version}"' in df
        mods = {p.stem for p in (ctx/"app/mlops_nb").glob("*.py")}
        assert {"serve", "core", "wrangle", "contracts"} <= mods and not {"pipeline", "cli", "train", "ship"} & mods


@pytest.fixture(scope="module")
def engine():
    "podman or docker when one runs here; MLOPS_NB_TEST_NO_ENGINE=1 takes the no-engine path (the context check)."
    from mlops_nb.ship import find_engine
    return None if os.environ.get("MLOPS_NB_TEST_NO_ENGINE") == "1" else find_engine()


def _venv(path: Path, *pip_args, timeout=900) -> Path:
    "A fresh virtualenv (no project packages) with `pip install *pip_args`; its python."
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    py = path/"bin/python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pip_args],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return py


def _dists(py: Path) -> list:
    "The distributions a virtualenv's python sees, run from its own folder (a project's *.egg-info in the cwd would count)."
    return json.loads(subprocess.run([str(py), "-c", LIST_DISTS], cwd=py.parent, capture_output=True, text=True,
                                     check=True, env=_clean_env()).stdout)


def _clean_env(**extra) -> dict:
    "The environment without anything that points at the project's virtualenv."
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    return {**env, **extra}


@pytest.mark.parametrize("name", MODELS)
def test_image_serves_what_load_model_predicts(name, shipped, engine, tmp_path_factory):
    s = shipped[name]
    served, rows, want = _rows_and_want(s["root"])
    if engine is None:
        _context_serves(s, served, rows, want, tmp_path_factory)
        return
    from mlops_nb.ship import build_image, engine_cmd
    img = build_image(s["context"], engine=engine)
    print(f"\n{name}: image {img['tag']} {img['size_bytes'] / 2**20:.0f} MiB on {img['base']}")
    info = json.loads(subprocess.run(engine_cmd(engine, "image", "inspect", img["tag"]), capture_output=True,
                                     text=True, check=True).stdout)[0]
    cfg = info["Config"]
    assert cfg["User"] == "10001:10001"
    assert (cfg.get("Healthcheck") or info.get("Healthcheck") or {}).get("Test")[-1] == "--health"   # podman: top level
    assert cfg["Labels"]["org.opencontainers.image.version"] == served.version
    assert cfg["Labels"]["io.mlops-nb.data.sha256"] == served.lineage["data"]["data_sha256"]
    dists = json.loads(subprocess.run(engine_cmd(engine, "run", "--rm", "--network=none", "--entrypoint",
                                                 "/opt/venv/bin/python", img["tag"], "-c", LIST_DISTS),
                                      capture_output=True, text=True, check=True, timeout=120).stdout)
    assert not set(map(_norm, dists)) & DEV_TOOLS and "pip" not in dists, dists
    port, cname = free_port(), f"mlops-nb-test-{name}-{os.getpid()}"
    proc = subprocess.Popen(engine_cmd(engine, "run", "--rm", "--name", cname, "--network=host", "-e", f"MLOPS_NB_PORT={port}", "-e", "MLOPS_NB_HOST=127.0.0.1", img["tag"]),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_health(url, proc)
        _exercise_service(url, served, rows, want)
        hc = subprocess.run(engine_cmd(engine, "exec", cname, "/opt/venv/bin/python", "/opt/mlops-nb/app/serve.py",
                                       "--health"), capture_output=True, text=True, timeout=60)
        assert hc.returncode == 0, hc.stderr                                     # the HEALTHCHECK's command
        who = subprocess.run(engine_cmd(engine, "exec", cname, "id", "-u"), capture_output=True, text=True, timeout=60)
        assert who.stdout.strip() == "10001"
    finally:
        subprocess.run(engine_cmd(engine, "stop", "-t", "5", cname), capture_output=True, timeout=120)
        try: proc.wait(timeout=60)
        except subprocess.TimeoutExpired: proc.kill()


_SERVING_VENV = {}


def _context_serves(s, served, rows, want, tmp_path_factory):
    """No engine can run: a fresh virtualenv from the context's wheelhouse alone (no index), its entry point started
    from the context folder, the same requests."""
    ctx, reqs = s["context"], (s["context"]/"requirements.txt").read_text()
    if reqs not in _SERVING_VENV:     # the same requirements make the same virtualenv: made once per module
        py = _venv(tmp_path_factory.mktemp("serving-venv")/"v", "--no-index", "--find-links", str(ctx/"wheelhouse"),
                   "-r", str(ctx/"requirements.txt"))
        _SERVING_VENV[reqs] = py
    py = _SERVING_VENV[reqs]
    dists = _dists(py)
    assert not set(map(_norm, dists)) & DEV_TOOLS, dists
    port = free_port()
    proc = subprocess.Popen([str(py), "serve.py"], cwd=ctx/"app", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_clean_env(MLOPS_NB_PORT=str(port), MLOPS_NB_HOST="127.0.0.1",
                                           MLOPS_NB_LOG_DB=str(s["dir"]/"log.db")))
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_health(url, proc)
        _exercise_service(url, served, rows, want)
        assert subprocess.run([str(py), "serve.py", "--health"], cwd=ctx/"app", env=_clean_env(MLOPS_NB_PORT=str(port)),
                              timeout=60).returncode == 0
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert "Application shutdown complete" in out, out[-2000:]
    import sqlite3
    with sqlite3.connect(s["dir"]/"log.db") as con:                         # the prediction log of MLOPS_NB_LOG_DB
        assert con.execute("select count(*) from prediction_log").fetchone()[0] == len(rows)


@pytest.fixture(scope="module")
def bundle_pythons(shipped, tmp_path_factory):
    "Per model: its bundle unpacked in an empty folder and a fresh virtualenv with only the bundle's requirements."
    out, venvs = {}, {}
    for name in MODELS:
        d = tmp_path_factory.mktemp(f"bundle-{name}")
        with zipfile.ZipFile(shipped[name]["bundle"]) as z: z.extractall(d/"unpacked")
        reqs = (d/"unpacked/requirements.txt").read_text()
        if reqs not in venvs: venvs[reqs] = _venv(d/"v", "-r", str(d/"unpacked/requirements.txt"))
        out[name] = (d/"unpacked", venvs[reqs])
    return out


CALL = """
import json, sys
from handler import handler
events = json.load(sys.stdin)
print(json.dumps([handler(e, None) for e in events]))
"""


@pytest.mark.parametrize("name", MODELS)
def test_bundle_predicts_what_load_model_predicts(name, shipped, bundle_pythons):
    folder, py = bundle_pythons[name]
    served, rows, want = _rows_and_want(shipped[name]["root"])
    meta = json.loads((folder/"model/bundle.json").read_text())
    if name == "penguins": assert meta["backend"] == "onnx"           # the categorical branch converts since issue 14
    bad, field = _bad_row(served, rows)
    events = [{"body": json.dumps(rows)}, {"body": json.dumps(rows[0])}, {"body": json.dumps(bad)},
              {"body": json.dumps({**rows[0], "no_such_feature": 1})}, {"body": "{not json"}, {}]
    r = subprocess.run([str(py), "-c", CALL], cwd=folder, input=json.dumps(events), capture_output=True, text=True,
                       timeout=300, env=_clean_env())
    assert r.returncode == 0, r.stderr[-3000:]
    answers = json.loads(r.stdout.splitlines()[-1])
    assert [a["statusCode"] for a in answers] == [200, 200, 400, 400, 400, 400], answers[2:]
    body = json.loads(answers[0]["body"])
    assert body["model_version"] == served.version
    _check_predictions(body["predictions"], want, served, 1e-3 if meta["backend"] == "onnx" else 0)
    assert json.loads(answers[2]["body"])["field"] == field and field in json.loads(answers[2]["body"])["error"]
    assert json.loads(answers[3]["body"])["field"] == "no_such_feature"
    assert all("Traceback" not in a["body"] for a in answers)
    dists = _dists(py)
    assert not set(map(_norm, dists)) & DEV_TOOLS, dists
    if meta["backend"] == "onnx": assert not {"scikit-learn", "scipy", "pandas"} & set(map(_norm, dists)), dists
