"""Benchmark: monitor a million logged predictions.

Builds (untimed) a packaged model on generated data and a SQLite prediction log in the serving contract's
format (table prediction_log: id, logged_at, model_version, request_id, features JSON, prediction JSON), then
times what `mlops-nb monitor --log` does: read the log over a window, compare every feature and the
predictions with the reference, write the drift report, the status file and the dvclive step, and the
ydata-profiling comparison (on samples of `monitor.profile_max_rows`). Prints the figures and stores them as
JSON in benchmarks/results/.

    .venv/bin/python benchmarks/bench_monitor.py            # 1,000,000 rows; target: under 30 s on 2 cores
    .venv/bin/python benchmarks/bench_monitor.py --rows 100000
"""
import argparse, json, os, platform, sqlite3, sys, tempfile, time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("YDATA_PROFILING_NO_ANALYTICS", "True")
ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 30.0


def generate(n, rng, drift=False):
    df = pd.DataFrame({"age": rng.normal(40, 12, n).round(1), "income": rng.lognormal(10, 0.5, n).round(2),
                       "visits": rng.poisson(3, n).astype(float), "score": rng.normal(0, 1, n).round(4),
                       "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1]),
                       "region": rng.choice(["north", "south", "east", "west"], n),
                       "device": rng.choice(["ios", "android", "web", None], n, p=[0.4, 0.4, 0.15, 0.05])})
    if drift: df["score"] += 0.5
    return df


def build_model(d: Path, rng):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from mlops_nb.core import save_model
    from mlops_nb.package import build_package
    from mlops_nb.serve import load_model
    from mlops_nb.validate import infer_schema
    from mlops_nb.features import make_preprocessor
    ref = generate(20_000, rng)
    y = np.where(ref.score + 0.02 * (ref.age - 40) + rng.normal(0, 0.5, len(ref)) > 0, "churn", "stay")
    ref["target"] = y
    schema = infer_schema(ref, "target")
    feats = schema["features"]
    num = [f for f in feats if schema["columns"][f]["kind"] == "numeric"]
    cat = [f for f in feats if f not in num]
    model = Pipeline([("features", make_preprocessor(num, cat)), ("model", LogisticRegression(max_iter=500))]).fit(ref[feats], y)
    build_package(save_model(model, d/"m.skops"), d/"pkg", "bench", schema, {"test": {"accuracy": 0.8}}, {"git": {}, "data": {}})
    return load_model(d/"pkg"), ref


def build_log(db: Path, served, rows: int, rng, chunk: int = 200_000) -> float:
    "Write `rows` logged predictions (the last 10% drifted) over the past 6 days; return the seconds it took (untimed setup)."
    t0 = time.perf_counter()
    start = datetime.now(timezone.utc) - timedelta(days=6)
    step = timedelta(days=6) / rows
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE prediction_log (id INTEGER PRIMARY KEY AUTOINCREMENT, logged_at TEXT, model_version TEXT, "
                    "request_id TEXT, features TEXT, prediction TEXT)")
        for lo in range(0, rows, chunk):
            n = min(chunk, rows - lo)
            df = generate(n, rng, drift=lo >= rows * 0.9)
            preds = served.predict(df)["prediction"]
            feats = df.to_json(orient="records", lines=True).splitlines()      # NaN/None → null
            con.executemany("INSERT INTO prediction_log (logged_at, model_version, request_id, features, prediction) VALUES (?,?,?,?,?)",
                            [((start + (lo + i) * step).isoformat(timespec="microseconds"), served.version, f"req-{lo + i}", f, json.dumps(p))
                             for i, (f, p) in enumerate(zip(feats, preds))])
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--out", default=str(ROOT/"benchmarks/results/monitor.json"))
    a = ap.parse_args(argv)
    from mlops_nb import drift, monitor as mon
    from mlops_nb.core import environment_info, machine_info, now_utc, write_json
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        served, ref = build_model(d, rng)
        setup = build_log(d/"log.db", served, a.rows, rng)
        print(f"setup (untimed): model and {a.rows:,} logged predictions in {setup:.1f} s, log file {(d/'log.db').stat().st_size / 2**20:.0f} MiB")
        t = {}
        t0 = time.perf_counter()
        current, logged, problems, described = mon.read_current("log", prediction_log_db=str(d/"log.db"), window="7d")
        t["read_log"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        result, table = mon.monitor(ref, current, served, metric="accuracy", metric_at_training=0.8, predictions=logged,
                                    problems=problems, source=described)
        t["statistics"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        mon.write_monitoring(result, table, ref, current, d/"out/monitor.json", d/"out/drift.html", d/"out/dvclive", None)
        t["report_status_dvclive"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        drift.profile_compare(ref, current, d/"out/drift_profile.html", max_rows=5000)
        t["profile_comparison_5000_rows"] = time.perf_counter() - t3
        total = time.perf_counter() - t0
    figures = {"benchmark": "monitor 1M logged predictions" if a.rows == 1_000_000 else f"monitor {a.rows} logged predictions",
               "finished": now_utc(), "rows_logged": a.rows, "rows_monitored": result["rows_current"],
               "features": len(table), "status": result["status"], "drifted_features": result["drifted_features"],
               "seconds": {k: round(v, 2) for k, v in t.items()}, "seconds_total": round(total, 2),
               "seconds_without_profile": round(total - t["profile_comparison_5000_rows"], 2),
               "rows_per_second": round(result["rows_current"] / total), "target_seconds": TARGET_SECONDS,
               "within_target": total <= TARGET_SECONDS, "setup_seconds_untimed": round(setup, 1),
               "load_average_at_end": os.getloadavg(), "machine": machine_info(), "environment": environment_info(),
               "python": platform.python_version(), "command": " ".join([Path(sys.executable).name, *sys.argv])}
    for k, v in figures["seconds"].items(): print(f"  {k:<30} {v:7.2f} s")
    print(f"  {'total':<30} {total:7.2f} s  ({figures['rows_per_second']:,} rows/s; target {TARGET_SECONDS:.0f} s: "
          f"{'met' if figures['within_target'] else 'NOT met'}); status: {result['status']}, drifted: {result['drifted_features']}")
    write_json(figures, a.out)
    print(f"figures: {a.out}")
    return 0 if figures["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
