# %% [markdown]
# Serve
> The packaged model as precomputed predictions in a database: the batch of held-back rows scored by the champion.

# %% [code]
#| default_exp serve

# %% [code]
#| export
import json
from itertools import repeat
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd

# the model as a dependency (`from mlops_nb.serve import load_model` keeps working): notebooks 00s, 00v
from mlops_nb.inputs import SchemaError, _problem, conform
from mlops_nb.served import ServedModel, load_model
from mlops_nb.logstore import db_url, make_engine
from mlops_nb.logstore import log_time as utc_now   # the log's time stamp (the kit's one clock), under its old name

# %% [code]
from fastcore.test import test_eq, test_fail
import os, sqlite3, tempfile
from sklearn.linear_model import LogisticRegression
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
## The model three ways

The champion serves as an importable dependency (`load_model`, notebook `00v_served`: its inputs checked by
`00s_inputs`, single rows computed by `00t_fastpath`), as a REST service (`mlops-nb serve`, notebook `99_service`,
which logs every prediction through `00u_predlog`), and, here, as precomputed predictions in a database.

# %% [code]
_schema = {"target": "y", "task": "binary", "features": ["x", "c"],
           "columns": {"x": {"kind": "numeric", "nullable": False, "min": 0.0, "max": 3.0},
                       "c": {"kind": "categorical", "nullable": False, "categories": ["a", "b"]},
                       "y": {"kind": "categorical", "nullable": False, "categories": ["n", "p"]}}}
_tmp = tempfile.TemporaryDirectory(); _d = Path(_tmp.name)
_X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "c": ["a", "b", "a", "b"]})
_m = Pipeline([("features", make_preprocessor(["x"], ["c"])), ("model", LogisticRegression())]).fit(
    _X, ["n", "n", "p", "p"]
)
build_package(save_model(_m, _d/"m.skops"), _d/"pkg", "demo", _schema, {"test": {}}, {"git": {}, "data": {}})
_sm = load_model(_d/"pkg")
test_eq(_sm.predict(_X)["prediction"].tolist(), ["n", "n", "p", "p"])

# %% [markdown]
## A key per row

A batch is scored in chunks and its predictions stored in a database table (SQLite by default, any SQLAlchemy
URL works) with the model version, a key per input row and a timestamp. The key of a row is a hash of its feature
values (and its occurrence number among identical rows) or a key column of the input; scoring the same rows with the
same model again replaces their rows instead of duplicating them.

# %% [code]
#| export
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

# %% [code]
_k = f"{pd.util.hash_pandas_object(_X.iloc[[0]], index=False).iloc[0]:016x}"
test_eq(row_keys(_X.iloc[[0, 0]]), [_k, f"{_k}-1"])
# counts carry across chunks
_seen = {}; row_keys(_X.iloc[[0]], _seen); test_eq(row_keys(_X.iloc[[0]], _seen), [f"{_k}-1"])

# %% [code]
#| export
def _chunk_keys(chunk: pd.DataFrame, key: str, keys_seen: set) -> list[str]:
    "The values of the key column `key` of `chunk` as text, refused when missing or repeated (also across chunks)."
    if key not in chunk.columns: raise SchemaError([_problem(key, "missing", "the key column is missing")])
    keys = chunk[key].astype(str).tolist()
    if len(set(keys)) < len(keys) or keys_seen.intersection(keys):
        raise SchemaError([_problem(key, "key", "repeated values; a key column must identify rows")])
    keys_seen.update(keys)
    return keys

# %% [code]
_ks = set(); test_eq(_chunk_keys(pd.DataFrame({"id": [1, 2]}), "id", _ks), ["1", "2"])
test_fail(lambda: _chunk_keys(pd.DataFrame({"id": [2]}), "id", _ks), contains="column 'id': repeated values")
test_fail(lambda: _chunk_keys(pd.DataFrame({"x": [2]}), "id", _ks), contains="column 'id': the key column is missing")

# %% [markdown]
## A chunk scored

Each chunk is checked against the schema (an error names the chunk's rows), keyed and predicted.

# %% [code]
#| export
def _score_chunk(served: ServedModel, chunk: pd.DataFrame, first: int, key: Optional[str], seen: dict,
                 keys_seen: set, proba: bool) -> tuple[list, list, list]:
    "The keys, predictions and (when `proba`) JSON class probabilities of the rows of `chunk`, row `first` onwards."
    if key is not None: keys = _chunk_keys(chunk, key, keys_seen)
    Xc, errors, _ = conform(chunk, served.schema)
    if errors:
        raise SchemaError(
            [{**p, "message": f"rows {first}-{first + len(chunk) - 1}: {p['message']}"} for p in errors]
        )
    if key is None: keys = row_keys(Xc, seen)
    pred, pr = served._predict_conformed(Xc, proba)
    pred = pred.astype(float).tolist() if not served.is_classifier else pred.astype(str).tolist()
    probs = (
        [json.dumps(dict(zip(served.classes, p))) for p in pr.round(6).tolist()]
        if proba and pr is not None
        else [None] * len(pred)
    )
    return keys, pred, probs

# %% [code]
_keys, _pred, _probs = _score_chunk(_sm, _X, 0, None, {}, set(), True)
test_eq((_keys, _pred), (row_keys(_X), ["n", "n", "p", "p"])); assert set(json.loads(_probs[0])) == {"n", "p"}
test_fail(lambda: _score_chunk(_sm, _X.assign(x="heavy"), 4, None, {}, set(), False),
          contains="rows 4-7: column 'x': expected numbers")

# %% [markdown]
## The table

One row per (model version, row key). Where the database can (SQLite, PostgreSQL) a row of the same key is replaced
by an upsert; elsewhere the old rows are deleted first. The statement is compiled once, and rows go to the driver's
`executemany` as tuples in the order of its parameters (no per-row dicts).

# %% [code]
#| export
_COLUMNS = ["model_version", "row_key", "scored_at", "prediction", "probabilities"]

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

def _prepare_table(con, t, db) -> None:
    "Create the table `t` in the open transaction, or check that the one there has the key (model_version, row_key)."
    import sqlalchemy as sa
    # 256 MiB: keys arrive in hash order
    if con.dialect.name == "sqlite": con.exec_driver_sql("PRAGMA cache_size=-262144")
    if sa.inspect(con).has_table(t.name):
        have = sa.inspect(con).get_pk_constraint(t.name).get("constrained_columns") or []
        if sorted(have) != ["model_version", "row_key"]:
            raise ValueError(f"{db}: table {t.name!r} exists without the key (model_version, row_key) "
                             f"(made by an older mlops-nb?); pick another table or drop it")
    else: t.create(con)

def _upsert(con, table):
    "An INSERT that replaces the row of the same key, where the database has one; else None."
    if con.dialect.name not in ("sqlite", "postgresql"): return None
    import importlib
    ins = importlib.import_module(f"sqlalchemy.dialects.{con.dialect.name}").insert(table)
    return ins.on_conflict_do_update(index_elements=["model_version", "row_key"],
                                     set_={c: ins.excluded[c] for c in ("scored_at", "prediction", "probabilities")})

def _compiled(con, statement) -> tuple[str, Optional[tuple]]:
    "The SQL of `statement` for the driver, and the order of its positional parameters (None: it takes names)."
    compiled = statement.compile(dialect=con.dialect, column_keys=_COLUMNS)
    return str(compiled), compiled.positiontup

def _parameters(recs: Iterable[tuple], order: Optional[tuple]) -> list:
    "Rows in `_COLUMNS` order as the compiled statement takes them: tuples in its order, or dicts."
    if not order: return [dict(zip(_COLUMNS, r)) for r in recs]
    if list(order) == _COLUMNS: return list(recs)
    return [tuple(r[_COLUMNS.index(c)] for c in order) for r in recs]

# %% [code]
_recs = [("v1", "k", "t", "n", None)]
test_eq(_parameters(_recs, tuple(_COLUMNS)), _recs)
test_eq(_parameters(_recs, ("row_key", "model_version", "scored_at", "prediction", "probabilities")),
        [("k", "v1", "t", "n", None)])
test_eq(_parameters(_recs, None), [dict(zip(_COLUMNS, _recs[0]))])

# %% [markdown]
## Scoring a batch

The whole batch is one transaction: a chunk that fails validation leaves the table as it was, and a database file
made by a failed call is removed again. The database write of one chunk runs in a helper thread while the next
chunk is checked and predicted.

# %% [code]
#| export
def _sqlite_file(engine) -> Optional[str]:
    "The file of a SQLite database (None for another database, or one in memory)."
    db = engine.url.database
    return db if engine.dialect.name == "sqlite" and db not in (None, "", ":memory:") else None

def _json_rows_sql(con, t) -> Optional[str]:
    """SQLite (3.38+): the upsert of a whole chunk in one statement, its rows given as one JSON array that SQLite
    unpacks itself (`json_each`). No Python object per row, and the driver releases the GIL for the whole statement,
    so the write truly runs beside the scoring of the next chunk. None for another database."""
    import sqlite3
    if con.dialect.name != "sqlite" or sqlite3.sqlite_version_info < (3, 38): return None
    q = con.dialect.identifier_preparer.quote
    value = lambda i: f"json_extract(r.value, '$[{i}]')"
    # `WHERE true`: without a WHERE, SQLite would parse ON CONFLICT as part of the SELECT (its documented ambiguity)
    return (f"INSERT INTO {q(t.name)} ({', '.join(map(q, _COLUMNS))}) SELECT ?, {value(0)}, ?, {value(1)}, {value(2)} "
            "FROM json_each(?) AS r WHERE true ON CONFLICT (model_version, row_key) DO UPDATE SET "
            "scored_at = excluded.scored_at, prediction = excluded.prediction, probabilities = excluded.probabilities")

def _write_chunks(con, served: ServedModel, t, chunks, key, proba, pool) -> int:
    "Score and write every chunk in the open transaction `con`, each write in `pool` while the next chunk is scored."
    ins, sql, order, pending, as_json = _upsert(con, t), None, None, None, _json_rows_sql(con, t)
    n, seen, keys_seen, stamp = 0, {}, set(), utc_now()
    try:
        for chunk in chunks:
            keys, pred, probs = _score_chunk(served, chunk, n, key, seen, keys_seen, proba)
            # the previous chunk's write: done, or its error
            if pending is not None: pending.result(); pending = None
            try: rows = json.dumps(list(zip(keys, pred, probs)), allow_nan=False) if as_json and keys else None
            except ValueError: rows = None   # a NaN or infinite prediction: JSON has none, the driver binds it
            if rows is not None:
                pending = pool.submit(con.exec_driver_sql, as_json, (served.version, stamp, rows))
                n += len(keys); continue
            if ins is None:
                for i in range(0, len(keys), 500):
                    part = keys[i : i + 500]
                    con.execute(t.delete().where(t.c.model_version == served.version, t.c.row_key.in_(part)))
            if sql is None: sql, order = _compiled(con, ins if ins is not None else t.insert())
            recs = _parameters(zip(repeat(served.version), keys, repeat(stamp), pred, probs), order)
            if recs: pending = pool.submit(con.exec_driver_sql, sql, recs)
            n += len(recs)
        if pending is not None: pending.result(); pending = None
    finally:                  # an error here or in the write: wait for the write before the rollback
        if pending is not None: pending.exception()
    return n

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
    file = _sqlite_file(engine)
    new_file = file is not None and not Path(file).exists()    # made by this call: removed again if it fails
    ok, pool = False, ThreadPoolExecutor(1, thread_name_prefix="score-write")
    try:
        with engine.begin() as con:
            _prepare_table(con, t, db)
            n = _write_chunks(con, served, t, chunks, key, proba, pool)
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
test_fail(lambda: score_chunks(_sm, [_X], _db, key="id"), contains="column 'id': the key column is missing")

# %% [code]
# On SQLite a chunk's rows travel as one JSON array: what is stored is exactly what was predicted (regression floats to
# the last bit, in input order) and what the row-by-row path stored (the class probabilities' JSON text)
import numpy as np
from sklearn.linear_model import LinearRegression
_rng = np.random.default_rng(0)
_Xr = pd.DataFrame({"x": _rng.uniform(0, 3, 3000), "c": _rng.choice(["a", "b"], 3000)})
_rschema = {**_schema, "task": "regression", "columns": {**_schema["columns"], "y": {"kind": "numeric", "nullable": False}}}
_mr = Pipeline([("features", make_preprocessor(["x"], ["c"])), ("model", LinearRegression())]).fit(
    _Xr, _Xr.x * np.pi + (_Xr.c == "b") / 7)
build_package(save_model(_mr, _d/"r.skops"), _d/"rpkg", "demo-r", _rschema, {"test": {}}, {"git": {}, "data": {}})
_smr = load_model(_d/"rpkg")
test_eq(score_chunks(_smr, [_Xr.iloc[:1700], _Xr.iloc[1700:]], _d/"r.db"), 3000)
with sqlite3.connect(_d/"r.db") as _con:
    test_eq([r[0] for r in _con.execute("select prediction from predictions order by rowid")], _mr.predict(_Xr).tolist())
test_eq(score_chunks(_sm, [_X], _d/"p2.db", proba=True), 4)
with sqlite3.connect(_d/"p2.db") as _con:
    test_eq([r[0] for r in _con.execute("select probabilities from predictions order by rowid")],
            _score_chunk(_sm, _X, 0, None, {}, set(), True)[2])

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

