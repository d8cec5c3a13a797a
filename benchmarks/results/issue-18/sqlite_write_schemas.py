"Write-only micro-benchmark of the predictions table: 1M hashed text keys in 10 chunks through the json_each upsert, four schemas (8 Dec 2026)."
import sqlite3, json, time, os, hashlib
N, C = 1_000_000, 100_000
keys = [hashlib.sha256(str(i).encode()).hexdigest()[:16] for i in range(N)]
ver, stamp = "generated-2a9f3c1d0e4b", "2026-12-08T00:00:00+00:00"
def bench(label, ddl, select, conflict, params):
    if os.path.exists("/tmp/sqm.db"): os.remove("/tmp/sqm.db")
    con = sqlite3.connect("/tmp/sqm.db", isolation_level=None); con.execute("PRAGMA cache_size=-262144")
    con.execute(ddl); con.execute("BEGIN")
    sql = f"INSERT INTO p {select} FROM json_each(?) AS r WHERE true {conflict}"
    t = time.perf_counter()
    for i in range(0, N, C): con.execute(sql, params(json.dumps([[k, "yes", None] for k in keys[i:i+C]])))
    con.execute("COMMIT"); print(label, round(time.perf_counter() - t, 2), "s"); con.close()
cols = "row_key TEXT NOT NULL, scored_at TEXT NOT NULL, prediction TEXT, probabilities TEXT"
J = "json_extract(r.value,'$[0]'), ?, json_extract(r.value,'$[1]'), json_extract(r.value,'$[2]')"
bench("text version + text key (now)", f"CREATE TABLE p (model_version TEXT NOT NULL, {cols}, PRIMARY KEY (model_version, row_key))",
      f"SELECT ?, {J}", "ON CONFLICT (model_version, row_key) DO UPDATE SET scored_at=excluded.scored_at", lambda j: (ver, stamp, j))
bench("int version id + text key", f"CREATE TABLE p (version_id INTEGER NOT NULL, {cols}, PRIMARY KEY (version_id, row_key))",
      f"SELECT ?, {J}", "ON CONFLICT (version_id, row_key) DO UPDATE SET scored_at=excluded.scored_at", lambda j: (1, stamp, j))
bench("text key only (UNIQUE)", f"CREATE TABLE p ({cols}, UNIQUE (row_key))",
      f"SELECT {J}", "ON CONFLICT (row_key) DO UPDATE SET scored_at=excluded.scored_at", lambda j: (stamp, j))
bench("no index", f"CREATE TABLE p (model_version TEXT NOT NULL, {cols})", f"SELECT ?, {J}", "", lambda j: (ver, stamp, j))
