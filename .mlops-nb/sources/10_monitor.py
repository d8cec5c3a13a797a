# %% [markdown]
# Monitor
> Compare new data with the training data: per-feature drift, prediction drift, schema violations and, when labels are known, performance decay; then a retraining signal (`94_retrain` acts on it).

# %% [code]
#| default_exp monitor

# %% [code]
#| export
from __future__ import annotations
import json, os, re, time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_nb.core import now_utc, read_json, require, utc_time, write_json
from mlops_nb.logstore import (PREDICTION_LOG_TABLE as LOG_TABLE, ensure_tables, labelled_window, make_engine,   # 00b
                               prediction_id, prediction_log_table, read_prediction_log, _utc)
from mlops_nb.contracts import LOWER_IS_BETTER, check_schema
# 00d: intervals and CBPE, shared with evaluate and online learning
from mlops_nb.estimate import ESTIMABLE, CBPE, bootstrap_intervals
# 00g: the drift statistics and the drift report page
from mlops_nb.drift import (coerce_to_schema, drift_html, drift_table, prediction_drift)
# the step's parameter `profile_compare` (a bool) would hide the function in the notebook
from mlops_nb.drift import profile_compare as compare_profiles

# %% [code]
from fastcore.test import test_eq, test_close, test_fail
import tempfile, sqlite3
from mlops_nb.core import find_root, record_step, require
from mlops_nb.serve import load_model
from mlops_nb.drift import drift_table

# %% [code] tags=['parameters']
target: str = "species"  # the column to predict
primary_metric: str = "balanced_accuracy"  # selects the model in train, gates it in acceptance
split_dir: str = "data/processed"  # train / valid / test / batch splits (Parquet) and their hashes
package_dir: str = "models/package"  # versioned model packages; current.json names the champion
prediction_log_db: str = "data/prediction_log.db"  # the REST service's log: a SQLite path or a SQLAlchemy URL
monitor_live_dir: str = "reports/dvclive/monitor"  # dvclive metrics of monitoring
monitor_path: str = "reports/monitor.json"  # monitoring result (JSON)
drift_report: str = "reports/drift.html"  # drift report (HTML)
drift_profile: str = "reports/drift_profile.html"  # ydata-profiling: reference vs current
lineage_dir: str = "reports/lineage"  # lineage record of each step (JSON)
current_source: str = "batch"  # batch: the held-back split; log: the service's prediction log; or a .csv/.parquet path
window: str = "7d"  # log: the last 30m / 24h / 7d of predictions ("" = all of them)
p_value: float = 0.01  # family-wise: divided by the number of tests of a batch (Bonferroni)
min_wasserstein: float = 0.15  # numeric: smallest material shift, in reference standard deviations
min_jensen_shannon: float = 0.05  # categorical: smallest material Jensen-Shannon distance (0..1)
psi_threshold: float = 0.2  # a PSI at or above this is material too
max_drift_share: float = 0.0  # retrain recommended when the share of drifted features exceeds this (0: any)
max_decay: float = 0.05  # retrain recommended when the primary metric got worse by more (scores: absolute; neg_* errors: relative)
min_rows: int = 30  # fewer current rows: could not evaluate; fewer labelled rows: decay not measured
bootstrap_rounds: int = 200  # resamples for the 95% interval of the measured and of the estimated metric
estimate_performance: bool = True  # classifiers: estimate the primary metric without labels (CBPE), calibrated on the test split
profile_compare: bool = True  # ydata-profiling comparison report of reference vs current
profile_max_rows: int = 5000  # rows sampled from each side for it

# %% [markdown]
## Where the current data comes from

A batch file (CSV or Parquet), or the predictions the REST service logged in its database. The log
is the table `prediction_log` (in the SQLite file or SQLAlchemy URL `paths.prediction_log_db`): one
row per predicted input row, with `logged_at` (ISO 8601, UTC), `model_version`, `request_id`,
`features` (a JSON object, feature name → value) and `prediction` (a JSON scalar). A time window
selects the rows to monitor. Rows whose `features` cannot be read are counted, not fatal.

# %% [code]
#| export
def read_batch(path) -> pd.DataFrame:
    "A batch of current data from a .csv or .parquet file, with an error naming the file when it cannot be read."
    path = Path(path)
    if not path.is_file(): raise FileNotFoundError(f"current data: {path} not found")
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ValueError(f"current data: {path}: expected a .csv or .parquet file, got '{path.suffix}'")
    try: return pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as e: raise ValueError(f"current data: could not read {path}: {type(e).__name__}: {e}") from None

def parse_window(window: str | None, now: datetime | None = None) -> datetime | None:
    "The start of a window like '30m', '24h' or '7d' that ends `now` (UTC); None for an empty window (all rows)."
    if window in (None, "", "all"): return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhd])\s*", str(window))
    if not m:
        raise ValueError(
            f"monitor.window: expected a length like '30m', '24h' or '7d' (or '' for all rows), got {window!r}"
        )
    unit = {"m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
    return (now or utc_time()) - timedelta(**{unit: float(m.group(1))})

# %% [code]
from datetime import timezone
_now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
test_eq(parse_window("24h", _now), datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc))
test_eq(parse_window("", _now), None)
test_fail(lambda: parse_window("a week"), contains="monitor.window")
test_eq(_utc("2026-11-24T08:30:00+01:00"), datetime(2026, 11, 24, 7, 30, tzinfo=timezone.utc))
with tempfile.TemporaryDirectory() as d:
    test_fail(lambda: read_batch(Path(d)/"none.csv"), contains="none.csv not found")
    (Path(d) / "x.txt").write_text("a")
    test_fail(lambda: read_batch(Path(d) / "x.txt"), contains="expected a .csv or .parquet")

# %% [markdown]
The log is read by `logstore.read_prediction_log` (00b, the one definition of the table, shared with serving and
feedback). A log made here in the contract's format: the reader knows only the table, never the writer.

# %% [code]
#| export
def write_log_rows(db: str, rows: pd.DataFrame, predictions, model_version: str = "demo", start=None,
                   step_seconds: float = 1.0, table: str = LOG_TABLE, request_prefix: str = "req-") -> int:
    """Append `rows` (feature frame) and their `predictions` to a prediction log in the contract's format (for tests and
    benchmarks): row i is request `{request_prefix}{i}`, prediction id `{request_prefix}{i}-0`."""
    start = _utc(start) or utc_time()
    feats = [
        json.dumps({k: None if (v is None or (isinstance(v, float) and np.isnan(v))) else v for k, v in r.items()})
        for r in rows.astype(object).to_dict("records")
    ]
    times = [(start + timedelta(seconds=i * step_seconds)).isoformat(timespec="microseconds") for i in range(len(rows))]
    preds = [json.dumps(p.item() if hasattr(p, "item") else p) for p in predictions]
    engine, t = make_engine(db), prediction_log_table(name=table)   # the table the REST service writes
    try:
        with engine.begin() as con:
            ensure_tables(con, table)
            con.execute(
                t.insert(),
                [
                    {
                        "logged_at": at,
                        "model_version": model_version,
                        "request_id": f"{request_prefix}{i}",
                        "prediction_id": prediction_id(f"{request_prefix}{i}", 0),
                        "features": f,
                        "prediction": p,
                    }
                    for i, (at, f, p) in enumerate(zip(times, feats, preds))
                ],
            )
    finally: engine.dispose()
    return len(rows)

# %% [code]
with tempfile.TemporaryDirectory() as d:
    db = str(Path(d)/"log.db")
    _rows = pd.DataFrame({"x": [1.0, np.nan, 3.0], "c": ["a", "b", None]})
    write_log_rows(db, _rows, ["p", "q", "p"], start="2026-11-24T08:00:00+00:00", step_seconds=3600)
    _f, _p, _probs = read_prediction_log(db)
    test_eq(
        _f[["x", "c"]].astype(object).where(_f[["x", "c"]].notna(), None).values.tolist(),
        [[1.0, "a"], [None, "b"], [3.0, None]],
    )
    test_eq(_p.tolist(), ["p", "q", "p"]); test_eq(_probs, [])
    # one hour: the second row
    _f, _p, _ = read_prediction_log(db, since="2026-11-24T09:00:00Z", until="2026-11-24T10:00:00Z")
    test_eq((_f["x"].isna().tolist(), _p.tolist()), ([True], ["q"]))
    with sqlite3.connect(db) as con:
        con.execute(
            "INSERT INTO prediction_log (logged_at, model_version, request_id, features, prediction) "
            "VALUES ('2026-11-24T11:00:00+00:00', 'demo', 'r', 'not json', '\"p\"')"
        )
    _f, _p, _probs = read_prediction_log(db)
    test_eq((len(_f), _probs), (3, ["prediction_log.features: 1 rows not a JSON object, left out"]))
    test_fail(lambda: read_prediction_log(str(Path(d)/"none.db")), contains="none.db not found")
    with sqlite3.connect(Path(d) / "other.db") as con:
        con.execute("create table prediction_log (id integer, logged_at text)")
    test_fail(lambda: read_prediction_log(str(Path(d)/"other.db")), contains="lacks the columns ['model_version'")

# %% [markdown]
## The signal

Each feature's drift is judged in `mlops_nb.drift` (00g_drift: the tests, the Bonferroni family and the
distance floors).

The signal is "drift: retrain recommended" when the share of drifted features exceeds `max_drift_share`
(0 by default: one drifted feature is enough), when the predictions drifted, or when the primary metric lost
more than `max_decay` on a labelled batch (see below); "could not evaluate" when the batch has fewer than `min_rows`
rows or no feature could be compared; otherwise "no drift".

# %% [code]
#| export
NO_DRIFT, RETRAIN, UNKNOWN = "no drift", "drift: retrain recommended", "could not evaluate"
EXIT_CODES = {NO_DRIFT: 0, RETRAIN: 1, UNKNOWN: 2}
RETRAIN_FAILED_EXIT = 3   # `mlops-nb monitor --retrain`: drift, but the retrained model was rejected or the run failed

def drift_signal(
    table: pd.DataFrame,
    max_drift_share: float = 0.0,
    prediction_drift: bool = False,
    decay: float | None = None,
    max_decay: float = 0.05,
    estimated_decay: float | None = None,
) -> tuple[str, float, list[str]]:
    "The retraining signal, the share of drifted features, and the reasons for the signal."
    ev = table[table["evaluated"]] if len(table) else table
    if ev.empty: return UNKNOWN, float("nan"), ["no feature of the model could be compared"]
    share = float(ev["drifted"].mean())
    reasons = []
    if share > max_drift_share:
        reasons.append(
            f"{int(ev['drifted'].sum())} of {len(ev)} features drifted ({share:.0%} > {max_drift_share:.0%}): "
            + ", ".join(ev.loc[ev.drifted, "feature"])
        )
    if prediction_drift: reasons.append("the distribution of predictions drifted")
    if decay is not None and decay > max_decay:
        reasons.append(f"the primary metric decayed by {decay:.4g} (> {max_decay})")
    if estimated_decay is not None and estimated_decay > max_decay:
        reasons.append(
            f"the primary metric estimated without labels (CBPE) decayed by {estimated_decay:.4g} (> {max_decay})"
        )
    return (RETRAIN if reasons else NO_DRIFT), share, reasons

# %% [code]
_rng = np.random.default_rng(0)
_sch = {"features": ["x", "c"], "columns": {"x": {"kind": "numeric"}, "c": {"kind": "categorical"}}}
_R = pd.DataFrame({"x": _rng.normal(size=2000), "c": _rng.choice(["a", "b", "c"], 2000, p=[0.6, 0.3, 0.1])})
_same = _R.sample(500, random_state=1)
_moved = _same.assign(x=_same.x + 1.0, c="c")
test_eq(drift_signal(drift_table(_R, _same, _sch))[:2], (NO_DRIFT, 0.0))
test_eq(drift_signal(drift_table(_R, _moved, _sch), 0.3)[:2], (RETRAIN, 1.0))
test_eq(drift_signal(drift_table(_R, pd.DataFrame({"z": [1]}), _sch))[0], UNKNOWN)
test_eq(drift_signal(drift_table(_R, _same, _sch), decay=0.2)[0], RETRAIN)
test_eq(
    drift_signal(drift_table(_R, _same, _sch), estimated_decay=0.2)[2],
    ["the primary metric estimated without labels (CBPE) decayed by 0.2 (> 0.05)"],
)

# %% [markdown]
## Performance decay

When the current rows have labels (a labelled batch, or the part of the service's log that received feedback), the
primary metric on them is compared with the metric the model was accepted on, both oriented as the acceptance gates
orient them (higher is better; the `neg_*` error metrics negated). Decay is how much worse it got: scores such as
accuracy or R² in their own units, errors (RMSE, MAE) relative to their value at training, since their scale is the
target's. The measured metric comes with its 95% bootstrap interval (`00d_estimate`, the same code as evaluation's),
and so does the decay: a drop measured on forty labels is not one measured on forty thousand.

Without labels, a classifier's metric is estimated from its probabilities (CBPE, `00d_estimate`), calibrated on the
test split; a drop of the estimate beyond `max_decay` raises the signal too. With labels, both are reported side by
side.

# %% [code]
#| export
def oriented(metrics: dict, metric: str) -> float | None:
    "`metric` from `metrics` with higher meaning better (the acceptance gates' convention); None when it is not there."
    from mlops_nb.contracts import score
    try: return float(score(metrics or {}, metric))
    except KeyError: return None

def oriented_interval(intervals: dict, metric: str) -> tuple | None:
    "The bootstrap interval of `metric` (from `bootstrap_intervals`), oriented as `oriented` orients the metric."
    if metric in LOWER_IS_BETTER:
        iv = intervals.get(LOWER_IS_BETTER[metric])
        return None if iv is None else (-iv[1], -iv[0])
    iv = intervals.get(metric)
    return None if iv is None else tuple(iv)

def decay(metric: str, now: float | None, at_training: float | None) -> float | None:
    "How much worse the oriented `metric` is now than at training (positive: worse); relative for error metrics (neg_*)."
    if at_training is None or now is None or now != now: return None
    d = at_training - now
    if metric.startswith("neg_"): d = d / abs(at_training) if at_training else float("inf")
    return round(d, 6)

# %% [code]
test_eq(oriented({"balanced_accuracy": 0.9}, "balanced_accuracy"), 0.9)
test_eq(oriented({"rmse": 50.0, "r2": 0.4}, "neg_root_mean_squared_error"), -50.0)
test_eq(oriented({"r2": 0.4}, "accuracy"), None)
test_eq(decay("balanced_accuracy", 0.8, 0.95), 0.15)
test_eq(decay("neg_root_mean_squared_error", -60.0, -50.0), 0.2)     # RMSE up by a fifth
test_eq(decay("accuracy", 0.9, None), None)
test_eq(oriented_interval({"rmse": (40.0, 60.0)}, "neg_root_mean_squared_error"), (-60.0, -40.0))
test_eq(oriented_interval({"accuracy": (0.8, 0.9)}, "accuracy"), (0.8, 0.9)); test_eq(oriented_interval({}, "r2"), None)

# %% [code]
#| export
def estimate_current(served, current: pd.DataFrame, calibration: pd.DataFrame | None = None, rounds: int = 200,
                     labelled=None) -> dict:
    """CBPE's estimate of the champion's metrics on `current` (its probabilities, calibrated on the labelled rows of
    `calibration`), with intervals; `labelled` (a boolean mask): the estimate on those rows too, to set beside the
    measured."""
    tgt, classes = served.schema["target"], served.classes
    cols = [f"proba_{c}" for c in classes]
    est = CBPE(classes)
    if calibration is not None and tgt in calibration and calibration[tgt].notna().sum() >= 2 * len(classes):
        cal = calibration[calibration[tgt].notna()]
        est.fit(served.predict(cal)[cols].to_numpy(), cal[tgt].astype(str))
    p = served.predict(current)
    out = est.estimate(p[cols].to_numpy(), p["prediction"].astype(str), rounds=rounds)
    if labelled is not None and np.asarray(labelled).any():
        m = np.asarray(labelled)
        out["labelled"] = est.estimate(p[cols].to_numpy()[m], p["prediction"].astype(str).to_numpy()[m], rounds=0)
    return out

# %% [code]
_root = find_root()
# the finished project's champion
if (_root/package_dir/"current.json").is_file() and (_root/split_dir/"test.parquet").is_file():
    _sv = load_model(_root/package_dir)
    _test = pd.read_parquet(_root/split_dir/"test.parquet")
    _e = estimate_current(_sv, _test.drop(columns=[target]), _test, rounds=50, labelled=np.ones(len(_test), bool))
    _measured = _sv.lineage["metrics"]["test"][primary_metric] if primary_metric in ESTIMABLE else None
    print(f"CBPE on the test split: {_e['metrics']}, measured {_measured}")
    assert _e["calibrated"] and _e["rows"] == len(_test) and set(_e["metrics"]) == set(ESTIMABLE)

# %% [markdown]
## Monitoring a batch

Everything above on one batch: schema violations (counted, never fatal), drift of each feature and of the
predictions, decay when labels are there, and the signal with its reasons. Predictions logged by the
service are used as they are; a batch file is predicted by the champion.

# %% [code]
#| export
def measure_decay(task: str, y: pd.Series, predicted: pd.Series, metric: str, metric_at_training: float | None,
                  rounds: int = 200) -> dict:
    """The oriented `metric` of `predicted` against the labels `y` and its decay since training, each with its bootstrap
    interval (`rounds` resamples; 0: none): the measured-performance fields of the monitor's result."""
    from mlops_nb.contracts import task_metrics
    y, yp = (
        (pd.to_numeric(y, errors="coerce"), pd.to_numeric(predicted, errors="coerce"))
        if task == "regression"
        else (y.astype(str), predicted.astype(str))
    )
    now = oriented(task_metrics(task, y, yp), metric)
    dec = decay(metric, now, metric_at_training)
    iv = (
        oriented_interval(
            bootstrap_intervals(task, y.to_numpy(), yp.to_numpy(), rounds=rounds, max_rows=20_000), metric
        )
        if rounds
        else None
    )
    return dict(
        metric=metric,
        metric_current=now,
        metric_current_interval=list(iv) if iv else None,
        metric_at_training=metric_at_training,
        decay=dec,
        labelled_rows=len(y),
        decay_interval=(
            sorted([decay(metric, iv[0], metric_at_training), decay(metric, iv[1], metric_at_training)])
            if iv and dec is not None
            else None
        ),
    )

def labelled_performance(current: pd.DataFrame, predictions, task: str, target: str, metric: str,
                         metric_at_training: float | None, min_rows: int = 30, rounds: int = 200) -> tuple[dict, list]:
    """`measure_decay` on the labelled rows of `current` (its `target` column) and the model's `predictions` for all
    rows, with notes: fewer than `min_rows` labels give only their count."""
    n_lab = int(current[target].notna().sum()) if target in current else 0
    if n_lab >= min_rows:
        lab = current[target].notna().to_numpy()
        y, yp = current.loc[lab, target], pd.Series(np.asarray(predictions)[lab])
        return measure_decay(task, y, yp, metric, metric_at_training, rounds), []
    if n_lab: return {"labelled_rows": n_lab}, [
        f"{n_lab} labelled rows, fewer than monitor.min_rows = {min_rows}: decay not measured"]
    return {}, []

# %% [code]
_lab = pd.DataFrame({"y": ["a", "b"] * 20 + [None] * 10})
_pred = pd.Series(["a", "b"] * 15 + ["b", "a"] * 5 + ["a"] * 10)      # 30 of the 40 labelled rows right
_m, _n = labelled_performance(_lab, _pred, "binary", "y", "accuracy", 0.9, rounds=50)
test_eq((_m["metric_current"], _m["decay"], _m["labelled_rows"], _n), (0.75, 0.15, 40, []))
assert _m["metric_current_interval"][0] <= 0.75 <= _m["metric_current_interval"][1] and len(_m["decay_interval"]) == 2
test_eq(labelled_performance(_lab, _pred, "binary", "y", "accuracy", 0.9, min_rows=50),
        ({"labelled_rows": 40}, ["40 labelled rows, fewer than monitor.min_rows = 50: decay not measured"]))
test_eq(labelled_performance(_lab.drop(columns="y"), _pred, "binary", "y", "accuracy", 0.9), ({}, []))
test_eq(measure_decay("regression", pd.Series([1.0, 2.0]), pd.Series([1.0, 2.0]), "r2", 1.0, rounds=0)["decay"], 0.0)

# %% [code]
#| export
def estimated_performance(served, current: pd.DataFrame, calibration: pd.DataFrame | None, metric: str,
                          metric_at_training: float | None, complete: bool = True, rounds: int = 200,
                          labelled=None) -> tuple[dict, list]:
    """CBPE's estimate of a classifier's `metric` on `current` and its decay since training: the estimated-performance
    fields of the monitor's result, with notes (`complete`: every feature column is there to predict with)."""
    if metric not in ESTIMABLE:
        return {}, [f"CBPE estimates {', '.join(ESTIMABLE)}; the primary metric {metric} is not estimated"]
    if not complete:
        return {}, ["CBPE not evaluated: feature columns are missing, so the model cannot give probabilities"]
    est = estimate_current(served, current, calibration, rounds, labelled=labelled)
    value = est["metrics"][metric]
    est_dec = decay(metric, value, metric_at_training)
    estimated = {
        "method": "CBPE",
        "metric": metric,
        "value": value,
        "interval": est["intervals"].get(metric),
        "decay": est_dec,
        "rows": est["rows"],
        "calibration_rows": est["calibration_rows"],
        **({"value_on_labelled_rows": est["labelled"]["metrics"][metric]} if "labelled" in est else {}),
    }
    notes = [] if est["calibrated"] else [
        "CBPE: no labelled held-out rows to calibrate on; the model's probabilities are taken as they are"]
    return dict(estimated=estimated, metric=metric, metric_at_training=metric_at_training, metric_estimated=value,
                estimated_decay=est_dec), notes

# %% [code]
class _Served:
    "The little of a served classifier the monitor uses: schema, version, classes and predictions with probabilities."
    schema = {"features": ["x"], "columns": {"x": {"kind": "numeric"}}, "target": "y", "task": "binary"}
    version, classes, is_classifier = "v1", ["a", "b"], True
    def predict(self, df):
        p = 1 / (1 + np.exp(-3 * pd.to_numeric(df["x"]).to_numpy()))
        return pd.DataFrame({"prediction": np.where(p >= 0.5, "b", "a"), "proba_a": 1 - p, "proba_b": p})
_X = pd.DataFrame({"x": _rng.normal(size=300)})
_e, _n = estimated_performance(_Served(), _X, None, "accuracy", 0.9, rounds=20)
test_eq((_e["estimated"]["method"], _e["estimated"]["rows"], _e["estimated_decay"] == _e["estimated"]["decay"]),
        ("CBPE", 300, True))
assert 0.5 < _e["metric_estimated"] < 1 and "no labelled held-out rows" in _n[0]
test_eq(estimated_performance(_Served(), _X, None, "roc_auc", 0.9)[0], {})
assert "CBPE not evaluated" in estimated_performance(_Served(), _X, None, "accuracy", 0.9, complete=False)[1][0]

# %% [code]
#| export
def monitor(reference: pd.DataFrame, current: pd.DataFrame, served, p_value: float = 0.01, psi_threshold: float = 0.2,
            max_drift_share: float = 0.0, metric: str | None = None, metric_at_training: float | None = None,
            min_wasserstein: float = 0.15, min_jensen_shannon: float = 0.05, max_decay: float = 0.05,
            min_rows: int = 30, predictions: pd.Series | None = None, problems: list[str] | None = None,
            source: str = "", calibration: pd.DataFrame | None = None, rounds: int = 200,
            estimate: bool = True) -> tuple[dict, pd.DataFrame]:
    """Everything the monitor measures on `current` against `reference`, and the per-feature drift table. Labelled rows
    of `current` (its target column) give the measured metric and its decay with their intervals (`rounds` resamples);
    for a classifier, `estimate` adds the CBPE estimate of the metric on all rows, calibrated on `calibration` (labelled
    held-out rows, e.g. the test split; None: the probabilities are taken as they are)."""
    t0 = time.perf_counter()
    schema = served.schema
    task, tgt = schema.get("task"), schema["target"]
    current, coerce_problems = coerce_to_schema(current, schema)
    reference, _ = coerce_to_schema(reference, schema)
    violations = list(problems or []) + coerce_problems + check_schema(current, schema)
    compared = [f for f in schema["features"] if f in current and f in reference]
    complete, tests = len(compared) == len(schema["features"]), len(compared) + 1
    table = drift_table(reference, current, schema, p_value, psi_threshold, min_wasserstein, min_jensen_shannon,
                        n_tests=tests)
    result = {"status": UNKNOWN, "checked": now_utc(), "source": source, "model_version": served.version, "task": task,
              "rows_reference": len(reference), "rows_current": len(current), "p_value": p_value,
              "bonferroni_tests": tests, "p_threshold": p_value / tests, "max_decay": max_decay}
    notes = []
    if len(current) < min_rows:
        notes.append(f"the current data has {len(current)} rows, fewer than monitor.min_rows = {min_rows}")
    elif complete or predictions is not None:
        pref = served.predict(reference)["prediction"]
        pcur = predictions if predictions is not None else served.predict(current)["prediction"]
        result["prediction_drift"] = prediction_drift(pref, pcur, task, result["p_threshold"], psi_threshold,
                                                      min_wasserstein, min_jensen_shannon)
        lab = current[tgt].notna().to_numpy() if tgt in current and current[tgt].notna().any() else None
        steps = [labelled_performance(current, pcur, task, tgt, metric, metric_at_training, min_rows, rounds)] \
            if metric else []
        if metric and estimate and getattr(served, "is_classifier", False):
            steps.append(estimated_performance(served, current, calibration, metric, metric_at_training, complete,
                                               rounds, labelled=lab))
        for fields, more in steps: result.update(fields); notes += more
    else:
        notes.append("prediction drift not evaluated: feature columns are missing, so the model cannot predict")
    pred_drift = result.get("prediction_drift", {}).get("drifted", False)
    status, share, reasons = drift_signal(table, max_drift_share, pred_drift, result.get("decay"), max_decay,
                                          result.get("estimated_decay"))
    if len(current) < min_rows: status, reasons = UNKNOWN, notes[:1]
    result.update(status=status, exit_code=EXIT_CODES[status], reasons=reasons, notes=notes, drift_share=share,
                  drifted_features=table.loc[table.drifted, "feature"].tolist(),
                  schema_violation_count=len(violations), schema_violations=violations,
                  features=table.replace({np.nan: None}).to_dict("records"), seconds=round(time.perf_counter() - t0, 3))
    return result, table

# %% [code]
_cur = pd.DataFrame({"x": _rng.normal(size=200)})
_cur["y"] = np.where(_cur.x > 0, "b", "a")                             # labelled, and the model is right on all
_res, _tab = monitor(_cur, _cur, _Served(), metric="accuracy", metric_at_training=0.85, rounds=20)
test_eq((_res["status"], _res["prediction_drift"]["drifted"], _res["decay"], _res["labelled_rows"]),
        (NO_DRIFT, False, -0.15, 200))                        # better than at training
assert _res["estimated"]["method"] == "CBPE" and _res["estimated_decay"] < 0.05
assert "no labelled held-out rows" in _res["notes"][0]          # no calibration rows given
_res, _ = monitor(_cur, _cur.assign(x=_cur.x + 2), _Served(), metric="accuracy", rounds=0, estimate=False)
test_eq((_res["status"], _res["drifted_features"], _res["prediction_drift"]["drifted"]), (RETRAIN, ["x"], True))
test_eq(monitor(_cur, _cur.head(10), _Served())[0]["reasons"],
        ["the current data has 10 rows, fewer than monitor.min_rows = 30"])

# %% [markdown]
## The report

The drift report page and ydata-profiling's comparison are made by `mlops_nb.drift` (00g_drift); the numbers go
to dvclive, one step per run.

# %% [code]
#| export
def log_monitoring(live_dir, result: dict) -> int:
    "Append the drift share, drifted-feature count and decay of this run to a dvclive directory; return its step."
    from dvclive import Live
    prev = Path(live_dir)/"metrics.json"
    step = (read_json(prev).get("step", -1) + 1) if prev.is_file() else 0
    with Live(str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None, resume=True) as live:
        live.step = step
        if result["drift_share"] == result["drift_share"]: live.log_metric("drift_share", result["drift_share"])
        live.log_metric("drifted_features", len(result.get("drifted_features", [])))
        live.log_metric("signal", result.get("exit_code", EXIT_CODES[result["status"]]))
        for k in ("decay", "metric_current", "metric_estimated", "estimated_decay"):
            if result.get(k) is not None: live.log_metric(k, result[k])
        live.make_summary()
    return step

# %% [code]
with tempfile.TemporaryDirectory() as d:
    _res = {"status": RETRAIN, "drift_share": 1.0, "drifted_features": ["x", "c"], "reasons": ["x moved"], "exit_code": 1}
    test_eq([log_monitoring(Path(d)/"live", _res) for _ in range(2)], [0, 1])    # successive runs are successive steps
    test_eq(len(pd.read_csv(Path(d)/"live/plots/metrics/drift_share.tsv", sep="\t")), 2)

# %% [markdown]
## Reading the inputs of a run

The reference is the training split; the current data is the held-back batch (`batch`), the service's
log over a window (`log`), or a file.

# %% [code]
#| export
def read_current(
    source: str,
    split_dir="data/processed",
    prediction_log_db="data/prediction_log.db",
    window: str | None = "7d",
    since=None,
    until=None,
    target: str | None = None,
) -> tuple[pd.DataFrame, pd.Series | None, list[str], str]:
    """The current data of `source` ('batch', 'log' or a file): frame, logged predictions (or None), problems, and a
    description. From the log, the labels sent back as feedback are the `target` column (missing where none arrived)."""
    if source == "batch":
        p = Path(split_dir)/"batch.parquet"
        return pd.read_parquet(require(p, "run `mlops-nb step split` first")), None, [], str(p)
    if source == "log":
        since = since or parse_window(window)
        frame = labelled_window(prediction_log_db, since, until)
        preds, problems, labels = frame.pop("prediction"), frame.attrs.get("problems", []), frame.pop("label")
        frame = frame.drop(columns=["label_received_at"])
        n = int(labels.notna().sum())
        # no feedback yet: no target column
        if target is not None and target not in frame and n: frame[target] = labels
        return (
            frame,
            preds,
            problems,
            (
                f"{prediction_log_db} {LOG_TABLE} from {since or 'the start'} to {until or 'now'}"
                f" ({n} of {len(frame)} rows labelled by feedback)"
            ),
        )
    return read_batch(source), None, [], str(source)

def metric_at_training(served, metric: str | None) -> float | None:
    "The primary metric the champion was accepted on (its test metrics), oriented as the gates orient it."
    return oriented(served.lineage.get("metrics", {}).get("test", {}), metric) if metric else None

def write_monitoring(result: dict, table: pd.DataFrame, reference: pd.DataFrame, current: pd.DataFrame, status_path,
                     drift_report, live_dir=None, profile_path=None, profile_max_rows: int = 5000) -> dict:
    "Write the status file, the drift report, the profile comparison (when `profile_path`) and the dvclive step."
    if profile_path is not None and len(current) and len(table):
        try:
            compare_profiles(reference, current, profile_path, profile_max_rows)
            result["profile_report"] = str(profile_path)
        except Exception as e:
            result.setdefault("notes", []).append(f"profile comparison failed: {type(e).__name__}: {e}")
    href = os.path.relpath(profile_path, Path(drift_report).parent) if result.get("profile_report") else None
    drift_html(table, reference, current, result, drift_report, href)
    if live_dir is not None: result["dvclive_step"] = log_monitoring(live_dir, result)
    write_json(result, status_path)
    return result

# %% [code]
with tempfile.TemporaryDirectory() as d:      # the log's labels (sent back as feedback) become the target column
    from mlops_nb.logstore import store_feedback
    _db = str(Path(d)/"log.db")
    write_log_rows(_db, pd.DataFrame({"x": [1.0, 2.0, 3.0]}), ["p", "q", "p"])
    _cur, _pred, _, _what = read_current("log", prediction_log_db=_db, window="", target="y")
    # no feedback yet: no target
    assert "y" not in _cur and _what.endswith("(0 of 3 rows labelled by feedback)")
    test_eq(store_feedback(_db, [{"prediction_id": "req-1-0", "label": "p"}])["stored"], 1)
    _cur, _pred, _, _what = read_current("log", prediction_log_db=_db, window="", target="y")
    test_eq((_cur["y"].isna().tolist(), _pred.tolist()), ([True, False, True], ["p", "q", "p"]))
    assert "label" not in _cur and _what.endswith("(1 of 3 rows labelled by feedback)")

# %% [markdown]
The Run section below and `mlops-nb monitor` both check a batch with `check_current`, given the step's parameter
values by name (the `parameters` cell above, with params.yaml over it): the defaults are written only there.

# %% [code]
#| export
def check_current(values: dict, reference: pd.DataFrame, current: pd.DataFrame, served, predictions=None, problems=(),
                  source: str = "", calibration: pd.DataFrame | None = None) -> tuple[dict, pd.DataFrame]:
    """`monitor` with the monitor step's parameter `values` (`p_value`, `primary_metric`... as the parameters cell names
    them); `calibration`: labelled held-out rows (the test split) that CBPE calibrates the probabilities on."""
    v, metric = values, values["primary_metric"]
    return monitor(
        reference,
        current,
        served,
        v["p_value"],
        v["psi_threshold"],
        v["max_drift_share"],
        metric,
        metric_at_training(served, metric),
        v["min_wasserstein"],
        v["min_jensen_shannon"],
        v["max_decay"],
        v["min_rows"],
        predictions=predictions,
        problems=list(problems),
        source=source,
        calibration=calibration,
        rounds=v["bootstrap_rounds"],
        estimate=v["estimate_performance"],
    )

# %% [code]
_root = find_root()
_served, _ref = load_model(_root/package_dir), pd.read_parquet(_root/split_dir/"train.parquet")
_res, _tab = check_current(globals(), _ref, _ref.sample(min(len(_ref), 200), random_state=0), _served)
test_eq((_res["status"], _res["exit_code"]), (NO_DRIFT, 0))          # the training data against a sample of itself
_test = pd.read_parquet(_root/split_dir/"test.parquet")
# labelled: measured, with its interval, beside CBPE's estimate
_res, _ = check_current(globals(), _ref, _test, _served, calibration=_test)
_lo, _hi = _res["metric_current_interval"]
assert (
    _lo <= _res["metric_current"] <= _hi
    and _res["labelled_rows"] == len(_test)
    and _res["estimated"]["method"] == "CBPE"
)
# the test split is what the champion was accepted on
test_close(_res["metric_current"], _res["metric_at_training"], eps=1e-6)
assert abs(_res["estimated"]["value"] - _res["metric_current"]) < 0.1, _res["estimated"]
test_fail(lambda: check_current({"primary_metric": primary_metric}, _ref, _ref, _served), contains="p_value")

# %% [markdown]
## Run

The pipeline compares the current data (`current_source`: the held-back batch by default, `log` for the
service's prediction log over `window`, or a file) with the training split.

# %% [code]
os.chdir(find_root())
served = load_model(package_dir)
reference = pd.read_parquet(require(Path(split_dir)/"train.parquet", "run `mlops-nb step split` first"))
current, logged, problems, described = read_current(current_source, split_dir, prediction_log_db, window, target=target)
calibration = pd.read_parquet(Path(split_dir)/"test.parquet") if (Path(split_dir)/"test.parquet").is_file() else None
# globals(): the parameters cell's values, as papermill set them
result, table = check_current(globals(), reference, current, served, predictions=logged, problems=problems,
                              source=described, calibration=calibration)
write_monitoring(result, table, reference, current, monitor_path, drift_report, monitor_live_dir,
                 drift_profile if profile_compare else None, profile_max_rows)
if not Path(drift_profile).is_file():   # a DVC output of this step: say why there is no comparison
    from mlops_nb.core import write_text
    from mlops_nb.pages import html_page
    _why = "monitor.profile_compare is false" if not profile_compare else "; ".join(result.get("notes", [])) or "no rows"
    write_text(html_page("Profile comparison", f"<p>No profile comparison in this run: {_why}.</p>"), drift_profile)
record_step(
    lineage_dir,
    "monitor",
    {"current_source": current_source, "p_value": p_value, "max_drift_share": max_drift_share},
    inputs=[Path(split_dir) / "train.parquet"]
    + ([Path(split_dir) / "batch.parquet"] if current_source == "batch" else [])
    + ([Path(split_dir) / "test.parquet"] if calibration is not None else []),
    outputs=[monitor_path, drift_report],
    metrics={k: v for k, v in result.items() if isinstance(v, (int, float))},
)
print(
    f"{result['status']}: {result['drift_share']:.0%} of features drifted; {result['schema_violation_count']} schema"
    " violations"
)
for r in result["reasons"] + result["notes"]: print(" -", r)
table

