"""The same pipeline on differently shaped datasets, with only params.yaml changed: regression, binary and multiclass
(bundled), many missing values with an identifier, dates and free text (generated, an R-style CSV), all-categorical
(generated)."""
import json

import pandas as pd
import pytest
import yaml

from conftest import DATASETS


@pytest.fixture(scope="module", params=sorted(DATASETS))
def other_project(request, dataset_project):
    source, target, metric, floor = DATASETS[request.param]
    return request.param, dataset_project(request.param), metric, floor


def test_every_family_is_trained_and_compared(other_project):
    name, root, metric, _ = other_project
    live = json.loads((root/"reports/dvclive/train/metrics.json").read_text())
    plan = yaml.safe_load((root/"reports/dvclive/train/params.yaml").read_text()).get("budget_plan")
    assert set(live["candidates"]) == {"dummy", "linear", "random_forest", "hist_gradient_boosting"}, plan
    dummy = live["candidates"]["dummy"][f"cv_{metric}_mean"]
    best = max(c[f"cv_{metric}_mean"] for c in live["candidates"].values())
    assert best > dummy + 0.2
    index = (root/"reports/index.html").read_text()
    assert "(chosen)" in index and "hist_gradient_boosting" in index


def test_metrics_plots_and_acceptance_fit_the_task(other_project):
    name, root, metric, floor = other_project
    schema = json.loads((root/"data/interim/schema.json").read_text())
    ev = json.loads((root/"reports/evaluate/metrics_with_intervals.json").read_text())
    assert set(ev) == {"valid", "test"}
    lo, hi = ev["test"]["intervals"][metric]
    assert lo <= ev["test"]["metrics"][metric] <= hi and ev["test"]["metrics"][metric] >= floor
    pngs = {p.name for p in (root/"reports/evaluate").glob("*.png")}
    expected = {"predicted_vs_actual.png", "residuals.png"} if schema["task"] == "regression" else {"confusion_matrix.png", "roc.png", "precision_recall.png", "calibration.png"}
    assert expected | {"permutation_importance.png"} <= pngs
    plots = {p.name for p in (root/"reports/dvclive/evaluate/plots/sklearn").glob("*.json")}   # dvc.yaml's plots: JSON in git
    assert plots >= ({"predicted_vs_actual.json"} if schema["task"] == "regression" else {"confusion_matrix.json"}), plots
    acc = json.loads((root/"reports/acceptance.json").read_text())
    assert acc["accepted"] and all(g["passed"] for g in acc["gates"]) and len(acc["gates"]) >= 5


def test_package_reloads_predicts_identically_and_exports_onnx(other_project):
    name, root, _, _ = other_project
    from mlops_nb.core import load_trusted
    from mlops_nb.package import current_package, load_package
    schema = json.loads((root/"data/interim/schema.json").read_text())
    folder = current_package(root/"models/package")
    test = pd.read_parquet(root/"data/processed/test.parquet").drop(columns=schema["target"])
    assert (load_package(folder).predict(test) == load_trusted(root/"models/trained.skops").predict(test)).all()
    onnx = json.loads((folder/"lineage.json").read_text())["onnx"]
    if all(schema["columns"][f]["kind"] == "numeric" for f in schema["features"]):
        assert onnx["converted"] and (folder/"model.onnx").exists(), onnx    # numeric features only: convertible
    else:
        assert onnx["converted"] or onnx["reason"], onnx                      # otherwise the lineage says why not
    assert "95% CI" in (folder/"model_card.md").read_text()


def test_task_is_detected_from_the_target(other_project):
    name, root, _, _ = other_project
    manifest = json.loads((root/"data/raw/manifest.json").read_text())
    expected = {"regression": "regression", "binary": "binary", "multiclass": "multiclass", "missing": "binary", "categorical": "multiclass"}
    assert manifest["task"] == expected[name] and manifest["task_reason"]
    assert json.loads((root/"data/interim/schema.json").read_text())["task"] == expected[name]


@pytest.fixture(scope="module")
def clinic(dataset_project):
    return dataset_project("missing")


def test_messy_csv_is_read_as_the_user_meant(clinic):
    "The R-style CSV: row-number column dropped, NA / ? / empty cells missing, the id column not a feature, dates and text handled."
    raw = pd.read_parquet(clinic/"data/raw/raw.parquet")
    assert list(raw.columns)[:2] == ["patient_id", "age"] and raw["bmi"].dtype.kind == "f"
    assert 0.3 < raw["bmi"].isna().mean() < 0.5 and raw["region"].isna().mean() > 0.1
    schema = json.loads((clinic/"data/interim/schema.json").read_text())
    assert "patient_id" in schema["dropped"] and "patient_id" not in schema["features"]
    assert schema["columns"]["visit_date"]["kind"] == "datetime" and schema["columns"]["note"]["role"] == "text"
    validation = json.loads((clinic/"data/interim/validation.json").read_text())
    assert validation["passed"] and any("patient_id" in w for w in validation["warnings"])
    splits = json.loads((clinic/"data/processed/splits.json").read_text())
    assert splits["method"] == "stratified" and sum(s["rows"] for s in splits["splits"].values()) == len(raw)


def test_served_model_takes_raw_rows_with_dates_text_and_gaps(clinic):
    from mlops_nb.serve import load_model
    model = load_model(clinic/"models/package")
    rows = pd.DataFrame({"age": [61.0, None], "bmi": [33.0, None], "bp": [130.0, None], "smoker": ["yes", None],
                         "region": ["south", "nowhere"], "visit_date": ["2023-05-01", "not a date"],
                         "note": ["patient reports cough and fever for 3 days", None]})
    out = model.predict(rows)
    assert len(out) == 2 and set(out["prediction"]) <= {"sick", "healthy"}
