"""`mlops-nb monitor` for real, in the pipeline's project copy: a batch file and the service's prediction log as
sources, exit codes, reports, bad input; and a drifted labelled batch followed by `--retrain` in a copy of
that project, which runs the whole pipeline once more through the acceptance gates."""
import json, shutil, sqlite3
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from conftest import run, tool


def gentoo_batch(project, n=150, seed=0) -> pd.DataFrame:
    "New penguins from one species and island, measured again (small jitter): a change of population mix, labels included."
    raw = pd.read_parquet(project/"data/raw/raw.parquet")
    rng = np.random.default_rng(seed)
    g = raw[raw.species == "Gentoo"].dropna().sample(n, replace=True, random_state=seed).reset_index(drop=True)
    for c in ("bill_length_mm", "bill_depth_mm"): g[c] = (g[c] + rng.normal(0, 0.3, n)).round(1)
    g["flipper_length_mm"] += rng.integers(-2, 3, n); g["body_mass_g"] += rng.integers(-50, 51, n)
    return g


def write_log(db, rows: pd.DataFrame, predictions, version, start, step=timedelta(minutes=1)):
    "The REST service's log table, in the contract's exact format, written with sqlite3 alone."
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE IF NOT EXISTS prediction_log (id INTEGER PRIMARY KEY AUTOINCREMENT, logged_at TEXT, "
                    "model_version TEXT, request_id TEXT, features TEXT, prediction TEXT)")
        recs = json.loads(rows.to_json(orient="records"))          # NaN → null, as the service logs a missing value
        con.executemany("INSERT INTO prediction_log (logged_at, model_version, request_id, features, prediction) VALUES (?,?,?,?,?)",
                        [((start + i * step).isoformat(timespec="microseconds"), version, f"req-{i}", json.dumps(r), json.dumps(p))
                         for i, (r, p) in enumerate(zip(recs, predictions))])


def monitor_cmd(project, *args):
    return run([tool("mlops-nb"), "monitor", *args], project, check=False)


def test_batch_file_no_drift_then_drift_with_reports(project, tmp_path):
    batch = pd.read_parquet(project/"data/processed/batch.parquet")
    same = tmp_path/"same.parquet"; batch.to_parquet(same)
    r = monitor_cmd(project, "--current", str(same), "--out-dir", str(tmp_path/"a"))
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((tmp_path/"a/monitor.json").read_text())
    assert res["status"] == "no drift" and res["exit_code"] == 0 and res["bonferroni_tests"] == 8
    assert res["decay"] is not None and abs(res["decay"]) <= 0.05          # labelled: the metric is measured
    page = (tmp_path/"a/drift.html").read_text()
    assert "Kolmogorov-Smirnov" in page and "Jensen-Shannon" in page and "data:image/png;base64" in page and "drift_profile.html" in page
    prof = (tmp_path/"a/drift_profile.html").read_text()
    assert len(prof) > 50_000 and "reference" in prof and "current" in prof and "bill_length_mm" in prof
    moved = tmp_path/"gentoo.csv"; gentoo_batch(project).to_csv(moved, index=False)
    r = monitor_cmd(project, "--current", str(moved), "--out-dir", str(tmp_path/"a"), "--no-profile")
    assert r.returncode == 1, r.stdout + r.stderr
    res = json.loads((tmp_path/"a/monitor.json").read_text())
    assert res["status"] == "drift: retrain recommended" and {"island", "bill_depth_mm"} <= set(res["drifted_features"])
    assert res["prediction_drift"]["drifted"] and "features drifted" in r.stdout
    steps = pd.read_csv(tmp_path/"a/dvclive/plots/metrics/drift_share.tsv", sep="\t")   # one point per run, to plot drift over time
    assert steps["step"].tolist() == [0, 1] and steps["drift_share"].iloc[0] == 0 < steps["drift_share"].iloc[1]


def test_prediction_log_over_a_window(project, tmp_path):
    from mlops_nb.serve import load_model
    served = load_model(project/"models/package")
    batch = pd.read_parquet(project/"data/processed/batch.parquet").drop(columns="species")
    gentoo = gentoo_batch(project).drop(columns="species")
    now = datetime.now(timezone.utc)
    db = tmp_path/"log.db"
    write_log(db, gentoo, served.predict(gentoo)["prediction"], served.version, now - timedelta(days=30))   # a month ago
    write_log(db, batch, served.predict(batch)["prediction"], served.version, now - timedelta(hours=3))     # today
    r = monitor_cmd(project, "--log", "--db", str(db), "--last", "1d", "--out-dir", str(tmp_path/"day"), "--no-profile")
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((tmp_path/"day/monitor.json").read_text())
    assert res["rows_current"] == len(batch) and res["status"] == "no drift"
    assert "decay" not in res                                         # the log has no labels
    r = monitor_cmd(project, "--log", "--db", f"sqlite:///{db}", "--last", "", "--out-dir", str(tmp_path/"all"), "--no-profile")
    assert r.returncode == 1, r.stdout + r.stderr
    res = json.loads((tmp_path/"all/monitor.json").read_text())
    assert res["rows_current"] == len(batch) + len(gentoo) and "island" in res["drifted_features"]
    champion = (project/"models/package/current.json").read_text()
    r = monitor_cmd(project, "--log", "--db", str(db), "--last", "", "--out-dir", str(tmp_path/"all"), "--no-profile", "--retrain")
    assert r.returncode == 3 and "retraining needs labelled rows" in r.stderr          # the log has no labels
    res = json.loads((tmp_path/"all/monitor.json").read_text())
    assert res["status"] == "drift: retrain recommended" and res["retrain"]["ran"] is False   # the drift result stands
    assert (project/"models/package/current.json").read_text() == champion
    r = monitor_cmd(project, "--log", "--db", str(db), "--since", (now - timedelta(days=31)).isoformat(),
                    "--until", (now - timedelta(days=29)).isoformat(), "--out-dir", str(tmp_path/"old"), "--no-profile")
    assert r.returncode == 1 and json.loads((tmp_path/"old/monitor.json").read_text())["rows_current"] == len(gentoo)


def test_what_cannot_be_evaluated_exits_2_with_the_reason(project, tmp_path):
    status = tmp_path/"s.json"
    r = monitor_cmd(project, "--current", str(tmp_path/"missing.csv"), "--status-file", str(status), "--out-dir", str(tmp_path))
    assert r.returncode == 2 and "missing.csv not found" in r.stderr and "Traceback" not in r.stderr
    assert json.loads(status.read_text())["status"] == "could not evaluate"
    (tmp_path/"empty.db").touch()
    r = monitor_cmd(project, "--log", "--db", str(tmp_path/"empty.db"), "--out-dir", str(tmp_path))
    assert r.returncode == 2 and "no table 'prediction_log'" in r.stderr
    few = tmp_path/"few.csv"; pd.read_parquet(project/"data/processed/batch.parquet").head(5).to_csv(few, index=False)
    r = monitor_cmd(project, "--current", str(few), "--out-dir", str(tmp_path), "--no-profile")
    assert r.returncode == 2 and "fewer than monitor.min_rows" in json.loads((tmp_path/"monitor.json").read_text())["reasons"][0]
    # broken columns are counted, not fatal
    bad = pd.read_parquet(project/"data/processed/batch.parquet").drop(columns=["sex"]).astype({"body_mass_g": object})
    bad.loc[:2, "body_mass_g"] = "heavy"; bad.loc[:1, "island"] = "Atlantis"
    bad.to_csv(tmp_path/"bad.csv", index=False)
    r = monitor_cmd(project, "--current", str(tmp_path/"bad.csv"), "--out-dir", str(tmp_path), "--no-profile")
    assert r.returncode in (0, 1), r.stderr
    v = " | ".join(json.loads((tmp_path/"monitor.json").read_text())["schema_violations"])
    assert "'sex': missing" in v and "3 values are not numbers" in v and "unseen categories ['Atlantis']" in v


def test_pipeline_step_writes_the_signal_and_links_both_reports(project):
    res = json.loads((project/"reports/monitor.json").read_text())
    assert res["status"] in ("no drift", "drift: retrain recommended") and res["exit_code"] in (0, 1)
    assert {"drift_share", "reasons", "schema_violation_count", "prediction_drift", "features"} <= set(res)
    assert json.loads((project/"reports/dvclive/monitor/metrics.json").read_text())["drift_share"] == res["drift_share"]
    hrefs = []
    class P(HTMLParser):
        def handle_starttag(self, tag, attrs): hrefs.extend(v for k, v in attrs if k == "href")
    P().feed((project/"reports/index.html").read_text())
    assert "drift.html" in hrefs and "drift_profile.html" in hrefs


@pytest.fixture(scope="module")
def retrained(project, tmp_path_factory):
    """A copy of the finished project, then `mlops-nb monitor --current <drifted labelled batch> --retrain` in it twice:
    first with rows whose missing values break a data-quality gate (the run stops at validate), then with good rows."""
    root = tmp_path_factory.mktemp("retrain")/"project"
    shutil.copytree(project, root, symlinks=True)
    # The champion is re-scored on the new test rows; with ~100 of them one penguin is worth 0.01-0.02 of balanced
    # accuracy, and the default tolerance (0.02) rejected the retrained model by 0.0015 (a clear gate failure, which
    # the first run below shows for another gate). This project tolerates 0.05, so the accepted path is tested too.
    params = (root/"params.yaml").read_text()
    # A mostly-empty feature is dropped with a warning by default (issue 13); this project keeps the strict contract
    # (missing: error), so that the unsexed batch below breaks a data-quality gate as a bad batch would.
    params = params.replace("max_regression_vs_champion: 0.02", "max_regression_vs_champion: 0.05")
    (root/"params.yaml").write_text(params.replace("{missing: drop,", "{missing: error,"))
    assert "max_regression_vs_champion: 0.05" in (root/"params.yaml").read_text()
    assert "{missing: error," in (root/"params.yaml").read_text()
    before = json.loads((root/"models/package/current.json").read_text())["version"]
    bad = root.parent/"unsexed.csv"; gentoo_batch(root, seed=1).assign(sex=None).to_csv(bad, index=False)
    good = root.parent/"gentoo.csv"; gentoo_batch(root).to_csv(good, index=False)
    cmd = lambda f: run([tool("mlops-nb"), "monitor", "--current", str(f), "--retrain", "--no-profile"], root, check=False, timeout=1200)
    failed = cmd(bad)
    failed_state = (json.loads((root/"reports/monitor.json").read_text()), (root/"params.yaml").read_text(),
                    json.loads((root/"models/package/current.json").read_text())["version"])
    return root, before, failed, failed_state, cmd(good)


def test_a_retrained_model_that_fails_a_gate_leaves_the_champion(retrained):
    root, before, r, (res, params_after, champion), _ = retrained
    assert r.returncode == 3, r.stdout[-3000:] + r.stderr[-3000:]
    assert "no new champion; step validate failed: DataQualityError" in r.stderr and "column 'sex'" in r.stderr
    assert res["retrain"]["accepted"] is False and res["retrain"]["failed_step"] == "validate"
    assert champion == before                                          # the champion stays
    assert "source: bundled:penguins" in params_after                  # and the recipe is put back


def test_drift_then_retrain_yields_a_new_accepted_model(retrained):
    root, before, _, _, r = retrained
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]     # the signal stays "drift"; the retraining succeeded
    res = json.loads((root/"reports/monitor.json").read_text())
    info = res["retrain"]
    assert res["status"] == "drift: retrain recommended" and info["accepted"] is True and info["rows_added"] == 150
    after = json.loads((root/"models/package/current.json").read_text())["version"]
    assert info["previous_version"] == before and info["new_version"] == after != before
    assert f"new model {after} accepted" in r.stdout
    acc = json.loads((root/"reports/acceptance.json").read_text())
    assert acc["accepted"] and all(g["passed"] for g in acc["gates"])
    assert any("champion" in g["gate"] for g in acc["gates"])          # judged against the champion, like any candidate
    raw = pd.read_parquet(root/"data/raw/raw.parquet")
    assert len(raw) == 344 + 150                                        # the new data went through ingest, like any data
    assert info["source"] in (root/"params.yaml").read_text()           # and the recipe says where it came from
    lineage = json.loads((root/"models/package"/after/"lineage.json").read_text())
    assert lineage["params"]["ingest"]["source"] == info["source"]
