# %% [markdown]
# Split
> Train, test and a held-back batch, stratified by class, with a check that no row leaks between them.

# %% [code]
#| default_exp split

# %% [code]
#| export
from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

# %% [code]
from fastcore.test import test_eq, test_fail
import os
from pathlib import Path
from mlops_nb.core import find_root, read_json, record_step, require, write_parquet

# %% [code] tags=['parameters']
target = "species"
seed = 42
clean_path = "data/interim/clean.parquet"
schema_path = "data/interim/schema.json"
split_dir = "data/processed"
lineage_dir = "reports/lineage"
test_size = 0.2
valid_size = 0.15
batch_size = 0.2

# %% [markdown]
## Splitting

The test split is for evaluation and acceptance; the batch split is held back and plays the new
data that arrives after deployment: the serve step scores it, the monitor step compares it with
the training split.

# %% [code]
#| export
SPLITS = ("train", "valid", "test", "batch")

def split_frame(df: pd.DataFrame, target: str, test_size: float = 0.2, batch_size: float = 0.2,
                seed: int = 42, stratify: bool = True, valid_size: float = 0.0) -> dict[str, pd.DataFrame]:
    "Split `df` into train, (valid,) test and batch frames, shares of all rows; stratified on `target` when `stratify`."
    sizes = {"batch": batch_size, "test": test_size, "valid": valid_size}
    for name, v in sizes.items():
        if not (0 < v < 1 or (name == "valid" and v == 0)):
            raise ValueError(f"split.{name}_size: expected a share between 0 and 1, got {v}")
    if sum(sizes.values()) >= 0.9:
        raise ValueError(f"split: test_size + valid_size + batch_size = {sum(sizes.values()):.2f} leaves too little to train on (expected < 0.9)")
    out, rest, left = {}, df, 1.0
    for name, share in sizes.items():
        if share == 0: continue
        rest, out[name] = train_test_split(rest, test_size=share / left, random_state=seed,
                                           stratify=rest[target] if stratify else None)
        left -= share
    out["train"] = rest
    return {k: out[k].reset_index(drop=True) for k in SPLITS if k in out}

def leaked_rows(splits: dict[str, pd.DataFrame], target: str) -> dict[str, int]:
    "For each pair of splits, how many feature rows appear in both."
    feats = {k: v.drop(columns=[target]).drop_duplicates() for k, v in splits.items()}
    names = list(feats)
    return {f"{a}/{b}": len(feats[a].merge(feats[b], how="inner"))
            for i, a in enumerate(names) for b in names[i+1:]}

# %% [code]
_df = pd.DataFrame({"x": range(100), "y": ["a"] * 70 + ["b"] * 30})
_s = split_frame(_df, "y", 0.2, 0.2, seed=0)
test_eq({k: len(v) for k, v in _s.items()}, {"train": 60, "test": 20, "batch": 20})
test_eq({k: int((v.y == "b").sum()) for k, v in _s.items()}, {"train": 18, "test": 6, "batch": 6})
test_eq(leaked_rows(_s, "y"), {"train/test": 0, "train/batch": 0, "test/batch": 0})
_s = split_frame(_df, "y", 0.2, 0.2, seed=0, valid_size=0.1)
test_eq({k: len(v) for k, v in _s.items()}, {"train": 50, "valid": 10, "test": 20, "batch": 20})
test_eq(sorted(pd.concat(_s.values()).x), list(range(100)))     # every row in exactly one split
test_eq(leaked_rows({"train": _df, "test": _df.head(3)}, "y"), {"train/test": 3})
test_fail(lambda: split_frame(_df, "y", 0.5, 0.5), contains="leaves too little")
test_fail(lambda: split_frame(_df, "y", 1.5, 0.1), contains="split.test_size")

# %% [markdown]
## Run

# %% [code]
os.chdir(find_root())
df = pd.read_parquet(require(clean_path, "run `mlops-nb step wrangle` first"))
schema = read_json(require(schema_path, "run `mlops-nb step validate` first"))
splits = split_frame(df, target, test_size, batch_size, seed, stratify=schema["task"] != "regression", valid_size=valid_size)
leaks = leaked_rows(splits, target)
for name, frame in splits.items(): write_parquet(frame, Path(split_dir)/f"{name}.parquet")
record_step(lineage_dir, "split", {"seed": seed, "test_size": test_size, "valid_size": valid_size, "batch_size": batch_size},
            inputs=[clean_path], outputs=[split_dir],
            metrics={**{f"rows_{k}": len(v) for k, v in splits.items()}, **{f"leaked_{k}": v for k, v in leaks.items()}})
if any(leaks.values()): print(f"warning: identical feature rows in more than one split: {leaks}")
pd.DataFrame({k: v[target].value_counts() for k, v in splits.items()})

