"""The whole pipeline on the bundled data, run for real in a copy of the project: every output exists and is sane."""
import contextlib, json, re, sqlite3
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import run, tool

ACCURACY_FLOOR = 0.9   # penguins species from body measurements: the models reach ~0.97-1.0
STEPS = ["ingest", "validate", "wrangle", "split", "train", "evaluate", "acceptance", "package", "serve", "monitor"]


def params(root):
    return yaml.safe_load((root/"params.yaml").read_text())


def test_run_prints_progress_and_the_report_path(pipeline_run):
    root, result, _ = pipeline_run
    out = result.stdout
    for i, step in enumerate(STEPS, 1):
        assert re.search(rf"\[{i}/{len(STEPS)}\] {step}: done in [\d.]+ s", out), f"no progress line for {step}"
    assert out.rstrip().endswith(f"report: {root/'reports/index.html'}")


def test_raw_snapshot_and_its_hash(project):
    from mlops_nb.core import frame_sha256
    m = json.loads((project/"data/raw/manifest.json").read_text())
    raw = pd.read_parquet(project/"data/raw/raw.parquet")
    assert (m["rows"], m["columns"]) == raw.shape == (344, 8)
    assert m["data_sha256"] == frame_sha256(raw)
    assert re.fullmatch(r"[0-9a-f]{64}", m["source_sha256"])


def test_profile_report_is_a_ydata_profiling_page(project):
    page = (project/"reports/profile.html").read_text()
    assert len(page) > 100_000 and "bill_length_mm" in page and "Overview" in page


def test_dvclive_metrics_and_plots_are_readable_by_dvc(project):
    shown = json.loads(run([tool("dvc"), "metrics", "show", "--json"], project).stdout)
    metrics = {k: v["data"] for rev in shown.values() for k, v in rev["data"].items()}
    test = metrics["reports/dvclive/evaluate/metrics.json"]["test"]
    assert test["accuracy"] >= ACCURACY_FLOOR and test["balanced_accuracy"] >= ACCURACY_FLOOR
    assert metrics["reports/dvclive/train/metrics.json"]["chosen"]["cv_balanced_accuracy"] >= ACCURACY_FLOOR
    plots = run([tool("dvc"), "plots", "show", "--json"], project).stdout
    assert "confusion_matrix.json" in plots and "cv_balanced_accuracy" in plots


def test_packaged_model_reloads_with_trusted_types_and_predicts_like_the_trained_one(project):
    from mlops_nb.core import load_trusted
    from mlops_nb.serve import load_model
    served = load_model(project/"models/package")
    trained = load_trusted(project/"models/trained.skops")
    test = pd.read_parquet(project/"data/processed/test.parquet")
    X = test.drop(columns="species")
    assert served.predict(X)["prediction"].tolist() == trained.predict(X).tolist()
    assert (served.predict(X)["prediction"] == test["species"]).mean() >= ACCURACY_FLOOR


def test_lineage_records_the_whole_recipe(project):
    from mlops_nb.package import current_package
    lin = json.loads((current_package(project/"models/package")/"lineage.json").read_text())
    head = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    assert lin["git"]["commit"] == head and lin["git"]["dirty"] is False
    assert re.fullmatch(r"[0-9a-f]{64}", lin["data"]["data_sha256"])
    assert lin["params"] == params(project)
    assert lin["environment"]["packages"]["scikit-learn"] and lin["environment"]["python"]
    assert lin["machine"]["cpu_count"] >= 1
    for step in STEPS[:7]:   # the steps before packaging, with their timings and data hashes
        assert lin["steps"][step]["timing"]["seconds"] > 0, step
    assert any(k.endswith("train.parquet") for k in lin["steps"]["train"]["inputs"])
    assert lin["metrics"]["test"]["accuracy"] >= ACCURACY_FLOOR
    assert lin["model_sha256"] == json.loads((project/"models/package/current.json").read_text())["model_sha256"]


def test_batch_predictions_are_in_sqlite(project):
    batch = pd.read_parquet(project/"data/processed/batch.parquet")
    version = json.loads((project/"models/package/current.json").read_text())["version"]
    with contextlib.closing(sqlite3.connect(project/"data/predictions.db")) as con:   # closed: no -wal file left
        rows = pd.read_sql("select * from predictions", con)
    assert len(rows) == len(batch) and rows["row_key"].is_unique
    assert set(rows["model_version"]) == {version}
    assert (rows["prediction"].values == batch["species"].values).mean() >= ACCURACY_FLOOR


def test_monitoring_compares_the_batch_with_training_data(project):
    m = json.loads((project/"reports/monitor.json").read_text())
    assert m["status"] in ("no drift", "drift: retrain recommended")
    assert m["rows_current"] == len(pd.read_parquet(project/"data/processed/batch.parquet"))
    assert 0 <= m["drift_share"] <= 1
    page = (project/"reports/drift.html").read_text()
    assert "Kolmogorov-Smirnov" in page and "chi-squared" in page and "data:image/png;base64" in page


class _Links(HTMLParser):
    def __init__(self):
        super().__init__(); self.links = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"): self.links.append(a["href"])
        if tag == "img" and a.get("src") and not a["src"].startswith("data:"): self.links.append(a["src"])


def test_index_links_every_report_and_step_and_shows_metrics(project):
    index = project/"reports/index.html"
    p = _Links(); p.feed(index.read_text())
    targets = {(index.parent/l.split("#")[0]).resolve() for l in p.links if not l.startswith("#")}   # in-page anchors: test_browser
    assert all(t.exists() for t in targets), [str(t) for t in targets if not t.exists()]
    names = {t.name for t in targets}
    assert {"profile.html", "drift.html", "model_card.md", "lineage.json", "confusion_matrix.png"} <= names
    nbs = ["01_ingest", "02_validate", "03_wrangle", "04_split", "05_train", "06_evaluate", "07_acceptance", "08_package", "09_serve", "10_monitor"]
    assert {f"{n}.html" for n in nbs} <= names
    for n in nbs:   # every executed notebook is rendered, with its outputs
        assert "jp-OutputArea" in (project/"reports/steps"/f"{n}.html").read_text()
    text = index.read_text()
    acc = json.loads((project/"reports/dvclive/evaluate/metrics.json").read_text())["test"]["accuracy"]
    assert f"<td>{acc} <small>(" in text and "accepted" in text


def test_second_run_skips_every_stage(pipeline_run):
    root = pipeline_run[0]
    out = run([tool("mlops-nb"), "run"], root).stdout
    assert "Running stage" not in out
    # every file DVC would look at is as the first run left it: DVC is not even started
    assert "nothing changed since the last complete run" in out and "DVC not started" in out, out
    assert f"0 of {len(STEPS)} steps ran" in out
    assert "up to date" in run([tool("dvc"), "status"], root).stdout      # and DVC agrees
    record = root/".dvc/tmp/mlops-nb-last-run.json"
    record.unlink()                                                        # without the record, DVC decides
    out = run([tool("mlops-nb"), "run"], root).stdout
    assert "Running stage" not in out and "DVC not started" not in out
    for stage in STEPS + ["report"]:
        assert f"Stage '{stage}' didn't change, skipping" in out
    assert f"0 of {len(STEPS)} steps ran" in out
    assert record.is_file()                                                # and the record is back for the next run


def test_unknown_parameter_stops_the_step_with_a_clear_error(project):
    good = (project/"params.yaml").read_text()
    p = params(project); p["train"]["cv_fold"] = 3
    before = (project/"models/trained.skops").read_bytes()
    try:
        (project/"params.yaml").write_text(yaml.safe_dump(p))
        r = run([tool("mlops-nb"), "step", "train"], project, check=False)
    finally:
        (project/"params.yaml").write_text(good)
    assert r.returncode == 1
    assert "train.cv_fold is not a parameter of 05_train.ipynb" in r.stderr
    assert "Traceback" not in r.stderr
    assert (project/"models/trained.skops").read_bytes() == before


def test_a_failing_step_stops_the_run_keeps_its_notebook_and_the_champion(project):
    good = (project/"params.yaml").read_text()
    champion = (project/"models/package/current.json").read_text()
    p = params(project); p["acceptance"]["min_primary_metric"] = 1.01     # no model can pass this gate
    try:
        (project/"params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        r = run([tool("mlops-nb"), "run"], project, check=False)
    finally:
        (project/"params.yaml").write_text(good)
    assert r.returncode != 0
    assert "step acceptance failed: AcceptanceError" in r.stderr + r.stdout
    assert "pipeline FAILED" in r.stdout
    page = (project/"reports/steps/07_acceptance.html").read_text()
    assert "AcceptanceError" in page and "limit 1.01" in page
    status = json.loads((project/"reports/steps/acceptance.json").read_text())
    assert status["status"] == "failed"
    assert "07_acceptance.html" in (project/"reports/index.html").read_text()
    assert (project/"models/package/current.json").read_text() == champion          # the champion stays
    assert json.loads((project/"reports/acceptance.json").read_text())["accepted"] is False
    run([tool("mlops-nb"), "run"], project)             # leave the shared project as it was: a completed run
