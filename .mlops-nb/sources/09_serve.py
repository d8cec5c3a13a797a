# %% [markdown]
# Serve
> The packaged model three ways: as an importable dependency, as a REST service (FastAPI), and as precomputed predictions in a database.

# %% [code]
#| default_exp serve

# %% [code]
#| export
import json, queue, re, threading, time, uuid
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Optional, Union

import numpy as np
import pandas as pd

from mlops_nb.core import read_json
from mlops_nb.contracts import current_package, load_package
# 00b_logstore  # noqa: F401
from mlops_nb.logstore import (PREDICTION_LOG_TABLE, db_url, ensure_tables, labelled_window, make_engine,
                               prediction_id, prediction_log_table, store_feedback)
from mlops_nb.logstore import log_time as utc_now   # the log's time stamp (the kit's one clock), under its old name

# %% [code]
from fastcore.test import test_eq, test_fail
import os, sqlite3, tempfile
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from mlops_nb.core import find_root, record_step, require, save_model
from mlops_nb.package import build_package
from mlops_nb.features import make_preprocessor

# %% [code] tags=['parameters']
target: str = "species"                 # the column the model predicts (dropped from the batch before scoring)
split_dir: str = "data/processed"       # holds batch.parquet, the held-back rows scored by this step
package_dir: str = "models/package"     # the champion is the version current.json names
predictions_db: str = "data/predictions.db"   # the batch's predictions: a SQLite path or a SQLAlchemy URL
prediction_log_db: str = "data/prediction_log.db"   # where `mlops-nb serve` logs every prediction
predictions_table: str = "predictions"  # table of predictions_db the batch goes to
lineage_dir: str = "reports/lineage"    # where this step's lineage record goes
host: str = "127.0.0.1"                 # address `mlops-nb serve` listens on
port: int = 8000                        # port `mlops-nb serve` listens on
reload_poll_s: float = 0.5              # `mlops-nb serve` checks current.json this often and follows a new champion

# %% [markdown]
## Checking inputs against the schema

The schema saved at validation is the contract. `conform` brings a DataFrame to the form the model takes and
sorts what is wrong into errors, which stop a prediction (a missing column, a value of the wrong type), and
warnings, which do not (an unseen category, a value outside the training range, a missing value where training
had none). Every problem names its column.

# %% [code]
#| export
class SchemaError(ValueError):
    "Input breaks the model's schema; `problems` holds one dict (column, problem, message) per column and kind."
    def __init__(self, problems: list[dict]):
        self.problems = list(problems)
        super().__init__("; ".join(p["message"] for p in self.problems))

def _problem(column, problem: str, message: str) -> dict:
    return {"column": column, "problem": problem, "message": f"column {column!r}: {message}"}

_TEXT = {"string", "empty"}

def conform(X, schema: dict) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """`X` as the model takes it (the schema's features in order, numbers as floats), the errors that stop a
    prediction and the warnings that do not; each problem is a dict naming its column."""
    X = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    feats = list(schema["features"])
    missing = [c for c in feats if c not in X.columns]
    if missing:
        return X, [_problem(c, "missing", f"missing; the model expects the columns {feats}") for c in missing], []
    cols, errors, warnings = {}, [], []
    for c in feats:
        spec, s = schema["columns"][c], X[c]
        kind, notna = spec["kind"], s.notna()
        if kind == "numeric":
            if pd.api.types.is_bool_dtype(s) or (
                s.dtype == object and s.map(lambda x: isinstance(x, (bool, np.bool_))).any()
            ):
                # to_numeric would read True as 1
                errors.append(_problem(c, "type", "expected numbers, got booleans")); continue
            v = s if pd.api.types.is_numeric_dtype(s) else pd.to_numeric(s.where(notna, None), errors="coerce")
            bad = notna & v.isna()
            if bad.any():
                errors.append(
                    _problem(c, "type", f"expected numbers, got {s[bad].tolist()[0]!r} ({int(bad.sum())} such values)")
                )
                continue
            v = v.astype(float); cols[c] = v
            lo, hi = spec.get("min"), spec.get("max")
            if lo is not None and (low := v < lo).any():
                warnings.append(
                    _problem(c, "range", f"{int(low.sum())} values below the training minimum {lo} (lowest {v.min()})")
                )
            if hi is not None and (high := v > hi).any():
                warnings.append(
                    _problem(
                        c, "range", f"{int(high.sum())} values above the training maximum {hi} (highest {v.max()})"
                    )
                )
        else:
            nn = s[notna]
            want = "boolean" if kind == "boolean" else "string"
            got = pd.api.types.infer_dtype(nn, skipna=True) if len(nn) else "empty"
            if kind in ("categorical", "boolean") and got not in _TEXT | {want}:
                odd = nn[~nn.map(lambda x: isinstance(x, bool if kind == "boolean" else str))]
                errors.append(
                    _problem(
                        c, "type", f"expected {'true/false' if kind == 'boolean' else 'text'}, got {odd.tolist()[0]!r}"
                    )
                )
                continue
            cols[c] = s
            cats = spec.get("categories")
            if kind == "categorical" and cats is not None:
                new = nn[~nn.isin(cats)]
                if len(new):
                    warnings.append(_problem(c, "category", f"unseen categories {sorted(map(str, new.unique()))[:5]}"))
        if not spec.get("nullable", True) and (~notna).any():
            warnings.append(_problem(c, "missing_value", f"{int((~notna).sum())} missing values, none in training"))
    if errors: return X, errors, warnings
    return pd.DataFrame(cols, index=X.index), errors, warnings

# %% [code]
_schema = {"target": "y", "task": "binary", "features": ["x", "c"],
           "columns": {"x": {"kind": "numeric", "nullable": False, "min": 0.0, "max": 3.0},
                       "c": {"kind": "categorical", "nullable": False, "categories": ["a", "b"]},
                       "y": {"kind": "categorical", "nullable": False, "categories": ["n", "p"]}}}
_ok, _err, _warn = conform(pd.DataFrame({"c": ["a", None], "x": ["1.5", 9], "extra": [0, 0]}), _schema)
test_eq(list(_ok.columns), ["x", "c"]); test_eq(_ok["x"].tolist(), [1.5, 9.0]); test_eq(_err, [])
test_eq([w["message"] for w in _warn], ["column 'x': 1 values above the training maximum 3.0 (highest 9.0)",
                                        "column 'c': 1 missing values, none in training"])
test_eq(
    [e["message"] for e in conform([{"x": 1.0}], _schema)[1]],
    ["column 'c': missing; the model expects the columns ['x', 'c']"],
)
test_eq(conform([{"x": "heavy", "c": 3}], _schema)[1],
        [{"column": "x", "problem": "type", "message": "column 'x': expected numbers, got 'heavy' (1 such values)"},
         {"column": "c", "problem": "type", "message": "column 'c': expected text, got 3"}])
test_eq(conform([{"x": -1.0, "c": "z"}], _schema)[2][1]["message"], "column 'c': unseen categories ['z']")
test_eq(
    conform([{"x": 1.0, "c": "a"}, {"x": True, "c": "a"}], _schema)[1][0]["message"],
    "column 'x': expected numbers, got booleans",
)

# %% [markdown]
## A fast path for single rows

scikit-learn's encoders rescan their categories on every call, which costs milliseconds per row. `FastFeatures`
unrolls the fitted feature pipeline (imputers, scaler, one-hot encoder inside the `ColumnTransformer` that
`mlops_nb.wrangle.make_preprocessor` builds) into arrays and dictionary lookups that give the same numbers. It
accepts only the steps it knows and checks itself against `transform` on probe rows; a pipeline it does not
know is served by scikit-learn itself.

# %% [code]
#| export
def _is_nan(v) -> bool: return v is None or (isinstance(v, float) and v != v) or v is pd.NA

_UNSEEN = "\x00mlops-nb-unseen"

def _encoder_tables(enc, cols, start: int) -> list:
    """Per column of a fitted one-hot or ordinal encoder: {category: row} and the output rows (the last one: an unseen
    value)."""
    import warnings
    from scipy import sparse
    from sklearn.preprocessing import OneHotEncoder
    widths = [1] * len(cols) if not isinstance(enc, OneHotEncoder) else list(enc._n_features_outs)
    out, j = [], 0
    for i, c in enumerate(cols):
        cats = list(enc.categories_[i])
        probe = np.array([[enc.categories_[k][0] for k in range(len(cols))]] * (len(cats) + 1), dtype=object)
        probe[:, i] = cats + [_UNSEEN]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z = enc.transform(
                pd.DataFrame(probe, columns=list(enc.feature_names_in_)) if hasattr(enc, "feature_names_in_") else probe
            )
        z = z.toarray() if sparse.issparse(z) else np.asarray(z, dtype=float)
        out.append(
            (
                c,
                {v: k for k, v in enumerate(cats)},
                np.ascontiguousarray(z[:, j : j + widths[i]], dtype=float),
                start + j,
            )
        )
        j += widths[i]
    return out

class FastFeatures:
    """A fitted `ColumnTransformer` of imputers, scalers and one-hot or ordinal encoders as plain arrays and lookup
    tables (each encoder's output per category, read from the encoder itself)."""
    def __init__(self, ct):
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler
        from mlops_nb.features import missing_to_nan
        if not isinstance(ct, ColumnTransformer): raise TypeError(f"not a ColumnTransformer: {type(ct).__name__}")
        # num: (column, index, fill, mean, scale); cat: (column, fill, {category: row}, table, start)
        self.num, self.cat = [], []
        self.sparse, width = bool(getattr(ct, "sparse_output_", False)), 0
        for name, trans, cols in ct.transformers_:
            if isinstance(trans, str):
                if trans == "drop" or len(cols) == 0: continue
                raise TypeError(f"transformer {name!r}: {trans!r} is not supported")
            if any(not isinstance(c, str) for c in cols):
                raise TypeError(f"transformer {name!r}: columns must be named")
            steps = [s for _, s in trans.steps] if isinstance(trans, Pipeline) else [trans]
            kinds = [
                (
                    "to_nan"
                    if isinstance(s, FunctionTransformer) and s.func is missing_to_nan
                    else (
                        "impute"
                        if isinstance(s, SimpleImputer) and not s.add_indicator and _is_nan(s.missing_values)
                        else (
                            "scale"
                            if isinstance(s, StandardScaler)
                            else "encode" if isinstance(s, (OneHotEncoder, OrdinalEncoder)) else type(s).__name__
                        )
                    )
                )
                for s in steps
            ]
            sl = ct.output_indices_[name]
            if kinds in (["impute"], ["scale"], ["impute", "scale"]):
                imp = steps[0] if kinds[0] == "impute" else None
                sc = steps[-1] if kinds[-1] == "scale" else None
                if imp is not None and (
                    len(imp.statistics_) != len(cols) or np.isnan(imp.statistics_.astype(float)).any()
                ):
                    raise TypeError(f"transformer {name!r}: an imputer that drops empty columns is not supported")
                for i, c in enumerate(cols):
                    self.num.append((c, sl.start + i, None if imp is None else float(imp.statistics_[i]),
                                     None if sc is None or sc.mean_ is None else float(sc.mean_[i]),
                                     None if sc is None or sc.scale_ is None else float(sc.scale_[i])))
                stop = sl.start + len(cols)
            elif kinds == ["to_nan", "impute", "encode"]:
                fills = steps[1].statistics_
                tabs = _encoder_tables(steps[2], list(cols), sl.start)
                self.cat += [(c, fills[i], lookup, table, j) for i, (c, lookup, table, j) in enumerate(tabs)]
                stop = tabs[-1][3] + tabs[-1][2].shape[1] if tabs else sl.start
            else: raise TypeError(f"transformer {name!r}: steps {kinds} are not supported")
            if stop != sl.stop:
                raise TypeError(f"transformer {name!r}: output width differs from the fitted transformer")
            width = max(width, stop)
        self.width, self.order = width, "C"   # the memory order of the transformer's output: BLAS sums differ by layout
        self._index = [pd.Index(list(lk), dtype=object) for _, _, lk, _, _ in self.cat]

    def _finish(self, out: np.ndarray):
        "Refuse values that overflowed (a huge input, once scaled), naming the column; sparse when the transformer is."
        if self.num:
            bad = np.isinf(out[:, [n[1] for n in self.num]]).any(axis=0)
            if bad.any():
                raise SchemaError(
                    [_problem(n[0], "range", "a value too large to compute with") for n, b in zip(self.num, bad) if b]
                )
        if not self.sparse: return out
        from scipy import sparse
        return sparse.csr_matrix(out)

    def row(self, r: dict) -> np.ndarray:
        "The features of one row given as a dict (column → value, None for missing), dense."
        x = np.zeros(self.width)
        for c, j, fill, mean, scale in self.num:
            v = r.get(c)
            v = float("nan") if _is_nan(v) else float(v)
            if fill is not None and v != v: v = fill
            if mean is not None: v = v - mean
            if scale is not None: v = v / scale
            x[j] = v
        for c, fill, lookup, table, j in self.cat:
            v = r.get(c)
            x[j:j + table.shape[1]] = table[lookup.get(fill if _is_nan(v) else v, -1)]
        return x

    def rows(self, rows: list[dict]):
        "The features of rows given as dicts, as the fitted transformer gives them."
        return self._finish(np.vstack([self.row(r) for r in rows]))

    def frame(self, X: pd.DataFrame, block: int = 4096):
        "The features of every row of `X`, vectorised (in blocks when the output is sparse)."
        if self.sparse and len(X) > block:
            from scipy import sparse
            return sparse.vstack([self.frame(X.iloc[i:i + block]) for i in range(0, len(X), block)], format="csr")
        out = np.zeros((len(X), self.width), order=self.order)
        for c, j, fill, mean, scale in self.num:
            v = X[c].to_numpy(dtype=float, na_value=np.nan)
            if fill is not None: v = np.where(np.isnan(v), fill, v)
            if mean is not None: v = v - mean
            if scale is not None: v = v / scale
            out[:, j] = v
        for (c, fill, _, table, j), index in zip(self.cat, self._index):
            s = X[c].astype(object)
            # -1, unseen: the last row
            out[:, j:j + table.shape[1]] = table[index.get_indexer(s.where(s.notna(), fill))]
        return self._finish(out)

# %% [markdown]
The fast path on a pipeline with missing values and an unseen category gives exactly what `transform` gives:

# %% [code]
_Xf = pd.DataFrame({"x": [0.0, 1.0, np.nan, 3.0, 2.5], "c": ["a", "b", None, "a", "zzz"]})
_dense = lambda z: z.toarray() if hasattr(z, "toarray") else z
for _enc in ("onehot", "ordinal"):
    _ct = make_preprocessor(["x"], ["c"], encoding=_enc).fit(_Xf.iloc[:4])
    _ff = FastFeatures(_ct)
    assert np.array_equal(_dense(_ff.frame(_Xf)), _dense(_ct.transform(_Xf)))
    assert np.array_equal(_dense(_ff.rows(_Xf.to_dict("records"))), _dense(_ct.transform(_Xf)))
test_fail(lambda: FastFeatures(Pipeline([("m", LogisticRegression())])), contains="not a ColumnTransformer")

# %% [markdown]
## The model as a dependency

`load_model()` returns the champion with its schema: `predict` checks a DataFrame against the schema (errors
raise a `SchemaError` naming the columns; with `strict=True` warnings do too) and returns the predictions, the
class probabilities of a classifier, and the model version. A regressor returns numbers and no probabilities.

# %% [code]
#| export
def _probe_rows(schema: dict) -> pd.DataFrame:
    "Rows that touch every category, both ends of every range and a missing value in every column."
    cols = {}
    for c in schema["features"]:
        spec = schema["columns"][c]
        if spec["kind"] == "numeric":
            lo, hi = spec.get("min", 0.0), spec.get("max", 1.0)
            vals = [lo, hi, (lo + hi) / 2, None, lo - 1]
        elif spec["kind"] == "boolean": vals = [True, False, None]
        else: vals = list(spec.get("categories") or []) + [None, "__unseen__"]
        cols[c] = vals
    n = max(len(v) for v in cols.values())
    return pd.DataFrame({c: [v[i % len(v)] for i in range(n)] for c, v in cols.items()})

class ServedModel:
    "A packaged model, its schema and version, ready to predict on DataFrames and on rows given as dicts."
    def __init__(self, folder, fast: bool = True):
        from sklearn.pipeline import Pipeline
        self.folder = Path(folder)
        self.model = load_package(self.folder)     # hash-checked, trusted types only
        self.schema = read_json(self.folder/"schema.json")
        self.lineage = read_json(self.folder/"lineage.json")
        self.version = self.lineage["version"]
        self.features = list(self.schema["features"])
        self.classes = [str(c) for c in getattr(self.model, "classes_", [])]
        self.is_classifier = bool(self.classes) and hasattr(self.model, "predict_proba")
        self.task = self.schema.get("task") if self.is_classifier else "regression"
        self.fast, self.fast_reason = None, "disabled"
        if fast and isinstance(self.model, Pipeline) and len(self.model.steps) == 2:
            try:
                ff, est = FastFeatures(self.model[0]), self.model[-1]
                if getattr(est, "feature_names_in_", None) is not None:
                    raise TypeError("the estimator expects named columns")
                probe = conform(_probe_rows(self.schema), self.schema)[0]
                dense = lambda z: z.toarray() if hasattr(z, "toarray") else np.asarray(z, dtype=float)
                want = self.model[0].transform(probe)
                if isinstance(want, np.ndarray) and len(want) > 1 and np.isfortran(want): ff.order = "F"
                if not np.array_equal(dense(ff.frame(probe)), dense(want), equal_nan=True):
                    raise TypeError("differs from the pipeline's transform on probe rows")
                self.fast, self.fast_reason = ff, "ok"
            except (TypeError, ValueError, KeyError, AttributeError) as e: self.fast_reason = f"{type(e).__name__}: {e}"
        self._est = self.model[-1] if self.fast is not None else self.model
        from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
        # these estimators' `predict` is by definition the class of highest probability: one pass gives both
        self._argmax = self.is_classifier and isinstance(
            self.model[-1] if isinstance(self.model, Pipeline) else self.model,
            (HistGradientBoostingClassifier, RandomForestClassifier),
        )

    def _raw(self, Z, proba: bool = True):
        "Labels (and probabilities) for the model's input `Z` (features for the fast path, a DataFrame otherwise)."
        try:
            if not self.is_classifier: return self._est.predict(Z), None
            if self._argmax:
                p = self._est.predict_proba(Z)
                return self._est.classes_[np.argmax(p, axis=1)], p
            return self._est.predict(Z), (self._est.predict_proba(Z) if proba else None)
        except ValueError as e:
            if "infinity" not in str(e): raise
            raise SchemaError([_problem("input", "range", f"a value too large to compute with ({e})")]) from None

    def _predict_conformed(self, X: pd.DataFrame, proba: bool = True):
        return self._raw(self.fast.frame(X) if self.fast is not None else X, proba)

    def check(self, X) -> list[str]:
        "Every schema problem of `X`, errors first, as messages naming the column (empty: it conforms)."
        _, errors, warnings = conform(X, self.schema)
        return [p["message"] for p in errors + warnings]

    def predict(self, X, strict: bool = False) -> pd.DataFrame:
        """Prediction (and class probabilities) for every row of `X`, with the model version. Schema errors raise
        `SchemaError`; warnings are in `.attrs['warnings']`, or raise too when `strict`."""
        Xc, errors, warnings = conform(X, self.schema)
        if errors or (strict and warnings): raise SchemaError(errors + (warnings if strict else []))
        pred, proba = self._predict_conformed(Xc)
        out = pd.DataFrame({"prediction": pred}, index=Xc.index)
        for i, c in enumerate(self.classes if proba is not None else []): out[f"proba_{c}"] = proba[:, i].round(6)
        out["model_version"] = self.version
        out.attrs["warnings"] = [w["message"] for w in warnings]
        return out

    def predict_rows(self, rows: list[dict], small: int = 32) -> tuple[list, Optional[list[dict]]]:
        """Predictions (JSON-ready: labels as text, regression values as floats) and class probabilities for rows given
        as dicts whose values already have the schema's types (as the REST service's request model makes them)."""
        if self.fast is not None and len(rows) <= small: Z = self.fast.rows(rows)
        else:
            Z = conform(pd.DataFrame(rows, columns=self.features), self.schema)[0]
            Z = self.fast.frame(Z) if self.fast is not None else Z
        pred, proba = self._raw(Z)
        if not self.is_classifier: return [float(p) for p in pred], None
        return [str(p) for p in pred], [{c: round(float(v), 6) for c, v in zip(self.classes, p)} for p in proba]

def load_model(package_dir="models/package", fast: bool = True) -> ServedModel:
    "The champion model packaged under `package_dir`."
    return ServedModel(current_package(package_dir), fast=fast)

# %% [code]
_tmp = tempfile.TemporaryDirectory(); _d = Path(_tmp.name)
_X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "c": ["a", "b", "a", "b"]})
_m = Pipeline([("features", make_preprocessor(["x"], ["c"])), ("model", LogisticRegression())]).fit(
    _X, ["n", "n", "p", "p"]
)
build_package(save_model(_m, _d/"m.skops"), _d/"pkg", "demo", _schema, {"test": {}}, {"git": {}, "data": {}})
_sm = load_model(_d/"pkg")
test_eq(_sm.fast_reason, "ok")
_p = _sm.predict([{"x": 0.1, "c": "a"}, {"x": "2.9", "c": "b"}])
test_eq(_p["prediction"].tolist(), ["n", "p"])
test_eq(list(_p.columns), ["prediction", "proba_n", "proba_p", "model_version"])
test_eq(_sm.predict_rows([{"x": 0.1, "c": "a"}, {"x": 2.9, "c": "b"}])[0], ["n", "p"])
test_fail(lambda: _sm.predict([{"x": 1.0}]), contains="column 'c': missing")
test_fail(lambda: _sm.predict([{"x": "heavy", "c": "a"}]), contains="column 'x': expected numbers, got 'heavy'")
test_eq(_sm.predict([{"x": 9.0, "c": "z"}]).attrs["warnings"],
        ["column 'x': 1 values above the training maximum 3.0 (highest 9.0)", "column 'c': unseen categories ['z']"])
test_fail(lambda: _sm.predict([{"x": 9.0, "c": "a"}], strict=True), contains="above the training maximum")

# %% [markdown]
The same package with a regressor: numbers, no probabilities; the fast path agrees with the pipeline.

# %% [code]
_rs = {
    **_schema,
    "task": "regression",
    "columns": {**_schema["columns"], "y": {"kind": "numeric", "nullable": False, "min": 0.0, "max": 9.0}},
}
_r = Pipeline([("features", make_preprocessor(["x"], ["c"])), ("model", Ridge())]).fit(_X, [0.0, 3.0, 6.0, 9.0])
build_package(save_model(_r, _d/"r.skops"), _d/"rpkg", "demo-reg", _rs, {"test": {}}, {"git": {}, "data": {}})
_rm = load_model(_d/"rpkg")
test_eq((_rm.is_classifier, _rm.classes, _rm.task), (False, [], "regression"))
test_eq(list(_rm.predict(_X).columns), ["prediction", "model_version"])
test_eq(_rm.predict(_X)["prediction"].tolist(), _r.predict(_X).tolist())
test_eq(_rm.predict_rows(_X.to_dict("records"))[0], _r.predict(_X).tolist())

# %% [markdown]
## The prediction log

The REST service logs every predicted row to the table `prediction_log` (the contract with monitoring): `id`,
`logged_at` (ISO 8601, UTC), `model_version`, `request_id`, `features` (a JSON object of the row as received,
null for missing) and `prediction` (a JSON scalar: the class label or the regression value). `PredictionLog`
writes from a background thread in batches: `log` only puts on a queue, so it never blocks or breaks a response;
a failed write is retried, and `close` writes whatever is still pending.

# %% [code]
#| export
def _clean(v):
    if isinstance(v, (float, np.floating)): return None if v != v else float(v)
    if isinstance(v, np.generic): return v.item()
    return v

_STOP = object()

class PredictionLog:
    "Writes predictions to the `prediction_log` table of `db` from a background thread, in batches."
    def __init__(
        self, db, model_version: str, max_pending: int = 200_000, batch_rows: int = 5000, interval: float = 0.05
    ):
        self.db, self.version, self.batch_rows, self.interval = str(db), model_version, batch_rows, interval
        self.engine, self.table = make_engine(db), prediction_log_table()
        try:
            with self.engine.begin() as con: ensure_tables(con)    # an older log gets its prediction_id column
        except Exception as e:
            raise ValueError(f"prediction log {db}: cannot create table {PREDICTION_LOG_TABLE}: {e}") from None
        self.written = self.dropped = self.failures = 0
        self.last_error, self._closing = None, False
        self._q = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int: return self._q.qsize()

    def log(self, request_id: str, rows: list[dict], predictions: list, logged_at: Optional[str] = None) -> None:
        "Queue one request's rows and predictions; never blocks, never raises (a full queue counts as dropped)."
        try: self._q.put_nowait((logged_at or utc_now(), request_id, rows, predictions))
        except queue.Full: self.dropped += len(rows)

    def _records(self, batch):
        return [
            {
                "logged_at": t,
                "model_version": self.version,
                "request_id": rid,
                "prediction_id": prediction_id(rid, i),
                "features": json.dumps({k: _clean(v) for k, v in r.items()}),
                "prediction": json.dumps(_clean(p)),
            }
            for t, rid, rows, preds in batch
            for i, (r, p) in enumerate(zip(rows, preds))
        ]

    def _write(self, batch) -> None:
        recs, delay, attempt = self._records(batch), 0.05, 0
        while True:
            try:
                with self.engine.begin() as con: con.execute(self.table.insert(), recs)
                self.written += len(recs); return
            except Exception as e:
                self.failures += 1; attempt += 1; self.last_error = f"{type(e).__name__}: {e}"[:500]
                if self._closing and attempt >= 5: self.dropped += len(recs); return
                time.sleep(delay); delay = min(2 * delay, 2.0)

    def _run(self):
        stop = False
        while not stop:
            item = self._q.get()
            batch, marks, n = [], [], 0
            while True:
                if item is _STOP: stop = True; break
                if isinstance(item, threading.Event): marks.append(item)    # a `flush` waits for what came before it
                else: batch.append(item); n += len(item[2])
                if n >= self.batch_rows: break
                try: item = self._q.get_nowait()
                except queue.Empty: break
            if batch: self._write(batch)
            for m in marks: m.set()
            if not stop and not marks: time.sleep(self.interval)   # let rows gather: fewer, larger transactions

    def flush(self, timeout: float = 5.0) -> bool:
        "Wait until every row queued before this call is written (at most `timeout` seconds); whether it was."
        if not self._thread.is_alive(): return True
        done = threading.Event()
        try: self._q.put(done, timeout=timeout)
        except queue.Full: return False
        return done.wait(timeout)

    def close(self, timeout: float = 60) -> None:
        "Write everything pending, then stop the thread."
        if not self._thread.is_alive(): return
        self._closing = True
        self._q.put(_STOP, timeout=timeout)
        self._thread.join(timeout)
        self.engine.dispose()

# %% [code]
_log = PredictionLog(_d/"log.db", "demo-1")
_log.log("r1", [{"x": 0.5, "c": "a"}, {"x": float("nan"), "c": None}], ["n", "p"])
_log.log("r2", [{"y": 1}], [2.5])
_log.close()
with sqlite3.connect(_d/"log.db") as _con:
    _rows = _con.execute(
        "select id, model_version, request_id, features, prediction, logged_at from prediction_log order by id"
    ).fetchall()
test_eq(
    [r[:5] for r in _rows],
    [
        (1, "demo-1", "r1", '{"x": 0.5, "c": "a"}', '"n"'),
        (2, "demo-1", "r1", '{"x": null, "c": null}', '"p"'),
        (3, "demo-1", "r2", '{"y": 1}', "2.5"),
    ],
)
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", _rows[0][5])
test_eq((_log.written, _log.dropped, _log.pending), (3, 0, 0))
with sqlite3.connect(_d/"log.db") as _con:   # each row's id: its request's id and its index in the request
    test_eq(
        [r[0] for r in _con.execute("select prediction_id from prediction_log order by id")], ["r1-0", "r1-1", "r2-0"]
    )
_log = PredictionLog(_d/"log.db", "demo-1", interval=5.0)        # flush: written now, not at the next interval
_log.log("r3", [{"y": 2}], [1.0]); assert _log.flush(10); test_eq(_log.written, 1); _log.close()

# %% [markdown]
## The model as a service

A FastAPI app whose request model is generated from the schema, so the OpenAPI document names every feature with
its type and a bad payload gets a 422 naming the field. It serves `POST /predict` (one row or a list of rows),
`GET /health`, `GET /metadata` and `GET /metrics` (Prometheus text: requests by path and status, a latency
histogram, the distribution of predictions, the prediction log's queue). Each predicted row goes to the
prediction log. `mlops-nb serve` runs it under uvicorn on 127.0.0.1.

# %% [markdown]
## Following the champion, and who may ask

A service keeps answering while the champion changes. `Champion` holds the served version; `reload` loads the
version `current.json` names in the caller's thread (the poller's or the admin request's, never a prediction
request's), checks it (hash and trusted types, a prediction on probe rows, the same inputs as the served one) and
swaps it in with one assignment. A request reads that reference once, so one version answers it whole; a version
that fails a check is refused and the old one keeps serving. Each version writes its own rows to the prediction log.

With a token (`MLOPS_NB_TOKEN`, never params.yaml) every route but `/health`, `/metrics` and the docs asks for it.
Without one, `check_listen` refuses an address other than loopback unless told `insecure`.

# %% [code]
#| export
TOKEN_ENV = "MLOPS_NB_TOKEN"   # the environment variable `mlops-nb serve` reads the bearer token from

def check_listen(host: str, token: Optional[str], insecure: bool = False) -> None:
    "Refuse to listen beyond the loopback address without a token, unless `insecure`."
    import ipaddress
    if token or insecure: return
    try: loopback = ipaddress.ip_address(host).is_loopback
    except ValueError: loopback = host == "localhost"
    if not loopback:
        raise ValueError(f"--host {host}: refusing to serve beyond this machine without a token; set {TOKEN_ENV} to a "
                         f"secret that clients send as `Authorization: Bearer <token>`, or pass --insecure-listen")

class ReloadRefused(RuntimeError):
    "The new champion could not be loaded or checked; the old version keeps serving."

def _contract(served: "ServedModel") -> tuple:
    "What the request model and the metrics are built from: features, their kinds, classifier or not."
    return (
        tuple(served.features),
        tuple(served.schema["columns"][f]["kind"] for f in served.features),
        served.is_classifier,
    )

def _contract_change(old: "ServedModel", new: "ServedModel") -> str:
    "How `new` takes other inputs than `old`, in words (columns added, removed, of another kind; classifier or not)."
    (fo, ko, co), (fn, kn, cn) = _contract(old), _contract(new)
    kinds_o, kinds_n = dict(zip(fo, ko)), dict(zip(fn, kn))
    parts = [
        f"{what} {cols}"
        for what, cols in [
            ("new columns", [f for f in fn if f not in kinds_o]),
            ("columns no longer taken", [f for f in fo if f not in kinds_n]),
            (
                "columns of another kind",
                [f"{f} ({kinds_o[f]} -> {kinds_n[f]})" for f in fn if f in kinds_o and kinds_o[f] != kinds_n[f]],
            ),
        ]
        if cols
    ]
    if co != cn: parts.append("a classifier replaced by a regressor" if co else "a regressor replaced by a classifier")
    return "; ".join(parts) or f"the column order changed ({list(fo)} -> {list(fn)})"

class _Live:
    "One served version: its model, its schema checks and its prediction log, swapped together in one assignment."
    __slots__ = ("served", "checks", "log")
    def __init__(self, served, log): self.served, self.checks, self.log = served, _row_checks(served.schema), log

class _Logs:
    "The prediction logs of every version served so far, counted together for the metrics."
    def __init__(self): self.all = []
    pending = property(lambda self: sum(l.pending for l in self.all))
    written = property(lambda self: sum(l.written for l in self.all))
    dropped = property(lambda self: sum(l.dropped for l in self.all))
    failures = property(lambda self: sum(l.failures for l in self.all))

class Champion:
    """The version a service answers with. `reload()` switches to the version `current.json` names (checked first,
    refused with `ReloadRefused` if it fails); `watch(every)` polls the pointer's stat from a thread of its own."""
    def __init__(
        self, package_dir, served: "ServedModel", log_db=None, fast: bool = True, on_swap=None, grace_s: float = 5.0
    ):
        self.package_dir, self.log_db, self.fast, self.on_swap, self.grace_s = (
            Path(package_dir),
            log_db,
            fast,
            on_swap,
            grace_s,
        )
        self.logs, self.last_error, self.switches = _Logs(), None, 0
        self._lock, self._stop, self._thread, self._timers = threading.Lock(), threading.Event(), None, []
        self._stamp = self._pointer_stamp()
        self.live = _Live(served, self._open_log(served.version))

    def _open_log(self, version: str):
        if self.log_db is None: return None
        log = PredictionLog(self.log_db, version)
        self.logs.all.append(log)
        return log

    def _pointer_stamp(self):
        import os
        try: s = os.stat(self.package_dir/"current.json")
        except OSError: return None
        return (s.st_mtime_ns, s.st_size, s.st_ino)

    def reload(self) -> dict:
        "Serve the version current.json names, once loaded and checked; what changed (or ReloadRefused, nothing changed)."
        with self._lock:
            old, where = self.live.served, self.package_dir/"current.json"
            try:
                folder = current_package(self.package_dir); where = folder
                if folder.name == old.folder.name and folder.resolve() == old.folder.resolve():
                    return {"changed": False, "model_version": old.version}
                new = ServedModel(folder, fast=self.fast)          # hash-checked, trusted types only
                if _contract(new) != _contract(old):
                    raise ValueError(
                        f"its inputs differ from those of {old.version} ({_contract_change(old, new)}); a running "
                        f"service keeps its request schema: restart it to serve {new.version}"
                    )
                new.predict(_probe_rows(new.schema))               # it predicts, and its libraries are loaded
                log = self._open_log(new.version)
            except Exception as e:
                self.last_error = f"{where}: {type(e).__name__}: {e}; still serving {old.version}"
                raise ReloadRefused(self.last_error) from None
            previous, self.live = self.live, _Live(new, log)
            self.switches, self.last_error = self.switches + 1, None
        if self.on_swap is not None: self.on_swap(new)
        if previous.log is not None:    # requests that started before the swap may still log to it: close it later
            t = threading.Timer(self.grace_s, previous.log.close); t.daemon = True; t.start(); self._timers.append(t)
        return {"changed": True, "model_version": new.version, "previous": old.version}

    def _watch(self, every: float):
        import sys
        while not self._stop.wait(every):
            stamp = self._pointer_stamp()
            if stamp == self._stamp: continue
            self._stamp = stamp
            try: self.reload()
            except ReloadRefused as e: print(f"mlops-nb serve: {e}", file=sys.stderr, flush=True)

    def watch(self, every: float) -> None:
        "Check the pointer every `every` seconds in a background thread and follow it."
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, args=(every,), name="champion-watch", daemon=True)
            self._thread.start()

    def close(self) -> None:
        "Stop watching; write and close every prediction log."
        self._stop.set()
        if self._thread is not None: self._thread.join(10)
        for t in self._timers: t.cancel()
        for log in self.logs.all: log.close()

# %% [code]
check_listen("127.0.0.1", None); check_listen("::1", None); check_listen("localhost", None)
check_listen("0.0.0.0", "s3cret"); check_listen("0.0.0.0", None, insecure=True)
test_fail(lambda: check_listen("0.0.0.0", None), contains="--insecure-listen")
test_fail(lambda: check_listen("10.1.2.3", ""), contains=TOKEN_ENV)

# %% [code]
#| export
MAX_ROWS_PER_REQUEST = 10_000
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

def _not_a_bool(v):
    "JSON true/false is not a number (pydantic would take it as 1.0/0.0; `conform` refuses it too)."
    if isinstance(v, bool): raise ValueError("expected a number, got a boolean")
    return v

def request_model(schema: dict):
    "A pydantic model of one input row, generated from the schema: every feature optional (null for missing), typed."
    from pydantic import BeforeValidator, ConfigDict, Field, create_model
    fields = {}
    for i, name in enumerate(schema["features"]):
        c = schema["columns"][name]
        typ = (Annotated[float, BeforeValidator(_not_a_bool)] if c["kind"] == "numeric" else
               bool if c["kind"] == "boolean" else str)
        desc = (f"number; range seen in training: {c.get('min')} to {c.get('max')}" if c["kind"] == "numeric"
                else f"{c['kind']}; categories seen in training: {c.get('categories')}")
        fields[f"f{i}"] = (Optional[typ], Field(None, alias=name, description=desc))
    return create_model(
        "Row", __config__=ConfigDict(extra="forbid", populate_by_name=False, allow_inf_nan=False), **fields
    )

class ServiceMetrics:
    "The service's Prometheus metrics, in a registry of its own."
    def __init__(self, served: ServedModel, log: Optional[PredictionLog] = None):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlops_nb_requests",
            "HTTP requests by method, path and status code",
            ["method", "path", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "mlops_nb_request_latency_seconds",
            "Time to answer a request, by path",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter("mlops_nb_predicted_rows", "Rows predicted", registry=r)
        self.feedback = Counter(
            "mlops_nb_feedback_rows", "Feedback rows received, by outcome (stored, refused)", ["outcome"], registry=r
        )
        self.warnings = Counter(
            "mlops_nb_schema_warnings",
            "Input values outside the schema (unseen category, out of range), by column",
            ["column"],
            registry=r,
        )
        if served.is_classifier:
            self.labels = Counter("mlops_nb_predictions", "Predicted rows by class", ["label"], registry=r)
            for c in served.classes: self.labels.labels(c)
        else:
            t = served.schema["columns"].get(served.schema["target"], {})
            lo, hi = t.get("min"), t.get("max")
            buckets = (
                sorted(set(np.linspace(lo, hi, 11).round(6).tolist()))
                if lo is not None and hi is not None and hi > lo
                else Histogram.DEFAULT_BUCKETS
            )
            self.values = Histogram(
                "mlops_nb_prediction_value",
                "Predicted values (buckets span the training target range)",
                buckets=buckets,
                registry=r,
            )
        self.info = Gauge("mlops_nb_model_info", "The served model", ["model_version"], registry=r)
        self.info.labels(served.version).set(1)
        if log is not None:
            Gauge(
                "mlops_nb_prediction_log_pending", "Requests waiting to be written to the prediction log", registry=r
            ).set_function(lambda: log.pending)
            Gauge("mlops_nb_prediction_log_written", "Rows written to the prediction log", registry=r).set_function(
                lambda: log.written
            )
            Gauge("mlops_nb_prediction_log_dropped", "Rows the prediction log could not keep", registry=r).set_function(
                lambda: log.dropped
            )
            Gauge(
                "mlops_nb_prediction_log_failures", "Failed attempts to write the prediction log", registry=r
            ).set_function(lambda: log.failures)

    def serving(self, version: str) -> None:
        "The service switched to `version`."
        self.info.clear(); self.info.labels(version).set(1)

    def predicted(self, preds: list, warned_columns=()) -> None:
        self.rows.inc(len(preds))
        if hasattr(self, "labels"):
            for p in preds: self.labels.labels(p).inc()
        else:
            for p in preds: self.values.observe(p)
        for c in warned_columns: self.warnings.labels(c).inc()

class _Instrument:
    "ASGI middleware: count and time every HTTP request (known paths by name, the rest as 'other')."
    def __init__(self, app, metrics: ServiceMetrics, paths=()):
        self.app, self.metrics, self.paths = app, metrics, set(paths)
    async def __call__(self, scope, receive, send):
        if scope["type"] != "http": return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), [500]
        async def send_(m):
            if m["type"] == "http.response.start": status[0] = m["status"]
            await send(m)
        try: await self.app(scope, receive, send_)
        finally:
            path = scope["path"] if scope["path"] in self.paths else "other"
            self.metrics.requests.labels(scope["method"], path, str(status[0])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - t0)

def _row_checks(schema: dict) -> list:
    return [
        (
            c,
            s["kind"],
            s.get("min"),
            s.get("max"),
            set(s["categories"]) if s.get("categories") is not None else None,
            s.get("nullable", True),
        )
        for c, s in ((c, schema["columns"][c]) for c in schema["features"])
    ]

def row_warnings(rows: list[dict], checks: list) -> list[tuple[str, str]]:
    "(column, message) for every value of `rows` outside the schema: out of range, unseen category, unexpected missing."
    out = []
    for i, r in enumerate(rows):
        for c, kind, lo, hi, cats, nullable in checks:
            v = r.get(c)
            if v is None:
                if not nullable: out.append((c, f"row {i}: column {c!r}: missing, none in training"))
            elif kind == "numeric":
                if lo is not None and v < lo:
                    out.append((c, f"row {i}: column {c!r}: value {v} below the training minimum {lo}"))
                elif hi is not None and v > hi:
                    out.append((c, f"row {i}: column {c!r}: value {v} above the training maximum {hi}"))
            elif cats is not None and v not in cats: out.append((c, f"row {i}: column {c!r}: unseen category {v!r}"))
    return out

_REQUEST_ID = r"^[A-Za-z0-9._:-]{1,128}$"

def _short(v, limit: int = 200):
    "`v` if it is small, else a description of it (an error answer names the input, it does not echo a large one)."
    if isinstance(v, (list, dict)) and len(json.dumps(_json_safe(v), default=str)) > limit:
        return f"<{type(v).__name__} of {len(v)} items>"
    return v

def _json_safe(v):
    "`v` with every NaN or infinity replaced by its name, so that it can be sent as JSON."
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))): return str(v)
    if isinstance(v, dict): return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)): return [_json_safe(x) for x in v]
    return v

def create_app(package_dir="models/package", log_db=None, fast: bool = True, max_rows: int = MAX_ROWS_PER_REQUEST,
               threads: Optional[int] = 1, token: Optional[str] = None, reload_poll_s: Optional[float] = None,
               on_feedback: Optional[Callable[[pd.DataFrame], Any]] = None):
    """The FastAPI app serving the champion under `package_dir`, logging predictions to `log_db` (a path or URL) if given.
    `threads` caps the process's OpenMP/BLAS threads (None: leave them): a service answers many small requests, and a
    parallel region for one row waits on its slowest thread, which on a busy machine can stall for a time slice.
    `token`: `/predict`, `/metadata` and `/admin/reload` need `Authorization: Bearer <token>` (`/health` stays open).
    `reload_poll_s`: check `current.json` this often and follow a new champion (None: only on `POST /admin/reload`).
    `on_feedback`: called with the rows of each accepted `POST /feedback` (features joined with their labels, as
    `logstore.labelled_window` gives them), after the commit, in a thread of its own (one batch at a time, in order)."""

    from contextlib import asynccontextmanager
    import hmac
    from fastapi import Body, Depends, FastAPI, Header, HTTPException, Response
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from fastapi.responses import JSONResponse
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from concurrent.futures import ThreadPoolExecutor
    from pydantic import BaseModel, ConfigDict, Field
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    served = load_model(package_dir, fast=fast)
    # loads every library the model uses (e.g. its OpenMP runtime)
    served.predict(_probe_rows(served.schema).iloc[:1])
    if threads is not None:                                    # ... so that the limit reaches them
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    champion = Champion(package_dir, served, log_db, fast)
    log = champion.live.log
    metrics = ServiceMetrics(served, champion.logs if log_db is not None else None)
    Row = request_model(served.schema)
    Label = str if served.is_classifier else float

    class Prediction(BaseModel):
        prediction_id: str
        prediction: Label
        probabilities: Optional[dict[str, float]] = None
    class FeedbackItem(BaseModel):
        model_config = ConfigDict(extra="forbid")
        prediction_id: str = Field(description="as /predict returned it for the row")
        label: Any = Field(description="the true value: one of the classes, or a number for a regressor")
    feedback_engine = make_engine(log_db) if log_db is not None else None
    feedback_worker = ThreadPoolExecutor(1, thread_name_prefix="on-feedback") if on_feedback is not None else None
    class Predictions(BaseModel):
        model_version: str
        request_id: str
        predictions: list[Prediction]
        warnings: list[str]

    @asynccontextmanager
    async def lifespan(app):
        if reload_poll_s: champion.watch(reload_poll_s)
        yield
        if feedback_worker is not None: feedback_worker.shutdown(wait=True)
        champion.close()
        if feedback_engine is not None: feedback_engine.dispose()

    app = FastAPI(title="mlops-nb model service", version=served.version, lifespan=lifespan,
                  description=f"Predicts `{served.schema['target']}` ({served.task}) with model {served.version}.")
    app.state.served, app.state.log, app.state.metrics, app.state.champion = served, log, metrics, champion
    app.state.feedback_errors = []      # what `on_feedback` raised, newest last (it never fails a request)
    def swapped(new):
        metrics.serving(new.version); app.state.served = new
    champion.on_swap = swapped

    bearer = HTTPBearer(auto_error=False)
    async def authorized(cred: Annotated[Optional[HTTPAuthorizationCredentials], Depends(bearer)]):
        if cred is None or not hmac.compare_digest(cred.credentials.encode(), token.encode()):
            raise HTTPException(401, "a valid bearer token is required: Authorization: Bearer <token>",
                                headers={"WWW-Authenticate": "Bearer"})
    guard = [Depends(authorized)] if token else []

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        """422 naming each field; the offending input echoed JSON-safe (a NaN or Infinity in the body would make FastAPI's
        own answer a 500)."""
        from fastapi.encoders import jsonable_encoder
        errors = [{**e, "input": _short(e.get("input"))} for e in exc.errors()]   # a 10,001-row body is not echoed back
        return JSONResponse(status_code=422, content={"detail": _json_safe(jsonable_encoder(errors))})

    @app.get("/health")
    async def health() -> dict:
        out = {"status": "ok", "model_version": champion.live.served.version}
        if champion.last_error: out["reload_error"] = champion.last_error
        return out

    @app.post("/admin/reload", dependencies=guard)
    async def reload() -> dict:
        """Serve the version current.json names now: loaded and checked first; refused (409) if it fails, the old one
        stays."""
        try: return await run_in_threadpool(champion.reload)
        except ReloadRefused as e:
            return JSONResponse(
                status_code=409, content={"detail": str(e), "model_version": champion.live.served.version}
            )

    @app.get("/metadata", dependencies=guard)
    async def metadata() -> dict:
        served = champion.live.served
        return {
            "model_version": served.version,
            "task": served.task,
            "target": served.schema["target"],
            "features": {f: served.schema["columns"][f]["kind"] for f in served.features},
            "classes": served.classes,
            "data_sha256": served.lineage.get("data", {}).get("data_sha256"),
            "metrics": served.lineage.get("metrics", {}),
            "created": served.lineage.get("created"),
            "fast_path": served.fast_reason,
        }

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/predict", response_model=Predictions, response_class=JSONResponse, dependencies=guard)
    async def predict(rows: Union[Row, Annotated[list[Row], Field(min_length=1, max_length=max_rows)]] = Body(...),
                      x_request_id: Annotated[Optional[str], Header(pattern=_REQUEST_ID)] = None):
        live = champion.live              # one version answers the whole request, even if a swap happens meanwhile
        served, checks, log = live.served, live.checks, live.log
        rows = rows if isinstance(rows, list) else [rows]
        data = [r.model_dump(by_alias=True) for r in rows]
        rid = x_request_id or uuid.uuid4().hex
        try: preds, proba = (served.predict_rows(data) if len(data) <= 64 else await run_in_threadpool(served.predict_rows, data))
        except SchemaError as e:
            raise RequestValidationError(
                [
                    {"type": "value_error", "loc": ("body", p["column"]), "msg": p["message"], "input": None}
                    for p in e.problems
                ]
            ) from None
        warned = row_warnings(data, checks)
        body = {
            "model_version": served.version,
            "request_id": rid,
            "predictions": (
                [
                    {"prediction_id": prediction_id(rid, i), "prediction": p, "probabilities": q}
                    for i, (p, q) in enumerate(zip(preds, proba))
                ]
                if proba is not None
                else [{"prediction_id": prediction_id(rid, i), "prediction": p} for i, p in enumerate(preds)]
            ),
            "warnings": [m for _, m in warned],
        }
        metrics.predicted(preds, (c for c, _ in warned))
        if log is not None: log.log(rid, data, preds)
        return Response(json.dumps(body), media_type="application/json", headers={"x-request-id": rid})

    def _hand_on(ids: list[str]) -> None:
        try: on_feedback(labelled_window(log_db, prediction_ids=ids))
        except Exception as e:
            import sys, traceback
            app.state.feedback_errors = (app.state.feedback_errors + [f"{type(e).__name__}: {e}"])[-20:]
            print(f"mlops-nb serve: on_feedback failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            traceback.print_exc()

    def _store(items: list[dict]) -> dict:
        served = champion.live.served
        kind, classes = (served.task, served.classes) if served.is_classifier else ("regression", None)
        out = store_feedback(feedback_engine, items, kind, classes)
        # a prediction of a moment ago may still be queued
        if any(e["problem"] == "unknown_id" for e in out["errors"]):
            if all([l.flush(5.0) for l in champion.logs.all]):
                out = store_feedback(feedback_engine, items, kind, classes)
        return out

    @app.post("/feedback", dependencies=guard)
    async def feedback(items: Annotated[list[FeedbackItem], Body(min_length=1, max_length=max_rows)]):
        """Labels for logged predictions, `[{"prediction_id": ..., "label": ...}]`: all stored (200, with the counts) or,
        if any row is wrong (unknown id, a label that does not fit the model, a duplicate, already labelled), none
        (422, one error per bad row)."""
        if feedback_engine is None:
            return JSONResponse(
                status_code=409,
                content={
                    "detail": (
                        "this service keeps no prediction log (start it with a log "
                        "database), so there is nothing to attach a label to"
                    )
                },
            )
        items = [i.model_dump() for i in items]
        try: out = await run_in_threadpool(_store, items)
        except ValueError as e: return JSONResponse(status_code=503, content={"detail": str(e)})
        metrics.feedback.labels("stored" if not out["errors"] else "refused").inc(len(items))
        if out["errors"]:
            detail = [
                {**e, "loc": ["body", e["row"], "label" if e["problem"] == "label_type" else "prediction_id"]}
                for e in out["errors"]
            ]
            return JSONResponse(
                status_code=422, content=_json_safe({"detail": detail, "received": out["received"], "stored": 0})
            )
        if feedback_worker is not None and out["stored"]:
            feedback_worker.submit(_hand_on, [i["prediction_id"] for i in items])
        return {"received": out["received"], "stored": out["stored"]}
    app.add_middleware(
        _Instrument,
        metrics=metrics,
        paths=("/health", "/metadata", "/metrics", "/predict", "/openapi.json", "/docs", "/admin/reload", "/feedback"),
    )
    return app

# %% [code]
from fastapi.testclient import TestClient   # the app object itself; tests/ start it for real under uvicorn
with TestClient(create_app(_d/"pkg", log_db=_d/"served.db")) as _c:
    test_eq(_c.get("/health").json()["status"], "ok")
    _r = _c.post("/predict", json=[{"x": 0.1, "c": "a"}, {"x": 2.9, "c": "b"}]).json()
    test_eq([p["prediction"] for p in _r["predictions"]], ["n", "p"])
    test_eq([p["prediction_id"] for p in _r["predictions"]], [f"{_r['request_id']}-0", f"{_r['request_id']}-1"])
    test_eq(_c.post("/predict", json={"x": 9.5, "c": "b"}, headers={"x-request-id": "abc"}).json()["warnings"],
            ["row 0: column 'x': value 9.5 above the training maximum 3.0"])
    _bad = _c.post("/predict", json={"x": "heavy", "c": "a"})
    test_eq(_bad.status_code, 422); assert "x" in str(_bad.json()["detail"])
    test_eq(_c.post("/predict", json=[]).status_code, 422)
    # not JSON, but Python reads it
    _nan = _c.post("/predict", content=b'{"x": NaN, "c": "a"}', headers={"content-type": "application/json"})
    test_eq(_nan.status_code, 422); test_eq(_nan.json()["detail"][0]["input"], "nan")
    _bool = _c.post("/predict", json={"x": True, "c": "a"})
    test_eq(_bool.status_code, 422); assert "expected a number, got a boolean" in _bool.text
    _m = _c.get("/metrics").text
    assert 'mlops_nb_predictions_total{label="p"} 2.0' in _m and "mlops_nb_request_latency_seconds_bucket" in _m, _m
with sqlite3.connect(_d/"served.db") as _con:   # leaving the client shut the app down: the log is written
    test_eq(
        _con.execute("select request_id, prediction from prediction_log order by id").fetchall(),
        [(_r["request_id"], '"n"'), (_r["request_id"], '"p"'), ("abc", '"p"')],
    )

# %% [code]
_m2 = Pipeline([("features", make_preprocessor(["x"], ["c"])), ("model", LogisticRegression(C=0.05))]).fit(
    _X, ["n", "n", "p", "p"]
)
from mlops_nb.core import write_json
_v1 = read_json(_d/"pkg"/"current.json")["version"]
with TestClient(create_app(_d/"pkg", token="s3cret")) as _c:
    _auth = {"authorization": "Bearer s3cret"}
    test_eq(_c.get("/health").status_code, 200)                                   # open
    test_eq(_c.post("/predict", json={"x": 1.0, "c": "a"}).status_code, 401)      # no token
    test_eq(_c.post("/predict", json={"x": 1.0, "c": "a"}, headers={"authorization": "Bearer nope"}).status_code, 401)
    test_eq(_c.post("/admin/reload").status_code, 401)
    # the same guard as /predict
    test_eq(_c.post("/feedback", json=[{"prediction_id": "a-0", "label": "n"}]).status_code, 401)
    test_eq(_c.post("/admin/reload", headers=_auth).json(), {"changed": False, "model_version": _v1})
    _v2 = build_package(
        save_model(_m2, _d / "m2.skops"), _d / "pkg", "demo", _schema, {"test": {}}, {"git": {}, "data": {}}
    )["version"]
    test_eq(_c.post("/admin/reload", headers=_auth).json(), {"changed": True, "model_version": _v2, "previous": _v1})
    test_eq(_c.post("/predict", json={"x": 1.0, "c": "a"}, headers=_auth).json()["model_version"], _v2)
    with open(_d/"pkg"/_v1/"model.skops", "ab") as f: f.write(b"x")             # a tampered version is refused
    write_json({"version": _v1}, _d/"pkg"/"current.json")
    _r = _c.post("/admin/reload", headers=_auth)
    test_eq((_r.status_code, _r.json()["model_version"]), (409, _v2))
    assert "does not match the recorded" in _r.json()["detail"]
    test_eq(_c.post("/predict", json={"x": 1.0, "c": "a"}, headers=_auth).json()["model_version"], _v2)
    assert "reload_error" in _c.get("/health").json()
write_json({"version": _v2}, _d/"pkg"/"current.json")   # the later examples use the package folder again

# %% [markdown]
## Labels sent back

`POST /feedback` takes `[{"prediction_id": ..., "label": ...}]` for predictions the service logged, through
`logstore.store_feedback`: every row checked, all stored in one transaction or none (422, one error per bad row). The
guard is the same as `/predict`'s. `on_feedback` receives each accepted batch joined to its features (online learning
hooks in there), after the commit and off the request path.

# %% [code]
_got = []
with TestClient(create_app(_d/"pkg", log_db=_d/"fb.db", on_feedback=_got.append)) as _c:
    _ids = [
        p["prediction_id"]
        for p in _c.post("/predict", json=[{"x": 0.1, "c": "a"}, {"x": 2.9, "c": "b"}]).json()["predictions"]
    ]
    # right after /predict: the log is flushed first
    _ok = _c.post("/feedback", json=[{"prediction_id": _ids[0], "label": "n"}])
    test_eq((_ok.status_code, _ok.json()), (200, {"received": 1, "stored": 1}))
    _no = _c.post(
        "/feedback",
        json=[
            {"prediction_id": _ids[1], "label": "p"},
            {"prediction_id": "nope-0", "label": "p"},
            {"prediction_id": _ids[0], "label": "n"},
            {"prediction_id": _ids[1], "label": 2.5},
        ],
    )
    test_eq(_no.status_code, 422)
    test_eq(
        [(e["row"], e["problem"]) for e in _no.json()["detail"]],
        [(1, "unknown_id"), (2, "already_labelled"), (3, "duplicate")],
    )
    test_eq(
        _c.post("/feedback", json=[{"prediction_id": _ids[1], "label": "q"}]).json()["detail"][0]["problem"],
        "label_type",
    )
    # no label: the request model says so
    test_eq(_c.post("/feedback", json=[{"prediction_id": _ids[1]}]).status_code, 422)
    assert "at least 1 item" in _c.post("/feedback", json=[]).text
with sqlite3.connect(_d/"fb.db") as _con:
    # the refused batch left nothing
    test_eq(_con.execute("select prediction_id, label from feedback").fetchall(), [(_ids[0], '"n"')])
test_eq(len(_got), 1)
test_eq(_got[0][["prediction_id", "prediction", "label", "x", "c"]].values.tolist(), [[_ids[0], "n", "n", 0.1, "a"]])
with TestClient(create_app(_d/"pkg")) as _c:    # no log, nothing to label
    test_eq(_c.post("/feedback", json=[{"prediction_id": "a-0", "label": "n"}]).status_code, 409)

# %% [markdown]
## Precomputed predictions

A batch is scored in chunks and its predictions stored in a database table (SQLite by default, any SQLAlchemy
URL works) with the model version, a key per input row and a timestamp. The whole batch is one transaction: a
chunk that fails validation leaves the table as it was. The key of a row is a hash of its feature values (and
its occurrence number among identical rows) or a key column of the input; scoring the same rows with the same
model again replaces their rows instead of duplicating them.

# %% [code]
#| export
from itertools import repeat

def row_keys(X: pd.DataFrame, seen: Optional[dict] = None) -> list[str]:
    """A stable key per row: the hash of its feature values, with `-n` for the n-th repeat of an identical row
    (`seen` carries the counts from earlier chunks of the same batch)."""
    h = pd.Series(pd.util.hash_pandas_object(X, index=False).to_numpy())
    occ = h.groupby(h, sort=False).cumcount().to_numpy()
    if seen is not None:      # vectorised: one dict look-up per distinct hash, done by C loops (map, update)
        uniq, inv, cnt = np.unique(h.to_numpy(), return_inverse=True, return_counts=True)
        u = uniq.tolist()
        prior = np.fromiter(map(seen.get, u, repeat(0)), dtype=np.int64, count=len(u))
        occ = occ + prior[inv]
        seen.update(zip(u, (prior + cnt).tolist()))
    hx = h.to_numpy().astype(">u8").tobytes().hex()          # each key: 16 hex digits of the 64-bit hash
    keys = np.array(hx).reshape(1).view("U16").tolist() if len(h) else []   # split into keys by a view, not a loop
    for i in np.flatnonzero(occ): keys[i] = f"{keys[i]}-{occ[i]}"
    return keys

def scores_table(name: str, regression: bool, metadata=None):
    "The table of precomputed predictions: one row per (model version, row key)."
    import sqlalchemy as sa
    return sa.Table(
        name,
        metadata if metadata is not None else sa.MetaData(),
        sa.Column("model_version", sa.Text, primary_key=True),
        sa.Column("row_key", sa.Text, primary_key=True),
        sa.Column("scored_at", sa.Text, nullable=False),
        sa.Column("prediction", sa.Float if regression else sa.Text),
        sa.Column("probabilities", sa.Text),
    )  # JSON {class: probability}, when asked for
    # (a rowid table, not WITHOUT ROWID: slower to fill, but `select *` keeps the input's order, which readers rely on)

def _upsert(con, table):
    "An INSERT that replaces the row of the same key, where the database has one; else None."
    if con.dialect.name not in ("sqlite", "postgresql"): return None
    import importlib
    ins = importlib.import_module(f"sqlalchemy.dialects.{con.dialect.name}").insert(table)
    return ins.on_conflict_do_update(index_elements=["model_version", "row_key"],
                                     set_={c: ins.excluded[c] for c in ("scored_at", "prediction", "probabilities")})

def score_chunks(served: ServedModel, chunks: Iterable[pd.DataFrame], db, table: str = "predictions",
                 key: Optional[str] = None, proba: bool = False) -> int:
    """Predict every row of every chunk and write the predictions to `table` in `db`, all in one transaction;
    return the row count. `key` names a column that identifies rows (default: a hash of the features).
    The database write of one chunk runs in a helper thread while the next chunk is checked and predicted (the driver
    releases the GIL while it writes); only one thread uses the connection at a time."""
    import sqlalchemy as sa
    from concurrent.futures import ThreadPoolExecutor
    engine = make_engine(db)
    t = scores_table(table, not served.is_classifier)
    n, seen, keys_seen, stamp = 0, {}, set(), utc_now()
    file = (
        engine.url.database
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")
        else None
    )
    new_file = file is not None and not Path(file).exists()    # made by this call: removed again if it fails
    ok, pool, pending = False, ThreadPoolExecutor(1, thread_name_prefix="score-write"), None
    try:
        with engine.begin() as con:
            # 256 MiB: keys arrive in hash order
            if con.dialect.name == "sqlite": con.exec_driver_sql("PRAGMA cache_size=-262144")
            if sa.inspect(con).has_table(table):
                have = sa.inspect(con).get_pk_constraint(table).get("constrained_columns") or []
                if sorted(have) != ["model_version", "row_key"]:
                    raise ValueError(f"{db}: table {table!r} exists without the key (model_version, row_key) "
                                     f"(made by an older mlops-nb?); pick another table or drop it")
            else: t.create(con)
            ins, sql, cols = (
                _upsert(con, t),
                None,
                ["model_version", "row_key", "scored_at", "prediction", "probabilities"],
            )
            try:
                for chunk in chunks:
                    if key is not None:
                        if key not in chunk.columns:
                            raise SchemaError([_problem(key, "missing", "the key column is missing")])
                        keys = chunk[key].astype(str).tolist()
                        if len(set(keys)) < len(keys) or keys_seen.intersection(keys):
                            raise SchemaError(
                                [_problem(key, "key", "repeated values; a key column must identify rows")]
                            )
                        keys_seen.update(keys)
                    Xc, errors, _ = conform(chunk, served.schema)
                    if errors:
                        raise SchemaError(
                            [{**p, "message": f"rows {n}-{n + len(chunk) - 1}: {p['message']}"} for p in errors]
                        )
                    if key is None: keys = row_keys(Xc, seen)
                    pred, pr = served._predict_conformed(Xc, proba)
                    pred = pred.astype(float).tolist() if not served.is_classifier else pred.astype(str).tolist()
                    probs = (
                        [json.dumps(dict(zip(served.classes, p))) for p in pr.round(6).tolist()]
                        if proba and pr is not None
                        else [None] * len(pred)
                    )
                    # the previous chunk's write: done, or its error
                    if pending is not None: pending.result(); pending = None
                    if ins is None:
                        for i in range(0, len(keys), 500):
                            con.execute(
                                t.delete().where(
                                    t.c.model_version == served.version, t.c.row_key.in_(keys[i : i + 500])
                                )
                            )
                    # compiled once; rows go to the driver's executemany as they are (no per-row dicts)
                    if sql is None:
                        compiled = (ins if ins is not None else t.insert()).compile(
                            dialect=con.dialect, column_keys=cols
                        )
                        sql, order = str(compiled), compiled.positiontup
                    recs = zip(repeat(served.version), keys, repeat(stamp), pred, probs)
                    recs = (
                        (
                            [tuple(r[cols.index(c)] for c in order) for r in recs]
                            if order and list(order) != cols
                            else list(recs)
                        )
                        if order
                        else [dict(zip(cols, r)) for r in recs]
                    )
                    if recs: pending = pool.submit(con.exec_driver_sql, sql, recs)
                    n += len(recs)
                if pending is not None: pending.result(); pending = None
            finally:                  # an error here or in the write: wait for the write before the rollback
                if pending is not None: pending.exception()
        ok = True
    except sa.exc.SQLAlchemyError as e:   # cannot open or write the database: nothing was committed
        raise ValueError(
            f"database {db}: {type(getattr(e, 'orig', None) or e).__name__}: {getattr(e, 'orig', None) or e}; "
            "nothing was written"
        ) from None
    finally:
        pool.shutdown(wait=True)
        engine.dispose()
        if new_file and not ok:
            for f in (file, f"{file}-wal", f"{file}-shm", f"{file}-journal"): Path(f).unlink(missing_ok=True)
    return n

def read_chunks(path, schema: dict, chunk_rows: int = 100_000, key: Optional[str] = None) -> Iterable[pd.DataFrame]:
    "Chunks of the CSV or Parquet file at `path` with the schema's feature columns (and `key`) that it holds."
    path = Path(path)
    if not path.is_file(): raise FileNotFoundError(f"--input: {path} not found")
    wanted = set(schema["features"]) | ({key} if key else set())
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq
        f = pq.ParquetFile(path)
        cols = [c for c in f.schema_arrow.names if c in wanted]
        return (b.to_pandas() for b in f.iter_batches(batch_size=chunk_rows, columns=cols))
    if name.endswith((".csv", ".csv.gz")):
        text = {c: object for c in schema["features"] if schema["columns"][c]["kind"] == "categorical"}
        if key: text[key] = object
        return pd.read_csv(
            path, chunksize=chunk_rows, usecols=lambda c: c in wanted, dtype=text, float_precision="round_trip"
        )
    raise ValueError(f"--input: {path}: expected a .csv or .parquet file")

def score_batch(served: ServedModel, X: pd.DataFrame, db, table: str = "predictions", proba: bool = False) -> int:
    "Predict every row of `X` and write the predictions to `table` in the database `db`; return the row count."
    return score_chunks(served, [X], db, table, proba=proba)

# %% [code]
_db = str(_d/"p.db")
test_eq(score_batch(_sm, _X, _db), 4)
# the same rows again replace theirs; a repeat gets a key of its own
test_eq(score_batch(_sm, pd.concat([_X, _X.iloc[:1]]), _db), 5)
with sqlite3.connect(_db) as _con:
    test_eq(_con.execute("select count(*), count(distinct row_key) from predictions").fetchone(), (5, 5))
_bad = [_X, _X.assign(x="heavy")]                                  # the second chunk fails: nothing of the first stays
test_fail(lambda: score_chunks(_sm, _bad, _d/"q.db"), contains="rows 4-7: column 'x': expected numbers")
# a database file made by the failed call is removed again
assert not (_d/"q.db").exists()
_X.to_csv(_d/"b.csv", index=False)
test_eq(score_chunks(_sm, read_chunks(_d/"b.csv", _schema, chunk_rows=3), _db), 4)
test_eq(row_keys(_X), row_keys(pd.read_csv(_d/"b.csv")))
_k = f"{pd.util.hash_pandas_object(_X.iloc[[0]], index=False).iloc[0]:016x}"
test_eq(row_keys(_X.iloc[[0, 0]]), [_k, f"{_k}-1"])
# counts carry across chunks
_seen = {}; row_keys(_X.iloc[[0]], _seen); test_eq(row_keys(_X.iloc[[0]], _seen), [f"{_k}-1"])

# %% [markdown]
## Run

The pipeline's serve step stores predictions for the held-back batch; `mlops-nb serve` serves the same package.

# %% [code]
os.chdir(find_root())
served = load_model(package_dir)
batch = pd.read_parquet(require(Path(split_dir)/"batch.parquet", "run `mlops-nb step split` first"))
n = score_batch(served, batch.drop(columns=[target]), predictions_db, predictions_table, proba=served.is_classifier)
record_step(
    lineage_dir,
    "serve",
    {"predictions_table": predictions_table},
    inputs=[Path(split_dir) / "batch.parquet"],
    outputs=[predictions_db],
    metrics={"rows_scored": n},
    model_version=served.version,
    fast_path=served.fast_reason,
)
print(f"{n} predictions by {served.version} in {predictions_db}:{predictions_table} (fast path: {served.fast_reason})")
print(
    f"to serve this model over HTTP: mlops-nb serve --host {host} --port {port}  (prediction log: {prediction_log_db})"
)
pd.read_sql(f"select * from {predictions_table} limit 5", db_url(predictions_db))

