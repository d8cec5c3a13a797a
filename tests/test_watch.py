"""`mlops-nb watch --once` and `mlops-nb schedule` as a user runs them, on a copy of the finished project: a failing
job is recorded and notified and the others still run; a dead webhook costs nothing; bad watch settings are refused
naming the key; the crontab lines and the GitHub Actions workflow are generated from the same jobs (the YAML parsed)."""
import json, time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import mini_project, run, tool


def with_watch(root: Path, jobs: dict, notify: dict | None = None) -> Path:
    p = yaml.safe_load((root/"params.yaml").read_text())
    p["watch"] = {"jobs": jobs}
    if notify is not None: p["notify"] = notify
    (root/"params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    return root


def watch_once(root: Path, env: dict):
    "`mlops-nb watch --once` with the webhook variables `env` set."
    import os, subprocess
    return subprocess.run([tool("mlops-nb"), "watch", "--once"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env, "PATH": str(Path(tool("mlops-nb")).parent) + os.pathsep + os.environ["PATH"]})


def test_once_records_every_job_a_failure_is_notified_and_stops_nothing(project, tmp_path, hook):
    root = mini_project(project, tmp_path/"p")
    pd.read_parquet(root/"data/processed/batch.parquet").drop(columns="species").to_csv(root/"new.csv", index=False)
    with_watch(root, {"monitor": {"every": "1m"}, "score": {"every": "1h", "input": "new.csv"}, "retrain": {}},
               {"webhooks": ["H_OK", "H_DEAD", "H_UNSET"], "timeout_s": 1.0, "retries": 2, "backoff_s": 0.1, "budget_s": 3.0})
    env = {"H_OK": f"http://127.0.0.1:{hook.server_port}/x", "H_DEAD": "http://127.0.0.1:9/secret-token"}
    t0 = time.perf_counter()
    r = watch_once(root, env)
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    recs = [json.loads(l) for l in (root/"reports/jobs.jsonl").read_text().splitlines()]
    assert [(j["job"], j["outcome"]) for j in recs] == [("monitor", "unknown"), ("score", "ok"), ("retrain", "skipped")], recs
    assert "no prediction log yet" in recs[0]["message"] and "69 predictions" in recs[1]["message"]
    assert hook.got == []                                       # nothing happened that is worth a message
    (root/"new.csv").unlink()                                   # now the score job fails: recorded, notified, the others run
    r = watch_once(root, env)
    assert r.returncode == 1, r.stdout + r.stderr
    recs = [json.loads(l) for l in (root/"reports/jobs.jsonl").read_text().splitlines()][3:]
    assert [(j["job"], j["outcome"]) for j in recs] == [("monitor", "unknown"), ("score", "failed"), ("retrain", "skipped")], recs
    assert "new.csv" in recs[1]["message"]
    assert [m["event"] for m in hook.got] == ["job_failed"] and "job score failed" in hook.got[0]["text"], hook.got
    log = [json.loads(l) for l in (root/"reports/notifications.jsonl").read_text().splitlines()]
    assert {(e.get("webhook"), e["ok"]) for e in log} == {(None, False), ("H_OK", True), ("H_DEAD", False)}, log
    dead = next(e for e in log if e.get("webhook") == "H_DEAD")
    assert dead["attempts"] == 3 and dead["seconds"] < 3.5 and dead["target"] == "http://127.0.0.1:9/…", dead
    assert "secret-token" not in (root/"reports/notifications.jsonl").read_text()
    assert any("H_UNSET is not set" in (e.get("error") or "") for e in log)
    run([tool("mlops-nb"), "report"], root, check=False)
    print(f"\nwatch --once (monitor + score + retrain): {seconds:.1f} s")


@pytest.mark.parametrize("jobs,expect", [
    ({"monitor": {"every": "soon"}}, "watch.jobs.monitor.every: expected an interval"),
    ({"monitor": {"cron": "99 * * * *"}}, "watch.jobs.monitor.cron: '99 * * * *' is not a crontab expression"),
    ({"backup": {"every": "1h"}}, "watch.jobs.backup: unknown job"),
    ({"score": {"every": "1h"}}, "watch.jobs.score.input"),
    ({"monitor": {"every": "1m", "cron": "* * * * *"}}, "give `every` or `cron`, not both"),
    ({"monitor": {"every": "1m", "windw": "1h"}}, "watch.jobs.monitor.windw is not a setting"),
])
def test_bad_watch_settings_are_refused_naming_the_key(project, tmp_path, jobs, expect):
    root = with_watch(mini_project(project, tmp_path/"p"), jobs)
    for cmd in (["watch", "--once"], ["schedule", "--crontab"]):
        r = run([tool("mlops-nb"), *cmd], root, check=False)
        assert r.returncode == 1 and expect in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (root/"reports/jobs.jsonl").exists()


def test_schedule_writes_a_crontab_line_and_a_github_workflow(project, tmp_path):
    root = with_watch(mini_project(project, tmp_path/"p"), {"monitor": {"every": "10m"}, "retrain": {},
                                                          "score": {"cron": "0 3 * * *", "input": "new.csv"}},
                      {"webhooks": ["SLACK_URL"]})
    tab = run([tool("mlops-nb"), "schedule", "--crontab"], root).stdout
    lines = [l for l in tab.splitlines() if l and not l.startswith("#")]
    assert lines == [f"*/10 * * * * cd {root} && mlops-nb watch --once --job monitor --job retrain >> reports/watch-cron.log 2>&1",
                     f"0 3 * * * cd {root} && mlops-nb watch --once --job score >> reports/watch-cron.log 2>&1"], tab
    run([tool("mlops-nb"), "schedule", "--ci", "github", "--write", ".github/workflows/watch.yml"], root)
    wf = yaml.safe_load((root/".github/workflows/watch.yml").read_text())
    on = wf.get("on", wf.get(True))                             # YAML 1.1 reads a bare `on` key as True
    assert sorted(c["cron"] for c in on["schedule"]) == ["*/10 * * * *", "0 3 * * *"] and "workflow_dispatch" in on
    steps = wf["jobs"]["watch"]["steps"]
    runs = [s["run"] for s in steps if s.get("run", "").startswith("mlops-nb watch")]
    assert runs == ["mlops-nb watch --once --job monitor --job retrain", "mlops-nb watch --once --job score"]
    assert all(s["env"] == {"SLACK_URL": "${{ secrets.SLACK_URL }}"} for s in steps if s.get("run", "").startswith("mlops-nb watch"))
    with_watch(root, {"monitor": {"every": "2m"}})            # GitHub's schedule cannot fire every 2 minutes
    r = run([tool("mlops-nb"), "schedule", "--ci", "github"], root, check=False)
    assert r.returncode == 1 and "watch.jobs.monitor: every 2m cannot be written for cron" in r.stderr, r.stderr
