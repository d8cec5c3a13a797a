# %% [markdown]
# Acceptance
> The model acceptance test: explicit gates against a threshold, the dummy baseline and the current champion, and behavioural checks. A model that fails one is not packaged.

# %% [code]
#| default_exp acceptance

# %% [code]
#| export
from __future__ import annotations
from pathlib import Path

import pandas as pd
import numpy as np
from sklearn.dummy import DummyClassifier, DummyRegressor

from mlops_nb.core import read_json
from mlops_nb.contracts import LOWER_IS_BETTER, score, task_metrics   # shared with monitor: 00a_contracts  # noqa: F401

# %% [code]
from fastcore.test import test_eq, test_fail
import os, tempfile
from mlops_nb.core import find_root, load_trusted, record_step, require, write_json

# %% [code] tags=['parameters']
target: str = "species"  # the column to predict
primary_metric: str = "balanced_accuracy"  # selects the model in train, gates it in acceptance
split_dir: str = "data/processed"  # train / valid / test / batch splits (Parquet) and their hashes
schema_path: str = "data/interim/schema.json"  # the inferred data contract (JSON) that later phases, serving and monitoring read
model_path: str = "models/trained.skops"  # the trained pipeline (skops)
eval_live_dir: str = "reports/dvclive/evaluate"  # dvclive metrics and plots of evaluation
package_dir: str = "models/package"  # versioned model packages; current.json names the champion
acceptance_path: str = "reports/acceptance.json"  # acceptance gate results (JSON)
lineage_dir: str = "reports/lineage"  # lineage record of each step (JSON)
min_primary_metric: float = 0.9  # on the test split; higher is better (neg_* metrics: e.g. -50 means RMSE <= 50)
min_gain_over_baseline: float = 0.1  # the primary metric must beat the dummy baseline by at least this
max_regression_vs_champion: float = 0.02  # the primary metric may be at most this worse than the champion's on the same rows

# %% [markdown]
## The baseline and the champion

The baseline is what predicting the class prior (or the mean) scores on the same test rows; the
champion is the model currently packaged (if any), scored again on the same test rows, so that a
change of split or data cannot make the comparison unfair.

# %% [code]
#| export
def baseline_metrics(train: pd.DataFrame, test: pd.DataFrame, target: str, task: str = "multiclass") -> dict:
    "Test metrics of the dummy baseline: the training prior (classification) or mean (regression)."
    dummy = (DummyRegressor() if task == "regression" else DummyClassifier(strategy="prior"))
    dummy.fit(train.drop(columns=[target]), train[target])
    return task_metrics(task, test[target], dummy.predict(test.drop(columns=[target])))

def champion_metrics(package_dir, test: pd.DataFrame, target: str, task: str) -> dict | None:
    """Metrics of the packaged champion on the same test rows as the candidate, or None when nothing is packaged
    (or the champion was trained on other features and cannot score these rows)."""
    from mlops_nb.contracts import current_package, load_package
    try: folder = current_package(package_dir)
    except FileNotFoundError: return None
    model = load_package(folder)
    try: pred = model.predict(test.drop(columns=[target]))
    except (KeyError, ValueError): return None
    return task_metrics(task, test[target], pred)

# %% [code]
_tr = pd.DataFrame({"x": range(10), "y": ["a"] * 7 + ["b"] * 3})
test_eq(baseline_metrics(_tr, _tr, "y")["balanced_accuracy"], 0.5)
test_eq(baseline_metrics(_tr.assign(y=_tr.x * 1.0), _tr.assign(y=_tr.x * 1.0), "y", "regression")["r2"], 0.0)
test_eq(score({"rmse": 3.0}, "neg_root_mean_squared_error"), -3.0)
with tempfile.TemporaryDirectory() as d: test_eq(champion_metrics(d, _tr, "y", "binary"), None)

# %% [markdown]
## Gates

# %% [code]
#| export
class AcceptanceError(RuntimeError):
    "The candidate model failed an acceptance gate."

def acceptance_gates(test_metrics: dict, metric: str, baseline: dict, champion: dict | None,
                     min_metric: float, min_gain: float, max_regression: float) -> list[dict]:
    "Each gate with its measured value, limit and verdict (metrics oriented so that higher is better)."
    v = score(test_metrics, metric)
    gain = v - score(baseline, metric)
    gates = [
        {
            "gate": f"{metric} on test >= minimum",
            "value": round(v, 6),
            "limit": min_metric,
            "passed": bool(v >= min_metric),
        },
        {
            "gate": f"{metric} gain over the dummy baseline >= minimum",
            "value": round(gain, 6),
            "limit": min_gain,
            "passed": bool(gain >= min_gain),
        },
    ]
    if champion is not None:
        try: d = v - score(champion, metric)
        except KeyError: d = None    # the champion was judged on another metric: no comparison
        if d is not None:
            gates.append({"gate": f"{metric} not below the champion's by more than the tolerance",
                          "value": round(d, 6), "limit": -max_regression, "passed": bool(d >= -max_regression)})
    return gates

def behaviour_checks(model, X: pd.DataFrame, schema: dict, rows: int = 20) -> list[dict]:
    "Behavioural gates: deterministic, invariant to column order, robust to a missing value in any feature."
    X = X.head(rows)
    p = np.asarray(model.predict(X))
    out = [
        {
            "gate": "predictions are deterministic",
            "passed": bool(np.array_equal(p, np.asarray(model.predict(X.copy())))),
        },
        {
            "gate": "predictions do not depend on column order",
            "passed": bool(np.array_equal(p, np.asarray(model.predict(X[list(reversed(X.columns))])))),
        },
    ]
    failed = []
    for c in schema["features"]:
        if c not in X: continue
        Xm = X.copy()
        Xm[c] = Xm[c].astype(object) if schema["columns"][c]["kind"] != "numeric" else Xm[c].astype(float)
        Xm.loc[Xm.index[0], c] = np.nan
        try:
            pm = np.asarray(model.predict(Xm))
            if len(pm) != len(X) or (pm.dtype.kind == "f" and np.isnan(pm).any()): failed.append(c)
        except Exception: failed.append(c)
    out.append({"gate": "a missing value in any one feature still gets a prediction", "passed": not failed,
                "value": failed or None})
    return out

def raise_if_rejected(gates: list[dict]):
    "Raise AcceptanceError naming every failed gate."
    failed = [g for g in gates if not g["passed"]]
    if failed:
        raise AcceptanceError("model rejected; the champion stays in place:\n" +
                              "\n".join(f"- {g['gate']}" + (f": measured {g['value']}" if g.get("value") is not None else "")
                                        + (f", limit {g['limit']}" if "limit" in g else "") for g in failed))

# %% [code]
_g = acceptance_gates({"f1": 0.95}, "f1", {"f1": 0.3}, {"f1": 0.96}, 0.9, 0.1, 0.02)
test_eq([g["passed"] for g in _g], [True, True, True])
raise_if_rejected(_g)
_g = acceptance_gates({"f1": 0.85}, "f1", {"f1": 0.8}, {"f1": 0.96}, 0.9, 0.1, 0.02)
test_eq([g["passed"] for g in _g], [False, False, False])
test_fail(lambda: raise_if_rejected(_g), contains="measured 0.85, limit 0.9")
test_fail(lambda: acceptance_gates({"f1": 1}, "auc", {}, None, 0, 0, 0), contains="project.primary_metric")
from sklearn.pipeline import Pipeline
from sklearn.linear_model import LogisticRegression
from mlops_nb.features import make_preprocessor
_X = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "b", "a", "b"]})
_mdl = Pipeline([("f", make_preprocessor(["x"], ["c"])), ("m", LogisticRegression())]).fit(_X, [0, 0, 1, 1])
_sch = {"features": ["x", "c"], "columns": {"x": {"kind": "numeric"}, "c": {"kind": "categorical"}}}
test_eq([g["passed"] for g in behaviour_checks(_mdl, _X, _sch)], [True, True, True])
_raw = LogisticRegression().fit(_X[["x"]], [0, 0, 1, 1])   # no imputer: a missing value breaks it
test_eq(behaviour_checks(_raw, _X[["x"]], _sch)[2]["value"], ["x"])
test_fail(lambda: raise_if_rejected(behaviour_checks(_raw, _X[["x"]], _sch)),   # a behaviour gate has no limit
          contains="a missing value in any one feature still gets a prediction: measured")

# %% [markdown]
## Run

# %% [code]
os.chdir(find_root())
train = pd.read_parquet(require(Path(split_dir)/"train.parquet", "run `mlops-nb step split` first"))
test = pd.read_parquet(require(Path(split_dir)/"test.parquet", "run `mlops-nb step split` first"))
test_metrics = read_json(require(Path(eval_live_dir)/"metrics.json", "run `mlops-nb step evaluate` first"))["test"]
schema = read_json(require(schema_path, "run `mlops-nb step validate` first"))
model = load_trusted(require(model_path, "run `mlops-nb step train` first"))
baseline, champion = baseline_metrics(train, test, target, schema["task"]), champion_metrics(
    package_dir, test, target, schema["task"]
)
gates = acceptance_gates(test_metrics, primary_metric, baseline, champion,
                         min_primary_metric, min_gain_over_baseline, max_regression_vs_champion)
gates += behaviour_checks(model, test.drop(columns=[target]), schema)
accepted = all(g["passed"] for g in gates)
write_json({"accepted": accepted, "primary_metric": primary_metric, "test": test_metrics,
            "baseline": baseline, "champion": champion, "gates": gates}, acceptance_path)
record_step(
    lineage_dir,
    "acceptance",
    {
        "primary_metric": primary_metric,
        "min_primary_metric": min_primary_metric,
        "min_gain_over_baseline": min_gain_over_baseline,
        "max_regression_vs_champion": max_regression_vs_champion,
    },
    inputs=[Path(eval_live_dir) / "metrics.json", model_path],
    outputs=[acceptance_path],
    metrics={"accepted": accepted},
)
print("accepted" if accepted else "REJECTED")
display(pd.DataFrame(gates))
raise_if_rejected(gates)

