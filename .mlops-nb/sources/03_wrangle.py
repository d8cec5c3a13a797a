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
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

# %% [code]
from fastcore.test import test_eq, test_fail
import os
from pathlib import Path
from mlops_nb.core import find_root, read_json, record_step, require, write_parquet

# %% [code] tags=['parameters']
target = "species"
raw_dir = "data/raw"
schema_path = "data/interim/schema.json"
clean_path = "data/interim/clean.parquet"
lineage_dir = "reports/lineage"
drop_columns = []

# %% [markdown]
## Cleaning

Rows without a target cannot teach anything; exact duplicate rows would leak between splits.
Columns listed in `wrangle.drop_columns` are never features.

# %% [code]
#| export
def clean(df: pd.DataFrame, target: str, drop_columns=()) -> pd.DataFrame:
    "A cleaned copy of `df`: listed columns dropped, rows without target and duplicate rows removed."
    unknown = sorted(set(drop_columns) - set(df.columns))
    if unknown: raise KeyError(f"wrangle.drop_columns: {unknown} not in the data; columns are {list(df.columns)}")
    if target in drop_columns: raise ValueError(f"wrangle.drop_columns: cannot drop the target {target!r}")
    out = df.drop(columns=list(drop_columns))
    out = out[out[target].notna()].drop_duplicates()
    return out.reset_index(drop=True)

# %% [code]
_df = pd.DataFrame({"x": [1.0, 1.0, 2.0, 3.0], "c": ["a", "a", None, "b"], "id": [1, 1, 2, 3], "y": ["p", "p", None, "q"]})
_c = clean(_df, "y", ["id"])
test_eq(_c.to_dict("list"), {"x": [1.0, 3.0], "c": ["a", "b"], "y": ["p", "q"]})
test_eq(_df.shape, (4, 4))   # the input is not modified
test_fail(lambda: clean(_df, "y", ["nope"]), contains="['nope'] not in the data")

# %% [markdown]
## Features

The feature pipeline is a `ColumnTransformer`: numbers are imputed with the median and scaled,
categories imputed with the most frequent value and one-hot encoded, ignoring categories never seen
in training, so a new category at prediction time cannot break the model.

# %% [code]
#| export
def feature_columns(schema: dict, columns) -> tuple[list[str], list[str]]:
    "Numeric and categorical feature names of `schema` that are among `columns`."
    feats = [c for c in schema["features"] if c in set(columns)]
    kinds = schema["columns"]
    num = [c for c in feats if kinds[c]["kind"] == "numeric"]
    cat = [c for c in feats if kinds[c]["kind"] in ("categorical", "boolean")]
    return num, cat

def missing_to_nan(X):
    "Categorical values as objects, with every kind of missing value (None, pd.NA, NaN) as NaN."
    X = pd.DataFrame(X).astype(object)
    return X.where(X.notna(), np.nan)

def make_preprocessor(numeric, categorical, scale: bool = True, encoding: str = "onehot",
                      max_categories: int = 250) -> ColumnTransformer:
    """The unfitted feature pipeline for the given numeric and categorical columns.
    `encoding="onehot"` suits linear models (sparse when mostly zeros); `"ordinal"` suits trees: one column
    per category, unseen categories become -1, which HistGradientBoosting treats as missing.
    Both keep at most `max_categories` per column, grouping the rare ones."""
    num_steps = [("impute", SimpleImputer(strategy="median"))] + ([("scale", StandardScaler())] if scale else [])
    if encoding == "onehot":
        enc = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=max_categories)
    elif encoding == "ordinal":
        enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, max_categories=max_categories)
    else: raise ValueError(f"encoding: expected 'onehot' or 'ordinal', got {encoding!r}")
    cat_steps = [("missing", FunctionTransformer(missing_to_nan, feature_names_out="one-to-one")),
                 ("impute", SimpleImputer(strategy="most_frequent")), ("encode", enc)]
    parts = ([("num", Pipeline(num_steps), list(numeric))] if len(numeric) else []) + \
            ([("cat", Pipeline(cat_steps), list(categorical))] if len(categorical) else [])   # only what is used
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)

# %% [code]
_schema = {"features": ["x", "c", "id"], "columns": {"x": {"kind": "numeric"}, "c": {"kind": "categorical"},
                                                  "id": {"kind": "numeric"}, "y": {"kind": "categorical"}}}
test_eq(feature_columns(_schema, ["x", "c", "y"]), (["x"], ["c"]))
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

# %% [markdown]
## Run

# %% [code]
os.chdir(find_root())
raw = pd.read_parquet(require(Path(raw_dir)/"raw.parquet", "run `mlops-nb step ingest` first"))
schema = read_json(require(schema_path, "run `mlops-nb step validate` first"))
cleaned = clean(raw, target, drop_columns)
write_parquet(cleaned, clean_path)
record_step(lineage_dir, "wrangle", {"target": target, "drop_columns": drop_columns},
            inputs=[Path(raw_dir)/"raw.parquet", schema_path], outputs=[clean_path],
            metrics={"rows_in": len(raw), "rows_out": len(cleaned)})
print(f"{len(raw)} rows in, {len(cleaned)} rows out; features: {feature_columns(schema, cleaned.columns)}")

