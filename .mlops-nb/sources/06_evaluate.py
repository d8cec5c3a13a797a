# %% [markdown]
# Evaluate
> Metrics with bootstrap confidence intervals on the validation and test splits, the plots people look for, permutation feature importance, and the slices where the model does worst.

# %% [code]
#| default_exp evaluate

# %% [code]
#| export
from __future__ import annotations
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlops_nb.core import atomic_path, write_json
# shared: 00a_contracts  # noqa: F401
from mlops_nb.contracts import classification_metrics, label_codes, regression_metrics, task_metrics
from mlops_nb.estimate import bootstrap_intervals, confusion_metrics   # shared with monitoring: 00d_estimate  # noqa: F401

# %% [code]
from fastcore.test import test_eq, test_close
import os, tempfile
from sklearn.linear_model import LogisticRegression
from mlops_nb.core import find_root, load_trusted, read_json, record_step, require, write_json

# %% [code] tags=['parameters']
target: str = "species"  # the column to predict
seed: int = 42  # one seed for every random choice
primary_metric: str = "balanced_accuracy"  # selects the model in train, gates it in acceptance
split_dir: str = "data/processed"  # train / valid / test / batch splits (Parquet) and their hashes
schema_path: str = "data/interim/schema.json"  # the inferred data contract (JSON) that later phases, serving and monitoring read
model_path: str = "models/trained.skops"  # the trained pipeline (skops)
eval_live_dir: str = "reports/dvclive/evaluate"  # dvclive metrics and plots of evaluation
eval_dir: str = "reports/evaluate"  # evaluation plots and tables
lineage_dir: str = "reports/lineage"  # lineage record of each step (JSON)
max_error_rows: int = 20  # misclassified (or worst-predicted) rows listed in the report
bootstrap_rounds: int = 300  # resamples for the 95% confidence intervals
permutation_repeats: int = 5  # shuffles per feature for permutation importance
max_sample_rows: int = 20000  # bootstrap resamples and permutation importance use at most this many rows (metrics: all rows)

# %% [markdown]
## Metrics

The metrics of a task are a shared contract (acceptance and monitoring compute them too): they live in
`00a_contracts`, and this chapter uses them.

# %% [code]
_m = classification_metrics(["a", "b", "b", "a"], ["a", "b", "a", "a"])
test_eq(_m, {"accuracy": 0.75, "balanced_accuracy": 0.75, "f1_macro": 0.733333})
_p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
test_close(classification_metrics(["a", "b", "b", "a"], ["a", "b", "a", "a"], _p, ["a", "b"])["roc_auc"], 1.0)
test_eq(regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]), {"r2": -1.0, "rmse": 1.154701, "mae": 0.666667})

# %% [markdown]
## Confidence intervals

A percentile bootstrap over the rows of the split: resample with replacement, recompute every metric. The vectorised
bootstrap is shared with monitoring (decay on live traffic has an interval too), so it lives in `00d_estimate`;
`bootstrap_intervals` is imported from there.

# %% [markdown]
## Where the model goes wrong

The misclassified (or worst-predicted) rows, and the slices — one per category value — with the worst
metric, so a reader sees for whom the model works less well.

# %% [code]
#| export
def error_table(X: pd.DataFrame, y_true, y_pred, proba=None, classes=None, limit: int = 20) -> pd.DataFrame:
    "Classification: the misclassified rows, most confident first. Regression: the rows with the largest absolute error."
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if classes is None and np.issubdtype(y_pred.dtype, np.number) and np.issubdtype(y_true.dtype, np.number):
        out = X.copy(); out.insert(0, "predicted", y_pred); out.insert(0, "actual", y_true)
        out.insert(2, "abs_error", np.abs(y_true - y_pred).round(6))
        return out.sort_values("abs_error", ascending=False).head(limit)
    wrong = y_true != y_pred
    out = X.loc[wrong].copy()
    out.insert(0, "predicted", y_pred[wrong]); out.insert(0, "actual", y_true[wrong])
    if proba is not None:
        idx = pd.Index(list(classes)).get_indexer(y_pred[wrong])
        out.insert(2, "confidence", proba[wrong][np.arange(len(idx)), idx].round(4))   # P(predicted class)
        out = out.sort_values("confidence", ascending=False)
    return out.head(limit)

def _group_metrics(task: str, codes: np.ndarray, groups: int, y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """`task_metrics` without probabilities of every group of rows (`codes`: each row's group) at once: classification
    from per-group confusion matrices (one `bincount`), regression from per-group sums."""
    if task == "regression":
        y, e = y_true.astype(float), y_true.astype(float) - y_pred.astype(float)
        total = lambda w: np.bincount(codes, weights=w, minlength=groups)
        n = np.bincount(codes, minlength=groups)
        with np.errstate(divide="ignore", invalid="ignore"):
            ss_res, ss_tot = total(e ** 2), total((y - (total(y) / n)[codes]) ** 2)
            r2 = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))   # sklearn's force_finite
            return {"r2": r2, "rmse": np.sqrt(ss_res / n), "mae": total(np.abs(e)) / n}
    labels = pd.Index(pd.unique(np.concatenate([y_true.astype(object), y_pred.astype(object)])))
    K = len(labels)
    cells = codes * K * K + labels.get_indexer(y_true) * K + labels.get_indexer(y_pred)
    return confusion_metrics(np.bincount(cells, minlength=groups * K * K).reshape(groups, K, K))

def slice_table(
    X: pd.DataFrame, y_true, y_pred, task: str, categorical, metric: str, min_rows: int = 5
) -> pd.DataFrame:
    """The metric on every slice `column == value` of the categorical columns with at least `min_rows` rows, worst first.
    All the slices of a column at once (`_group_metrics`), not one metric call per slice: a column of 300 values
    cost 300 scikit-learn calls (~10 ms each)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rows = []
    for c in categorical:
        codes, values = pd.factorize(X[c].astype(str), sort=True)      # the groups of groupby(astype(str)), in order
        n = np.bincount(codes, minlength=len(values))
        m = _group_metrics(task, codes, len(values), y_true, y_pred).get(metric)
        if m is None: continue                                          # a metric that needs probabilities
        rows += [{"column": c, "value": values[k], "rows": int(n[k]), metric: round(float(m[k]), 6)}
                 for k in np.flatnonzero(n >= min_rows)]
    out = pd.DataFrame(rows, columns=["column", "value", "rows", metric])
    worst_first = metric not in ("rmse", "mae")      # errors: high is worst; scores: low is worst
    return out.sort_values(metric, ascending=worst_first).reset_index(drop=True) if len(out) else out

# %% [code]
_X = pd.DataFrame({"x": [1, 2, 3, 4]})
_e = error_table(_X, ["a", "b", "b", "a"], ["a", "a", "a", "a"], _p, ["a", "b"])
test_eq(_e["x"].tolist(), [3, 2])           # both mistakes, the more confident one first
test_eq(list(_e.columns[:3]), ["actual", "predicted", "confidence"])
test_eq(error_table(_X, [1.0, 2.0, 3.0, 4.0], [1.0, 2.5, 3.0, 2.0])["x"].tolist()[:2], [4, 2])
_S = pd.DataFrame({"g": ["u"] * 6 + ["v"] * 6})
_st = slice_table(_S, ["a"] * 12, ["a"] * 6 + ["a", "b", "b", "a", "a", "a"], "binary", ["g"], "accuracy")
test_eq(_st[["value", "accuracy"]].values.tolist(), [["v", 0.666667], ["u", 1.0]])

# %% [code]
# the same slices and values as one `task_metrics` call per slice (the method before), on every task
def _per_slice(X, y, p, task, cats, metric, min_rows=5):
    y, p = pd.Series(np.asarray(y), index=X.index), pd.Series(np.asarray(p), index=X.index)
    return sorted((c, v, len(i), task_metrics(task, y[i], p[i])[metric])
                  for c in cats for v, i in X.groupby(X[c].astype(str), dropna=False).groups.items() if len(i) >= min_rows)
_rng = np.random.default_rng(3)
_G = pd.DataFrame({"g": _rng.integers(0, 40, 3000).astype(str), "h": _rng.choice(["a", "b", None], 3000)})
_yc, _pc = _rng.choice(["x", "y", "z"], 3000), _rng.choice(["x", "y", "z", "w"], 3000)
_yr = _rng.normal(0, 1, 3000); _pr = _yr + _rng.normal(0, 0.5, 3000)
for _task, _yy, _pp, _metrics in (("multiclass", _yc, _pc, ["balanced_accuracy", "accuracy", "f1_macro"]),
                                 ("regression", _yr, _pr, ["r2", "rmse", "mae"])):
    for _m in _metrics:
        _new = slice_table(_G, _yy, _pp, _task, ["g", "h"], _m)
        _old = _per_slice(_G, _yy, _pp, _task, ["g", "h"], _m)
        test_eq(len(_new), len(_old))
        for (_a, _b) in zip(sorted(_new.itertuples(index=False, name=None)), _old):
            test_eq(_a[:3], _b[:3]); test_close(_a[3], _b[3], eps=2e-6)

# %% [markdown]
## Plots

For people: PNGs of the confusion matrix, one-vs-rest ROC and precision-recall curves and a calibration
plot (classification), or predicted-vs-actual and residuals (regression), and permutation importance.
For `dvc plots`: dvclive's confusion matrix (and ROC, precision-recall and calibration data for binary tasks).

# %% [code]
#| export
def _fig(dest, draw, size=(4.5, 4)):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=size)
    draw(ax); fig.tight_layout()
    with atomic_path(dest) as tmp: fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(dest)

def confusion_png(y_true, y_pred, classes, dest, title: str = "Confusion matrix (test split)") -> Path:
    "Save a confusion-matrix plot to `dest` (PNG) atomically."
    t, p, _ = label_codes(y_true, y_pred, classes)   # counted on the labels' codes: no sort of their text
    def draw(ax):
        skm.ConfusionMatrixDisplay.from_predictions(t, p, labels=np.arange(len(classes)), display_labels=classes, ax=ax,
                                                    colorbar=False)
        ax.set_title(title)
    return _fig(dest, draw)

def curve_pngs(y_true, proba, classes, dest_dir) -> list[Path]:
    "One-vs-rest ROC and precision-recall curves, and a calibration plot, as PNGs in `dest_dir`."
    from sklearn.calibration import CalibrationDisplay
    y_true = np.asarray(y_true); shown = classes[1:] if len(classes) == 2 else classes
    def roc(ax):
        for i, c in enumerate(classes):
            if c in shown: skm.RocCurveDisplay.from_predictions(y_true == c, proba[:, i], name=str(c), ax=ax)
        ax.set_title("ROC, one vs rest (test split)")
    def pr(ax):
        for i, c in enumerate(classes):
            if c in shown: skm.PrecisionRecallDisplay.from_predictions(y_true == c, proba[:, i], name=str(c), ax=ax)
        ax.set_title("Precision-recall, one vs rest (test split)")
    def cal(ax):
        for i, c in enumerate(classes):
            if c in shown: CalibrationDisplay.from_predictions(y_true == c, proba[:, i], n_bins=5, name=str(c), ax=ax)
        ax.set_title("Calibration (test split)")
    d = Path(dest_dir)
    return [_fig(d/"roc.png", roc), _fig(d/"precision_recall.png", pr), _fig(d/"calibration.png", cal)]

def regression_pngs(y_true, y_pred, dest_dir) -> list[Path]:
    "Predicted vs actual, and residuals vs predicted, as PNGs in `dest_dir`."
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    def pva(ax):
        ax.scatter(y_true, y_pred, s=10, alpha=0.6)
        lo, hi = min(y_true.min(), y_pred.min()), max(y_true.max(), y_pred.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        ax.set_title("Predicted vs actual (test split)")
    def res(ax):
        ax.scatter(y_pred, y_true - y_pred, s=10, alpha=0.6); ax.axhline(0, color="k", lw=1)
        ax.set_xlabel("predicted"); ax.set_ylabel("actual - predicted"); ax.set_title("Residuals (test split)")
    d = Path(dest_dir)
    return [_fig(d/"predicted_vs_actual.png", pva), _fig(d/"residuals.png", res)]

_CODED = {"accuracy": skm.accuracy_score, "balanced_accuracy": skm.balanced_accuracy_score,
          "f1_macro": lambda t, p: skm.f1_score(t, p, average="macro")}

def _coded_scoring(model, y, scoring: str):
    """(scorer, y) for permutation importance. For a classifier's label metric: the metric on the labels' integer codes
    (`label_codes`), since scikit-learn's scorer sorts the labels' text again at every shuffle; the same values."""
    if scoring not in _CODED or not hasattr(model, "classes_"): return scoring, y
    codes, _, labels = label_codes(y, [], list(model.classes_))
    metric = _CODED[scoring]
    return (lambda est, X, t: metric(t, labels.get_indexer(np.asarray(est.predict(X), dtype=object)))), codes

def permutation_importance_table(model, X, y, scoring: str, repeats: int = 5, seed: int = 42) -> pd.DataFrame:
    "Permutation importance of every input column on (X, y): the mean drop of `scoring` and its spread."
    from sklearn.inspection import permutation_importance
    scoring, y = _coded_scoring(model, y, scoring)
    r = permutation_importance(model, X, y, scoring=scoring, n_repeats=repeats, random_state=seed, n_jobs=1)
    return (
        pd.DataFrame(
            {
                "feature": X.columns,
                "importance_mean": r.importances_mean.round(6),
                "importance_std": r.importances_std.round(6),
            }
        )
        .sort_values("importance_mean", ascending=False)
        .reset_index(drop=True)
    )

def importance_png(table: pd.DataFrame, dest) -> Path:
    "A horizontal bar chart of permutation importances."
    def draw(ax):
        t = table.iloc[::-1]; ax.barh(t["feature"], t["importance_mean"], xerr=t["importance_std"])
        ax.set_title("Permutation importance (test split)"); ax.set_xlabel("drop of the primary metric")
    return _fig(dest, draw, size=(5, max(2.5, 0.3 * len(table))))

# %% [code]
with tempfile.TemporaryDirectory() as d:
    test_eq(confusion_png(["a", "b"], ["a", "a"], ["a", "b"], Path(d)/"cm.png").read_bytes()[:4], b"\x89PNG")
    test_eq(
        [p.name for p in curve_pngs(["a", "b", "b", "a"], _p, ["a", "b"], d)],
        ["roc.png", "precision_recall.png", "calibration.png"],
    )
    test_eq(
        [p.name for p in regression_pngs([1, 2, 3], [1.1, 2.2, 2.9], d)], ["predicted_vs_actual.png", "residuals.png"]
    )
_rng = np.random.default_rng(3)
_Xi = pd.DataFrame({"signal": _rng.normal(size=300), "noise": _rng.normal(size=300)})
_lr = LogisticRegression().fit(_Xi, _Xi.signal > 0)
test_eq(permutation_importance_table(_lr, _Xi, _Xi.signal > 0, "accuracy")["feature"].tolist(), ["signal", "noise"])
# text labels, scored on their codes: the importances scikit-learn's own scorer gives on the text
from sklearn.inspection import permutation_importance as _pi
_yt = np.where(_Xi.signal + _rng.normal(0, 1, 300) > 0, "up", "down")
_lt = LogisticRegression().fit(_Xi, _yt)
for _m in ("accuracy", "balanced_accuracy", "f1_macro"):
    _ref = _pi(_lt, _Xi, _yt, scoring=_m, n_repeats=5, random_state=42, n_jobs=1)
    _got = permutation_importance_table(_lt, _Xi, _yt, _m).set_index("feature").loc[list(_Xi.columns)]
    test_eq(_got["importance_mean"].tolist(), _ref.importances_mean.round(6).tolist())
    test_eq(_got["importance_std"].tolist(), _ref.importances_std.round(6).tolist())

# %% [code]
#| export
SCORERS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy",
    "f1_macro": "f1_macro",
    "r2": "r2",
    "neg_root_mean_squared_error": "neg_root_mean_squared_error",
    "neg_mean_absolute_error": "neg_mean_absolute_error",
}

def evaluate_split(model, frame: pd.DataFrame, target: str, task: str, rounds: int = 300, seed: int = 42,
                   max_rows: int | None = None, predicted: tuple | None = None) -> dict:
    "Metrics and their bootstrap intervals of `model` on one split; `predicted`: its (predictions, probabilities) if known."
    X, y = frame.drop(columns=[target]), frame[target]
    if predicted is not None: pred, proba = predicted
    else:
        pred = model.predict(X)
        proba = model.predict_proba(X) if task != "regression" and hasattr(model, "predict_proba") else None
    classes = list(model.classes_) if task != "regression" else None
    return {
        "metrics": task_metrics(task, y, pred, proba, classes),
        "intervals": bootstrap_intervals(task, y, pred, proba, classes, rounds, seed=seed, max_rows=max_rows),
        "rows": len(frame),
    }

# %% [code]
_rng = np.random.default_rng(0)
_f = pd.DataFrame({"x": _rng.normal(size=200)}); _f["y"] = np.where(_f["x"] + _rng.normal(0, 0.5, 200) > 0, "p", "n")
_clf = LogisticRegression().fit(_f[["x"]], _f["y"])
_r = evaluate_split(_clf, _f, "y", "binary", rounds=50, seed=1)
test_eq(_r["rows"], 200)
test_close(_r["metrics"]["accuracy"], (_clf.predict(_f[["x"]]) == _f["y"]).mean(), eps=1e-12)
for _k, (_lo, _hi) in _r["intervals"].items(): assert _lo <= _r["metrics"][_k] <= _hi, _k   # each interval holds its metric
_known = (_clf.predict(_f[["x"]]), _clf.predict_proba(_f[["x"]]))   # predictions made already: the same results
test_eq(evaluate_split(_clf, _f, "y", "binary", rounds=50, seed=1, predicted=_known), _r)

# %% [code]
#| export
def log_evaluation(live_dir, results: dict, task: str, y_true, y_pred, proba=None, classes=None, images=(),
                   max_plot_rows: int | None = None, seed: int = 42) -> None:
    """Write the metrics of every split (with intervals) and the plots to a dvclive directory. dvclive's plot files list
    every row they are given (as indented JSON): past `max_plot_rows` test rows they get a random sample of that many
    (metrics, intervals and the PNGs use every row)."""
    from dvclive import Live
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if max_plot_rows and len(y_true) > max_plot_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(y_true), max_plot_rows, replace=False))
        y_true, y_pred, proba = y_true[keep], y_pred[keep], None if proba is None else np.asarray(proba)[keep]
    with Live(str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None) as live:
        for split, r in results.items():
            for k, v in r["metrics"].items(): live.log_metric(f"{split}/{k}", v, plot=False)
            for k, (lo, hi) in r["intervals"].items():
                live.log_metric(f"{split}_ci/{k}_low", lo, plot=False)
                live.log_metric(f"{split}_ci/{k}_high", hi, plot=False)
        if task != "regression":
            live.log_sklearn_plot(
                "confusion_matrix", [str(v) for v in y_true], [str(v) for v in y_pred], name="confusion_matrix.json"
            )
            if proba is not None and len(classes) == 2:
                yb = (np.asarray(y_true) == classes[1]).astype(int)
                live.log_sklearn_plot("roc", yb, proba[:, 1], name="roc.json")
                live.log_sklearn_plot("precision_recall", yb, proba[:, 1], name="precision_recall.json")
                live.log_sklearn_plot("calibration", yb, proba[:, 1], name="calibration.json")
        # dvclive has no regression plot of its own: the test rows' actual and predicted values, in the same folder
        else:
            write_json([{"actual": float(a), "predicted": float(p)} for a, p in zip(y_true, y_pred)],
                       Path(live.plots_dir)/"sklearn"/"predicted_vs_actual.json")
        for img in images: live.log_image(Path(img).name, str(img))

# %% [code]
with tempfile.TemporaryDirectory() as d:
    _pred = _clf.predict(_f[["x"]])
    log_evaluation(d, {"test": _r}, "binary", _f["y"], _pred, _clf.predict_proba(_f[["x"]]), list(_clf.classes_))
    _logged = read_json(Path(d)/"metrics.json")
    test_close(_logged["test"]["accuracy"], _r["metrics"]["accuracy"], eps=1e-9)
    test_eq(_logged["test_ci"]["accuracy_low"], _r["intervals"]["accuracy"][0])
    test_eq(sorted(p.name for p in (Path(d)/"plots/sklearn").iterdir()),
            ["calibration.json", "confusion_matrix.json", "precision_recall.json", "roc.json"])
    log_evaluation(d, {"test": _r}, "binary", _f["y"], _pred, _clf.predict_proba(_f[["x"]]), list(_clf.classes_),
                   max_plot_rows=50)   # a sample of 50 of the 200 rows in dvclive's plots; the metrics as before
    test_eq(len(read_json(Path(d)/"plots/sklearn/confusion_matrix.json")), 50)
    test_eq(read_json(Path(d)/"metrics.json")["test"], _logged["test"])

# %% [markdown]
## Run

# %% [code]
os.chdir(find_root())
schema = read_json(require(schema_path, "run `mlops-nb step validate` first"))
model = load_trusted(require(model_path, "run `mlops-nb step train` first"))
task = schema["task"]
frames = {
    s: pd.read_parquet(Path(split_dir) / f"{s}.parquet")
    for s in ("valid", "test")
    if (Path(split_dir) / f"{s}.parquet").exists()
}
require(Path(split_dir)/"test.parquet", "run `mlops-nb step split` first")
test = frames["test"]; X, y = test.drop(columns=[target]), test[target]
pred = model.predict(X)
proba = model.predict_proba(X) if task != "regression" else None
classes = list(model.classes_) if task != "regression" else None
results = {
    s: evaluate_split(model, f, target, task, bootstrap_rounds, seed, max_sample_rows,
                      predicted=(pred, proba) if s == "test" else None)   # the test rows are predicted once
    for s, f in frames.items()
}
images = []
if task == "regression": images += regression_pngs(y, pred, eval_dir)
else:
    images.append(confusion_png(y, pred, classes, Path(eval_dir)/"confusion_matrix.png"))
    if proba is not None: images += curve_pngs(y, proba, classes, eval_dir)
_s = X.sample(n=min(len(X), max_sample_rows), random_state=seed).index   # importance on a sample of large test splits
importance = permutation_importance_table(
    model, X.loc[_s], y.loc[_s], SCORERS.get(primary_metric, primary_metric), permutation_repeats, seed
)
images.append(importance_png(importance, Path(eval_dir)/"permutation_importance.png"))
cats = [c for c in schema["features"] if schema["columns"][c]["kind"] in ("categorical", "boolean") and c in X]
slices = slice_table(
    X,
    y,
    pred,
    task,
    cats,
    {"neg_root_mean_squared_error": "rmse", "neg_mean_absolute_error": "mae"}.get(primary_metric, primary_metric),
)
errors = error_table(X, y, pred, proba, classes, max_error_rows)
for name, table in (("errors", errors), ("slices", slices), ("permutation_importance", importance)):
    with atomic_path(Path(eval_dir)/f"{name}.csv") as tmp: table.to_csv(tmp, index=False)
write_json(results, Path(eval_dir)/"metrics_with_intervals.json")
log_evaluation(eval_live_dir, results, task, y, pred, proba, classes, images, max_sample_rows, seed)
record_step(lineage_dir, "evaluate", {"bootstrap_rounds": bootstrap_rounds, "permutation_repeats": permutation_repeats},
            inputs=[Path(split_dir)/f"{s}.parquet" for s in frames] + [model_path], outputs=[eval_dir, eval_live_dir],
            metrics={s: r["metrics"] for s, r in results.items()})
pd.DataFrame(
    {f"{s} {k}": {m: v for m, v in r[k].items()} for s, r in results.items() for k in ("metrics", "intervals")}
)

# %% [code]
importance

# %% [code]
slices.head(10)

# %% [code]
errors

