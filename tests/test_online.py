"""Online learning on real components: `mlops-nb serve --online` under uvicorn on 127.0.0.1, a package of the sgd family,
labels through POST /feedback, promotions through the registry. A drifting stream is recovered from while the static
service stays degraded; a poisoned stream never reaches a served model; rows that break the schema are refused by row."""
import json, shutil, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml

from conftest import REPO
from test_serve import stop_server
from test_serve_reload import start

from mlops_nb.contracts import task_metrics
from mlops_nb.online import EVENTS_FILE
from mlops_nb.online_stream import drift_stream, recovery, stream_package
from mlops_nb.registry import read_history

BATCH, DRIFT_AT, BATCHES = 50, 10, 30
MAX_RECOVERY_BATCHES = 10        # after the drift, the online model is back within 0.05 of its level within this many


def make_project(dest: Path, notify: dict | None = None, **online) -> Path:
    "A project folder: the kit's params.yaml (online and notify sections overridden) and a champion of the sgd family."
    dest.mkdir(parents=True)
    params = yaml.safe_load((REPO/"params.yaml").read_text())
    params["online"].update(online)
    params["notify"] = {**(params.get("notify") or {}), **(notify or {})}
    (dest/"params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stream_package(dest/"models/package", drift_stream(batches=20, drift_at=None, seed=1))
    return dest


def wait_idle(url: str, sent: int, timeout: float = 30) -> dict:
    "Wait until the learner has taken every row sent so far and has nothing queued."
    deadline = time.time() + timeout
    while time.time() < deadline:
        health = requests.get(f"{url}/health", timeout=10).json()
        h = health["online"]     # every row taken, and the service serves what the learner last promoted
        if h["received"] + h["buffered"] >= sent and h["idle"] and health["model_version"] == h["model_version"]: return h
        time.sleep(0.02)
    raise AssertionError(f"the learner did not take {sent} rows within {timeout} s: {h}")


def play(url: str, stream: pd.DataFrame, online: bool) -> pd.DataFrame:
    """Each batch: predict it (the served model's prequential score: it has not learned these rows), then send the labels.
    Returns per batch the score, the served version and the prediction ids."""
    out, sent = [], 0
    for b, g in stream.groupby("batch", sort=True):
        r = requests.post(f"{url}/predict", json=g[["x1", "x2", "c"]].to_dict("records"), timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        pred = [p["prediction"] for p in body["predictions"]]
        score = task_metrics("binary", g.y.reset_index(drop=True), pd.Series(pred))["balanced_accuracy"]
        ids = [p["prediction_id"] for p in body["predictions"]]
        fb = requests.post(f"{url}/feedback", json=[{"prediction_id": i, "label": y} for i, y in zip(ids, g.y)], timeout=30)
        assert fb.status_code == 200 and fb.json()["stored"] == len(g), fb.text
        sent += len(g)
        if online: wait_idle(url, sent)
        out.append({"batch": int(b), "served": body["model_version"], "score": score, "ids": ids})
    return pd.DataFrame(out)


def test_a_drifting_stream_is_recovered_from_while_the_static_service_stays_degraded(tmp_path):
    stream = drift_stream(batches=BATCHES, batch_rows=BATCH, drift_at=DRIFT_AT, angle=60, seed=4)
    curves = {}
    for mode in ("static", "online"):
        root = make_project(tmp_path/mode, promote_every=2, batch_rows=BATCH)
        url, proc = start(root, "--log-db", str(tmp_path/f"{mode}.db"), *(["--online"] if mode == "online" else []))
        try: curves[mode] = play(url, stream, mode == "online")
        finally: stop_server(proc)
        if mode == "online":
            history = read_history(root/"models/package")
    c = pd.DataFrame({"batch": curves["online"].batch, "online": curves["online"].score, "static": curves["static"].score})
    c = c[c.batch >= 2]      # the first two batches fill the window: no promotion can happen before
    on, stat = recovery(c, DRIFT_AT, "online"), recovery(c, DRIFT_AT, "static")
    print("\nprequential balanced accuracy per batch (served model, before learning the batch):")
    print("batch   " + " ".join(f"{b:>5d}" for b in c.batch))
    print("static  " + " ".join(f"{v:5.2f}" for v in c.static))
    print("online  " + " ".join(f"{v:5.2f}" for v in c.online))
    print(f"online: {on}\nstatic: {stat}")
    promotions = [e for e in history if e["action"] == "online"]
    print(f"online promotions: {len(promotions)}; versions served: {curves['online'].served.nunique()}")
    assert on["batches_to_recover"] is not None and on["batches_to_recover"] <= MAX_RECOVERY_BATCHES, on
    assert on["mean_after_recovery"] >= on["pre_drift"] - 0.05, on
    assert stat["batches_to_recover"] is None and stat["mean_after"] < stat["pre_drift"] - 0.15, stat
    assert curves["static"].served.nunique() == 1 and len(promotions) >= 2
    # every promotion is a version with lineage: its parent, what it learned (ids the service handed out), the window
    ids = set(sum(curves["online"].ids.tolist(), []))
    for e in promotions:
        lin = json.loads((root/"models/package"/e["to"]/"lineage.json").read_text())["online"]
        assert lin["parent"] == e["from"] and lin["learned_rows"] == len(lin["prediction_ids"]) > 0
        assert set(lin["prediction_ids"]) <= ids and lin["window"]["challenger"] >= lin["window"]["champion"] - lin["window"]["margin"]


def test_a_poisoned_stream_freezes_learning_and_no_poisoned_challenger_is_ever_served(tmp_path, monkeypatch, hook):
    stream = drift_stream(batches=18, batch_rows=BATCH, drift_at=None, flip_from=10, seed=6)
    monkeypatch.setenv("ONLINE_TEST_HOOK", f"http://127.0.0.1:{hook.server_address[1]}/hook")   # the service inherits it
    root = make_project(tmp_path/"p", notify={"webhooks": ["ONLINE_TEST_HOOK"]}, promote_every=2, batch_rows=BATCH)
    url, proc = start(root, "--log-db", str(tmp_path/"log.db"), "--online")
    try:
        played = play(url, stream, True)
        st = requests.get(f"{url}/online", timeout=10).json()
        health = requests.get(f"{url}/health", timeout=10).json()
        # resuming is an operator's decision; while the poison goes on, the next batch freezes it again
        assert requests.post(f"{url}/admin/online/resume", timeout=10).json()["event"] == "resumed"
        # an online version is rolled back like any other: the service and the learner follow the pointer
        from mlops_nb.registry import rollback
        back = rollback(package_dir=root/"models/package")
        deadline = time.time() + 10
        while time.time() < deadline:
            h = requests.get(f"{url}/health", timeout=10).json()
            if h["model_version"] == back["to"]: break
            time.sleep(0.05)
        assert h["model_version"] == back["to"] != back["from"], (h, back)
        requests.post(f"{url}/predict", json=stream[["x1", "x2", "c"]].head(1).to_dict("records"), timeout=10).raise_for_status()
    finally: stop_server(proc)
    print(f"\npoisoned from batch 10: frozen={st['frozen']}, learned={st['learned']}, held={st['held']}, "
          f"promotions={st['promotions']}; reason: {st['freeze_reason']}")
    assert st["frozen"] and health["online"]["frozen"] and st["learned"] == 10 * BATCH and st["held"] == 8 * BATCH
    poisoned = set(sum(played[played.batch >= 10].ids.tolist(), []))
    served = set(played.served) | {e["to"] for e in read_history(root/"models/package")}
    assert st["promotions"] >= 1
    for v in served:     # no version that ever served learned a single poisoned row
        lin = json.loads((root/"models/package"/v/"lineage.json").read_text()).get("online") or {}
        assert not poisoned & set(lin.get("prediction_ids", [])), v
    events = [json.loads(l) for l in (root/"models/package"/EVENTS_FILE).read_text().splitlines()]
    frozen = [e for e in events if e["event"] == "frozen"]
    assert len(frozen) == 1 and set(frozen[0]["prediction_ids"]) <= poisoned and "online.max_drop" in frozen[0]["reason"]
    deadline = time.time() + 30          # the learner's process notified the team through the project's webhook
    while time.time() < deadline and not any(m["event"] == "online_frozen" for m in hook.got): time.sleep(0.1)
    sent = [m["event"] for m in hook.got]
    assert sent.count("online_frozen") == 1 and sent.count("new_champion") == st["promotions"], sent
    assert "online.max_drop" in next(m for m in hook.got if m["event"] == "online_frozen")["text"]


def test_rows_that_break_the_schema_are_refused_by_row_and_the_rest_is_learned(tmp_path):
    stream = drift_stream(batches=2, batch_rows=BATCH, drift_at=None, seed=8)
    bad = [3, 17, 60, 61, 99]
    stream.loc[bad[:3], "x1"] = 1e6          # far outside the training range: predicted (with a warning), never learned
    stream.loc[bad[3:], "x2"] = -5e4
    root = make_project(tmp_path/"p", batch_rows=BATCH)
    url, proc = start(root, "--log-db", str(tmp_path/"log.db"), "--online")
    try:
        play(url, stream, True)
        st = requests.get(f"{url}/online", timeout=10).json()
    finally: stop_server(proc)
    print(f"\nschema violations: received={st['received']} rejected={st['rejected']} learned={st['learned']} {st['rejections']}")
    assert (st["received"], st["rejected"], st["learned"]) == (2 * BATCH, len(bad), 2 * BATCH - len(bad))
    assert sum(st["rejections"].values()) == len(bad)
    assert sum(v for k, v in st["rejections"].items() if k.startswith("column 'x1'")) == 3
    assert sum(v for k, v in st["rejections"].items() if k.startswith("column 'x2'")) == 2


def test_serve_online_refuses_a_champion_that_cannot_learn(tmp_path):
    "A champion without partial_fit: `serve --online` stops at once and says what to do."
    import subprocess, tempfile
    from conftest import tool
    from mlops_nb.core import save_model
    from mlops_nb.package import build_package
    from mlops_nb.train import make_estimator
    from mlops_nb.validate import infer_schema
    root = tmp_path/"p"; root.mkdir()
    shutil.copy2(REPO/"params.yaml", root/"params.yaml")
    data = drift_stream(batches=4, drift_at=None)[["x1", "x2", "c", "y"]]
    schema = infer_schema(data, "y")
    model = make_estimator("linear", "binary", ["x1", "x2"], ["c"]).fit(data.drop(columns="y"), data.y)
    build_package(save_model(model, tmp_path/"m.skops"), root/"models/package", "linear", schema, {"test": {}}, {})
    r = subprocess.run([tool("mlops-nb"), "serve", "--project", str(root), "--online", "--port", "1"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and "cannot learn online (no partial_fit)" in r.stderr + r.stdout, r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_bad_online_parameters_are_named(tmp_path):
    "A wrong type in the online section is refused by `mlops-nb params --check`; a wrong value by `serve --online`."
    import subprocess
    from conftest import tool
    root = make_project(tmp_path/"p")
    shutil.copytree(REPO/"notebooks", root/"notebooks")          # the typed definition `params --check` reads
    p = yaml.safe_load((root/"params.yaml").read_text())
    for change, says in (({"batch_rows": "fifty"}, "online.batch_rows"), ({"window_rows": 10}, "online.window_rows: expected at least")):
        q = {**p, "online": {**p["online"], **change}}
        (root/"params.yaml").write_text(yaml.safe_dump(q, sort_keys=False))
        cmd = ["params", "--check"] if "batch_rows" in change else ["serve", "--online", "--port", "1"]
        r = subprocess.run([tool("mlops-nb"), *cmd, "--project", str(root)] if cmd[0] == "serve" else [tool("mlops-nb"), *cmd],
                           cwd=root, capture_output=True, text=True, timeout=120)
        assert r.returncode != 0 and says in r.stderr, (change, r.stdout[-1000:], r.stderr[-1000:])
        assert "Traceback" not in r.stderr
