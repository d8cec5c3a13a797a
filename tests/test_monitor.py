"""The monitor's statistics on generated data, where the truth is known: false alarms and power over seeded
trials, prediction drift and decay with real fitted models, schema violations, and the prediction-log reader
on a SQLite table written here in the serving contract's format (not by our own writer)."""
import json, sqlite3
from pathlib import Path
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_nb.drift import drift_table
from mlops_nb.monitor import NO_DRIFT, RETRAIN, UNKNOWN, drift_signal, monitor, read_prediction_log

TRIALS, N_REF, N_CUR = 100, 5000, 1000
NUMERIC = {"x1": (10.0, 2.0), "x2": (0.0, 1.0), "x3": (50.0, 15.0), "x4": (-3.0, 0.5)}
CATS = {"c1": (["a", "b", "c", "d"], [0.5, 0.3, 0.15, 0.05]), "c2": (["yes", "no"], [0.7, 0.3]),
        "c3": (["red", "green", "blue", None], [0.4, 0.3, 0.2, 0.1])}
SCHEMA = {"target": "y", "task": "binary", "features": [*NUMERIC, "skew", *CATS],
          "columns": {**{f: {"kind": "numeric"} for f in [*NUMERIC, "skew"]}, **{c: {"kind": "categorical"} for c in CATS}}}
N_TESTS = len(SCHEMA["features"]) + 1   # as monitor() counts them: every feature plus the predictions
# the thresholds the project ships with: the targets hold for the configuration users get
M = yaml.safe_load((Path(__file__).resolve().parents[1]/"params.yaml").read_text())["monitor"]
THRESHOLDS = {k: M[k] for k in ("p_value", "psi_threshold", "min_wasserstein", "min_jensen_shannon")}


def generate(n, rng, shift=None, cat_shares=None):
    "A frame from the reference distribution; `shift`=(feature, sds) moves a mean, `cat_shares` replaces c1's shares."
    df = pd.DataFrame({f: rng.normal(m, s, n) for f, (m, s) in NUMERIC.items()})
    df["skew"] = rng.lognormal(0, 0.8, n)
    for c, (levels, p) in CATS.items():
        df[c] = rng.choice(np.array(levels, dtype=object), n, p=cat_shares if (c == "c1" and cat_shares) else p)
    if shift:
        f, sds = shift; df[f] = df[f] + sds * NUMERIC[f][1]
    return df


def doubled(p, i):
    "Shares `p` with category i's share doubled and the others scaled down to keep the sum 1."
    q = np.array(p, float); rest = [j for j in range(len(q)) if j != i]
    q[rest] *= (1 - 2 * q[i]) / q[rest].sum(); q[i] *= 2
    return q.tolist()


@pytest.fixture(scope="module")
def reference():
    return generate(N_REF, np.random.default_rng(12345))


def trials(reference, **change):
    "For each seeded trial: (signal, per-feature verdicts)."
    out = []
    for seed in range(TRIALS):
        cur = generate(N_CUR, np.random.default_rng(seed), **change)
        table = drift_table(reference, cur, SCHEMA, n_tests=N_TESTS, **THRESHOLDS)
        status, _, _ = drift_signal(table, max_drift_share=M["max_drift_share"])
        out.append((status, dict(zip(table.feature, table.drifted))))
    return out


def test_no_false_alarm_in_95_of_100_batches_from_the_reference_distribution(reference):
    res = trials(reference)
    quiet = sum(s == NO_DRIFT for s, _ in res)
    print(f"\nno drift raised in {quiet}/{TRIALS} same-distribution batches")
    assert quiet >= 95


@pytest.mark.parametrize("feature", ["x1", "x3"])
def test_half_a_standard_deviation_mean_shift_is_caught_in_95_of_100(reference, feature):
    res = trials(reference, shift=(feature, 0.5))
    raised = sum(s == RETRAIN for s, _ in res)
    named = sum(v[feature] for _, v in res)
    wrong = sum(any(d for f, d in v.items() if f != feature) for _, v in res)
    print(f"\n{feature} +0.5 sd: signal in {raised}/{TRIALS}, {feature} drifted in {named}/{TRIALS}, another feature flagged in {wrong}")
    assert raised >= 95 and named >= 95
    assert wrong <= 5                      # the unshifted features stay quiet


@pytest.mark.parametrize("level", [2, 3])   # c: 0.15 → 0.30; d: 0.05 → 0.10
def test_a_category_whose_share_doubles_is_caught_in_95_of_100(reference, level):
    levels, p = CATS["c1"]
    res = trials(reference, cat_shares=doubled(p, level))
    raised = sum(s == RETRAIN for s, _ in res)
    named = sum(v["c1"] for _, v in res)
    print(f"\nc1 share of {levels[level]!r} doubled: signal in {raised}/{TRIALS}, c1 drifted in {named}/{TRIALS}")
    assert raised >= 95 and named >= 95


def test_the_trials_can_fail_without_the_correction_and_the_effect_floor(reference):
    "Uncorrected p < 0.01 per feature on nine tests raises noticeably more false alarms: the correction is doing work."
    alarms = 0
    for seed in range(TRIALS):
        cur = generate(N_CUR, np.random.default_rng(seed))
        t = drift_table(reference, cur, SCHEMA, p_value=0.01, n_tests=1, min_wasserstein=0, min_jensen_shannon=0, psi_threshold=np.inf)
        alarms += bool(t["drifted"].any())
    bonf = sum(s != NO_DRIFT for s, _ in trials(reference))
    print(f"\nfalse alarms: uncorrected {alarms}/{TRIALS}, Bonferroni + effect floor {bonf}/{TRIALS}")
    assert alarms > bonf


# --- the whole monitor() with real fitted models ---------------------------------------------------

class Served:
    "A fitted pipeline with a schema and a version: the interface of mlops_nb.serve.ServedModel that monitor() uses."
    def __init__(self, model, schema, metrics):
        self.model, self.schema, self.version = model, schema, "test-1"
        self.lineage = {"metrics": {"test": metrics}}
    def predict(self, X):
        from mlops_nb.serve import conform
        X, errors, _ = conform(X, self.schema)
        assert not errors, errors
        return pd.DataFrame({"prediction": self.model.predict(X)}, index=X.index)


def _fit(task, ref, y):
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import Pipeline
    from mlops_nb.features import make_preprocessor
    est = LinearRegression() if task == "regression" else LogisticRegression(max_iter=1000)
    return Pipeline([("features", make_preprocessor([*NUMERIC, "skew"], list(CATS))), ("model", est)]).fit(ref, y)


def _served(task, ref, y, metrics):
    from mlops_nb.validate import infer_schema
    schema = infer_schema(ref.assign(y=y), "y")
    schema["task"] = task
    s = Served(_fit(task, ref, y), schema, metrics)
    s.features = schema["features"]
    return s


def test_classification_prediction_drift_decay_and_schema_violations(reference):
    rng = np.random.default_rng(7)
    y = np.where(reference.x1 + rng.normal(0, 1, N_REF) > 10, "hi", "lo")
    served = _served("binary", reference, y, {"accuracy": 0.85})
    cur = generate(N_CUR, rng)
    y_cur = np.where(cur.x1 + rng.normal(0, 1, N_CUR) > 10, "hi", "lo")
    res, _ = monitor(reference, cur.assign(y=y_cur), served, metric="accuracy", metric_at_training=0.85, **THRESHOLDS)
    assert res["status"] == NO_DRIFT and res["prediction_drift"]["drifted"] is False, res["reasons"]
    assert abs(res["decay"]) < 0.05 and res["labelled_rows"] == N_CUR
    # the world moves: x1 up by one sd, and the label no longer follows x1 the same way
    moved = generate(N_CUR, rng, shift=("x1", 1.0))
    res, table = monitor(reference, moved.assign(y=rng.choice(["hi", "lo"], N_CUR)), served, metric="accuracy", metric_at_training=0.85)
    assert res["status"] == RETRAIN and res["exit_code"] == 1
    assert res["drifted_features"] == ["x1"] and res["prediction_drift"]["drifted"] is True
    assert res["decay"] > 0.2 and any("decayed" in r for r in res["reasons"])
    # broken input is counted, not fatal: a missing column, text in a numeric column, a new category, a value out of range
    bad = cur.drop(columns=["x4"]).astype({"x2": object})
    bad.loc[:9, "x2"] = "n/a"; bad.loc[:4, "c2"] = "maybe"; bad.loc[0, "x3"] = 1e6
    res, table = monitor(reference, bad, served)
    assert res["schema_violation_count"] == len(res["schema_violations"]) >= 4
    text = " | ".join(res["schema_violations"])
    assert "'x4': missing" in text and "10 values are not numbers" in text and "unseen categories ['maybe']" in text and "above the training maximum" in text
    assert "x4" not in set(table.feature) and res["status"] != UNKNOWN      # the rest is still compared
    assert not table.set_index("feature").loc["x3", "drifted"]            # one wild value moves Wasserstein, not KS: no verdict
    assert any("prediction drift not evaluated" in n for n in res["notes"])
    # too few rows, or nothing comparable: could not evaluate
    assert monitor(reference, cur.head(10), served)[0]["status"] == UNKNOWN
    assert monitor(reference, pd.DataFrame({"other": range(100)}), served)[0]["status"] == UNKNOWN


def test_regression_predictions_get_a_numeric_test_and_error_metrics_decay(reference):
    rng = np.random.default_rng(11)
    y = 3 * reference.x2 + (reference.c2 == "yes") + rng.normal(0, 0.5, N_REF)
    served = _served("regression", reference, y, {"rmse": 0.5})
    metric = "neg_root_mean_squared_error"           # the acceptance gates' name for RMSE: higher (less negative) is better
    cur = generate(N_CUR, rng)
    res, _ = monitor(reference, cur.assign(y=3 * cur.x2 + (cur.c2 == "yes") + rng.normal(0, 0.5, N_CUR)), served,
                     metric=metric, metric_at_training=-0.5)
    assert res["status"] == NO_DRIFT and res["prediction_drift"]["test"] == "Kolmogorov-Smirnov"
    assert abs(res["decay"]) < 0.05
    moved = generate(N_CUR, rng, shift=("x2", 0.5))
    res, _ = monitor(reference, moved.assign(y=3 * moved.x2 + rng.normal(0, 2.0, N_CUR)), served, metric=metric, metric_at_training=-0.5)
    assert res["status"] == RETRAIN and res["prediction_drift"]["drifted"] is True
    assert res["decay"] > 1.0                 # RMSE more than doubled: decay, relative for an error metric


# --- the prediction log, written here as the REST service writes it -----------------------------------

def _contract_table(path, rows):
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE prediction_log (id INTEGER PRIMARY KEY AUTOINCREMENT, logged_at TEXT, model_version TEXT, "
                    "request_id TEXT, features TEXT, prediction TEXT)")
        con.executemany("INSERT INTO prediction_log (logged_at, model_version, request_id, features, prediction) VALUES (?,?,?,?,?)", rows)


def test_prediction_log_reader_windows_and_counts_bad_rows(tmp_path):
    t0 = datetime(2026, 11, 24, 8, 30, tzinfo=timezone.utc)
    rows = [((t0 + timedelta(hours=i, microseconds=123456 * (i % 2))).isoformat(), "m-1", f"r{i}",
             json.dumps({"x1": float(i), "c1": "a" if i % 2 else None}), json.dumps("hi" if i % 2 else "lo")) for i in range(48)]
    rows.append(((t0 + timedelta(hours=50)).isoformat(), "m-1", "bad", "{not json", json.dumps("hi")))
    rows.append(((t0 + timedelta(hours=51)).isoformat(), "m-2", "num", json.dumps({"x1": 1.5, "c1": "b"}), json.dumps(2.5)))
    db = tmp_path/"log.db"; _contract_table(db, rows)
    frame, preds, problems = read_prediction_log(str(db))
    assert len(frame) == 49 and problems == ["prediction_log.features: 1 rows not a JSON object, left out"]
    assert frame.loc[0, "c1"] is None and frame.loc[1, "c1"] == "a" and preds.iloc[-1] == 2.5
    frame, preds, _ = read_prediction_log(f"sqlite:///{db}", since=t0 + timedelta(hours=10), until="2026-11-24T20:30:00.123456+00:00")
    assert frame["x1"].tolist() == [10.0, 11.0, 12.0] and preds.tolist() == ["lo", "hi", "lo"]
    assert str(frame["logged_at"].iloc[0]) == "2026-11-24 18:30:00+00:00"
    frame, _, _ = read_prediction_log(str(db), model_version="m-2")
    assert frame["request_id"].tolist() == ["num"]
