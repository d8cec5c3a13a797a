# %% [markdown]
# Split
> Train, validation, test and a held-back batch: random, stratified by class, by group or by time; each split saved with its hash, and a check that reports rows appearing in more than one split.

# %% [code]
#| default_exp split

# %% [code]
#| export
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mlops_nb.core import frame_sha256

# %% [code]
from fastcore.test import test_eq, test_fail
import os
from pathlib import Path
from mlops_nb.core import find_root, read_json, record_step, require, row_flow, write_json, write_parquet

# %% [code] tags=['parameters']
target: str = "species"  # the column to predict (project.target)
seed: int = 42  # project.seed
clean_path: str = "data/interim/clean.parquet"  # the cleaned data (from wrangle)
schema_path: str = "data/interim/schema.json"  # the schema (from validate)
split_dir: str = "data/processed"  # one Parquet file per split and splits.json (rows, hashes, overlap)
lineage_dir: str = "reports/lineage"  # lineage records
test_size: float = 0.2  # share of rows held out for evaluation and acceptance
valid_size: float = 0.15  # share for validation metrics (0: no validation split)
batch_size: float = 0.2  # share held back as the "new" batch for serving and monitoring
method: str = "auto"  # auto (stratified for classes, random for regression) | random | stratified | group | time
group_column: str | None = None  # method group: rows of one group (a patient, a customer) stay in one split
time_column: str | None = None  # method time: oldest rows train, then validation, test, and the newest are the batch

# %% [markdown]
## Splitting

The test split is for evaluation and acceptance; the batch split is held back and plays the new
data that arrives after deployment: the serve step scores it, the monitor step compares it with
the training split. Shares are of all rows. `group` keeps every row of a group in one split (shares
are then approximate: whole groups are assigned); `time` orders rows by `time_column`, so the model is
tested on data newer than what it learned from.

# %% [code]
#| export
SPLITS = ("train", "valid", "test", "batch")
METHODS = ("auto", "random", "stratified", "group", "time")

def _shares(test_size, batch_size, valid_size) -> dict:
    sizes = {"batch": batch_size, "test": test_size, "valid": valid_size}
    for name, v in sizes.items():
        if not (0 < v < 1 or (name == "valid" and v == 0)):
            raise ValueError(f"split.{name}_size: expected a share between 0 and 1, got {v}")
    if sum(sizes.values()) >= 0.9:
        raise ValueError(
            f"split: test_size + valid_size + batch_size = {sum(sizes.values()):.2f} leaves too little to train on"
            " (expected < 0.9)"
        )
    return sizes

def _by_order(df: pd.DataFrame, order: np.ndarray, sizes: dict, sizes_of=None) -> dict:
    """Cut the rows (or groups), in `order`, into train, valid, test, batch by their shares of rows (`sizes_of`: rows per
    group)."""
    w = np.ones(len(order)) if sizes_of is None else np.asarray(sizes_of, dtype=float)[order]
    cum = np.concatenate([[0.0], np.cumsum(w) / w.sum()])
    names = [n for n in ("train", "valid", "test", "batch") if n == "train" or sizes[n] > 0]
    edges, e = [], 1.0 - sizes["valid"] - sizes["test"] - sizes["batch"]
    for n in names[1:]: edges.append(e); e += sizes[n]
    cuts = [0] + [int(np.argmin(np.abs(cum - x))) for x in edges] + [len(order)]
    for i in range(1, len(cuts) - 1):                       # every split gets at least one row or group
        cuts[i] = min(max(cuts[i], cuts[i - 1] + 1), len(order) - (len(cuts) - 1 - i))
    return {n: order[cuts[i]:cuts[i + 1]] for i, n in enumerate(names)}

def split_frame(df: pd.DataFrame, target: str, test_size: float = 0.2, batch_size: float = 0.2,
                seed: int = 42, stratify: bool = True, valid_size: float = 0.0, method: str | None = None,
                group_column: str | None = None, time_column: str | None = None) -> dict[str, pd.DataFrame]:
    """Split `df` into train, (valid,) test and batch frames, shares of all rows. `method`: random, stratified (on
    `target`),
    group (whole groups of `group_column`) or time (ordered by `time_column`); None or auto: stratified when `stratify`,
    else random."""
    sizes = _shares(test_size, batch_size, valid_size)
    method = method or "auto"
    if method not in METHODS: raise ValueError(f"split.method: expected one of {list(METHODS)}, got {method!r}")
    if method == "auto": method = "stratified" if stratify else "random"
    if method in ("random", "stratified"):
        # positions are split, rows taken once at the end; classes as sorted integer codes (np.unique's order): fast on millions
        codes = pd.factorize(df[target], sort=True)[0] if method == "stratified" else None
        if codes is not None and np.bincount(codes[codes >= 0]).min() < 2:
            counts = df[target].value_counts()
            raise ValueError(f"split.method: stratified needs at least 2 rows per class of {target!r}; "
                             f"{counts.idxmin()!r} has {counts.min()} (use random)")
        out, rest, left = {}, np.arange(len(df)), 1.0
        for name, share in sizes.items():
            if share == 0: continue
            rest, out[name] = train_test_split(rest, test_size=share / left, random_state=seed,
                                               stratify=codes[rest] if codes is not None else None)
            left -= share
        out["train"] = rest
        return {k: df.iloc[out[k]].reset_index(drop=True) for k in SPLITS if k in out}
    col = group_column if method == "group" else time_column
    if not col: raise ValueError(f"split.{method}_column: method {method!r} needs the column to split by")
    if col not in df.columns:
        raise ValueError(f"split.{method}_column: column {col!r} is not in the data; columns are {list(df.columns)}")
    if col == target: raise ValueError(f"split.{method}_column: cannot split by the target {target!r}")
    if method == "group":
        g = df[col].astype(object).where(df[col].notna(), "\x00missing")
        codes, uniq = pd.factorize(g)
        if len(uniq) < 4:
            raise ValueError(
                f"split.group_column: {col!r} has {len(uniq)} groups; at least 4 are needed for train, validation, test"
                " and batch"
            )
        order = np.random.default_rng(seed).permutation(len(uniq))
        counts = np.bincount(codes, minlength=len(uniq))
        parts = _by_order(df, order, sizes, sizes_of=counts)
        return {k: df[np.isin(codes, v)].reset_index(drop=True) for k, v in parts.items()}
    from mlops_nb.contracts import parse_dates
    t = parse_dates(df[col])
    if t.isna().all(): raise ValueError(f"split.time_column: column {col!r} holds no dates or times")
    # NaT (smallest) first: into train
    order = np.argsort(t.to_numpy(dtype="datetime64[ns]").astype("int64"), kind="stable")
    parts = _by_order(df, order, sizes)
    return {k: df.iloc[v].reset_index(drop=True) for k, v in parts.items()}

# %% [code]
_df = pd.DataFrame({"x": range(100), "y": ["a"] * 70 + ["b"] * 30, "g": np.arange(100) // 5,
                    "t": pd.date_range("2024-01-01", periods=100, freq="h")[::-1].astype(str)})
_s = split_frame(_df, "y", 0.2, 0.2, seed=0)
test_eq({k: len(v) for k, v in _s.items()}, {"train": 60, "test": 20, "batch": 20})
test_eq({k: int((v.y == "b").sum()) for k, v in _s.items()}, {"train": 18, "test": 6, "batch": 6})
_s = split_frame(_df, "y", 0.2, 0.2, seed=0, valid_size=0.1)
test_eq({k: len(v) for k, v in _s.items()}, {"train": 50, "valid": 10, "test": 20, "batch": 20})
test_eq(sorted(pd.concat(_s.values()).x), list(range(100)))     # every row in exactly one split
test_fail(lambda: split_frame(_df, "y", 0.5, 0.5), contains="leaves too little")
test_fail(lambda: split_frame(_df, "y", 1.5, 0.1), contains="split.test_size")
_g = split_frame(_df, "y", 0.2, 0.2, seed=0, valid_size=0.1, method="group", group_column="g")
test_eq(sorted(pd.concat(_g.values()).x), list(range(100)))
test_eq(sum(len(set(_g[a].g) & set(_g[b].g)) for a in _g for b in _g if a < b), 0)   # no group in two splits
test_eq({k: len(v) for k, v in _g.items()}, {"train": 50, "valid": 10, "test": 20, "batch": 20})
_t = split_frame(_df, "y", 0.2, 0.2, seed=0, valid_size=0.1, method="time", time_column="t")
# oldest train, newest batch
assert _t["train"].t.max() < _t["valid"].t.min() and _t["test"].t.max() < _t["batch"].t.min()
test_eq({k: len(v) for k, v in _t.items()}, {"train": 50, "valid": 10, "test": 20, "batch": 20})
test_fail(lambda: split_frame(_df, "y", method="group"), contains="split.group_column")
test_fail(lambda: split_frame(_df, "y", method="time", time_column="nope"), contains="'nope' is not in the data")
test_fail(lambda: split_frame(_df, "y", method="shuffle"), contains="split.method")

# %% [markdown]
## Overlap and hashes

A row that sits in two splits (the same values in every column, or the same features) makes the test
score optimistic. Rows are compared by a hash of their values, so the check is fast on millions of rows;
the report names the pairs of splits, the count and a few example rows. Every split is saved with the
SHA-256 of its content in `splits.json`.

# %% [code]
#| export
def _row_hashes(df: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(df, index=False).to_numpy()

def feature_hashes(splits: dict[str, pd.DataFrame], target: str) -> dict[str, np.ndarray]:
    "Per split, a 64-bit hash of each row's features (computed once, shared by the checks below)."
    return {k: _row_hashes(v.drop(columns=[target])) for k, v in splits.items()}

def overlap_report(splits: dict[str, pd.DataFrame], target: str, examples: int = 3, hashes: dict | None = None,
                   pairs=None) -> dict:
    """Per pair of splits (all, or those in `pairs` such as 'train/test'): rows whose features appear in both, with a few
    examples."""
    hashes = hashes or feature_hashes(splits, target)
    names, out = list(splits), {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if pairs is not None and f"{a}/{b}" not in pairs: continue
            common = np.intersect1d(hashes[a], hashes[b])
            if not len(common): continue
            rows = splits[a][np.isin(hashes[a], common)].head(examples)
            out[f"{a}/{b}"] = {"rows": int(np.isin(hashes[b], common).sum()), "distinct": int(len(common)),
                               "examples": rows.astype(object).where(rows.notna(), None).to_dict("records")}
    return out

def leaked_rows(splits: dict[str, pd.DataFrame], target: str, hashes: dict | None = None) -> dict[str, int]:
    "For each pair of splits, how many distinct feature rows appear in both."
    hashes = {k: np.unique(v) for k, v in (hashes or feature_hashes(splits, target)).items()}
    names = list(hashes)
    return {f"{a}/{b}": int(len(np.intersect1d(hashes[a], hashes[b], assume_unique=True)))
            for i, a in enumerate(names) for b in names[i+1:]}

def split_manifest(splits: dict[str, pd.DataFrame], method: str, **params) -> dict:
    "Rows and content hash of every split, with the method and its parameters."
    return {
        "method": method,
        **params,
        "splits": {
            k: {"file": f"{k}.parquet", "rows": int(len(v)), "sha256": frame_sha256(v)} for k, v in splits.items()
        },
    }

# %% [code]
_s = split_frame(_df, "y", 0.2, 0.2, seed=0)
test_eq(leaked_rows(_s, "y"), {"train/test": 0, "train/batch": 0, "test/batch": 0})
test_eq(leaked_rows({"train": _df, "test": _df.head(3)}, "y"), {"train/test": 3})
_o = overlap_report({"train": _df, "test": _df.head(3), "batch": _df.tail(2)}, "y")
test_eq({k: v["rows"] for k, v in _o.items()}, {"train/test": 3, "train/batch": 2})
test_eq(_o["train/test"]["examples"][0]["x"], 0)
test_eq(
    list(overlap_report({"train": _df, "test": _df.head(3), "batch": _df.tail(2)}, "y", pairs=["train/batch"])),
    ["train/batch"],
)
_m = split_manifest(_s, "stratified", seed=0)
test_eq(_m["splits"]["test"]["rows"], 20)
test_eq(_m["splits"]["test"]["sha256"], frame_sha256(_s["test"]))

# %% [markdown]
## Run

# %% [code]
os.chdir(find_root())
df = pd.read_parquet(require(clean_path, "run `mlops-nb step wrangle` first"))
schema = read_json(require(schema_path, "run `mlops-nb step validate` first"))
splits = split_frame(
    df,
    target,
    test_size,
    batch_size,
    seed,
    stratify=schema["task"] != "regression",
    valid_size=valid_size,
    method=method,
    group_column=group_column,
    time_column=time_column,
)
used = method if method != "auto" else ("stratified" if schema["task"] != "regression" else "random")
hashes = feature_hashes(splits, target)
leaks = leaked_rows(splits, target, hashes)
# examples only where there is overlap
overlap = overlap_report(splits, target, hashes=hashes, pairs=[p for p, v in leaks.items() if v])
for name, frame in splits.items(): write_parquet(frame, Path(split_dir)/f"{name}.parquet")
manifest = split_manifest(splits, used, seed=seed, test_size=test_size, valid_size=valid_size, batch_size=batch_size,
                          group_column=group_column, time_column=time_column)
manifest["overlap"] = overlap
write_json(manifest, Path(split_dir)/"splits.json")
record_step(
    lineage_dir,
    "split",
    {
        "seed": seed,
        "method": used,
        "test_size": test_size,
        "valid_size": valid_size,
        "batch_size": batch_size,
        "group_column": group_column,
        "time_column": time_column,
    },
    inputs=[clean_path],
    outputs=[split_dir],
    metrics={**{f"rows_{k}": len(v) for k, v in splits.items()}, **{f"leaked_{k}": v for k, v in leaks.items()}},
    splits=manifest["splits"],
    rows=row_flow(len(df), sum(len(v) for v in splits.values()), splits={k: len(v) for k, v in splits.items()}),
)
print(
    f"method: {used}; "
    + ", ".join(f"{k} {v['rows']} rows (sha256 {v['sha256'][:12]})" for k, v in manifest["splits"].items())
)
for pair, o in overlap.items():
    print(
        f"warning: {o['rows']} rows of {pair.split('/')[1]} have the same features as rows of {pair.split('/')[0]},"
        f" e.g. {o['examples'][0]}"
    )
(
    pd.DataFrame({k: v[target].value_counts() for k, v in splits.items()})
    if schema["task"] != "regression"
    else pd.DataFrame(manifest["splits"]).T
)

