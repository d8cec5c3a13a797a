# %% [markdown]
# Validate and profile
> Infer the schema that later phases take as their contract, stop on failed data-quality gates, and profile the data with ydata-profiling.

# %% [code]
#| default_exp validate

# %% [code]
#| export
from __future__ import annotations
import os
from pathlib import Path

import pandas as pd

from mlops_nb.core import atomic_path, frame_sha256, write_json

# %% [code]
from fastcore.test import test_eq, test_fail
import tempfile
from mlops_nb.core import find_root, record_step, require

# %% [code] tags=['parameters']
target = "species"
raw_dir = "data/raw"
schema_path = "data/interim/schema.json"
validation_path = "data/interim/validation.json"
profile_path = "reports/profile.html"
lineage_dir = "reports/lineage"
max_missing_share = 0.2
min_rows_per_class = 10
max_duplicate_share = 0.05
profile_minimal = False

# %% [markdown]
## The schema

Inferred from the data at training time and saved as JSON: serving and monitoring check new data
against it. Numeric columns keep their observed range, categorical ones their categories.

# %% [code]
#| export
def column_kind(s: pd.Series) -> str:
    "'numeric', 'boolean', 'datetime' or 'categorical'."
    if pd.api.types.is_bool_dtype(s): return "boolean"
    if pd.api.types.is_numeric_dtype(s): return "numeric"
    if pd.api.types.is_datetime64_any_dtype(s): return "datetime"
    return "categorical"

def detect_task(y: pd.Series) -> tuple[str, str]:
    "The learning task the target `y` implies, with the reason."
    n = int(y.nunique())
    if column_kind(y) != "numeric":
        return ("binary" if n == 2 else "multiclass"), f"target is {column_kind(y)} with {n} classes"
    if pd.api.types.is_integer_dtype(y) and n <= 10:
        return ("binary" if n == 2 else "multiclass"), f"target holds {n} distinct integers"
    return "regression", f"target is numeric with {n} distinct values"

def infer_schema(df: pd.DataFrame, target: str, max_categories: int = 50) -> dict:
    "The schema of `df`: per column its kind, dtype, nullability, and range or categories."
    if target not in df.columns:
        raise KeyError(f"project.target: column {target!r} not in the data; columns are {list(df.columns)}")
    cols = {}
    for name, s in df.items():
        kind = column_kind(s)
        c = {"kind": kind, "dtype": str(s.dtype), "nullable": bool(s.isna().any())}
        if kind == "numeric":
            c.update(min=float(s.min()), max=float(s.max()))
        elif kind == "categorical":
            cats = s.dropna().astype(str).unique()
            c["categories"] = sorted(cats.tolist()) if len(cats) <= max_categories else None
        cols[str(name)] = c
    task, reason = detect_task(df[target])
    return {"target": target, "task": task, "task_reason": reason, "columns": cols,
            "features": [c for c in cols if c != target]}

# %% [code]
_df = pd.DataFrame({"x": [1.0, 2.0, None], "c": ["a", "b", "a"], "y": ["p", "q", "p"]})
_s = infer_schema(_df, "y")
test_eq(_s["features"], ["x", "c"])
test_eq(_s["task"], "binary")
test_eq(detect_task(pd.Series([1.5, 2.5, 3.5]))[0], "regression")
test_eq(detect_task(pd.Series([0, 1, 2, 1]))[0], "multiclass")
test_eq(_s["columns"]["x"], {"kind": "numeric", "dtype": "float64", "nullable": True, "min": 1.0, "max": 2.0})
test_eq(_s["columns"]["c"]["categories"], ["a", "b"])
test_fail(lambda: infer_schema(_df, "nope"), contains="'nope' not in the data")

# %% [code]
#| export
def check_schema(df: pd.DataFrame, schema: dict, require_target: bool = False) -> list[str]:
    "Every way `df` breaks `schema`, one message per column and problem (empty list: it conforms)."
    problems = []
    wanted = schema["features"] + ([schema["target"]] if require_target else [])
    for name in wanted:
        c = schema["columns"][name]
        if name not in df.columns: problems.append(f"column {name!r}: missing"); continue
        s = df[name]
        if not c["nullable"] and s.isna().any(): problems.append(f"column {name!r}: {int(s.isna().sum())} missing values, none expected")
        if c["kind"] == "numeric":
            if not pd.api.types.is_numeric_dtype(s): problems.append(f"column {name!r}: expected numbers, got {s.dtype}"); continue
            lo, hi = s.min(), s.max()
            if pd.notna(lo) and lo < c["min"]: problems.append(f"column {name!r}: value {lo} below the training minimum {c['min']}")
            if pd.notna(hi) and hi > c["max"]: problems.append(f"column {name!r}: value {hi} above the training maximum {c['max']}")
        elif c["kind"] == "categorical" and c.get("categories") is not None:
            new = sorted(set(s.dropna().astype(str)) - set(c["categories"]))
            if new: problems.append(f"column {name!r}: unseen categories {new[:5]}")
    return problems

# %% [code]
test_eq(check_schema(_df, _s), [])
test_eq(check_schema(_df.drop(columns="c"), _s), ["column 'c': missing"])
test_eq(check_schema(_df.assign(x=[0.5, 1, 1]), _s), ["column 'x': value 0.5 below the training minimum 1.0"])
test_eq(check_schema(_df.assign(c=["a", "z", "b"]), _s), ["column 'c': unseen categories ['z']"])
test_eq(check_schema(_df.assign(x=["a", "b", "c"]), _s), ["column 'x': expected numbers, got object"])

# %% [markdown]
## Data-quality gates

Each gate measures one thing and compares it with a limit from params.yaml. A failed `error` gate
stops the pipeline with a message naming the column, the value and the limit.

# %% [code]
#| export
class DataQualityError(ValueError):
    "The data failed one or more data-quality gates."

def quality_gates(df: pd.DataFrame, target: str, max_missing_share: float = 0.2,
                  min_rows_per_class: int = 10, max_duplicate_share: float = 0.05) -> list[dict]:
    "Measure each gate; every result has name, column, value, limit, passed and level ('error' or 'warning')."
    out = []
    def gate(name, column, value, limit, passed, level="error"):
        out.append({"gate": name, "column": column, "value": value, "limit": limit, "passed": bool(passed), "level": level})
    y = df[target]
    gate("target has no missing values", target, int(y.isna().sum()), 0, y.isna().sum() == 0)
    gate("target is not constant", target, int(y.nunique()), 2, y.nunique() >= 2)
    if column_kind(y) != "numeric":
        counts = y.value_counts()
        gate("rows per class", target, int(counts.min()), min_rows_per_class, counts.min() >= min_rows_per_class)
    for name, share in df.drop(columns=[target]).isna().mean().items():
        gate("share of missing values", str(name), round(float(share), 4), max_missing_share, share <= max_missing_share)
    dup = float(df.duplicated().mean())
    gate("share of duplicate rows", None, round(dup, 4), max_duplicate_share, dup <= max_duplicate_share, level="warning")
    return out

def raise_on_failed(gates: list[dict], source: str = "data"):
    "Raise DataQualityError listing every failed error-level gate."
    failed = [g for g in gates if not g["passed"] and g["level"] == "error"]
    if failed:
        lines = [f"- {g['gate']}: column {g['column']!r} measured {g['value']}, limit {g['limit']}" for g in failed]
        raise DataQualityError(f"{source} failed {len(failed)} data-quality gate(s):\n" + "\n".join(lines))

# %% [code]
_g = quality_gates(_df, "y", max_missing_share=0.5, min_rows_per_class=1)
assert all(g["passed"] for g in _g if g["level"] == "error")
_g = quality_gates(_df, "y", max_missing_share=0.1, min_rows_per_class=1)
test_fail(lambda: raise_on_failed(_g, "raw.parquet"), contains="column 'x' measured 0.3333, limit 0.1")
test_fail(lambda: raise_on_failed(quality_gates(_df.assign(y="p"), "y", 1, 1)), contains="target is not constant")

# %% [markdown]
## Profile

ydata-profiling, installed as its maintained successor `fg-data-profiling` (`import data_profiling`).
Its usage analytics are switched off before it is imported: a run makes no outbound call.

# %% [code]
#| export
def profile_report(df: pd.DataFrame, dest, title: str = "Data profile", minimal: bool = False) -> Path:
    "Write a ydata-profiling HTML report of `df` to `dest` atomically."
    os.environ["YDATA_PROFILING_NO_ANALYTICS"] = "True"
    from data_profiling import ProfileReport
    report = ProfileReport(df, title=title, minimal=minimal, progress_bar=False)
    with atomic_path(dest) as tmp:
        Path(tmp).write_text(report.to_html())
    return Path(dest)

# %% [code]
with tempfile.TemporaryDirectory() as d:
    p = profile_report(_df, Path(d)/"p.html", minimal=True)
    assert "<html" in p.read_text()[:2000].lower()

# %% [markdown]
## Run

# %% [code]
os.chdir(find_root())
raw = pd.read_parquet(require(Path(raw_dir)/"raw.parquet", "run `mlops-nb step ingest` first"))
schema = infer_schema(raw, target)
gates = quality_gates(raw, target, max_missing_share, min_rows_per_class, max_duplicate_share)
write_json({"data_sha256": frame_sha256(raw), "gates": gates}, validation_path)
raise_on_failed(gates, f"{raw_dir}/raw.parquet")
write_json(schema, schema_path)
print(f"task: {schema['task']} ({schema['task_reason']})")
profile_report(raw, profile_path, title=f"Profile of {raw_dir}/raw.parquet", minimal=profile_minimal)
record_step(lineage_dir, "validate", {"target": target}, inputs=[Path(raw_dir)/"raw.parquet"],
            outputs=[schema_path, validation_path, profile_path],
            metrics={"gates_failed": sum(not g["passed"] for g in gates)})
pd.DataFrame(gates)

