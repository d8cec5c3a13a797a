"""MLflow for real, against a local sqlite:/// store: with `tracking.mlflow_uri` set, `mlops-nb run` logs the run
(parameters, metrics, reports) and registers the packages; `mlops-nb models promote` and `rollback` move the alias
`champion`, and `mlflow.pyfunc.load_model("models:/NAME@champion")` predicts what `load_model` predicts. Without the
setting, nothing of MLflow is imported. Skipped, saying why, when the extra (`pip install mlops-nb[mlflow]`) is absent;
`bash tasks.sh test` installs it."""
import subprocess, sys

import pandas as pd
import pytest
import yaml

from conftest import copy_finished, run, tool
from test_registry import add_versions

mlflow = pytest.importorskip("mlflow", reason="MLflow is an optional extra: pip install -c constraints.txt -e '.[mlflow]'")


def champion_predicts_like_load_model(root, uri, name):
    from mlops_nb.serve import load_model
    X = pd.read_parquet(root/"data/processed/batch.parquet").drop(columns="species")
    ours = load_model(root/"models/package").predict(X)
    mlflow.set_registry_uri(uri); mlflow.set_tracking_uri(uri)
    theirs = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(X)
    assert list(theirs["prediction"]) == list(ours["prediction"])
    pd.testing.assert_frame_equal(theirs.reset_index(drop=True), ours.drop(columns="model_version").reset_index(drop=True))
    return ours["model_version"].iloc[0]


def test_runs_packages_and_the_champion_alias_in_a_local_mlflow_store(project, tmp_path):
    root = copy_finished(project, tmp_path/"p")
    p = yaml.safe_load((root/"params.yaml").read_text())
    p["tracking"] = {"mlflow_uri": "sqlite:///mlflow.db", "experiment": None}
    (root/"params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    name, uri = p["package"]["model_name"], f"sqlite:///{root/'mlflow.db'}"

    out = run([tool("mlops-nb"), "run"], root, timeout=600).stdout     # nothing to re-run: the tracking section is no stage's
    assert "0 of 10 steps ran" in out and f"MLflow (sqlite:///{root/'mlflow.db'})" in out, out
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name(name)
    [r] = client.search_runs([exp.experiment_id])
    assert r.data.params["project.target"] == '"species"' and r.data.params["train.cv_folds"] == "5"
    assert 0.5 <= r.data.metrics["evaluate.test.balanced_accuracy"] <= 1.0, r.data.metrics
    arts = {a.path for a in client.list_artifacts(r.info.run_id, "reports")}
    assert {"reports/index.html", "reports/acceptance.json", "reports/evaluate"} <= arts, arts
    pipeline = champion_predicts_like_load_model(root, uri, name)
    mv = client.get_model_version_by_alias(name, "champion")
    assert mv.tags["mlops_nb.version"] == pipeline
    sig = mlflow.models.get_model_info(f"models:/{name}@champion").signature
    schema = yaml.safe_load((root/"models/package"/pipeline/"schema.json").read_text())
    assert sig.inputs.input_names() == schema["features"] and sig.outputs.input_names()[0] == "prediction"
    assert (root/"mlartifacts").is_dir()                                # artifacts beside the store, not in the cwd

    v = add_versions(project, root)
    out = run([tool("mlops-nb"), "models", "promote", v["good"], "--force"], root, timeout=600)
    assert "alias 'champion' was not moved" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert champion_predicts_like_load_model(root, uri, name) == v["good"]
    run([tool("mlops-nb"), "models", "rollback"], root, timeout=600)
    assert champion_predicts_like_load_model(root, uri, name) == pipeline
    assert client.get_model_version_by_alias(name, "champion").tags["mlops_nb.version"] == pipeline
    assert len(client.search_model_versions(f"name='{name}'")) == 2     # each package registered once


def test_without_the_setting_nothing_of_mlflow_is_imported(project, tmp_path):
    from conftest import mini_project
    root = mini_project(project, tmp_path/"p")
    v = add_versions(project, root)
    code = ("import sys; from mlops_nb.cli import main; rc = main(['models', 'promote', sys.argv[1], '--force', '--project', sys.argv[2]]);"
            "main(['models', 'rollback', '--project', sys.argv[2]]);"
            "import mlops_nb.serve, mlops_nb.pipeline, mlops_nb.storage;"
            "assert rc == 0 and not [m for m in sys.modules if m.split('.')[0] == 'mlflow'], sorted(sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, v["good"], str(root)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
