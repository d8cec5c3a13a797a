# %% [markdown]
# Validate and profile
> Infer the schema that later phases take as their contract, check data against it with pandera, stop on failed data-quality gates, and profile the data with ydata-profiling.

# %% [code]
#| default_exp validate

# %% [code]
#| export
from __future__ import annotations
import html, os, re
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_nb.core import atomic_path, duplicate_rows, frame_sha256, read_json, write_json
# shared: 00a_contracts  # noqa: F401
from mlops_nb.contracts import check_schema, detect_task, parse_dates
from mlops_nb.pages import html_page

# %% [code]
from fastcore.test import test_close, test_eq, test_fail
import tempfile
from mlops_nb.core import find_root, load_params, record_step, require, row_flow

# %% [code] tags=['parameters']
target: str = "species"  # the column to predict (project.target)
seed: int = 42  # the profile's sample
raw_dir: str = "data/raw"  # the raw snapshot (from ingest)
schema_path: str = "data/interim/schema.json"  # the schema: the contract for later phases, serving and monitoring
validation_path: str = "data/interim/validation.json"  # every gate's measurement, level and verdict
profile_path: str = "reports/profile.html"  # the ydata-profiling report
lineage_dir: str = "reports/lineage"  # lineage records
max_missing_share: float = 0.2  # per feature column; above it the column is dropped with a warning (gate level drop), reported (warning) or stops the run (error)
min_rows_per_class: int = 10  # classification only
max_duplicate_share: float = 0.05  # share of rows that repeat an earlier row
min_rows: int = 20  # fewer rows (with a target) fail
gate_levels: dict = {"missing": "drop", "rows_per_class": "error", "duplicates": "warning", "min_rows": "error", "dropped_columns": "warning", "cv_folds": "error"}  # per gate: error (stops the run), warning (reported) or off; missing also drop (the column is not used, with a warning)
max_categories: int = 50  # a text column with more distinct values has no category list in the schema
profile_minimal: bool = False  # true: ydata-profiling's fast minimal mode only
profile_sample_rows: int = 20000  # above it: exact column statistics on all rows, correlations, duplicates and missing-value patterns on a sample of this size
profile_interactions: bool = False  # also the pairwise interaction plots of numeric columns (on the sample for large data; slow: about 1 s per pair of columns)

# %% [markdown]
## The schema

Inferred from the data at training time and saved as JSON: serving and monitoring check new data
against it. Per column: its kind (`numeric`, `boolean`, `datetime`, `categorical`), dtype, nullability,
range or allowed categories, and its role. Columns that cannot teach a model are kept out of
`features` and listed in `dropped` with the reason: entirely missing, constant, or identifier-like
(text or a whole number named like an id, almost every value distinct), or, with the missing-share gate at its
default level `drop`, mostly empty (a larger share of missing or blank values than `validate.max_missing_share`:
`role: mostly_empty`, with its `missing_share`). Text with many distinct values
of several words is `role: text` (the feature pipeline turns it into numbers); text that parses as
dates is `kind: datetime` (decomposed into parts). The task and its reason come from ingest.

# %% [code]
#| export
def _looks_like_dates(s: pd.Series, probe: int = 500) -> bool:
    "Text whose values (a sample of them) all parse as dates."
    v = s.head(probe * 20).dropna().head(probe)        # the first values: not a scan of every row
    if len(v) == 0: v = s.dropna().head(probe)
    if len(v) == 0 or not all(isinstance(x, str) for x in v): return False
    if not v.str.contains(r"^\d{4}-\d{2}-\d{2}|^\d{1,2}/\d{1,2}/\d{2,4}", regex=True).all(): return False
    return bool(pd.to_datetime(v, errors="coerce", format="mixed").notna().all())

def column_kind(s: pd.Series) -> str:
    "'numeric', 'boolean', 'datetime' (a datetime dtype or text that parses as dates) or 'categorical'."
    if pd.api.types.is_bool_dtype(s): return "boolean"
    if pd.api.types.is_numeric_dtype(s): return "numeric"
    if pd.api.types.is_datetime64_any_dtype(s) or _looks_like_dates(s): return "datetime"
    return "categorical"

def _arrow(s: pd.Series):
    "`s` as a pyarrow array (missing values, NaN and NaT as nulls), or None when pyarrow cannot take it (mixed types)."
    import pyarrow as pa
    try: return pa.array(s, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError): return None

def _text(a) -> bool:
    import pyarrow as pa
    return a is not None and (pa.types.is_string(a.type) or pa.types.is_large_string(a.type))

def _blanks(a) -> int:
    "How many values of the pyarrow text array `a` are empty or only spaces."
    import pyarrow.compute as pc
    return int(pc.sum(pc.equal(pc.utf8_trim_whitespace(a), "")).as_py() or 0)

def _distinct(s: pd.Series) -> int:
    """How many distinct values `s` has, missing ones aside, as `Series.nunique` counts them; numbers and dates by
    sorting (hashing 10M distinct floats takes 20x longer), text by pyarrow's hash, anything else by pandas."""
    import pyarrow.compute as pc
    nn = s.dropna()
    v = nn.to_numpy()
    if v.dtype.kind in "biufcmM":
        v = np.sort(v)
        return int(len(v) > 0) + int(np.count_nonzero(v[1:] != v[:-1]))
    a = _arrow(nn) if v.dtype == object and len(nn) else None
    return int(pc.count_distinct(a).as_py()) if _text(a) else int(nn.nunique())

# %% [code]
#| export
def _facts(s: pd.Series, kind: str = "categorical", max_categories: int = 50) -> dict:
    """What the schema asks of one column, each counted once: rows, values present, distinct and blank values, the
    first value, the first 2,000 as text, the categories (a `categorical` column with at most `max_categories`
    values). Text goes through one pyarrow array: on 10M rows each pandas scan of Python strings costs ~0.4 s."""
    import pyarrow.compute as pc
    a = _arrow(s) if s.dtype == object or isinstance(s.dtype, pd.StringDtype) else None
    if _text(a):
        v = a.drop_null()
        d = pc.count_distinct(v).as_py() if len(v) else 0
        return {"rows": len(s), "valid": len(v), "distinct": d, "first": v[0].as_py() if len(v) else None,
                "blank": _blanks(v),
                "head": v.slice(0, 2000).to_pylist(), "values": None,
                "categories": sorted(pc.unique(v).to_pylist()) if kind == "categorical" and d <= max_categories else None}
    nn = s.dropna()
    d = _distinct(nn)
    few = kind == "categorical" and d <= max_categories
    return {"rows": len(s), "valid": len(nn), "distinct": d, "first": nn.iloc[0] if len(nn) else None,
            "blank": None, "head": nn.head(2000).astype(str).tolist(), "values": nn,   # blank: not text
            "categories": sorted({str(x) for x in pd.unique(nn)}) if few else None}

_ID_NAME = re.compile(r"(^|[_\W])(id|ids|key|uuid|guid|index|idx|no|number)$", re.I)

def column_role(name: str, s: pd.Series, kind: str, max_categories: int = 50, facts: dict | None = None) -> tuple[str, str]:
    """'feature', 'text', or why the column is dropped: 'empty', 'constant', 'identifier'; with the reason. `facts`:
    `_facts(s, kind, max_categories)` when the caller has them."""
    f = facts or _facts(s, kind, max_categories)
    n, d = f["valid"], f["distinct"]
    if n == 0: return "empty", "every value is missing"
    if d == 1: return "constant", f"a single value ({f['first']!r})"
    if kind == "categorical" and d > max_categories:
        words = float(np.mean([len(str(x).split()) for x in f["head"]]))
        if words >= 3: return "text", f"free text: {d} distinct values, {words:.1f} words on average"
        if n >= 20 and d >= 0.95 * n:
            return "identifier", f"{d / n:.0%} of {n} values distinct, short text"
    if kind == "numeric" and pd.api.types.is_integer_dtype(s) and n >= 20 and d == n:
        nn = f["values"]
        if _ID_NAME.search(str(name)) or nn.is_monotonic_increasing or nn.is_monotonic_decreasing:
            return "identifier", "every value distinct, " + (
                "named like an id" if _ID_NAME.search(str(name)) else "ordered like a row number"
            )
    return "feature", ""

def missing_share(s: pd.Series, facts: dict | None = None) -> float:
    "Share of missing values in `s`, blank text (empty or only spaces) counted as missing. `facts`: `_facts(s)`."
    if not len(s): return 0.0
    if s.dtype == object or isinstance(s.dtype, pd.StringDtype):
        f = facts or _facts(s)
        if f["blank"] is not None: return (f["rows"] - f["valid"] + f["blank"]) / f["rows"]   # text, by pyarrow
        miss = s.isna() | s.astype("string").str.strip().eq("").fillna(False).astype(bool)   # mixed types
        return float(miss.mean())
    return float(s.isna().mean())

def infer_schema(df: pd.DataFrame, target: str, max_categories: int = 50, task: str | None = None,
                 task_reason: str | None = None, drop_missing_above: float | None = None) -> dict:
    """The schema of `df`: per column its kind, dtype, nullability, range or categories, and role; the features and dropped
    columns.
    `drop_missing_above`: a feature with a larger share of missing values is not used (`role: mostly_empty`)."""
    if target not in df.columns:
        raise KeyError(f"project.target: column {target!r} not in the data; columns are {list(df.columns)}")
    cols, dropped = {}, {}
    for name, s in df.items():
        kind = column_kind(s)
        f = _facts(s, kind, max_categories)
        c = {"kind": kind, "dtype": str(s.dtype), "nullable": f["valid"] < f["rows"]}
        if kind == "numeric":
            c.update(min=float(s.min()), max=float(s.max())) if f["valid"] else c.update(min=None, max=None)
        elif kind == "categorical":
            c["categories"] = f["categories"]
        elif kind == "datetime" and f["valid"]:
            t = parse_dates(s)
            c.update(min=str(t.min()), max=str(t.max()))
        if name != target:
            c["role"], why = column_role(str(name), s, kind, max_categories, f)
            if c["role"] in ("feature", "text") and drop_missing_above is not None:
                share = missing_share(s, f)
                if share > drop_missing_above:
                    c["role"], c["missing_share"] = "mostly_empty", round(share, 4)
                    why = (
                        f"{share:.1%} of the values missing (above validate.max_missing_share = {drop_missing_above:g})"
                    )
            if c["role"] not in ("feature", "text"): dropped[str(name)] = f"{c['role']}: {why}"
            elif why: c["role_reason"] = why
        cols[str(name)] = c
    if task is None: task, task_reason = detect_task(df[target])
    return {"target": target, "task": task, "task_reason": task_reason, "columns": cols,
            "features": [c for c in cols if c != target and c not in dropped], "dropped": dropped}

# %% [code]
_df = pd.DataFrame({"x": [1.0, 2.0, None], "c": ["a", "b", "a"], "y": ["p", "q", "p"]})
_s = infer_schema(_df, "y")
test_eq(_s["features"], ["x", "c"])
test_eq(_s["task"], "binary")
test_eq(
    _s["columns"]["x"],
    {"kind": "numeric", "dtype": "float64", "nullable": True, "min": 1.0, "max": 2.0, "role": "feature"},
)
test_eq(_s["columns"]["c"]["categories"], ["a", "b"])
test_fail(lambda: infer_schema(_df, "nope"), contains="'nope' not in the data")
_n = 60
_wide = pd.DataFrame(
    {
        "row_id": range(_n),
        "code": [f"K{i:04d}" for i in range(_n)],
        "k": 1,
        "gone": None,
        "when": pd.date_range("2024-01-01", periods=_n, freq="D").strftime("%Y-%m-%d"),
        "note": [f"a note about item {i} today" for i in range(_n)],
        "v": np.arange(_n) % 7,
        "y": [0, 1] * (_n // 2),
    }
)
_ws = infer_schema(_wide, "y", task="binary", task_reason="given")
test_eq(_ws["features"], ["when", "note", "v"])
test_eq(
    {k: v.split(":")[0] for k, v in _ws["dropped"].items()},
    {"row_id": "identifier", "code": "identifier", "k": "constant", "gone": "empty"},
)
test_eq((_ws["columns"]["when"]["kind"], _ws["columns"]["note"]["role"]), ("datetime", "text"))
test_eq(_ws["columns"]["when"]["min"], "2024-01-01 00:00:00")
_sparse = pd.DataFrame(
    {
        "x": np.arange(40.0),
        "rare": [1.0, 2.0, 3.0] + [None] * 37,
        "blank": ["a", "b", "c"] + ["", " "] * 18 + [None],
        "y": [0, 1] * 20,
    }
)
test_eq(missing_share(_sparse["blank"]), 37 / 40)                       # blank text counts as missing
_ss = infer_schema(_sparse, "y", drop_missing_above=0.2)
test_eq(_ss["features"], ["x"])
test_eq((_ss["columns"]["rare"]["role"], _ss["columns"]["rare"]["missing_share"]), ("mostly_empty", 0.925))
assert _ss["dropped"]["blank"].startswith("mostly_empty: 92.5% of the values missing")
test_eq(infer_schema(_sparse, "y")["features"], ["x", "rare", "blank"])   # without the limit: kept, imputed
# distinct values and blank text by sorting or pyarrow count as pandas does, whatever the dtype
_kinds = {"f": [0.0, -0.0, np.nan, 2.5, 2.5], "i": [3, 1, 3, 2, 1], "b": [True, False, True, True, False],
          "t": ["a", None, "b", "a", " "], "mixed": [1, "1", None, 2.5, "x"], "cat": pd.Categorical(list("abcab")),
          "d": pd.to_datetime(["2020-01-01", None, "2020-01-01", "2021-01-01", "2020-01-01"]),
          "tz": pd.to_datetime(["2020-01-01", None, "2020-01-01", "2021-01-01", "2020-01-01"]).tz_localize("UTC"),
          "I": pd.array([1, None, 1, 2, 3], dtype="Int64"), "none": [None] * 5}
for _k, _v in _kinds.items():
    _col = pd.Series(_v)
    test_eq(_distinct(_col), _col.nunique())
    if _k in ("t", "mixed"):
        test_eq(missing_share(_col), float((_col.isna() | _col.astype("string").str.strip().eq("").fillna(False)).mean()))

# %% [markdown]
## Checking data against the schema

The schema dict becomes a [pandera](https://pandera.readthedocs.io) `DataFrameSchema`: per feature,
nullability, the training range for numbers and the allowed categories for text. Validation is lazy:
every failure is collected, then summarised per column and check into one message that names the
column, an offending value and the limit. `check_schema` is what monitoring reports as schema violations.

`pandera_schema` and `check_schema` are the contract that serving and monitoring check data against too, so they live in
`00a_contracts`; here they check the raw data against the schema just inferred.

# %% [code]
test_eq(check_schema(_df, _s), [])
test_eq(check_schema(_df.drop(columns="c"), _s), ["column 'c': missing"])
test_eq(check_schema(_df.assign(x=[0.5, 1, 1]), _s), ["column 'x': value 0.5 below the training minimum 1.0"])
test_eq(check_schema(_df.assign(x=[1.0, 9, 1]), _s), ["column 'x': value 9.0 above the training maximum 2.0"])
test_eq(check_schema(_df.assign(c=["a", "z", "b"]), _s), ["column 'c': unseen categories ['z']"])
test_eq(check_schema(_df.assign(c=["a", None, "b"]), _s), ["column 'c': 1 missing values, none expected"])
test_eq(check_schema(_df.assign(x=["a", "b", "c"]), _s), ["column 'x': expected numbers, got object"])

# %% [markdown]
## Data-quality gates

Each gate measures one thing and compares it with a limit from params.yaml. Its level comes from
`validate.gate_levels`: a failed `error` gate stops the pipeline with a message naming the column, the
value and the limit; a failed `warning` gate is written to `validation.json` (the run summary shows it)
and the run goes on; `off` skips it. The target gates (present, not constant) and "at least one usable
feature" are always errors.

A feature with too many missing values is not a reason to stop: imputation exists for missing features. The
missing-share gate's default level is `drop`: such a column is left out of the features (`role: mostly_empty`
in the schema, reported as a warning and on the front page); `warning` keeps it (imputed) and reports it,
`error` is the strict contract. A missing target stays an error.

Cross-validation needs every class in every fold: when the smallest class would have fewer rows in the
training split (its share, `1 - test - valid - batch`) than `train.cv_folds`, the `cv_folds` gate says so here,
naming the class and its count, before any model is trained. At level `warning` the train step lowers the
folds to what the data allows and prints that it did.

# %% [code]
#| export
class DataQualityError(ValueError):
    "The data failed one or more data-quality gates."

GATE_LEVELS = {
    "missing": "drop",
    "rows_per_class": "error",
    "duplicates": "warning",
    "min_rows": "error",
    "dropped_columns": "warning",
    "cv_folds": "error",
}

def drops_mostly_empty(levels: dict | None) -> bool:
    "Whether the missing-share gate's level (default `drop`) leaves mostly-empty feature columns out of the schema."
    return {**GATE_LEVELS, **(levels or {})}["missing"] == "drop"

def _cv_gate(y: pd.Series, train_share: float):
    "The class with the fewest expected training rows, its rows, and those expected in the training split."
    counts = y.value_counts()
    cls = counts.idxmin()
    return cls, int(counts.min()), int(np.floor(counts.min() * train_share))

def check_gate_levels(levels: dict | None) -> dict:
    "Each gate's level: `GATE_LEVELS` with `levels` (validate.gate_levels) over it, checked."
    levels = {**GATE_LEVELS, **(levels or {})}
    bad = sorted(set(levels) - set(GATE_LEVELS))
    if bad: raise ValueError(f"validate.gate_levels: unknown gates {bad}; expected some of {sorted(GATE_LEVELS)}")
    for k, v in levels.items():
        ok = ("error", "warning", "off", "drop") if k == "missing" else ("error", "warning", "off")
        if v not in ok:
            raise ValueError(f"validate.gate_levels.{k}: expected {', '.join(ok[:-1])} or {ok[-1]}, got {v!r}")
    return levels

def gate_record(levels: dict, key, name, column, value, limit, passed, detail=None) -> dict | None:
    "One measured gate as a result (gate, key, column, value, limit, passed, level), or None when its level is off."
    lvl = levels.get(key, "error")
    lvl = "warning" if lvl == "drop" else lvl         # the columns were dropped: what is left is reported
    if lvl == "off": return None
    return {
        "gate": name,
        "key": key,
        "column": column,
        "value": value,
        "limit": limit,
        "passed": bool(passed),
        "level": lvl,
        **({"detail": detail} if detail else {}),
    }

# %% [code]
test_eq(check_gate_levels({"duplicates": "error"})["duplicates"], "error")
test_fail(lambda: check_gate_levels({"min_rows": "drop"}), contains="validate.gate_levels.min_rows: expected error,")
_lv = check_gate_levels(None)
test_eq(gate_record(_lv, "missing", "share of missing values", "x", 0.3, 0.2, False)["level"], "warning")   # drop
test_eq(gate_record({**_lv, "duplicates": "off"}, "duplicates", "duplicate rows", None, 0.1, 0.05, False), None)
test_eq(gate_record(_lv, "target", "t", "y", 0, 0, True, "why")["detail"], "why")

# %% [code]
#| export
def target_gates(y: pd.Series, schema: dict | None, min_rows: int = 20, min_rows_per_class: int = 10,
                 cv_folds: int | None = None, train_share: float | None = None) -> list[tuple]:
    """The target's gates as measured (key, name, column, value, limit, passed[, detail]): no missing value, not
    constant, enough rows; for classification enough rows per class, also in the training split (with `cv_folds`)."""
    t = y.name
    out = [("target", "target has no missing values", t, int(y.isna().sum()), 0, y.isna().sum() == 0),
           ("target", "target is not constant", t, int(y.nunique()), 2, y.nunique() >= 2),
           ("min_rows", "rows with a target", None, int(y.notna().sum()), min_rows, y.notna().sum() >= min_rows)]
    if schema is not None and schema.get("task") == "regression": return out
    counts = y.value_counts()
    if len(counts):
        out.append(("rows_per_class", "rows per class", t, int(counts.min()), min_rows_per_class,
                    counts.min() >= min_rows_per_class))
    if len(counts) and cv_folds and train_share:
        cls, n, k = _cv_gate(y.dropna(), train_share)
        fit = max(min(k, cv_folds), 2)
        out.append((
            "cv_folds", "training rows per class for cross-validation", t, k, cv_folds, k >= cv_folds,
            f"class {cls!r} has {n} rows, about {k} of them in the training split ({train_share:.0%} of the rows), "
            f"fewer than train.cv_folds = {cv_folds}: "
            + (f"set train.cv_folds to {fit} or less, " if k >= 2 else "")
            + "gather more rows of that class, or give the training split a larger share (split.*_size)",
        ))
    return out

def column_gates(df: pd.DataFrame, features: list, schema: dict | None, max_missing_share: float = 0.2,
                 max_duplicate_share: float = 0.05, duplicated: pd.Series | None = None) -> list[tuple]:
    """The columns' gates as measured: each feature's share of missing values, whether any feature is usable and which
    columns are not (with a schema), and the share of duplicate rows (from `duplicated`, `duplicate_rows(df)`, if given)."""
    shares = {name: float(df[name].isna().mean()) for name in features}    # column by column: no copy of the frame
    out = [("missing", "share of missing values", str(name), round(share, 4), max_missing_share,
            share <= max_missing_share) for name, share in shares.items()]
    if schema is not None:
        out.append(("features", "usable features", None, len(features), 1, len(features) >= 1))
        out += [("dropped_columns", "column not used as a feature", name, why, "a usable feature", False)
                for name, why in schema.get("dropped", {}).items()]
    dup = float((duplicate_rows(df) if duplicated is None else duplicated).mean())
    out.append(("duplicates", "share of duplicate rows", None, round(dup, 4), max_duplicate_share,
                dup <= max_duplicate_share))
    return out

# %% [code]
_y = pd.Series(["a", "a", "b", None], name="y")
test_eq([m[:6] for m in target_gates(_y, None, min_rows=2, min_rows_per_class=2)],
        [("target", "target has no missing values", "y", 1, 0, False),
         ("target", "target is not constant", "y", 2, 2, True),
         ("min_rows", "rows with a target", None, 3, 2, True), ("rows_per_class", "rows per class", "y", 1, 2, False)])
test_eq(len(target_gates(pd.Series([1.0, 2.0], name="y"), {"task": "regression"})), 3)   # no classes to count
_cg = column_gates(pd.DataFrame({"x": [1, None, 1, 1], "y": 0}), ["x"], {"dropped": {"id": "identifier-like"}})
test_eq([(m[0], m[2], m[3], m[5]) for m in _cg], [("missing", "x", 0.25, False), ("features", None, 1, True),
        ("dropped_columns", "id", "identifier-like", False), ("duplicates", None, 0.5, False)])
# a mask the caller has already counted is used as it is
test_eq(column_gates(pd.DataFrame({"x": [1, 1]}), ["x"], None, duplicated=pd.Series([False, False]))[-1][3], 0.0)

# %% [code]
#| export
def quality_gates(
    df: pd.DataFrame,
    target: str,
    max_missing_share: float = 0.2,
    min_rows_per_class: int = 10,
    max_duplicate_share: float = 0.05,
    schema: dict | None = None,
    min_rows: int = 20,
    levels: dict | None = None,
    cv_folds: int | None = None,
    train_share: float | None = None,
    duplicated: pd.Series | None = None,
) -> list[dict]:
    """Measure each gate; every result has gate, key, column, value, limit, passed and level ('error' or 'warning').
    With `cv_folds` and `train_share` (classification): whether every class has enough rows in the training split.
    `duplicated`: `duplicate_rows(df)` when the caller has it already (it is the costliest gate on large data)."""
    levels = check_gate_levels(levels)
    feats = schema["features"] if schema else [c for c in df.columns if c != target]
    measured = target_gates(df[target], schema, min_rows, min_rows_per_class, cv_folds, train_share) + \
        column_gates(df, feats, schema, max_missing_share, max_duplicate_share, duplicated)
    return [g for m in measured if (g := gate_record(levels, *m)) is not None]

def raise_on_failed(gates: list[dict], source: str = "data", schema: dict | None = None):
    "Raise DataQualityError listing every failed error-level gate."
    failed = [g for g in gates if not g["passed"] and g["level"] == "error"]
    if failed:
        lines = [
            (
                f"- {g['gate']}: column {g['column']!r} measured {g['value']}, limit {g['limit']}"
                if g["column"] is not None
                else f"- {g['gate']}: measured {g['value']}, limit {g['limit']}"
            )
            + (f" ({g['detail']})" if g.get("detail") else "")
            for g in failed
        ]
        if schema and any(g["key"] == "features" for g in failed):
            lines.append(
                "  (no usable feature; dropped: "
                + "; ".join(f"{k}: {v}" for k, v in schema.get("dropped", {}).items())
                + ")"
            )
        raise DataQualityError(f"{source} failed {len(failed)} data-quality gate(s):\n" + "\n".join(lines))

def failed_warnings(gates: list[dict]) -> list[str]:
    "One line per failed warning-level gate."
    return [
        f"{g['gate']}: "
        + (f"column {g['column']!r} " if g["column"] is not None else "")
        + f"measured {g['value']}, limit {g['limit']}"
        + (f" ({g['detail']})" if g.get("detail") else "")
        for g in gates
        if not g["passed"] and g["level"] == "warning"
    ]

# %% [code]
_g = quality_gates(_df, "y", max_missing_share=0.5, min_rows_per_class=1, min_rows=3)
assert all(g["passed"] for g in _g if g["level"] == "error")
_g = quality_gates(_df, "y", max_missing_share=0.1, min_rows_per_class=1, min_rows=3, levels={"missing": "error"})
test_fail(lambda: raise_on_failed(_g, "raw.parquet"), contains="column 'x' measured 0.3333, limit 0.1")
test_fail(
    lambda: raise_on_failed(quality_gates(_df.assign(y="p"), "y", 1, 1, min_rows=1)), contains="target is not constant"
)
_g = quality_gates(_df, "y", 0.1, 1, min_rows=3, levels={"missing": "warning"})
raise_on_failed(_g)                                                     # a warning does not stop the run...
test_eq(failed_warnings(_g), ["share of missing values: column 'x' measured 0.3333, limit 0.1"])   # ...it is reported
test_eq(
    [g["key"] for g in quality_gates(_df, "y", 0.1, 1, min_rows=3, levels={"missing": "off"})],
    ["target", "target", "min_rows", "rows_per_class", "duplicates"],
)
test_fail(lambda: quality_gates(_df, "y", levels={"nope": "error"}), contains="unknown gates ['nope']")
test_fail(
    lambda: quality_gates(_df, "y", levels={"duplicates": "drop"}),
    contains="expected error, warning or off, got 'drop'",
)
assert drops_mostly_empty(None) and not drops_mostly_empty({"missing": "error"})
# 8 rows of "b": about 3 in a 45% training split
_few = pd.DataFrame({"x": range(40), "y": ["a"] * 32 + ["b"] * 8})
_g = quality_gates(_few, "y", min_rows_per_class=1, min_rows=3, cv_folds=5, train_share=0.45)
test_fail(
    lambda: raise_on_failed(_g),
    contains=(
        "class 'b' has 8 rows, about 3 of them in the training split (45% of the rows), "
        "fewer than train.cv_folds = 5: set train.cv_folds to 3 or less"
    ),
)
assert all(
    g["passed"] for g in quality_gates(_few, "y", min_rows_per_class=1, min_rows=3, cv_folds=3, train_share=0.45)
)
_only = pd.DataFrame({"id": range(30), "k": 1, "y": [0, 1, 2] * 10})
_os = infer_schema(_only, "y")
test_fail(
    lambda: raise_on_failed(quality_gates(_only, "y", schema=_os, min_rows_per_class=1), schema=_os),
    contains="no usable feature",
)

# %% [markdown]
## Profile

ydata-profiling, installed as its maintained successor `fg-data-profiling` (`import data_profiling`).
Its usage analytics are switched off before it is imported: a run makes no outbound call.

On large data even ydata-profiling's minimal mode is slow and memory-hungry (about 30 s on 1M rows x 21
columns; at 10M rows the validate step was stopped at 12 GiB after 8 minutes). Above `profile_sample_rows`
rows the report has two parts in one page: exact statistics of **every** column on **all** rows
(missing, distinct and blank values, mean, std, min, quartiles, max, the most frequent values),
computed by pyarrow one column at a time (`column_statistics`, ~5 s on 1M rows), and ydata-profiling's
report (histograms, correlations, duplicate rows, missing-value patterns, and the pairwise interaction
plots if asked for) on a random sample whose size the page states.

# %% [code]
#| export
def column_statistics(df: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Exact statistics of every column of `df`, computed one column at a time by pyarrow (no copy of the frame): type,
    missing and distinct values, blank text; mean, std, min, quartiles, max of numbers; the `top` most frequent values."""
    import pyarrow as pa, pyarrow.compute as pc
    out = []
    for name, s in df.items():
        a, n = _arrow(s), len(s)
        if a is None: a = pa.array(s.astype("string"), from_pandas=True)     # mixed types: as text
        r = {"column": str(name), "dtype": str(s.dtype), "missing": a.null_count,
             "missing %": round(100 * a.null_count / n, 2) if n else 0.0,
             "distinct": pc.count_distinct(a).as_py() if _text(a) else _distinct(s)}
        if _text(a):
            r["blank text"] = _blanks(a)
        if (pa.types.is_integer(a.type) or pa.types.is_floating(a.type)) and a.null_count < n:
            q = pc.quantile(a, q=[0.25, 0.5, 0.75]).to_pylist()
            mm = pc.min_max(a).as_py()
            r.update(mean=pc.mean(a).as_py(), std=pc.stddev(a, ddof=1).as_py(), min=mm["min"], p25=q[0], median=q[1],
                     p75=q[2], max=mm["max"], zeros=pc.sum(pc.equal(a, 0)).as_py())
        elif pa.types.is_timestamp(a.type) or pa.types.is_date(a.type):
            mm = pc.min_max(a).as_py(); r.update(min=str(mm["min"]), max=str(mm["max"]))
        elif a.null_count < n:
            vc = pc.value_counts(a.drop_null())
            counts = vc.field("counts").to_numpy()
            best = np.argsort(-counts, kind="stable")[:top]
            values = vc.field("values").take(pa.array(best)).to_pylist()
            r["most frequent"] = ", ".join(f"{v!r} ({int(counts[i])})" for v, i in zip(values, best))
        out.append(r)
    return pd.DataFrame(out).set_index("column")

# %% [code]
_mixed = pd.DataFrame({"x": [1.0, np.nan, 3.0, 3.0], "n": [1, 2, 2, 0], "t": ["a", None, " ", "a"],
                       "m": [1, "b", None, 2.5], "d": pd.to_datetime(["2020-01-01", None, "2021-05-01", "2020-03-01"]),
                       "e": [None] * 4})
_st = column_statistics(_mixed)
for _c in ("x", "n"):   # the same figures as pandas
    _s = _mixed[_c]
    test_eq(_st.loc[_c, ["missing", "distinct"]].tolist(), [_s.isna().sum(), _s.nunique()])
    test_close(_st.loc[_c, ["mean", "std", "min", "p25", "median", "p75", "max"]].astype(float).tolist(),
               [_s.mean(), _s.std(), _s.min(), *_s.quantile([0.25, 0.5, 0.75]), _s.max()])
test_eq(_st.loc["n", "zeros"], 1)
test_eq(_st.loc["t", ["missing", "distinct", "blank text", "most frequent"]].tolist(), [1, 2, 1, "'a' (2), ' ' (1)"])
test_eq(_st.loc["m", "distinct"], 3)                            # mixed types are counted as text
test_eq((_st.loc["d", "min"], _st.loc["d", "max"]), ("2020-01-01 00:00:00", "2021-05-01 00:00:00"))
test_eq(_st.loc["e", ["missing", "missing %", "distinct"]].tolist(), [4, 100.0, 0])   # nothing but missing values
_st

# %% [code]
#| export
def _frame_page(title: str, parts: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{html.escape(h)}</h2><iframe srcdoc=\"{html.escape(doc, quote=True)}\" "
                   "style='width:100%;height:90vh;border:1px solid #ccc'></iframe>" for h, doc in parts)
    return html_page(title, f"<h1>{html.escape(title)}</h1>{body}", "body{font-family:system-ui,sans-serif;margin:1em}")

def profile_report(df: pd.DataFrame, dest, title: str = "Data profile", minimal: bool = False,
                   sample_rows: int | None = None, seed: int = 42, interactions: bool = False) -> dict:
    """Write a ydata-profiling HTML report of `df` to `dest` atomically; above `sample_rows` rows, exact statistics of
    every column (`column_statistics`) and ydata-profiling on a sample. Returns what was computed on what."""
    os.environ["YDATA_PROFILING_NO_ANALYTICS"] = "True"
    from data_profiling import ProfileReport
    n = len(df)
    if minimal or not sample_rows or n <= sample_rows:
        # interactions (a scatter plot per pair of numeric columns) cost about 1 s per pair: on only when asked
        extra = {} if minimal else {"interactions": {"continuous": interactions}}
        page = ProfileReport(df, title=title, minimal=minimal, progress_bar=False, **extra).to_html()
        info = {"rows": n, "mode": "minimal" if minimal else "full", "sample_rows": None}
    else:
        stats = column_statistics(df).to_html(na_rep="", float_format="{:.6g}".format, border=0)
        full = html_page(f"{title}: exact statistics of every column on all {n:,} rows", stats,
                         "body{font-family:system-ui,sans-serif} td,th{padding:2px 8px;text-align:right}")
        sample = df.sample(sample_rows, random_state=seed)
        desc = f"random sample of {sample_rows:,} of {n:,} rows (seed {seed})"
        costly = ProfileReport(
            sample,
            title=f"{title}: histograms, correlations, duplicates, missing-value patterns on a {desc}",
            progress_bar=False,
            minimal=True,
            correlations={"auto": {"calculate": True}},
            duplicates={"head": 10},
            missing_diagrams={"bar": True, "matrix": True, "heatmap": True},
            interactions={"continuous": interactions},
            dataset={"description": f"Computed on a {desc}; column statistics on all rows are in the first part."},
        ).to_html()
        costs = "histograms, correlations, " + ("interactions, " if interactions else "") + \
            "duplicate rows and missing-value patterns"
        page = _frame_page(title, [(f"Part 1: exact statistics of every column, on all {n:,} rows", full),
                                   (f"Part 2: {costs}, on a {desc}", costly)])
        info = {
            "rows": n,
            "mode": "exact column statistics on all rows, costly parts on a sample",
            "sample_rows": sample_rows,
            "sample_seed": seed,
            "on_the_sample": costs,
        }
    with atomic_path(dest) as tmp: Path(tmp).write_text(page)
    return {"path": str(dest), **info}

# %% [code]
with tempfile.TemporaryDirectory() as d:
    p = profile_report(_df, Path(d)/"p.html", minimal=True)
    assert "<html" in Path(p["path"]).read_text()[:2000].lower()
    _big = pd.DataFrame({"a": np.arange(400) % 13, "b": np.arange(400) * 0.5, "y": ["p", "q"] * 200})
    p = profile_report(_big, Path(d)/"s.html", sample_rows=100)
    test_eq(p["sample_rows"], 100)
    _page = Path(p["path"]).read_text()
    assert "random sample of 100 of 400 rows" in _page
    assert "exact statistics of every column on all 400 rows" in _page and "&lt;td&gt;99.75&lt;/td&gt;" in _page  # b's mean
    # the full profile draws the pairwise interaction plots (about 1 s a pair on real data) only when asked
    _two = pd.DataFrame({"a": np.arange(60) % 7, "b": np.arange(60) * 0.5, "y": ["p", "q"] * 30})
    for _inter in (False, True):
        p = profile_report(_two, Path(d)/"f.html", interactions=_inter)
        test_eq("id=interactions" in Path(p["path"]).read_text(), _inter)

# %% [markdown]
## Run

# %% [code]
os.chdir(find_root())
raw_file = Path(raw_dir)/"raw.parquet"
raw = pd.read_parquet(require(raw_file, "run `mlops-nb step ingest` first"))
manifest = read_json(Path(raw_dir)/"manifest.json") if (Path(raw_dir)/"manifest.json").exists() else {}
same_target = manifest.get("target") == target
schema = infer_schema(raw, target, max_categories, task=manifest.get("task") if same_target else None,
                      task_reason=manifest.get("task_reason") if same_target else None,
                      drop_missing_above=max_missing_share if drops_mostly_empty(gate_levels) else None)
# too little data for cross-validation is said here, where it can be acted on: train.cv_folds and the split shares
later = load_params("params.yaml")
cv_folds, shares = later.get("train", {}).get("cv_folds"), [
    later.get("split", {}).get(f"{k}_size") for k in ("test", "valid", "batch")
]
train_share = 1 - sum(shares) if None not in shares else None
if cv_folds is None or train_share is None:
    print("note: train.cv_folds or a split share is not in params.yaml; the cross-validation gate is skipped")
repeated = duplicate_rows(raw)          # once: the duplicates gate and the row flow both count it
gates = quality_gates(raw, target, max_missing_share, min_rows_per_class, max_duplicate_share, schema=schema,
                      min_rows=min_rows, levels=gate_levels, cv_folds=cv_folds, train_share=train_share,
                      duplicated=repeated)
warnings = failed_warnings(gates)
write_json({"data_sha256": frame_sha256(raw), "gates": gates, "warnings": warnings,
            "passed": not any(not g["passed"] and g["level"] == "error" for g in gates)}, validation_path)
raise_on_failed(gates, str(raw_file), schema)
violations = check_schema(raw, schema)           # the data it came from conforms to the contract (pandera)
assert not violations, violations
write_json(schema, schema_path)
print(f"task: {schema['task']} ({schema['task_reason']})")
print(f"features: {len(schema['features'])}; not used: {schema['dropped'] or 'none'}")
for w in warnings: print(f"warning: {w}")
dup = next((g for g in gates if g["key"] == "duplicates"), None)
if dup and not dup["passed"]:
    print(
        f"note: repeated rows are kept (wrangle.drop_duplicates: false); {dup['value']:.1%} of the rows repeat an"
        " earlier one"
    )
profile = profile_report(raw, profile_path, title=f"Profile of {raw_file}", minimal=profile_minimal,
                         sample_rows=profile_sample_rows, seed=seed, interactions=profile_interactions)
rows = row_flow(len(raw), len(raw), with_target=int(raw[target].notna().sum()),
                duplicates=int(repeated.sum()))   # validate removes nothing; it measures
record_step(
    lineage_dir,
    "validate",
    {
        "target": target,
        "max_missing_share": max_missing_share,
        "min_rows_per_class": min_rows_per_class,
        "max_duplicate_share": max_duplicate_share,
        "min_rows": min_rows,
        "gate_levels": gate_levels,
        "cv_folds": cv_folds,
        "train_share": train_share,
    },
    inputs=[raw_file],
    outputs=[schema_path, validation_path, profile_path],
    metrics={
        "gates_failed": sum(not g["passed"] and g["level"] == "error" for g in gates),
        "warnings": len(warnings),
        "features": len(schema["features"]),
    },
    profile=profile,
    rows=rows,
    mostly_empty={c: v["missing_share"] for c, v in schema["columns"].items() if v.get("role") == "mostly_empty"},
)
pd.DataFrame(gates)

