# %% [markdown]
# Monitor
> Compare new data with the training data: per-feature drift, prediction drift, schema violations and, when labels are known, performance decay; then a retraining signal (`94_retrain` acts on it).

# %% [code]
#| default_exp monitor

# %% [code]
#| export
from __future__ import annotations
import base64, html, io, json, os, re, time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mlops_nb.core import now_utc, read_json, require, utc_time, write_json, write_text
from mlops_nb.logstore import (PREDICTION_LOG_TABLE as LOG_TABLE, ensure_tables, labelled_window, make_engine,   # 00b
                               prediction_id, prediction_log_table, read_prediction_log, _utc)
from mlops_nb.contracts import LOWER_IS_BETTER, check_schema
# 00d: intervals and CBPE, shared with evaluate and online learning
from mlops_nb.estimate import ESTIMABLE, CBPE, bootstrap_intervals
from mlops_nb.pages import html_page

# %% [code]
from fastcore.test import test_eq, test_close, test_fail
import tempfile, sqlite3
from mlops_nb.core import find_root, record_step, require
from mlops_nb.serve import load_model

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
## Drift of one column

Numeric columns: the two-sample Kolmogorov–Smirnov test, and the Wasserstein distance in units of the
reference's standard deviation (how far the distribution moved). Categorical columns: the chi-squared
test of the two samples' counts, and the Jensen–Shannon distance (base 2, between 0 and 1) of the shares.
Both kinds also get the population stability index (PSI) over the reference's deciles or categories.
A p-value answers "could this be chance?", a distance "is it big enough to matter?": with a million
logged rows every tiny difference is significant, with fifty rows a large one may not be.

# %% [code]
#| export
def psi(ref_share: np.ndarray, cur_share: np.ndarray, eps: float = 1e-4) -> float:
    "Population stability index between two vectors of bin shares."
    r, c = np.clip(ref_share, eps, None), np.clip(cur_share, eps, None)
    return float(np.sum((c - r) * np.log(c / r)))

def numeric_drift(ref: pd.Series, cur: pd.Series, bins: int = 10) -> dict:
    """KS statistic and p-value, Wasserstein distance in reference standard deviations, and PSI over the reference's
    quantile bins."""
    ref = pd.to_numeric(ref, errors="coerce").dropna().to_numpy(float)
    cur = pd.to_numeric(cur, errors="coerce").dropna().to_numpy(float)
    ks = stats.ks_2samp(ref, cur)
    sd = float(np.std(ref))
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    share = lambda s: np.histogram(s, edges)[0] / max(len(s), 1)
    return {
        "test": "Kolmogorov-Smirnov",
        "statistic": float(ks.statistic),
        "p_value": float(ks.pvalue),
        "distance_name": "Wasserstein / sd",
        "distance": float(stats.wasserstein_distance(ref, cur) / (sd if sd > 0 else 1.0)),
        "psi": psi(share(ref), share(cur)),
    }

def categorical_drift(ref: pd.Series, cur: pd.Series) -> dict:
    """Chi-squared test of the category counts, Jensen-Shannon distance and PSI of the shares (missing values are a
    category)."""
    from scipy.spatial.distance import jensenshannon
    counts = pd.DataFrame({"r": ref.astype(object).fillna("<missing>").astype(str).value_counts(),
                           "c": cur.astype(object).fillna("<missing>").astype(str).value_counts()}).fillna(0)
    table = counts.to_numpy(float).T
    if len(counts) < 2 or table[1].sum() == 0: stat, p = 0.0, 1.0
    else: stat, p, *_ = stats.chi2_contingency(table)
    rs, cs = table[0] / max(table[0].sum(), 1), table[1] / max(table[1].sum(), 1)
    return {"test": "chi-squared", "statistic": float(stat), "p_value": float(p), "distance_name": "Jensen-Shannon",
            "distance": float(jensenshannon(rs, cs, base=2)) if table[1].sum() else 0.0, "psi": psi(rs, cs)}

# %% [code]
_rng = np.random.default_rng(0)
_ref = pd.Series(_rng.normal(size=2000))
_same = numeric_drift(_ref, pd.Series(_rng.normal(size=500)))
assert _same["p_value"] > 0.01 and _same["distance"] < 0.1
_shift = numeric_drift(_ref, pd.Series(_rng.normal(0.5, 1, size=500)))
# half a standard deviation
assert _shift["p_value"] < 1e-6 and 0.4 < _shift["distance"] < 0.6 and _shift["psi"] > 0.1
_cref = pd.Series(_rng.choice(["a", "b", "c"], 2000, p=[0.6, 0.3, 0.1]))
assert categorical_drift(_cref, pd.Series(_rng.choice(["a", "b", "c"], 500, p=[0.6, 0.3, 0.1])))["p_value"] > 0.01
_cat = categorical_drift(_cref, pd.Series(_rng.choice(["a", "b", "c"], 500, p=[0.5, 0.3, 0.2])))   # c's share doubles
assert _cat["p_value"] < 0.01 and _cat["distance"] > 0.05
test_close(psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])), 0.0)
# missing values count as a category
test_eq(categorical_drift(_cref, pd.Series(["a"] * 10 + [None] * 10))["p_value"] < 1e-6, True)

# %% [markdown]
## Drift of a table, and the signal

Each feature is one test; with ten features, ten tests at p < 0.01 would raise a false alarm on about one
batch in ten. The monitor controls the **family-wise** error instead: a feature's test is significant when
p < `p_value` / m, where m is the number of tests of the batch (the features compared plus the prediction
test), the Bonferroni correction, so a batch from the reference distribution raises drift with a probability
of at most `p_value`. A significant feature counts as **drifted** only if its shift is also material: a
distance of at least `min_wasserstein` (numeric) or `min_jensen_shannon` (categorical), or a PSI of at least
`psi_threshold`. The default floors, 0.15 standard deviations and a Jensen–Shannon distance of 0.05, sit
below what is usually called a small effect (0.2 sd) and above the sampling noise of the distances for batches
of about a thousand rows; they keep a huge batch (a month of logged predictions) from calling a trivial shift
drift.

The signal is "drift: retrain recommended" when the share of drifted features exceeds `max_drift_share`
(0 by default: one drifted feature is enough), when the predictions drifted, or when the primary metric lost
more than `max_decay` on a labelled batch (see below); "could not evaluate" when the batch has fewer than `min_rows`
rows or no feature could be compared; otherwise "no drift".

# %% [code]
#| export
NO_DRIFT, RETRAIN, UNKNOWN = "no drift", "drift: retrain recommended", "could not evaluate"
EXIT_CODES = {NO_DRIFT: 0, RETRAIN: 1, UNKNOWN: 2}
RETRAIN_FAILED_EXIT = 3   # `mlops-nb monitor --retrain`: drift, but the retrained model was rejected or the run failed

def coerce_to_schema(current: pd.DataFrame, schema: dict) -> tuple[pd.DataFrame, list[str]]:
    """`current` with numeric features as floats and categorical ones as text; values that are not numbers become missing
    and are reported."""
    out, problems = current.copy(), []
    for f in schema["features"]:
        if f not in out: continue
        kind = schema["columns"][f]["kind"]
        if kind == "numeric" and not pd.api.types.is_numeric_dtype(out[f]):
            conv = pd.to_numeric(out[f], errors="coerce")
            bad = out[f].notna() & conv.isna()
            if bad.any():
                problems.append(
                    f"column {f!r}: {int(bad.sum())} values are not numbers (e.g. {out.loc[bad, f].iloc[0]!r}), counted"
                    " as missing"
                )
            out[f] = conv.astype(float)
        elif kind in ("categorical", "boolean"):
            out[f] = out[f].astype(object).where(out[f].notna(), None).map(lambda v: v if v is None else str(v))
    return out, problems

def drift_table(reference: pd.DataFrame, current: pd.DataFrame, schema: dict, p_value: float = 0.01,
                psi_threshold: float = 0.2, min_wasserstein: float = 0.15, min_jensen_shannon: float = 0.05,
                n_tests: int | None = None, min_values: int = 5) -> pd.DataFrame:
    """One row per feature present in both frames: test, statistic, p-value, Bonferroni threshold, distance,
    PSI and verdict. `n_tests` (default: the features compared) is the size of the family of tests."""
    feats = [
        f for f in schema["features"] if f in reference and f in current and schema["columns"][f]["kind"] != "datetime"
    ]
    alpha = p_value / max(n_tests or len(feats), 1)
    rows = []
    for f in feats:
        kind = "numeric" if schema["columns"][f]["kind"] == "numeric" else "categorical"
        if current[f].notna().sum() < min_values and kind == "numeric":
            rows.append({"feature": f, "kind": kind, "test": "not evaluated", "statistic": np.nan, "p_value": np.nan,
                         "p_threshold": alpha, "distance_name": "", "distance": np.nan, "distance_threshold": np.nan,
                         "psi": np.nan, "significant": False, "drifted": False, "evaluated": False}); continue
        r = (
            numeric_drift(reference[f], current[f])
            if kind == "numeric"
            else categorical_drift(reference[f], current[f])
        )
        floor = min_wasserstein if kind == "numeric" else min_jensen_shannon
        sig = r["p_value"] < alpha
        rows.append(
            {
                "feature": f,
                "kind": kind,
                **r,
                "p_threshold": alpha,
                "distance_threshold": floor,
                "significant": sig,
                "drifted": bool(sig and (r["distance"] >= floor or r["psi"] >= psi_threshold)),
                "evaluated": True,
            }
        )
    cols = ["feature", "kind", "test", "statistic", "p_value", "p_threshold", "distance_name", "distance",
            "distance_threshold", "psi", "significant", "drifted", "evaluated"]
    return pd.DataFrame(rows, columns=cols)

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
_sch = {"features": ["x", "c"], "columns": {"x": {"kind": "numeric"}, "c": {"kind": "categorical"}}}
_R = pd.DataFrame({"x": _ref, "c": _cref})
_same = _R.sample(500, random_state=1)
_t = drift_table(_R, _same, _sch)
test_eq(_t["p_threshold"].tolist(), [0.005, 0.005])                           # Bonferroni: 0.01 / 2 tests
test_eq(drift_signal(_t)[:2], (NO_DRIFT, 0.0))
_moved = _same.assign(x=_same.x + 1.0, c="c")
_t = drift_table(_R, _moved, _sch)
test_eq(_t["drifted"].tolist(), [True, True])
test_eq(drift_signal(_t, 0.3)[:2], (RETRAIN, 1.0))
test_eq(drift_signal(drift_table(_R, pd.DataFrame({"z": [1]}), _sch))[0], UNKNOWN)
_big = pd.DataFrame({"x": _rng.normal(size=20_000), "c": "a"})
# significant with 20 000 rows, but too small to matter
_tiny = drift_table(_big, _big.assign(x=_big.x + 0.07), _sch)
test_eq((bool(_tiny.significant[0]), bool(_tiny.drifted[0])), (True, False))
test_eq(drift_signal(drift_table(_R, _same, _sch), decay=0.2)[0], RETRAIN)
test_eq(
    drift_signal(drift_table(_R, _same, _sch), estimated_decay=0.2)[2],
    ["the primary metric estimated without labels (CBPE) decayed by 0.2 (> 0.05)"],
)
_c, _probs = coerce_to_schema(pd.DataFrame({"x": ["1.5", "heavy", None], "c": [1, None, "a"]}), _sch)
test_eq((_c["x"].tolist()[0], _c["c"].tolist()), (1.5, ["1", None, "a"]))
test_eq(_probs, ["column 'x': 1 values are not numbers (e.g. 'heavy'), counted as missing"])

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
def monitor(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    served,
    p_value: float = 0.01,
    psi_threshold: float = 0.2,
    max_drift_share: float = 0.0,
    metric: str | None = None,
    metric_at_training: float | None = None,
    min_wasserstein: float = 0.15,
    min_jensen_shannon: float = 0.05,
    max_decay: float = 0.05,
    min_rows: int = 30,
    predictions: pd.Series | None = None,
    problems: list[str] | None = None,
    source: str = "",
    calibration: pd.DataFrame | None = None,
    rounds: int = 200,
    estimate: bool = True,
) -> tuple[dict, pd.DataFrame]:
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
    table = drift_table(reference, current, schema, p_value, psi_threshold, min_wasserstein, min_jensen_shannon,
                        n_tests=len(compared) + 1)
    result = {
        "status": UNKNOWN,
        "checked": now_utc(),
        "source": source,
        "model_version": served.version,
        "task": task,
        "rows_reference": len(reference),
        "rows_current": len(current),
        "p_value": p_value,
        "bonferroni_tests": len(compared) + 1,
        "p_threshold": p_value / (len(compared) + 1),
        "max_decay": max_decay,
    }
    pred_drift, dec, est_dec, notes = False, None, None, []
    if len(current) < min_rows:
        notes.append(f"the current data has {len(current)} rows, fewer than monitor.min_rows = {min_rows}")
    elif len(compared) == len(schema["features"]) or predictions is not None:
        pref = served.predict(reference)["prediction"]
        pcur = predictions if predictions is not None else served.predict(current)["prediction"]
        pr = (
            numeric_drift(pref, pcur)
            if task == "regression"
            else categorical_drift(pref.astype(str), pcur.dropna().astype(str))
        )
        floor = min_wasserstein if task == "regression" else min_jensen_shannon
        pred_drift = bool(
            pr["p_value"] < result["p_threshold"] and (pr["distance"] >= floor or pr["psi"] >= psi_threshold)
        )
        result["prediction_drift"] = {
            **pr,
            "p_threshold": result["p_threshold"],
            "distance_threshold": floor,
            "drifted": pred_drift,
        }
        n_lab = int(current[tgt].notna().sum()) if tgt in current else 0
        lab = current[tgt].notna().to_numpy() if n_lab else None
        if metric and n_lab >= min_rows:
            from mlops_nb.contracts import task_metrics
            y, yp = current.loc[lab, tgt], pd.Series(np.asarray(pcur)[lab])
            y, yp = (
                (pd.to_numeric(y, errors="coerce"), pd.to_numeric(yp, errors="coerce"))
                if task == "regression"
                else (y.astype(str), yp.astype(str))
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
            result.update(
                metric=metric,
                metric_current=now,
                metric_current_interval=list(iv) if iv else None,
                metric_at_training=metric_at_training,
                decay=dec,
                labelled_rows=n_lab,
                decay_interval=(
                    sorted([decay(metric, iv[0], metric_at_training), decay(metric, iv[1], metric_at_training)])
                    if iv and dec is not None
                    else None
                ),
            )
        elif metric and n_lab:
            notes.append(f"{n_lab} labelled rows, fewer than monitor.min_rows = {min_rows}: decay not measured")
            result["labelled_rows"] = n_lab
        if metric and estimate and getattr(served, "is_classifier", False):
            if metric not in ESTIMABLE:
                notes.append(f"CBPE estimates {', '.join(ESTIMABLE)}; the primary metric {metric} is not estimated")
            elif len(compared) < len(schema["features"]):
                notes.append("CBPE not evaluated: feature columns are missing, so the model cannot give probabilities")
            else:
                est = estimate_current(served, current, calibration, rounds, labelled=lab)
                value = est["metrics"][metric]
                est_dec = decay(metric, value, metric_at_training)
                result["estimated"] = {
                    "method": "CBPE",
                    "metric": metric,
                    "value": value,
                    "interval": est["intervals"].get(metric),
                    "decay": est_dec,
                    "rows": est["rows"],
                    "calibration_rows": est["calibration_rows"],
                    **({"value_on_labelled_rows": est["labelled"]["metrics"][metric]} if "labelled" in est else {}),
                }
                result.update(
                    metric=metric,
                    metric_at_training=metric_at_training,
                    metric_estimated=value,
                    estimated_decay=est_dec,
                )
                if not est["calibrated"]:
                    notes.append(
                        "CBPE: no labelled held-out rows to calibrate on; the model's probabilities are taken as"
                        " they are"
                    )
    else:
        notes.append("prediction drift not evaluated: feature columns are missing, so the model cannot predict")
    status, share, reasons = drift_signal(table, max_drift_share, pred_drift, dec, max_decay, est_dec)
    if len(current) < min_rows: status, reasons = UNKNOWN, notes[:1]
    result.update(status=status, exit_code=EXIT_CODES[status], reasons=reasons, notes=notes, drift_share=share,
                  drifted_features=table.loc[table.drifted, "feature"].tolist(),
                  schema_violation_count=len(violations), schema_violations=violations,
                  features=table.replace({np.nan: None}).to_dict("records"), seconds=round(time.perf_counter() - t0, 3))
    return result, table

# %% [markdown]
## The report

An HTML page with the verdict and its reasons, a table of every feature's test (statistic, p-value,
Bonferroni threshold, distance and its threshold, PSI, verdict) and side-by-side distributions; next to it
ydata-profiling's comparison of reference and current (on a sample of at most `profile_max_rows` rows
each, so it stays affordable on a million logged rows); and the numbers to dvclive, one step per run.

# %% [code]
#| export
def _plot_png(ref: pd.Series, cur: pd.Series, kind: str, title: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4, 2.4))
    if kind == "numeric":
        r, c = pd.to_numeric(ref, errors="coerce").dropna(), pd.to_numeric(cur, errors="coerce").dropna()
        bins = np.histogram_bin_edges(pd.concat([r, c]), bins=20) if len(r) + len(c) else 10
        ax.hist(r, bins=bins, density=True, alpha=0.5, label="reference")
        ax.hist(c, bins=bins, density=True, alpha=0.5, label="current")
    else:
        shares = pd.DataFrame({"reference": ref.astype(str).value_counts(normalize=True),
                               "current": cur.astype(str).value_counts(normalize=True)}).fillna(0).head(20)
        shares.plot.bar(ax=ax, rot=0)
    ax.set_title(title, fontsize=9); ax.legend(fontsize=7); fig.tight_layout()
    buf = io.BytesIO(); fig.savefig(buf, format="png", dpi=80); plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()

def _num(v, fmt): return "" if v is None or v != v else format(v, fmt)

def performance_html(result: dict) -> str:
    """The report's performance section: the metric measured on the labelled rows and CBPE's estimate, each with its
    interval."""
    if result.get("metric") is None: return ""
    esc, m, rows = html.escape, result["metric"], []
    iv = lambda v: f" (95% interval {_num(v[0], '.4f')} to {_num(v[1], '.4f')})" if v else ""
    if result.get("metric_current") is not None:
        rows.append(
            f"<tr><td>measured on {result.get('labelled_rows')} labelled"
            f" rows</td><td>{_num(result['metric_current'], '.4f')}"
            f"{iv(result.get('metric_current_interval'))}</td><td>{_num(result.get('decay'), '.4f')}{iv(result.get('decay_interval'))}</td></tr>"
        )
    e = result.get("estimated")
    if e:
        lab = (
            f"; {_num(e['value_on_labelled_rows'], '.4f')} on the labelled rows"
            if e.get("value_on_labelled_rows") is not None
            else ""
        )
        rows.append(
            f"<tr><td>estimated without labels (CBPE) on {e['rows']} rows, calibrated on {e['calibration_rows']}</td>"
            f"<td>{_num(e['value'], '.4f')}{iv(e.get('interval'))}{lab}</td><td>{_num(e.get('decay'), '.4f')}</td></tr>"
        )
    return (
        f"<h2>Performance: {esc(m)}</h2><p>At acceptance (test split):"
        f" {_num(result.get('metric_at_training'), '.4f')}; "
        "decay is how much worse (positive: worse), the signal fires above"
        f" {esc(str(result.get('max_decay', '')))}.</p>"
        "<table><thead><tr><th>how</th><th>value</th><th>decay</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )

def drift_html(table: pd.DataFrame, reference: pd.DataFrame, current: pd.DataFrame, result: dict, dest,
               profile_href: str | None = None) -> Path:
    "Write the drift report to `dest` atomically."
    esc = html.escape
    rows = "".join(
        f"<tr class={'drift' if r.drifted else 'ok'}><td>{esc(r.feature)}</td><td>{esc(r.kind)}</td><td>{esc(r.test)}</td>"
        f"<td>{_num(r.statistic, '.4f')}</td><td>{_num(r.p_value, '.4g')}</td><td>{_num(r.p_threshold, '.3g')}</td>"
        f"<td>{esc(r.distance_name)}"
        f" {_num(r.distance, '.3f')}</td><td>{_num(r.distance_threshold, 'g')}</td><td>{_num(r.psi, '.3f')}</td>"
        f"<td>{'drift' if r.drifted else 'no drift' if r.evaluated else 'not evaluated'}</td>"
        f"<td><img alt='distribution of {esc(r.feature)}'"
        f" src='data:image/png;base64,{_plot_png(reference[r.feature], current[r.feature], r.kind, r.feature)}'></td></tr>"
        for r in table.itertuples()
    )
    pdrift = result.get("prediction_drift")
    pred = (
        f"<p>Predictions: {esc(pdrift['test'])} p = {pdrift['p_value']:.4g} (threshold {pdrift['p_threshold']:.3g}),"
        f" {esc(pdrift['distance_name'])} {pdrift['distance']:.3f}:"
        f" <b>{'drift' if pdrift['drifted'] else 'no drift'}</b></p>"
        if pdrift
        else ""
    )
    perf = performance_html(result)
    skip = {"features", "prediction_drift", "reasons", "schema_violations", "notes", "estimated"}
    facts = "".join(f"<li><b>{esc(str(k))}</b>: {esc(str(v))}</li>" for k, v in result.items() if k not in skip)
    lst = lambda xs: "<ul>" + "".join(f"<li>{esc(str(x))}</li>" for x in xs) + "</ul>" if xs else "<p>none</p>"
    prof = (
        f"<p><a href='{esc(profile_href)}'>ydata-profiling comparison of reference and current</a></p>"
        if profile_href
        else ""
    )
    css = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px} table{border-collapse:collapse}\n"
           "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left} tr.drift{background:#fde2e2}")
    body = f"""<h1>Drift report: {esc(result['status'])}</h1><h2>Why</h2>{lst(result.get('reasons', []) + result.get('notes', []))}
{pred}{perf}<h2>Schema violations ({len(result.get('schema_violations', []))})</h2>{lst(result.get('schema_violations', []))}
<h2>Features</h2><p>A feature drifted when its p-value is below the threshold (Bonferroni over {result.get('bonferroni_tests')} tests)
and its distance or PSI reaches its threshold.</p>
<table><thead><tr><th>feature</th><th>kind</th><th>test</th><th>statistic</th><th>p-value</th><th>threshold</th><th>distance</th>
<th>distance threshold</th><th>PSI</th><th>verdict</th><th>distributions</th></tr></thead><tbody>{rows}</tbody></table>
{prof}<h2>Facts</h2><ul>{facts}</ul><p><a href="index.html">back to the run summary</a></p>"""
    return write_text(html_page("Drift report", body, css), dest)

def profile_compare(reference: pd.DataFrame, current: pd.DataFrame, dest, max_rows: int = 5000, seed: int = 0) -> Path:
    """ydata-profiling's comparison report of `reference` and `current` (their shared columns, at most `max_rows` rows
    each), atomically."""
    os.environ["YDATA_PROFILING_NO_ANALYTICS"] = "True"
    from data_profiling import ProfileReport
    cols = [c for c in reference.columns if c in current.columns]
    if not cols: raise ValueError("profile comparison: the reference and current data share no column")
    sample = lambda df: df[cols].sample(min(len(df), max_rows), random_state=seed) if len(df) > max_rows else df[cols]
    ref, cur = sample(reference).reset_index(drop=True), sample(current).reset_index(drop=True)
    for c in cols:   # the same dtypes on both sides, or the comparison refuses
        if pd.api.types.is_numeric_dtype(ref[c]):
            cur[c] = pd.to_numeric(cur[c], errors="coerce").astype(float)
            ref[c] = ref[c].astype(float)
        else: ref[c], cur[c] = ref[c].astype(object), cur[c].astype(object)
    rep = ProfileReport(ref, title="reference", minimal=True, progress_bar=False).compare(
        ProfileReport(cur, title="current", minimal=True, progress_bar=False))
    return write_text(rep.to_html(), dest)

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
    _res, _tab = {
        "status": RETRAIN,
        "drift_share": 1.0,
        "drifted_features": ["x", "c"],
        "reasons": ["x moved"],
        "exit_code": 1,
    }, drift_table(_R, _moved, _sch)
    _page = drift_html(_tab, _R, _moved, _res, Path(d)/"drift.html", "p.html").read_text()
    assert (
        "Kolmogorov-Smirnov" in _page and "Jensen-Shannon" in _page and "x moved" in _page and "data:image/png" in _page
    )
    _perf = performance_html(
        {
            "metric": "accuracy",
            "metric_at_training": 0.9,
            "metric_current": 0.8,
            "metric_current_interval": [0.75, 0.85],
            "decay": 0.1,
            "decay_interval": [0.05, 0.15],
            "labelled_rows": 120,
            "max_decay": 0.05,
            "estimated": {"value": 0.82, "interval": [0.8, 0.84], "decay": 0.08, "rows": 400, "calibration_rows": 70},
        }
    )
    assert (
        "measured on 120 labelled rows" in _perf
        and "0.7500 to 0.8500" in _perf
        and "CBPE" in _perf
        and "0.8200" in _perf
    ), _perf
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
        try: profile_compare(reference, current, profile_path, profile_max_rows); result["profile_report"] = str(profile_path)
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

