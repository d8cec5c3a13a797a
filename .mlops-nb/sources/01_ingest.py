# %% [markdown]
# Ingest
> Read the source data (a bundled dataset, CSV or Parquet) into a raw snapshot with its hash.

# %% [code]
#| default_exp ingest

# %% [code]
#| export
from __future__ import annotations
from importlib import resources
from pathlib import Path

import pandas as pd

from mlops_nb.core import file_sha256, frame_sha256, now_utc, record_step, write_json, write_parquet

# %% [code]
from fastcore.test import test_eq, test_fail
import os, tempfile
from mlops_nb.core import find_root

# %% [code] tags=['parameters']
source = "bundled:penguins"
raw_dir = "data/raw"
lineage_dir = "reports/lineage"

# %% [markdown]
## Sources

`bundled:NAME` names a dataset that ships inside an installed package, so the default run needs no
download; anything else is a path to a `.csv` or `.parquet` file.

# %% [code]
#| export
def _penguins():
    import palmerpenguins
    return palmerpenguins.load_penguins()

def _sklearn(name):
    def load():
        import sklearn.datasets as ds
        return getattr(ds, f"load_{name}")(as_frame=True).frame
    return load

BUNDLED = {
    # name: (loader, the data file inside its package or None, where it comes from, its target column)
    "penguins": (_penguins, ("palmerpenguins", "data/penguins.csv"),
                 "Palmer penguins (Gorman, Williams & Fraser 2014), shipped by the palmerpenguins package, CC0", "species"),
    "diabetes": (_sklearn("diabetes"), None, "Diabetes progression (Efron et al. 2004), shipped by scikit-learn; regression", "target"),
    "wine": (_sklearn("wine"), None, "Wine recognition (UCI), shipped by scikit-learn; 3 classes", "target"),
    "breast_cancer": (_sklearn("breast_cancer"), None, "Breast cancer Wisconsin (UCI), shipped by scikit-learn; 2 classes", "target"),
}

def source_file(source: str) -> Path | None:
    "The file behind `source`: a bundled dataset's file inside its package (None if it has none), or the path given."
    if source.startswith("bundled:"):
        name = source.split(":", 1)[1]
        if name not in BUNDLED:
            raise ValueError(f"ingest.source: unknown bundled dataset {name!r}; expected one of {sorted(BUNDLED)}")
        res = BUNDLED[name][1]
        return Path(str(resources.files(res[0]).joinpath(res[1]))) if res else None
    p = Path(source)
    if not p.is_file(): raise FileNotFoundError(f"ingest.source: {source} not found")
    if p.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ValueError(f"ingest.source: {source}: expected a .csv or .parquet file, got '{p.suffix}'")
    return p

def read_source(source: str) -> pd.DataFrame:
    "Read `source` into a DataFrame, with a clear error naming the file when it cannot be parsed."
    path = source_file(source)
    if source.startswith("bundled:"): return BUNDLED[source.split(":", 1)[1]][0]()
    try:
        df = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as e:
        raise ValueError(f"ingest.source: could not read {path}: {type(e).__name__}: {e}") from None
    if df.empty or df.shape[1] < 2:
        raise ValueError(f"ingest.source: {path} holds {df.shape[0]} rows x {df.shape[1]} columns; expected a table with a target and at least one feature")
    return df

# %% [code]
_pen = read_source("bundled:penguins")
test_eq(_pen.shape, (344, 8))
test_eq(read_source("bundled:diabetes").shape, (442, 11))
test_eq(source_file("bundled:wine"), None)
test_fail(lambda: read_source("bundled:nope"), contains="unknown bundled dataset")
with tempfile.TemporaryDirectory() as d:
    (Path(d)/"x.txt").write_text("a"); test_fail(lambda: read_source(f"{d}/x.txt"), contains="expected a .csv")
    (Path(d)/"bad.parquet").write_text("not parquet"); test_fail(lambda: read_source(f"{d}/bad.parquet"), contains="bad.parquet")
    _pen.head(5).to_csv(Path(d)/"p.csv", index=False)
    test_eq(read_source(f"{d}/p.csv").shape, (5, 8))

# %% [markdown]
## The raw snapshot

Raw data is never edited: every later dataset is derived from this snapshot by code. The manifest
records where it came from and two hashes, of the source file's bytes and of the table's content.

# %% [code]
#| export
def snapshot(df: pd.DataFrame, raw_dir, source: str, source_path=None) -> dict:
    "Write `df` to `raw_dir/raw.parquet` with a manifest (source, shape, hashes); return the manifest."
    raw_dir = Path(raw_dir)
    manifest = {"source": source, "source_file": str(source_path) if source_path else None,
                "source_sha256": file_sha256(source_path) if source_path else None,   # None: loaded by its package
                "data_sha256": frame_sha256(df), "rows": int(df.shape[0]), "columns": int(df.shape[1]),
                "column_names": [str(c) for c in df.columns], "ingested": now_utc()}
    write_parquet(df, raw_dir/"raw.parquet")
    write_json(manifest, raw_dir/"manifest.json")
    return manifest

# %% [code]
with tempfile.TemporaryDirectory() as d:
    m = snapshot(_pen, d, "bundled:penguins", source_file("bundled:penguins"))
    test_eq((m["rows"], m["columns"]), (344, 8))
    test_eq(frame_sha256(pd.read_parquet(Path(d)/"raw.parquet")), m["data_sha256"])

# %% [markdown]
## Run

Paths in params.yaml are relative to the project root, wherever the notebook was opened from.

# %% [code]
os.chdir(find_root())
df = read_source(source)
manifest = snapshot(df, raw_dir, source, source_file(source))
record_step(lineage_dir, "ingest", {"source": source}, inputs=[], outputs=[raw_dir],
            metrics={"rows": manifest["rows"], "columns": manifest["columns"]},
            data={"source": source, "source_sha256": manifest["source_sha256"], "data_sha256": manifest["data_sha256"]})
print(f"{source}: {manifest['rows']} rows x {manifest['columns']} columns, sha256 {manifest['data_sha256'][:12]}")
df.head()

