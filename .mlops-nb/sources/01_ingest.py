# %% [markdown]
# Ingest
> Read the source data (a bundled dataset, a CSV or Parquet file, or a SQL query) into a raw snapshot addressed by its content hash, and detect the learning task.

# %% [code]
#| default_exp ingest

# %% [code]
#| export
from __future__ import annotations
import csv, difflib, os, re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_nb.core import file_sha256, frame_sha256, now_utc, record_step, write_json, write_parquet
from mlops_nb.contracts import TASKS, DataSourceError, detect_task   # shared with validate: 00a_contracts  # noqa: F401

# %% [code]
from fastcore.test import test_eq, test_fail
import sqlite3, tempfile
from mlops_nb.core import find_root

# %% [code] tags=['parameters']
source: str = "bundled:penguins"  # bundled:NAME, a .csv / .parquet path, or a SQLAlchemy URL (then `query` is required)
query: str | None = None  # SQL source: the query whose result is the data
target: str = "species"  # the column to predict (project.target)
raw_dir: str = "data/raw"  # the raw snapshot and its manifest
lineage_dir: str = "reports/lineage"  # lineage records
sep: str = ","  # CSV: field separator
encoding: str = "utf-8"  # CSV: text encoding
decimal: str = "."  # CSV: decimal mark ("," for many European exports)
na_values: list[str] = ["", "?", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]  # CSV: exactly these cells are missing values
drop_index_column: bool = True  # CSV: drop a leading unnamed row-number column (R's write.csv, pandas' to_csv)
task: str | None = None  # binary | multiclass | regression; null: detected from the target

# %% [markdown]
## Sources

`bundled:NAME` names a dataset that ships inside an installed package, so the default run needs no
download; a SQLAlchemy URL (`sqlite:///data/shop.db`, `postgresql://…`) runs `query` against that
database; anything else is a path to a `.csv` or `.parquet` file. Every problem is a `DataSourceError`
whose message names the parameter, the file and what was expected.

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
    "penguins": (
        _penguins,
        ("palmerpenguins", "data/penguins.csv"),
        "Palmer penguins (Gorman, Williams & Fraser 2014), shipped by the palmerpenguins package, CC0",
        "species",
    ),
    "diabetes": (
        _sklearn("diabetes"),
        None,
        "Diabetes progression (Efron et al. 2004), shipped by scikit-learn; regression",
        "target",
    ),
    "wine": (_sklearn("wine"), None, "Wine recognition (UCI), shipped by scikit-learn; 3 classes", "target"),
    "breast_cancer": (
        _sklearn("breast_cancer"),
        None,
        "Breast cancer Wisconsin (UCI), shipped by scikit-learn; 2 classes",
        "target",
    ),
}

NA_VALUES = ("", "?", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")

def is_sql_url(source: str) -> bool:
    "Whether `source` is a SQLAlchemy URL (`dialect[+driver]://…`) rather than a file."
    return re.match(r"^[a-z][a-z0-9_+]*://", str(source)) is not None

def safe_url(url: str) -> str:
    "A SQLAlchemy URL with its password hidden, for messages and lineage."
    try:
        import sqlalchemy as sa
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception: return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)

def source_file(source: str) -> Path | None:
    """The file behind `source`: a bundled dataset's file inside its package (None if it has none, or for SQL), or the path
    given."""
    if source.startswith("bundled:"):
        name = source.split(":", 1)[1]
        if name not in BUNDLED:
            raise DataSourceError(f"ingest.source: unknown bundled dataset {name!r}; expected one of {sorted(BUNDLED)}")
        res = BUNDLED[name][1]
        return Path(str(resources.files(res[0]).joinpath(res[1]))) if res else None
    if is_sql_url(source): return None
    p = Path(source)
    if not p.exists():
        raise DataSourceError(
            f"ingest.source: file {source} not found (expected a .csv or .parquet file, bundled:NAME or a SQLAlchemy"
            " URL)"
        )
    if not p.is_file(): raise DataSourceError(f"ingest.source: {source} is not a file")
    if p.suffix.lower() not in (".csv", ".tsv", ".txt", ".parquet", ".pq"):
        raise DataSourceError(f"ingest.source: {source}: expected a .csv or .parquet file, got '{p.suffix}'")
    return p

def _index_like(name, s: pd.Series) -> bool:
    "A leading column with no name (R's write.csv, pandas' to_csv) holding row numbers or unique row names."
    if not (str(name) == "" or str(name).startswith("Unnamed: 0")): return False
    if s.isna().any() or not s.is_unique: return False
    if pd.api.types.is_integer_dtype(s):
        return bool((s.to_numpy() == np.arange(len(s)) + s.iloc[0]).all()) if len(s) else True
    return not pd.api.types.is_numeric_dtype(s)

def _header(path: Path, sep: str, encoding: str) -> list[str]:
    "The column names of a CSV's first line as written (pandas renames duplicates to 'a.1')."
    with open(path, newline="", encoding=encoding) as f:
        return next(csv.reader(f, delimiter=sep), [])

def read_csv(path, sep: str = ",", encoding: str = "utf-8", decimal: str = ".", na_values=NA_VALUES,
             drop_index_column: bool = True, **kw) -> pd.DataFrame:
    "Read a CSV with explicit missing-value markers; drop a leading unnamed index column; clear errors naming the file."
    path = Path(path)
    if path.stat().st_size == 0:
        raise DataSourceError(f"ingest.source: {path} is empty (0 bytes); expected a header line and rows")
    opts = dict(sep=sep, encoding=encoding, decimal=decimal, na_values=list(na_values), keep_default_na=False)
    try:
        header = _header(path, sep, encoding)
        df = pd.read_csv(path, **opts, **kw)
    except UnicodeDecodeError as e:
        raise DataSourceError(
            f"ingest.source: {path} is not text in the encoding {encoding!r} (ingest.encoding): {e.reason} at byte"
            f" {e.start}"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataSourceError(
            f"ingest.source: {path} holds no columns (only blank lines); expected a header line and rows"
        ) from None
    except (pd.errors.ParserError, ValueError, csv.Error) as e:
        raise DataSourceError(
            f"ingest.source: could not parse {path} as CSV with separator {sep!r} (ingest.sep): {str(e).strip()}"
        ) from None
    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        raise DataSourceError(
            f"ingest.source: {path}: the header names the columns {dups} more than once; column names must be unique"
        )
    if drop_index_column and df.shape[1] > 1 and _index_like(df.columns[0], df.iloc[:, 0]):
        print(f"{path.name}: dropped the leading unnamed column (row numbers or row names, as R's write.csv writes)")
        df = df.iloc[:, 1:]
    return df

def read_sql(url: str, query: str | None) -> pd.DataFrame:
    "The result of `query` against the database at the SQLAlchemy `url`."
    import sqlalchemy as sa
    if not query:
        raise DataSourceError(
            f"ingest.query: a SQL source ({safe_url(url)}) needs a query, e.g. 'SELECT * FROM my_table'"
        )
    try:
        engine = sa.create_engine(url)
    except Exception as e:
        raise DataSourceError(
            f"ingest.source: {safe_url(url)} is not a usable SQLAlchemy URL: {type(e).__name__}: {e}"
        ) from None
    try:
        with engine.connect() as conn: return pd.read_sql_query(sa.text(query), conn)
    except Exception as e:
        msg = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise DataSourceError(
            f"ingest.query: the query failed against {safe_url(url)}: {type(e).__name__}: {msg}"
        ) from None
    finally: engine.dispose()

def clean_names(df: pd.DataFrame, where: str = "data") -> pd.DataFrame:
    "Column names as strings without surrounding whitespace; an error when two become the same."
    new = [str(c).strip() for c in df.columns]
    seen = {}
    for old, n in zip(df.columns, new): seen.setdefault(n, []).append(str(old))
    clash = {n: olds for n, olds in seen.items() if len(olds) > 1}
    if clash:
        raise DataSourceError(
            f"ingest.source: {where}: column names collide after cleaning (surrounding whitespace removed): "
            + "; ".join(f"{olds} all become {n!r}" for n, olds in clash.items())
            + "; rename them in the source"
        )
    empty = [i for i, n in enumerate(new) if n == ""]
    if empty: raise DataSourceError(f"ingest.source: {where}: column {empty[0] + 1} has no name")
    return df.set_axis(new, axis=1) if new != list(df.columns) else df

def read_source(source: str, query: str | None = None, **csv_options) -> pd.DataFrame:
    "Read `source` into a DataFrame with cleaned column names, with a clear error naming the file when it cannot be used."
    path = source_file(source)
    if source.startswith("bundled:"): df, where = BUNDLED[source.split(":", 1)[1]][0](), source
    elif is_sql_url(source): df, where = read_sql(source, query), f"the query result from {safe_url(source)}"
    elif path.suffix.lower() in (".parquet", ".pq"):
        try: df = pd.read_parquet(path)
        except Exception as e:
            raise DataSourceError(f"ingest.source: could not read {path} as Parquet: {type(e).__name__}: {e}") from None
        where = str(path)
    else: df, where = read_csv(path, **csv_options), str(path)
    if df.shape[1] == 0: raise DataSourceError(f"ingest.source: {where} holds no columns")
    if len(df) == 0:
        raise DataSourceError(
            f"ingest.source: {where} holds only a header (columns {[str(c) for c in df.columns][:10]}), no rows"
        )
    df = clean_names(df, where)
    if df.shape[1] < 2:
        raise DataSourceError(
            f"ingest.source: {where} holds {df.shape[0]} rows x {df.shape[1]} column; expected a target and at least"
            " one feature"
        )
    return df

# %% [code]
_pen = read_source("bundled:penguins")
test_eq(_pen.shape, (344, 8))
test_eq(read_source("bundled:diabetes").shape, (442, 11))
test_eq(source_file("bundled:wine"), None)
test_fail(lambda: read_source("bundled:nope"), contains="unknown bundled dataset")
test_eq(
    [is_sql_url(s) for s in ("sqlite:///a.db", "postgresql+psycopg://u:p@h/db", "data/a.csv", "C:/x.csv")],
    [True, True, False, False],
)
test_eq(safe_url("postgresql://me:secret@host/db"), "postgresql://me:***@host/db")
with tempfile.TemporaryDirectory() as d:
    d = Path(d)
    test_fail(lambda: read_source(f"{d}/none.csv"), contains="none.csv not found")
    (d/"x.doc").write_text("a"); test_fail(lambda: read_source(f"{d}/x.doc"), contains="expected a .csv")
    (d / "bad.parquet").write_text("not parquet")
    test_fail(lambda: read_source(f"{d}/bad.parquet"), contains="bad.parquet as Parquet")
    _pen.head(5).to_csv(d/"p.csv", index=False)
    test_eq(read_source(f"{d}/p.csv").shape, (5, 8))
    # R's write.csv: an unnamed first column of row numbers, "NA" for missing values
    (d/"r.csv").write_text('"","a","b","y"\n"1",1.5,NA,"p"\n"2",?,"x","q"\n"3",2.5,"z",NA\n')
    _r = read_source(f"{d}/r.csv")
    test_eq(list(_r.columns), ["a", "b", "y"])
    test_eq(_r.isna().sum().tolist(), [1, 1, 1])
    (d/"eu.csv").write_text("a;b;y\n1,5;x;p\n2,5;y;q\n")
    test_eq(read_source(f"{d}/eu.csv", sep=";", decimal=",")["a"].tolist(), [1.5, 2.5])
    (d/"empty.csv").write_text(""); test_fail(lambda: read_source(f"{d}/empty.csv"), contains="is empty")
    (d/"head.csv").write_text("a,b,y\n"); test_fail(lambda: read_source(f"{d}/head.csv"), contains="only a header")
    (d / "ragged.csv").write_text("a,b,y\n1,2,3\n1,2,3,4,5\n")
    test_fail(lambda: read_source(f"{d}/ragged.csv"), contains="could not parse")
    (d / "dup.csv").write_text("a,a,y\n1,2,3\n")
    test_fail(lambda: read_source(f"{d}/dup.csv"), contains="more than once")
    (d / "ws.csv").write_text("Age, Age,y\n1,2,3\n")
    test_fail(lambda: read_source(f"{d}/ws.csv"), contains="collide after cleaning")
    (d / "one.csv").write_text("y\n1\n2\n")
    test_fail(lambda: read_source(f"{d}/one.csv"), contains="at least one feature")
    (d / "bin.csv").write_bytes(b"a,b\n\xff\xfe,1\n")
    test_fail(lambda: read_source(f"{d}/bin.csv"), contains="ingest.encoding")
    with sqlite3.connect(d/"shop.db") as con: _pen.to_sql("penguins", con, index=False)
    test_eq(read_source(f"sqlite:///{d}/shop.db", "SELECT * FROM penguins WHERE year = 2007").shape, (110, 8))
    test_fail(lambda: read_source(f"sqlite:///{d}/shop.db", "SELECT * FROM nope"), contains="no such table: nope")
    test_fail(lambda: read_source(f"sqlite:///{d}/shop.db"), contains="needs a query")

# %% [markdown]
## The target and the task

The target column must exist (a typo gets the closest names as suggestions), hold values, and more
than one. The task is inferred from it — text or booleans are classes; integers with at most 10
distinct values are classes; other numbers are a regression — unless `ingest.task` says otherwise.

# %% [code]
#| export
def check_target(df: pd.DataFrame, target: str) -> pd.Series:
    """The target column, or a DataSourceError: missing (with the closest column names), entirely missing, or a single
    value."""
    if target not in df.columns:
        cols = [str(c) for c in df.columns]
        close = difflib.get_close_matches(target, cols, n=3, cutoff=0.5) or \
                [c for c in cols if c.lower() == target.lower()]
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise DataSourceError(f"project.target: column {target!r} is not in the data{hint} The columns are {cols[:30]}")
    y = df[target]
    n = int(y.notna().sum())
    if n == 0:
        raise DataSourceError(
            f"project.target: column {target!r} is entirely missing ({len(y)} rows, none with a value); nothing to"
            " learn from"
        )
    if y.nunique() < 2:
        raise DataSourceError(
            f"project.target: column {target!r} holds a single value ({y.dropna().iloc[0]!r} in all {n} rows with a"
            " value); a model needs at least two classes or distinct values"
        )
    return y

# %% [code]
test_eq(detect_task(pd.Series([1.5, 2.5, 3.5]))[0], "regression")
test_eq(detect_task(pd.Series([0, 1, 2, 1]))[0], "multiclass")
test_eq(detect_task(pd.Series([0.0, 1.0, 1.0]))[0], "binary")
test_eq(detect_task(pd.Series(["a", "b", "a"])), ("binary", "target is text with 2 classes"))
test_eq(detect_task(pd.Series([0, 1, 2, 1]), "regression")[0], "regression")
test_fail(lambda: detect_task(pd.Series(["a", "b"]), "regression"), contains="numeric target")
test_fail(lambda: detect_task(pd.Series([1, 2]), "classify"), contains="ingest.task")
test_fail(lambda: check_target(_pen, "specis"), contains="did you mean 'species'")
test_fail(lambda: check_target(_pen.assign(species="Adelie"), "species"), contains="single value")
test_fail(lambda: check_target(_pen.assign(species=None), "species"), contains="entirely missing")
test_eq(check_target(_pen, "species").name, "species")

# %% [markdown]
## The raw snapshot

Raw data is never edited: every later dataset is derived from this snapshot by code. The snapshot is
addressed by the hash of its content (`raw-<sha256 prefix>.parquet`) and written once per distinct
input: ingesting the same data again finds it and writes nothing. `raw.parquet`, which later steps
read, is a hard link to it. The manifest records the source, the shape and both hashes (of the
source file's bytes and of the table's content).

# %% [code]
#| export
def _link(src: Path, dest: Path):
    tmp = dest.with_name(f".{dest.name}.tmp")
    if tmp.exists(): tmp.unlink()
    try: os.link(src, tmp)
    except OSError:
        import shutil; shutil.copyfile(src, tmp)
    os.replace(tmp, dest)

def snapshot(df: pd.DataFrame, raw_dir, source: str, source_path=None, **extra) -> dict:
    """Write `df` to `raw_dir/raw-<hash>.parquet` unless that snapshot exists, link `raw.parquet` to it, write the
    manifest; return it."""
    raw_dir = Path(raw_dir)
    sha = frame_sha256(df)
    name = f"raw-{sha[:16]}.parquet"
    reused = (raw_dir/name).is_file()
    if not reused: write_parquet(df, raw_dir/name)
    for old in raw_dir.glob("raw-*.parquet"):      # one snapshot per raw_dir: the folder is a DVC output
        if old.name != name: old.unlink()
    _link(raw_dir/name, raw_dir/"raw.parquet")
    # None: loaded by a package or a query
    manifest = {"source": safe_url(source) if is_sql_url(source) else source,
                "source_file": str(source_path) if source_path else None,
                "source_sha256": file_sha256(source_path) if source_path else None,
                "data_sha256": sha, "snapshot": name, "reused": reused,
                "rows": int(df.shape[0]), "columns": int(df.shape[1]),
                "column_names": [str(c) for c in df.columns], "ingested": now_utc(), **extra}
    write_json(manifest, raw_dir/"manifest.json")
    return manifest

# %% [code]
with tempfile.TemporaryDirectory() as d:
    m = snapshot(_pen, d, "bundled:penguins", source_file("bundled:penguins"))
    test_eq((m["rows"], m["columns"], m["reused"]), (344, 8, False))
    test_eq(frame_sha256(pd.read_parquet(Path(d)/"raw.parquet")), m["data_sha256"])
    mtime = (Path(d)/m["snapshot"]).stat().st_mtime_ns
    test_eq(snapshot(_pen, d, "bundled:penguins")["reused"], True)               # same content: not written again
    test_eq((Path(d)/m["snapshot"]).stat().st_mtime_ns, mtime)
    m2 = snapshot(_pen.head(10), d, "bundled:penguins")
    test_eq(sorted(p.name for p in Path(d).glob("*.parquet")), sorted(["raw.parquet", m2["snapshot"]]))

# %% [markdown]
## Run

Paths in params.yaml are relative to the project root, wherever the notebook was opened from.

# %% [code]
os.chdir(find_root())
csv_options = dict(
    sep=sep, encoding=encoding, decimal=decimal, na_values=na_values, drop_index_column=drop_index_column
)
df = read_source(source, query, **csv_options)
y = check_target(df, target)
task_found, task_reason = detect_task(y, task)
print(f"task: {task_found} ({task_reason})")
manifest = snapshot(df, raw_dir, source, source_file(source), target=target, task=task_found, task_reason=task_reason,
                    query=query if is_sql_url(source) else None)
record_step(
    lineage_dir,
    "ingest",
    {"source": manifest["source"], "query": query, "task": task, **csv_options},
    inputs=[p for p in [source_file(source)] if p is not None],
    outputs=[raw_dir],
    metrics={"rows": manifest["rows"], "columns": manifest["columns"]},
    data={
        k: manifest[k]
        for k in ("source", "source_sha256", "data_sha256", "snapshot", "rows", "columns", "task", "task_reason")
    },
)
print(
    f"{manifest['source']}: {manifest['rows']} rows x {manifest['columns']} columns, sha256"
    f" {manifest['data_sha256'][:12]}"
    + (" (snapshot already there, not rewritten)" if manifest["reused"] else "")
)
df.head()

