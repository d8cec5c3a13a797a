"""The loop closed without a person, for real, on 127.0.0.1: `mlops-nb serve` (uvicorn) answers a stream of requests
with feedback while `mlops-nb watch` monitors its log window every 2 s. In-distribution traffic raises no notification;
a drifted stream makes the monitor job signal, a local webhook receives the drift naming the drifted feature, the
retrain job gives an accepted champion and the service answers with it — no request fails. Poisoned labels make the
retrained model fail acceptance: the champion stays and the failure is notified."""
import json, os, signal, subprocess, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml

from conftest import FAST, copy_finished, run, tool
from test_serve_reload import start
from test_serve import stop_server

DRIFTED, SHIFT_G = "body_mass_g", 1200      # +1.5 training standard deviations: material drift of a minor feature
SIGNAL_LIMIT_S, CHAMPION_LIMIT_S = 120, 600
STOP_LIMIT_S = 600      # a retraining that started before SIGTERM runs to its end: a whole pipeline run on a busy machine


def loop_project(project, dest: Path) -> Path:
    "A copy of the finished project with fast training settings and the watch jobs on (monitor every 2 s, retrain on signal)."
    root = copy_finished(project, dest)
    p = yaml.safe_load((root/"params.yaml").read_text())
    for section, values in FAST.items(): p[section].update(values)       # conftest's small-project settings
    p["validate"]["profile_minimal"] = True
    p["monitor"].update(profile_compare=False, window="")
    p["notify"] = {"webhooks": ["LOOP_HOOK", "LOOP_DEAD_HOOK"], "timeout_s": 1.0, "retries": 1, "backoff_s": 0.1, "budget_s": 3.0}
    p["watch"] = {"jobs": {"monitor": {"every": "2s"}, "retrain": {}}}
    (root/"params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    return root


class Traffic:
    "Requests to the service: every failure (exception or non-200) is kept; `send` returns the prediction ids."
    def __init__(self, url): self.url, self.failures, self.sent = url, [], 0
    def post(self, path, body):
        try:
            r = requests.post(f"{self.url}{path}", json=body, timeout=30)
            if r.status_code != 200: self.failures.append((path, r.status_code, r.text[:300]))
            return r.json() if r.status_code == 200 else None
        except requests.RequestException as e: self.failures.append((path, type(e).__name__, str(e))); return None
    def send(self, frame: pd.DataFrame, labels) -> None:
        rows = json.loads(frame.drop(columns="species").to_json(orient="records"))
        out = self.post("/predict", rows); self.sent += len(rows)
        if out: self.post("/feedback", [{"prediction_id": p["prediction_id"], "label": y} for p, y in zip(out["predictions"], labels)])


def watch(root: Path, env_extra: dict):
    env = {**os.environ, **env_extra, "PYTHONFAULTHANDLER": "1", "PATH": str(Path(tool("mlops-nb")).parent) + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.Popen([tool("mlops-nb"), "watch", "--project", str(root)], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def jobs(root: Path) -> list[dict]:
    f = root/"reports/jobs.jsonl"
    return [json.loads(l) for l in f.read_text().splitlines() if l.strip()] if f.is_file() else []


def wait_for(cond, limit_s: float, what: str, proc=None):
    deadline = time.time() + limit_s
    while time.time() < deadline:
        v = cond()
        if v: return v
        if proc is not None and proc.poll() is not None: raise AssertionError(f"watch exited: {proc.stdout.read()[-4000:]}")
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {limit_s} s")


def drifted_rows(root: Path, n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    train = pd.read_parquet(root/"data/processed/train.parquet")
    d = train.sample(n, replace=n > len(train), random_state=seed).reset_index(drop=True)
    d[DRIFTED] = d[DRIFTED] + SHIFT_G + rng.integers(-60, 60, len(d))     # jitter: no exact repeats of training rows
    return d


def run_loop(root: Path, hook, poison: bool):
    "Stream in-distribution rows, then drifted ones; returns (traffic, watch process, champion before, drift onset time)."
    from mlops_nb.registry import champion_version
    url, serve = start(root)
    before = champion_version(root/"models/package")
    w = watch(root, {"LOOP_HOOK": f"http://127.0.0.1:{hook.server_port}/hook", "LOOP_DEAD_HOOK": "http://127.0.0.1:9/dead"})
    t = Traffic(url)
    batch = pd.read_parquet(root/"data/processed/batch.parquet")
    for i in range(0, len(batch), 10):                                  # the training distribution, with true labels
        t.send(batch.iloc[i:i + 10], batch.species.iloc[i:i + 10].tolist()); time.sleep(0.2)
    phase1_end = time.time()
    ok_after = lambda: [j for j in jobs(root) if j["job"] == "monitor" and j["outcome"] == "ok"
                        and pd.Timestamp(j["start"]).timestamp() >= phase1_end - 1]
    wait_for(lambda: len(ok_after()) >= 2, 60, "two monitor runs on the in-distribution window", w)
    assert hook.got == [], f"in-distribution traffic notified: {[m['event'] for m in hook.got]}"
    assert all(j["outcome"] in ("ok", "unknown") for j in jobs(root)), jobs(root)
    onset = time.time()
    d = drifted_rows(root)
    classes = sorted(batch.species.unique())
    labels = (np.random.default_rng(1).choice(classes, len(d)).tolist() if poison else d.species.tolist())   # poison: noise
    for i in range(0, len(d), 10):
        t.send(d.iloc[i:i + 10], labels[i:i + 10]); time.sleep(0.2)
    return url, serve, w, t, before, onset


def events(hook, name): return [(at, m) for at, m in hook.arrivals if m["event"] == name]


def stop_watch(w) -> str:
    "SIGTERM stops `watch` after its running jobs: a retraining that started on newer feedback runs to its end first."
    w.send_signal(signal.SIGTERM)
    try: out, _ = w.communicate(timeout=STOP_LIMIT_S)
    except subprocess.TimeoutExpired:   # PYTHONFAULTHANDLER: SIGABRT prints every thread's stack, to show what hangs
        w.send_signal(signal.SIGABRT); out, _ = w.communicate(timeout=60)
        raise AssertionError(f"watch did not stop within {STOP_LIMIT_S} s of SIGTERM:\n{out[-12000:]}") from None
    assert w.returncode == 0 and "watch: stopped" in out, out[-3000:]
    return out


def test_drift_notifies_retrains_and_the_service_follows_the_new_champion(project, tmp_path, hook):
    root = loop_project(project, tmp_path/"p")
    url, serve, w, t, before, onset = run_loop(root, hook, poison=False)
    try:
        at, drift = wait_for(lambda: next(iter(events(hook, "drift")), None), SIGNAL_LIMIT_S, "a drift notification", w)
        assert DRIFTED in [f["feature"] for f in drift["drifted_features"]], drift
        assert drift["model_version"] == before and DRIFTED in drift["text"] and drift["links"]["drift_report"].endswith("drift.html")
        at2, champ = wait_for(lambda: next(iter(events(hook, "new_champion")), None), CHAMPION_LIMIT_S, "a new champion", w)
        new = champ["model_version"]; assert new != before
        served_at = wait_for(lambda: requests.get(f"{url}/health", timeout=10).json()["model_version"] == new and time.time(), 30,
                             "the service answering with the new champion")
        out = t.post("/predict", json.loads(pd.read_parquet(root/"data/processed/batch.parquet").drop(columns="species")
                                            .head(3).to_json(orient="records")))
        assert out and out["model_version"] == new, out
        assert t.failures == [], t.failures[:5]
        assert events(hook, "job_failed") == [], events(hook, "job_failed")
        from mlops_nb.registry import read_history
        assert read_history(root/"models/package")[-1]["to"] == new and read_history(root/"models/package")[-1]["action"] == "retrain"
        print(f"\nloop: {t.sent} requests, none failed; drift onset -> notification {at - onset:.1f} s, -> new champion "
              f"notified {at2 - onset:.1f} s, -> served {served_at - onset:.1f} s ({before} -> {new})")
    finally:
        out = stop_watch(w)
        stop_server(serve)
    log = [json.loads(l) for l in (root/"reports/notifications.jsonl").read_text().splitlines()]
    assert any(e.get("webhook") == "LOOP_DEAD_HOOK" and not e["ok"] for e in log)        # the dead one was tried, logged, harmless
    assert "127.0.0.1:9/dead" not in (root/"reports/notifications.jsonl").read_text()
    assert any(j["job"] == "retrain" and j["outcome"] == "ok" for j in jobs(root)), jobs(root)
    run([tool("mlops-nb"), "report"], root)
    assert "id='jobs'" in (root/"reports/index.html").read_text()


def test_a_retrained_model_that_fails_acceptance_keeps_the_champion_and_is_notified(project, tmp_path, hook):
    root = loop_project(project, tmp_path/"p")
    p = yaml.safe_load((root/"params.yaml").read_text()); p["acceptance"]["min_primary_metric"] = 1.01
    (root/"params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    # a gate no model can pass (balanced accuracy <= 1), so the outcome does not hang on how many noisy rows the window
    # held when the signal fired; the drifted rows also come with random labels
    url, serve, w, t, before, onset = run_loop(root, hook, poison=True)
    try:
        at, fail = wait_for(lambda: next(iter(events(hook, "gate_failed")), None), CHAMPION_LIMIT_S, "a gate_failed notification", w)
        assert fail["model_version"] == before and "stays" in fail["message"], fail
        assert any(g["passed"] is False for g in fail["gates"]), fail
        assert events(hook, "new_champion") == []
        assert requests.get(f"{url}/health", timeout=10).json()["model_version"] == before
        assert t.failures == [], t.failures[:5]
        print(f"\nrejected retrain: drift onset -> failure notified {at - onset:.1f} s; the champion stays {before}")
    finally:
        stop_watch(w)
        stop_server(serve)
    from mlops_nb.registry import champion_version
    assert champion_version(root/"models/package") == before
    assert any(j["job"] == "retrain" and j["outcome"] == "failed" for j in jobs(root)), jobs(root)
