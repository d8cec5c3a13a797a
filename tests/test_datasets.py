"""The same pipeline on other bundled datasets, with only params.yaml changed: a regression and a binary task."""
import json

import pandas as pd
import pytest

from conftest import DATASETS


@pytest.fixture(scope="module", params=sorted(DATASETS))
def other_project(request, dataset_project):
    source, target, metric, floor = DATASETS[request.param]
    return request.param, dataset_project(request.param), metric, floor


def test_every_family_is_trained_and_compared(other_project):
    name, root, metric, _ = other_project
    live = json.loads((root/"reports/dvclive/train/metrics.json").read_text())
    assert set(live["candidates"]) == {"dummy", "linear", "random_forest", "hist_gradient_boosting"}
    dummy = live["candidates"]["dummy"][f"cv_{metric}_mean"]
    best = max(c[f"cv_{metric}_mean"] for c in live["candidates"].values())
    assert best > dummy + 0.2
    index = (root/"reports/index.html").read_text()
    assert "(chosen)" in index and "hist_gradient_boosting" in index


def test_metrics_plots_and_acceptance_fit_the_task(other_project):
    name, root, metric, floor = other_project
    ev = json.loads((root/"reports/evaluate/metrics_with_intervals.json").read_text())
    assert set(ev) == {"valid", "test"}
    lo, hi = ev["test"]["intervals"][metric]
    assert lo <= ev["test"]["metrics"][metric] <= hi and ev["test"]["metrics"][metric] >= floor
    pngs = {p.name for p in (root/"reports/evaluate").glob("*.png")}
    expected = {"predicted_vs_actual.png", "residuals.png"} if name == "regression" else {"confusion_matrix.png", "roc.png", "precision_recall.png", "calibration.png"}
    assert expected | {"permutation_importance.png"} <= pngs
    acc = json.loads((root/"reports/acceptance.json").read_text())
    assert acc["accepted"] and all(g["passed"] for g in acc["gates"]) and len(acc["gates"]) >= 5


def test_package_reloads_predicts_identically_and_exports_onnx(other_project):
    name, root, _, _ = other_project
    from mlops_nb.core import load_trusted
    from mlops_nb.package import current_package, load_package
    folder = current_package(root/"models/package")
    test = pd.read_parquet(root/"data/processed/test.parquet").drop(columns="target")
    assert (load_package(folder).predict(test) == load_trusted(root/"models/trained.skops").predict(test)).all()
    onnx = json.loads((folder/"lineage.json").read_text())["onnx"]
    assert onnx["converted"] and (folder/"model.onnx").exists(), onnx    # numeric features only: convertible
    assert "95% CI" in (folder/"model_card.md").read_text()
