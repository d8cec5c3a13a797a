# %% [markdown]
# Wrangle
> Cleaning rules as pure functions (the feature pipeline they feed is in 00f_features).

# %% [code]
#| default_exp wrangle

# %% [code]
#| export
from __future__ import annotations

import pandas as pd

from mlops_nb.core import duplicate_rows
from mlops_nb.features import feature_plan   # the feature pipeline, shared with train, package and serve: 00f_features
# model files packaged before the feature pipeline moved to 00f_features refer to its transformers here
from mlops_nb.features import DatetimeFeatures, TextFeatures, missing_to_nan  # noqa: F401

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
drop_columns: list[str] = []  # columns never used as features (identifier-like, constant and empty ones are dropped anyway)
drop_duplicates: bool = False  # remove exact repeated rows; off by default: in surveys, counts, logs and categorical tables repeated rows are separate observations
max_removed_share: float = 0.05  # project: a phase that removes more than this share of its input rows is warned about (here and on the front page)

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
        dup = duplicate_rows(out)
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
## Features

Which column gets which treatment, the transformers and the feature pipeline are a contract that train, package and serve share: they live in `mlops_nb.features` (notebook 00f_features). This step records the plan (`feature_plan`) in its lineage.

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

