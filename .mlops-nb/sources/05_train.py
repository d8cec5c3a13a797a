# %% [markdown]
# Train
> Several model families, each wrapped with its feature pipeline, tuned by a hyperparameter search under cross-validation within a time budget; the best is refitted and logged with dvclive. Searches run locally or on a Dask cluster.

# %% [code]
#| default_exp train

# %% [code]
#| export
from __future__ import annotations
import contextlib, time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier, SGDRegressor
from sklearn.model_selection import KFold, ParameterGrid, RandomizedSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from mlops_nb.features import categorical_mask, feature_plan, make_preprocessor

# %% [code]
from fastcore.test import test_eq, test_fail
import os
from pathlib import Path
from mlops_nb.core import find_root, read_json, record_step, require, row_flow, save_model

# %% [code] tags=['parameters']
target: str = "species"  # the column to predict
seed: int = 42  # one seed for every random choice
primary_metric: str = "balanced_accuracy"  # selects the model in train, gates it in acceptance
split_dir: str = "data/processed"  # train / valid / test / batch splits (Parquet) and their hashes
schema_path: str = "data/interim/schema.json"  # the inferred data contract (JSON) that later phases, serving and monitoring read
model_path: str = "models/trained.skops"  # the trained pipeline (skops)
train_live_dir: str = "reports/dvclive/train"  # dvclive metrics and plots of training
lineage_dir: str = "reports/lineage"  # lineage record of each step (JSON)
candidates: list[str] = ["dummy", "linear", "random_forest", "hist_gradient_boosting"]  # simplest first: ties go left
cv_folds: int = 5  # folds of cross-validation
search: str = "random"  # random | halving (successive halving) | none
search_iter: int = 6  # settings tried per family (capped at the size of its space)
spaces: dict = {
    "linear": {"C": [0.01, 0.1, 1.0, 10.0]},
    "sgd": {"alpha": [0.00001, 0.0001, 0.001, 0.01]},
    "random_forest": {"n_estimators": [50, 100], "max_depth": [4, 8, None], "min_samples_leaf": [1, 3]},
    "hist_gradient_boosting": {"learning_rate": [0.05, 0.1, 0.2], "max_leaf_nodes": [15, 31], "max_iter": [100, 200]}}  # per family: model parameter -> values to try
time_budget_s: float = 150  # the whole search + refit; slow families search on a subsample or are skipped
min_search_rows: int = 2000  # a family that cannot search even this many rows in its share is skipped
dask_scheduler: str | None = None  # tcp://host:port runs the searches on that Dask cluster

# %% [markdown]
## Candidates

Each family is a single estimator, `Pipeline(features → model)`, so the served model carries its own
preprocessing. Linear models get scaled numbers and one-hot categories; trees get ordinal codes
(HistGradientBoosting treats them as categorical). Families are listed from the simplest to the most
complex, and ties go to the simpler one.

The `sgd` family is the incremental one: `SGDClassifier(loss="log_loss")` (so that it has class probabilities) or
`SGDRegressor`, behind the same scaled, one-hot feature pipeline as `linear`. It is trained, evaluated, accepted and
packaged like the others; what sets it apart is that its final estimator has `partial_fit`, so that the online
learner (`97_online`) can keep training a copy of it on labelled mini-batches while the feature pipeline stays as it
was fitted here. We chose scikit-learn's `partial_fit` estimators over `river` because the model then stays one
scikit-learn `Pipeline` that every later phase already handles (skops packaging with trusted types, ONNX export, the
fast serving path, acceptance and monitoring) with no second feature-engineering stack. `river` learns one row at a
time with its own transformers and model format, which would duplicate preprocessing between training and serving and
need its own packaging, while mini-batches of feedback are what the service receives anyway.

# %% [code]
#| export
FAMILIES = ("dummy", "linear", "sgd", "random_forest", "hist_gradient_boosting")
METRICS = {"classification": ("accuracy", "balanced_accuracy", "f1_macro"),
           "regression": ("r2", "neg_root_mean_squared_error", "neg_mean_absolute_error")}

def task_kind(task: str) -> str:
    "'classification' for binary and multiclass tasks, else 'regression'."
    return "regression" if task == "regression" else "classification"

def make_estimator(family: str, task: str, numeric, categorical, seed: int = 42, datetime=(), text=()) -> Pipeline:
    "The unfitted `Pipeline(features, model)` of `family` for `task`, with default hyperparameters."
    reg = task_kind(task) == "regression"
    # cheapest encoding
    if family == "dummy": model, enc = (DummyRegressor() if reg else DummyClassifier(strategy="prior")), "ordinal"
    elif family == "linear": model, enc = (Ridge() if reg else LogisticRegression(max_iter=2000)), "onehot"
    elif family == "sgd":      # incremental: the final estimator has partial_fit (online learning, 97_online)
        model = (SGDRegressor(random_state=seed) if reg else SGDClassifier(loss="log_loss", random_state=seed))
        enc = "onehot"
    elif family == "random_forest":
        model, enc = (RandomForestRegressor if reg else RandomForestClassifier)(random_state=seed, n_jobs=-1), "ordinal"
    elif family == "hist_gradient_boosting":
        mask = categorical_mask(numeric, categorical, datetime, text)   # the categorical codes come last
        model = (HistGradientBoostingRegressor if reg else HistGradientBoostingClassifier)(
            random_state=seed, categorical_features=mask if categorical else None)
        enc = "ordinal"
    else: raise ValueError(f"train.candidates: unknown model family {family!r}; expected one of {list(FAMILIES)}")
    pre = make_preprocessor(
        numeric, categorical, scale=family in ("linear", "sgd"), encoding=enc, datetime=datetime, text=text
    )
    return Pipeline([("features", pre), ("model", model)])

def search_space(family: str, task: str, spaces: dict) -> dict:
    "The family's search space from params.yaml as Pipeline parameters (`model__…`). For Ridge, C becomes alpha = 1/C."
    space = dict((spaces or {}).get(family) or {})
    if family == "linear" and task_kind(task) == "regression" and "C" in space:
        space["alpha"] = [1.0 / c for c in space.pop("C")]
    return {f"model__{k}": list(v) if isinstance(v, (list, tuple)) else [v] for k, v in space.items()}

# %% [code]
_e = make_estimator("hist_gradient_boosting", "multiclass", ["x"], ["c"])
test_eq(_e.named_steps["model"].categorical_features, [False, True])
assert isinstance(make_estimator("linear", "regression", ["x"], []).named_steps["model"], Ridge)
test_eq(search_space("linear", "regression", {"linear": {"C": [0.5, 2.0]}}), {"model__alpha": [2.0, 0.5]})
test_eq(
    search_space("random_forest", "binary", {"random_forest": {"max_depth": [4, None]}}),
    {"model__max_depth": [4, None]},
)
test_fail(lambda: make_estimator("svm", "binary", ["x"], []), contains="unknown model family 'svm'")
_s = make_estimator("sgd", "binary", ["x"], ["c"]).named_steps["model"]
# probabilities, incremental
assert isinstance(_s, SGDClassifier) and _s.loss == "log_loss" and hasattr(_s, "partial_fit")
assert isinstance(make_estimator("sgd", "regression", ["x"], []).named_steps["model"], SGDRegressor)
test_eq(search_space("sgd", "binary", {"sgd": {"alpha": [1e-4]}}), {"model__alpha": [1e-4]})

# %% [markdown]
## The time budget

Before searching, each family is fitted on two probes (2,000 and 8,000 rows) and its cost on all rows
extrapolated from the line through them (a fixed cost plus a cost per row). Families are searched
cheapest first, each re-planned with an equal share of the time actually left: a family whose full
search would overrun its share searches on a stratified subsample instead, then with fewer settings,
and one that would overrun even with one setting on `min_search_rows` rows is skipped.
The decisions are printed and logged.

# %% [code]
#| export
def _subsample(X, y, n, seed, stratify):
    if n >= len(X): return X, y
    Xs, _, ys, _ = train_test_split(X, y, train_size=n, random_state=seed, stratify=y if stratify else None)
    return Xs, ys

def probe_costs(ests: dict, X: pd.DataFrame, y: pd.Series, task: str, seed: int = 42, probe_rows: int = 8000) -> dict:
    "Per family, the cost of one fit as `(fixed seconds, seconds per row)`, from fits on two probes of the rows."
    n, strat = len(X), task_kind(task) == "classification"
    sizes = sorted({max(min(probe_rows // 4, n), 2), min(probe_rows, n)})
    probes = [_subsample(X, y, m, seed, strat) for m in sizes]
    out = {}
    for name, est in ests.items():
        times = []
        for j, (Xp, yp) in enumerate(probes):
            runs = []
            # the first fit pays one-off costs (imports, thread pools): not a fixed cost
            for _ in range(2 if j == 0 else 1):
                t0 = time.perf_counter(); clone(est).fit(Xp, yp); runs.append(time.perf_counter() - t0)
            times.append(min(runs))
        per_row = max((times[-1] - times[0]) / (sizes[-1] - sizes[0]), 0.0) if len(sizes) > 1 else times[-1] / sizes[-1]
        per_row = max(per_row, times[-1] / sizes[-1] / 4)       # never trust a slope far below the average cost
        out[name] = (max(times[-1] - per_row * sizes[-1], 0.0), per_row)
    return out

def plan_family(name: str, cost: tuple, n: int, settings: int, folds: int, share: float, min_rows: int = 2000,
                max_rows: int | None = None, grace_s: float = 0.0) -> dict:
    """Rows and settings for one family's search to fit in `share` seconds, and the action taken. A family whose
    smallest search (one setting on `min_rows` rows) costs at most `grace_s` is never skipped: on a loaded machine
    the probes alone can use up the shares, and a model that costs a fraction of a second should still be tried."""
    fixed, per_row = cost
    secs = lambda rows, k: (fixed + per_row * rows) * k * folds
    n_cap, floor = min(n, max_rows or n), min(min_rows, n)
    if secs(n_cap, settings) <= share:
        p = {"rows": n_cap, "settings": settings, "action": "full" if n_cap == n else "subsampled"}
    else:
        rows = int((share / (settings * folds) - fixed) / per_row) if per_row else n_cap
        if rows >= floor: p = {"rows": rows, "settings": settings, "action": "subsampled"}
        else:
            k = int(share / (folds * (fixed + per_row * floor)))
            if k >= 1 or name == "dummy" or secs(floor, 1) <= grace_s:
                p = {"rows": floor, "settings": max(min(k, settings), 1), "action": "fewer settings"}
            else: p = {"rows": 0, "settings": 0, "action": "skipped"}
    p["estimated_s"] = round(secs(p["rows"] or floor, p["settings"] or 1), 2)
    p.update(fit_fixed_s=round(fixed, 4), fit_per_1k_rows_s=round(per_row * 1000, 5))
    return p

# %% [code]
test_eq(plan_family("linear", (0.0, 1e-4), 10_000, 2, 5, 100)["action"], "full")            # 10 s of 100
_p = plan_family("linear", (0.0, 1e-4), 100_000, 2, 5, 50)
test_eq((_p["action"], _p["rows"]), ("subsampled", 50_000))
# 1 setting on 2,000 rows
test_eq(plan_family("random_forest", (1.0, 1e-3), 100_000, 6, 5, 20)["settings"], 1)
test_eq(plan_family("random_forest", (1.0, 1e-3), 100_000, 6, 5, 5)["action"], "skipped")
# no share left, 0.05 s: tried
test_eq(plan_family("linear", (0.01, 1e-6), 535, 4, 5, 0.0, grace_s=3)["action"], "fewer settings")
test_eq(plan_family("hist_gradient_boosting", (3.0, 1e-3), 535, 4, 5, 0.0, grace_s=3)["action"], "skipped")
test_eq(plan_family("dummy", (0.0, 1e-6), 1_000_000, 1, 5, 100, max_rows=50_000)["rows"], 50_000)

# %% [markdown]
## Search and cross-validation

Per family a randomised search (or successive halving, `search: halving`) over its space in
params.yaml, with a fixed seed; a family without a space is cross-validated as it is. Every candidate
is scored on every metric of the task; the primary metric picks the best.

# %% [code]
#| export
def make_cv(task: str, folds: int, seed: int):
    "Stratified k-fold for classification, k-fold for regression; shuffled with `seed`."
    if folds < 2: raise ValueError(f"train.cv_folds: expected at least 2, got {folds}")
    cls = StratifiedKFold if task_kind(task) == "classification" else KFold
    return cls(n_splits=folds, shuffle=True, random_state=seed)

def n_fits(space: dict, n_iter: int) -> int:
    "How many parameter settings the search tries."
    return max(1, min(n_iter, len(ParameterGrid(space)))) if space else 1

def search_family(est: Pipeline, space: dict, X, y, task: str, metric: str, folds: int = 5, n_iter: int = 6,
                  seed: int = 42, method: str = "random", n_jobs: int = 1) -> dict:
    "Search `space` for `est`; the best setting's parameters and per-metric CV mean, std and fold scores."
    metrics = METRICS[task_kind(task)]
    if metric not in metrics:
        raise ValueError(
            f"project.primary_metric: {metric!r} is not a {task_kind(task)} metric; expected one of {list(metrics)}"
        )
    if task_kind(task) == "classification":
        smallest = int(pd.Series(y).value_counts().min())
        if smallest < folds:
            raise ValueError(
                f"train.cv_folds: {folds} folds need at least {folds} rows per class; the smallest class has {smallest}"
            )
    cv = make_cv(task, folds, seed)
    grid = space or {}   # no space: the single default setting, cross-validated
    if method == "halving" and space:
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingRandomSearchCV
        s = HalvingRandomSearchCV(est, grid, cv=cv, scoring=metric, random_state=seed, n_jobs=n_jobs, refit=False)
    elif method in ("random", "halving", "none"):
        s = RandomizedSearchCV(est, grid, n_iter=n_fits(space, n_iter), cv=cv, scoring=list(metrics), refit=False,
                               random_state=seed, n_jobs=n_jobs)
    else: raise ValueError(f"train.search: expected 'random', 'halving' or 'none', got {method!r}")
    t0 = time.perf_counter(); s.fit(X, y); seconds = time.perf_counter() - t0
    r = s.cv_results_
    key = f"rank_test_{metric}" if f"rank_test_{metric}" in r else "rank_test_score"
    best = int(np.argmin(r[key])) if key in r else 0
    if method == "halving" and space:   # successive halving scores the primary metric only, on its last rung
        res = {f"{metric}_mean": float(r["mean_test_score"][best]), f"{metric}_std": float(r["std_test_score"][best])}
        folds_scores = [float(r[f"split{i}_test_score"][best]) for i in range(folds)]
    else:
        res = {f"{m}_{s_}": float(r[f"{s_}_test_{m}"][best]) for m in metrics for s_ in ("mean", "std")}
        folds_scores = [float(r[f"split{i}_test_{metric}"][best]) for i in range(folds)]
    params = {k.removeprefix("model__"): v for k, v in r["params"][best].items()} if space else {}
    return {**res, "params": params, "fold_scores": folds_scores, "settings_tried": len(r["params"]),
            "fit_time_mean": float(np.mean(r["mean_fit_time"])), "search_seconds": round(seconds, 3), "rows": len(X)}

# %% [code]
_rng = np.random.default_rng(0)
_X = pd.DataFrame({"x": _rng.normal(size=200), "c": _rng.choice(["a", "b"], 200)})
_y = pd.Series(np.where(_X.x > 0, "pos", "neg"))
_r = search_family(
    make_estimator("linear", "binary", ["x"], ["c"]),
    search_space("linear", "binary", {"linear": {"C": [0.01, 1.0]}}),
    _X,
    _y,
    "binary",
    "accuracy",
    folds=3,
    n_iter=5,
)
test_eq(_r["settings_tried"], 2); test_eq(_r["params"], {"C": 1.0}); assert _r["accuracy_mean"] > 0.9
_d = search_family(make_estimator("dummy", "binary", ["x"], ["c"]), {}, _X, _y, "binary", "accuracy", folds=3)
assert _d["accuracy_mean"] < 0.7 and _d["params"] == {}
_yr = 3 * _X.x + _rng.normal(scale=0.1, size=200)
assert (
    search_family(make_estimator("linear", "regression", ["x"], ["c"]), {}, _X, _yr, "regression", "r2", folds=3)[
        "r2_mean"
    ]
    > 0.95
)
test_fail(
    lambda: search_family(make_estimator("linear", "binary", ["x"], []), {}, _X, _y, "binary", "r2"),
    contains="not a classification metric",
)

# %% [markdown]
### Enough rows for the folds

Stratified cross-validation puts every class in every fold. The validate step already stops a run whose smallest
class will have fewer training rows than `train.cv_folds` (its `cv_folds` gate, naming the class). When that gate
is set to `warning`, the folds are lowered here to the smallest class's training rows, with a printed warning;
fewer than 2 rows of a class cannot be cross-validated at all, and that is an error naming the class.

# %% [code]
#| export
def usable_folds(y: pd.Series, folds: int, task: str, log=print) -> int:
    "`folds`, or fewer when the smallest class has fewer rows (with a warning); an error naming the class below 2 rows."
    if task_kind(task) != "classification": return folds
    counts = pd.Series(y).value_counts()
    cls, n = counts.idxmin(), int(counts.min())
    if n >= folds: return folds
    if n < 2:
        raise ValueError(
            f"train.cv_folds: class {cls!r} has {n} row in the training split; cross-validation needs "
            "at least 2 rows of every class (gather more rows of it, or leave it out of the data)"
        )
    log(f"warning: class {cls!r} has {n} rows in the training split, fewer than train.cv_folds = {folds}; "
        f"cross-validating with {n} folds instead")
    return n

# %% [code]
_seen = []
test_eq(usable_folds(pd.Series(["a"] * 9 + ["b"] * 3), 5, "multiclass", log=_seen.append), 3)
assert "class 'b' has 3 rows" in _seen[0] and "with 3 folds" in _seen[0]
test_eq(usable_folds(pd.Series(["a"] * 9 + ["b"] * 5), 5, "binary"), 5)
test_eq(usable_folds(pd.Series(np.arange(4.0)), 5, "regression"), 5)
test_fail(lambda: usable_folds(pd.Series(["a"] * 9 + ["b"]), 5, "binary"), contains="class 'b' has 1 row")

# %% [code]
#| export
def select_best(results: dict, metric: str, tol: float = 1e-9) -> str:
    "The family with the best mean `metric`; among ties (within `tol`) the first listed, i.e. the simplest."
    order = [f for f in FAMILIES if f in results] + [f for f in results if f not in FAMILIES]
    best = max(results[f][f"{metric}_mean"] for f in order)
    return next(f for f in order if results[f][f"{metric}_mean"] >= best - tol)

@contextlib.contextmanager
def compute_backend(scheduler: str | None):
    "joblib's Dask backend on the cluster at `scheduler` (tcp://host:port), or the local backend when None."
    if not scheduler:
        yield "local"; return
    import joblib
    from distributed import Client
    try: client = Client(scheduler, timeout="20s")
    except OSError as e: raise ConnectionError(f"train.dask_scheduler: cannot reach {scheduler}: {e}") from None
    try:
        with joblib.parallel_backend("dask"):
            yield f"dask {scheduler} ({len(client.scheduler_info()['workers'])} workers)"
    finally: client.close()

# %% [code]
test_eq(select_best({"dummy": {"f_mean": 0.9}, "linear": {"f_mean": 0.9}}, "f"), "dummy")
test_eq(select_best({"linear": {"f_mean": 0.8}, "random_forest": {"f_mean": 0.9}}, "f"), "random_forest")
with compute_backend(None) as b: test_eq(b, "local")

# %% [code]
#| export
@dataclass
class SearchSettings:
    "How the candidates are searched: folds, settings per family, method, seed, budget, row floor, scheduler."
    folds: int = 5
    n_iter: int = 6
    method: str = "random"
    seed: int = 42
    time_budget_s: float = 150
    min_rows: int = 2000
    scheduler: str | None = None

def check_candidates(families, time_budget_s: float):
    "Refuse an empty or unknown list of model families and a budget that is not a positive number of seconds."
    if not families: raise ValueError("train.candidates: empty; name at least one model family")
    if not time_budget_s > 0:
        raise ValueError(f"train.time_budget_s: expected a positive number of seconds, got {time_budget_s}")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"train.candidates: unknown model families {unknown}; expected some of {list(FAMILIES)}")

def candidate_estimators(schema: dict, X: pd.DataFrame, families, seed: int = 42) -> dict:
    "The unfitted pipeline of each family in `families` (in `FAMILIES` order) for the schema's features among `X`'s."
    fp = feature_plan(schema, X.columns)      # numeric, categorical, datetime and text columns
    if not any(fp.values()): raise ValueError("train: no usable feature column")
    return {
        f: make_estimator(f, schema["task"], fp["numeric"], fp["categorical"], seed, fp["datetime"], fp["text"])
        for f in FAMILIES
        if f in families
    }

# %% [code]
test_eq(SearchSettings(folds=3).time_budget_s, 150)
test_fail(lambda: check_candidates([], 10), contains="train.candidates: empty")
_sch0 = {"task": "binary", "features": ["x", "c"], "columns": {"x": {"kind": "numeric"}, "c": {"kind": "categorical"}}}
test_eq(list(candidate_estimators(_sch0, pd.DataFrame(columns=["x", "c"]), ["linear", "dummy"])), ["dummy", "linear"])
test_fail(lambda: candidate_estimators(_sch0, pd.DataFrame(columns=["z"]), ["dummy"]), contains="no usable feature")

# %% [code]
#| export
def search_candidates(ests: dict, spaces: dict, costs: dict, X: pd.DataFrame, y: pd.Series, task: str, metric: str,
                      s: SearchSettings, t_start: float, log=print) -> tuple[dict, dict]:
    """Search each family's settings, cheapest first (by the probed `costs`), each within its share of what is left of
    the searches' four fifths of the budget; a family that cannot fit its share is skipped. Returns (results, plan)."""
    settings = {f: n_fits(spaces[f], s.n_iter) for f in ests}
    # On large data the folds run one after the other locally: the forests' trees and HistGradientBoosting
    # already use every core through threads, and sending a large frame to worker processes costs more
    # than it saves. Small data and a Dask cluster spread the fits over processes or workers.
    n_jobs = -1 if s.scheduler or len(X) <= 50_000 else 1
    searches_end = t_start + s.time_budget_s * 0.8           # a fifth of the budget is kept for the refit
    order = sorted(ests, key=lambda f: (costs[f][0] + costs[f][1] * len(X)) * settings[f])   # cheapest first
    results, plan = {}, {}
    for i, f in enumerate(order):
        # what is left, re-planned after each family
        share = max(searches_end - time.perf_counter(), 0) / (len(order) - i)
        share *= 1 if n_jobs == 1 else 2          # two cores when the folds run in parallel
        p = plan[f] = plan_family(f, costs[f], len(X), settings[f], s.folds, share, s.min_rows,
                                  grace_s=0.05 * s.time_budget_s,
                                  max_rows=50_000 if f == "dummy" else None)  # the baseline needs no more
        if p["action"] == "skipped":
            log(f"  {f}: skipped, an estimated {p['estimated_s']} s exceeds its share of the budget"); continue
        Xs, ys = _subsample(X, y, p["rows"], s.seed, task_kind(task) == "classification")
        r = results[f] = search_family(ests[f], spaces[f], Xs, ys, task, metric, s.folds, p["settings"], s.seed,
                                       s.method, n_jobs)
        note = {
            "subsampled": f" on a subsample of {p['rows']} rows",
            "fewer settings": f" on {p['rows']} rows with {p['settings']} of {settings[f]} settings",
        }.get(p["action"], "")
        log(
            f"  {f}: cv {metric} {r[f'{metric}_mean']:.4f} ± {r[f'{metric}_std']:.4f}{note}"
            f" ({r['settings_tried']} settings, {r['search_seconds']:.1f} s)"
            f" {r['params']}"
        )
    # reported simplest first
    return {f: results[f] for f in ests if f in results}, {f: plan[f] for f in ests if f in plan}

def refit_rows(plan: dict, n: int, left: float, min_rows: int = 2000) -> int:
    """How many of the `n` rows the chosen family is refitted on: all when its estimated fit (from its `plan`) takes
    under 5 s or fits in the `left` seconds of the budget, else as many as fit there, at least `min_rows`."""
    fixed, per_row = plan["fit_fixed_s"], plan["fit_per_1k_rows_s"] / 1000
    full = fixed + per_row * n
    if full <= max(left, 0) or full < 5: return n
    return max(int((left - fixed) / per_row) if per_row else n, min(min_rows, n))

# %% [code]
_pl = {"fit_fixed_s": 1.0, "fit_per_1k_rows_s": 1.0}       # 1 s, and 1 s per thousand rows
# under 5 s; fits in the 200 s left; at least min_rows
test_eq((refit_rows(_pl, 3000, 0), refit_rows(_pl, 100_000, 200), refit_rows(_pl, 100_000, 11, 20_000)),
        (3000, 100_000, 20_000))
test_eq(refit_rows(_pl, 100_000, 51, 2000), 50_000)          # as many as fit in 51 s

# %% [code]
#| export
def train_candidates(
    X: pd.DataFrame,
    y: pd.Series,
    schema: dict,
    families,
    metric: str,
    spaces: dict | None = None,
    folds: int = 5,
    n_iter: int = 6,
    method: str = "random",
    seed: int = 42,
    time_budget_s: float = 150,
    min_rows: int = 2000,
    scheduler: str | None = None,
    log=print,
) -> tuple:
    "Plan, search every family and refit the best on all rows within the budget. Returns (model, chosen, results, plan)."
    check_candidates(families, time_budget_s)
    s = SearchSettings(folds, n_iter, method, seed, time_budget_s, min_rows, scheduler)
    task = schema["task"]
    ests = candidate_estimators(schema, X, families, seed)
    sp = {f: search_space(f, task, spaces) for f in ests}
    t_start = time.perf_counter()
    costs = probe_costs(ests, X, y, task, seed)
    with compute_backend(scheduler) as backend:
        log(f"searching on {backend}, budget {time_budget_s} s")
        results, plan = search_candidates(ests, sp, costs, X, y, task, metric, s, t_start, log)
        if not results:
            raise RuntimeError("train: every family was skipped by the time budget; raise train.time_budget_s")
        chosen = select_best(results, metric)
        model = clone(ests[chosen]).set_params(**{f"model__{k}": v for k, v in results[chosen]["params"].items()})
        rows = refit_rows(plan[chosen], len(X), time_budget_s - (time.perf_counter() - t_start), min_rows)
        Xr, yr = _subsample(X, y, rows, seed, task_kind(task) == "classification")
        t0 = time.perf_counter(); model.fit(Xr, yr)
        plan[chosen]["refit_rows"], plan[chosen]["refit_s"] = len(Xr), round(time.perf_counter() - t0, 3)
    log(
        f"chosen: {chosen}, refitted on {len(Xr)} rows in {plan[chosen]['refit_s']} s; train phase"
        f" {time.perf_counter() - t_start:.1f} s"
    )
    return model, chosen, results, plan

# %% [code]
_sch = {"task": "binary", "features": ["x", "c"], "columns": {"x": {"kind": "numeric"}, "c": {"kind": "categorical"}}}
_m, _ch, _res, _plan = train_candidates(
    _X, _y, _sch, ["dummy", "linear"], "accuracy", {"linear": {"C": [1.0]}}, folds=3, log=lambda *a: None
)
test_eq(_ch, "linear"); test_eq(sorted(_res), ["dummy", "linear"]); test_eq(_plan["linear"]["action"], "full")
assert (_m.predict(_X) == _y).mean() > 0.9
_m, _ch, _res, _plan = train_candidates(
    _X,
    _y,
    _sch,
    ["dummy", "random_forest"],
    "accuracy",
    folds=3,
    time_budget_s=0.001,
    min_rows=150,
    log=lambda *a: None,
)
test_eq(_plan["random_forest"]["action"], "skipped"); test_eq(_ch, "dummy")   # the budget rules out the forest
test_fail(lambda: train_candidates(_X, _y, _sch, ["svm"], "accuracy"), contains="unknown model families ['svm']")
test_fail(
    lambda: train_candidates(_X, _y, _sch, ["dummy"], "accuracy", time_budget_s=-5),
    contains="train.time_budget_s: expected a positive",
)

# %% [markdown]
## Logging to dvclive

Per-fold scores become step plots (`dvc plots show`), every family's tuned parameters the params, and
the CV means and spreads the summary (`dvc metrics show`, `dvc exp show`). dvclive is told not to
edit dvc.yaml: the stage declares its metrics and plots there itself.

# %% [code]
#| export
def log_training(live_dir, results: dict, chosen: str, plan: dict, params: dict, metric: str, task: str):
    "Write the search results to a dvclive directory."
    from dvclive import Live
    metrics = METRICS[task_kind(task)]
    with Live(str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None) as live:
        live.log_params({**params, "chosen": chosen, "tuned": {f: r["params"] for f, r in results.items()},
                         "budget_plan": plan})
        for fold in range(len(results[chosen]["fold_scores"])):
            for f, r in results.items(): live.log_metric(f"cv_{metric}/{f}", r["fold_scores"][fold], plot=True)
            live.next_step()
        live.summary = {
            "chosen": {
                f"cv_{m}": round(results[chosen][f"{m}_mean"], 6) for m in metrics if f"{m}_mean" in results[chosen]
            },
            "candidates": {
                f: {
                    f"cv_{metric}_mean": round(r[f"{metric}_mean"], 6),
                    f"cv_{metric}_std": round(r[f"{metric}_std"], 6),
                    "fit_time_mean": round(r["fit_time_mean"], 4),
                    "rows": r["rows"],
                }
                for f, r in results.items()
            },
        }
        live.make_summary()

# %% [code]
import tempfile
with tempfile.TemporaryDirectory() as d:
    _res = {f: {"params": {"C": 1.0}, "fold_scores": [0.8, 0.9, m], "balanced_accuracy_mean": m, "balanced_accuracy_std": 0.05,
                "fit_time_mean": 0.01, "rows": 100} for f, m in (("linear", 0.85), ("dummy", 0.5))}
    log_training(d, _res, "linear", {"linear": 10}, {"seed": 1}, "balanced_accuracy", "binary")
    _s = read_json(Path(d)/"metrics.json")
    test_eq(_s["chosen"], {"cv_balanced_accuracy": 0.85}); test_eq(_s["candidates"]["dummy"]["cv_balanced_accuracy_mean"], 0.5)
    # one row per fold for each candidate: the curves dvc plots draws
    test_eq(len((Path(d)/"plots/metrics/cv_balanced_accuracy/linear.tsv").read_text().splitlines()), 1 + 3)

# %% [markdown]
## Run

# %% [code]
os.chdir(find_root())
train = pd.read_parquet(require(Path(split_dir)/"train.parquet", "run `mlops-nb step split` first"))
schema = read_json(require(schema_path, "run `mlops-nb step validate` first"))
X, y = train.drop(columns=[target]), train[target]
folds = usable_folds(y, cv_folds, schema["task"])
model, chosen, results, plan = train_candidates(
    X,
    y,
    schema,
    candidates,
    primary_metric,
    spaces,
    folds,
    search_iter,
    search,
    seed,
    time_budget_s,
    min_search_rows,
    dask_scheduler,
)
save_model(model, model_path)
refit = plan[chosen].get("refit_rows", len(X))
# sampled, not removed
rows = row_flow(len(X), len(X), refit_rows=refit, search_rows={f: p["rows"] for f, p in plan.items()})
if refit < len(X): print(f"warning: the time budget allowed a refit on {refit} of the {len(X)} training rows "
                         "(a stratified sample); raise train.time_budget_s to train on all of them")
settings = {
    "cv_folds": cv_folds,
    "cv_folds_used": folds,
    "search": search,
    "search_iter": search_iter,
    "time_budget_s": time_budget_s,
    "spaces": spaces,
    "candidates": candidates,
    "dask_scheduler": dask_scheduler,
}
log_training(train_live_dir, results, chosen, plan, settings, primary_metric, schema["task"])
record_step(lineage_dir, "train", {"seed": seed, "primary_metric": primary_metric, **settings},
            inputs=[Path(split_dir)/"train.parquet", schema_path], outputs=[model_path],
            metrics={"chosen": chosen, "tuned": results[chosen]["params"],
                     **{f"cv_{k}": v for k, v in results[chosen].items() if k.endswith("_mean") or k.endswith("_std")}},
            budget_plan=plan, rows=rows)
pd.DataFrame(results).T.drop(columns=["fold_scores"]).round(4)

