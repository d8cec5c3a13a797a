"""Online-learning benchmark: single-row `POST /predict` latency of `mlops-nb serve --online` while it learns, against
the static service (`mlops-nb serve`) under the same traffic.

    .venv/bin/python benchmarks/bench_online.py [--requests 1500] [--max-seconds 90] [--feed-every 0.25]

Both services serve the same champion (the sgd family on a generated stream,
`mlops_nb.online_stream.stream_package`), each under uvicorn on 127.0.0.1 with a prediction log. On each, a feeder thread predicts a batch of 50 rows of a drifting
stream and sends their labels to `POST /feedback` every --feed-every seconds: the static service only stores them, the
online one also learns them (mini-batches of online.batch_rows, a promotion decision every online.promote_every
batches, each promotion a new package version the service reloads). Meanwhile the client times one-row requests,
alternating between the two services so that the machine's load falls on both alike. Bounded by --requests per
service and --max-seconds. Target: the online service's median and p95 within 20% of the static one's. Prints the
figures and writes them to benchmarks/results/online.json. Also the notebook's drift demo (static champion vs
online model, prequential balanced accuracy per batch) with its figure, benchmarks/results/online_drift.png.
Not part of the test suite.
"""
import argparse, http.client, json, os, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGET = 0.20


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def project(dest: Path, **online) -> Path:
    from mlops_nb.online_stream import drift_stream, stream_package
    dest.mkdir(parents=True)
    params = yaml.safe_load((REPO/"params.yaml").read_text())
    params["online"].update(online)
    (dest/"params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stream_package(dest/"models/package", drift_stream(batches=20, drift_at=None, seed=1))
    return dest


def serve(root: Path, online: bool):
    port = free_port()
    cmd = [str(BIN/"mlops-nb"), "serve", "--project", str(root), "--port", str(port), "--log-db", str(root/"log.db")]
    proc = subprocess.Popen(cmd + (["--online"] if online else []), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={k: v for k, v in os.environ.items() if k != "MLOPS_NB_TOKEN"})
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2); c.request("GET", "/health")
            if c.getresponse().status == 200: return port, proc
        except OSError: time.sleep(0.2)
    proc.kill(); raise RuntimeError(f"{cmd} did not answer: {proc.stdout.read()}")


def call(conn, method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers={"Content-Type": "application/json"})
    r = conn.getresponse(); data = r.read()
    if r.status != 200: raise RuntimeError(f"{method} {path}: {r.status} {data[:300]}")
    return json.loads(data)


def feeder(port: int, stop: threading.Event, every: float, counts: dict):
    from mlops_nb.online_stream import drift_stream
    stream = drift_stream(batches=400, batch_rows=50, drift_at=20, seed=7)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _, g in stream.groupby("batch"):
        if stop.is_set(): break
        t0 = time.perf_counter()
        preds = call(conn, "POST", "/predict", g[["x1", "x2", "c"]].to_dict("records"))["predictions"]
        items = [{"prediction_id": p["prediction_id"], "label": y} for p, y in zip(preds, g.y)]
        for attempt in range(10):      # SQLite: /feedback can answer 503 "database is locked" while the log writes (issue 16)
            try: call(conn, "POST", "/feedback", items); counts["labelled"] = counts.get("labelled", 0) + len(g); break
            except RuntimeError as e:
                if " 503 " not in str(e): raise
                counts["feedback_503"] = counts.get("feedback_503", 0) + 1; time.sleep(0.05 * (attempt + 1))
        stop.wait(max(every - (time.perf_counter() - t0), 0))


def curves(work: Path, png: Path) -> dict:
    "The notebook's demo, in process: prequential balanced accuracy per batch, static champion vs the online model."
    from mlops_nb.online_stream import drift_stream, plot_curves, prequential_curves, recovery, stream_package
    stream_package(work/"package", drift_stream(batches=20, drift_at=None, seed=1))
    c = prequential_curves(work/"package", drift_stream(batches=40, drift_at=10, angle=60, seed=4), promote_every=2)
    plot_curves(c, 10, dest=png)
    return {"stream": "50-row batches, boundary turned by 60 degrees at batch 10", "figure": png.name,
            "online": recovery(c, 10, "online"), "static": recovery(c, 10, "static"),
            "per_batch": {"static": c.static.round(3).tolist(), "online": c.online.round(3).tolist()}}


def stats(ms: list) -> dict:
    a = np.asarray(ms)
    return {"requests": len(a), "mean_ms": round(float(a.mean()), 3), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p95_ms": round(float(np.percentile(a, 95)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "max_ms": round(float(a.max()), 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=1500, help="timed one-row requests per service")
    ap.add_argument("--max-seconds", type=float, default=90, help="stop timing after this long")
    ap.add_argument("--feed-every", type=float, default=0.25, help="seconds between labelled batches of 50 rows, per service")
    ap.add_argument("--promote-every", type=int, default=None, help="online.promote_every (default: params.yaml's)")
    ap.add_argument("--skip-curves", action="store_true", help="leave out the drift demo (figure benchmarks/results/online_drift.png)")
    ap.add_argument("--out", default=str(REPO/"benchmarks/results/online.json"))
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-online-"))
    procs = []
    try:
        ports = {}
        for mode in ("static", "online"):
            port, proc = serve(project(work/mode, **({"promote_every": a.promote_every} if a.promote_every else {})), mode == "online"); ports[mode] = port; procs.append(proc)
        conns = {m: http.client.HTTPConnection("127.0.0.1", p, timeout=30) for m, p in ports.items()}
        row = {"x1": 0.3, "x2": -0.2, "c": "a"}
        for m in conns:
            for _ in range(50): call(conns[m], "POST", "/predict", row)       # warm up
        stop, counts = threading.Event(), {m: {} for m in ports}
        feeders = [threading.Thread(target=feeder, args=(ports[m], stop, a.feed_every, counts[m]), daemon=True) for m in ports]
        for t in feeders: t.start()
        time.sleep(2.0)                                    # learning under way before timing starts
        lat, t_end = {m: [] for m in ports}, time.time() + a.max_seconds
        for i in range(a.requests):
            if time.time() > t_end: break
            for m in (("static", "online") if i % 2 == 0 else ("online", "static")):
                t0 = time.perf_counter(); call(conns[m], "POST", "/predict", row); lat[m].append((time.perf_counter() - t0) * 1000)
        stop.set()
        for t in feeders: t.join(30)
        online = call(conns["online"], "GET", "/online")
        res = {m: stats(v) for m, v in lat.items()}
        ratio = {k: round(res["online"][k] / res["static"][k], 3) for k in ("mean_ms", "p50_ms", "p95_ms", "p99_ms")}
        out = {"what": "one-row POST /predict latency, mlops-nb serve --online (learning) vs mlops-nb serve (static), "
                       "same model, same labelled traffic (50 rows every feed_every s each), requests alternated",
               "feed_every_s": a.feed_every, "promote_every": a.promote_every or "params.yaml", "labelled_rows": {m: counts[m].get("labelled", 0) for m in ports},
               "feedback_503_retries": {m: counts[m].get("feedback_503", 0) for m in ports},
               "static": res["static"], "online": res["online"], "online_over_static": ratio, "target": f"within {TARGET:.0%}",
               "within_target": bool(ratio["p50_ms"] <= 1 + TARGET and ratio["p95_ms"] <= 1 + TARGET),
               "learner": {k: online[k] for k in ("learned", "rejected", "held", "batches", "promotions", "frozen", "model_version")},
               "load_average": os.getloadavg(), "cpus": os.cpu_count()}
        if not a.skip_curves: out["drift_curves"] = curves(work/"curves", Path(a.out).with_name("online_drift.png"))
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
        print(json.dumps(out, indent=2))
        return 0
    finally:
        for p in procs:
            p.terminate()
            try: p.wait(30)
            except subprocess.TimeoutExpired: p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
