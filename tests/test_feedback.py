"""Ground truth from the service, for real: `mlops-nb serve` on 127.0.0.1 returns a prediction_id per row, POST /feedback
stores labels for them all-or-nothing, `mlops-nb feedback` does the same from a file, and the labelled window joins
them back to the logged features. The session project is copied (mini_project), never changed."""
import json, sqlite3, time

import pandas as pd
import pytest
import requests

from conftest import mini_project, run, tool
from test_serve import start_server, stop_server


@pytest.fixture(scope="module")
def site(project, tmp_path_factory):
    "A copy of the finished project and a server on it, logging to a database of its own; yields (root, url, log_db, batch)."
    root = mini_project(project, tmp_path_factory.mktemp("feedback")/"p")
    log_db = root/"data"/"prediction_log.db"
    url, proc = start_server(root, "--log-db", str(log_db))
    batch = pd.read_parquet(root/"data/processed/batch.parquet")
    yield root, url, log_db, batch
    stop_server(proc)


def predict(url, batch: pd.DataFrame) -> list[str]:
    rows = json.loads(batch.drop(columns="species").to_json(orient="records"))
    r = requests.post(f"{url}/predict", json=rows, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    ids = [p["prediction_id"] for p in body["predictions"]]
    assert ids == [f"{body['request_id']}-{i}" for i in range(len(rows))]
    return ids


def stored(log_db) -> dict:
    with sqlite3.connect(log_db) as con:
        return {pid: json.loads(label) for pid, label in con.execute("select prediction_id, label from feedback")}


def test_good_feedback_is_stored(site):
    root, url, log_db, batch = site
    rows = batch.iloc[:6]
    ids = predict(url, rows)
    t0 = time.perf_counter()
    r = requests.post(f"{url}/feedback", json=[{"prediction_id": i, "label": y} for i, y in zip(ids, rows["species"])], timeout=30)
    print(f"\nPOST /feedback of 6 labels right after /predict: {time.perf_counter() - t0:.3f} s")
    assert (r.status_code, r.json()) == (200, {"received": 6, "stored": 6}), r.text
    got = stored(log_db)
    assert {i: got[i] for i in ids} == dict(zip(ids, rows["species"]))
    from mlops_nb.logstore import labelled_window
    w = labelled_window(log_db)
    mine = w[w.prediction_id.isin(ids)].set_index("prediction_id").loc[ids]
    assert mine["label"].tolist() == rows["species"].tolist()
    assert mine["bill_length_mm"].tolist() == pytest.approx(rows["bill_length_mm"].tolist(), nan_ok=True)
    assert set(mine["model_version"]) == {requests.get(f"{url}/health", timeout=5).json()["model_version"]}


@pytest.mark.parametrize("bad, problem", [
    ({"prediction_id": "nope-0", "label": "Adelie"}, "unknown_id"),
    ({"label": "Dragon"}, "label_type"),                 # not one of the classes
    ({"label": 3.5}, "label_type"),                      # not a class at all
    ("duplicate", "duplicate"),                          # the same id twice in one batch
    ("labelled", "already_labelled"),
])
def test_bad_feedback_is_refused_per_row_and_nothing_stored(site, bad, problem):
    root, url, log_db, batch = site
    ids = predict(url, batch.iloc[:3])
    good = [{"prediction_id": ids[0], "label": batch.species.iloc[0]}]
    if bad == "duplicate": item = {"prediction_id": ids[0], "label": batch.species.iloc[0]}
    elif bad == "labelled":
        assert requests.post(f"{url}/feedback", json=[{"prediction_id": ids[2], "label": "Adelie"}], timeout=30).status_code == 200
        item = {"prediction_id": ids[2], "label": "Gentoo"}
    else: item = {"prediction_id": ids[1], **bad}
    before = stored(log_db)
    r = requests.post(f"{url}/feedback", json=good + [item], timeout=30)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert [(e["row"], e["problem"]) for e in detail] == [(1, problem)], detail
    assert detail[0]["message"].startswith(f"row 1: prediction_id {item['prediction_id']!r}: ")
    assert r.json()["stored"] == 0 and stored(log_db) == before          # the good row was not stored either


def test_cli_round_trip(site, tmp_path):
    root, url, log_db, batch = site
    rows = batch.iloc[6:16]
    ids = predict(url, rows)
    labels = pd.DataFrame({"pid": ids, "species": rows["species"].tolist()})
    bad = labels.copy(); bad.loc[3, "species"] = "Dragon"; bad.loc[7, "pid"] = "nope-7"
    bad.to_csv(tmp_path/"bad.csv", index=False)
    args = ["feedback", "--input", str(tmp_path/"bad.csv"), "--id-column", "pid", "--label-column", "species"]
    r = run([tool("mlops-nb"), *args], root, check=False, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"bad.csv line 5 (data row 3): pid {ids[3]!r}: unknown class 'Dragon'" in r.stderr, r.stderr
    assert "bad.csv line 9 (data row 7): pid 'nope-7': no logged prediction" in r.stderr and "nothing was stored" in r.stderr
    assert "Traceback" not in r.stderr and not set(ids) & set(stored(log_db))
    labels.to_csv(tmp_path/"labels.csv", index=False)
    args[2] = str(tmp_path/"labels.csv")
    r = run([tool("mlops-nb"), *args], root, timeout=120)
    assert r.stdout.startswith(f"10 labels from {tmp_path/'labels.csv'} stored in"), r.stdout
    got = stored(log_db)
    assert {i: got[i] for i in ids} == dict(zip(ids, rows["species"]))
    r = run([tool("mlops-nb"), *args], root, check=False, timeout=120)     # again: every row is already labelled
    assert r.returncode == 1 and r.stderr.count("already has a label") == 10, r.stderr


def test_monitor_measures_decay_on_the_labelled_log(site, tmp_path):
    """Decay on live traffic: rows predicted by the service, then labelled through /feedback. Right labels: the metric
    is about the one at acceptance; wrong labels (another class for every row): the decay raises the signal. Both come
    with their interval, and CBPE's estimate (which sees only the inputs) stays where it was."""
    root, url, log_db, batch = site
    test = pd.read_parquet(root/"data/processed/test.parquet")
    rows = pd.concat([test, batch], ignore_index=True)
    def window(labels) -> tuple[str, str]:
        start = pd.Timestamp.now(tz="UTC").isoformat()
        ids = predict(url, rows)
        r = requests.post(f"{url}/feedback", json=[{"prediction_id": i, "label": y} for i, y in zip(ids, labels)], timeout=60)
        assert r.status_code == 200, r.text
        time.sleep(0.01)
        return start, pd.Timestamp.now(tz="UTC").isoformat()
    classes = sorted(rows["species"].unique())
    right = window(rows["species"].tolist())
    wrong = window([classes[(classes.index(y) + 1) % len(classes)] for y in rows["species"]])
    out = {}
    for name, (since, until) in (("right", right), ("wrong", wrong)):
        r = run([tool("mlops-nb"), "monitor", "--log", "--db", str(log_db), "--since", since, "--until", until,
                 "--out-dir", str(tmp_path/name), "--no-profile"], root, check=False, timeout=300)
        assert r.returncode in (0, 1), r.stdout + r.stderr
        out[name] = json.loads((tmp_path/name/"monitor.json").read_text())
        print(f"\n{name} labels: {r.stdout}")
    for res in out.values():
        assert res["labelled_rows"] == len(rows) and res["rows_current"] == len(rows)
        lo, hi = res["metric_current_interval"]
        assert lo <= res["metric_current"] <= hi and res["estimated"]["method"] == "CBPE"
        assert res["estimated"]["interval"][0] <= res["estimated"]["value"] <= res["estimated"]["interval"][1]
        assert "Performance: balanced_accuracy" in (tmp_path/("right" if res is out["right"] else "wrong")/"drift.html").read_text()
    ok, bad = out["right"], out["wrong"]
    assert abs(ok["decay"]) < 0.1 and not any("decayed" in r for r in ok["reasons"]), ok
    assert bad["metric_current"] < 0.2 and bad["decay"] > 0.5 and bad["status"] == "drift: retrain recommended"
    assert any(r.startswith("the primary metric decayed by") for r in bad["reasons"]), bad["reasons"]
    assert bad["decay_interval"][0] <= bad["decay"] <= bad["decay_interval"][1]
    assert ok["estimated"]["value"] == bad["estimated"]["value"]           # the same inputs: the same estimate
    assert abs(ok["estimated"]["value"] - ok["metric_current"]) < 0.1, ok["estimated"]


def test_cbpe_raises_the_signal_without_labels(site, tmp_path):
    """Performance without labels: the service receives rows halfway between an Adelie and a Chinstrap penguin of the
    training split (a region the model never saw, where it is unsure), and no label at all. CBPE's estimate of the
    primary metric drops by more than monitor.max_decay, and that alone is a reason of the signal."""
    root, url, log_db, batch = site
    train = pd.read_parquet(root/"data/processed/train.parquet")
    a = train[train.species == "Adelie"].reset_index(drop=True); c = train[train.species == "Chinstrap"].reset_index(drop=True)
    n, num = min(len(a), len(c)), ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    rows = a.iloc[:n].copy()
    rows[num] = 0.5 * a.loc[:n - 1, num].to_numpy() + 0.5 * c.loc[:n - 1, num].to_numpy()
    rows["island"] = "Dream"
    since = pd.Timestamp.now(tz="UTC").isoformat()
    predict(url, rows)
    r = run([tool("mlops-nb"), "monitor", "--log", "--db", str(log_db), "--since", since, "--out-dir", str(tmp_path),
             "--no-profile"], root, check=False, timeout=300)
    print(f"\n{r.stdout}")
    res = json.loads((tmp_path/"monitor.json").read_text())
    assert r.returncode == 1 and res["rows_current"] == n and "labelled_rows" not in res and res.get("metric_current") is None
    est = res["estimated"]
    assert est["method"] == "CBPE" and est["rows"] == n and est["calibration_rows"] > 0
    assert est["decay"] > res["max_decay"] and est["decay"] == res["estimated_decay"]
    assert any(x.startswith("the primary metric estimated without labels (CBPE) decayed by") for x in res["reasons"]), res["reasons"]
