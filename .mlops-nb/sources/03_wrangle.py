# %% [markdown]
# Wrangle
> Cleaning rules as pure functions and the feature pipeline as scikit-learn transformers, fitted on training data only and packaged with the model.

# %% [code]
#| default_exp wrangle

# %% [code]
#| export
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from mlops_nb.contracts import parse_dates   # shared with validate and split: 00a_contracts

# %% [code]
from fastcore.test import test_eq, test_fail
import os
from pathlib import Path
from mlops_nb.core import find_root, read_json, record_step, require, row_flow, write_parquet

# %% [code] tags=['parameters']
target: str = "species"  # the column to predict (project.target)
raw_dir: str = "data/raw"  # the raw snapshot (from ingest)
schema_path: str = "data/interim/schema.json"  # the schema (from validate)
clean_path: str = "data/interim/clean.parquet"  # the cleaned data
lineage_dir: str = "reports/lineage"  # lineage records
# columns never used as features (identifier-like, constant and empty ones are dropped anyway)
drop_columns: list[str] = []
# remove exact repeated rows; off by default: in surveys, counts, logs and categorical tables repeated rows are separate observations
drop_duplicates: bool = False
# project: a phase that removes more than this share of its input rows is warned about (here and on the front page)
max_removed_share: float = 0.05

# %% [markdown]
## Cleaning

Rows without a target cannot teach anything: they are removed (validate stops the run before that when the
target has missing values, so this count is normally 0). Identical rows are **kept** by default: in survey data,
counts, event logs, sensor readings and many categorical tables they are separate observations, and removing them
changes the class balance and the model. `wrangle.drop_duplicates: true` removes them when they are copies of one
record (an export that repeated rows); the split step reports rows whose features appear in two splits either way.
Columns listed in `wrangle.drop_columns` are never features. Every removed row is counted with its reason.

# %% [code]
#| export
def clean_rows(
    df: pd.DataFrame, target: str, drop_columns=(), drop_duplicates: bool = False
) -> tuple[pd.DataFrame, dict]:
    """A cleaned copy of `df` (listed columns dropped, rows without target removed, and exact duplicate rows too
    when `drop_duplicates`), with the number of rows removed per reason."""
    unknown = sorted(set(drop_columns) - set(df.columns))
    if unknown: raise KeyError(f"wrangle.drop_columns: {unknown} not in the data; columns are {list(df.columns)}")
    if target in drop_columns: raise ValueError(f"wrangle.drop_columns: cannot drop the target {target!r}")
    out = df.drop(columns=list(drop_columns))
    labelled = out[target].notna()
    removed = {"missing target": int((~labelled).sum())}
    out = out[labelled]
    if drop_duplicates:
        dup = out.duplicated()
        removed["duplicates"] = int(dup.sum())
        out = out[~dup]
    return out.reset_index(drop=True), removed

def clean(df: pd.DataFrame, target: str, drop_columns=(), drop_duplicates: bool = False) -> pd.DataFrame:
    "A cleaned copy of `df`: see `clean_rows`."
    return clean_rows(df, target, drop_columns, drop_duplicates)[0]

# %% [code]
_df = pd.DataFrame(
    {"x": [1.0, 1.0, 2.0, 3.0], "c": ["a", "a", None, "b"], "id": [1, 1, 2, 3], "y": ["p", "p", None, "q"]}
)
_c, _removed = clean_rows(_df, "y", ["id"])
# repeated rows are kept
test_eq(_c.to_dict("list"), {"x": [1.0, 1.0, 3.0], "c": ["a", "a", "b"], "y": ["p", "p", "q"]})
test_eq(_removed, {"missing target": 1})
_c, _removed = clean_rows(_df, "y", ["id"], drop_duplicates=True)
test_eq(
    (_c.to_dict("list"), _removed),
    ({"x": [1.0, 3.0], "c": ["a", "b"], "y": ["p", "q"]}, {"missing target": 1, "duplicates": 1}),
)
test_eq(_df.shape, (4, 4))   # the input is not modified
test_fail(lambda: clean(_df, "y", ["nope"]), contains="['nope'] not in the data")

# %% [markdown]
## Which column gets which treatment

The schema decides, from each column's kind and role (see validate): numbers are imputed with the
median (and scaled for linear models); categories and booleans are imputed with the most frequent value
and encoded, keeping at most `max_categories` per column (rarer ones grouped as "infrequent": high
cardinality is bounded), unseen categories at prediction time encoded as "none of the known ones";
datetime columns are decomposed into parts; free text becomes its length, word count and a few TF-IDF
components; identifier-like, constant and empty columns are not features at all.

# %% [code]
#| export
def feature_plan(schema: dict, columns) -> dict[str, list[str]]:
    "The schema's features among `columns`, by treatment: numeric, categorical, datetime, text."
    cols = set(columns)
    feats = [c for c in schema["features"] if c in cols]
    spec = schema["columns"]
    role = lambda c: spec[c].get("role", "feature")
    return {"numeric": [c for c in feats if spec[c]["kind"] == "numeric" and role(c) == "feature"],
            "categorical": [c for c in feats if spec[c]["kind"] in ("categorical", "boolean") and role(c) == "feature"],
            "datetime": [c for c in feats if spec[c]["kind"] == "datetime" and role(c) == "feature"],
            "text": [c for c in feats if role(c) == "text"]}

def feature_columns(schema: dict, columns) -> tuple[list[str], list[str]]:
    "Numeric and categorical feature names of `schema` that are among `columns`."
    plan = feature_plan(schema, columns)
    return plan["numeric"], plan["categorical"]

# %% [code]
_schema = {
    "features": ["x", "c", "id", "when", "note"],
    "columns": {
        "x": {"kind": "numeric"},
        "c": {"kind": "categorical"},
        "id": {"kind": "numeric"},
        "y": {"kind": "categorical"},
        "when": {"kind": "datetime", "role": "feature"},
        "note": {"kind": "categorical", "role": "text"},
    },
}
test_eq(feature_columns(_schema, ["x", "c", "y"]), (["x"], ["c"]))
test_eq(
    feature_plan(_schema, ["x", "c", "y", "when", "note"]),
    {"numeric": ["x"], "categorical": ["c"], "datetime": ["when"], "text": ["note"]},
)

# %% [markdown]
## Custom transformers

Two transformers scikit-learn does not have. Both follow the estimator contract (`__init__` stores
parameters, `fit` learns attributes ending in `_`, fixed output width) and pass
`sklearn.utils.estimator_checks` (tests/test_data_phases.py).

# %% [code]
#| export
DATETIME_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "hour", "minute")

class DatetimeFeatures(TransformerMixin, BaseEstimator):
    """Each column of dates (datetime values or date text) as numeric parts: year, month, day, weekday, ...; NaN where
    missing."""
    def __init__(self, parts=("year", "month", "day", "dayofweek", "hour")):
        self.parts = parts

    def fit(self, X, y=None):
        bad = [p for p in self.parts if p not in DATETIME_PARTS]
        if bad or not len(self.parts):
            raise ValueError(f"parts: expected some of {list(DATETIME_PARTS)}, got {list(self.parts)}")
        validate_data(self, X, dtype=None, ensure_all_finite=False, reset=True)
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        names = list(getattr(self, "feature_names_in_", []))
        Xa = validate_data(self, X, dtype=None, ensure_all_finite=False, reset=False)
        out = np.empty((Xa.shape[0], Xa.shape[1] * len(self.parts)), dtype=float)
        for j in range(Xa.shape[1]):
            col = X[names[j]] if names and isinstance(X, pd.DataFrame) else pd.Series(Xa[:, j])
            t = parse_dates(pd.Series(col).reset_index(drop=True))
            for k, p in enumerate(self.parts):
                out[:, j * len(self.parts) + k] = getattr(t.dt, p).to_numpy(dtype=float, na_value=np.nan)
        return out

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "n_features_in_")
        cols = (
            input_features
            if input_features is not None
            else getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)])
        )
        return np.array([f"{c}_{p}" for c in cols for p in self.parts], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        return tags

def _docs(col) -> list[str]:
    return ["" if v is None or (isinstance(v, float) and v != v) or v is pd.NA else str(v) for v in col]

class TextFeatures(TransformerMixin, BaseEstimator):
    """Each free-text column as its length, its word count and `n_components` TF-IDF + SVD components (a fixed width);
    missing text is empty."""
    def __init__(self, n_components: int = 8, max_features: int = 2000, seed: int = 0):
        self.n_components, self.max_features, self.seed = n_components, max_features, seed

    def fit(self, X, y=None):
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        Xa = validate_data(self, X, dtype=None, ensure_all_finite=False, reset=True)
        self.vectorizers_, self.svds_ = [], []
        for j in range(Xa.shape[1]):
            docs = _docs(Xa[:, j])
            vec = TfidfVectorizer(max_features=self.max_features, token_pattern=r"(?u)\b\w+\b", dtype=np.float64)
            try: M = vec.fit_transform(docs)
            except ValueError: vec, M = None, None               # no words at all
            k = min(self.n_components, M.shape[1] - 1, M.shape[0] - 1) if M is not None else 0
            self.vectorizers_.append(vec)
            self.svds_.append(TruncatedSVD(k, random_state=self.seed).fit(M) if k >= 1 else None)
        return self

    def transform(self, X):
        check_is_fitted(self, "vectorizers_")
        Xa = validate_data(self, X, dtype=None, ensure_all_finite=False, reset=False)
        w = self.n_components + 2
        out = np.zeros((Xa.shape[0], Xa.shape[1] * w))
        for j, (vec, svd) in enumerate(zip(self.vectorizers_, self.svds_)):
            docs = _docs(Xa[:, j])
            out[:, j * w] = [len(d) for d in docs]
            out[:, j * w + 1] = [len(d.split()) for d in docs]
            if svd is not None:
                z = svd.transform(vec.transform(docs))
                out[:, j * w + 2: j * w + 2 + z.shape[1]] = z
        return out

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "vectorizers_")
        cols = (
            input_features
            if input_features is not None
            else getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)])
        )
        return np.array(
            [
                n
                for c in cols
                for n in [f"{c}_chars", f"{c}_words"] + [f"{c}_tfidf{i}" for i in range(self.n_components)]
            ],
            dtype=object,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        return tags

# %% [code]
_dt = pd.DataFrame(
    {"when": ["2024-03-01", "2024-12-25T18:30:00", None, "not a date"], "t": pd.to_datetime(["2020-01-01"] * 4)}
)
_z = DatetimeFeatures(parts=("year", "month", "hour")).fit(_dt).transform(_dt)
test_eq(_z[:2, :3].tolist(), [[2024, 3, 0], [2024, 12, 18]])
assert np.isnan(_z[2:, :3]).all()                        # missing or unparsable: NaN, the imputer fills it
test_eq(list(DatetimeFeatures(parts=("year",)).fit(_dt).get_feature_names_out()), ["when_year", "t_year"])
test_fail(lambda: DatetimeFeatures(parts=("week",)).fit(_dt), contains="expected some of")
test_eq(parse_dates(pd.Series(["03/01/2024", "2024-03-02"])).dt.day.tolist(), [1, 2])
_tx = pd.DataFrame({"note": ["red apple pie", "green apple", None, "a very long red note here", "pie"]})
_tf = TextFeatures(n_components=2).fit(_tx)
_tz = _tf.transform(_tx)
test_eq(_tz.shape, (5, 4))
test_eq(_tz[:, :2].tolist()[:3], [[13, 3], [11, 2], [0, 0]])
test_eq(list(_tf.get_feature_names_out()), ["note_chars", "note_words", "note_tfidf0", "note_tfidf1"])

# %% [markdown]
## The feature pipeline

A `ColumnTransformer`, fitted inside the model's pipeline on the training split only and packaged with
it. Its branches come in a fixed order — numbers, dates, text, categories — so the categorical columns
are the last ones (`categorical_mask` says which outputs they are, for HistGradientBoosting's native
categorical support). A dataset with only numbers and categories gets exactly the two branches it
always had.

# %% [code]
#| export
def missing_to_nan(X):
    "Categorical values as objects, with every kind of missing value (None, pd.NA, NaN) as NaN."
    X = pd.DataFrame(X).astype(object)
    return X.where(X.notna(), np.nan)

TEXT_COMPONENTS = 8
DATE_PARTS = ("year", "month", "day", "dayofweek", "hour")

def make_preprocessor(numeric, categorical, scale: bool = True, encoding: str = "onehot",
                      max_categories: int = 250, datetime=(), text=()) -> ColumnTransformer:
    """The unfitted feature pipeline for the given numeric, categorical, datetime and text columns.
    `encoding="onehot"` suits linear models (sparse when mostly zeros); `"ordinal"` suits trees: one column
    per category, unseen categories become -1, which HistGradientBoosting treats as missing.
    Both keep at most `max_categories` per column, grouping the rare ones."""
    scaler = [("scale", StandardScaler())] if scale else []
    num_steps = [("impute", SimpleImputer(strategy="median"))] + scaler
    if encoding == "onehot":
        enc = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=max_categories)
    elif encoding == "ordinal":
        enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, max_categories=max_categories)
    else: raise ValueError(f"encoding: expected 'onehot' or 'ordinal', got {encoding!r}")
    cat_steps = [("missing", FunctionTransformer(missing_to_nan, feature_names_out="one-to-one")),
                 ("impute", SimpleImputer(strategy="most_frequent")), ("encode", enc)]
    date_steps = [("parts", DatetimeFeatures(parts=DATE_PARTS)),
                  ("impute", SimpleImputer(strategy="median", keep_empty_features=True))] + \
                 ([("scale", StandardScaler())] if scale else [])
    text_steps = [("text", TextFeatures(n_components=TEXT_COMPONENTS))] + (
        [("scale", StandardScaler())] if scale else []
    )
    parts = ([("num", Pipeline(num_steps), list(numeric))] if len(numeric) else []) + \
            ([("date", Pipeline(date_steps), list(datetime))] if len(datetime) else []) + \
            ([("text", Pipeline(text_steps), list(text))] if len(text) else []) + \
            ([("cat", Pipeline(cat_steps), list(categorical))] if len(categorical) else [])   # only what is used
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)

def categorical_mask(numeric, categorical, datetime=(), text=()) -> list[bool]:
    "Which output columns of `make_preprocessor(..., encoding='ordinal')` are categorical codes (the last ones)."
    width = len(numeric) + len(DATE_PARTS) * len(datetime) + (TEXT_COMPONENTS + 2) * len(text)
    return [False] * width + [True] * len(categorical)

# %% [code]
_pre = make_preprocessor(["x"], ["c"]).fit(_df.drop(columns="y"))
_new = pd.DataFrame({"x": [None, 2.0, 3.0], "c": ["zzz", None, "b"]})
_out = np.asarray(_pre.transform(_new).todense() if hasattr(_pre.transform(_new), "todense") else _pre.transform(_new))
test_eq(list(_pre.get_feature_names_out()), ["x", "c_a", "c_b"])
test_eq(_out[:, 1:].tolist(), [[0.0, 0.0],    # an unseen category encodes as all zeros
                               [1.0, 0.0],    # missing → the most frequent category, "a"
                               [0.0, 1.0]])
assert not np.isnan(_out).any()
_ord = make_preprocessor(["x"], ["c"], scale=False, encoding="ordinal").fit(_df.drop(columns="y"))
test_eq(_ord.transform(_new)[:, 1].tolist(), [-1.0, 0.0, 1.0])   # unseen → -1, missing → most frequent ("a" → 0)
test_fail(lambda: make_preprocessor(["x"], [], encoding="hash"), contains="expected 'onehot' or 'ordinal'")
test_eq([n for n, *_ in make_preprocessor(["x"], []).transformers], ["num"])   # numbers only: no categorical branch
_all = pd.DataFrame(
    {
        "x": [1.0, 2.0, None, 4.0, 5.0],
        "c": ["a", "b", "a", None, "b"],
        "when": _dt["when"].tolist() + ["2025-01-01"],
        "note": _tx["note"],
    }
)
_full = make_preprocessor(["x"], ["c"], encoding="ordinal", scale=False, datetime=["when"], text=["note"]).fit(_all)
_fz = _full.transform(_all)
test_eq(_fz.shape[1], len(categorical_mask(["x"], ["c"], ["when"], ["note"])))
test_eq(list(_full.get_feature_names_out())[-1], "c")                    # categories come last
assert not np.isnan(_fz).any()

# %% [markdown]
## Run

# %% [code]
os.chdir(find_root())
raw = pd.read_parquet(require(Path(raw_dir)/"raw.parquet", "run `mlops-nb step ingest` first"))
schema = read_json(require(schema_path, "run `mlops-nb step validate` first"))
cleaned, removed = clean_rows(raw, target, drop_columns, drop_duplicates)
rows = row_flow(len(raw), len(cleaned), removed, with_target=len(raw) - removed["missing target"])
plan = feature_plan(schema, cleaned.columns)
if not any(plan.values()):
    raise ValueError(
        f"wrangle: no usable feature left in {clean_path}: the schema's features are {schema['features']}, "
        f"wrangle.drop_columns removes {drop_columns}; not used: {schema.get('dropped')}"
    )
write_parquet(cleaned, clean_path)
record_step(
    lineage_dir,
    "wrangle",
    {
        "target": target,
        "drop_columns": drop_columns,
        "drop_duplicates": drop_duplicates,
        "max_removed_share": max_removed_share,
    },
    inputs=[Path(raw_dir) / "raw.parquet", schema_path],
    outputs=[clean_path],
    metrics={
        "rows_in": len(raw),
        "rows_out": len(cleaned),
        **{f"removed_{k.replace(' ', '_')}": v for k, v in removed.items()},
    },
    features=plan,
    not_used=schema.get("dropped", {}),
    rows=rows,
)
print(f"{len(raw)} rows in, {len(cleaned)} rows out"
      + "".join(f"; {n} removed: {why}" for why, n in removed.items() if n))
if drop_duplicates: print(f"wrangle.drop_duplicates: {removed['duplicates']} repeated rows removed")
if rows["removed_share"] > max_removed_share:
    print(
        f"warning: wrangle removed {rows['removed_share']:.1%} of its {len(raw)} input rows "
        f"(more than project.max_removed_share = {max_removed_share:.0%}): "
        + ", ".join(f"{why} {n}" for why, n in rows["removed"].items())
    )
for k, v in plan.items(): print(f"{k}: {v}")
if schema.get("dropped"): print(f"not features: {schema['dropped']}")

